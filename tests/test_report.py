"""The report: quarter figures by hand, PNGs and report.md from a synthetic archive, the CLI."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from aiforml.archive import ARCHIVE_FILE, Archive, ArchiveRecord
from aiforml.diversity import run_diversity
from aiforml.metrics import deflated_sharpe, expected_max_sharpe
from aiforml.pipeline.defaults import default_program_source
from aiforml.program import EvalResult, SplitMetrics
from aiforml.reference import ERAS_FILE, PREDICTIONS_DIR
from aiforml.report import (
    REPORT_DIR,
    cumulative,
    deflated_best,
    first_last_quarters,
    main,
    write_report,
)
from aiforml.reward import RewardBreakdown

LGBM = "def define_model():\n    import lightgbm as lgb\n\n    return lgb.LGBMRegressor(n_estimators={n})\n"
RIDGE = "def define_model():\n    from sklearn.linear_model import Ridge\n\n    return Ridge(alpha={n})\n"
FEATURES = "def create_features(df, feature_cols):\n    return df[feature_cols] - {n}\n\n\n"
ERRORS = ["KeyError: 'feature_x'", "TypeError: bad operand", "ValueError: shapes"]


def result(rng: random.Random, status: str, skill: float) -> EvalResult:
    if status != "ok":
        message = rng.choice(ERRORS) if status == "runtime_error" else "line 1: invalid syntax"
        return EvalResult(status=status, message=message)  # type: ignore[arg-type]
    val = [skill + rng.gauss(0, 0.02) for _ in range(30)]
    test = [skill / 2 + rng.gauss(0, 0.02) for _ in range(20)]
    return EvalResult(status="ok", validation=metrics(val), test=metrics(test))


def metrics(per_era: list[float]) -> SplitMetrics:
    mean = sum(per_era) / len(per_era)
    std = (sum((x - mean) ** 2 for x in per_era) / len(per_era)) ** 0.5
    return SplitMetrics(mean_corr=mean, std_corr=std, sharpe=mean / std, n_eras=len(per_era),
                        per_era_corr=per_era)


def synthetic_archive(path: Path, cycles: int = 8, samples: int = 6, seed: int = 0) -> Archive:
    """A run that improves and collapses: later cycles fail less and use LightGBM only."""
    rng = random.Random(seed)
    archive = Archive(path)
    for cycle in range(cycles):
        late = cycle / (cycles - 1)
        records = []
        for i in range(samples):
            status = "ok" if rng.random() < 0.3 + 0.6 * late else rng.choice(["runtime_error", "syntax_error"])
            lgbm = rng.random() < 0.3 + 0.7 * late
            program = (LGBM if lgbm else FEATURES + RIDGE).format(n=rng.randint(1, 500))
            res = result(rng, status, skill=0.01 + 0.02 * late * rng.random())
            reward = -0.3 if status != "ok" else 0.7 * (res.validation.sharpe / 10)  # type: ignore[union-attr]
            records.append(ArchiveRecord(cycle, i, cycle, program, program, res,
                                         RewardBreakdown(reward, {"compile": 0.0, "performance": 0.0, "uniqueness": 0.0})))
        archive.add_cycle(cycle, records)
    base = result(rng, "ok", skill=0.012)
    archive.set_baseline(ArchiveRecord(0, -1, 0, default_program_source(), "", base,
                                       RewardBreakdown(0.0, {"compile": 0.0, "performance": 0.0, "uniqueness": 0.0})))
    return archive


def row(cycle: int, status: str, family: str, own: bool, reward: float, val: float | None,
        test: float | None) -> dict:
    return {"cycle": cycle, "status": status, "error_class": None if status == "ok" else "KeyError",
            "reward": reward, "val_sharpe": val, "test_sharpe": test, "program_hash": "h", "model_family": family, "defines_features": own,
            "defines_target": False, "defines_cv": False, "defines_model": True}


def test_quarter_figures_by_hand() -> None:
    rows = [row(0, "ok", "linear", True, 0.5, 1.0, 0.2), row(0, "runtime_error", "linear", True, -0.3, None, None),
            row(1, "ok", "lightgbm", False, 0.4, 0.5, 0.9)]
    rows += [row(c, "ok", "lightgbm", False, 0.6, 0.8 + c / 10, c / 10) for c in (2, 3, 4, 5, 6)]
    rows += [row(7, "ok", "lightgbm", False, 0.7, 2.0, -0.5), row(7, "runtime_error", "linear", False, -0.3, None, None)]
    first, last = first_last_quarters(rows)  # 8 cycles: quarters are cycles 0-1 and 6-7
    assert first["cycles"] == "0-1" and last["cycles"] == "6-7"
    assert first["compile_rate"] == pytest.approx(2 / 3)
    assert first["mean_reward"] == pytest.approx(0.2)
    assert (first["best_val_sharpe"], first["test_sharpe_of_best"]) == (1.0, 0.2)  # not 0.9: val selects
    assert first["share_own_features"] == pytest.approx(2 / 3)
    assert (first["top_family"], first["top_family_share"]) == ("linear", pytest.approx(2 / 3))
    assert last["compile_rate"] == pytest.approx(2 / 3)
    assert (last["best_val_sharpe"], last["test_sharpe_of_best"]) == (2.0, -0.5)
    assert (last["top_family"], last["top_family_share"]) == ("lightgbm", pytest.approx(2 / 3))
    assert last["share_own_features"] == 0.0


def test_deflated_best_counts_distinct_programs_that_scored() -> None:
    rows = [row(0, "ok", "linear", True, 0.5, 1.0, 0.2), row(1, "ok", "linear", True, 0.5, 1.0, 0.1),
            row(1, "ok", "lightgbm", False, 0.4, 0.6, 0.9), row(2, "runtime_error", "linear", False, -0.3, None, None),
            row(2, "leakage_suspected", "linear", False, -0.3, 3.0, None)]
    for r, h in zip(rows, ("a", "a", "b", "c", "d"), strict=True):
        r["program_hash"] = h
    per_era = [0.01, 0.03, None, 0.02, 0.04]  # a NaN era is left out, as in the Sharpe
    got = deflated_best(rows, {"val_sharpe": 1.0, "program_hash": "a", "val_per_era": per_era})
    # trials: a (once, though evaluated twice) and b; not the failure, not the suspected leak
    assert got["n_trials"] == 2 and got["sharpe"] == 1.0
    assert got["benchmark"] == pytest.approx(expected_max_sharpe(2, np.var([1.0, 0.6], ddof=1)))
    assert got["dsr"] == pytest.approx(deflated_sharpe(np.array([0.01, 0.03, 0.02, 0.04]), np.array([1.0, 0.6])))
    assert 0 < got["dsr"] < 1
    assert deflated_best(rows, {"val_sharpe": 1.0, "program_hash": "a", "val_per_era": []})["dsr"] is None
    assert deflated_best(rows[3:4], None) is None


def test_cumulative_treats_nan_eras_as_zero() -> None:
    assert cumulative([0.1, None, -0.05, 0.2]) == pytest.approx([0.1, 0.1, 0.05, 0.25])
    assert cumulative(None) == []


def test_report_writes_plots_and_sections(tmp_path: Path) -> None:
    synthetic_archive(tmp_path / ARCHIVE_FILE).close()
    path = write_report(tmp_path, top_n=3)
    assert path == tmp_path / REPORT_DIR / "report.md"
    for name in ("progress", "errors", "families", "diversity", "per_era"):
        png = tmp_path / REPORT_DIR / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    text = path.read_text()
    for section in ("## Run", "## First vs last quarter of cycles", "## Top programs", "## Diversity per cycle",
                    "## Plots"):
        assert section in text
    assert "cycles archived: 8 (0 to 7)" in text and "programs evaluated: 48" in text
    with Archive(tmp_path / ARCHIVE_FILE) as archive:
        best = archive.top(1)[0]
        scored = {r["program_hash"]: r["val_sharpe"] for r in archive.rows(("status", "program_hash", "val_sharpe"))
                  if r["status"] == "ok"}
    dsr = deflated_sharpe(np.array(best["val_per_era"]), np.array(list(scored.values())))
    assert (f"- best validation Sharpe: {best['val_sharpe']:.3f} (`{best['program_hash']}`), deflated Sharpe "
            f"ratio {dsr:.3f} for {len(scored)} distinct programs that scored") in text
    for name in ("progress", "errors", "families", "diversity", "per_era"):
        assert f"]({name}.png)" in text
    top_text = text.split("## Top programs")[1].split("## Diversity")[0]
    top_rows = [line for line in top_text.splitlines() if line.startswith(("| 1 |", "| 2 |", "| 3 |", "| 4 |"))]
    assert len(top_rows) == 3  # top_n programs
    assert "| default |" in text  # the baseline beside them
    quarter = {line.split("|")[1].strip(): line.split("|")[2:4] for line in text.splitlines()
               if line.startswith("| top model family |")}
    assert [c.strip() for c in quarter["top model family"]] == ["linear", "lightgbm"]  # collapse shows


def test_report_without_cycles_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    Archive(tmp_path / ARCHIVE_FILE).close()
    assert main([str(tmp_path)]) == 0
    assert "nothing to plot" in (tmp_path / REPORT_DIR / "report.md").read_text()
    assert not (tmp_path / REPORT_DIR / "progress.png").exists()
    assert main([str(tmp_path / "missing")]) == 2
    assert str(tmp_path / "missing" / ARCHIVE_FILE) in capsys.readouterr().err


def test_report_of_a_run_where_nothing_ran(tmp_path: Path) -> None:
    archive = Archive(tmp_path / ARCHIVE_FILE)
    archive.add_cycle(0, [ArchiveRecord(0, 0, 0, "", "no code", EvalResult(status="parse_error"),
                                        RewardBreakdown(-0.3, {"compile": -1.0, "performance": 0.0, "uniqueness": 0.0}))])
    archive.add_cycle(1, [ArchiveRecord(1, 0, 1, RIDGE.format(n=1), "", EvalResult(status="infra_error"), None)])
    archive.close()
    text = write_report(tmp_path).read_text()
    assert "No program ran successfully." in text and "default program: not in the archive" in text
    assert "| compile rate | 0 % | - |" in text  # cycle 1 held only an infra error: no rate
    assert (tmp_path / REPORT_DIR / "per_era.png").is_file()


def test_diversity_table_counts_clusters_from_saved_predictions(tmp_path: Path) -> None:
    synthetic_archive(tmp_path / ARCHIVE_FILE).close()
    with Archive(tmp_path / ARCHIVE_FILE) as archive:
        rows = archive.rows(("cycle", "status", "program_hash"))
    hashes = list(dict.fromkeys(r["program_hash"] for r in rows if r["cycle"] == 7 and r["status"] == "ok"))
    assert len(hashes) >= 2
    store = tmp_path / PREDICTIONS_DIR
    store.mkdir()
    np.save(store / ERAS_FILE, np.repeat(np.arange(3), 10))
    x = np.random.default_rng(0).normal(size=30)
    for k, h in enumerate(hashes):  # two behaviours: x and its mirror image
        np.save(store / f"{h}.npy", (x if k % 2 == 0 else -x).astype(np.float32))
    div = run_diversity(tmp_path)
    assert [d["cycle"] for d in div] == list(range(8))
    assert div[7]["clusters"] == 2 and div[0]["clusters"] is None  # cycle 0's predictions were not saved
    text = write_report(tmp_path).read_text()
    line = next(t for t in text.split("## Diversity per cycle")[1].splitlines() if t.startswith("| 7 |"))
    assert line.rstrip().endswith("| 2 |")
