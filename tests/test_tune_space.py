"""Search-space strings become Tune domains; bad keys, syntax and ranges fail at start naming
the key; sampled values are written into the config at their dotted keys."""

from __future__ import annotations

import dataclasses
import re

import pytest
from ray.tune.search.sample import Categorical, Float, Integer

from aiforml.compose import load_config
from aiforml.tune_space import (
    SEED,
    apply_params,
    param_space,
    parse_distribution,
    parse_space,
    trial_points,
)


@pytest.fixture(scope="module")
def base() -> dict:
    return dataclasses.asdict(load_config(["+experiment=smoke"]))


def test_each_distribution_becomes_the_tune_domain_with_its_bounds() -> None:
    space = param_space({
        "a": parse_distribution("a", "uniform(0.1, 0.5)"),
        "b": parse_distribution("b", "loguniform(1e-6, 1e-4)"),
        "c": parse_distribution("c", "randint(2, 5)"),
        "d": parse_distribution("d", "choice([0.7, 1.0])"),
        "e": parse_distribution("e", " quniform( 0.0, 1.0 , 0.25 ) "),
    })
    assert isinstance(space["a"], Float) and (space["a"].lower, space["a"].upper) == (0.1, 0.5)
    assert isinstance(space["b"], Float) and (space["b"].lower, space["b"].upper) == (1e-6, 1e-4)
    assert isinstance(space["b"].get_sampler(), Float._LogUniform)
    assert isinstance(space["c"], Integer) and (space["c"].lower, space["c"].upper) == (2, 5)
    assert isinstance(space["d"], Categorical) and space["d"].categories == [0.7, 1.0]
    assert space["e"].get_sampler().q == 0.25


def test_ends_are_the_values_a_trial_can_reach() -> None:
    assert parse_distribution("k", "randint(2, 5)").ends() == [2, 4]  # high end excluded, as in Tune
    assert parse_distribution("k", "choice(['a', 'b'])").ends() == ["a", "b"]
    assert parse_distribution("k", "loguniform(1e-4, 3e-3)").log_scale


@pytest.mark.parametrize("text, message", [
    ("gauss(0, 1)", "cannot read"),
    ("uniform(0.5)", "takes 2 argument"),
    ("uniform(0.5, 0.1)", "low end must be below"),
    ("loguniform(0, 1)", "low end > 0"),
    ("uniform(a, b)", "must be numbers"),
    ("choice([])", "non-empty list"),
    ("randint(1.5, 3)", "integers"),
])
def test_a_bad_distribution_fails_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=rf"tune\.space\.algo\.clip_range: .*{message}"):
        parse_distribution("algo.clip_range", text)


def test_apply_params_sets_dotted_keys_in_a_copy(base: dict) -> None:
    out = apply_params(base, {"reward.weights.compile": 0.25, "algo.learning_rate": 1e-4, "policy.temperature": 0.8})
    assert (out["reward"]["weights"]["compile"], out["algo"]["learning_rate"], out["policy"]["temperature"]) == (0.25, 1e-4, 0.8)
    assert base["reward"]["weights"]["compile"] == 0.3 and base["algo"]["learning_rate"] is None, "the base is untouched"


@pytest.mark.parametrize("key, message", [
    ("reward.weights.compil", "no such config key; valid keys under 'reward.weights'"),
    ("rewards.w_compile", "'rewards' is not a config group"),
    ("reward.performance.x", "'reward.performance' is not a config group"),
])
def test_an_unknown_key_fails_naming_it(base: dict, key: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"tune.space.{key}: {message}")):
        parse_space({key: "uniform(0.1, 0.5)"}, base)


def test_a_range_reaching_an_invalid_value_fails_at_start(base: dict) -> None:
    with pytest.raises(ValueError, match=r"tune\.space\.algo\.clip_range: .*reaches 1\.5.*algo\.clip_range must be in \(0, 1\)"):
        parse_space({"algo.clip_range": "uniform(0.1, 1.5)"}, base)
    with pytest.raises(ValueError, match=r"tune\.space\.tune\.num_samples: a sweep cannot vary"):
        parse_space({"tune.num_samples": "randint(1, 3)"}, base)
    with pytest.raises(ValueError, match=r"tune\.space\.seed: every trial already runs with its own seed"):
        parse_space({"seed": "choice([0, 1])"}, base)


SPACE = {"reward.weights.compile": "uniform(0.1, 0.5)", "algo.learning_rate": "loguniform(1e-4, 3e-3)",
         "loop.samples_per_prompt": "randint(2, 6)"}


def test_each_trial_gets_its_own_seed_and_the_repeats_rerun_trial_0_at_theirs(base: dict) -> None:
    parsed = parse_space(SPACE, base)
    points = trial_points(parsed, num_samples=3, seed_repeats=2, base_seed=7, search_seed=0)
    assert [p[SEED] for p in points] == [7, 8, 9, 10, 11], "trial k runs with seed + k"
    swept = [{k: v for k, v in p.items() if k != SEED} for p in points]
    assert swept[0] != swept[1] != swept[2], "the sampled trials differ"
    assert swept[3] == swept[4] == swept[0], "the repeats are trial 0's values"
    for values in swept:
        assert 0.1 <= values["reward.weights.compile"] <= 0.5 and 1e-4 <= values["algo.learning_rate"] <= 3e-3
        assert values["loop.samples_per_prompt"] in range(2, 6)
    assert points == trial_points(parsed, 3, 2, 7, search_seed=0), "reproducible from the two seeds"
    assert trial_points(parsed, 3, 0, 7, search_seed=0) == points[:3], "repeats do not change the draws"
    assert trial_points(parsed, 3, 0, 7, search_seed=1)[0]["reward.weights.compile"] != swept[0]["reward.weights.compile"]
    seeds = param_space(parsed, [p[SEED] for p in points])[SEED]
    assert isinstance(seeds, Categorical) and seeds.categories == [7, 8, 9, 10, 11]


def test_the_sweep_experiments_spaces_parse_against_their_configs() -> None:
    for name, keys in (("sweep_ppo", {"algo.learning_rate", "algo.clip_range", "algo.kl_coef", "policy.temperature"}),
                       ("sweep_reward_weights", {"reward.weights.compile", "reward.weights.performance", "reward.weights.uniqueness"})):
        cfg = load_config([f"+experiment={name}"])
        parsed = parse_space(cfg.tune.space, dataclasses.asdict(cfg))
        assert set(parsed) == keys, name
