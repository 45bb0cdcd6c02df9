"""Pure parts of the environment: NaN-safe tool outputs, output caps, the cache, the config.

No sandbox, no Ray: these run in milliseconds.
"""

from __future__ import annotations

import dataclasses
import json
import math

import anyio
import numpy as np
import pytest

from aiforml.compose import load_config
from aiforml.env.actor import EnvActor
from aiforml.env.cache import ResultCache
from aiforml.env.models import EvaluationOutput, cap, read_result, to_output
from aiforml.program import EvalResult, Program, SplitMetrics


def nan_result() -> EvalResult:
    nan, inf = float("nan"), float("inf")
    metrics = SplitMetrics(mean_corr=nan, std_corr=0.02, sharpe=inf, n_eras=3, per_era_corr=[0.01, nan, None])
    return EvalResult(status="ok", message="m", cv=metrics, validation=metrics, test=metrics,
                      timings={"total": 1.5, "bad": nan}, stdout="x" * 50)


def test_outputs_map_non_finite_floats_to_none_and_stay_strict_json():
    out = to_output(nan_result(), show_test=False, output_chars=10, reward=float("nan"))
    assert out.validation.mean_corr is None and out.validation.sharpe is None
    assert out.validation.std_corr == 0.02 and out.validation.per_era_corr == [0.01, None, None]
    assert out.reward is None and out.timings == {"total": 1.5}
    text = json.dumps(dataclasses.asdict(out), allow_nan=False)  # strict JSON as it is
    assert json.loads(text)["validation"]["per_era_corr"] == [0.01, None, None]


def test_test_scores_are_withheld_unless_shown():
    hidden = to_output(nan_result(), show_test=False, output_chars=100)
    shown = to_output(nan_result(), show_test=True, output_chars=100)
    assert hidden.test is None and hidden.test_withheld
    assert shown.test is not None and not shown.test_withheld


def test_output_is_capped_and_round_trips():
    out = to_output(nan_result(), show_test=False, output_chars=10)
    assert out.stdout.endswith("x" * 10) and "40 characters cut" in out.stdout
    assert cap("short", 10) == "short"
    back = read_result(json.loads(json.dumps(dataclasses.asdict(out))))
    assert type(back) is EvalResult and back.status == "ok" and back.ran and back.test is None
    assert back.validation == out.validation and math.isclose(back.timings["total"], 1.5)
    assert not hasattr(back, "reward") and back.predictions == {}
    staged = read_result(dataclasses.asdict(to_output(dataclasses.replace(nan_result(), stage="fit"),
                                                      show_test=False, output_chars=10)))
    assert staged.stage == "fit"


def test_the_tool_output_is_the_results_own_schema():
    """Every field of EvalResult is in the tool's output record, with the same type; the
    predictions are not a field, so they never enter a schema or a reply."""
    result_fields = {f.name: f.type for f in dataclasses.fields(EvalResult)}
    output_fields = {f.name: f.type for f in dataclasses.fields(EvaluationOutput)}
    assert result_fields.items() <= output_fields.items()
    assert set(output_fields) - set(result_fields) == {"ran", "test_withheld", "reward"}
    assert "predictions" not in output_fields


def test_cache_keys_on_normalized_source_evicts_lru_and_skips_infra_errors():
    cache = ResultCache(max_entries=2)
    a, a_commented, b, c = (Program("x = 1\n"), Program("x = 1  # same\n\n"), Program("y = 2\n"), Program("z = 3\n"))
    assert cache.key(a, "v1") == cache.key(a_commented, "v1") != cache.key(a, "v2")
    cache.put(cache.key(a, "v1"), EvalResult(status="ok"))
    assert not cache.put(cache.key(b, "v1"), EvalResult(status="infra_error"))
    cache.put(cache.key(b, "v1"), EvalResult(status="runtime_error"))
    got = cache.get(cache.key(a_commented, "v1"))
    got.status = "timeout"  # a copy: the cache keeps its own
    cache.put(cache.key(c, "v1"), EvalResult(status="ok"))  # evicts b, the least recently used
    assert cache.get(cache.key(a, "v1")).status == "ok"
    assert cache.key(b, "v1") not in cache and len(cache) == 2
    assert (cache.hits, cache.misses) == (2, 0)
    assert not ResultCache(0).put(cache.key(a, "v1"), EvalResult(status="ok"))


def test_cache_evicts_by_the_bytes_of_the_predictions_it_holds():
    def with_predictions(n: int) -> EvalResult:
        result = EvalResult(status="ok")
        result.predictions["validation"] = np.zeros(n, dtype=np.float32)
        return result

    cache = ResultCache(max_entries=100, max_bytes=1000)
    a, b, c = Program("x = 1\n"), Program("y = 2\n"), Program("z = 3\n")
    assert cache.put(cache.key(a, "v"), with_predictions(100))  # 400 bytes
    assert cache.put(cache.key(b, "v"), with_predictions(100))  # 800 in all
    assert cache.put(cache.key(b, "v"), with_predictions(100)) and cache.bytes == 800, "a re-put replaces"
    assert cache.put(cache.key(c, "v"), with_predictions(100))  # 1200 > 1000: a, the oldest, goes
    assert cache.key(a, "v") not in cache and cache.bytes == 800 and len(cache) == 2
    assert not cache.put(cache.key(a, "v"), with_predictions(300)), "larger than the whole budget"
    assert cache.bytes == 800


@pytest.mark.parametrize(("override", "words"), [
    ("env.pool.num_actors=0", "env.pool.num_actors must be >= 1"),
    ("env.pool.cpus_per_actor=0", "env.pool.cpus_per_actor must be > 0"),
    ("env.pool.deadline_s=-1", "env.pool.deadline_s must be > 0"),
    ("env.server.port=70000", r"env.server.port must be in \[1, 65535\]"),
])
def test_bad_env_settings_fail_at_start_naming_the_key(override, words):
    with pytest.raises(ValueError, match=words.replace(".", r"\.")):
        load_config([override])


def test_actor_resets_the_episode_between_programs(cfg, dataset, split, baseline_dir, work_root):
    """The actor class without Ray: overrides left by a previous episode are forgotten."""
    actor = EnvActor(cfg, dataset, split, baseline_dir=str(baseline_dir), work_root=str(work_root))
    try:
        actor.session.set_override("define_model", "def define_model():\n    return None\n")
        forbidden = "def create_features(df, feature_cols):\n    return eval('df')\n"  # refused before running
        out = anyio.run(actor.evaluate, forbidden, 60.0)
        assert type(out) is EvalResult and out.status == "forbidden" and actor.session.overrides == {}
        assert out.program_hash == Program(forbidden).hash and out.predictions == {}
    finally:
        actor.session.close()


def test_server_command_line_maps_flags_to_config_keys(tmp_path):
    from aiforml.env.server import config_overrides, main, parse_args

    args = parse_args(["--data", "synthetic", "--show-test", "--port", "9000", "--set", "env.sandbox.wall_s=30"])
    overrides = config_overrides(args)
    assert overrides[0] == "data=synthetic" and "env.server.show_test=true" in overrides
    cfg = load_config(overrides)
    assert cfg.env.server.show_test and cfg.env.server.port == 9000 and cfg.env.server.host == "127.0.0.1"
    assert cfg.env.sandbox.wall_s == 30
    assert main(["--data", str(tmp_path / "no-such-folder")]) == 2


def test_the_result_cache_key_ignores_reward_weights_but_not_what_changes_a_result() -> None:
    from aiforml.compose import load_config
    from aiforml.env.pool import env_fingerprint

    base = env_fingerprint(load_config([]))
    assert env_fingerprint(load_config(["reward.weights.uniqueness=0.4", "reward.performance=mean_corr"])) == base
    for override in ("env.pipeline.n_estimators=50", "env.trading.cost_bps=5", "env.sandbox.wall_s=30"):
        assert env_fingerprint(load_config([override])) != base, override
