"""Does the uniqueness reward keep the search from collapsing? ``ppo_sharpe`` against
``ppo_unique`` on the same seeds and budget, side by side.

    # both experiments, seeds 0 1 2, the experiments' own budget (each run ~7-15 min on 2 cores)
    python benchmarks/uniqueness.py --seeds 0 1 2 --out benchmarks/results/uniqueness --readme

    # reuse ppo_sharpe runs made elsewhere (their seeds are read from their config.yaml)
    python benchmarks/uniqueness.py --reuse-sharpe outputs/A outputs/B --seeds 0 1 --out DIR

    # a quick check of the script itself: one cycle of two samples per run
    python benchmarks/uniqueness.py --seeds 0 --out /tmp/uq \\
        --set loop.cycles=1 loop.prompts_per_cycle=1 loop.samples_per_prompt=2

Each run goes through the real entry point (``launch.py +experiment=E seed=S run_dir=OUT/E-seedS``
plus ``--set`` overrides) in a subprocess; a run directory whose archive already holds
``loop.cycles`` cycles is reused instead of run again, so an interrupted benchmark picks up
where it stopped. Per run, from its archive and saved validation predictions: the share of
each model family and of programs with their own features / target / CV (descriptors read
again from the code), behavioural clusters over the whole run, the best program by
validation Sharpe with its sealed-test Sharpe and its validation corr with the default
LightGBM, and the default program's sealed-test Sharpe. Writes ``OUT/results.md`` (and with
``--readme`` the same table into benchmarks/README.md between markers) with the issue's goals
checked: with uniqueness on, no family above 60 %, at least 30 % with own features, and a best
program whose sealed-test Sharpe is at least the default's while its corr with it is below 0.7.
Sealed test scores are read here for reporting only; nothing is selected by them.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiforml.archive import open_run  # noqa: E402
from aiforml.descriptors import describe_program  # noqa: E402
from aiforml.diversity import cycle_diversity  # noqa: E402
from aiforml.reference import ERAS_FILE, PREDICTIONS_DIR  # noqa: E402
from aiforml.uniqueness import EraIndex  # noqa: E402

README = ROOT / "benchmarks" / "README.md"
START, END = "<!-- uniqueness:start -->", "<!-- uniqueness:end -->"
GOALS = {"top_family_share": 0.6, "share_own_features": 0.3, "best_baseline_corr": 0.7}


# --- running -------------------------------------------------------------------------------
def run_command(experiment: str, seed: int, run_dir: Path, sets: list[str]) -> list[str]:
    return [sys.executable, str(ROOT / "launch.py"), f"+experiment={experiment}", f"seed={seed}",
            f"run_dir={run_dir}", "loop.progress=false", *sets]


def finished(run_dir: Path) -> bool:
    """True when the run's archive holds as many cycles as its config asked for."""
    config = run_dir / "config.yaml"
    if not (run_dir / "archive.sqlite").is_file() or not config.is_file():
        return False
    cycles = yaml.safe_load(config.read_text())["loop"]["cycles"]
    with open_run(run_dir) as archive:
        return (archive.last_cycle() or 0) >= cycles


def ensure_run(experiment: str, seed: int, out: Path, sets: list[str], timeout_s: float) -> Path:
    """Run one experiment and seed unless its directory holds a finished run; its directory."""
    run_dir = out / f"{experiment}-seed{seed}"
    if finished(run_dir):
        print(f"reusing {run_dir}", flush=True)
        return run_dir
    command = run_command(experiment, seed, run_dir, sets)
    if run_dir.exists() and (run_dir / "checkpoints").exists():
        command.append(f"resume={run_dir}")
    run_dir.mkdir(parents=True, exist_ok=True)
    print("running:", " ".join(command), flush=True)
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with (run_dir / "launch.log").open("w") as log:
        subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                       timeout=timeout_s, check=True)
    print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
    return run_dir


def seed_of(run_dir: Path) -> int:
    return int(yaml.safe_load((run_dir / "config.yaml").read_text())["seed"])


# --- figures of one run --------------------------------------------------------------------
def run_figures(run_dir: Path, cluster_corr: float = 0.9) -> dict[str, Any]:
    """The benchmark's figures of one finished run directory."""
    with open_run(run_dir) as archive:
        rows = archive.rows(("status", "program", "program_hash", "val_sharpe"))
        best = next(iter(archive.top(1, by="val_sharpe")), None)
        baseline = archive.baseline()
    coded = [describe_program(r["program"]) for r in rows if r["program_hash"] and r["status"] != "infra_error"]
    store = run_dir / PREDICTIONS_DIR
    index = EraIndex.from_eras(np.load(store / ERAS_FILE)) if (store / ERAS_FILE).is_file() else None
    ok = sorted((r for r in rows if r["status"] == "ok" and r["val_sharpe"] is not None),
                key=lambda r: -r["val_sharpe"])
    paths = [p for p in dict.fromkeys(store / f"{r['program_hash']}.npy" for r in ok) if p.is_file()]
    preds = [np.load(p, allow_pickle=False).astype(np.float64) for p in paths] if index else []
    div = cycle_diversity(coded, preds, index, cluster_corr)
    top = max(div["family_shares"].items(), key=lambda kv: kv[1], default=(None, None))
    return {
        "run_dir": str(run_dir), "seed": seed_of(run_dir), "programs": div["n_programs"],
        "compile_rate": sum(r["status"] == "ok" for r in rows) / len(rows) if rows else None,
        "family_shares": div["family_shares"], "top_family": top[0], "top_family_share": top[1],
        "share_own_features": div["share_own_features"], "share_own_target": div["share_own_target"],
        "share_own_cv": div["share_own_cv"], "clusters": div["clusters"],
        "best_val_sharpe": best["val_sharpe"] if best else None,
        "best_test_sharpe": best["test_sharpe"] if best else None,
        "best_baseline_corr": best["val_baseline_corr"] if best else None,
        "best_family": best["model_family"] if best else None,
        "baseline_test_sharpe": baseline["test_sharpe"] if baseline else None,
    }


def goals_met(f: dict[str, Any]) -> dict[str, bool | None]:
    """The issue's goals for one run (None where a figure is missing)."""
    def below(x: float | None, limit: float) -> bool | None:
        return None if x is None else x <= limit

    beats = (None if f["best_test_sharpe"] is None or f["baseline_test_sharpe"] is None
             else f["best_test_sharpe"] >= f["baseline_test_sharpe"])
    corr = None if f["best_baseline_corr"] is None else f["best_baseline_corr"] < GOALS["best_baseline_corr"]
    return {"no family above 60 %": below(f["top_family_share"], GOALS["top_family_share"]),
            ">= 30 % own features": None if f["share_own_features"] is None
            else f["share_own_features"] >= GOALS["share_own_features"],
            "best beats default on test, corr < 0.7": None if beats is None or corr is None else beats and corr}


# --- the table -----------------------------------------------------------------------------
def _f(x: Any, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else (
        f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f} %"


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _families(shares: dict[str, float]) -> str:
    top = sorted(shares.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{k} {_pct(v)}" for k, v in top) or "-"


ROWS = (("programs with code", "programs", str), ("compile rate", "compile_rate", _pct),
        ("model families (top 3)", "family_shares", _families), ("top family share", "top_family_share", _pct),
        ("own features", "share_own_features", _pct), ("own target", "share_own_target", _pct),
        ("own CV", "share_own_cv", _pct), ("behavioural clusters (run)", "clusters", str),
        ("best validation Sharpe", "best_val_sharpe", _f), ("its sealed-test Sharpe", "best_test_sharpe", _f),
        ("its corr with the default LightGBM", "best_baseline_corr", _f), ("its model family", "best_family", str),
        ("default program's sealed-test Sharpe", "baseline_test_sharpe", _f))


def render_table(results: dict[str, list[dict[str, Any]]], sets: list[str]) -> str:
    """One column per (experiment, seed), then the goal checks."""
    columns = [(exp, f) for exp, runs in results.items() for f in sorted(runs, key=lambda f: f["seed"])]
    head = "| | " + " | ".join(f"{exp} seed {f['seed']}" for exp, f in columns) + " |"
    lines = [f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
             f"{os.getloadavg()[0]:.1f}, overrides: {' '.join(sets) or 'none (the experiments budget)'}.", "",
             head, "|---|" + "---:|" * len(columns)]
    for label, key, fmt in ROWS:
        lines.append(f"| {label} | " + " | ".join(fmt(f[key]) if f[key] is not None else "-"
                                                 for _, f in columns) + " |")
    for goal in goals_met(columns[0][1]) if columns else []:
        marks = [goals_met(f)[goal] for _, f in columns]
        lines.append(f"| goal: {goal} | " + " | ".join("-" if m is None else ("yes" if m else "no")
                                                       for m in marks) + " |")
    means = {exp: {k: _mean([f[k] for f in runs]) for k in ("top_family_share", "share_own_features",
                                                            "best_test_sharpe", "best_baseline_corr")}
             for exp, runs in results.items()}
    lines += ["", "Means over seeds: " + "; ".join(
        f"{exp}: top family {_pct(m['top_family_share'])}, own features {_pct(m['share_own_features'])}, "
        f"best's test Sharpe {_f(m['best_test_sharpe'])}, its corr with the default {_f(m['best_baseline_corr'])}"
        for exp, m in means.items()) + ".", ""]
    lines += ["Run directories: " + ", ".join(f"`{f['run_dir']}`" for _, f in columns), ""]
    return "\n".join(lines)


def write_readme(table: str) -> None:
    text = README.read_text()
    block = f"{START}\n{table}\n{END}"
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END):]
    else:
        text += ("\n## Uniqueness reward against collapse (`uniqueness.py`)\n\n"
                 "`python benchmarks/uniqueness.py --seeds 0 1 2 --out benchmarks/results/uniqueness --readme`\n\n"
                 + block + "\n")
    README.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds to run (same for every experiment)")
    parser.add_argument("--experiments", nargs="+", default=["ppo_sharpe", "ppo_unique"])
    parser.add_argument("--reuse-sharpe", type=Path, nargs="+", default=[], metavar="DIR",
                        help="finished ppo_sharpe run directories to use instead of running ppo_sharpe")
    parser.add_argument("--out", type=Path, required=True, help="where run directories and results.md go")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every run")
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds per run at most")
    parser.add_argument("--readme", action="store_true", help="also write the table into benchmarks/README.md")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict[str, Any]]] = {}
    for experiment in args.experiments:
        if experiment == "ppo_sharpe" and args.reuse_sharpe:
            dirs = [d.resolve() for d in args.reuse_sharpe]
            missing = [d for d in dirs if not (d / "archive.sqlite").is_file()]
            if missing:
                parser.error(f"--reuse-sharpe: no archive.sqlite in {', '.join(map(str, missing))}")
        else:
            dirs = [ensure_run(experiment, seed, out, args.set, args.timeout) for seed in args.seeds]
        results[experiment] = [run_figures(d) for d in dirs]
    table = render_table(results, args.set)
    (out / "results.md").write_text(table + "\n")
    print(table)
    if args.readme:
        write_readme(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
