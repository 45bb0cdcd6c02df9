"""Numerai's live file: what is read, what is refused (naming the file), and where the rows go."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aiforml.data.live import read_live, with_live_rows

NAMES = ["feature_a", "feature_b", "feature_c"]


def _write(path, n=5, era="X", kinds=None, **columns):
    table = {"id": [f"id{i}" for i in range(n)], "era": era if isinstance(era, list) else [era] * n}
    if kinds is not None:
        table["data_type"] = kinds
    for k, name in enumerate(NAMES):
        table[name] = pa.array(((np.arange(n) + k) % 5).astype(np.int8), type=pa.int8())
    table["target"] = pa.array([None] * n, type=pa.float32())
    table.update(columns)
    pq.write_table(pa.table(table), path)
    return path


def test_reads_ids_era_and_features_in_the_datasets_order(tmp_path):
    live = read_live(_write(tmp_path / "live.parquet", kinds=["live"] * 5), NAMES[::-1])
    assert list(live.ids) == [f"id{i}" for i in range(5)] and live.era is None
    assert live.features.dtype == np.int8 and live.features.shape == (5, 3)
    assert list(live.features[:, 0]) == [2, 3, 4, 0, 1]  # feature_c first, as asked


def test_numeric_era_float_features_and_only_live_rows(tmp_path):
    path = _write(tmp_path / "live.parquet", era="0575", kinds=["live", "live", "validation", "live", "live"],
                  feature_b=pa.array([0.0, np.nan, 4.0, 1.0, 3.0]))
    live = read_live(path, NAMES)
    assert live.era == 575 and list(live.ids) == ["id0", "id1", "id3", "id4"]
    assert list(live.features[:, 1]) == [0, 2, 1, 3]  # NaN reads as 2, as older releases meant


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"feature_b": pa.array([7, 0, 0, 0, 0], type=pa.int8())}, "feature_b must hold integers 0..4"),
    ({"era": ["X", "X", "0001", "X", "X"]}, "one era"),
    ({"id": pa.array(["a", "a", "b", "c", "d"])}, "ids must be unique"),
    ({"era": "live"}, "'X' or a number"),
])
def test_bad_live_files_name_the_file_and_the_problem(tmp_path, kwargs, needle):
    path = _write(tmp_path / "live.parquet", **kwargs)
    with pytest.raises(ValueError, match=needle) as info:
        read_live(path, NAMES)
    assert str(path) in str(info.value)


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "live.parquet"
    pq.write_table(pa.table({"era": ["X"], "feature_a": pa.array([1], type=pa.int8())}), path)
    with pytest.raises(ValueError, match="lacks columns id, feature_b, feature_c"):
        read_live(path, NAMES)
    with pytest.raises(FileNotFoundError, match="no live file"):
        read_live(tmp_path / "nope.parquet", NAMES)


def test_live_rows_follow_every_labelled_era_without_targets_or_ids(small_data, tmp_path):
    names = list(small_data.feature_names)
    table = {"id": [f"r{i}" for i in range(7)], "era": ["X"] * 7}
    table.update({name: pa.array(np.full(7, 3, np.int8), type=pa.int8()) for name in names})
    pq.write_table(pa.table(table), tmp_path / "live.parquet")
    live = read_live(tmp_path / "live.parquet", names)
    data, split = with_live_rows(small_data, live, embargo=4)
    last = int(small_data.eras[-1])
    assert data.n_rows == small_data.n_rows + 7 and data.ids is None
    assert (data.eras[-7:] == last + 1).all() and np.isnan(data.targets[-7:]).all()
    assert (data.features[-7:] == 3).all() and data.version != small_data.version
    assert np.array_equal(split.train, small_data.unique_eras) and len(split.validation) == 0
    assert list(split.test) == [last + 1]
    with pytest.raises(ValueError, match="not after the last labelled era"):
        with_live_rows(small_data, dataclasses.replace(live, era=last), embargo=4)
