"""The fast preset's planted signal: strong enough to rank pipelines, leaky CV inflates.

Bands are wide on purpose (they hold across generator seeds 0-3 measured with
benchmarks/calibrate_synthetic.py); each can still fail if the generator loses its signal,
its non-linearity, its risk removal or its era structure.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from aiforml.config import DataConfig
from aiforml.data import Dataset, split_dataset
from aiforml.data.calibration import (
    ModelSpec,
    fit_predict,
    leaky_cv_inflation,
    per_era_corr,
    per_era_fn_corr,
    summarize,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fitted(fast_data: Dataset, fast_cfg: DataConfig) -> dict[str, Any]:
    split = split_dataset(fast_data, fast_cfg)
    train, val = fast_data.rows(split.train), fast_data.rows(split.validation)
    x, y, eras = fast_data.features, fast_data.targets[:, 0], fast_data.eras
    out: dict[str, Any] = {"split": split}
    for name, model in {"lgbm": ModelSpec(), "lgbm_seed1": ModelSpec(seed=1), "ridge": ModelSpec(kind="ridge")}.items():
        preds = fit_predict(model, x[train], y[train], x[val])
        out[name] = summarize(per_era_corr(preds, y[val], eras[val]))
        out[f"{name}_preds"] = preds
    return out


def test_lgbm_validation_corr_in_band(fitted: dict[str, Any]) -> None:
    lgbm = fitted["lgbm"]
    assert 0.04 < lgbm.mean < 0.2, lgbm  # stronger than real data, below the leakage band
    assert lgbm.sharpe > 1.0, lgbm


def test_trees_beat_linear_by_more_than_model_seed_noise(fitted: dict[str, Any]) -> None:
    lgbm, other_seed, ridge = fitted["lgbm"], fitted["lgbm_seed1"], fitted["ridge"]
    assert lgbm.mean > ridge.mean + 0.02
    assert lgbm.sharpe - ridge.sharpe > 2 * abs(lgbm.sharpe - other_seed.sharpe)


def test_trees_keep_signal_after_feature_neutralization(fast_data: Dataset, fitted: dict[str, Any]) -> None:
    """Planted non-linear terms survive neutralization; a linear model's signal does not."""
    val = fast_data.rows(fitted["split"].validation)
    first = np.isin(fast_data.eras[val], fitted["split"].validation[:20])
    y, eras, x = fast_data.targets[val, 0][first], fast_data.eras[val][first], fast_data.features[val][first]
    lgbm = fitted["lgbm_preds"][first]
    ratio = per_era_fn_corr(lgbm, y, eras, x).mean() / per_era_corr(lgbm, y, eras).mean()
    assert ratio > 0.4
    assert abs(per_era_fn_corr(fitted["ridge_preds"][first], y, eras, x).mean()) < 0.01


def test_random_row_cv_is_inflated_over_era_forward_cv(fast_data: Dataset, fitted: dict[str, Any]) -> None:
    quick = ModelSpec(n_estimators=60, learning_rate=0.1)
    cv = leaky_cv_inflation(fast_data, fitted["split"], quick, folds=2)
    assert cv["honest_cv"] > 0.01
    assert cv["inflation"] > 1.3, cv
