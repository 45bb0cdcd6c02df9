"""The trading task through the staged sandbox runs: default program, walk-forward CV with
embargo, the look-ahead guard (features recomputed on truncated data, one sandbox per secret
cut), and models that try to read later prices."""

from __future__ import annotations

import numpy as np
import pytest

from aiforml.backtest import statistics, to_grid
from aiforml.config import DataConfig, EnvConfig, SandboxConfig, SyntheticPricesConfig
from aiforml.data import load_dataset, split_dataset
from aiforml.pipeline import checks
from aiforml.pipeline.defaults import default_program_source, default_sources
from aiforml.pipeline.evaluator import build_evaluator
from aiforml.program import Program
from aiforml.tasks.trading import TradingTask

DATA = DataConfig(source="synthetic_prices", prices=SyntheticPricesConfig(n_assets=2, n_days=500, seed=3),
                  horizon=5, embargo_eras=5, validation_eras=100, test_eras=100)
SMALL_MODEL = '''
def define_model():
    import lightgbm as lgb
    return lgb.LGBMRegressor(n_estimators=20, verbose=-1)
'''
HONEST = '''
def create_features(df, feature_cols):
    import pandas as pd
    close = df.groupby("asset")["close"]
    X = pd.DataFrame(index=df.index)
    X["mom_5"] = close.pct_change(5)
    X["ma_gap"] = df["close"] / close.transform(lambda s: s.rolling(10).mean()) - 1
    return X
''' + SMALL_MODEL


@pytest.fixture(scope="module")
def prices():
    data = load_dataset(DATA)
    return data, split_dataset(data, DATA)


@pytest.fixture(scope="module")
def evaluator(prices, work_root, tmp_path_factory):
    ev = build_evaluator(*prices, EnvConfig(sandbox=SandboxConfig(wall_s=120, memory_mb=2048)),
                         work_root=work_root, cache_dir=tmp_path_factory.mktemp("trading-baselines"))
    yield ev
    ev.close()


def evaluate(evaluator, source: str):
    return evaluator.evaluate(Program(source), with_baseline=False)


def test_the_default_program_backtests_beside_buy_and_hold(evaluator, prices) -> None:
    data, split = prices
    assert isinstance(evaluator.task, TradingTask)
    result = evaluator.evaluate(Program(default_program_source(task="trading")))
    assert result.status == "ok", (result.message, result.traceback)
    assert result.cv is not None and result.cv.sharpe is not None
    for name, block in (("validation", split.validation), ("test", split.test)):
        m = getattr(result, name)
        rows = data.rows(block)
        ret = to_grid(data.next_return[rows], data.eras[rows])
        ret = ret[np.isfinite(ret).all(axis=1)]
        hold = statistics(np.ones_like(ret), ret, 1.0, 252)  # the benchmark, recomputed here
        assert m.n_eras == len(ret)
        assert (m.bh_sharpe, m.bh_total_return, m.bh_max_drawdown) == pytest.approx(
            (hold["sharpe"], hold["total_return"], hold["max_drawdown"]))
        assert m.sharpe is not None and 0 <= m.hit_rate <= 1 and 0 < m.turnover <= 2
    assert result.validation.baseline_corr == pytest.approx(1.0)  # the default program is the baseline
    assert len(result.predictions["eval"]) == data.rows(split.validation).sum() + data.rows(split.test).sum()


def test_default_cv_walks_forward_with_the_embargo(prices) -> None:
    data, split = prices
    namespace: dict = {}
    exec(default_sources(task="trading")["define_cv"], namespace)  # noqa: S102 - our own default source
    train_eras = data.eras[data.rows(split.train)]
    folds = namespace["define_cv"](train_eras, split.embargo)
    assert len(folds) == 3
    for train_idx, test_idx in folds:
        assert train_eras[train_idx].max() < train_eras[test_idx].min() - split.embargo
    starts = [train_eras[test].min() for _, test in folds]
    assert starts == sorted(starts)
    assert checks.check_cv_folds(folds, train_eras, split.embargo) is None


def test_cv_without_the_embargo_is_suspected_leakage(evaluator) -> None:
    result = evaluate(evaluator, HONEST + '''
def define_cv(eras, embargo):
    import numpy as np
    cut = np.unique(eras)[len(np.unique(eras)) // 2]
    return [(np.flatnonzero(eras < cut), np.flatnonzero(eras >= cut))]
''')
    assert result.status == "leakage_suspected" and "embargo" in result.message


def test_an_honest_rolling_mean_passes_the_guard(evaluator) -> None:
    result = evaluate(evaluator, HONEST)
    assert result.status == "ok", (result.message, result.traceback)
    assert result.timings["sandbox/guard"] > 0


@pytest.mark.parametrize("leak", [
    'X["next"] = close.shift(-1) / df["close"] - 1',  # tomorrow's price
    'X["z"] = (df["close"] - df["close"].mean()) / df["close"].std()',  # whole-series statistics
    'X["centred"] = close.transform(lambda s: s.rolling(5, center=True).mean())',  # a centred window
])
def test_a_feature_that_reads_the_future_is_caught(evaluator, leak) -> None:
    source = HONEST.replace("    return X\n", f"    {leak}\n    return X\n", 1)
    result = evaluate(evaluator, source)
    assert result.status == "leakage_suspected", (result.message, result.traceback)
    assert "look-ahead" in result.message and result.validation is None


def test_guard_cuts_are_drawn_per_evaluation_between_validation_and_the_end(evaluator, prices) -> None:
    data, split = prices
    n_assets = len(data.asset_names)
    draws = {tuple(evaluator.draw_cuts()) for _ in range(20)}
    assert len(draws) > 10
    for cuts in draws:
        assert len(cuts) == 2 and all(c % n_assets == 0 for c in cuts)
        assert all(split.validation[0] * n_assets <= c < len(data.dates) * n_assets for c in cuts)


def test_a_model_cannot_keep_the_future_aside(evaluator) -> None:
    # create_features keeps tomorrow's price aside for the model: the model runs in another
    # process, which never held it.
    result = evaluate(evaluator, '''
STASH = {}

def create_features(df, feature_cols):
    import numpy as np
    import pandas as pd
    STASH["next"] = (df.groupby("asset")["close"].shift(-1) / df["close"] - 1).fillna(0).to_numpy()
    return pd.DataFrame({"row": np.arange(len(df))})

def define_model():
    class Peek:
        def fit(self, X, y):
            return self
        def predict(self, X):
            return STASH["next"][X["row"].to_numpy()]
    return Peek()
''')
    assert result.status == "runtime_error" and "KeyError" in result.message, result.message


def test_a_model_cannot_read_the_next_rows_of_its_input(evaluator) -> None:
    # Honest features (today's close); predict reads the next period's close from the next
    # rows of its input. Streamed one period at a time, there are no next rows.
    result = evaluate(evaluator, '''
def create_features(df, feature_cols):
    import pandas as pd
    return pd.DataFrame({"close": df["close"], "asset": df["asset"].astype("category").cat.codes})

def define_model():
    class Peek:
        def fit(self, X, y):
            return self
        def predict(self, X):
            nxt = X.groupby("asset")["close"].shift(-1)
            return (nxt / X["close"] - 1).fillna(0).to_numpy()
    return Peek()
''')
    assert result.status == "ok", (result.message, result.traceback)
    assert result.validation.sharpe is None or result.validation.sharpe < 1.0
    assert result.validation.turnover == 0  # every prediction was 0: nothing was ever seen


def test_a_missing_column_names_the_price_columns(evaluator) -> None:
    result = evaluate(evaluator, "def create_features(df, feature_cols):\n    return df[['Close']]\n")
    assert result.status == "runtime_error"
    assert "KeyError" in result.message and "date, asset, open, high, low, close, volume" in result.message
