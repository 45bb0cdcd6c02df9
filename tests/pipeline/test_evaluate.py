"""The evaluator end to end: the default program scores in its band; failures are statuses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aiforml.pipeline.defaults import default_program_source, default_sources
from aiforml.program import Program

# Documented in aiforml/data/synthetic.py for the fast preset (default LightGBM, validation).
DEFAULT_MEAN_CORR_BAND = (0.02, 0.20)
DEFAULT_MIN_SHARPE = 0.8


def with_default(**steps: str) -> Program:
    """The default program with some steps replaced."""
    sources = default_sources()
    sources.update(steps)
    return Program("\n\n".join(sources.values()))


def test_default_program_scores_within_the_documented_band(evaluator):
    result = evaluator.evaluate(Program(default_program_source()))
    assert result.status == "ok", (result.message, result.traceback)
    lo, hi = DEFAULT_MEAN_CORR_BAND
    assert lo < result.validation.mean_corr < hi
    assert result.validation.sharpe > DEFAULT_MIN_SHARPE
    assert result.cv is not None and result.cv.mean_corr > 0
    assert result.test is not None and result.test.n_eras > 0
    assert result.validation.baseline_corr == pytest.approx(1.0)
    assert result.isolation


def test_identical_programs_score_identically(evaluator):
    first = evaluator.evaluate(Program(default_program_source()))
    second = evaluator.evaluate(Program("# a comment\n" + default_program_source()))
    assert first.program_hash == second.program_hash
    assert first.validation.per_era_corr == second.validation.per_era_corr


def test_a_better_pipeline_outscores_a_worse_one(evaluator):
    worse = with_default(define_model=(
        "def define_model():\n"
        "    from sklearn.linear_model import Ridge\n"
        "    return Ridge(alpha=1.0)\n"))
    good = evaluator.evaluate(Program(default_program_source()))
    bad = evaluator.evaluate(worse)
    assert bad.status == "ok", bad.message
    assert good.validation.sharpe > bad.validation.sharpe
    assert bad.validation.baseline_corr < 0.99  # a different model predicts differently


@pytest.mark.parametrize(("source", "status", "needle"), [
    ("def create_features(df, feature_cols)\n    return df\n", "syntax_error", "line 1"),
    ("def create_features(df, feature_cols):\n    return df[['feature_does_not_exist']]\n",
     "runtime_error", "KeyError"),
    ("def create_features(df, feature_cols):\n    return df[feature_cols] + 'a'\n", "runtime_error", "TypeError"),
    ("from sklearn.linear_model import NoSuchModel\n", "import_error", "NoSuchModel"),
    ("def load_data():\n    return None\n", "forbidden", "locked step"),
    ("def run_optimization(*a):\n    return None\n", "forbidden", "locked step"),
    ("import os\n", "forbidden", "import of 'os'"),
    ("def define_model():\n    return eval('None')\n", "forbidden", "eval"),
    ("def create_features(df, feature_cols):\n    return df[feature_cols].iloc[:10]\n",
     "invalid_output", "one row per input row"),
    ("def define_model():\n    return object()\n", "runtime_error", "fit"),
    ("def create_target(df):\n    return df['target'] * float('nan')\n", "invalid_output", "NaN"),
])
def test_program_failures_are_statuses(evaluator, source, status, needle):
    result = evaluator.evaluate(Program(source))
    assert result.status == status, (result.message, result.traceback)
    assert needle in result.message + result.traceback
    assert result.validation is None


def test_runtime_error_traceback_points_into_the_program(evaluator):
    result = evaluator.evaluate(Program(
        "def create_features(df, feature_cols):\n    x = 1\n    return df['nope']\n"))
    assert result.status == "runtime_error"
    assert 'File "program.py", line 3, in create_features' in result.traceback
    assert "harness" not in result.traceback


def test_nan_predictions_are_invalid_output(evaluator):
    result = evaluator.evaluate(with_default(define_model=(
        "def define_model():\n"
        "    import numpy as np\n"
        "    class M:\n"
        "        def fit(self, X, y):\n"
        "            return self\n"
        "        def predict(self, X):\n"
        "            return np.full(len(X), np.nan)\n"
        "    return M()\n")))
    assert result.status == "invalid_output"
    assert "NaN" in result.message


def test_leaky_row_wise_cv_is_flagged(evaluator):
    result = evaluator.evaluate(with_default(define_cv=(
        "def define_cv(eras, embargo):\n"
        "    from sklearn.model_selection import KFold\n"
        "    import numpy as np\n"
        "    return list(KFold(3, shuffle=True, random_state=0).split(np.arange(len(eras))))\n")))
    assert result.status == "leakage_suspected"
    assert "share" in result.message


def test_cv_without_embargo_is_flagged(evaluator):
    result = evaluator.evaluate(with_default(define_cv=(
        "def define_cv(eras, embargo):\n"
        "    import numpy as np\n"
        "    u = np.unique(eras)\n"
        "    cut = u[len(u) // 2]\n"
        "    return [(np.flatnonzero(eras < cut), np.flatnonzero(eras >= cut))]\n")))
    assert result.status == "leakage_suspected"
    assert "embargo" in result.message


def test_targets_never_reach_the_feature_stage(evaluator):
    # create_target sees the training targets; it smuggles them to create_features.
    result = evaluator.evaluate(with_default(
        create_target=(
            "STASH = {}\n"
            "def create_target(df):\n"
            "    STASH['y'] = df['target'].to_numpy()\n"
            "    return df['target']\n"),
        create_features=(
            "def create_features(df, feature_cols):\n"
            "    import numpy as np\n"
            "    X = df[feature_cols].copy()\n"
            "    y = STASH['y']\n"
            "    X['leak'] = np.r_[y, np.full(len(df) - len(y), 0.5)]\n"
            "    return X\n")))
    # create_target runs in the model stage, after the features were computed elsewhere
    assert result.status == "runtime_error" and "KeyError: 'y'" in result.message, result.message


def test_child_cannot_see_validation_targets(evaluator, split):
    # The only targets in the child's view are the training rows'.
    result = evaluator.evaluate(Program(
        "def create_features(df, feature_cols):\n"
        "    targets = [c for c in df.columns if c.startswith('target')]\n"
        "    assert not targets, targets\n"
        "    return df[feature_cols]\n"))
    assert result.status == "ok", result.message
    assert result.predictions["eval"].shape == (len(evaluator.task.eval_rows),)
    assert np.isfinite(result.predictions["eval"]).all()


WRITES_IN_PLACE = '''
def create_target(df):
    import numpy as np
    cols = [c for c in df.columns if c.startswith("feature_")]
    df.loc[:, cols[0]] = 0          # the frame lies on the shared hand-off file: a write is the child's own
    df.iloc[:, 1] = 1
    return df["target"].fillna(0.0).to_numpy()


def define_model():
    from sklearn.linear_model import Ridge
    return Ridge(alpha=10.0)


def create_features(df, feature_cols):
    out = df[feature_cols].copy()
    out.loc[:, feature_cols[1]] = 3
    return out
'''


def test_a_program_may_write_into_its_frames_and_the_shared_data_stays_as_it_was(evaluator):
    """The frames are copy-on-write maps of the hand-off files: an honest in-place edit works,
    and what it changed is the child's alone (the next program reads the data unchanged)."""
    before = evaluator.evaluate(Program(default_program_source()))
    edited = evaluator.evaluate(Program(WRITES_IN_PLACE))
    after = evaluator.evaluate(Program(default_program_source()))
    assert edited.status == "ok", (edited.message, edited.traceback)
    assert after.validation.per_era_corr == before.validation.per_era_corr


RENAMES_ITS_INPUT = '''
import numpy as np


class Renaming:
    def fit(self, X, y):
        self.names = list(X.columns)
        return self

    def predict(self, X):
        if list(X.columns) != self.names:
            raise RuntimeError(f"a block came with other column names: {list(X.columns)[:3]}")
        X.columns = [f"renamed_{i}" for i in range(X.shape[1])]  # the frame's own, not the next block's
        X.rename(columns={"renamed_0": "again"}, inplace=True)
        return np.asarray(X, dtype=float).mean(axis=1)


def define_model():
    return Renaming()
'''


def test_every_streamed_block_has_the_column_names_whatever_the_model_did_to_the_last(evaluator):
    """The blocks' frames share one column index: a model that renames its input in place
    changes its own frame only, and the next block still comes with the training names."""
    result = evaluator.evaluate(Program(RENAMES_ITS_INPUT))
    assert result.status == "ok", (result.message, result.traceback)
    assert result.validation.n_eras > 1


def test_the_locked_fit_caps_lightgbms_bin_sample_unless_the_program_sets_it():
    import lightgbm
    from sklearn.linear_model import Ridge

    from aiforml.pipeline.harness import lean

    assert lean(lightgbm.LGBMRegressor(), 50_000).get_params()["subsample_for_bin"] == 50_000
    assert lean(lightgbm.LGBMRegressor(subsample_for_bin=70_000), 50_000).get_params()["subsample_for_bin"] == 70_000
    kept = lean(lightgbm.LGBMRegressor(bin_construct_sample_cnt=7), 50_000).get_params()
    assert kept["bin_construct_sample_cnt"] == 7 and kept["subsample_for_bin"] == 200_000
    assert "bin_construct_sample_cnt" not in lean(Ridge(), 50_000).get_params()
    assert lean(lightgbm.LGBMRegressor(), 50_000).get_params()["force_col_wise"] is True
    kept = lean(lightgbm.LGBMRegressor(force_row_wise=True), 50_000).get_params()
    assert kept["force_row_wise"] is True and "force_col_wise" not in kept


def test_lightgbm_builds_the_same_model_column_wise_as_row_wise():
    """The locked fit's force_col_wise saves the row-wise copy and changes no model."""
    import lightgbm

    rng = np.random.default_rng(6)
    X = pd.DataFrame(rng.choice(5, size=(20_000, 60), p=[0.05, 0.2, 0.5, 0.2, 0.05]).astype(np.int8))
    y = X.iloc[:, :5].to_numpy().sum(axis=1) * 0.1 + rng.standard_t(4, size=len(X))
    texts = [lightgbm.LGBMRegressor(n_estimators=10, colsample_bytree=0.3, verbose=-1, **{mode: True}).fit(X, y)
             .booster_.model_to_string().split("parameters:")[0] for mode in ("force_col_wise", "force_row_wise")]
    assert texts[0] == texts[1]


def _lightgbm_fit(X, y, batched: bool, **params):
    import lightgbm

    from aiforml.pipeline import harness

    model = lightgbm.LGBMRegressor(n_estimators=8, num_leaves=15, colsample_bytree=0.5, verbose=-1,
                                   subsample_for_bin=3000, **params)
    pushed = []
    original_push = lightgbm.Dataset._push_rows

    def counting_push(self, data):
        pushed.append(len(data))
        return original_push(self, data)

    lightgbm.Dataset._push_rows = counting_push
    threshold = harness.BATCHED_FROM_CELLS
    harness.BATCHED_FROM_CELLS = 0 if batched else 10**12
    try:
        with harness.rows_in_batches(model):
            model.fit(X, y)
    finally:
        harness.BATCHED_FROM_CELLS = threshold
        lightgbm.Dataset._push_rows = original_push
    return model, pushed


def test_the_locked_fit_reads_lightgbms_rows_in_batches_and_builds_the_same_model():
    """The batched read avoids LightGBM's float32 copy of the whole frame; the model is the
    same booster either way (features, bins, splits), for int8 features and engineered floats."""
    import lightgbm

    rng = np.random.default_rng(3)
    raw = rng.integers(0, 5, size=(10_000, 40), dtype=np.int8)
    y = raw[:, :5].sum(axis=1) + rng.normal(size=len(raw))
    frames = {"int8": pd.DataFrame(raw, columns=[f"feature_{k}" for k in range(raw.shape[1])]),
              "mixed": pd.DataFrame({"a": raw[:, 0], "b": raw[:, 1] * 0.37 + rng.normal(size=len(raw)),
                                     "c": np.where(raw[:, 2] == 4, np.nan, raw[:, 2]).astype(np.float32)})}
    for name, X in frames.items():
        whole, pushed_whole = _lightgbm_fit(X, y, batched=False)
        batched, pushed = _lightgbm_fit(X, y, batched=True)
        assert pushed_whole == [] and sum(pushed) == len(X) and max(pushed) <= 4096, name
        assert batched.booster_.model_to_string() == whole.booster_.model_to_string(), name
        assert batched.feature_name_ == list(X.columns), name
        np.testing.assert_array_equal(batched.predict(X), whole.predict(X))
    assert lightgbm.sklearn.Dataset is lightgbm.basic.Dataset  # put back after the fit


def test_int8_features_get_the_same_lightgbm_model_from_the_capped_bin_sample():
    """env.pipeline.bin_sample_rows is free for int8 features: their five values show in any
    sample of that size, or of the 1,000 rows a wide frame may get (env.pipeline.bin_sample_mb),
    so the model is the one LightGBM's own 200,000-row sample builds."""
    import lightgbm

    from aiforml.config import PipelineConfig
    from aiforml.pipeline.harness import MIN_BIN_SAMPLE

    rng = np.random.default_rng(4)
    X = pd.DataFrame(rng.choice(5, size=(3 * PipelineConfig().bin_sample_rows, 12),
                                p=[0.05, 0.2, 0.5, 0.2, 0.05]).astype(np.int8))
    y = X.iloc[:, :3].sum(axis=1).to_numpy() * 0.1 + rng.normal(size=len(X))
    texts = [lightgbm.LGBMRegressor(n_estimators=5, subsample_for_bin=rows, verbose=-1).fit(X, y)
             .booster_.model_to_string().split("parameters:")[0]
             for rows in (200_000, PipelineConfig().bin_sample_rows, MIN_BIN_SAMPLE)]
    assert texts[0] == texts[1] == texts[2]


def test_the_bin_sample_shrinks_to_its_memory_budget_on_wide_frames():
    from aiforml.pipeline.harness import MIN_BIN_SAMPLE, bin_sample

    assert bin_sample(20_000, 100, 42) == 20_000
    assert bin_sample(20_000, 100, 2_376) == 5_516  # Numerai's full width: 100 MB of doubles
    assert bin_sample(20_000, 100, 10**6) == MIN_BIN_SAMPLE
    assert bin_sample(None, 100, 2_376) is None


def test_lightgbm_predicts_many_rows_in_batches_with_the_same_values(monkeypatch):
    """A CV fold's rows are predicted 4,096 at a time (no float32 copy of the whole fold):
    a tree's prediction of a row depends on that row alone, so the values are the same."""
    import lightgbm
    from sklearn.linear_model import Ridge

    from aiforml.pipeline import harness

    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.integers(0, 5, size=(5_000, 30), dtype=np.int8))
    y = X.iloc[:, :4].sum(axis=1).to_numpy() + rng.normal(size=len(X))
    model = lightgbm.LGBMRegressor(n_estimators=10, verbose=-1).fit(X, y)
    whole = harness.predict(model, X)
    calls = []
    original = lightgbm.LGBMRegressor.predict
    monkeypatch.setattr(lightgbm.LGBMRegressor, "predict", lambda self, X, **kw: calls.append(len(X)) or original(self, X, **kw))
    monkeypatch.setattr(harness, "BATCHED_FROM_CELLS", 0)
    monkeypatch.setattr(harness, "PREDICT_BATCH_ROWS", 1_024)
    np.testing.assert_array_equal(harness.predict(model, X), whole)
    assert calls == [1_024] * 4 + [904]
    ridge = Ridge().fit(X, y)  # any other model predicts the frame as it is
    np.testing.assert_array_equal(harness.predict(ridge, X), ridge.predict(X))


def test_a_fold_of_consecutive_rows_is_a_view_of_the_training_rows():
    from aiforml.pipeline.harness import rows_at

    X = pd.DataFrame(np.arange(60, dtype=np.int8).reshape(20, 3), columns=list("abc"))
    for idx in (np.arange(4, 12), np.array([1, 3, 4]), np.array([7])):
        rows = rows_at(X, idx)
        pd.testing.assert_frame_equal(rows, X.iloc[idx], check_index_type=False)
        assert np.shares_memory(rows.to_numpy(), X.to_numpy()) == (idx[-1] - idx[0] == len(idx) - 1)


def test_a_large_feature_matrix_has_its_guards_run_after_the_model_stage(make_evaluator, monkeypatch):
    """env.pipeline.guards_after_mb: beside the model stage (0, the default), or after it for
    a matrix past the size (memory for time); the guards run and find the same either way."""
    import dataclasses
    import time

    from aiforml.pipeline.evaluator import Evaluator

    events: list[tuple[str, float]] = []
    guard, model_stage = Evaluator._guard, Evaluator._model_stage

    def timed_guard(self, *args, **kwargs):
        events.append(("guard", time.monotonic()))
        return guard(self, *args, **kwargs)

    def timed_model_stage(self, *args, **kwargs):
        out = model_stage(self, *args, **kwargs)
        events.append(("model end", time.monotonic()))
        return out

    monkeypatch.setattr(Evaluator, "_guard", timed_guard)
    monkeypatch.setattr(Evaluator, "_model_stage", timed_model_stage)
    source = default_program_source().replace("return df[feature_cols]", "return df[feature_cols] * 2")
    ev = make_evaluator()
    try:
        orders = []
        for after_mb in (0, 1):
            ev.cfg = dataclasses.replace(ev.cfg, pipeline=dataclasses.replace(ev.cfg.pipeline, guards_after_mb=after_mb))
            events.clear()
            result = ev.evaluate(Program(source + f"\nRUN = {after_mb}\n"), with_baseline=False)
            assert result.status == "ok", result.message
            orders.append([name for name, _ in sorted(events, key=lambda e: e[1])])
        assert orders[0][0] == "guard" and orders[0].count("guard") == 2  # beside: a guard before the model ends
        assert orders[1] == ["model end", "guard", "guard"]  # after (the matrix is a few MB)
    finally:
        ev.close()
