"""`python -m aiforml.evaluate`: JSON output for scripts, tables for people, clear bad-input errors."""

import json

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
])
def test_bad_input_exits_2_naming_the_problem(argv, needle, capsys):
    assert main(argv) == 2
    assert needle in capsys.readouterr().out
