"""What the sandbox costs per evaluation, side by side in one run.

    .venv/bin/python benchmarks/sandbox_overhead.py [--repeats 3] [--data synthetic]

For the default program on the fast synthetic preset it times the model stage (the
heaviest of an evaluation's sandbox runs: target, CV, fit, validation and test streamed era
by era from a :class:`BlockStreamer`), alternating the modes so machine noise hits all alike:
- in-process: the child's harness called as a function in this (already warm) process;
- subprocess: a fresh ``python -I harness.py`` without isolation (interpreter start and
  imports paid, no namespaces);
- sandbox: the same through :class:`aiforml.sandbox.Sandbox` (bubblewrap when available);
and, for the two child modes, spawn to the first line of user code and the data hand-off
(memory-mapping the arrays and building the frame). Last, one full default evaluation
through :class:`Evaluator` (sandbox + trusted checks + scoring). Prints a Markdown table
for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from aiforml.compose import load_config
from aiforml.data import load_dataset, split_dataset
from aiforml.pipeline import harness
from aiforml.pipeline.defaults import default_program_source
from aiforml.pipeline.evaluator import HARNESS, Evaluator
from aiforml.pipeline.stream import BlockStreamer, write_array
from aiforml.program import Program
from aiforml.sandbox import Sandbox
from aiforml.sandbox.environment import THREAD_VARS

# The first statement of the program prints the wall clock: spawn -> first user line.
PROBE = "import time as _t\nprint('FIRST_LINE', _t.time(), flush=True)\n"


def write_job(evaluator: Evaluator, source: str, out: Path, inbox: Path, fds: list[int]) -> Path:
    job = {"stage": "model", "program": source, "defaults": evaluator.defaults,
           "data_dir": str(evaluator.train_dir), "out_dir": str(out), "inbox": str(inbox),
           "n_blocks": len(evaluator.task.eval_blocks()), "signal_fds": fds,
           "embargo": int(evaluator.split.embargo),
           "max_cv_folds": 10, "feature_hint": ""}
    path = out / "job.json"
    path.write_text(json.dumps(job))
    return path


def prepare_inbox(evaluator: Evaluator, features: np.ndarray, folder: Path) -> Path:
    inbox = folder / "inbox"
    inbox.mkdir()
    write_array(inbox, "x_train.npy", features[: evaluator.task.n_train])
    (inbox / "columns.json").write_text(json.dumps(list(evaluator.dataset.feature_names)))
    return inbox


def first_line(stdout: str, started: float) -> float:
    for line in stdout.splitlines():
        if line.startswith("FIRST_LINE"):
            return float(line.split()[1]) - started
    return float("nan")


def child_timings(out: Path) -> dict[str, float]:
    return json.loads((out / "result.json").read_text())["timings"]


def run_mode(mode: str, evaluator: Evaluator, source: str, sandbox: Sandbox,
             features: np.ndarray) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=evaluator.work_root) as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        inbox = prepare_inbox(evaluator, features, Path(tmp))
        streamer = BlockStreamer(features, evaluator.task.eval_blocks(), inbox, out)
        job = write_job(evaluator, source, out, inbox, streamer.child_fds)
        started = time.time()
        t0 = time.perf_counter()
        streamer.start()
        if mode == "in-process":
            harness.main(str(job))
            stdout = ""
        elif mode == "subprocess":
            stdout = subprocess.run([sys.executable, "-I", str(HARNESS), str(job)], capture_output=True,
                                    text=True, check=True, env=dict(os.environ),
                                    pass_fds=streamer.child_fds).stdout
        else:
            stdout = sandbox.run([sys.executable, "-I", str(HARNESS), str(job)],
                                 ro_paths=[HARNESS, evaluator.train_dir, inbox], rw_dir=out,
                                 pass_fds=streamer.child_fds).stdout
        streamer.stop()
        assert streamer.complete, streamer.finding
        total = time.perf_counter() - t0
        timings = child_timings(out)
    return {"total": total, "first_line": first_line(stdout, started) if mode != "in-process" else 0.0,
            "handoff": timings["load_data"], "pipeline": sum(v for k, v in timings.items() if k != "load_data")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", default="synthetic")
    args = parser.parse_args()
    # Every mode gets the sandbox child's thread budget of one: the environment for the
    # subprocess and LightGBM's n_jobs (joblib reads it per call), threadpoolctl for BLAS here.
    os.environ.update(dict.fromkeys(THREAD_VARS, "1"))
    threadpool_limits(1)
    cfg = load_config([f"data={args.data}"])
    dataset = load_dataset(cfg.data)
    split = split_dataset(dataset, cfg.data)
    evaluator = Evaluator(dataset, split, cfg.env)
    sandbox = Sandbox(dataclasses.replace(cfg.env.sandbox))
    source = PROBE + default_program_source(cfg.env.pipeline)
    features = np.asarray(dataset.features[evaluator.task.feature_rows])  # the default's features
    run_mode("in-process", evaluator, source, sandbox, features)  # warm

    modes = ("in-process", "subprocess", "sandbox")
    samples: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    for _ in range(args.repeats):
        for mode in modes:
            samples[mode].append(run_mode(mode, evaluator, source, sandbox, features))
    evaluator.baseline_predictions()
    full, scoring = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        result = evaluator.evaluate(Program(default_program_source(cfg.env.pipeline)))
        full.append(time.perf_counter() - t0)
        scoring.append(result.timings["score"])
        assert result.status == "ok", result.message
    evaluator.close()
    report(samples, full, scoring, dataset, split, sandbox.isolation, args.repeats)


def report(samples, full, scoring, dataset, split, isolation: str, repeats: int) -> None:
    med = {m: {k: statistics.median(s[k] for s in rows) for k in rows[0]} for m, rows in samples.items()}
    base = med["in-process"]["total"]
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}; {time.strftime('%Y-%m-%d')}; isolation: {isolation}")
    print(f"data: {dataset.name}, {len(dataset.eras)} rows, {len(dataset.feature_names)} features; "
          f"train/val/test eras {len(split.train)}/{len(split.validation)}/{len(split.test)}; "
          f"median of {repeats}\n")
    print("| mode | total s | spawn to first user line s | data hand-off s | pipeline s | overhead vs in-process s |")
    print("|---|---|---|---|---|---|")
    for mode, m in med.items():
        print(f"| {mode} | {m['total']:.2f} | {m['first_line']:.2f} | {m['handoff']:.3f} | {m['pipeline']:.2f} "
              f"| {m['total'] - base:+.2f} |")
    print(f"\none default evaluation through Evaluator (every stage + checks + scoring): "
          f"{statistics.median(full):.2f} s, of which trusted scoring {statistics.median(scoring):.2f} s "
          f"(median of {repeats}; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
