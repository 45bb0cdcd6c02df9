"""Export of Numerai programs: the default and archived ones, the pickle in a fresh interpreter
that may not import aiforml, the standalone script run as a subprocess, and the CLI's errors."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aiforml.export.__main__ import main
from aiforml.export.upload import RUNNER, pickled_modules
from aiforml.program import Program

RIDGE = '''\
def create_features(df, feature_cols):
    X = df[feature_cols].astype("float32") - 2.0
    X["row_mean"] = X.mean(axis=1)
    return X


def define_model():
    from sklearn.linear_model import Ridge

    return Ridge(alpha=10.0)
'''

PIPELINE_MODEL = '''\
def define_model():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.linear_model import Ridge

    return make_pipeline(StandardScaler(), Ridge())
'''

BROKEN = '''\
def create_features(df, feature_cols):
    return df["no_such_column"]
'''


def fresh_predict(pickle_path: Path, live_path: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """The runner (numerai-predict's rules, aiforml blocked) in a new ``python -I``."""
    out = tmp_path / f"runner-{pickle_path.parent.name}-{live_path.stem}.csv"
    proc = subprocess.run([sys.executable, "-I", str(RUNNER), "--model", str(pickle_path), "--live", str(live_path),
                           "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    return proc, out


def read_predictions(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"id": str}).set_index("id")


def assert_upload_format(predictions: pd.DataFrame, live: pd.DataFrame) -> None:
    assert list(predictions.columns) == ["prediction"]
    assert list(predictions.index) == [str(i) for i in live.index]
    values = predictions["prediction"].to_numpy()
    assert np.isfinite(values).all() and values.min() > 0 and values.max() <= 1
    assert predictions["prediction"].nunique() > len(live) // 2  # ranks of a real model, not a constant


def test_default_program_exports_a_script_and_a_pickle_that_agree(run_dir: Path, v5_dir: Path,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "default"
    assert main([str(run_dir), "--default", "--out", str(out), "--data", str(v5_dir)]) == 0
    script = (out / "pipeline.py").read_text()
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(script))
                if isinstance(node, ast.Import | ast.ImportFrom) for alias in getattr(node, "names", [])}
    imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(script))
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert "aiforml" not in imported and "lightgbm" in imported
    assert pickled_modules((out / "predict.pkl").read_bytes()) == ["cloudpickle.cloudpickle"]  # no pandas, no sklearn

    proc = subprocess.run([sys.executable, "-I", str(out / "pipeline.py"), "--data", str(v5_dir),
                           "--out", str(tmp_path / "script.csv")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    live = pd.read_parquet(v5_dir / "live.parquet")
    from_script = read_predictions(tmp_path / "script.csv")
    assert_upload_format(from_script, live)

    ran, csv = fresh_predict(out / "predict.pkl", v5_dir / "live.parquet", tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "OK: " in ran.stdout and "2 parameters" in ran.stdout
    from_pickle = read_predictions(csv)
    assert_upload_format(from_pickle, live)
    # the same locked steps on the same rows: the same ranks (LightGBM's threads may move a tie)
    assert np.corrcoef(from_pickle["prediction"], from_script["prediction"])[0, 1] > 0.999


def test_archived_ridge_program_by_rank_and_a_failed_program_by_hash(run_dir: Path, v5_dir: Path, tmp_path: Path,
                                                                     capsys, add_programs) -> None:
    hashes = add_programs(run_dir, [(RIDGE, "ok", 1.5), (PIPELINE_MODEL, "ok", 0.5), (BROKEN, "runtime_error", None)])
    out = tmp_path / "rank1"
    assert main([str(run_dir), "--rank", "1", "--out", str(out), "--data", str(v5_dir)]) == 0
    assert (out / "program.py").read_text() == RIDGE
    assert "model kept as linear" in capsys.readouterr().err.replace("\n", " ")
    assert set(pickled_modules((out / "predict.pkl").read_bytes())) <= {"cloudpickle.cloudpickle",
                                                                         "numpy._core.multiarray", "numpy",
                                                                         "numpy._core.numeric"}
    ran, csv = fresh_predict(out / "predict.pkl", v5_dir / "validation.parquet", tmp_path)  # several eras
    assert ran.returncode == 0, ran.stdout + ran.stderr
    validation = pd.read_parquet(v5_dir / "validation.parquet")
    predictions = read_predictions(csv)
    assert_upload_format(predictions, validation)
    for _, era in validation.groupby("era"):  # ranked within each era: each era reaches 1
        assert predictions.loc[era.index.astype(str), "prediction"].max() == pytest.approx(1.0)

    out = tmp_path / "rank2"
    assert main([str(run_dir), "--rank", "2", "--out", str(out), "--data", str(v5_dir)]) == 0
    err = capsys.readouterr().err.replace("\n", " ")
    assert "model kept as object" in err and "no portable form" in err

    out = tmp_path / "broken"
    assert main([str(run_dir), "--program", hashes[2][:6], "--out", str(out), "--data", str(v5_dir)]) == 1
    err = capsys.readouterr().err.replace("\n", " ")
    assert "did not pass in the run (status runtime_error" in err and "no_such_column" in err
    assert (out / "pipeline.py").is_file() and not (out / "predict.pkl").exists()


def test_export_without_data_fits_on_the_runs_own_data(run_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "own"
    assert main([str(run_dir), "--default", "--out", str(out)]) == 0
    err = capsys.readouterr().err.replace("\n", " ")
    # checked on the data's last era standing in for live (synthetic data has no live.parquet)
    assert "era X: " in err and "OK: " in err and "model kept as lightgbm" in err
    assert "'data': 'v5.0'" in (out / "pipeline.py").read_text()  # the script's --data default


def test_errors_name_what_is_wrong(run_dir: Path, tmp_path: Path, capsys, add_programs) -> None:
    out = str(tmp_path / "x")

    def error(*args: str) -> str:
        assert main([*args, "--out", out]) == 2
        return capsys.readouterr().err.replace("\n", " ")

    assert "no such run directory" in error(str(tmp_path / "nope"), "--default")
    assert "no archive.sqlite" in error(str(run_dir), "--rank", "1")
    # two programs whose hashes share a first character make that character ambiguous
    sources, seen = [], {}
    for alpha in range(1, 100):
        src = RIDGE.replace("alpha=10.0", f"alpha={alpha}.0")
        first = Program(src).hash[0]
        if first in seen:
            sources = [seen[first], src]
            break
        seen[first] = src
    hashes = add_programs(run_dir, [(s, "ok", 1.0) for s in sources])
    assert "out of range: the leaderboard by val_sharpe holds 2 programs" in error(str(run_dir), "--rank", "3")
    assert "a program hash is 1-16 hex digits" in error(str(run_dir), "--program", "zz")
    assert "no program" in error(str(run_dir), "--program", "0000000000000000")
    message = error(str(run_dir), "--program", hashes[0][0])
    assert "give more digits" in message and hashes[0] in message and hashes[1] in message
    (run_dir / "config.yaml").write_text("data:\n  no_such_key: 1\n")
    assert "config.yaml" in error(str(run_dir), "--default")
