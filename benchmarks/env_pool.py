"""Throughput of the environment pool, the MCP layer's overhead, and cache-hit latency, in one run.

    .venv/bin/python benchmarks/env_pool.py [--programs 4] [--rounds 2] [--repeats 4] [--set KEY=VALUE]

Measures, on the fast synthetic preset with a local Ray of 2 CPUs:
- programs per second through :class:`EnvPool` with 1 and with 2 actors: both pools are
  alive and take turns with batches of distinct programs (variants of the default program,
  so nothing is served from the cache), so that noise from other work hits both alike;
  actor start-up and baseline warm-up are outside the timed region. Target: 2 actors give
  >= 1.7x the throughput of 1 on 2 cores;
- the MCP layer's overhead per evaluation: the same program evaluated alternately by the
  library (``Evaluator.evaluate``) and through the in-process MCP client
  (``evaluate_program``); reported as the difference of the means and, less noisy, as each
  MCP call's wall time minus the evaluation time measured inside it. Target: < 5 %;
- cache-hit latency: ``EnvPool.evaluate([a program evaluated before])``;
- the machine's own ceiling: two CPU-bound processes side by side against one after the
  other (2.0x on two idle cores), before and after, since other work caps any pool's scaling.
Prints a Markdown table for benchmarks/README.md, with the machine's load average, since
other work on the machine moves every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import ray
from mcp import Client

from aiforml.compose import load_config
from aiforml.config import Config
from aiforml.data import load_dataset, split_dataset
from aiforml.env.pool import EnvPool
from aiforml.env.server import build_server
from aiforml.env.session import EnvSession
from aiforml.pipeline.defaults import default_program_source
from aiforml.program import Program


def variants(cfg: Config, n: int) -> list[Program]:
    """``n`` distinct programs that cost the same: the default program with a different constant."""
    base = default_program_source(cfg.env.pipeline)
    return [Program(f"{base}\nVARIANT = {i}\n") for i in range(n)]


SPIN = "s = 0\nfor i in range(20_000_000):\n    s += i\n"


def machine_ceiling(rounds: int = 2) -> float:
    """How much faster two CPU-bound processes finish side by side than one after the other
    (2.0 on two idle cores): the most any 2-actor pool can gain on this machine right now."""
    sequential = parallel = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(2):
            subprocess.run([sys.executable, "-c", SPIN], check=True)
        sequential += time.perf_counter() - t
        t = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(2)]
        for proc in procs:
            proc.wait(timeout=600)
        parallel += time.perf_counter() - t
    return sequential / parallel


def with_pool(cfg: Config, actors: int) -> Config:
    """``cfg`` with a pool of ``actors`` that each ask Ray for half a CPU, so that a 1-actor and
    a 2-actor pool (1.5 logical CPUs) are both alive on a 2-CPU Ray and can take turns."""
    pool_cfg = dataclasses.replace(cfg.env.pool, num_actors=actors, cpus_per_actor=0.5)
    return dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, pool=pool_cfg))


def pool_throughput(cfg: Config, data, programs: list[Program], rounds: int, dirs: dict[str, str]) -> dict:
    """Batches through a 1-actor and a 2-actor pool in turns (noise from other work hits both
    alike); each batch has programs neither pool has seen. Start-up is outside the timing."""
    seconds, busy = {1: 0.0, 2: 0.0}, {1: 0.0, 2: 0.0}  # busy: evaluation seconds measured in the actors
    with EnvPool(with_pool(cfg, 1), *data, **dirs) as one, EnvPool(with_pool(cfg, 2), *data, **dirs) as two:
        batches = [programs[i::2 * rounds] for i in range(2 * rounds)]
        for i, batch in enumerate(batches):
            pool, n = (one, 1) if i % 2 == 0 else (two, 2)
            started = time.perf_counter()
            results = pool.evaluate(batch)
            seconds[n] += time.perf_counter() - started
            busy[n] += sum(r.timings["total"] for r in results)
            assert all(r.status == "ok" for r in results), [r.message for r in results]
        hits = []
        for _ in range(20):
            t = time.perf_counter()
            two.evaluate([batches[1][0]])
            hits.append(time.perf_counter() - t)
    per_pool = len(programs) / 2
    return {"seconds": seconds, "per_s": {n: per_pool / seconds[n] for n in seconds},
            "busy_share": {n: busy[n] / (n * seconds[n]) for n in seconds},
            "eval_s": {n: busy[n] / per_pool for n in seconds},
            "cache_hit_ms": 1000 * statistics.median(hits)}


def mcp_overhead(cfg: Config, data, repeats: int, dirs: dict[str, str]) -> dict:
    session = EnvSession(cfg, *data, baseline_dir=Path(dirs["baseline_dir"]), work_root=Path(dirs["work_root"]))
    server = build_server(session)
    program = variants(cfg, 1)[0]
    library, through_mcp, inner = [], [], []

    async def via_mcp() -> tuple[float, float]:
        async with Client(server) as client:
            t = time.perf_counter()
            reply = await client.call_tool("evaluate_program", {"code": program.source})
            wall = time.perf_counter() - t
        assert reply.structured_content["status"] == "ok", reply.structured_content["message"]
        return wall, reply.structured_content["timings"]["total"]

    try:
        session.evaluator.baseline_predictions()
        for _ in range(repeats):  # alternate, so machine noise hits both alike
            t = time.perf_counter()
            session.evaluator.evaluate(program)
            library.append(time.perf_counter() - t)
            wall, total = anyio.run(via_mcp)
            through_mcp.append(wall)
            inner.append(wall - total)
    finally:
        session.close()
    lib, mcp = statistics.mean(library), statistics.mean(through_mcp)
    return {"library_s": lib, "mcp_s": mcp, "diff_pct": 100 * (mcp - lib) / lib,
            "layer_ms": 1000 * statistics.median(inner), "layer_pct": 100 * statistics.median(inner) / lib}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", type=int, default=4, help="distinct programs per batch")
    parser.add_argument("--rounds", type=int, default=2, help="batches per pool, the pools taking turns")
    parser.add_argument("--repeats", type=int, default=4, help="library / MCP evaluation pairs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args(argv)
    cfg = load_config(["env.pipeline.n_estimators=30", "env.pipeline.cv_folds=2", *args.set])
    dataset = load_dataset(cfg.data)
    data = (dataset, split_dataset(dataset, cfg.data))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="env-pool-bench-") as tmp:
        dirs = {"baseline_dir": f"{tmp}/baselines", "work_root": f"{tmp}/jobs"}
        ceiling_before = machine_ceiling()
        overhead = mcp_overhead(cfg, data, args.repeats, dirs)
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            pools = pool_throughput(cfg, data, variants(cfg, 2 * args.rounds * args.programs), args.rounds, dirs)
        finally:
            ray.shutdown()
    ceiling = (ceiling_before + machine_ceiling()) / 2
    load_after = os.getloadavg()
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}, load average {load_before[0]:.1f} before / {load_after[0]:.1f} after")
    print(f"{args.rounds} rounds of {args.programs} programs per pool (default program, {cfg.env.pipeline.n_estimators} trees, "
          f"{cfg.env.pipeline.cv_folds} CV folds, fast synthetic preset)\n")
    rate, secs = pools["per_s"], pools["seconds"]
    print("| measure | value |\n|---|---|")
    print(f"| pool, 1 actor | {rate[1]:.3f} programs/s ({secs[1]:.1f} s for {args.rounds * args.programs}) |")
    print(f"| pool, 2 actors | {rate[2]:.3f} programs/s ({secs[2]:.1f} s for {args.rounds * args.programs}) |")
    print(f"| scaling 2 vs 1 actors | {rate[2] / rate[1]:.2f}x (target >= 1.7x) |")
    print(f"| machine ceiling: 2 CPU-bound processes side by side vs one after the other | {ceiling:.2f}x |")
    busy, each = pools["busy_share"], pools["eval_s"]
    print(f"| actors busy (evaluation time / actors x wall) | {100 * busy[1]:.0f} % with 1, {100 * busy[2]:.0f} % with 2 |")
    print(f"| one evaluation inside the actor | {each[1]:.2f} s alone, {each[2]:.2f} s when two run at once |")
    print(f"| evaluation, library | {overhead['library_s']:.2f} s (mean of {args.repeats}) |")
    print(f"| evaluation, through MCP | {overhead['mcp_s']:.2f} s ({overhead['diff_pct']:+.1f} %) |")
    print(f"| MCP layer per call (wall - inner time) | {overhead['layer_ms']:.1f} ms "
          f"({overhead['layer_pct']:.2f} % of an evaluation; target < 5 %) |")
    print(f"| cache hit, pool.evaluate | {pools['cache_hit_ms']:.2f} ms (median of 20) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
