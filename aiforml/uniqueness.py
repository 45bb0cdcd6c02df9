"""Pure maths of being different: per-era correlation between prediction vectors, a meta
model, contributions beyond it or beyond the default program, and behavioural clusters.

Responsible for, on plain arrays of one split's predictions (rows sorted by era):
- ``per_era_rank_corr_many``: Spearman correlation of one vector with many, era by era,
  all at once (ranks computed once, segment sums over eras);
- ``meta_model``: the equal-weight mean of the members' gaussianized per-era ranks (how
  Numerai builds its meta model from many submissions, with equal stakes);
- ``per_era_contribution``: numerai-tools' ``correlation_contribution`` (MMC) of each
  era, vectorized over eras the same way ``aiforml.metrics`` vectorizes ``numerai_corr``
  (numerai-tools scores one era per call; the tests hold both equal era by era);
- ``baseline_contribution``: the mean per-era contribution beyond the default program's
  predictions (Numerai's BMC with the default as the benchmark): what being different
  from the default adds to predicting the target;
- ``greedy_clusters``: behavioural clusters of programs by prediction correlation.
Not responsible for which programs form the meta model or the reference set, nor for
I/O or config (``aiforml.reference``, ``aiforml.diversity``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm


@dataclass(frozen=True)
class EraIndex:
    """Row layout of one split: each era's first row and row count; rows sorted by era."""

    starts: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_eras(cls, eras: np.ndarray) -> EraIndex:
        eras = np.asarray(eras)
        if len(eras) == 0:
            raise ValueError("a split needs at least one row")
        if np.any(np.diff(eras) < 0):
            raise ValueError("eras must be sorted ascending")
        starts = np.flatnonzero(np.r_[True, eras[1:] != eras[:-1]])
        return cls(starts=starts, counts=np.diff(np.r_[starts, len(eras)]))

    @property
    def group(self) -> np.ndarray:
        """The era position (0..n_eras-1) of every row."""
        return np.repeat(np.arange(len(self.starts)), self.counts)

    def era_sums(self, values: np.ndarray) -> np.ndarray:
        """Per-era sums along the last axis."""
        return np.add.reduceat(values, self.starts, axis=-1)

    def centre(self, values: np.ndarray) -> np.ndarray:
        """``values`` minus their era mean, along the last axis."""
        return values - (self.era_sums(values) / self.counts)[..., self.group]


def era_ranks(values: np.ndarray, index: EraIndex) -> np.ndarray:
    """Average-tie ranks (1..n) within each era."""
    return pd.Series(np.asarray(values, dtype=np.float64)).groupby(index.group).rank(method="average").to_numpy()


def gaussian_ranks(values: np.ndarray, index: EraIndex) -> np.ndarray:
    """Per era: tie-kept percentile rank centred on 0.5, then the normal quantile (numerai-tools)."""
    return norm.ppf((era_ranks(values, index) - 0.5) / index.counts[index.group])


def unit_era_ranks(values: np.ndarray, index: EraIndex) -> np.ndarray:
    """Era-centred ranks scaled to unit norm within each era (0 where an era is constant)."""
    centred = index.centre(era_ranks(values, index))
    norms = np.sqrt(index.era_sums(centred * centred))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms[index.group] > 1e-12, centred / norms[index.group], np.nan)


def per_era_rank_corr_many(a: np.ndarray, refs: list[np.ndarray], index: EraIndex) -> np.ndarray:
    """Spearman corr of ``a`` with each of ``refs`` per era: shape (len(refs), n_eras).

    Equals ``aiforml.metrics.per_era_rank_corr`` for each reference; NaN where either side
    is constant within an era.
    """
    if not refs:
        return np.empty((0, len(index.starts)))
    ua = unit_era_ranks(a, index)
    ur = np.stack([unit_era_ranks(r, index) for r in refs])
    return index.era_sums(ur * ua)


def finite_mean(per_era: np.ndarray) -> np.ndarray:
    """Mean over finite eras (last axis); NaN where none is finite."""
    finite = np.isfinite(per_era)
    with np.errstate(invalid="ignore"):
        return np.where(finite.any(axis=-1), np.nansum(np.where(finite, per_era, 0), axis=-1)
                        / np.maximum(finite.sum(axis=-1), 1), np.nan)


def meta_model(members: list[np.ndarray], index: EraIndex) -> np.ndarray:
    """The equal-weight mean of the members' gaussianized per-era ranks."""
    if not members:
        raise ValueError("a meta model needs at least one member")
    return np.mean([gaussian_ranks(m, index) for m in members], axis=0)


def per_era_contribution(predictions: np.ndarray, meta: np.ndarray, target: np.ndarray,
                         eras: np.ndarray) -> np.ndarray:
    """numerai-tools' ``correlation_contribution`` of each era, all eras at once.

    Per era, on rows with a finite target: gaussianized tie-kept ranks of the predictions
    and of the meta model, the predictions orthogonalized to the meta model, dotted with
    the era-centred target (times 4 when it lies in [0, 1]) over the row count. NaN for an
    era whose meta model is constant.
    """
    keep = np.isfinite(target)
    p, m, t = (np.asarray(x, dtype=np.float64)[keep] for x in (predictions, meta, target))
    out = np.full(len(EraIndex.from_eras(eras).starts), np.nan)
    if not keep.any():
        return out
    index = EraIndex.from_eras(np.asarray(eras)[keep])
    gp, gm = gaussian_ranks(p, index), gaussian_ranks(m, index)
    with np.errstate(invalid="ignore", divide="ignore"):
        coef = index.era_sums(gp * gm) / index.era_sums(gm * gm)
        neutral = gp - gm * coef[index.group]
        in_unit = (index.era_sums(((t < 0) | (t > 1)).astype(float)) == 0)[index.group]
        t = np.where(in_unit, t * 4, t)
        t = index.centre(t)
        values = index.era_sums(t * neutral) / index.counts
    kept_eras = np.unique(np.asarray(eras)[keep])
    positions = np.searchsorted(np.unique(eras), kept_eras)
    out[positions] = values
    return out


def baseline_contribution(predictions: np.ndarray, baseline: np.ndarray, target: np.ndarray,
                          eras: np.ndarray) -> float | None:
    """Mean per-era contribution of ``predictions`` beyond ``baseline`` (Numerai's BMC with the
    default program as the benchmark); None when no era is defined.

    Per era, the predictions' gaussianized ranks orthogonalized to the baseline's, dotted
    with the centred target (``per_era_contribution``). Why this and not distance from the
    baseline (``1 - |corr|``, which random numbers maximize) or that distance gated by the
    program's own corr being positive (which pays a full term for a lucky +0.001 corr and
    nothing to a program that adds information while scoring below the default on its
    own): the contribution is the part of a program that the default lacks *and* that
    predicts the target. It is zero for a copy of the default, zero in expectation for
    noise, negative for a program that is wrong in its own way, and grows only with being
    right differently. Numerai pays MMC and BMC for the same reason.
    """
    value = float(finite_mean(per_era_contribution(predictions, baseline, target, eras)))
    return value if np.isfinite(value) else None


def greedy_clusters(corr: np.ndarray, threshold: float) -> list[int]:
    """Cluster labels from a symmetric correlation matrix, greedily in row order.

    Item 0 founds cluster 0; each next item joins the first cluster whose founder it
    correlates with above ``threshold`` (NaN never joins), else founds a new one. The
    number of clusters is ``max(labels) + 1``. Order matters; callers pass items in a
    fixed order (best validation score first, or sample order).
    """
    founders: list[int] = []
    labels: list[int] = []
    for i in range(len(corr)):
        joined = next((k for k, f in enumerate(founders) if corr[i, f] > threshold), None)
        if joined is None:
            founders.append(i)
            joined = len(founders) - 1
        labels.append(joined)
    return labels


def corr_matrix(vectors: list[np.ndarray], index: EraIndex) -> np.ndarray:
    """Mean per-era Spearman correlation between every pair of vectors (diagonal 1)."""
    if not vectors:
        return np.empty((0, 0))
    units = np.stack([unit_era_ranks(v, index) for v in vectors])
    out = np.empty((len(vectors), len(vectors)))
    for i in range(len(vectors)):
        out[i] = finite_mean(index.era_sums(units * units[i]))
    return out
