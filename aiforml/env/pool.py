"""``EnvPool``: evaluate batches of programs in parallel over N ``EnvActor``s.

    pool = EnvPool(cfg, dataset, split)          # after ray.init(); sized by cfg.env.pool
    results = pool.evaluate([program, ...])      # list[EvalResult], same order
    pool.close()

Responsible for: checking that the actors fit in the Ray cluster before creating them (an
unschedulable actor would hang every call silently), handing the data set to the actors
once (on one machine: the hand-off's feature view written once and memory-mapped by every
actor, only eras, targets and names through the object store, and ``pool.dataset`` the
driver's mapped copy, so that the loaded matrix can be freed; on several machines: the
data set through the object store), warming the first actor's baseline before the others read it
from disk, serving repeated programs from the :class:`ResultCache` (normalized program
hash + data version + environment settings), dispatching the rest to free actors, a
per-program deadline (the actor's MCP call times out and its server kills the sandbox;
an actor silent past deadline + grace is killed and restarted), and fault tolerance: a
program whose actor died is retried ``env.pool.retries`` times on a restarted or other
actor, then reported as ``infra_error``. Every ``ray.get``/``ray.wait`` has a timeout.

Not responsible for: ``ray.init`` (the driver owns the cluster connection), evaluation
itself (the actors' MCP servers), or rewards. Results carry statuses and per-era scores as
the MCP tool returns them, plus, for programs that ran, their validation predictions in
``result.predictions["validation"]`` (for trusted uniqueness scores; never serialized).
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError, RayTaskError

from aiforml.config import Config, PoolConfig
from aiforml.data.dataset import Dataset, EraSplit
from aiforml.env.actor import EnvActor
from aiforml.env.cache import CacheKey, ResultCache
from aiforml.pipeline.handoff import open_shared_dataset, shared_dataset
from aiforml.program import EvalResult, Program
from aiforml.tasks import build_task

POLL_S = 0.5  # how often the dispatch loop looks for finished work and hung actors
GET_TIMEOUT_S = 30.0  # fetching a result that ray.wait reported ready
SETTLE_S = 10.0  # how long the resource check waits for CPUs that killed actors are releasing


@dataclass
class PoolStats:
    """Counters over the pool's life (read them in tests and logs)."""

    requested: int = 0  # programs passed to evaluate()
    executed: int = 0  # evaluations an actor finished (retries included)
    cache_hits: int = 0  # programs answered from the cache (or a duplicate in the same batch)
    retries: int = 0  # re-dispatches after an actor died or hung
    infra_errors: int = 0  # programs given up on
    hung_kills: int = 0  # actors killed for exceeding deadline + grace
    replaced: int = 0  # actors started afresh after Ray's restarts ran out

    def metrics(self) -> dict[str, float]:
        """The counters as ``env/...`` metrics for the run's logger."""
        rate = self.cache_hits / self.requested if self.requested else 0.0
        return {"env/requested": self.requested, "env/executed": self.executed, "env/cache_hit_rate": rate,
                "env/retries": self.retries, "env/infra_errors": self.infra_errors,
                "env/hung_kills": self.hung_kills, "env/actors_replaced": self.replaced}


@dataclass
class _Job:
    key: CacheKey
    program: Program
    attempt: int = 0


def single_node() -> bool:
    """Whether the Ray cluster is this one machine (actors can then read its /dev/shm)."""
    return len([n for n in ray.nodes() if n.get("Alive")]) == 1


def check_resources(pool: PoolConfig) -> None:
    """Fail fast, naming the config keys, when the actors cannot all be scheduled."""
    if not ray.is_initialized():
        raise RuntimeError("EnvPool needs a Ray connection: call ray.init() (or ray.init(address=...)) first")
    if ray.util.get_current_placement_group() is not None:
        return  # a sweep trial: its placement group already holds the actors' bundles (aiforml.sweep)
    for name, amount in (pool.actor_resources or {}).items():
        total = ray.cluster_resources().get(name, 0.0)
        if pool.num_actors * amount > total + 1e-9:
            raise ValueError(f"env.pool.actor_resources.{name}: {pool.num_actors} actors x {amount:g} need "
                             f"{pool.num_actors * amount:g}, but the Ray cluster has {total:g} of it: start nodes "
                             f"with --resources='{{\"{name}\": N}}' or change env.pool.actor_resources")
    largest = max((n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=0.0)
    if pool.cpus_per_actor > largest:
        raise ValueError(f"env.pool.cpus_per_actor ({pool.cpus_per_actor}) is more than the largest node has "
                         f"({largest} CPUs): lower env.pool.cpus_per_actor")
    need = pool.num_actors * pool.cpus_per_actor
    total = ray.cluster_resources().get("CPU", 0.0)
    free = ray.available_resources().get("CPU", 0.0)
    settle = time.monotonic() + SETTLE_S
    # Actors just killed free their CPUs late: wait for them, unless the whole cluster is too small.
    while need <= total + 1e-9 and need > free + 1e-9 and time.monotonic() < settle:
        time.sleep(0.25)
        free = ray.available_resources().get("CPU", 0.0)
    if need > free + 1e-9:
        raise ValueError(
            f"env.pool.num_actors ({pool.num_actors}) x env.pool.cpus_per_actor ({pool.cpus_per_actor}) = "
            f"{need:g} CPUs, but the Ray cluster has {free:g} of {total:g} CPUs free (the learner and other "
            "actors hold the rest): lower env.pool.num_actors or env.pool.cpus_per_actor")


def held_once(dataset: Any, split: EraSplit, cfg: Config) -> Any:
    """``dataset`` as the pool will hold it. On one machine: its feature rows (no embargo
    rows), the matrix memory-mapped from the hand-off file that actors and children map too
    (written here once). A caller that keeps only this frees the loaded copy before the pool
    starts its actors, whose first evaluations (the default features and their look-ahead
    guard) are a run's peak of memory. Elsewhere, and for price data, as it is."""
    if isinstance(dataset, Dataset) and single_node():
        fields, folder = shared_dataset(build_task(dataset, split, cfg.env))
        return open_shared_dataset(fields, folder)
    return dataset


class EnvPool:
    """N environment actors behind one ``evaluate(programs)`` call."""

    def __init__(self, cfg: Config, dataset: Dataset, split: EraSplit, *,
                 baseline_dir: str | None = None, work_root: str | None = None) -> None:
        """``baseline_dir``/``work_root``: where actors keep baselines and job folders (defaults: the Evaluator's)."""
        self.cfg, self.pool_cfg = cfg, cfg.env.pool
        check_resources(self.pool_cfg)
        self.deadline_s = self.pool_cfg.deadline_s or cfg.env.sandbox.wall_s + 30.0
        self.cache = ResultCache(self.pool_cfg.cache_size, int(self.pool_cfg.cache_mb * 2**20))
        self.stats = PoolStats()
        self._remote = ray.remote(EnvActor).options(
            num_cpus=self.pool_cfg.cpus_per_actor, resources=dict(self.pool_cfg.actor_resources or {}),
            max_restarts=self.pool_cfg.max_restarts, max_task_retries=0, max_concurrency=1)
        dirs = tuple(str(Path(d)) if d else None for d in (baseline_dir, work_root))
        if isinstance(dataset, Dataset) and single_node():
            # the feature matrix is held once: the hand-off file, memory-mapped by actors, children and driver
            fields, folder = shared_dataset(build_task(dataset, split, cfg.env))
            self._args: tuple = (cfg, ray.put(fields), split, *dirs, str(folder))
            self.dataset = open_shared_dataset(fields, folder)
        else:  # actors on other machines: a copy per node through the object store
            self._args = (cfg, ray.put(dataset), split, *dirs)
            self.dataset = dataset
        self.actors: list[Any] = []
        self.in_flight: dict[int, str] = {}  # actor index -> program hash it is evaluating now
        try:
            self.info = self._start_actors()
        except BaseException:
            self.close()
            raise
        self.version = f"{self.info[0]['data_version']}/{env_fingerprint(cfg)}"

    # --- life cycle -------------------------------------------------------------------
    def _start_actors(self) -> list[dict[str, Any]]:
        self.actors = [self._remote.remote(*self._args) for _ in range(self.pool_cfg.num_actors)]
        first = self._wait_ready([self.actors[0]])  # computes the baseline once, on disk after
        return first + self._wait_ready(self.actors[1:])

    def _wait_ready(self, actors: list[Any]) -> list[dict[str, Any]]:
        timeout = self.pool_cfg.start_timeout_s
        try:
            return ray.get([a.ready.remote() for a in actors], timeout=timeout)
        except GetTimeoutError as exc:
            raise RuntimeError(
                f"environment actors not ready after env.pool.start_timeout_s={timeout:g}s: they may be "
                "unschedulable (see env.pool.num_actors, env.pool.cpus_per_actor and the Ray cluster's CPUs) "
                "or the baseline program is slow (env.pipeline.*)") from exc

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- evaluation -------------------------------------------------------------------
    def evaluate(self, programs: Sequence[Program | str]) -> list[EvalResult]:
        """Evaluate ``programs`` in parallel; results in the same order, one per program."""
        programs = [p if isinstance(p, Program) else Program(p) for p in programs]
        self.stats.requested += len(programs)
        keys = [self.cache.key(p, self.version) for p in programs]
        done: dict[CacheKey, EvalResult] = {}
        todo: dict[CacheKey, _Job] = {}
        for key, program in zip(keys, programs, strict=True):
            if key in done or key in todo:
                continue
            cached = self.cache.get(key)
            if cached is not None:
                done[key] = cached
            else:
                todo[key] = _Job(key, program)
        done.update(self._run(deque(todo.values())))
        self.stats.cache_hits += len(programs) - len(todo)
        for key in todo:
            self.cache.put(key, done[key])
        return [copy.deepcopy(done[key]) for key in keys]

    def _run(self, queue: deque[_Job]) -> dict[CacheKey, EvalResult]:
        """Dispatch loop: keep every actor busy until the queue is empty and nothing runs."""
        results: dict[CacheKey, EvalResult] = {}
        free = list(range(len(self.actors)))
        running: dict[Any, tuple[_Job, int, float]] = {}  # ref -> (job, actor index, started)
        while queue or running:
            while queue and free:
                job, index = queue.popleft(), free.pop(0)
                ref = self.actors[index].evaluate.remote(job.program.source, self.deadline_s)
                running[ref] = (job, index, time.monotonic())
                self.in_flight[index] = job.program.hash
            ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
            for ref in ready:
                job, index, _ = running.pop(ref)
                self.in_flight.pop(index, None)
                free.append(index)
                result = self._collect(ref, job, index, queue)
                if result is not None:
                    results[job.key] = result
            self._kill_hung(running)
        return results

    def _collect(self, ref: Any, job: _Job, index: int, queue: deque[_Job]) -> EvalResult | None:
        """The job's result, or None when it was queued again after an actor failure."""
        try:
            result: EvalResult = ray.get(ref, timeout=GET_TIMEOUT_S)
            self.stats.executed += 1
            return result
        except (RayActorError, GetTimeoutError, RayTaskError) as exc:
            if not isinstance(exc, RayTaskError):  # a raised error leaves the actor alive
                self._recover(index)
            if job.attempt < self.pool_cfg.retries:
                job.attempt += 1
                self.stats.retries += 1
                queue.appendleft(job)
                return None
            self.stats.infra_errors += 1
            return EvalResult(status="infra_error", program_hash=job.program.hash, data_version=self.version,
                              message=f"the environment actor failed {job.attempt + 1} time(s): "
                                      f"{type(exc).__name__}: {str(exc)[:300]}")

    def _recover(self, index: int) -> None:
        """Wait until Ray has restarted actor ``index``; replace it when its restarts are spent."""
        deadline = time.monotonic() + self.pool_cfg.start_timeout_s
        while time.monotonic() < deadline:
            try:
                ray.get(self.actors[index].stats.remote(), timeout=self.pool_cfg.start_timeout_s)
                return
            except ActorDiedError:  # restarts exhausted: start a fresh actor in its place
                self.actors[index] = self._remote.remote(*self._args)
                self.stats.replaced += 1
            except (RayActorError, GetTimeoutError):
                time.sleep(0.2)  # the old incarnation's failure, or still restarting
        raise RuntimeError(f"environment actor {index} did not come back within "
                           f"env.pool.start_timeout_s={self.pool_cfg.start_timeout_s:g}s")

    def _kill_hung(self, running: dict[Any, tuple[_Job, int, float]]) -> None:
        """Kill (Ray restarts it) an actor silent past deadline + grace; its job is retried."""
        limit = self.deadline_s + self.pool_cfg.grace_s
        now = time.monotonic()
        for ref, (job, index, started) in list(running.items()):
            if now - started > limit:
                self.stats.hung_kills += 1
                ray.kill(self.actors[index], no_restart=False)
                running[ref] = (job, index, float("inf"))  # its ref now fails and is retried


def env_fingerprint(cfg: Config) -> str:
    """A short hash of the settings that change a result: pipeline, sandbox, trading rules, test visibility.

    Not the reward: the driver computes rewards from results (``aiforml.reward``), so a
    result cached under one set of weights serves every other."""
    env = cfg.env
    text = json.dumps([asdict(env.pipeline), asdict(env.sandbox), asdict(env.trading), env.server.show_test,
                       env.server.output_chars], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]

