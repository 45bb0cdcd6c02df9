"""Per-era cross-sectional transforms: quantizing features and targets, residualizing.

Responsible for: the pure maths that turn one era's continuous values into Numerai's
discrete form (features in equal fifths 0..4, targets in {0, .25, .5, .75, 1} at
5/20/50/20/5 %) and the per-era regression that removes risk exposures from returns.
Not responsible for: which values go in (``market.py``) or assembling a dataset.
"""

from __future__ import annotations

import numpy as np

TARGET_SHARES = (0.05, 0.20, 0.50, 0.20, 0.05)


def ranks01(x: np.ndarray) -> np.ndarray:
    """Ranks along axis 0 mapped to [0, 1): the r-th smallest of n rows gets r / n."""
    n = x.shape[0]
    if x.ndim == 1:
        ranks = np.empty(n, dtype=np.int64)
        ranks[np.argsort(x)] = np.arange(n)
        return ranks / n
    cols = np.ascontiguousarray(x.T)  # sort contiguous rows: much faster than axis 0
    order = np.argsort(cols, axis=1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(n)[None, :], axis=1)
    return ranks.T / n


def quantize_features(x: np.ndarray) -> np.ndarray:
    """(n, f) continuous -> int8 0..4 in equal fifths of each column."""
    return np.minimum((ranks01(x) * 5).astype(np.int8), 4)


def quantize_target(y: np.ndarray) -> np.ndarray:
    """(n,) continuous -> float32 in {0, .25, .5, .75, 1} at 5/20/50/20/5 % (NaN stays NaN)."""
    out = np.full(y.shape, np.nan, dtype=np.float32)
    ok = np.isfinite(y)
    if not ok.any():
        return out
    edges = np.cumsum(TARGET_SHARES)[:-1]  # 0.05, 0.25, 0.75, 0.95
    bins = np.searchsorted(edges, ranks01(y[ok]) + 0.5 / ok.sum(), side="right")
    out[ok] = bins.astype(np.float32) / 4.0
    return out


def residualize(y: np.ndarray, exposures: np.ndarray) -> np.ndarray:
    """Residual of ``y`` (n,) or (n, h) after least squares on [1, exposures] (n, m)."""
    design = np.column_stack([np.ones(len(exposures)), exposures])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return y - design @ coef
