"""The composite reward: compile and performance terms, squashing, infrastructure failures."""

import math

import pytest

from aiforml.config import RewardConfig, from_dict
from aiforml.program import EvalResult, SplitMetrics
from aiforml.reward import compute_reward


def ok(sharpe: float, mean_corr: float = 0.02, baseline_corr: float | None = 0.5) -> EvalResult:
    return EvalResult(status="ok", validation=SplitMetrics(mean_corr=mean_corr, sharpe=sharpe,
                                                           baseline_corr=baseline_corr))


def test_default_weights_match_the_design():
    cfg = RewardConfig()
    assert (cfg.w_compile, cfg.w_perf, cfg.w_unique) == (0.3, 0.7, 0.0)


def test_success_scores_squashed_sharpe():
    r = compute_reward(ok(sharpe=0.8), RewardConfig())
    assert r.compile == 0.0
    assert r.performance == pytest.approx(math.tanh(0.8))
    assert r.reward == pytest.approx(0.7 * math.tanh(0.8))


@pytest.mark.parametrize("status", ["syntax_error", "runtime_error", "timeout", "memory",
                                    "forbidden", "invalid_output", "leakage_suspected", "parse_error"])
def test_program_failures_cost_the_compile_weight(status):
    r = compute_reward(EvalResult(status=status), RewardConfig())
    assert r.compile == -1.0 and r.performance == 0.0
    assert r.reward == pytest.approx(-0.3)


def test_infrastructure_failure_is_not_charged():
    assert compute_reward(EvalResult(status="infra_error"), RewardConfig()) is None


def test_mean_corr_and_uniqueness_terms():
    cfg = RewardConfig(performance="mean_corr", w_unique=0.2)
    r = compute_reward(ok(sharpe=1.0, mean_corr=0.01, baseline_corr=-0.25), cfg)
    assert r.performance == pytest.approx(math.tanh(0.01 / 0.02))
    assert r.uniqueness == pytest.approx(0.75)
    assert r.reward == pytest.approx(0.7 * math.tanh(0.5) + 0.2 * 0.75)


def test_better_sharpe_earns_more():
    cfg = RewardConfig()
    assert compute_reward(ok(1.2), cfg).reward > compute_reward(ok(0.4), cfg).reward > compute_reward(ok(-0.4), cfg).reward


def test_bad_weights_name_the_key():
    with pytest.raises(ValueError, match="reward.w_perf must be >= 0"):
        from_dict(RewardConfig, {"w_perf": -1.0}, prefix="reward.")


def test_trading_total_return_term():
    result = EvalResult(status="ok", validation=SplitMetrics(sharpe=0.5, total_return=0.1, bh_total_return=0.3))
    r = compute_reward(result, RewardConfig(performance="total_return"))
    assert r.performance == pytest.approx(math.tanh(0.1 / 0.2))
    assert r.reward == pytest.approx(0.7 * math.tanh(0.5))
    assert compute_reward(result, RewardConfig()).performance == pytest.approx(math.tanh(0.5))
