"""Compose the Hydra configuration in ``conf/`` outside ``@hydra.main`` and type it.

For the command-line tools (``python -m aiforml.evaluate``, the MCP server) and tests,
which take ``key=value`` overrides like ``launch.py`` does. Responsible for locating
``conf/``, composing with overrides, and converting once to :class:`aiforml.config.Config`;
a bad override fails with Hydra's message or a ``ValueError`` that names the key.

Every default lives once, in the dataclasses of :mod:`aiforml.config`: importing this module
stores them in Hydra's ConfigStore as ``aiforml_base``, the first entry of
``conf/config.yaml``'s defaults list, so group files hold only what a choice changes and any
key can be overridden on the command line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from aiforml.config import Config, from_dict

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def _first_set(*values: Any) -> Any:
    """``${aiforml_first_set:a,b,c}``: the first value that is not null (conf/config.yaml's
    ``hydra.run.dir`` uses it so Hydra writes into ``resume`` or ``run_dir`` when one is given)."""
    return next((v for v in values if v is not None), None)


if not OmegaConf.has_resolver("aiforml_first_set"):
    OmegaConf.register_new_resolver("aiforml_first_set", _first_set)
# Plain data, not the dataclass: OmegaConf's typed nodes know no Literal; ``from_dict`` types it.
ConfigStore.instance().store(name="aiforml_base", node=dataclasses.asdict(Config()))


def to_config(cfg: DictConfig | dict[str, Any]) -> Config:
    """Convert a composed config (Hydra's, without its own ``hydra`` node) to the typed one."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    data.pop("hydra", None)
    return from_dict(Config, data)


def load_config(overrides: list[str] | None = None, config_name: str = "config") -> Config:
    """Compose ``conf/<config_name>.yaml`` with ``overrides`` and return the typed config."""
    if not CONF_DIR.is_dir():
        raise FileNotFoundError(f"configuration folder not found: looked in {CONF_DIR}")
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            composed = compose(config_name=config_name, overrides=list(overrides or []))
    except HydraException as exc:
        raise ValueError(f"bad configuration override: {exc}") from exc
    return to_config(composed)


DATA_CHOICES = {name: f"data={name}" for name in ("synthetic", "synthetic_realistic", "sp500", "synthetic_prices")}


def data_overrides(data: str, task: str | None = None) -> list[str]:
    """Config overrides for a command line's ``--data``: a named data set, or a path.

    A path is price data (task trading) or Numerai parquet (task numerai): ``task`` when
    given, else inferred by :func:`infer_task`.
    """
    if data in DATA_CHOICES:
        return [DATA_CHOICES[data]] + ([f"++data.task={task}"] if task else [])
    path = Path(data).expanduser().resolve()
    if not path.exists():
        raise ValueError(f"--data: no such file or folder {path} (or use one of {sorted(DATA_CHOICES)})")
    if (task or infer_task(path)) == "trading":
        return ["data=prices", f"data.path={path}"]
    return ["data=numerai", f"data.path={path}"]


def infer_task(path: Path) -> str:
    """numerai for a folder with train.parquet or a parquet file without a close column; else trading."""
    if path.is_dir():
        return "numerai" if (path / "train.parquet").exists() else "trading"
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        names = {name.strip().lower() for name in pq.read_schema(path).names}
        return "trading" if "close" in names else "numerai"
    return "trading"
