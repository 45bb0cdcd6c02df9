"""The conf/data group files compose with Hydra and convert to a valid DataConfig."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from aiforml.compose import (
    CONF_DIR as CONF,  # importing it registers the dataclass defaults with Hydra
)
from aiforml.config import DataConfig, from_dict


def _data_cfg(*overrides: str) -> DataConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name="config", overrides=list(overrides))
    return from_dict(DataConfig, OmegaConf.to_container(cfg.data, resolve=True), prefix="data.")


def test_default_is_the_fast_synthetic_preset() -> None:
    cfg = _data_cfg()
    assert (cfg.source, cfg.synthetic.preset, cfg.embargo_eras) == ("synthetic", "fast", 4)


def test_realistic_group() -> None:
    assert _data_cfg("data=synthetic_realistic").synthetic.preset == "realistic"


def test_numerai_group_requires_a_path() -> None:
    with pytest.raises(ValueError, match="data.path is required"):
        _data_cfg("data=numerai")
    cfg = _data_cfg("data=numerai", "data.path=/data/v5")
    assert (cfg.source, cfg.path, cfg.feature_set) == ("numerai", "/data/v5", "small")
