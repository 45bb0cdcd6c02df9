"""The reward of one evaluated program: a weighted sum of named terms.

    reward = sum(cfg.weights[name] * term(result, cfg, inputs) for name, term in TERMS.items())

A term is a plain function of the EvalResult (validation scores only: sealed test scores
never enter here), the RewardConfig and the run's ``RewardInputs``, registered by name with
``@term("name")``; its weight is ``reward.weights.<name>`` (0 when the config names none).
Adding a term is one function here and, for a default weight other than 0, one entry in
``RewardConfig.weights`` (``docs/extending.md``). The terms:

- ``compile``: -1 when the program failed (any program-failure status, suspected leakage
  included) and 0 when it ran; with ``compile_shaping`` a failure earns partial credit by
  the last stage it reached (``program.STAGES``): ``-1 + (k + 1) / (len(STAGES) + 1)`` for
  stage k, so it stays below 0; leakage never earns any;
- ``performance``: the validation statistic (Sharpe or mean per-era corr; on the trading
  task also the strategy's total return net of costs, its Sharpe being annualized)
  squashed by ``tanh(statistic / scale)`` into (-1, 1), and 0 when the program failed;
- ``uniqueness``: the score the run computed from validation predictions
  (``aiforml.reference.ReferenceSet``: contribution beyond the default program, beyond the
  meta model, the near-duplicate rule); without one (the CLI, the MCP server),
  ``tanh(baseline_contribution / contribution_scale)`` of the result, its contribution
  beyond the default program: what the reference set gives in every mode before anything
  is archived (the meta model is then the default alone), near-duplicate rule aside; 0
  without it or when the program failed. Every mode pays for being right where the default
  is not, never for being different alone: random predictions earn about 0 and a program
  wrong in its own way less than 0 (``aiforml.uniqueness.baseline_contribution`` says why).

Every term but ``compile`` is 0 for a failed program. An infrastructure failure is not the
program's fault: it gets no reward at all (None), so the caller can drop or retry it instead
of charging the policy. Pure functions; the trusted driver calls :func:`compute_reward` once
per result.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from aiforml.config import RewardConfig
from aiforml.program import STAGES, EvalResult
from aiforml.registry import registrar

# Default squashing scale per statistic: a Sharpe of 1, a mean corr of 0.02 or a total
# return of 20 % maps to tanh(1).
DEFAULT_SCALE = {"sharpe": 1.0, "mean_corr": 0.02, "total_return": 0.2}


@dataclass(frozen=True)
class RewardInputs:
    """What a term may read beside the result: the run's state, validation only."""

    uniqueness: float | None = None  # the reference set's score (aiforml.reference); None outside a run


Term = Callable[[EvalResult, RewardConfig, RewardInputs], float]
TERMS: dict[str, Term] = {}  # name -> term, in registration order


term = registrar(TERMS, "reward term")  # @term(name): a reward term weighted by reward.weights.<name>


@dataclass(frozen=True)
class RewardBreakdown:
    reward: float
    terms: dict[str, float]  # every registered term's value, weighted or not

    def __getitem__(self, name: str) -> float:
        return self.terms[name]


@term("compile")
def compile_score(result: EvalResult, cfg: RewardConfig, inputs: RewardInputs) -> float:
    """0 for a program that ran; -1 for a failure, or partial credit by stage when shaping."""
    if result.status == "ok":
        return 0.0
    if not cfg.compile_shaping or result.status == "leakage_suspected" or result.stage not in STAGES:
        return -1.0
    return -1.0 + (STAGES.index(result.stage) + 1) / (len(STAGES) + 1)


@term("performance")
def performance_score(result: EvalResult, cfg: RewardConfig, inputs: RewardInputs) -> float:
    """``tanh(validation statistic / scale)``; -1 when an ok result has none; 0 for a failure."""
    if result.status != "ok":
        return 0.0
    statistic = getattr(result.validation, cfg.performance) if result.validation else None
    scale = cfg.scale if cfg.scale is not None else DEFAULT_SCALE[cfg.performance]
    return math.tanh(statistic / scale) if statistic is not None else -1.0


@term("uniqueness")
def uniqueness_score(result: EvalResult, cfg: RewardConfig, inputs: RewardInputs) -> float:
    """The run's reference-set score, else ``tanh(contribution beyond the default / scale)``."""
    if result.status != "ok":
        return 0.0
    if inputs.uniqueness is not None:
        return inputs.uniqueness
    contribution = result.validation.baseline_contribution if result.validation else None
    return math.tanh(contribution / cfg.contribution_scale) if contribution is not None else 0.0


def check_weights(cfg: RewardConfig) -> None:
    """ValueError naming a weight whose term is not registered (a typo would silently weigh 0)."""
    unknown = sorted(set(cfg.weights) - set(TERMS))
    if unknown:
        raise ValueError(f"reward.weights.{unknown[0]}: no such reward term; terms are {sorted(TERMS)} "
                         "(register a new one with @term in aiforml/reward.py)")


def compute_reward(result: EvalResult, cfg: RewardConfig,
                   uniqueness: float | None = None) -> RewardBreakdown | None:
    """The reward of one result, or None for an infrastructure failure."""
    if result.status == "infra_error":
        return None
    check_weights(cfg)
    inputs = RewardInputs(uniqueness=uniqueness)
    terms = {name: fn(result, cfg, inputs) for name, fn in TERMS.items()}
    reward = sum(cfg.weights.get(name, 0.0) * value for name, value in terms.items())
    return RewardBreakdown(reward=reward, terms=terms)


def describe(breakdown: RewardBreakdown, cfg: RewardConfig) -> str:
    """``reward +0.1234 = 0.3 * compile +0 + 0.7 * performance +0.1763``: the weighted terms."""
    parts = [f"{cfg.weights[name]} * {name} {value:+.4f}" for name, value in breakdown.terms.items()
             if cfg.weights.get(name)]
    return f"reward {breakdown.reward:+.4f} = " + (" + ".join(parts) or "0")
