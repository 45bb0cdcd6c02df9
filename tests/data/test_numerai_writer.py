"""A Dataset written as a v5 folder reads back through the Numerai loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aiforml.data import Dataset, load_numerai
from aiforml.data.numerai_writer import write_numerai_folder


def test_round_trip_through_the_loader(small_data: Dataset, tmp_path: Path) -> None:
    out = write_numerai_folder(small_data, tmp_path / "v5", validation_eras=10)
    live = pd.read_parquet(out / "live.parquet")
    last = small_data.unique_eras[-1]
    assert set(live["era"]) == {"X"} and set(live["data_type"]) == {"live"} and live["target"].isna().all()
    assert len(live) == int((small_data.eras == last).sum()) and live.index.name == "id"
    back = load_numerai(out, "all")  # the live era has no target: dropped by the loader
    keep = small_data.eras != last
    np.testing.assert_array_equal(back.eras, small_data.eras[keep])
    np.testing.assert_array_equal(back.features, small_data.features[keep])
    np.testing.assert_allclose(back.targets, small_data.targets[keep], equal_nan=True)
    assert back.target_names == small_data.target_names
    assert back.feature_sets["small"] == small_data.feature_sets["small"]
    validation = pd.read_parquet(out / "validation.parquet")
    assert validation["era"].nunique() == 10 and set(validation["data_type"]) == {"validation"}


def test_too_few_eras_is_refused(small_data: Dataset, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too few"):
        write_numerai_folder(small_data, tmp_path / "v5", validation_eras=len(small_data.unique_eras))
