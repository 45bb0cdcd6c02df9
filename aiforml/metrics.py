"""Trusted scores of predictions: per-era Numerai correlation, Sharpe, drawdown, uniqueness.

Responsible for turning plain arrays (predictions, the official target, eras, features)
into the statistics the reward and the reports use. Per-era correlation and the
feature-neutral correlation are numerai-tools' own functions, called era by era; Sharpe,
drawdown and the rank correlation with a baseline are a few lines of numpy written here.

Not responsible for producing predictions or deciding what a score is worth (see
``aiforml.reward``). No I/O, no config.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numerai_tools.scoring import feature_neutral_corr, numerai_corr
from threadpoolctl import threadpool_limits

from aiforml.program import SplitMetrics


def _era_slices(eras: np.ndarray) -> list[tuple[int, slice]]:
    """(era, slice) for each run of equal eras; ``eras`` must be sorted ascending."""
    if len(eras) == 0:
        return []
    if np.any(np.diff(eras) < 0):
        raise ValueError("eras must be sorted ascending")
    starts = np.flatnonzero(np.r_[True, eras[1:] != eras[:-1]])
    ends = np.r_[starts[1:], len(eras)]
    return [(int(eras[s]), slice(int(s), int(e))) for s, e in zip(starts, ends, strict=True)]


def per_era_corr(predictions: np.ndarray, target: np.ndarray, eras: np.ndarray) -> np.ndarray:
    """Numerai correlation (``numerai_tools.scoring.numerai_corr``) of each era.

    Rows whose target is NaN are left out. An era whose predictions are constant scores NaN.
    """
    scores = []
    for _, rows in _era_slices(eras):
        p, t = predictions[rows], target[rows]
        keep = np.isfinite(t)
        p, t = p[keep], t[keep]
        if len(p) < 2 or np.ptp(p) == 0 or np.ptp(t) == 0:
            scores.append(np.nan)
            continue
        frame = pd.DataFrame({"prediction": p})
        scores.append(float(numerai_corr(frame, pd.Series(t, name="target")).iloc[0]))
    return np.asarray(scores, dtype=np.float64)


def per_era_feature_neutral_corr(
    predictions: np.ndarray, features: np.ndarray, target: np.ndarray, eras: np.ndarray
) -> np.ndarray:
    """numerai-tools' feature-neutral correlation of each era.

    BLAS is held to one thread: the per-era least squares are small, and multi-threaded
    OpenBLAS on a busy 2-core machine was measured 30x slower than one thread.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _feature_neutral_corr(predictions, features, target, eras)


def _feature_neutral_corr(predictions: np.ndarray, features: np.ndarray, target: np.ndarray,
                          eras: np.ndarray) -> np.ndarray:
    scores = []
    for _, rows in _era_slices(eras):
        p, t, f = predictions[rows], target[rows], features[rows].astype(np.float64)
        keep = np.isfinite(t)
        p, t, f = p[keep], t[keep], f[keep]
        if len(p) < 2 or np.ptp(p) == 0:
            scores.append(np.nan)
            continue
        frame = pd.DataFrame({"prediction": p})
        score = feature_neutral_corr(frame, pd.DataFrame(f), pd.Series(t, name="target"))
        scores.append(float(score.iloc[0]))
    return np.asarray(scores, dtype=np.float64)


def per_era_rank_corr(a: np.ndarray, b: np.ndarray, eras: np.ndarray) -> np.ndarray:
    """Spearman correlation between two prediction vectors within each era."""
    scores = []
    for _, rows in _era_slices(eras):
        ra = pd.Series(a[rows]).rank().to_numpy()
        rb = pd.Series(b[rows]).rank().to_numpy()
        if np.ptp(ra) == 0 or np.ptp(rb) == 0:
            scores.append(np.nan)
            continue
        scores.append(float(np.corrcoef(ra, rb)[0, 1]))
    return np.asarray(scores, dtype=np.float64)


def sharpe(scores: np.ndarray) -> float:
    """Mean over standard deviation (ddof=1) of per-era scores; NaN with fewer than 2 eras."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) < 2:
        return float("nan")
    std = scores.std(ddof=1)
    return float(scores.mean() / std) if std > 0 else float("nan")


def max_drawdown(scores: np.ndarray) -> float:
    """Largest fall of the cumulative per-era score from its running peak (>= 0).

    The cumulative curve starts at 0 before the first era, so a first losing era counts.
    """
    cumulative = np.r_[0.0, np.cumsum(np.asarray(scores, dtype=np.float64))]
    return float(np.max(np.maximum.accumulate(cumulative) - cumulative))


def _finite_or_none(x: float) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def score_split(
    predictions: np.ndarray,
    target: np.ndarray,
    eras: np.ndarray,
    features: np.ndarray | None = None,
    baseline: np.ndarray | None = None,
) -> SplitMetrics:
    """All statistics of one split. Non-finite aggregates become None (JSON/MCP-safe)."""
    corr = per_era_corr(predictions, target, eras)
    valid = corr[np.isfinite(corr)]
    metrics = SplitMetrics(
        mean_corr=_finite_or_none(valid.mean()) if len(valid) else None,
        std_corr=_finite_or_none(valid.std(ddof=1)) if len(valid) > 1 else None,
        sharpe=_finite_or_none(sharpe(valid)),
        max_drawdown=_finite_or_none(max_drawdown(valid)) if len(valid) else None,
        n_eras=int(len(valid)),
        per_era_corr=[round(float(c), 6) if np.isfinite(c) else None for c in corr],
    )
    if features is not None:
        fnc = per_era_feature_neutral_corr(predictions, features, target, eras)
        metrics.feature_neutral_corr = _finite_or_none(np.nanmean(fnc)) if np.isfinite(fnc).any() else None
    if baseline is not None:
        rc = per_era_rank_corr(predictions, baseline, eras)
        metrics.baseline_corr = _finite_or_none(np.nanmean(rc)) if np.isfinite(rc).any() else None
    return metrics
