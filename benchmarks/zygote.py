"""Zygote against spawn, side by side in one run: what the pre-imported interpreter saves.

    .venv/bin/python benchmarks/zygote.py [--repeats 5] [--data synthetic]

Alternating the modes every repeat so machine noise hits all alike, it measures:
- the default program's model stage (the heaviest sandbox run: target, CV, fit, validation
  and test streamed era by era) in-process (the harness called as a function in this warm
  process), through a spawning Sandbox and through a zygote Sandbox: the overhead of each
  over in-process;
- a numpy-only program (its own 8-feature ``create_features``, a closed-form least squares
  model) through a whole :class:`Evaluator` of each mode: time in sandboxes (feature stage
  plus model stage; the guards run beside the model stage) and trusted scoring;
- the default program through a whole :class:`Evaluator` of each mode.

Each Evaluator is warmed by one evaluation first (the zygote's start-up and the default
feature matrix are paid once per environment actor, not per program). Prints Markdown for
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).parent))
from sandbox_overhead import PROBE, run_mode  # noqa: E402

from aiforml.compose import load_config  # noqa: E402
from aiforml.data import load_dataset, split_dataset  # noqa: E402
from aiforml.pipeline.defaults import default_program_source  # noqa: E402
from aiforml.pipeline.evaluator import HARNESS, Evaluator  # noqa: E402
from aiforml.program import Program  # noqa: E402
from aiforml.sandbox import Sandbox  # noqa: E402
from aiforml.sandbox.environment import THREAD_VARS  # noqa: E402

NUMPY_ONLY = '''
import numpy as np


def create_features(df, feature_cols):
    return df[feature_cols[:8]]


class LeastSquares:
    def fit(self, X, y):
        A = np.c_[np.asarray(X, dtype=float), np.ones(len(X))]
        self.w = np.linalg.lstsq(A, y, rcond=None)[0]
        return self

    def predict(self, X):
        return np.c_[np.asarray(X, dtype=float), np.ones(len(X))] @ self.w


def define_model():
    return LeastSquares()
'''
MODES = ("spawn", "zygote")


def evaluation(evaluator: Evaluator, source: str) -> dict[str, float]:
    started = time.perf_counter()
    result = evaluator.evaluate(Program(source))
    total = time.perf_counter() - started
    assert result.status == "ok", (result.status, result.message)
    t = result.timings
    return {"total": total, "sandbox": t.get("sandbox/features", 0.0) + t["sandbox/model"],
            "guard": t.get("sandbox/guard", 0.0), "score": t["score"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", default="synthetic")
    args = parser.parse_args()
    os.environ.update(dict.fromkeys(THREAD_VARS, "1"))
    threadpool_limits(1)
    cfg = load_config([f"data={args.data}"])
    dataset = load_dataset(cfg.data)
    split = split_dataset(dataset, cfg.data)
    work = Path(tempfile.mkdtemp(prefix="aiforml-bench-zygote-"))
    evaluators = {m: Evaluator(dataset, split, dataclasses.replace(
        cfg.env, sandbox=dataclasses.replace(cfg.env.sandbox, mode=m)), work_root=work / m) for m in MODES}
    boxes = {m: Sandbox(dataclasses.replace(cfg.env.sandbox, mode=m), roots=[work / m],
                        ro_roots=[evaluators[m].feature_dir.parent, HARNESS]) for m in MODES}
    started = time.perf_counter()
    boxes["zygote"].run([sys.executable, "-I", "-c", "pass"], ro_paths=[], rw_dir=work / "zygote")
    zygote_start = time.perf_counter() - started
    default = default_program_source(cfg.env.pipeline)
    features = np.asarray(dataset.features[evaluators["spawn"].task.feature_rows])
    stage: dict[str, list[float]] = {m: [] for m in ("in-process", *MODES)}
    numpy_only: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    full: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    for mode in MODES:  # warm: baseline, default matrix, zygote start
        evaluators[mode].baseline_predictions()
        evaluation(evaluators[mode], NUMPY_ONLY)
    run_mode("in-process", evaluators["spawn"], PROBE + default, boxes["spawn"], features)
    for _ in range(args.repeats):
        stage["in-process"].append(run_mode("in-process", evaluators["spawn"], PROBE + default,
                                            boxes["spawn"], features)["total"])
        for mode in MODES:
            stage[mode].append(run_mode("sandbox", evaluators[mode], PROBE + default, boxes[mode], features)["total"])
            numpy_only[mode].append(evaluation(evaluators[mode], NUMPY_ONLY))
            full[mode].append(evaluation(evaluators[mode], default))
    for box in boxes.values():
        box.close()
    for evaluator in evaluators.values():
        evaluator.close()
    report(stage, numpy_only, full, zygote_start, dataset, split, args.repeats, boxes["zygote"].isolation)


def report(stage, numpy_only, full, zygote_start, dataset, split, repeats, isolation) -> None:
    med = {m: statistics.median(v) for m, v in stage.items()}

    def m(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}; {time.strftime('%Y-%m-%d')}; isolation: {isolation}; "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    print(f"data: {dataset.name}, {len(dataset.eras)} rows, {len(dataset.feature_names)} features; "
          f"train/val/test eras {len(split.train)}/{len(split.validation)}/{len(split.test)}; "
          f"median of {repeats}, modes alternated; zygote start-up (imports, once per actor) {zygote_start:.2f} s\n")
    print("| | in-process | spawn | zygote | zygote / spawn |")
    print("|---|---|---|---|---|")
    print(f"| default model stage, s | {med['in-process']:.2f} | {med['spawn']:.2f} | {med['zygote']:.2f} "
          f"| {med['zygote'] / med['spawn']:.2f} |")
    print(f"| its overhead over in-process, s | | {med['spawn'] - med['in-process']:+.2f} "
          f"| {med['zygote'] - med['in-process']:+.2f} | |")
    for label, key in (("in sandboxes (features + model)", "sandbox"), ("look-ahead guards (beside the model)", "guard"),
                       ("trusted scoring", "score"), ("whole evaluation", "total")):
        s, z = m(numpy_only["spawn"], key), m(numpy_only["zygote"], key)
        print(f"| numpy-only program: {label}, s | | {s:.2f} | {z:.2f} | {z / s:.2f} |")
    s, z = m(full["spawn"], "total"), m(full["zygote"], "total")
    print(f"| default program: whole evaluation, s | | {s:.2f} | {z:.2f} | {z / s:.2f} |")


if __name__ == "__main__":
    main()
