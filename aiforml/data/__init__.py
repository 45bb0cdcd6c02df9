"""The data layer: tournament data as a ``Dataset``, and era splits with embargo.

    from aiforml.data import load_dataset, split_dataset
    data = load_dataset(cfg.data)          # synthetic (generated once, cached), Numerai parquet, or prices
    split = split_dataset(data, cfg.data)  # train | embargo | validation | embargo | sealed test
    data.describe(split)                   # the schema as plain data, for prompts and tools

Generated data (synthetic, synthetic_prices) also needs the installation's data secret
(``secret.py``), read or created beside the cache: the seed alone does not rebuild it.

Responsible for: choosing the source from ``DataConfig`` (price sources give a
``PriceData``, cut by time the same way: periods are its eras), the synthetic cache, and
the feature-set selection. Not responsible for: scoring, sandboxing or prompts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from aiforml.config import DataConfig
from aiforml.data.cache import cache_path, load_cached, save_dataset
from aiforml.data.dataset import Dataset, EraSplit, split_eras
from aiforml.data.numerai import load_numerai
from aiforml.data.presets import PRESETS, SyntheticSpec, resolve_spec
from aiforml.data.price_synthetic import generate_prices
from aiforml.data.prices import PriceData, load_prices, load_sp500
from aiforml.data.secret import load_secret, secret_path
from aiforml.data.synthetic import generate, synthetic_version
from aiforml.data.targets import check_main_target

__all__ = [
    "PRESETS",
    "Dataset",
    "EraSplit",
    "SOURCES",
    "PriceData",
    "SyntheticSpec",
    "load_dataset",
    "load_numerai",
    "load_synthetic",
    "check_source",
    "split_dataset",
    "split_eras",
]

log = logging.getLogger(__name__)


def load_synthetic(cfg: DataConfig) -> Dataset:
    """The synthetic dataset of ``cfg.synthetic``: from the cache, else generated and cached."""
    spec = resolve_spec(cfg.synthetic)
    secret = load_secret(secret_path(cfg.cache_dir))
    version = synthetic_version(spec, cfg.synthetic.seed, secret)
    path = cache_path(cfg.cache_dir, f"synthetic-{spec.preset}", version)
    dataset = load_cached(path)
    if dataset is None:
        start = time.perf_counter()
        dataset = generate(spec, cfg.synthetic.seed, secret)
        save_dataset(dataset, path)
        log.info("generated %s in %.1f s, cached at %s", dataset.name, time.perf_counter() - start, path)
    return dataset


def split_dataset(dataset: Dataset | PriceData, cfg: DataConfig) -> EraSplit:
    """Train / validation / sealed test by era order, sizes from ``cfg`` or the dataset.

    ValueError when ``cfg.embargo_eras`` is shorter than the main target's horizon.
    """
    check_main_target(dataset, cfg.embargo_eras)
    n_val = cfg.validation_eras if cfg.validation_eras is not None else dataset.default_validation_eras
    n_test = cfg.test_eras if cfg.test_eras is not None else dataset.default_test_eras
    return split_eras(dataset.eras, n_val, n_test, cfg.embargo_eras)


def _numerai(cfg: DataConfig) -> Dataset:
    if not cfg.path:
        raise ValueError("data.path is required when data.source is numerai")
    return load_numerai(cfg.path, cfg.feature_set, cfg.era_stride)


def _synthetic(cfg: DataConfig) -> Dataset:
    dataset = load_synthetic(cfg)
    if cfg.feature_set != "all":
        try:
            dataset = dataset.select_features(cfg.feature_set)
        except KeyError as exc:
            raise ValueError(f"data.feature_set: {exc.args[0]}") from exc
    return dataset


# data.source -> loader: a Dataset (tournament eras) or a PriceData (trading). A new source is
# one loader registered here (docs/extending.md); config keys it needs go into DataConfig.
SOURCES: dict[str, Callable[[DataConfig], Dataset | PriceData]] = {
    "synthetic": _synthetic,
    "numerai": _numerai,
    "sp500": lambda cfg: load_sp500(cfg.horizon),
    "prices": lambda cfg: load_prices(cfg.path or "", cfg.horizon),
    "synthetic_prices": lambda cfg: generate_prices(cfg.prices, cfg.horizon, load_secret(secret_path(cfg.cache_dir))),
}


def check_source(name: str) -> str:
    """``name`` when a loader of that name is registered; ValueError naming ``data.source`` otherwise."""
    if name not in SOURCES:
        raise ValueError(f"data.source={name}: no such data source; sources are {sorted(SOURCES)} "
                         "(a new one is a loader registered in SOURCES, aiforml/data/__init__.py)")
    return name


def load_dataset(cfg: DataConfig) -> Dataset | PriceData:
    """The dataset ``cfg`` names, restricted to ``cfg.feature_set`` (price data: all columns)."""
    dataset = SOURCES[check_source(cfg.source)](cfg)
    return with_task(dataset, cfg) if isinstance(dataset, Dataset) else dataset


def with_task(dataset: Dataset, cfg: DataConfig) -> Dataset:
    """The dataset marked with the task ``data.task`` names (auto: its own, numerai)."""
    return dataset if cfg.task in ("auto", dataset.task) else replace(dataset, task=cfg.task)
