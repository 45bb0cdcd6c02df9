"""The composite reward of one evaluated program.

    reward = w_compile * compile + w_perf * performance + w_unique * uniqueness

- compile is -1 when the program failed (any program-failure status, suspected leakage
  included) and 0 when it ran; with ``compile_shaping`` a failure earns partial credit by
  the last stage it reached (``program.STAGES``): ``-1 + (k + 1) / (len(STAGES) + 1)`` for
  stage k, so it stays below 0; leakage never earns any;
- performance is the validation statistic (Sharpe or mean per-era corr; on the trading
  task also the strategy's total return net of costs, its Sharpe being annualized)
  squashed by ``tanh(statistic / scale)`` into (-1, 1), and 0 when the program failed;
- uniqueness is the score the caller computed from validation predictions
  (``aiforml.diversity.ReferenceSet``: contribution beyond the default program, beyond the
  meta model, the near-duplicate rule); without one (the CLI, the MCP server),
  ``tanh(baseline_contribution / contribution_scale)`` of the result, its contribution
  beyond the default program: what the reference set gives in every mode before anything
  is archived (the meta model is then the default alone), near-duplicate rule aside; 0
  without it or when the program failed. Every mode pays for being right where the default is not, never for being
  different alone: random predictions earn about 0 and a program wrong in its own way
  less than 0 (``aiforml.uniqueness.baseline_contribution`` says why).

An infrastructure failure is not the program's fault: it gets no reward at all (None), so
the caller can drop or retry it instead of charging the policy. Sealed test scores never
enter here. Pure function of an EvalResult, a RewardConfig and a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aiforml.config import RewardConfig
from aiforml.program import STAGES, EvalResult

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


def compile_score(result: EvalResult, cfg: RewardConfig) -> float:
    """0 for a program that ran; -1 for a failure, or partial credit by stage when shaping."""
    if result.status == "ok":
        return 0.0
    if not cfg.compile_shaping or result.status == "leakage_suspected" or result.stage not in STAGES:
        return -1.0
    return -1.0 + (STAGES.index(result.stage) + 1) / (len(STAGES) + 1)


def baseline_uniqueness(result: EvalResult, cfg: RewardConfig) -> float:
    """``tanh(contribution beyond the default / contribution_scale)``; 0 when it is unknown."""
    contribution = result.validation.baseline_contribution if result.validation else None
    return math.tanh(contribution / cfg.contribution_scale) if contribution is not None else 0.0


def compute_reward(result: EvalResult, cfg: RewardConfig,
                   uniqueness: float | None = None) -> RewardBreakdown | None:
    """The reward of one result, or None for an infrastructure failure."""
    if result.status == "infra_error":
        return None
    if result.status != "ok":
        compile_ = compile_score(result, cfg)
        return RewardBreakdown(reward=cfg.w_compile * compile_, compile=compile_, performance=0.0,
                               uniqueness=0.0)
    statistic = performance_statistic(result, cfg)
    scale = cfg.scale if cfg.scale is not None else DEFAULT_SCALE[cfg.performance]
    performance = math.tanh(statistic / scale) if statistic is not None else -1.0
    if uniqueness is None:
        uniqueness = baseline_uniqueness(result, cfg)
    reward = cfg.w_perf * performance + cfg.w_unique * uniqueness
    return RewardBreakdown(reward=reward, compile=0.0, performance=performance, uniqueness=uniqueness)
