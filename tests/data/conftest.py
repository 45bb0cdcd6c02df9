"""Shared fixtures of the data tests: a small synthetic spec and a session-wide cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

from aiforml.config import DataConfig, SyntheticConfig
from aiforml.data import Dataset, load_dataset

SMALL = SyntheticConfig(n_eras=60, rows_per_era=200, n_features=30)


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread() -> Iterator[None]:
    """On a busy 2-core machine, 2 BLAS threads made small lstsq calls 30x slower."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("aiforml-cache")


@pytest.fixture(scope="session")
def small_cfg(data_cache: Path) -> DataConfig:
    return DataConfig(synthetic=SMALL, cache_dir=str(data_cache), validation_eras=10, test_eras=10)


@pytest.fixture(scope="session")
def small_data(small_cfg: DataConfig) -> Dataset:
    return load_dataset(small_cfg)


@pytest.fixture(scope="session")
def fast_cfg(data_cache: Path) -> DataConfig:
    return DataConfig(cache_dir=str(data_cache))


@pytest.fixture(scope="session")
def fast_data(fast_cfg: DataConfig) -> Dataset:
    return load_dataset(fast_cfg)
