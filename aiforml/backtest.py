"""Trusted backtest of the trading task: predictions -> positions -> returns -> statistics.

Pure functions of plain arrays, no I/O or config objects, tested against hand-computed
numbers. Conventions (one period = one row of each asset, e.g. a trading day):

- the position held from period t to t+1 comes from the prediction made at t, by a rule:
  ``sign`` (-1, 0, +1), ``clip`` (``clip(scale * prediction, -1, 1)``) or ``long_only``
  (1 when the prediction is positive, else 0);
- traded_t = |pos_t - pos_{t-1}| per asset, with pos_{-1} = 0 (entering costs too);
- the portfolio's net return at t is the mean over assets of
  ``pos_t * r_{t+1} - cost_bps / 1e4 * traded_t`` (equal weight);
- annualized Sharpe = mean / std (ddof 1) of the net returns * sqrt(periods per year);
  total return = prod(1 + net) - 1; max drawdown = the largest fall of the equity curve
  (starting at 1) from its running peak, as a fraction; turnover = mean traded per period
  and asset; hit rate = the share of (period, asset) with a non-zero position whose
  return had the position's sign;
- buy-and-hold is the same with every position 1: the benchmark.

A few lines of numpy; libraries that do this (vectorbt, backtrader, empyrical) are large,
event-driven or unmaintained, and a reward must be exactly these definitions.
Not responsible for producing predictions, or for what a score is worth (``aiforml.reward``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.stats import rankdata

from aiforml.program import SplitMetrics, finite

PositionRule = Literal["sign", "clip", "long_only"]


def positions(predictions: np.ndarray, rule: PositionRule, scale: float = 1.0) -> np.ndarray:
    """Positions in [-1, 1] from predictions by ``rule``."""
    p = np.asarray(predictions, dtype=np.float64)
    if rule == "sign":
        return np.sign(p)
    if rule == "clip":
        return np.clip(scale * p, -1.0, 1.0)
    if rule == "long_only":
        return (p > 0).astype(np.float64)
    raise ValueError(f"unknown position rule {rule!r}; use sign, clip or long_only")


def net_returns(pos: np.ndarray, returns: np.ndarray, cost_bps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-period portfolio net returns and traded amounts, both (T,), from (T, A) arrays."""
    prev = np.vstack([np.zeros((1, pos.shape[1])), pos[:-1]])
    traded = np.abs(pos - prev)
    net = (pos * returns - cost_bps / 1e4 * traded).mean(axis=1)
    return net, traded.mean(axis=1)


def annualized_sharpe(net: np.ndarray, periods_per_year: int) -> float:
    if len(net) < 2:
        return float("nan")
    std = net.std(ddof=1)
    return float(net.mean() / std * np.sqrt(periods_per_year)) if std > 0 else float("nan")


def total_return(net: np.ndarray) -> float:
    return float(np.prod(1.0 + net) - 1.0)


def max_drawdown(net: np.ndarray) -> float:
    """Largest fall of equity from its running peak, as a fraction (>= 0); equity starts at 1."""
    equity = np.r_[1.0, np.cumprod(1.0 + net)]
    return float(np.max(1.0 - equity / np.maximum.accumulate(equity)))


def hit_rate(pos: np.ndarray, returns: np.ndarray) -> float:
    held = pos != 0
    return float((pos[held] * returns[held] > 0).mean()) if held.any() else float("nan")


def statistics(pos: np.ndarray, returns: np.ndarray, cost_bps: float, periods_per_year: int) -> dict[str, float]:
    """Sharpe, total return, max drawdown, turnover and hit rate of (T, A) positions."""
    net, traded = net_returns(pos, returns, cost_bps)
    return {
        "sharpe": annualized_sharpe(net, periods_per_year),
        "total_return": total_return(net),
        "max_drawdown": max_drawdown(net),
        "turnover": float(traded.mean()),
        "hit_rate": hit_rate(pos, returns),
    }


def to_grid(values: np.ndarray, eras: np.ndarray) -> np.ndarray:
    """Rows sorted by (period, asset), every asset in every period -> a (T, A) array."""
    n_periods = len(np.unique(eras))
    if n_periods == 0 or len(values) % n_periods or np.any(np.diff(eras) < 0):
        raise ValueError("rows must be sorted by period with the same assets in every period")
    return np.asarray(values, dtype=np.float64).reshape(n_periods, len(values) // n_periods)


def score_trading(predictions: np.ndarray, next_return: np.ndarray, eras: np.ndarray, *,
                  rule: PositionRule, scale: float, cost_bps: float, periods_per_year: int,
                  baseline: np.ndarray | None = None) -> SplitMetrics:
    """The strategy's and buy-and-hold's statistics over one block of periods.

    Periods whose next return is unknown (the last of the data) are left out. Non-finite
    statistics become None (JSON/MCP-safe).
    """
    pred, ret = to_grid(predictions, eras), to_grid(next_return, eras)
    known = np.isfinite(ret).all(axis=1)
    pred, ret = pred[known], ret[known]
    strategy = statistics(positions(pred, rule, scale), ret, cost_bps, periods_per_year)
    hold = statistics(np.ones_like(ret), ret, cost_bps, periods_per_year)
    metrics = SplitMetrics(n_eras=int(known.sum()), **{k: finite(v) for k, v in strategy.items()},
                           **{f"bh_{k}": finite(v) for k, v in hold.items()})
    if baseline is not None:
        metrics.baseline_corr = finite(rank_corr(predictions, baseline))
    return metrics


def rank_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two prediction vectors (NaN when either is constant)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(rankdata(a), rankdata(b))[0, 1])
