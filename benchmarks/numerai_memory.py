"""Load time and memory of Numerai v5 data at full width: driver, env actors, sandbox child.

    .venv/bin/python benchmarks/numerai_memory.py [--data DIR] [--eras 800] [--rows-per-era 1500]
        [--sets medium all] [--stride 4] [--runs medium:4:1 ... all:8:2] [--set KEY=VALUE ...]

Writes (once, if ``--data`` holds none) a synthetic folder in v5's layout at full width
(:mod:`aiforml.data.v5_layout`: 2,376 int8 features, 33 v5 target names, string eras,
``data_type``, v5's "test" rows without targets), then, each in a fresh process:
- load only: ``load_numerai`` of each feature set at era stride 1 and ``--stride``: wall
  time and peak RSS against the int8 size of the selected columns;
- a run (``--runs``, feature set : era stride : actors): a local Ray of 2 CPUs, an :class:`EnvPool` of 1 or 2 actors
  that warms the default program's baseline (one evaluation in the first actor) and then
  evaluates one variant of the default program per actor at once. A thread samples every
  process of the run at 10 Hz (/proc/PID/status): peak VmRSS of the driver, of each actor
  and of the largest sandbox process, and the run's whole footprint (:class:`Sampler`):
  anonymous memory of all its processes (PSS: copy-on-write pages once) plus its shared memory counted once (the object
  store and its hand-off and job files in /dev/shm).

The default LightGBM on 2,376 features x hundreds of thousands of rows is slow on 2
cores, so evaluations use ``env.pipeline.n_estimators=10`` and ``cv_folds=1`` and a larger
child memory cap (``env.sandbox.memory_mb=12000``); override with ``--set``. Prints a
Markdown table for benchmarks/README.md and writes benchmarks/results/numerai_memory_<date>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

MB = 2**20
DEFAULT_SETS = ["env.pipeline.n_estimators=10", "env.pipeline.cv_folds=1", "env.sandbox.memory_mb=12000",
                "env.sandbox.wall_s=1200", "env.sandbox.cpu_s=2400", "env.pool.start_timeout_s=2400"]
FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem")
RUNS = ["medium:4:1", "medium:4:2", "all:4:1", "all:8:2", "all:4:1:own"]
OWN_FEATURES = '''
def create_features(df, feature_cols):
    return df[feature_cols]
'''


def status(pid: int) -> dict[str, int]:
    """VmRSS and its parts of one process, in bytes (empty when it is gone)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in FIELDS:
                out[key] = int(value.split()[0]) * 1024
    except OSError:
        return {}
    return out


def pss_anon(pid: int) -> int:
    """Anonymous memory of one process in bytes, a page shared copy-on-write with others (a
    zygote's imports in its forked children) counted as its share (``Pss_Anon``)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss_Anon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_bytes(folder: Path, seen: set[tuple[int, int]] | None = None) -> int:
    """Bytes allocated to the files under ``folder`` (0 when it is gone); a file hard-linked
    into several places (a job's training rows) counts once across the calls sharing ``seen``."""
    seen = set() if seen is None else seen
    total = 0
    for path in folder.rglob("*") if folder.exists() else []:
        try:
            st = path.lstat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def plasma_bytes(pid: int) -> int:
    """Bytes the object store's shared file holds (the raylet maps it; it is deleted, so its
    size is read through /proc/PID/map_files)."""
    seen, total = set(), 0
    try:
        maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    except OSError:
        return 0
    for line in maps:
        if "/plasma" in line:
            try:
                st = os.stat(f"/proc/{pid}/map_files/{line.split()[0]}")
            except OSError:
                continue
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_blocks * 512
    return total


def role_of(pid: int, titles: dict[int, str], parents: dict[int, int], driver: int) -> str:
    """"driver", "actor:PID", "sandbox:PID" (anything under an actor) or "ray:PID" (the rest)."""
    if pid == driver:
        return "driver"
    if "EnvActor" in titles[pid]:
        return f"actor:{pid}"
    up = parents.get(pid)
    while up in titles and up != driver:
        if "EnvActor" in titles[up]:
            return f"sandbox:{pid}"
        up = parents.get(up)
    return f"ray:{pid}"


class Sampler(threading.Thread):
    """Peaks of every process under this one, by role, and of the run's whole footprint.

    The footprint is anonymous memory of all the run's processes (``Pss_Anon``: a page
    shared copy-on-write counted once in all, where ``RssAnon`` counts it in each process
    that maps it) plus its shared memory counted once: the object store (the bytes of the plasma file the raylet maps)
    and the run's own files in /dev/shm (its split's hand-off folder and its
    actors' job folders; other users of the machine write there too, so not /dev/shm whole).
    """

    def __init__(self, views: Path, evals: Path, period: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.period, self.me = period, psutil.Process()
        self.views, self.evals = views, evals
        self.store = 0
        self.peak: dict[str, int] = {}  # "driver", "actor:<pid>", "sandbox:<pid>", "ray:<pid>" -> VmRSS
        self.whole = self.anon = self.shm = self.samples = 0
        self.at_peak: dict[str, int] = {}
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.period):
            self.sample()

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5)

    def sample(self) -> None:
        try:
            procs = [self.me, *self.me.children(recursive=True)]
        except psutil.Error:
            return
        titles, parents = {}, {}
        for p in procs:
            try:
                titles[p.pid], parents[p.pid] = " ".join(p.cmdline()), p.ppid()
            except psutil.Error:
                continue
        roles = {pid: role_of(pid, titles, parents, self.me.pid) for pid in titles}
        anon = store = 0
        by_kind: dict[str, int] = {}
        for pid, role in roles.items():
            title = titles[pid]
            st = status(pid)
            own = pss_anon(pid)  # RssAnon would count a zygote's imports again in each child
            anon += own
            by_kind[role.split(":")[0]] = by_kind.get(role.split(":")[0], 0) + own
            store += plasma_bytes(pid) if title.split(" ")[0].endswith("/raylet") else 0
            self.peak[role] = max(self.peak.get(role, 0), st.get("VmRSS", 0))
        actors = [int(r.split(":")[1]) for r in roles.values() if r.startswith("actor:")]
        seen: set[tuple[int, int]] = set()
        files = tree_bytes(self.views, seen) + sum(tree_bytes(f, seen) for a in actors for f in self.evals.glob(f"job-{a}-*"))
        self.anon, self.shm, self.store = max(self.anon, anon), max(self.shm, files), max(self.store, store)
        if anon + store + files > self.whole:  # what the peak is made of
            self.whole = anon + store + files
            self.at_peak = {**{f"{k}_anon": v for k, v in by_kind.items()}, "store": store, "files": files}
        self.samples += 1

    def summary(self) -> dict[str, float]:
        of = lambda kind: [v / MB for k, v in self.peak.items() if k.startswith(kind)]  # noqa: E731
        return {"driver_mb": self.peak.get("driver", 0) / MB, "actors_mb": sorted(of("actor:"), reverse=True),
                "sandbox_max_mb": max(of("sandbox:"), default=0.0), "ray_system_mb": sum(of("ray:")),
                "anon_sum_peak_mb": self.anon / MB, "shm_files_peak_mb": self.shm / MB,
                "object_store_mb": self.store / MB,
                "whole_peak_mb": self.whole / MB, "samples": self.samples,
                "at_whole_peak_mb": {k: round(v / MB) for k, v in self.at_peak.items()}}


# --- the measured processes -------------------------------------------------------------------
def measure_load(data: str, feature_set: str, stride: int) -> dict:
    from aiforml.data import load_numerai

    started = time.perf_counter()
    dataset = load_numerai(data, feature_set, stride)
    return {"feature_set": feature_set, "stride": stride, "load_s": time.perf_counter() - started,
            "rows": dataset.n_rows, "features": len(dataset.feature_names),
            "int8_mb": dataset.features.nbytes / MB, "targets_mb": dataset.targets.nbytes / MB,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure_run(data: str, feature_set: str, stride: int, actors: int, overrides: list[str],
                own_features: bool = False) -> dict:
    import ray

    from aiforml.compose import load_config
    from aiforml.data import load_dataset, split_dataset
    from aiforml.env.pool import EnvPool, held_once
    from aiforml.pipeline.defaults import default_program_source
    from aiforml.pipeline.handoff import default_root, split_key
    from aiforml.pipeline.userdirs import private_root
    from aiforml.program import Program
    from aiforml.tasks import build_task

    cfg = load_config(["data=numerai", f"data.path={data}", f"data.feature_set={feature_set}",
                       f"data.era_stride={stride}", f"env.pool.num_actors={actors}",
                       f"env.pool.cpus_per_actor={2 / actors}", *DEFAULT_SETS, *overrides])
    started = time.perf_counter()
    dataset = load_dataset(cfg.data)
    split = split_dataset(dataset, cfg.data)
    load_s = time.perf_counter() - started
    views = default_root() / split_key(build_task(dataset, split, cfg.env))
    shutil.rmtree(views, ignore_errors=True)  # written by this run, so that it is measured
    sampler = Sampler(views, private_root("evals"))
    sampler.sample()  # the driver after loading, before Ray
    sampler.start()
    out: dict = {"feature_set": feature_set, "stride": stride, "actors": actors, "own_features": own_features,
                 "load_s": load_s,
                 "rows": dataset.n_rows, "train_rows": int(dataset.rows(split.train).sum()),
                 "int8_mb": dataset.features.nbytes / MB, "targets_mb": dataset.targets.nbytes / MB}
    base = default_program_source(cfg.env.pipeline)
    own = OWN_FEATURES if own_features else ""  # a feature step of its own: its stage and guards run per evaluation
    programs = [Program(f"{base}\n{own}\nVARIANT = {i}\n") for i in range(actors)]
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    dataset = held_once(dataset, split, cfg)  # as aiforml.run does: the loaded copy goes before the pool starts
    try:
        with tempfile.TemporaryDirectory(prefix="numerai-memory-") as tmp:
            t = time.perf_counter()
            with EnvPool(cfg, dataset, split, baseline_dir=f"{tmp}/baselines") as pool:
                out["pool_start_s"] = time.perf_counter() - t
                t = time.perf_counter()
                results = pool.evaluate(programs)
                out["evaluate_s"] = time.perf_counter() - t
        out["statuses"] = [r.status for r in results]
        out["messages"] = [r.message[:200] for r in results if r.status != "ok"]
        out["eval_total_s"] = [round(r.timings.get("total", 0.0), 1) for r in results]
    finally:
        ray.shutdown()
        sampler.stop()
        shutil.rmtree(views, ignore_errors=True)
    out.update(sampler.summary())
    return out


# --- the driver of the benchmark ----------------------------------------------------------------
def child(data: str, args: list[str]) -> dict:
    """Run one measurement in a fresh interpreter (clean peaks) and return its JSON."""
    proc = subprocess.run([sys.executable, __file__, "--data", data, "--child", *args], capture_output=True, text=True,
                          timeout=3600, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if proc.returncode != 0:  # kept as a row: a failure at full size is a finding too
        print(f"measurement {args} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
        return {"args": args, "error": proc.stderr.strip().splitlines()[-1][:300] if proc.stderr.strip() else "?"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ensure_data(folder: Path, eras: int, rows_per_era: int) -> None:
    if (folder / "features.json").exists():
        return
    from aiforml.data.v5_layout import V5_N_FEATURES, V5_TARGETS, V5Layout, write_v5_layout

    n_val = eras // 4
    layout = V5Layout(n_train_eras=eras - n_val, n_validation_eras=n_val - 4, n_test_eras=4,
                      rows_per_era=rows_per_era, n_features=V5_N_FEATURES, n_targets=len(V5_TARGETS),
                      rows_per_group=40 * rows_per_era)
    t = time.perf_counter()
    write_v5_layout(folder, layout)
    print(f"wrote {folder} ({eras} eras x {rows_per_era} rows, {V5_N_FEATURES} features) "
          f"in {time.perf_counter() - t:.0f} s", file=sys.stderr)


def peak_parts(parts: dict[str, int]) -> str:
    """"sandbox 2100 + actor 400 + ... MB": private memory by role, then files and the store."""
    names = {"sandbox_anon": "sandbox", "actor_anon": "actors", "driver_anon": "driver", "ray_anon": "ray",
             "files": "files", "store": "store"}
    return " + ".join(f"{names[k]} {parts[k]}" for k in names if parts.get(k)) + " MB" if parts else ""


def table(loads: list[dict], runs: list[dict]) -> str:
    lines = ["| feature set | era stride | rows | int8 size | load | peak RSS of the load |", "|---|---|---|---|---|---|"]
    for r in loads:
        if "error" in r:
            lines.append(f"| {' '.join(r['args'])}: {r['error']} |")
            continue
        lines.append(f"| {r['feature_set']} ({r['features']}) | {r['stride']} | {r['rows']:,} | {r['int8_mb']:.0f} MB "
                     f"| {r['load_s']:.1f} s | {r['peak_rss_mb']:.0f} MB ({r['peak_rss_mb'] / r['int8_mb']:.2f}x) |")
    lines += ["", "| feature set, stride, actors | int8 size | driver | each actor | largest sandbox process | ray's own "
              "| object store | hand-off and job files | whole run | whole / int8 | evaluation | at the whole run's peak |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        if "error" in r:
            lines.append(f"| {' '.join(r['args'])}: {r['error']} |")
            continue
        actors = " / ".join(f"{a:.0f}" for a in r["actors_mb"])
        lines.append(
            f"| {r['feature_set']}, {r['stride']}, {r['actors']}{', own features' if r.get('own_features') else ''} "
            f"| {r['int8_mb']:.0f} MB | {r['driver_mb']:.0f} MB | {actors} MB "
            f"| {r['sandbox_max_mb']:.0f} MB | {r['ray_system_mb']:.0f} MB | {r['object_store_mb']:.0f} MB "
            f"| {r['shm_files_peak_mb']:.0f} MB "
            f"| {r['whole_peak_mb']:.0f} MB | {r['whole_peak_mb'] / r['int8_mb']:.1f}x "
            f"| {', '.join(r['statuses'])} in {r['evaluate_s']:.0f} s | {peak_parts(r.get('at_whole_peak_mb', {}))} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "aiforml-v5-layout"))
    parser.add_argument("--eras", type=int, default=800, help="eras in the written folder (train and validation)")
    parser.add_argument("--rows-per-era", type=int, default=1500)
    parser.add_argument("--sets", nargs="+", default=["medium", "all"], help="feature sets of the load-only rows")
    parser.add_argument("--stride", type=int, default=4, help="era stride of the load-only rows (and 1)")
    parser.add_argument("--runs", nargs="+", default=RUNS, metavar="SET:STRIDE:ACTORS[:own]",
                        help="pool runs (all with 2 actors at stride 8: two children training on 2,376 "
                             "features at stride 4 need about 20 GB on this 24 GiB machine)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, feature_set, stride = args.child[0], args.child[1], int(args.child[2])
        result = (measure_load(args.data, feature_set, stride) if kind == "load" else
                  measure_run(args.data, feature_set, stride, int(args.child[3]), args.set,
                              own_features=args.child[4:] == ["own"]))
        print(json.dumps(result))
        return 0
    ensure_data(Path(args.data), args.eras, args.rows_per_era)
    load_before = os.getloadavg()
    out = Path(__file__).with_name("results") / f"numerai_memory_{time.strftime('%Y-%m-%d')}.json"
    loads: list[dict] = []
    runs: list[dict] = []
    sets = sum((["--set", s] for s in args.set), [])
    jobs = [("load", [s, str(k)]) for s in args.sets for k in sorted({1, args.stride})]
    jobs += [("run", [*run.split(":"), *sets]) for run in args.runs]
    for kind, job in jobs:
        (loads if kind == "load" else runs).append(child(args.data, [kind, *job]))
        out.write_text(json.dumps({"overrides": DEFAULT_SETS + args.set, "loads": loads, "runs": runs}, indent=1))
    load_after = os.getloadavg()
    mem = psutil.virtual_memory()
    header = (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, {os.cpu_count()} CPUs, "
              f"{mem.total / 2**30:.0f} GiB, Python {sys.version.split()[0]}, load average {load_before[0]:.1f} "
              f"before / {load_after[0]:.1f} after; data {args.data} ({args.eras} eras x {args.rows_per_era} rows)")
    print(f"\n{header}\n\n{table(loads, runs)}")
    out.write_text(json.dumps({"header": header, "overrides": DEFAULT_SETS + args.set, "loads": loads,
                               "runs": runs}, indent=1))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
