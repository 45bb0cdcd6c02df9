"""The composite reward of one evaluated program.

    reward = w_compile * compile + w_perf * performance + w_unique * uniqueness

- compile is -1 when the program failed (any program-failure status, suspected leakage
  included) and 0 when it ran;
- performance is the validation statistic (Sharpe or mean per-era corr; on the trading
  task also the strategy's total return net of costs, its Sharpe being annualized)
  squashed by ``tanh(statistic / scale)`` into (-1, 1), and 0 when the program failed;
- uniqueness is ``1 - |mean per-era rank corr with the default program|`` in [0, 1],
  and 0 when the program failed.

An infrastructure failure is not the program's fault: it gets no reward at all (None), so
the caller can drop or retry it instead of charging the policy. Sealed test scores never
enter here. Pure function of an EvalResult and a RewardConfig.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aiforml.config import RewardConfig
from aiforml.program import EvalResult

# Default squashing scale per statistic: a Sharpe of 1, a mean corr of 0.02 or a total
# return of 20 % maps to tanh(1).
DEFAULT_SCALE = {"sharpe": 1.0, "mean_corr": 0.02, "total_return": 0.2}


@dataclass(frozen=True)
class RewardBreakdown:
    reward: float
    compile: float
    performance: float
    uniqueness: float


def performance_statistic(result: EvalResult, cfg: RewardConfig) -> float | None:
    """The validation statistic the reward uses, or None when there is none."""
    if result.validation is None:
        return None
    return getattr(result.validation, cfg.performance)


def compute_reward(result: EvalResult, cfg: RewardConfig) -> RewardBreakdown | None:
    """The reward of one result, or None for an infrastructure failure."""
    if result.status == "infra_error":
        return None
    if result.status != "ok":
        return RewardBreakdown(reward=-cfg.w_compile, compile=-1.0, performance=0.0, uniqueness=0.0)
    statistic = performance_statistic(result, cfg)
    scale = cfg.scale if cfg.scale is not None else DEFAULT_SCALE[cfg.performance]
    performance = math.tanh(statistic / scale) if statistic is not None else -1.0
    baseline_corr = result.validation.baseline_corr if result.validation else None
    uniqueness = 1.0 - abs(baseline_corr) if baseline_corr is not None else 0.0
    reward = cfg.w_perf * performance + cfg.w_unique * uniqueness
    return RewardBreakdown(reward=reward, compile=0.0, performance=performance, uniqueness=uniqueness)
