"""Benchmark of the tiny policy's first build on a quiet machine and beside a CPU hog.

Responsible for: building the tiny policy from scratch into a fresh temporary cache, first
with nothing else started and then beside one CPU-bound process (``while True: pass``)
that it starts and stops itself, and printing per build the wall time, SFT steps per
second, the 1-minute load average before and after, and the torch thread counts the SFT
used (``aiforml.policy.tiny.threads``). Not responsible for: sample quality
(``benchmarks/tiny_build.py``), or asserting anything; it prints figures to write down.

Run: ``python benchmarks/warm_start.py [--repeats 1] [--steps N] [--set key=value ...]``
(``--steps`` shortens the SFT to about N steps on the full corpus for a quick check;
``--set`` overrides TinyPolicyConfig fields). Target: at most 120 s beside the hog.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiforml.config import TinyPolicyConfig, from_dict  # noqa: E402
from aiforml.policy.schema import default_schema  # noqa: E402
from aiforml.policy.tiny.build import READY_FILE, build_tiny_policy  # noqa: E402

HOG = "while True: pass"


def build_once(cfg: TinyPolicyConfig, hog: bool) -> dict[str, Any]:
    """Build into a fresh cache (beside a started hog when ``hog``); the figures of that build."""
    hog_proc = subprocess.Popen([sys.executable, "-c", HOG]) if hog else None
    try:
        time.sleep(1.0 if hog else 0.0)  # the hog is running before the build starts
        load_before = os.getloadavg()[0]
        with tempfile.TemporaryDirectory(prefix="aiforml-warm-start-") as cache:
            cfg = from_dict(TinyPolicyConfig, {**vars(cfg), "cache_dir": cache}, prefix="policy.tiny.")
            t0 = time.perf_counter()
            path = build_tiny_policy(cfg, default_schema())
            wall = time.perf_counter() - t0
            info = json.loads((path / READY_FILE).read_text())
    finally:
        if hog_proc is not None:
            hog_proc.kill()
            hog_proc.wait(timeout=10)
    sft = info["sft"]
    return {
        "hog": hog,
        "wall_s": round(wall, 1),
        "sft_s": sft["train_seconds"],
        "steps": sft["steps"],
        "steps_per_s": round(sft["steps"] / sft["train_seconds"], 2),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "threads": sft.get("threads"),
        "final_loss": sft["final_loss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="quiet and hog builds, alternated")
    parser.add_argument("--steps", type=int, default=None, help="about this many SFT steps (default: the config's epochs)")
    parser.add_argument("--set", action="append", default=[], help="TinyPolicyConfig field=value (YAML value)")
    args = parser.parse_args()
    import yaml

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    cfg = from_dict(TinyPolicyConfig, {"progress": False, **overrides}, prefix="policy.tiny.")
    if args.steps:
        cfg.epochs = args.steps / -(-cfg.n_programs // cfg.batch_size)
    print(f"{os.cpu_count()} cores, {len(os.sched_getaffinity(0))} usable; load {os.getloadavg()}", file=sys.stderr)
    results = []
    for _ in range(args.repeats):
        for hog in (False, True):
            results.append(build_once(cfg, hog))
            print(json.dumps(results[-1]), flush=True)
    print(json.dumps({"cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                      "builds": results}, indent=2))


if __name__ == "__main__":
    main()
