"""A new data source is one loader registered in ``aiforml.data.SOURCES`` (docs/extending.md's
worked example: Numerai-style rows from a CSV file)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aiforml.config import DataConfig
from aiforml.data import SOURCES, Dataset, load_dataset, split_dataset


def load_csv_eras(cfg: DataConfig) -> Dataset:
    """A CSV with an ``era`` column, int feature_* columns 0..4 and a ``target`` column."""
    frame = pd.read_csv(cfg.path).sort_values("era", kind="stable")
    features = [c for c in frame.columns if c.startswith("feature_")]
    n_eras = frame["era"].nunique()
    return Dataset(
        eras=frame["era"].to_numpy(np.int32),
        features=np.ascontiguousarray(frame[features].to_numpy(np.int8)),
        targets=frame[["target"]].to_numpy(np.float32),
        feature_names=tuple(features), target_names=("target",),
        feature_sets={"small": tuple(features), "medium": tuple(features), "all": tuple(features)},
        feature_groups={}, version=f"csv-{len(frame)}", name="csv",
        default_validation_eras=n_eras // 5, default_test_eras=n_eras // 5,
    )


@pytest.fixture
def csv_source():
    SOURCES["csv_eras"] = load_csv_eras
    yield "csv_eras"
    del SOURCES["csv_eras"]


def test_a_registered_source_loads_through_the_config(csv_source, tmp_path) -> None:
    rng = np.random.default_rng(0)
    n = 40 * 25
    frame = pd.DataFrame({"era": np.repeat(np.arange(1, 41), 25),
                          **{f"feature_{k}": rng.integers(0, 5, n) for k in range(6)},
                          "target": rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], n)})
    frame.to_csv(tmp_path / "eras.csv", index=False)
    cfg = DataConfig(source=csv_source, path=str(tmp_path / "eras.csv"))
    dataset = load_dataset(cfg)
    assert dataset.n_rows == n and dataset.features.dtype == np.int8 and dataset.task == "numerai"
    split = split_dataset(dataset, cfg)
    assert (len(split.validation), len(split.test)) == (8, 8)


def test_an_unknown_source_fails_naming_the_key() -> None:
    with pytest.raises(ValueError, match=r"data.source=csv_eras: no such data source; sources are \["):
        load_dataset(DataConfig(source="csv_eras"))
