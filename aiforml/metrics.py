"""Trusted scores of predictions: per-era Numerai correlation, Sharpe, drawdown, uniqueness.

Responsible for turning plain arrays (predictions, the official target, eras, features)
into the statistics the reward and the reports use. The per-era Numerai correlation and
feature-neutral correlation are numerai-tools' definitions, vectorized over eras here
because calling numerai-tools era by era made scoring nearly half of an evaluation's time;
the tests hold both equal to numerai-tools era by era. Sharpe, drawdown and the rank
correlation with a baseline are a few lines of numpy; the contribution beyond a baseline
is ``aiforml.uniqueness.baseline_contribution``. The probabilistic and deflated Sharpe
ratios (Bailey and Lopez de Prado) say how much a best-of-many validation Sharpe is worth.

Not responsible for producing predictions or deciding what a score is worth (see
``aiforml.reward``). No I/O, no config.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import kurtosis, norm, skew
from threadpoolctl import threadpool_limits

from aiforml.program import SplitMetrics, finite
from aiforml.uniqueness import baseline_contribution


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
    """Numerai correlation of each era, all eras at once.

    The same arithmetic as ``numerai_tools.scoring.numerai_corr`` (tie-kept percentile rank,
    gaussianize, both sides to the power 1.5 after centring the target, Pearson), done with
    one grouped rank and segment sums instead of a pandas round trip per era: calling
    numerai-tools era by era cost about 7 ms an era, a third of an evaluation's scoring.
    ``tests/test_metrics.py`` holds it equal to numerai-tools era by era. Rows whose target
    is NaN are left out; an era whose predictions or targets are constant scores NaN.
    """
    return _per_era(predictions, target, eras, neutralizers=None)


def per_era_feature_neutral_corr(
    predictions: np.ndarray, features: np.ndarray | EraBases, target: np.ndarray, eras: np.ndarray
) -> np.ndarray:
    """numerai-tools' ``feature_neutral_corr`` of each era, vectorized like ``per_era_corr``.

    Gaussianized ranks are neutralized to the era's features (least squares with an
    intercept, ``rcond=1e-6`` as numerai-tools does) and the residual scored with the Numerai
    correlation. ``features`` may be the :class:`EraBases` of those features (and of this
    target's finite rows), computed once for a split that many programs are scored on. BLAS
    is held to one thread: multi-threaded OpenBLAS on a busy 2-core machine was measured 30x
    slower on these small solves.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _per_era(predictions, target, eras, neutralizers=features)


@dataclass(frozen=True)
class EraBases:
    """Per era, an orthonormal basis of the span of the era's features and a constant.

    The residual of least squares with ``rcond`` (what ``np.linalg.lstsq`` and numerai-tools
    compute) is ``v - U (U' v)`` with ``U`` the left singular vectors whose singular values
    exceed ``rcond`` times the largest: one SVD per era, once, instead of one solve per era
    and program. Built for the rows whose target is finite (:meth:`for_target`).

    Two forms of the same projection. ``"basis"`` keeps ``U`` itself (rows x k doubles per
    era). ``"map"`` keeps the era's features (as given: int8) and ``M = V_k / s_k``, so that
    ``U = [X 1] M`` ((features + 1) x k doubles): at Numerai's 5,000 rows per era and 780
    features, 5 MB an era instead of 31 MB, for a product with the features at each use.

    An era whose features span all of its rows (as many independent features as rows, as
    with 2,376 features on 1,500 rows) has no residual: nothing is neutral to its features,
    its feature-neutral correlation is NaN, and its basis (rows x rows doubles) is not kept
    (``None``). numerai-tools ranks the rounding noise left in such a residual.
    """

    bases: tuple[np.ndarray | None, ...]
    n_rows: int
    features: np.ndarray | None = None  # the "map" form's rows (finite target), as given

    @classmethod
    def for_target(cls, features: np.ndarray, target: np.ndarray, eras: np.ndarray,
                   rcond: float = 1e-6, form: str = "basis") -> EraBases:
        if form not in ("basis", "map"):
            raise ValueError(f"form must be 'basis' or 'map', got {form!r}")
        keep = np.isfinite(target)
        f, e = features[keep], eras[keep]  # as they are (int8): float64 one era at a time
        starts = np.flatnonzero(np.r_[True, e[1:] != e[:-1]]) if len(e) else np.zeros(0, dtype=int)
        counts = np.diff(np.r_[starts, len(e)])
        bases = []
        with threadpool_limits(limits=1, user_api="blas"):
            for start, count in zip(starts, counts, strict=True):
                u, sv, vt = np.linalg.svd(_design(f[start:start + count]), full_matrices=False)
                kept = sv > rcond * sv.max() if sv.size else np.zeros(0, dtype=bool)
                if kept.sum() == count:
                    bases.append(None)
                elif form == "basis":
                    bases.append(np.ascontiguousarray(u[:, kept]))
                else:
                    bases.append(np.ascontiguousarray(vt[kept].T / sv[kept]))
        return cls(tuple(bases), int(len(e)), f if form == "map" else None)

    def residual(self, values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
        if len(values) != self.n_rows or len(starts) != len(self.bases):
            raise ValueError(f"these bases are of {self.n_rows} rows in {len(self.bases)} eras, "
                             f"not {len(values)} rows in {len(starts)} eras")
        out = np.empty_like(values)
        for u, start, count in zip(self.bases, starts, counts, strict=True):
            v = values[start:start + count]
            if u is None:
                out[start:start + count] = 0.0
            elif self.features is None:
                out[start:start + count] = v - u @ (u.T @ v)
            else:
                design = _design(self.features[start:start + count])
                out[start:start + count] = v - design @ (u @ (u.T @ (design.T @ v)))
        return out


def _design(features: np.ndarray) -> np.ndarray:
    """An era's least-squares design: its features as float64 and a constant column."""
    return np.hstack([features.astype(np.float64), np.ones((len(features), 1))])


def _per_era(predictions: np.ndarray, target: np.ndarray, eras: np.ndarray,
             neutralizers: np.ndarray | EraBases | None) -> np.ndarray:
    slices = _era_slices(eras)
    out = np.full(len(slices), np.nan)
    keep = np.isfinite(target)
    p, t, e = predictions[keep].astype(np.float64), target[keep].astype(np.float64), eras[keep]
    if len(p) == 0:
        return out
    starts = np.flatnonzero(np.r_[True, e[1:] != e[:-1]])
    counts = np.diff(np.r_[starts, len(e)])
    group = np.repeat(np.arange(len(starts)), counts)
    x = _gaussian_ranks(p, group, counts)
    if isinstance(neutralizers, EraBases):
        x = _gaussian_ranks(neutralizers.residual(x, starts, counts), group, counts)
    elif neutralizers is not None:
        x = _neutralize(x, neutralizers[keep].astype(np.float64), starts, counts)
        x = _gaussian_ranks(x, group, counts)
    x = np.sign(x) * np.abs(x) ** 1.5
    centred = t - (np.add.reduceat(t, starts) / counts)[group]
    y = np.sign(centred) * np.abs(centred) ** 1.5
    x = x - (np.add.reduceat(x, starts) / counts)[group]
    y = y - (np.add.reduceat(y, starts) / counts)[group]
    sxy, sxx, syy = (np.add.reduceat(a, starts) for a in (x * y, x * x, y * y))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where((counts > 1) & (sxx > 1e-12) & (syy > 1e-12), sxy / np.sqrt(sxx * syy), np.nan)
    era_index = {era: k for k, (era, _) in enumerate(slices)}
    for era, value in zip(e[starts], corr, strict=True):
        out[era_index[int(era)]] = value
    return out


def _gaussian_ranks(values: np.ndarray, group: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per era: tie-kept percentile rank centred on 0.5, then the normal quantile."""
    ranks = pd.Series(values).groupby(group).rank(method="average").to_numpy()
    return norm.ppf((ranks - 0.5) / counts[group])


def _neutralize(values: np.ndarray, features: np.ndarray, starts: np.ndarray,
                counts: np.ndarray) -> np.ndarray:
    """Per era: the residual of ``values`` after least squares on the features and 1."""
    out = np.empty_like(values)
    for start, count in zip(starts, counts, strict=True):
        rows = slice(start, start + count)
        design = np.hstack([features[rows], np.ones((count, 1))])
        coef, _, rank, _ = np.linalg.lstsq(design, values[rows], rcond=1e-6)
        out[rows] = 0.0 if rank == count else values[rows] - design @ coef  # spanned: as EraBases
    return out


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


def probabilistic_sharpe(sr: float, n_obs: int, skewness: float, kurt: float, benchmark: float = 0.0) -> float:
    """Probability that a true Sharpe exceeds ``benchmark``, given an estimate ``sr`` from
    ``n_obs`` returns with that skewness and kurtosis (not excess: 3 for a normal); Bailey
    and Lopez de Prado's PSR, everything per period, not annualized:

        PSR = Phi((sr - benchmark) * sqrt(n_obs - 1) / sqrt(1 - skewness * sr + (kurt - 1) / 4 * sr^2))

    NaN with fewer than 3 returns, a non-finite input, or a non-positive variance term.
    """
    variance = 1.0 - skewness * sr + (kurt - 1.0) / 4.0 * sr * sr
    if n_obs < 3 or not np.isfinite(sr) or not variance > 0:
        return float("nan")
    return float(norm.cdf((sr - benchmark) * np.sqrt(n_obs - 1) / np.sqrt(variance)))


def expected_max_sharpe(n_trials: int, trial_sharpe_variance: float) -> float:
    """Expected maximum Sharpe of ``n_trials`` independent trials whose true Sharpe is 0 and
    whose estimates vary with ``trial_sharpe_variance`` (Bailey and Lopez de Prado 2014):

        sqrt(V) * ((1 - g) * Phi^-1(1 - 1/N) + g * Phi^-1(1 - 1/(N e))),  g Euler's 0.5772...

    0 for one trial or no dispersion: nothing was selected.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if n_trials == 1 or trial_sharpe_variance <= 0:
        return 0.0
    return float(np.sqrt(trial_sharpe_variance) * ((1 - np.euler_gamma) * norm.ppf(1 - 1 / n_trials)
                                                   + np.euler_gamma * norm.ppf(1 - 1 / (n_trials * np.e))))


def deflated_sharpe(scores: np.ndarray, trial_sharpes: np.ndarray) -> float:
    """Deflated Sharpe ratio (Bailey and Lopez de Prado 2014) of the program chosen as the best
    of ``trial_sharpes``: the PSR of its per-era ``scores`` against the Sharpe the best of that
    many trials would reach by luck alone (``selection_benchmark``). A probability: the
    chance that the chosen program's true Sharpe is above 0 once the search that found it
    is accounted for (0.95 is the usual bar).
    Skewness and kurtosis are the scores' population moments; with one trial it is the PSR
    against 0.

    Trials should be independent; similar programs are not, so N overstates the search and
    the deflation is conservative. skfolio's ``measures.deflated_sharpe_ratio`` (maintained)
    gave the same values on a check (fat-tailed scores, 25 trials); it is not used because it
    would bring cvxpy, clarabel and plotly into the install for these few lines. NaN as for
    ``probabilistic_sharpe``.
    """
    benchmark = selection_benchmark(trial_sharpes)
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) < 3 or np.ptp(scores) == 0:
        return float("nan")
    return probabilistic_sharpe(sharpe(scores), len(scores), float(skew(scores)),
                                float(kurtosis(scores, fisher=False)), benchmark=benchmark)


def selection_benchmark(trial_sharpes: np.ndarray) -> float:
    """``expected_max_sharpe`` of the finite ``trial_sharpes``: N their count, V their sample
    variance (ddof=1; 0 for one trial)."""
    trials = np.asarray(trial_sharpes, dtype=np.float64)
    trials = trials[np.isfinite(trials)]
    if len(trials) == 0:
        raise ValueError("deflated_sharpe needs at least one trial Sharpe")
    return expected_max_sharpe(len(trials), float(trials.var(ddof=1)) if len(trials) > 1 else 0.0)


def max_drawdown(scores: np.ndarray) -> float:
    """Largest fall of the cumulative per-era score from its running peak (>= 0).

    The cumulative curve starts at 0 before the first era, so a first losing era counts.
    """
    cumulative = np.r_[0.0, np.cumsum(np.asarray(scores, dtype=np.float64))]
    return float(np.max(np.maximum.accumulate(cumulative) - cumulative))


def score_split(
    predictions: np.ndarray,
    target: np.ndarray,
    eras: np.ndarray,
    features: np.ndarray | EraBases | None = None,
    baseline: np.ndarray | None = None,
) -> SplitMetrics:
    """All statistics of one split. Non-finite aggregates become None (JSON/MCP-safe)."""
    corr = per_era_corr(predictions, target, eras)
    valid = corr[np.isfinite(corr)]
    metrics = SplitMetrics(
        mean_corr=finite(valid.mean()) if len(valid) else None,
        std_corr=finite(valid.std(ddof=1)) if len(valid) > 1 else None,
        sharpe=finite(sharpe(valid)),
        max_drawdown=finite(max_drawdown(valid)) if len(valid) else None,
        n_eras=int(len(valid)),
        per_era_corr=[round(float(c), 6) if np.isfinite(c) else None for c in corr],
    )
    if features is not None:
        fnc = per_era_feature_neutral_corr(predictions, features, target, eras)
        metrics.feature_neutral_corr = finite(np.nanmean(fnc)) if np.isfinite(fnc).any() else None
    if baseline is not None:
        rc = per_era_rank_corr(predictions, baseline, eras)
        metrics.baseline_corr = finite(np.nanmean(rc)) if np.isfinite(rc).any() else None
        metrics.baseline_contribution = baseline_contribution(predictions, baseline, target, eras)
    return metrics
