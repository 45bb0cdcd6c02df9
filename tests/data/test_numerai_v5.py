"""Numerai v5's layout read lazily: feature sets, era stride, v5's test rows, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from aiforml.config import DataConfig, from_dict
from aiforml.data import load_dataset, load_numerai
from aiforml.data.v5_layout import V5_TARGETS, V5Layout, write_v5_layout

LAYOUT = V5Layout(n_train_eras=9, n_validation_eras=4, n_test_eras=2, rows_per_era=7, n_features=24,
                  n_targets=5, rows_per_group=20)  # several row groups per file


@pytest.fixture(scope="module")
def v5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_v5_layout(tmp_path_factory.mktemp("v5"), LAYOUT)


def _frame(folder: Path) -> pl.DataFrame:
    """Both files as written, test rows (no target) dropped: what the loader must return."""
    frame = pl.concat([pl.read_parquet(folder / f) for f in ("train.parquet", "validation.parquet")])
    return frame.filter(pl.col("target").is_not_nan())


def test_feature_set_selects_only_its_columns_as_int8(v5_dir: Path) -> None:
    meta = json.loads((v5_dir / "features.json").read_text())
    medium = meta["feature_sets"]["medium"]
    assert 0 < len(medium) < LAYOUT.n_features
    data = load_dataset(DataConfig(source="numerai", path=str(v5_dir), feature_set="medium"))
    expected = _frame(v5_dir)
    assert data.feature_names == tuple(medium)
    assert data.features.dtype == np.int8 and data.features.flags.c_contiguous
    assert np.array_equal(data.features, expected.select(medium).to_numpy())
    assert data.target_names == V5_TARGETS[:5]
    assert np.array_equal(data.targets, expected.select(V5_TARGETS[:5]).to_numpy(), equal_nan=True)
    assert np.isnan(data.targets[:, 2]).any() and not np.isnan(data.targets[:, 0]).any()
    groups = {k: tuple(f for f in v if f in medium) for k, v in meta["feature_sets"].items()
              if k not in ("small", "medium", "all")}
    assert data.feature_groups == {k: v for k, v in groups.items() if v}  # groups cut down to the set


def test_test_rows_without_target_are_dropped(v5_dir: Path) -> None:
    data = load_numerai(v5_dir, "small")
    last_validation_era = LAYOUT.n_train_eras + LAYOUT.n_validation_eras
    assert data.eras.max() == last_validation_era  # the two "test" eras had no target
    assert data.n_rows == last_validation_era * LAYOUT.rows_per_era


@pytest.mark.parametrize("stride", [2, 4])
def test_era_stride_keeps_every_kth_era(v5_dir: Path, stride: int) -> None:
    full = load_numerai(v5_dir, "small")
    data = load_dataset(DataConfig(source="numerai", path=str(v5_dir), feature_set="small", era_stride=stride))
    kept = np.arange(1, LAYOUT.n_train_eras + LAYOUT.n_validation_eras + 1, stride)
    assert np.array_equal(data.unique_eras, kept)  # counted from the first era, across both files
    rows = full.rows(kept)
    assert np.array_equal(data.features, full.features[rows])
    assert np.array_equal(data.targets, full.targets[rows], equal_nan=True)
    assert data.version != full.version
    assert data.default_validation_eras >= 1 and data.default_test_eras >= 1


def test_bad_feature_set_and_stride_name_the_key(v5_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"data.feature_set 'large' is not in .*features.json; sets there: "):
        load_numerai(v5_dir, "large")
    with pytest.raises(ValueError, match=r"data.era_stride must be >= 1, got 0"):
        from_dict(DataConfig, {"source": "numerai", "path": str(v5_dir), "era_stride": 0}, prefix="data.")
    with pytest.raises(ValueError, match=r"data.era_stride=4 applies to data.source=numerai only"):
        from_dict(DataConfig, {"source": "synthetic", "era_stride": 4}, prefix="data.")
    with pytest.raises(ValueError, match="data.era_stride must be >= 1"):
        load_numerai(v5_dir, "small", era_stride=0)


def test_a_feature_out_of_range_in_a_late_row_group_is_named(tmp_path: Path) -> None:
    folder = write_v5_layout(tmp_path, LAYOUT)
    frame = pl.read_parquet(folder / "train.parquet")
    name = frame.columns[5]
    frame = frame.with_columns(pl.when(pl.int_range(pl.len()) == 50).then(9).otherwise(pl.col(name))
                               .cast(pl.Int8).alias(name))
    frame.write_parquet(folder / "train.parquet", row_group_size=20)
    with pytest.raises(ValueError, match=rf"train\.parquet: column {name} must hold integers 0..4"):
        load_numerai(folder, "all")
