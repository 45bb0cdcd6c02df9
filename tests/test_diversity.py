"""The reference set (uniqueness scores, near-duplicate rule, meta model, persistence), the
diversity figures of a cycle, and the feedback programs chosen for the prompt."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy.stats import norm

from aiforml.config import DataConfig, DiversityConfig, EnvConfig, PipelineConfig, RewardConfig
from aiforml.data import load_dataset, split_dataset
from aiforml.descriptors import describe_program
from aiforml.diversity import batch_diversity, cycle_diversity, diversity_metrics
from aiforml.pipeline.evaluator import Evaluator
from aiforml.program import EvalResult, Program, SplitMetrics
from aiforml.reference import ReferenceSet, feedback_prompt, uniqueness_metrics
from aiforml.uniqueness import EraIndex, meta_model, per_era_contribution

ERAS = np.array([1, 1, 1, 2, 2, 2])
TARGET = np.array([0.0, 1.0, 0.5, 0.0, 1.0, 0.5])
BASELINE = np.array([0.1, 0.2, 0.3, 0.1, 0.2, 0.3])


def ran(preds, sharpe: float = 1.0, status: str = "ok") -> EvalResult:
    result = EvalResult(status=status, validation=SplitMetrics(sharpe=sharpe))
    result.predictions["validation"] = np.asarray(preds, dtype=np.float64)
    return result


def program(tag: str, model: str = "Ridge") -> Program:
    return Program(f"def define_model():\n    from sklearn.linear_model import {model}\n"
                   f"    return {model}()  # {tag}\n")


def test_score_by_hand_against_the_baseline_only():
    ref = ReferenceSet(ERAS, TARGET, BASELINE, RewardConfig(uniqueness="baseline", contribution_scale=0.5))
    preds = np.array([0.0, 2.0, 1.0, 1.0, 2.0, 3.0])
    s = ref.score(ran(preds))
    # contribution beyond the baseline q in era 1, 0 in era 2 (tests/test_uniqueness.py by hand)
    q = norm.ppf(5 / 6)
    assert s.baseline_contribution == pytest.approx(q / 2)
    # rank corr with the baseline: era 1 ranks (1,3,2) vs (1,2,3) -> 0.5, era 2 the same order -> 1
    assert s.max_corr == pytest.approx(0.75)
    assert not s.duplicate and s.value == pytest.approx(math.tanh(q))
    expected = np.mean(per_era_contribution(preds, meta_model([BASELINE], EraIndex.from_eras(ERAS)), TARGET, ERAS))
    assert s.contribution == pytest.approx(expected) == pytest.approx(q / 2)  # the meta model is the baseline alone
    both = ReferenceSet(ERAS, TARGET, BASELINE, RewardConfig(uniqueness="both", contribution_scale=0.5))
    assert both.score(ran(preds)).value == pytest.approx((math.tanh(q) + math.tanh(expected / 0.5)) / 2)


def test_failed_or_prediction_less_results_get_no_score():
    ref = ReferenceSet(ERAS, TARGET, BASELINE, RewardConfig())
    assert ref.score(EvalResult(status="runtime_error")) is None
    assert ref.score(ran(BASELINE, status="leakage_suspected")) is None
    assert ref.score(EvalResult(status="ok")) is None


def test_a_copy_of_the_baseline_is_a_duplicate():
    ref = ReferenceSet(ERAS, TARGET, BASELINE, RewardConfig(uniqueness="contribution"))
    s = ref.score(ran(BASELINE * 10 + 1))  # same ranks
    assert s.duplicate and s.value == 0.0 and s.max_corr == pytest.approx(1.0)


def test_archived_programs_count_from_the_next_cycle_and_feed_the_meta_model(tmp_path):
    cfg = RewardConfig(meta_model_size=1)
    ref = ReferenceSet(ERAS, TARGET, BASELINE, cfg, store_dir=tmp_path)
    other = [0.3, 0.1, 0.2, 0.2, 0.3, 0.1]
    assert not ref.score(ran(other)).duplicate
    ref.add_cycle([program("a"), None, program("c", model="Lasso")], [ran(other, sharpe=2.0), EvalResult(status="parse_error"),
                                                       ran([1, 2, 3, 3, 1, 2], sharpe=0.5)])
    assert len(ref.entries) == 2
    assert ref.score(ran(other)).duplicate  # now archived
    index = EraIndex.from_eras(ERAS)
    np.testing.assert_allclose(ref.meta, meta_model([BASELINE, np.array(other)], index))  # best 1 + baseline
    assert (tmp_path / f"{program('a').hash}.npy").is_file()
    again = ReferenceSet(ERAS, TARGET, BASELINE, cfg, store_dir=tmp_path)
    rows = [{"program": program("a").source, "program_hash": program("a").hash, "status": "ok", "val_sharpe": 2.0}]
    assert again.restore(rows) == 1
    assert again.score(ran(other)).duplicate


def test_cycle_diversity_by_hand():
    descriptors = [describe_program(s) for s in (
        "def define_model():\n    import lightgbm\n    return lightgbm.LGBMRegressor()\n",
        "def define_model():\n    import lightgbm\n    return lightgbm.LGBMRegressor(n_estimators=5)\n",
        "def create_features(df, feature_cols):\n    return df[feature_cols].rank()\n",
        "def define_model():\n    from sklearn.linear_model import Ridge\n    return Ridge()\n",
    )]
    a = np.array([0.1, 0.2, 0.3, 0.1, 0.2, 0.3])
    preds = [a, a * 2, np.array([0.3, 0.2, 0.1, 0.3, 0.2, 0.1])]
    fig = cycle_diversity(descriptors, preds, EraIndex.from_eras(ERAS), 0.9)
    assert fig["family_shares"] == {"lightgbm": 0.5, "default": 0.25, "linear": 0.25}
    assert fig["share_own_features"] == 0.25 and fig["idea_shares"]["ranks"] == 0.25
    assert fig["clusters"] == 2 and fig["distinct_families"] == 3
    m = diversity_metrics(fig)
    assert m["diversity/family/lightgbm"] == 0.5 and m["diversity/family/torch"] == 0.0
    assert m["diversity/top_family_share"] == 0.5 and m["diversity/clusters"] == 2
    assert diversity_metrics(cycle_diversity([], [], None, 0.9)) == {}


def test_batch_diversity_counts_distinct_programs_that_ran():
    results = [ran(BASELINE), ran(BASELINE), EvalResult(status="infra_error"), EvalResult(status="runtime_error")]
    for r in results[:2]:
        r.program_hash = "same"
    programs = [program("a"), program("a"), program("x"), program("y")]
    fig = batch_diversity(programs, results, EraIndex.from_eras(ERAS), 0.9)
    assert fig["n_programs"] == 3 and fig["clusters"] == 1


def test_uniqueness_metrics_by_hand():
    ref = ReferenceSet(ERAS, TARGET, BASELINE, RewardConfig(contribution_scale=0.5))
    scores = [ref.score(ran([0.0, 2.0, 1.0, 1.0, 2.0, 3.0])), ref.score(ran(BASELINE)), None]
    m = uniqueness_metrics(scores)
    q = norm.ppf(5 / 6)
    assert m["uniqueness/duplicate_rate"] == 0.5
    assert m["uniqueness/mean"] == pytest.approx(math.tanh(q) / 2)
    assert m["uniqueness/baseline_contribution_mean"] == pytest.approx((q / 2 + 0.0) / 2)


def test_feedback_shows_best_per_family_distinct_and_never_test_scores():
    ref = ReferenceSet(ERAS, TARGET, BASELINE, RewardConfig())
    lgbm = lambda n: Program(f"def define_model():\n    import lightgbm\n    return lightgbm.LGBMRegressor(n_estimators={n})\n")  # noqa: E731
    ridge = program("a")
    results = [ran([3, 1, 2, 3, 1, 2], 1.5), ran([1, 3, 2, 1, 3, 2], 1.2), ran([2, 1, 3, 2, 1, 3], 0.4)]
    results[0].test = SplitMetrics(sharpe=9.87)
    ref.add_cycle([lgbm(1), lgbm(2), ridge], results)
    cfg = DiversityConfig(feedback=True, feedback_programs=3, feedback_chars=2000)
    text = feedback_prompt("TASK\n", ref, cfg)
    assert text.endswith("TASK\n")
    assert "lightgbm, validation Sharpe 1.50" in text and "n_estimators=1)" in text
    assert "n_estimators=2" not in text  # second best lightgbm: same family
    assert "linear, validation Sharpe 0.40" in text and ridge.source.strip() in text
    assert "9.87" not in text
    assert feedback_prompt("TASK\n", ref, DiversityConfig()) == "TASK\n"  # off by default
    short = feedback_prompt("TASK\n", ref, DiversityConfig(feedback=True, feedback_chars=200))
    assert len(short) <= 200 + len("TASK\n") and "(code left out)" in short


# --- the near-duplicate rule on real evaluations -------------------------------------------
ORIGINAL = '''
def create_features(df, feature_cols):
    selected = feature_cols[::2]
    frame = df[selected].astype("float32")
    frame["spread"] = frame.max(axis=1) - frame.min(axis=1)
    return frame

def define_model():
    from sklearn.linear_model import Ridge
    return Ridge(alpha=10.0)
'''
RENAMED = (ORIGINAL.replace("selected", "chosen_cols").replace("frame", "table")
           .replace('"spread"', '"span"'))
DIFFERENT = ORIGINAL.replace("feature_cols[::2]", "feature_cols[1::3]").replace("alpha=10.0", "alpha=0.1")


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory):
    data_cfg = DataConfig(cache_dir=str(tmp_path_factory.mktemp("data")))
    dataset = load_dataset(data_cfg)
    split = split_dataset(dataset, data_cfg)
    ev = Evaluator(dataset, split, EnvConfig(pipeline=PipelineConfig(n_estimators=20)),
                   work_root=tmp_path_factory.mktemp("evals"), cache_dir=tmp_path_factory.mktemp("base"))
    yield ev
    ev.close()


def test_near_duplicate_rule_triggers_on_a_renamed_copy(evaluator):
    n_val = len(evaluator.task.validation_rows)
    rows = evaluator.task.validation_rows
    ds = evaluator.dataset
    ref = ReferenceSet(ds.eras[rows], ds.targets[rows, 0], evaluator.baseline_predictions()[:n_val],
                       RewardConfig(uniqueness="both"))
    results = {}
    for name, source in (("original", ORIGINAL), ("renamed", RENAMED), ("different", DIFFERENT)):
        result = evaluator.evaluate(Program(source))
        assert result.status == "ok", result.message
        result.predictions = {"validation": evaluator.validation_predictions(result)}
        results[name] = result
    assert Program(ORIGINAL).hash != Program(RENAMED).hash
    first = ref.score(results["original"])
    assert not first.duplicate and first.value != 0
    ref.add_cycle([Program(ORIGINAL)], [results["original"]])
    copy = ref.score(results["renamed"])
    assert copy.duplicate and copy.value == 0.0 and copy.max_corr > 0.99
    other = ref.score(results["different"])
    assert not other.duplicate and other.value != 0


# --- being different pays only where it also predicts the target --------------------------
MODES = ("baseline", "contribution", "both")


@pytest.mark.parametrize("mode", MODES)
def test_being_right_differently_earns_more_than_copying_the_default(mode):
    rng = np.random.default_rng(5)
    eras = np.repeat(np.arange(20), 300)
    target = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], p=[0.05, 0.2, 0.5, 0.2, 0.05], size=6000)
    default = target + rng.normal(scale=0.5, size=6000)
    right_differently = target + rng.normal(scale=0.5, size=6000)  # as good, with its own errors
    ref = ReferenceSet(eras, target, default, RewardConfig(uniqueness=mode))
    value = {name: ref.score(ran(p)).value for name, p in (
        ("copy", default * 2 + 1), ("right", right_differently), ("wrong", -right_differently),
        ("noise", rng.normal(size=6000)))}
    assert value["copy"] == 0.0
    assert value["right"] > 0.5 > value["noise"]
    assert value["wrong"] < -0.5  # different and wrong costs, it does not pay


NOISE = '''
def define_model():
    import numpy as np

    class Noise:
        def fit(self, X, y):
            return self

        def predict(self, X):
            return np.random.default_rng({seed}).normal(size=len(X))

    return Noise()
'''


def test_noise_earns_less_than_the_default_program_under_every_mode(evaluator):
    """The issue's case: a model returning random numbers scored +0.25 with ppo_unique's
    weights through the CLI (uniqueness 0.99), more than weak honest programs earn."""
    from aiforml.compose import load_config
    from aiforml.reward import compute_reward

    weights = load_config(["+experiment=ppo_unique"]).reward
    assert weights.weights["uniqueness"] > 0
    rows = evaluator.task.validation_rows
    ds, n_val = evaluator.dataset, len(rows)
    default_preds = evaluator.baseline_predictions()[:n_val]
    default = EvalResult(status="ok", validation=evaluator.task.score(default_preds, rows, default_preds))
    default.predictions["validation"] = default_preds
    results = {}
    for name, source in [("ridge", ORIGINAL), *((f"noise{seed}", NOISE.format(seed=seed)) for seed in range(3))]:
        result = evaluator.evaluate(Program(source))
        assert result.status == "ok", result.message
        result.predictions = {"validation": evaluator.validation_predictions(result)}
        results[name] = result
    noises = [results[f"noise{seed}"] for seed in range(3)]
    assert all(abs(r.validation.baseline_corr) < 0.05 for r in noises)  # as different as can be
    for mode in MODES:
        cfg = dataclasses.replace(weights, uniqueness=mode)
        ref = ReferenceSet(ds.eras[rows], ds.targets[rows, 0], default_preds, cfg)
        ref.add_cycle([Program(ORIGINAL)], [results["ridge"]])  # the meta model: the default and a ridge
        scored = [(r, ref.score(r).value) for r in [default, *noises]]
        loop = [compute_reward(r, cfg, u).reward for r, u in scored]  # the training loop's reward
        cli = [compute_reward(r, cfg).reward for r, _ in scored]  # python -m aiforml.evaluate's
        assert max(loop[1:]) < loop[0] and max(cli[1:]) < cli[0], (mode, loop, cli)
        assert all(abs(u) < 0.5 for _, u in scored[1:]), (mode, scored)  # was 0.99 as 1 - |corr|
