"""Numerai-format parquet: round trip, column selection, dtypes, and errors that say where."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aiforml.config import DataConfig
from aiforml.data import load_dataset, load_numerai, split_dataset

FEATURES = [f"feature_{g}{i}" for g in ("intelligence", "charisma") for i in range(1, 4)]


def _write(path: Path, eras: list[int], rng: np.random.Generator, data_type: str | None = None,
           drop: tuple[str, ...] = ()) -> dict:
    n_per = 20
    era = np.repeat(eras, n_per)
    cols: dict = {"id": [f"n{i:08x}" for i in range(len(era))], "era": [f"{e:04d}" for e in era]}
    if data_type:
        cols["data_type"] = [data_type] * len(era)
    for f in FEATURES:
        cols[f] = pa.array(rng.integers(0, 5, len(era)).astype(np.int8), type=pa.int8())
    cols["target"] = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], len(era)).astype(np.float32)
    cols["target_alpha_60"] = np.where(era < eras[0] + 2, np.nan, 0.5).astype(np.float32)
    for c in drop:
        cols.pop(c)
    pq.write_table(pa.table(cols), path)
    return cols


@pytest.fixture()
def numerai_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    _write(tmp_path / "train.parquet", list(range(1, 31)), rng, "train")
    _write(tmp_path / "validation.parquet", list(range(31, 51)), rng, "validation")
    meta = {
        "feature_sets": {
            "small": FEATURES[:2], "medium": FEATURES[:4], "all": FEATURES,
            "intelligence": FEATURES[:3], "charisma": FEATURES[3:],
        },
        "targets": ["target", "target_alpha_60"],
    }
    (tmp_path / "features.json").write_text(json.dumps(meta))
    return tmp_path


def test_round_trip(numerai_dir: Path) -> None:
    data = load_numerai(numerai_dir)
    table = pq.read_table(numerai_dir / "train.parquet")
    assert data.feature_names == tuple(FEATURES)
    assert data.target_names == ("target", "target_alpha_60")
    assert data.features.dtype == np.int8 and data.features.flags.c_contiguous
    assert data.eras.dtype == np.int32 and data.eras[0] == 1 and data.eras[-1] == 50
    n_train = table.num_rows
    assert np.array_equal(data.features[:n_train, 0], table.column(FEATURES[0]).to_numpy())
    assert np.array_equal(data.targets[:n_train, 0], table.column("target").to_numpy())
    assert np.isnan(data.targets[:, 1]).any()
    assert data.feature_groups == {"intelligence": tuple(FEATURES[:3]), "charisma": tuple(FEATURES[3:])}
    assert set(data.feature_sets) == {"small", "medium", "all"}
    split = split_dataset(data, DataConfig(source="numerai", path=str(numerai_dir)))
    assert split.validation[0] == 31  # validation starts where validation.parquet does
    assert split.train[-1] == 26 and split.test[-1] == 50


def test_feature_set_reads_only_its_columns(numerai_dir: Path) -> None:
    data = load_dataset(DataConfig(source="numerai", path=str(numerai_dir), feature_set="small"))
    assert data.feature_names == tuple(FEATURES[:2])
    assert data.features.shape == (50 * 20, 2)
    assert data.version != load_numerai(numerai_dir).version


def test_single_file_with_float_features_and_int_eras(tmp_path: Path) -> None:
    era = np.repeat(np.arange(10), 5)
    feat = np.where(era == 0, np.nan, era % 5).astype(np.float32)
    pq.write_table(pa.table({"era": era, "feature_a": feat, "target": np.full(len(era), 0.5)}), tmp_path / "d.parquet")
    data = load_numerai(tmp_path / "d.parquet")
    assert data.features.dtype == np.int8 and data.features[0, 0] == 2
    assert data.default_validation_eras >= 1 and data.default_test_eras >= 1


def test_unknown_target_rows_are_dropped(tmp_path: Path) -> None:
    era = np.repeat(np.arange(10), 5)
    target = np.where(era == 9, np.nan, 0.5)
    pq.write_table(pa.table({"era": era, "feature_a": np.ones(len(era), np.int8), "target": target}), tmp_path / "d.parquet")
    assert load_numerai(tmp_path / "d.parquet").eras.max() == 8


def test_missing_columns_name_the_file(tmp_path: Path) -> None:
    _write(tmp_path / "train.parquet", [1, 2], np.random.default_rng(0), drop=("target",))
    with pytest.raises(ValueError, match=r"train\.parquet.*missing columns target"):
        load_numerai(tmp_path)


def test_validation_file_missing_a_feature(numerai_dir: Path) -> None:
    _write(numerai_dir / "validation.parquet", [31, 32], np.random.default_rng(1), drop=(FEATURES[5],))
    with pytest.raises(ValueError, match=rf"validation\.parquet lacks columns \['{FEATURES[5]}'\]"):
        load_numerai(numerai_dir)


def test_unknown_feature_set(numerai_dir: Path) -> None:
    with pytest.raises(ValueError, match="'huge' is not in .*features.json"):
        load_numerai(numerai_dir, "huge")


def test_missing_path_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="looked for .*train.parquet"):
        load_numerai(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_numerai(tmp_path / "nowhere")


def test_out_of_range_values_are_rejected(tmp_path: Path) -> None:
    pq.write_table(pa.table({"era": [1, 1], "feature_a": np.array([0, 7], np.int8), "target": [0.5, 0.5]}), tmp_path / "d.parquet")
    with pytest.raises(ValueError, match="feature_a must hold integers 0..4"):
        load_numerai(tmp_path / "d.parquet")


def test_unsorted_rows_are_sorted_by_era(tmp_path: Path) -> None:
    era = np.repeat(np.arange(10)[::-1], 5)
    feat = (era % 5).astype(np.int8)
    pq.write_table(pa.table({"era": era, "feature_a": feat, "target": era / 10.0}), tmp_path / "d.parquet")
    data = load_numerai(tmp_path / "d.parquet")
    assert np.all(np.diff(data.eras) >= 0)
    assert np.array_equal(data.features[:, 0], data.eras % 5)  # rows moved together
    assert np.allclose(data.targets[:, 0], data.eras / 10.0)
