"""The composite reward: compile and performance terms, squashing, infrastructure failures."""

import math

import pytest

from aiforml.config import RewardConfig, from_dict
from aiforml.program import EvalResult, SplitMetrics
from aiforml.reward import compute_reward


def ok(sharpe: float, mean_corr: float = 0.02, baseline_contribution: float | None = 0.01) -> EvalResult:
    return EvalResult(status="ok", validation=SplitMetrics(mean_corr=mean_corr, sharpe=sharpe, baseline_corr=0.5,
                                                           baseline_contribution=baseline_contribution))


def test_default_weights_match_the_design():
    assert RewardConfig().weights == {"compile": 0.3, "performance": 0.7, "uniqueness": 0.0}


def test_success_scores_squashed_sharpe():
    r = compute_reward(ok(sharpe=0.8), RewardConfig())
    assert r["compile"] == 0.0
    assert r["performance"] == pytest.approx(math.tanh(0.8))
    assert r.reward == pytest.approx(0.7 * math.tanh(0.8))


@pytest.mark.parametrize("status", ["syntax_error", "runtime_error", "timeout", "memory",
                                    "forbidden", "invalid_output", "leakage_suspected", "parse_error"])
def test_program_failures_cost_the_compile_weight(status):
    r = compute_reward(EvalResult(status=status), RewardConfig())
    assert r["compile"] == -1.0 and r["performance"] == 0.0
    assert r.reward == pytest.approx(-0.3)


def test_infrastructure_failure_is_not_charged():
    assert compute_reward(EvalResult(status="infra_error"), RewardConfig()) is None


def test_mean_corr_and_uniqueness_terms():
    cfg = RewardConfig(performance="mean_corr", weights={"compile": 0.3, "performance": 0.7, "uniqueness": 0.2})
    r = compute_reward(ok(sharpe=1.0, mean_corr=0.01, baseline_contribution=0.005), cfg)
    assert r["performance"] == pytest.approx(math.tanh(0.01 / 0.02))
    assert r["uniqueness"] == pytest.approx(math.tanh(0.005 / 0.02))
    assert r.reward == pytest.approx(0.7 * math.tanh(0.5) + 0.2 * math.tanh(0.25))


def test_without_a_reference_uniqueness_is_the_contribution_beyond_the_default():
    # what the CLI and the MCP server pay: being different and wrong costs, being unknown earns 0
    cfg = RewardConfig(weights={"uniqueness": 0.4}, contribution_scale=0.01)
    assert compute_reward(ok(0.0, baseline_contribution=-0.01), cfg)["uniqueness"] == pytest.approx(math.tanh(-1.0))
    assert compute_reward(ok(0.0, baseline_contribution=0.0), cfg)["uniqueness"] == 0.0
    assert compute_reward(ok(0.0, baseline_contribution=None), cfg)["uniqueness"] == 0.0
    assert compute_reward(EvalResult(status="ok"), cfg)["uniqueness"] == 0.0


def test_better_sharpe_earns_more():
    cfg = RewardConfig()
    assert compute_reward(ok(1.2), cfg).reward > compute_reward(ok(0.4), cfg).reward > compute_reward(ok(-0.4), cfg).reward


def test_bad_weights_name_the_key():
    with pytest.raises(ValueError, match="reward.weights.performance must be >= 0"):
        from_dict(RewardConfig, {"weights": {"performance": -1.0}}, prefix="reward.")
    with pytest.raises(ValueError, match="reward.weights.perf: no such reward term"):
        compute_reward(ok(1.0), RewardConfig(weights={"perf": 0.7}))


def test_trading_total_return_term():
    result = EvalResult(status="ok", validation=SplitMetrics(sharpe=0.5, total_return=0.1, bh_total_return=0.3))
    r = compute_reward(result, RewardConfig(performance="total_return"))
    assert r["performance"] == pytest.approx(math.tanh(0.1 / 0.2))
    assert r.reward == pytest.approx(0.7 * math.tanh(0.5))
    assert compute_reward(result, RewardConfig())["performance"] == pytest.approx(math.tanh(0.5))


@pytest.mark.parametrize(("stage", "compile_"), [("", -1.0), ("parsed", -3 / 4), ("features", -2 / 4),
                                                 ("predict", -1 / 4), ("fit", -1.0), ("bogus", -1.0)])
def test_compile_shaping_credits_the_stage_reached(stage, compile_):
    cfg = RewardConfig(compile_shaping=True)
    r = compute_reward(EvalResult(status="runtime_error", stage=stage), cfg)
    assert r["compile"] == pytest.approx(compile_)
    assert r.reward == pytest.approx(0.3 * compile_)


def test_compile_shaping_is_off_by_default_and_never_credits_leakage():
    assert compute_reward(EvalResult(status="timeout", stage="fit"), RewardConfig())["compile"] == -1.0
    shaped = RewardConfig(compile_shaping=True)
    assert compute_reward(EvalResult(status="leakage_suspected", stage="predict"), shaped)["compile"] == -1.0


def test_given_uniqueness_replaces_the_baseline_contribution_term():
    cfg = RewardConfig(weights={"compile": 0.3, "performance": 0.7, "uniqueness": 0.5})
    r = compute_reward(ok(sharpe=0.0, baseline_contribution=0.02), cfg, uniqueness=0.0)
    assert r["uniqueness"] == 0.0 and r.reward == pytest.approx(0.0)
    r = compute_reward(ok(sharpe=0.0, baseline_contribution=0.02), cfg)
    assert r["uniqueness"] == pytest.approx(math.tanh(1.0))


@pytest.mark.parametrize(("key", "value"), [("duplicate_corr", 1.5), ("contribution_scale", 0.0),
                                            ("meta_model_size", -1), ("uniqueness", "mmc")])
def test_bad_uniqueness_settings_fail_naming_the_key(key, value):
    with pytest.raises(ValueError, match=f"reward.{key}"):
        from_dict(RewardConfig, {key: value}, prefix="reward.")


def test_a_registered_term_enters_the_reward_with_its_weight_and_a_new_one_is_one_function() -> None:
    from aiforml.reward import TERMS, term

    @term("test_speed")
    def speed(result, cfg, inputs):  # noqa: ANN001, ANN202 - a term as a newcomer writes one
        return -1.0 if result.timings.get("total", 0.0) > 10 else 0.0

    try:
        cfg = RewardConfig(weights={"compile": 0.3, "performance": 0.7, "test_speed": 0.1})
        slow = EvalResult(status="ok", validation=SplitMetrics(sharpe=0.8), timings={"total": 30.0})
        r = compute_reward(slow, cfg)
        assert r["test_speed"] == -1.0 and r["uniqueness"] == 0.0
        assert r.reward == pytest.approx(0.7 * math.tanh(0.8) - 0.1)
    finally:
        del TERMS["test_speed"]
