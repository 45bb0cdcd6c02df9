"""Does the default run learn? Several seeds of an experiment, first vs last quarter of cycles.

    .venv/bin/python benchmarks/learning.py [--seeds 0 1 2] [--experiment ppo_sharpe]
        [--out /tmp/aiforml-learning] [--reuse RUN_DIR ...] [--set KEY=VALUE ...]

Runs ``python launch.py +experiment=EXPERIMENT seed=S run_dir=OUT/EXPERIMENT-sS`` for each
seed, one after the other (each run has the machine to itself), then reads each run's
archive and prints a Markdown table, one row per seed: compile rate and mean reward of the
first and the last quarter of cycles (the issue's test: last above first, in at least 2 of
3 seeds), best validation Sharpe and the sealed-test Sharpe of the best-by-validation
program per quarter, and what would show a collapse: the share of programs defining their
own features, the top model families and the number of distinct families per quarter.
``--reuse`` skips running and tabulates existing run directories. The table and the wall
time of each run go to stdout; paste them into benchmarks/README.md with the date.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from aiforml.archive import open_run
from aiforml.report import first_last_quarters, quarter_cycles

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("cycle", "status", "error_class", "reward", "val_sharpe", "test_sharpe", "program_hash",
           "model_family", "defines_features", "defines_target", "defines_cv", "defines_model")


def run_seed(experiment: str, seed: int, run_dir: Path, overrides: list[str]) -> float:
    """One whole run through the real entry point; returns its wall time in seconds."""
    cmd = [sys.executable, str(ROOT / "launch.py"), f"+experiment={experiment}", f"seed={seed}",
           f"run_dir={run_dir}", "loop.progress=false", *overrides]
    start = time.perf_counter()
    log = run_dir.with_suffix(".log")
    with log.open("w") as out:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}); see {log}")
    return time.perf_counter() - start


def families(rows: list[dict], cycles: set[int], top: int = 3) -> tuple[str, int]:
    """The ``top`` model families of the programs of ``cycles`` with their shares, and how many."""
    counts = Counter(r["model_family"] for r in rows
                     if r["cycle"] in cycles and r["program_hash"] and r["status"] != "infra_error")
    total = sum(counts.values()) or 1
    shown = ", ".join(f"{f} {100 * k / total:.0f}%" for f, k in counts.most_common(top))
    return shown, len(counts)


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def num(x: float | None) -> str:
    return "-" if x is None else f"{x:+.3f}"


def table(runs: list[tuple[str, Path, float | None]]) -> list[str]:
    """The Markdown table of the runs: (label, run directory, wall seconds or None)."""
    lines = ["| run | wall | cycles | compile rate first -> last | mean reward first -> last | "
             "learned | best val Sharpe first -> last | test Sharpe of best first -> last | "
             "own features first -> last | families first | families last |",
             "|---|---:|---|---|---|---|---|---|---|---|---|"]
    learned = 0
    for label, run_dir, wall in runs:
        with open_run(run_dir) as archive:
            rows = archive.rows(COLUMNS)
        first, last = first_last_quarters(rows)
        up = (None not in (first["compile_rate"], last["compile_rate"], first["mean_reward"], last["mean_reward"])
              and last["compile_rate"] > first["compile_rate"] and last["mean_reward"] > first["mean_reward"])
        learned += up
        c_first, c_last = quarter_cycles(rows)
        (f_first, n_first), (f_last, n_last) = families(rows, c_first), families(rows, c_last)
        lines.append(
            f"| {label} | {'-' if wall is None else f'{wall / 60:.1f} min'} | "
            f"{first['cycles']} / {last['cycles']} | "
            f"{pct(first['compile_rate'])} -> {pct(last['compile_rate'])} | "
            f"{num(first['mean_reward'])} -> {num(last['mean_reward'])} | {'yes' if up else 'no'} | "
            f"{num(first['best_val_sharpe'])} -> {num(last['best_val_sharpe'])} | "
            f"{num(first['test_sharpe_of_best'])} -> {num(last['test_sharpe_of_best'])} | "
            f"{pct(first['share_own_features'])} -> {pct(last['share_own_features'])} | "
            f"{f_first} ({n_first} families) | {f_last} ({n_last} families) |")
    lines += ["", f"Learned (compile rate and mean reward both higher in the last quarter): "
                  f"{learned} of {len(runs)} runs."]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--experiment", default="ppo_sharpe")
    parser.add_argument("--out", type=Path, default=Path("/tmp/aiforml-learning"))
    parser.add_argument("--reuse", type=Path, nargs="+", help="tabulate these run directories, run nothing")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override passed to every run")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    runs: list[tuple[str, Path, float | None]] = []
    if args.reuse:
        runs = [(p.name, p, None) for p in args.reuse]
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            run_dir = args.out / f"{args.experiment}-s{seed}"
            if run_dir.exists():
                raise SystemExit(f"{run_dir} exists: remove it, choose --out, or tabulate it with --reuse")
            wall = run_seed(args.experiment, seed, run_dir, args.overrides)
            print(f"seed {seed}: {wall / 60:.1f} min, {run_dir}", flush=True)
            runs.append((f"{args.experiment} seed {seed}", run_dir, wall))
    print(f"\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, overrides: {args.overrides or 'none'}\n")
    print("\n".join(table(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
