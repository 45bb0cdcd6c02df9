"""`python -m aiforml.evaluate --run RUN_DIR`: the run's config reproduces the run's archived scores.

The run directory is built the way a run builds it: ``config.yaml`` from ``config_dict(cfg)``
and an archive of a program the Evaluator scored under that config (small synthetic data,
15 trees: not the CLI's defaults).
"""

import json

import pytest
import yaml

from aiforml.archive import Archive, ArchiveRecord, export_programs
from aiforml.compose import load_config
from aiforml.data import load_dataset, split_dataset
from aiforml.evaluate import main
from aiforml.pipeline.evaluator import build_evaluator
from aiforml.program import Program
from aiforml.reward import compute_reward
from aiforml.runtime import config_dict

DATA = ["data.synthetic.n_eras=60", "data.synthetic.rows_per_era=150", "data.synthetic.n_features=20",
        "data.validation_eras=12", "data.test_eras=12"]
PROGRAM = '''
def create_features(df, feature_cols):
    X = df[feature_cols].astype("float32")
    X["mean"] = X.mean(axis=1)
    return X
'''


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("rescore")
    cfg = load_config([*DATA, f"data.cache_dir={base / 'cache'}", "env.pipeline.n_estimators=15",
                       "env.pipeline.cv_folds=2", "env.sandbox.wall_s=60"])
    run = base / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(config_dict(cfg), sort_keys=False))
    dataset = load_dataset(cfg.data)
    evaluator = build_evaluator(dataset, split_dataset(dataset, cfg.data), cfg.env, cache_dir=base / "baselines")
    try:
        result = evaluator.evaluate(Program(PROGRAM))
    finally:
        evaluator.close()
    assert result.status == "ok", result.message
    with Archive(run / "archive.sqlite") as archive:
        archive.add_cycle(1, [ArchiveRecord(cycle=1, sample_index=0, policy_version=1, program=PROGRAM,
                                            completion=PROGRAM, result=result,
                                            reward=compute_reward(result, cfg.reward))])
    return run, result


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AIFORML_CACHE", str(tmp_path_factory.getbasetemp() / "rescore-cli-cache"))


def test_rank_1_of_a_run_reproduces_its_archived_scores(run_dir, capsys):
    run, archived = run_dir
    assert main(["--run", str(run), "--rank", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok" and out["reproduced"] is True and out["differences"] == []
    assert out["validation"]["sharpe"] == pytest.approx(archived.validation.sharpe, abs=1e-9)
    assert out["test"]["sharpe"] == pytest.approx(archived.test.sharpe, abs=1e-9)
    assert out["archived"]["scores"]["test"]["sharpe"] == pytest.approx(archived.test.sharpe)
    assert out["validation"]["n_eras"] == 12


def test_without_the_run_the_same_program_scores_otherwise(run_dir, tmp_path, capsys):
    """Same data, the CLI's own pipeline settings (200 trees, 3 folds): other scores."""
    run, archived = run_dir
    with Archive(run / "archive.sqlite") as archive:
        (path,) = export_programs(archive.top(1), tmp_path)
    cache = yaml.safe_load((run / "config.yaml").read_text())["data"]["cache_dir"]
    argv = [str(path), "--json", *(x for o in DATA for x in ("--set", o)), "--set", f"data.cache_dir={cache}"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok" and "archived" not in out
    assert abs(out["validation"]["sharpe"] - archived.validation.sharpe) > 1e-3
    # the exported file under --run finds its archived row by its hash (the header is a comment)
    assert main([str(path), "--run", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reproduced"] is True and out["archived"]["program_hash"] == archived.program_hash


def test_a_table_flags_scores_that_differ(run_dir, capsys):
    run, _ = run_dir
    assert main(["--run", str(run), "--program", Program(PROGRAM).hash[:6],
                 "--set", "env.pipeline.n_estimators=5"]) == 0
    out = capsys.readouterr().out
    assert "archived" in out and "differs" in out and "reproduced" not in out


@pytest.mark.parametrize(("extra", "needle"), [
    (["--rank", "1", "--data", "synthetic"], "--data/--task conflict with --run"),
    (["--rank", "2"], "leaderboard by val_sharpe holds 1 programs"),
    (["--program", "ffff"], "no program in"),
    (["--rank", "1", "--set", "data=numerai"], "group choice does not apply"),
])
def test_bad_run_input_exits_2_naming_the_problem(run_dir, extra, needle, capsys):
    run, _ = run_dir
    assert main(["--run", str(run), *extra]) == 2
    assert needle in capsys.readouterr().out.replace("\n", " ")


def test_data_of_another_secret_is_refused_before_evaluating(run_dir, tmp_path, monkeypatch, capsys):
    """The run's generated data needs the run's data secret: another one makes other data."""
    from aiforml.data.secret import SECRET_ENV

    run, _ = run_dir
    other = tmp_path / "data-secret"
    other.write_text("ff" * 16 + "\n")
    other.chmod(0o600)
    monkeypatch.setenv(SECRET_ENV, str(other))
    for program in (["--rank", "1"], ["--default"]):  # the default is not in the archive: any row's version
        assert main(["--run", str(run), *program]) == 2
        message = " ".join(capsys.readouterr().out.split())
        assert "the data here is not the run's" in message and "AIFORML_DATA_SECRET_FILE" in message
    # other data on purpose (a data.* override): evaluated, and the differences flagged
    assert main(["--run", str(run), "--rank", "1", "--json", "--set", "data.synthetic.seed=0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok" and out["reproduced"] is False and out["differences"]


def test_rank_without_a_run_and_a_missing_run_are_bad_input(tmp_path, capsys):
    assert main(["--rank", "1"]) == 2
    assert "give --run RUN_DIR" in capsys.readouterr().out
    assert main(["--run", str(tmp_path), "--rank", "1"]) == 2
    assert "no run config at" in capsys.readouterr().out


def test_the_runs_top_program_predicts_live_rows(run_dir, tmp_path, capsys):
    """--run --rank 1 --live: the run's data and settings, the archived program, a live file of
    fresh rows with the run data's feature columns."""
    import numpy as np
    import pandas as pd

    from aiforml.compose import load_run_config

    run, _ = run_dir
    names = list(load_dataset(load_run_config(run).data).feature_names)
    rng = np.random.default_rng(3)
    live = pd.DataFrame(rng.integers(0, 5, (90, len(names))).astype(np.int8), columns=names,
                        index=pd.Index([f"n{i:05d}" for i in range(90)], name="id"))
    live.insert(0, "era", "X")
    live.insert(1, "data_type", "live")
    live.to_parquet(tmp_path / "live.parquet")
    out = tmp_path / "predictions.csv"
    assert main(["--run", str(run), "--rank", "1", "--live", str(tmp_path / "live.parquet"),
                 "--out", str(out)]) == 0
    assert "wrote 90 live predictions" in capsys.readouterr().out
    sub = pd.read_csv(out)
    assert list(sub["id"]) == list(live.index) and sub["prediction"].between(0, 1).all()
    assert sub["prediction"].nunique() > 30  # a fitted model's scores, not a constant


def test_a_program_with_unseeded_randomness_scores_the_same_twice(run_dir, tmp_path, capsys):
    """Every sandbox stage starts from env.pipeline.seed: scikit-learn's random_state=None and
    np.random draws repeat, so such a program's scores reproduce too; another seed changes them."""
    run, _ = run_dir
    program = tmp_path / "noisy.py"
    program.write_text('''
def define_model():
    import numpy as np
    from sklearn.linear_model import Ridge

    class Noisy(Ridge):
        def predict(self, X):
            return super().predict(X) + np.random.normal(0.0, 1.0, len(X))
    return Noisy()
''')
    sharpes = []
    for extra in ([], [], ["--set", "env.pipeline.seed=1"]):
        assert main([str(program), "--run", str(run), "--json", *extra]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["status"] == "ok", out["message"]
        sharpes.append((out["validation"]["sharpe"], out["test"]["sharpe"]))
    assert sharpes[0] == sharpes[1] and sharpes[2] != sharpes[0]
