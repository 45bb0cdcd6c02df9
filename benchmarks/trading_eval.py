"""Time of one sandboxed evaluation of the default trading program on the S&P 500.

    .venv/bin/python benchmarks/trading_eval.py [--repeats 3] [--set KEY=VALUE ...]

Evaluates the default trading program (``--data sp500``) ``repeats`` times through the
trusted evaluator (its stages: feature run, model run with periods streamed one at a time,
look-ahead guard runs beside it, the backtest) and prints the median of each stage as a
Markdown table row for benchmarks/README.md, with the machine's load average. The default
program keeps the default features, computed and guarded once per evaluator: its own
feature and guard stages are 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from aiforml.compose import load_config
from aiforml.data import load_dataset, split_dataset
from aiforml.pipeline.defaults import default_program_source
from aiforml.pipeline.evaluator import build_evaluator
from aiforml.program import Program


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    cfg = load_config(["data=sp500", *args.set])
    data = load_dataset(cfg.data)
    evaluator = build_evaluator(data, split_dataset(data, cfg.data), cfg.env)
    program = Program(default_program_source(cfg.env.pipeline, "trading"))
    stages: dict[str, list[float]] = {"total": [], "sandbox/features": [], "sandbox/model": [],
                                      "sandbox/guard": [], "score": []}
    try:
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = evaluator.evaluate(program, with_baseline=False)
            assert result.status == "ok", result.message
            stages["total"].append(time.perf_counter() - start)
            for key in stages.keys() - {"total"}:  # a program keeping the default features has no stage of its own
                stages[key].append(result.timings.get(key, 0.0))
    finally:
        evaluator.close()
    medians = {k: statistics.median(v) for k, v in stages.items()}
    print(f"load average {os.getloadavg()[0]:.1f}, median of {args.repeats}, isolation {evaluator.sandbox.isolation}")
    print("| total s | feature stage s | model stage s | look-ahead guard s | backtest s |")
    print(f"| {medians['total']:.2f} | {medians['sandbox/features']:.2f} | {medians['sandbox/model']:.2f} "
          f"| {medians['sandbox/guard']:.2f} | {medians['score']:.2f} |")


if __name__ == "__main__":
    main()
