"""How hard is a dataset? Reference models fitted in-process, scored per era.

Responsible for: the statistics that calibrate the synthetic presets and that the data
tests assert: validation per-era ``numerai_corr`` mean / std / Sharpe of a LightGBM (the
default program's parameters) and a Ridge, the feature-neutral / plain ratio, and the
inflation of a leaky random-row CV over an honest era-forward CV with embargo.
Not responsible for: scoring generated programs (``aiforml.metrics`` and the pipeline do
that out of process); this is a trusted, in-process yardstick for the data alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from numerai_tools.scoring import feature_neutral_corr, numerai_corr

from aiforml.data.dataset import Dataset, EraSplit


@dataclass(frozen=True)
class ModelSpec:
    """A reference model: LightGBM with the default program's parameters, or Ridge."""

    kind: str = "lgbm"  # "lgbm" or "ridge"
    n_estimators: int = 200
    learning_rate: float = 0.05
    max_depth: int = 5
    num_leaves: int = 31
    colsample_bytree: float = 0.1
    seed: int = 0
    n_jobs: int = 1  # on a busy machine, 2 OpenMP threads ran 10x slower than 1

    def build(self) -> Any:
        if self.kind == "ridge":
            from sklearn.linear_model import Ridge

            return Ridge(alpha=1.0)
        import lightgbm as lgb

        return lgb.LGBMRegressor(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            num_leaves=self.num_leaves,
            colsample_bytree=self.colsample_bytree,
            random_state=self.seed,
            n_jobs=self.n_jobs,
            verbose=-1,
        )


@dataclass(frozen=True)
class EraScores:
    mean: float
    std: float
    sharpe: float
    n_eras: int


def per_era_corr(preds: np.ndarray, target: np.ndarray, eras: np.ndarray) -> np.ndarray:
    """``numerai_corr`` of each era (rows with a NaN target dropped)."""
    out = []
    for era in np.unique(eras):
        m = (eras == era) & np.isfinite(target)
        p = pd.DataFrame({"p": preds[m]})
        out.append(float(numerai_corr(p, pd.Series(target[m], name="target"))["p"]))
    return np.array(out)


def per_era_fn_corr(
    preds: np.ndarray, target: np.ndarray, eras: np.ndarray, features: np.ndarray
) -> np.ndarray:
    """``feature_neutral_corr`` of each era (predictions neutralized to the features)."""
    out = []
    for era in np.unique(eras):
        m = (eras == era) & np.isfinite(target)
        p = pd.DataFrame({"p": preds[m]})
        x = pd.DataFrame(features[m].astype(np.float32))
        y = pd.Series(target[m], name="target")
        out.append(float(feature_neutral_corr(p, x, y)["p"]))
    return np.array(out)


def summarize(scores: np.ndarray) -> EraScores:
    std = float(np.std(scores, ddof=1)) if len(scores) > 1 else float("nan")
    mean = float(np.mean(scores))
    return EraScores(mean=mean, std=std, sharpe=mean / std if std > 0 else float("nan"), n_eras=len(scores))


def fit_predict(
    model: ModelSpec, x: np.ndarray, y: np.ndarray, x_new: np.ndarray
) -> np.ndarray:
    ok = np.isfinite(y)
    return np.asarray(model.build().fit(x[ok], y[ok]).predict(x_new), dtype=np.float64)


def validation_scores(
    dataset: Dataset, split: EraSplit, model: ModelSpec, cols: np.ndarray | None = None,
    neutral: bool = False,
) -> dict[str, Any]:
    """Fit on the train eras, score the validation eras: plain and optionally feature-neutral."""
    cols = np.arange(len(dataset.feature_names)) if cols is None else cols
    train, val = dataset.rows(split.train), dataset.rows(split.validation)
    x = dataset.features[:, cols]
    y = dataset.targets[:, 0]
    preds = fit_predict(model, x[train], y[train], x[val])
    plain = per_era_corr(preds, y[val], dataset.eras[val])
    out: dict[str, Any] = {"validation": asdict(summarize(plain)), "per_era": plain}
    if neutral:
        fn = per_era_fn_corr(preds, y[val], dataset.eras[val], x[val])
        out["feature_neutral"] = asdict(summarize(fn))
        out["fn_ratio"] = float(np.mean(fn) / np.mean(plain))
    return out


def forward_folds(eras: np.ndarray, folds: int, embargo: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Era-forward CV (the default program's): train on eras before each block, minus embargo."""
    unique = np.unique(eras)
    blocks = np.array_split(unique, folds + 1)
    out = []
    for block in blocks[1:]:
        train_eras = unique[unique < block.min() - embargo]
        out.append((np.flatnonzero(np.isin(eras, train_eras)), np.flatnonzero(np.isin(eras, block))))
    return out


def random_folds(n: int, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leaky CV: rows shuffled into folds regardless of era."""
    from sklearn.model_selection import KFold

    return list(KFold(folds, shuffle=True, random_state=seed).split(np.arange(n)))


def cv_mean_corr(
    dataset: Dataset, train_eras: np.ndarray, model: ModelSpec, folds: list, cols: np.ndarray
) -> float:
    """Mean per-era corr over all test folds of a CV on the training rows."""
    rows = dataset.rows(train_eras)
    x, y, eras = dataset.features[rows][:, cols], dataset.targets[rows, 0], dataset.eras[rows]
    scores = []
    for tr, te in folds:
        preds = fit_predict(model, x[tr], y[tr], x[te])
        scores.append(per_era_corr(preds, y[te], eras[te]))
    return float(np.mean(np.concatenate(scores)))


def leaky_cv_inflation(
    dataset: Dataset, split: EraSplit, model: ModelSpec, cols: np.ndarray | None = None,
    folds: int = 3,
) -> dict[str, float]:
    """Mean corr of random-row KFold vs era-forward CV (with the split's embargo)."""
    cols = np.arange(len(dataset.feature_names)) if cols is None else cols
    rows = dataset.rows(split.train)
    eras = dataset.eras[rows]
    honest = cv_mean_corr(dataset, split.train, model, forward_folds(eras, folds, split.embargo), cols)
    leaky = cv_mean_corr(dataset, split.train, model, random_folds(len(eras), folds, model.seed), cols)
    return {"honest_cv": honest, "leaky_cv": leaky, "inflation": leaky / honest if honest else float("nan")}
