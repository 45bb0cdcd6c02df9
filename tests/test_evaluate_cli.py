"""`python -m aiforml.evaluate`: JSON output for scripts, tables for people, clear bad-input errors."""

import json

import numpy as np
import pandas as pd
import pytest

from aiforml.evaluate import main

FAST = ["--set", "env.pipeline.n_estimators=20", "--set", "env.pipeline.cv_folds=2"]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AIFORML_CACHE", str(tmp_path_factory.getbasetemp() / "cli-cache"))


def test_json_output_for_a_program(tmp_path, capsys):
    program = tmp_path / "ridge.py"
    program.write_text("def define_model():\n    from sklearn.linear_model import Ridge\n    return Ridge()\n")
    assert main([str(program), "--json", *FAST]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok"
    assert out["steps_overridden"] == ["define_model"]
    assert out["validation"]["n_eras"] > 0 and out["test"]["n_eras"] > 0
    assert out["validation"]["baseline_contribution"] is not None  # what uniqueness pays without a reference set
    assert out["reward"]["compile"] == 0.0
    assert -0.7 <= out["reward"]["reward"] <= 0.7


def test_table_output_for_a_failing_program(tmp_path, capsys):
    program = tmp_path / "broken.py"
    program.write_text("def create_features(df, feature_cols):\n    return df['nope']\n")
    assert main([str(program), *FAST]) == 0
    out = capsys.readouterr().out
    assert "runtime_error" in out and "KeyError" in out
    assert "reward -0.3000" in out


def test_print_default_is_a_program(capsys):
    assert main(["--print-default"]) == 0
    assert "def define_model" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "needle"), [
    (["/no/such/program.py"], "no such program file"),
    (["--default", "--set", "env.sandbox.wal_s=3"], "wal_s"),
    (["--default", "--data", "/no/such/folder"], "/no/such/folder"),
    ([], "give a program file"),
    (["--default", "--task", "trading"], "data.task=trading does not fit data.source=synthetic"),
])
def test_bad_input_exits_2_naming_the_problem(argv, needle, capsys):
    assert main(argv) == 2
    assert needle in capsys.readouterr().out


def test_sp500_empty_program_is_the_default_strategy_beside_buy_and_hold(tmp_path, capsys):
    from arch.data import sp500

    program = tmp_path / "empty.py"
    program.write_text("")
    assert main([str(program), "--data", "sp500", "--json", *FAST]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok" and out["task"] == "trading" and out["steps_overridden"] == []
    test = out["backtest"]["test"]
    assert set(test) == {"strategy", "buy_and_hold"}
    assert set(test["strategy"]) == {"sharpe", "total_return", "max_drawdown", "turnover", "hit_rate"}
    # buy-and-hold over the sealed test (the last 504 days; the very last has no next day),
    # recomputed from arch's series: 1 bp to enter, then the index's daily returns
    close = sp500.load()["Close"].to_numpy()
    ret = close[-503:] / close[-504:-1] - 1  # next-day returns of the test days but the last
    net = np.r_[ret[0] - 1e-4, ret[1:]]
    assert test["buy_and_hold"]["total_return"] == pytest.approx(np.prod(1 + net) - 1)
    assert out["test"]["n_eras"] == 503
    assert out["reward"]["compile"] == 0.0


def test_sp500_table_shows_strategy_and_buy_and_hold_rows(capsys):
    assert main(["--default", "--data", "sp500", *FAST]) == 0
    out = capsys.readouterr().out
    assert "strategy" in out and "buy&hold" in out and "Sharpe" in out and "max DD" in out


def test_a_price_csv_is_the_trading_task(tmp_path, capsys):
    from aiforml.config import SyntheticPricesConfig
    from aiforml.data.price_synthetic import generate_prices

    prices = generate_prices(SyntheticPricesConfig(n_assets=2, n_days=400, seed=5), horizon=5, secret=None)
    frame = pd.DataFrame(prices.features, columns=list(prices.feature_names))
    frame.insert(0, "date", prices.dates[prices.eras])
    frame.insert(1, "asset", np.asarray(prices.asset_names)[prices.assets])
    frame.to_csv(tmp_path / "prices.csv", index=False)
    frame.to_parquet(tmp_path / "prices.parquet")
    argv = ["--default", "--json", *FAST, "--set", "data.validation_eras=80", "--set", "data.test_eras=80"]
    assert main(["--data", str(tmp_path / "prices.csv"), *argv]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "trading" and out["status"] == "ok"
    assert out["validation"]["n_eras"] == 80 and out["backtest"]["validation"]["buy_and_hold"]["sharpe"] is not None
    assert main(["--data", str(tmp_path / "prices.parquet"), "--task", "trading", "--print-default"]) == 0
    assert 'groupby("asset")' in capsys.readouterr().out
