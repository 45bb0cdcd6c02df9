"""Era splits: block order and sizes, the embargo, clear errors; the Dataset helpers."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from aiforml.config import DataConfig, from_dict
from aiforml.data import Dataset, load_dataset, split_dataset, split_eras
from aiforml.data.cache import load_cached, save_dataset


def test_blocks_are_ordered_disjoint_and_embargoed() -> None:
    eras = np.repeat(np.arange(100, dtype=np.int32), 3)
    split = split_eras(eras, validation_eras=20, test_eras=15, embargo=4)
    assert split.train.tolist() == list(range(57))
    assert split.validation.tolist() == list(range(61, 81))
    assert split.test.tolist() == list(range(85, 100))
    assert split.validation.min() - split.train.max() == 5  # 4 eras dropped between
    assert split.test.min() - split.validation.max() == 5


def test_zero_embargo_keeps_every_era() -> None:
    split = split_eras(np.arange(30), 5, 5, 0)
    assert len(split.train) + len(split.validation) + len(split.test) == 30


def test_too_few_eras_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="too few eras.*data.validation_eras"):
        split_eras(np.arange(20), 8, 8, 4)


def test_split_uses_config_then_dataset_defaults(small_data: Dataset, small_cfg: DataConfig) -> None:
    split = split_dataset(small_data, small_cfg)
    assert (len(split.validation), len(split.test), split.embargo) == (10, 10, 4)
    split = split_dataset(small_data, replace(small_cfg, validation_eras=None, test_eras=None))
    assert len(split.validation) == small_data.default_validation_eras
    assert len(split.test) == small_data.default_test_eras
    assert not np.intersect1d(split.train, split.validation).size


def test_default_fast_split_sizes(fast_data: Dataset, fast_cfg: DataConfig) -> None:
    split = split_dataset(fast_data, fast_cfg)
    train_rows = int(fast_data.rows(split.train).sum())
    assert 40_000 <= train_rows <= 80_000
    assert 50 <= len(split.validation) <= 80 and 50 <= len(split.test) <= 80
    assert 60 <= len(fast_data.feature_names) <= 120
    rows_per_era = np.bincount(fast_data.eras)
    assert 500 <= rows_per_era.mean() <= 1000


def test_describe_lists_schema_and_split(small_data: Dataset, small_cfg: DataConfig) -> None:
    split = split_dataset(small_data, small_cfg)
    desc = json.loads(json.dumps(small_data.describe(split)))  # plain JSON data
    assert desc["feature_columns"] == list(small_data.feature_names)
    assert desc["target_columns"][0] == "target"
    assert set(desc["feature_sets"]) >= {"small", "medium", "all"}
    assert desc["split"]["validation"]["n_eras"] == 10
    total = sum(desc["split"][b]["n_rows"] for b in ("train", "validation", "test"))
    embargoed = np.setdiff1d(small_data.unique_eras, np.concatenate(list(split.blocks().values())))
    assert len(embargoed) == 8
    assert total == small_data.n_rows - int(small_data.rows(embargoed).sum())


def test_select_features_and_rows(small_data: Dataset) -> None:
    small = small_data.select_features("small")
    assert small.feature_names == small_data.feature_sets["small"]
    assert small.features.flags.c_contiguous and small.version != small_data.version
    assert set(small.feature_sets["all"]) == set(small.feature_names)
    idx = small_data.feature_indices("small")
    assert np.array_equal(small.features, small_data.features[:, idx])
    group = next(iter(small_data.feature_groups))
    assert len(small_data.feature_indices(group)) == len(small_data.feature_groups[group])
    with pytest.raises(KeyError, match="unknown feature set"):
        small_data.select_features("huge")
    mask = small_data.rows([0, 1])
    assert mask.sum() == (small_data.eras <= 1).sum()


def test_load_dataset_feature_set_and_cache(small_cfg: DataConfig) -> None:
    cfg = replace(small_cfg, feature_set="medium")
    data = load_dataset(cfg)
    assert len(data.feature_names) == len(data.feature_sets["medium"]) < 30
    with pytest.raises(ValueError, match="data.feature_set"):
        load_dataset(replace(small_cfg, feature_set="nope"))


def test_config_validation_names_the_key() -> None:
    with pytest.raises(ValueError, match="data.path is required"):
        from_dict(DataConfig, {"source": "numerai"}, prefix="data.")
    with pytest.raises(ValueError, match="data.embargo_eras"):
        from_dict(DataConfig, {"embargo_eras": -1}, prefix="data.")
    with pytest.raises(ValueError, match="data.synthetic.rows_per_era"):
        from_dict(DataConfig, {"synthetic": {"rows_per_era": 2}}, prefix="data.")
    cfg = from_dict(DataConfig, {"synthetic": {"preset": "realistic", "seed": 3}}, prefix="data.")
    assert cfg.synthetic.preset == "realistic" and cfg.synthetic.seed == 3


def test_cache_save_is_idempotent_and_reloads(small_data: Dataset, tmp_path) -> None:
    path = tmp_path / "synthetic-x"
    save_dataset(small_data, path)
    save_dataset(small_data, path)  # a concurrent writer that lost the race keeps the winner
    again = load_cached(path)
    assert again is not None and again.version == small_data.version
    assert np.array_equal(again.features, small_data.features)
    assert np.array_equal(again.targets, small_data.targets, equal_nan=True)
    assert again.feature_groups == small_data.feature_groups
    assert load_cached(tmp_path / "absent") is None
