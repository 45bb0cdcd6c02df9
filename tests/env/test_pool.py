"""The Ray pool of environment actors: parallel batches, the cache, deadlines, fault tolerance.

One local Ray (``num_cpus=2``) and one pool of two actors serve the whole module; tests
that change the pool's retry or deadline settings restore them.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray

from aiforml.env.pool import EnvPool, check_resources
from aiforml.pipeline.defaults import default_program_source
from aiforml.pipeline.handoff import MappedMatrix, shared_views
from aiforml.program import Program
from aiforml.tasks import build_task

pytestmark = pytest.mark.slow  # sandboxed evaluations: seconds each


BROKEN = "def create_features(df, feature_cols):\n    return df['feature_that_does_not_exist']\n"


def slow(seconds_of_work: int) -> str:
    """The default features after a pure-Python busy loop (a few seconds on a quiet core)."""
    return ("def create_features(df, feature_cols):\n    total = 0\n"
            f"    for i in range({seconds_of_work} * 10_000_000):\n        total += i\n"
            "    return df[feature_cols]\n")


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def pool_jobs(tmp_path_factory):
    """The pool's job folders: sandbox children of this pool mention this path."""
    return tmp_path_factory.mktemp("pool-jobs")


@pytest.fixture(scope="module")
def pool(ray_cluster, cfg, dataset, split, baseline_dir, pool_jobs, session):
    # `session` warmed the baseline on disk, so the actors start without recomputing it.
    small = dataclasses.replace(cfg, env=dataclasses.replace(
        cfg.env, pool=dataclasses.replace(cfg.env.pool, num_actors=2, cpus_per_actor=0.5)))  # 1 CPU left
    with EnvPool(small, dataset, split, baseline_dir=str(baseline_dir), work_root=str(pool_jobs)) as env_pool:
        yield env_pool


def actor_counts(pool: EnvPool) -> list[int]:
    return [s["evaluated"] for s in ray.get([a.stats.remote() for a in pool.actors], timeout=60)]


def test_batch_runs_in_parallel_and_matches_the_library(pool, library_result, same_scores, programs):
    before = actor_counts(pool)
    batch = [programs.ridge, BROKEN, default_program_source(pool.cfg.env.pipeline), programs.ridge]
    results = pool.evaluate(batch)
    assert [r.status for r in results] == ["ok", "runtime_error", "ok", "ok"]
    after = actor_counts(pool)
    assert sum(after) - sum(before) == 3  # the duplicate ran once
    assert all(a > b for a, b in zip(after, before, strict=True)), "both actors took work"
    assert len({info["pid"] for info in pool.info}) == 2
    expected = library_result(programs.ridge)
    for split_name in ("cv", "validation"):
        assert getattr(results[0], split_name).sharpe == pytest.approx(getattr(expected, split_name).sharpe, rel=1e-12)
    assert results[0].test is None  # env.server.show_test is off: no sealed-test scores
    assert results[0].program_hash == Program(programs.ridge).hash
    preds = results[0].predictions["validation"]  # for the driver's uniqueness scores: validation rows only
    assert 0 < len(preds) < len(expected.predictions["eval"])
    np.testing.assert_allclose(preds, expected.predictions["eval"][: len(preds)], rtol=1e-6)
    assert results[2].predictions["validation"].shape == preds.shape
    assert "validation" not in results[1].predictions  # a failed program has none
    assert (results[3].predictions["validation"] == preds).all()


def test_repeated_program_is_served_from_the_cache(pool, programs):
    first = pool.evaluate([programs.ridge])[0]
    executed, hits = pool.stats.executed, pool.stats.cache_hits
    counts = actor_counts(pool)
    again = pool.evaluate([programs.ridge + "\n# the same program with a comment\n"])[0]
    assert pool.stats.executed == executed and pool.stats.cache_hits == hits + 1
    assert 0 < pool.stats.metrics()["env/cache_hit_rate"] <= 1
    assert actor_counts(pool) == counts  # no actor ran it
    assert again.validation.sharpe == first.validation.sharpe and again.status == "ok"
    again.validation.sharpe = 99.0  # callers cannot change the cache
    assert pool.evaluate([programs.ridge])[0].validation.sharpe == first.validation.sharpe


def kill_when_running(pool: EnvPool, program: Program, sandbox_children, work_root, kills: list[int]) -> None:
    """Kill (Ray restarts it) the actor that is evaluating ``program``, once its sandbox runs."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        index = next((i for i, h in pool.in_flight.items() if h == program.hash), None)
        if index is not None and sandbox_children(work_root):
            time.sleep(1.0)
            ray.kill(pool.actors[index], no_restart=False)
            kills.append(index)
            return
        time.sleep(0.1)


def test_actor_killed_mid_evaluation_is_restarted_and_the_program_retried(pool, sandbox_children, pool_jobs, programs):
    victim = Program(slow(4))
    kills: list[int] = []
    killer = threading.Thread(target=kill_when_running, args=(pool, victim, sandbox_children, pool_jobs, kills))
    retries = pool.stats.retries
    killer.start()
    results = pool.evaluate([victim, Program(programs.ridge + "\n# cache miss\nX = 1\n")])
    killer.join(60)
    assert kills, "the victim's actor was never seen running it"
    assert [r.status for r in results] == ["ok", "ok"], results[0].message
    assert pool.stats.retries == retries + 1
    pids = [s["pid"] for s in ray.get([a.stats.remote() for a in pool.actors], timeout=60)]
    assert pids[kills[0]] != pool.info[kills[0]]["pid"]  # the same handle, a new process: Ray restarted it
    assert pool.stats.replaced == 0


def test_program_whose_actor_keeps_dying_is_an_infra_error(pool, sandbox_children, pool_jobs, programs):
    victim = Program(slow(5) + "\n# another one\n")
    kills: list[int] = []
    pool.pool_cfg.retries = 0
    try:
        killer = threading.Thread(target=kill_when_running, args=(pool, victim, sandbox_children, pool_jobs, kills))
        killer.start()
        result = pool.evaluate([victim])[0]
        killer.join(60)
    finally:
        pool.pool_cfg.retries = 1
    assert kills and result.status == "infra_error" and "actor" in result.message
    assert victim.hash not in {k[0] for k in pool.cache._entries}  # infra failures are not cached
    assert pool.evaluate([programs.ridge + "\n# after the failure\nY = 2\n"])[0].status == "ok"


def test_actor_whose_restarts_ran_out_is_replaced(ray_cluster, cfg, dataset, split, baseline_dir, pool_jobs,
                                                  sandbox_children, programs):
    """With env.pool.max_restarts=0 a killed actor stays dead: the pool starts a fresh one."""
    pool_cfg = dataclasses.replace(cfg.env.pool, num_actors=1, cpus_per_actor=0.5, max_restarts=0)
    no_restarts = dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, pool=pool_cfg))
    victim = Program(slow(4) + "\n# replaced\n")
    kills: list[int] = []
    with EnvPool(no_restarts, dataset, split, baseline_dir=str(baseline_dir), work_root=str(pool_jobs)) as pool:
        old_actor = pool.actors[0]
        killer = threading.Thread(target=kill_when_running, args=(pool, victim, sandbox_children, pool_jobs, kills))
        killer.start()
        result = pool.evaluate([victim])[0]
        killer.join(60)
        assert kills and result.status == "ok", result.message
        assert pool.stats.replaced == 1 and pool.stats.retries == 1 and pool.actors[0] is not old_actor


def test_deadline_stops_a_spinning_program(pool, sandbox_children, pool_jobs, programs):
    deadline = pool.deadline_s
    pool.deadline_s = 8.0
    try:
        result = pool.evaluate([programs.spin])[0]
    finally:
        pool.deadline_s = deadline
    assert result.status == "timeout" and "deadline" in result.message
    time.sleep(2.0)
    assert sandbox_children(pool_jobs) == []


def test_unschedulable_pool_fails_fast_naming_the_key(ray_cluster, cfg):
    too_big = dataclasses.replace(cfg.env.pool, num_actors=3, cpus_per_actor=1.0)
    with pytest.raises(ValueError, match=r"env\.pool\.num_actors \(3\) x env\.pool\.cpus_per_actor"):
        check_resources(too_big)
    with pytest.raises(ValueError, match=r"env\.pool\.cpus_per_actor \(4\.0\) is more than the largest node"):
        check_resources(dataclasses.replace(cfg.env.pool, num_actors=1, cpus_per_actor=4.0))


def test_actors_map_the_feature_view_instead_of_a_copy(pool, dataset, split):
    """On one machine the matrix is held once: every actor and the driver memory-map the
    hand-off's feature view (what children read); only small arrays go through Ray."""
    task = build_task(dataset, split, pool.cfg.env)
    view = shared_views(task)[0]
    assert [info["features_file"] for info in pool.info] == [str(view)] * 2
    assert isinstance(pool.dataset.features, MappedMatrix) and Path(pool.dataset.features.filename) == view
    np.testing.assert_array_equal(pool.dataset.features, dataset.features[task.feature_rows])
    np.testing.assert_array_equal(pool.dataset.targets, dataset.targets[task.feature_rows])
