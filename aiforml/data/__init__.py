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

from aiforml.config import DataConfig
from aiforml.data.cache import cache_path, load_cached, save_dataset
from aiforml.data.dataset import Dataset, EraSplit, split_dataset, split_eras
from aiforml.data.numerai import load_numerai
from aiforml.data.presets import PRESETS, SyntheticSpec, resolve_spec
from aiforml.data.price_synthetic import generate_prices
from aiforml.data.prices import PriceData, load_prices, load_sp500
from aiforml.data.secret import load_secret, secret_path
from aiforml.data.synthetic import generate, synthetic_version

__all__ = [
    "PRESETS",
    "Dataset",
    "EraSplit",
    "PriceData",
    "SyntheticSpec",
    "load_dataset",
    "load_numerai",
    "load_synthetic",
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


def load_dataset(cfg: DataConfig) -> Dataset | PriceData:
    """The dataset ``cfg`` names, restricted to ``cfg.feature_set`` (price data: all columns)."""
    if cfg.source == "sp500":
        return load_sp500(cfg.horizon)
    if cfg.source == "prices":
        return load_prices(cfg.path or "", cfg.horizon)
    if cfg.source == "synthetic_prices":
        return generate_prices(cfg.prices, cfg.horizon, load_secret(secret_path(cfg.cache_dir)))
    if cfg.source == "numerai":
        if not cfg.path:
            raise ValueError("data.path is required when data.source is numerai")
        return load_numerai(cfg.path, cfg.feature_set, cfg.era_stride)
    dataset = load_synthetic(cfg)
    if cfg.feature_set != "all":
        try:
            dataset = dataset.select_features(cfg.feature_set)
        except KeyError as exc:
            raise ValueError(f"data.feature_set: {exc.args[0]}") from exc
    return dataset
