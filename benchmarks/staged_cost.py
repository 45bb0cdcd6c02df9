"""What staged, streamed evaluation costs against a single-run evaluator, side by side.

    git worktree add /tmp/aiforml-before <older commit>
    .venv/bin/python benchmarks/staged_cost.py --before /tmp/aiforml-before [--repeats 3]

For each task's default data (``synthetic`` for the Numerai-style task, ``sp500`` for
trading) and each checkout (``--before`` and this one), a fresh process loads the data,
builds the checkout's Evaluator, computes the baseline and runs one warm-up evaluation (timed
apart: it holds what an evaluator does once, such as the default features and their guard),
then times ``--evals`` evaluations of the default program, and of the same program with its
``create_features`` written by the program (one line more: it pays its own feature stage
and look-ahead guard). Checkouts alternate, so machine noise hits both alike.
Prints a Markdown table (median seconds per evaluation) for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
TASKS = {"numerai": "synthetic", "trading": "sp500"}
KINDS = ("default", "own")  # the default program; the same with create_features its own
CHILD = """
import json, sys, time
from aiforml.compose import load_config
from aiforml.data import load_dataset, split_dataset
from aiforml.pipeline.defaults import default_program_source
from aiforml.pipeline.evaluator import build_evaluator
from aiforml.program import Program
cfg = load_config([f"data={sys.argv[1]}"])
data = load_dataset(cfg.data)
evaluator = build_evaluator(data, split_dataset(data, cfg.data), cfg.env)
evaluator.baseline_predictions()
program = Program(default_program_source(cfg.env.pipeline, cfg.data.resolved_task))
if sys.argv[3] == "own":  # the same features, written by the program: its own feature stage
    head = "def create_features(df, feature_cols):\\n"
    program = Program(program.source.replace(head, head + "    _ = 0\\n", 1))
warm = time.perf_counter()
evaluator.evaluate(program)  # once per evaluator: (after) the default features and their guard
warm = time.perf_counter() - warm
walls = []
for _ in range(int(sys.argv[2])):
    started = time.perf_counter()
    result = evaluator.evaluate(program)
    walls.append(time.perf_counter() - started)
    assert result.status == "ok", result.message
evaluator.close()
print("RESULT", json.dumps({"walls": walls, "warm": warm, "val_sharpe": result.validation.sharpe}))
"""


def sample(tree: Path, data: str, evals: int, kind: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", CHILD, data, str(evals), kind], env=env, cwd=tree,
                         capture_output=True, text=True, check=True, timeout=1800).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, required=True, help="checkout of the older evaluator")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per checkout and task")
    parser.add_argument("--evals", type=int, default=2, help="timed evaluations per process")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": HERE}
    walls: dict[tuple[str, str, str], list[float]] = {}
    warms: dict[tuple[str, str, str], list[float]] = {}
    sharpes: dict[tuple[str, str, str], float] = {}
    for r in range(args.repeats):
        order = list(trees) if r % 2 == 0 else list(reversed(trees))
        for task, data in TASKS.items():
            for kind in KINDS:
                for name in order:
                    got = sample(trees[name], data, args.evals, kind)
                    walls.setdefault((task, kind, name), []).extend(got["walls"])
                    warms.setdefault((task, kind, name), []).append(got["warm"])
                    sharpes[(task, kind, name)] = got["val_sharpe"]
                    print(f"{task} {kind} {name}: {got['walls']}", file=sys.stderr)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"load average {os.getloadavg()[0]:.1f}; {args.repeats} processes x {args.evals} evaluations\n")
    print("| task | create_features | before s | after s | after / before | first evaluation before s "
          "| after s | validation Sharpe before | after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for task in TASKS:
        for kind in KINDS:
            b, a = (statistics.median(walls[(task, kind, n)]) for n in ("before", "after"))
            wb, wa = (statistics.median(warms[(task, kind, n)]) for n in ("before", "after"))
            print(f"| {task} | {kind} | {b:.2f} | {a:.2f} | {a / b:.2f} | {wb:.2f} | {wa:.2f} "
                  f"| {sharpes[(task, kind, 'before')]:.3f} | {sharpes[(task, kind, 'after')]:.3f} |")


if __name__ == "__main__":
    main()
