"""The staged evaluation against hostile programs: what the child holds at each stage, and
what the trusted side believes (stage credit, CV, the look-ahead guard's secret cuts)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from aiforml.config import RewardConfig
from aiforml.pipeline.defaults import default_sources
from aiforml.program import Program
from aiforml.reward import compute_reward


def with_default(**steps: str) -> Program:
    sources = default_sources()
    sources.update(steps)
    return Program("\n\n".join(sources.values()))


SMALL_MODEL = '''
def define_model():
    from sklearn.linear_model import Ridge
    return Ridge(alpha=1.0)
'''


def test_the_default_program_runs_and_reuses_the_default_features(evaluator):
    result = evaluator.evaluate(Program(evaluator.task.default_program()))
    assert result.status == "ok", (result.message, result.traceback)
    assert result.stage == "predict"
    assert {"sandbox/model", "score"} <= set(result.timings)
    assert "sandbox/features" not in result.timings  # the default step's matrix, computed once
    assert result.validation.mean_corr > 0.03  # the fast preset's planted signal
    n_eval = len(evaluator.task.validation_rows) + len(evaluator.task.test_rows)
    assert result.predictions["eval"].shape == (n_eval,)
    own = evaluator.evaluate(with_default(create_features=OWN_FEATURES))
    assert own.status == "ok" and own.timings["sandbox/features"] > 0 and own.timings["sandbox/guard"] > 0
    assert own.validation.mean_corr == pytest.approx(result.validation.mean_corr, abs=1e-6)


OWN_FEATURES = '''
def create_features(df, feature_cols):
    return df[feature_cols].astype("float32")
'''
# Its top level patches pandas so that the default step would return ones; a program that
# keeps the default step gets the default matrix all the same.
PATCHED = '''import pandas as pd
_getitem = pd.DataFrame.__getitem__
pd.DataFrame.__getitem__ = lambda self, key: _getitem(self, key) * 0 + 1

def define_model():'''


def test_a_program_keeping_the_default_step_gets_the_default_features(open_evaluator):
    source = open_evaluator.task.default_program().replace("def define_model():", PATCHED, 1)
    result = open_evaluator.evaluate(Program(source))
    assert "sandbox/features" not in result.timings
    assert result.status in ("ok", "runtime_error"), result.message


def test_cuts_are_secret_random_era_boundaries_in_validation_and_test(evaluator):
    task = evaluator.task
    draws = [tuple(evaluator.draw_cuts()) for _ in range(20)]
    assert len(set(draws)) > 10  # drawn afresh per evaluation, not a fixed public grid
    first_validation = task.positions(task.validation_rows[:1])[0]
    eras = evaluator.dataset.eras[task.feature_rows]
    for cuts in draws:
        assert len(cuts) == evaluator.cfg.pipeline.guard_cuts
        for cut in cuts:
            assert cut >= first_validation and eras[cut] != eras[cut - 1]


def test_a_feature_from_a_later_era_is_caught_by_the_guard(evaluator):
    # Links each era to the next one (as a program that follows stocks across eras would):
    # the last era before any cut changes when the later eras are removed. (The fill is no era's
    # mean: a fill of 2.0 equals the mean of a quintile-binned era, 22 of 120 here, so with two
    # random cuts the leak stayed invisible about once in 30 evaluations.)
    result = evaluator.evaluate(with_default(create_features='''
def create_features(df, feature_cols):
    import pandas as pd
    X = df[feature_cols].astype("float64")
    means = df.groupby("era")[feature_cols[0]].mean()
    X["next_era_mean"] = df["era"].map(means.shift(-1)).fillna(-1.0).to_numpy()
    return X
'''))
    assert result.status == "leakage_suspected", (result.message, result.traceback)
    assert "look-ahead" in result.message and result.validation is None


def test_honest_on_short_data_and_leaky_on_the_whole_is_caught(evaluator):
    # The program recognises a guard run by its length and behaves there; the guard compares
    # with what the full run really returned, so behaving in the guard does not help.
    full = len(evaluator.task.feature_rows)
    result = evaluator.evaluate(with_default(create_features=f'''
def create_features(df, feature_cols):
    X = df[feature_cols].astype("float64")
    if len(df) == {full}:
        X[feature_cols[0]] = X.groupby(df["era"])[feature_cols[0]].transform("mean").shift(-500).fillna(2.0)
    return X
'''))
    assert result.status == "leakage_suspected", (result.message, result.traceback)


def test_the_model_stage_holds_no_data_of_the_feature_stage(evaluator):
    # A stash filled by create_features is empty where the model runs: another process.
    result = evaluator.evaluate(with_default(create_features='''
STASH = {}

def create_features(df, feature_cols):
    STASH["rows"] = len(df)
    return df[feature_cols]
''', define_model='''
def define_model():
    from sklearn.linear_model import Ridge
    class Peek(Ridge):
        def predict(self, X):
            return super().predict(X) * 0 + STASH["rows"]
    return Peek()
'''))
    assert result.status == "runtime_error" and "KeyError" in result.message, result.message


def test_predict_sees_one_era_at_a_time(evaluator):
    # The model records how many eras each predict call holds; a batch of all validation and
    # test rows would let it read later rows. Each call must hold exactly one era's rows.
    task = evaluator.task
    sizes = [len(b) for b in task.eval_blocks()]
    assert len(sizes) == len(evaluator.split.validation) + len(evaluator.split.test)
    result = evaluator.evaluate(with_default(define_model='''
def define_model():
    from sklearn.linear_model import Ridge
    class OneEra(Ridge):
        calls = []
        def predict(self, X):
            OneEra.calls.append(len(X))
            return super().predict(X) + len(OneEra.calls)
    return OneEra()
'''))
    assert result.status == "ok", (result.message, result.traceback)
    # prediction k carries k + (calls before validation: one per CV fold): one call per era
    preds = result.predictions["eval"]
    steps = np.diff([preds[sum(sizes[:k])] for k in range(len(sizes))])
    assert np.allclose(np.round(steps), 1, atol=0.3)


def test_a_bad_block_stops_the_stream_at_once(evaluator):
    result = evaluator.evaluate(with_default(define_model='''
def define_model():
    from sklearn.linear_model import Ridge
    import numpy as np
    class Nan(Ridge):
        n = 0
        def predict(self, X):
            Nan.n += 1
            p = super().predict(X)
            return p * np.nan if Nan.n > 5 else p
    return Nan()
'''))
    assert result.status == "invalid_output" and "block" in result.message, result.message
    assert result.timings["sandbox/model"] < evaluator.cfg.sandbox.wall_s / 2  # not a hang to the wall limit


def test_self_reported_cv_never_makes_a_score(evaluator):
    # create_target stashes the training target; predict returns it for CV rows (by index):
    # perfect out-of-fold predictions. They are advisory: no leakage claim, no reward.
    result = evaluator.evaluate(with_default(create_target='''
Y = {}

def create_target(df):
    Y["y"] = df["target"].to_numpy()
    return df["target"]
''', define_model='''
def define_model():
    from sklearn.linear_model import Ridge
    class Echo(Ridge):
        def predict(self, X):
            if len(X) < len(Y["y"]) and X.index.max() < len(Y["y"]) and len(X) > 5000:
                return Y["y"][X.index.to_numpy()]
            return super().predict(X)
    return Echo()
'''))
    assert result.status == "ok", (result.message, result.traceback)
    assert result.cv.mean_corr > 0.5  # the child's numbers are as good as it likes
    assert result.validation.mean_corr < 0.1  # the trusted ones are not
    honest = evaluator.evaluate(with_default(define_model=SMALL_MODEL))
    cfg = RewardConfig()
    assert compute_reward(result, cfg).reward <= compute_reward(honest, cfg).reward + 0.1


def test_stage_credit_comes_from_what_the_parent_validated(evaluator, open_evaluator):
    # A program that claims the last stage in every file it can write, then fails at once.
    result = open_evaluator.evaluate(Program('''
import pathlib
for name in ("stage", "result.json"):
    pathlib.Path(name).write_text("predict")
raise RuntimeError("gone")
'''))
    assert result.status in ("runtime_error", "invalid_output")
    assert result.stage == "parsed"
    no_model = '''
def define_model():
    raise ValueError("no model")
'''
    failed_fit = evaluator.evaluate(with_default(define_model=no_model))
    assert (failed_fit.status, failed_fit.stage) == ("runtime_error", "parsed")  # default features
    own = evaluator.evaluate(with_default(define_model=no_model, create_features=OWN_FEATURES))
    assert (own.status, own.stage) == ("runtime_error", "features")


def test_a_child_dying_mid_stream_fails_at_once(evaluator, open_evaluator):
    result = open_evaluator.evaluate(with_default(define_model='''
def define_model():
    import os
    from sklearn.linear_model import Ridge
    class Dies(Ridge):
        n = 0
        def predict(self, X):
            Dies.n += 1
            if Dies.n > 8:
                os._exit(0)
            return super().predict(X)
    return Dies()
'''))
    assert result.status == "runtime_error" and "without a result" in result.message, result.message
    assert result.stage == "predict"  # some blocks came back valid before it died
    assert result.timings["sandbox/model"] < open_evaluator.cfg.sandbox.wall_s / 2


def test_the_streamer_never_closes_a_descriptor_twice(tmp_path):
    # Its pipe ends for the child are closed once the child holds them; the numbers are then
    # free for another thread's sandbox run, which a second close would break (EBADF).
    from aiforml.pipeline.stream import BlockStreamer

    streamer = BlockStreamer(np.zeros((4, 1)), [np.arange(2), np.arange(2, 4)], tmp_path, tmp_path)
    freed = set(streamer.child_fds)
    streamer.started()
    others = [fd for _ in range(2) for fd in os.pipe()]
    assert freed & set(others), "the freed numbers are given out again"
    streamer.start()
    streamer.stop()
    for fd in others:
        os.fstat(fd)  # still open
        os.close(fd)
