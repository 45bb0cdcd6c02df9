"""The archive: transactional cycles, resume semantics, summaries, descriptors, leaderboard, CLI."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aiforml.archive import (
    ARCHIVE_FILE,
    COLUMNS,
    SCHEMA_VERSION,
    SPLITS,
    TRADING_METRICS,
    Archive,
    ArchiveRecord,
    describe_program,
    error_class,
    main,
)
from aiforml.pipeline.defaults import default_program_source
from aiforml.program import EvalResult, SplitMetrics
from aiforml.reward import RewardBreakdown

RIDGE = '''\
def define_model():
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), Ridge(alpha=10.0))
'''
TORCH = '''\
def define_model():
    import numpy as np
    import torch

    class Net:
        def fit(self, X, y):
            self.net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 8), torch.nn.ReLU())
            return self

        def predict(self, X):
            return self.net(torch.tensor(np.asarray(X))).detach().numpy().ravel()

    return Net()
'''
OWN_FEATURES = '''\
def create_features(df, feature_cols):
    X = df[feature_cols] - 2.0
    X["row_mean"] = df[feature_cols].mean(axis=1)
    return X


def create_target(df):
    return df.groupby("era")["target"].rank(pct=True)


def define_model():
    from sklearn.ensemble import ExtraTreesRegressor as ET

    return ET(n_estimators=50)
'''


def ok(val_sharpe: float, test_sharpe: float = 0.0, per_era: list | None = None) -> EvalResult:
    per_era = per_era or [0.01, 0.02]
    return EvalResult(
        status="ok",
        validation=SplitMetrics(sharpe=val_sharpe, mean_corr=val_sharpe / 100, n_eras=len(per_era),
                                per_era_corr=per_era),
        test=SplitMetrics(sharpe=test_sharpe, mean_corr=test_sharpe / 100, per_era_corr=[0.0, 0.01]),
        timings={"fit": 1.5, "predict": 0.5},
    )


def failed(message: str, status: str = "runtime_error") -> EvalResult:
    return EvalResult(status=status, message=message)  # type: ignore[arg-type]


def rec(cycle: int, i: int, result: EvalResult, program: str = RIDGE, reward: float | None = None) -> ArchiveRecord:
    if reward is None and result.status != "infra_error":
        reward = 0.5 if result.status == "ok" else -0.3
    breakdown = None if reward is None else RewardBreakdown(reward, {"compile": 0.0, "performance": 0.0, "uniqueness": 0.0})
    return ArchiveRecord(cycle=cycle, sample_index=i, policy_version=cycle, program=program,
                         completion=f"```python\n{program}```", result=result, reward=breakdown)


@pytest.fixture
def archive(tmp_path: Path):
    a = Archive(tmp_path / ARCHIVE_FILE)
    yield a
    a.close()


def count(archive: Archive, cycle: int) -> int:
    return sum(r["cycle"] == cycle for r in archive.rows(("cycle",)))


def test_wal_mode_and_schema_version(archive: Archive) -> None:
    db = sqlite3.connect(archive.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(RuntimeError, match="schema v99"):
        Archive(archive.path)


def test_failure_mid_cycle_leaves_no_partial_cycle(archive: Archive) -> None:
    archive.add_cycle(0, [rec(0, 0, ok(1.0)), rec(0, 1, ok(2.0))])
    broken = rec(0, 1, ok(1.0))
    broken.result = None  # type: ignore[assignment]  # fails while its row is built
    with pytest.raises(AttributeError):
        archive.add_cycle(0, [rec(0, 0, ok(3.0)), broken])
    broken.cycle = 1
    with pytest.raises(AttributeError):
        archive.add_cycle(1, [rec(1, 0, ok(3.0)), broken])
    # cycle 0 keeps its old rows (the delete and first insert were rolled back), cycle 1 has none
    assert [r["val_sharpe"] for r in archive.rows(("val_sharpe",))] == [1.0, 2.0]
    assert archive.last_cycle() == 0


def test_process_killed_mid_cycle_loses_only_that_cycle(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import aiforml.archive as archive_module
        from test_archive import ok, rec
        archive = archive_module.Archive(archive_module.Path({str(tmp_path / ARCHIVE_FILE)!r}))
        archive.add_cycle(1, [rec(1, i, ok(1.0)) for i in range(3)])
        build, built = archive_module._row, []
        def dying_row(record, role):  # the process dies after two rows of cycle 2 were inserted
            built.append(record)
            if len(built) == 3:
                os._exit(9)
            return build(record, role)
        archive_module._row = dying_row
        archive.add_cycle(2, [rec(2, i, ok(2.0)) for i in range(3)])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 9, done.stderr
    with Archive(tmp_path / ARCHIVE_FILE) as archive:
        assert archive.last_cycle() == 1 and count(archive, 1) == 3 and count(archive, 2) == 0


def test_readding_a_cycle_replaces_it_and_truncate_after(archive: Archive) -> None:
    for cycle in range(4):
        archive.add_cycle(cycle, [rec(cycle, i, ok(float(i))) for i in range(3)])
    archive.add_cycle(2, [rec(2, 0, ok(9.0))])  # resume replayed cycle 2 with one sample
    assert [count(archive, c) for c in range(4)] == [3, 3, 1, 3]
    assert archive.truncate_after(1) == 4
    assert archive.last_cycle() == 1
    assert archive.truncate_after(5) == 0
    with pytest.raises(ValueError, match="cycles \\[3\\]"):
        archive.add_cycle(2, [rec(3, 0, ok(1.0))])


def test_baseline_stays_out_of_cycles(archive: Archive) -> None:
    assert archive.baseline() is None and archive.last_cycle() is None
    archive.set_baseline(rec(0, -1, ok(0.8, 0.6), program=default_program_source()))
    archive.set_baseline(rec(0, -1, ok(0.7, 0.5), program=default_program_source()))
    assert archive.baseline()["val_sharpe"] == 0.7
    assert archive.last_cycle() is None and archive.cycle_summary() == [] and archive.top() == []
    archive.truncate_after(-1)
    assert archive.baseline() is not None


def test_cycle_summary_matches_hand_computed(archive: Archive) -> None:
    infra = EvalResult(status="infra_error", message="actor died")
    archive.add_cycle(0, [
        rec(0, 0, ok(0.5), reward=0.2),
        rec(0, 1, failed("KeyError: 'feature_zz' (not a column)"), reward=-0.3),
        rec(0, 2, failed("line 3: invalid syntax", "syntax_error"), program="def define_model(:\n", reward=-0.3),
        rec(0, 3, infra),
        rec(0, 4, failed("no code", "parse_error"), program="", reward=-0.3),
    ])
    archive.add_cycle(1, [rec(1, 0, ok(0.3), program=OWN_FEATURES, reward=0.4),
                          rec(1, 1, ok(0.9), reward=0.6)])
    first, second = archive.cycle_summary()
    assert first["n"] == 5 and first["n_infra"] == 1
    assert first["compile_rate"] == pytest.approx(1 / 4)  # 1 ok of 4 judged
    assert first["error_classes"] == {"KeyError": 1, "SyntaxError": 1, "parse_error": 1}
    assert first["mean_reward"] == pytest.approx((0.2 - 0.9) / 4)
    assert first["max_reward"] == pytest.approx(0.2)
    # 3 rows hold code: two Ridge programs and one unparsable define_model
    assert first["family_shares"] == pytest.approx({"linear": 2 / 3, "other": 1 / 3})
    assert first["share_own_features"] == 0.0
    assert second["compile_rate"] == 1.0
    assert second["family_shares"] == pytest.approx({"extra_trees": 0.5, "linear": 0.5})
    assert second["share_own_features"] == 0.5 and second["share_own_target"] == 0.5
    assert second["share_own_cv"] == 0.0
    assert first["best_val_sharpe_so_far"] == 0.5 and second["best_val_sharpe_so_far"] == 0.9


@pytest.mark.parametrize(("source", "family", "features", "target", "model"), [
    (default_program_source(), "lightgbm", False, False, True),
    (RIDGE, "linear", False, False, True),
    (TORCH, "torch", False, False, True),
    (OWN_FEATURES, "extra_trees", True, True, True),
    ('def create_features(df, feature_cols):\n    return df[feature_cols]\n', "default", False, False, False),
    ("def define_model():\n    from sklearn.svm import SVR\n    return SVR(\n", "svm", False, False, True),
])
def test_descriptors(source: str, family: str, features: bool, target: bool, model: bool) -> None:
    d = describe_program(source)
    assert (d["model_family"], d["defines_features"], d["defines_target"], d["defines_model"]) == (
        family, features, target, model)


def test_descriptors_other_steps() -> None:
    assert describe_program(default_program_source())["defines_cv"] is False
    own_cv = "def define_cv(eras, embargo):\n    return []\n"
    assert describe_program(own_cv)["defines_cv"] is True
    hist = "def define_model():\n    import sklearn.ensemble as E\n    return E.HistGradientBoostingRegressor()\n"
    assert describe_program(hist)["model_family"] == "sklearn_gbm"
    assert describe_program("def define_model():\n    return object()\n")["model_family"] == "other"


def test_error_class() -> None:
    assert error_class(failed("TypeError: unsupported operand")) == "TypeError"
    assert error_class(failed("numpy.linalg.LinAlgError: singular matrix")) == "LinAlgError"
    assert error_class(failed("stopped after 30.0s: killed", "timeout")) == "timeout"
    assert error_class(ok(1.0)) is None


def test_top_selects_by_validation_never_test(archive: Archive) -> None:
    # A: best on validation, worst on test. B: the reverse. C: a repeat of A's code.
    archive.add_cycle(0, [rec(0, 0, ok(2.0, test_sharpe=-1.0), program=RIDGE),
                          rec(0, 1, ok(0.5, test_sharpe=3.0), program=TORCH),
                          rec(0, 2, failed("KeyError: 'x'"), program=OWN_FEATURES)])
    archive.add_cycle(1, [rec(1, 0, ok(1.9, test_sharpe=0.0), program=RIDGE + "\n# same code\n")])
    top = archive.top(5)
    assert [(r["model_family"], r["val_sharpe"], r["test_sharpe"]) for r in top] == [
        ("linear", 2.0, -1.0), ("torch", 0.5, 3.0)]
    assert top[0]["val_per_era"] == [0.01, 0.02] and top[0]["test_per_era"] == [0.0, 0.01]
    assert [r["val_sharpe"] for r in archive.top(1)] == [2.0]
    for column in ("test_sharpe", "cv_sharpe"):  # sealed, and computed by the child unwatched
        with pytest.raises(ValueError, match="test and CV scores never select"):
            archive.top(by=column)
    hidden = archive.top(1, include_test=False)[0]  # what a prompt may show
    assert hidden["val_sharpe"] == 2.0 and not [k for k in hidden if k.startswith("test_")]


def test_cli_leaderboard_and_export(archive: Archive, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    archive.add_cycle(0, [rec(0, 0, ok(2.0, 0.4), program=RIDGE), rec(0, 1, ok(1.0, 0.9), program=TORCH)])
    out_dir = tmp_path / "export"
    assert main([str(tmp_path), "--top", "1", "--export", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    assert "linear" in printed and "torch" not in printed
    (path,) = out_dir.glob("*.py")
    text = path.read_text()
    assert text.startswith("# rank 1") and "sharpe 2.000" in text and "sealed test: sharpe 0.400" in text
    assert text.endswith(RIDGE)
    compile(text, str(path), "exec")


def test_cli_without_archive_names_the_path(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "run" / ARCHIVE_FILE) in err
    assert not (tmp_path / "run").exists()


def test_descriptors_agree_with_the_corpus_labels() -> None:
    from aiforml.policy.schema import default_schema
    from aiforml.policy.tiny.corpus import generate_corpus

    family = {"lightgbm": "lightgbm", "hist_gbm": "sklearn_gbm", "ridge": "linear", "lasso": "linear",
              "elastic_net": "linear", "random_forest": "random_forest", "extra_trees": "extra_trees",
              "mlp": "mlp", "torch_net": "torch", "default": "default"}
    programs = generate_corpus(default_schema(), 300, seed=3, mistake_rate=0.2)
    described = [describe_program(p.source) for p in programs]
    assert [d["model_family"] for d in described] == [family[p.model] for p in programs]
    assert [d["defines_features"] for d in described] == [bool(p.features) for p in programs]
    # a target the grammar labels "rank", "blend" or "mean" is always the program's own
    assert all(d["defines_target"] for d, p in zip(described, programs, strict=True)
               if p.target in ("rank", "blend", "mean"))


V3_REWARD_COLUMNS = ", reward_compile REAL, reward_performance REAL, reward_uniqueness REAL"


def test_a_v3_archive_keeps_its_reward_terms_as_one_json_object(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite"
    db = sqlite3.connect(path)
    cols = ", ".join(f"{k} {v}" for k, v in COLUMNS.items() if k != "reward_terms") + V3_REWARD_COLUMNS
    db.executescript(f"CREATE TABLE programs (id INTEGER PRIMARY KEY, {cols}); PRAGMA user_version = 3;")
    db.execute("INSERT INTO programs (role, cycle, sample_index, policy_version, program_hash, status, program, "
               "created_at, reward, reward_compile, reward_performance, reward_uniqueness) "
               "VALUES ('sample', 1, 0, 0, 'h', 'ok', '', 'now', 0.5, 0.0, 0.7, 0.1)")
    db.commit()
    db.close()
    with Archive(path) as archive:
        terms = archive.rows(("reward_terms",))[0]["reward_terms"]
    assert json.loads(terms) == {"compile": 0.0, "performance": 0.7, "uniqueness": 0.1}


def test_a_v1_archive_is_migrated_and_gets_feature_ideas_and_trading_metrics(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite"
    db = sqlite3.connect(path)
    new = {"feature_ideas", "reward_terms"} | {f"{p}_{m}" for p in SPLITS for m in TRADING_METRICS}
    cols = ", ".join(f"{k} {v}" for k, v in COLUMNS.items() if k not in new) + V3_REWARD_COLUMNS
    db.executescript(f"CREATE TABLE programs (id INTEGER PRIMARY KEY, {cols}); PRAGMA user_version = 1;")
    db.close()
    source = "def create_features(df, feature_cols):\n    return df[feature_cols].rank()\n"
    with Archive(path) as archive:
        archive.add_cycle(1, [ArchiveRecord(1, 0, 0, source, source, EvalResult(status="runtime_error"), None)])
        assert archive.rows(("feature_ideas", "val_total_return")) == [
            {"feature_ideas": '["ranks"]', "val_total_return": None}]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
