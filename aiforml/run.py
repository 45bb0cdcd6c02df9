"""One whole run, from a typed config: ``launch.py`` calls :func:`run` (a sweep: ``aiforml.sweep``).

    python launch.py +experiment=ppo_sharpe                       # a fresh run in Hydra's output dir
    python launch.py +experiment=smoke run_dir=/tmp/smoke          # a chosen run directory
    python launch.py +experiment=ppo_sharpe resume=outputs/DATE/TIME  # continue a killed run

Responsible for, top to bottom: the run directory and the resolved config in it, the
checks at start and Ray (``aiforml.runtime``); the data, the tiny policy's warm start
(built once for this data's schema), the prompt, the learner actor, the env pool, the
archive (with the default program as baseline) and the logger; resuming from the last
complete checkpoint (archive rows after it removed, RNGs and learner restored); the loop;
the report. Every actor, tracker and file is closed in ``finally``, also on Ctrl-C.
Not responsible for: what happens inside a cycle (``aiforml.loop``), sweeps.
"""

from __future__ import annotations

import dataclasses
import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import ray
import yaml
from rich.console import Console

from aiforml.archive import ARCHIVE_FILE, Archive, ArchiveRecord
from aiforml.checkpoint import latest_checkpoint, remove_partial_checkpoints, restore_rng, seed_rngs
from aiforml.compose import RUN_CONFIG_FILE
from aiforml.config import Config
from aiforml.data import load_dataset, split_dataset
from aiforml.env.pool import EnvPool, held_once
from aiforml.learner import create_learner
from aiforml.logger import RunLogger
from aiforml.loop import LoopState, OnCycle, train, without_test
from aiforml.pipeline.defaults import default_program_source
from aiforml.policy.model import resolve_policy_config
from aiforml.policy.prompt import render_prompt
from aiforml.policy.schema import ColumnSchema
from aiforml.policy.tiny.build import build_tiny_policy
from aiforml.program import Program
from aiforml.reference import build_reference
from aiforml.report import write_report
from aiforml.reward import compute_reward
from aiforml.runtime import check_start, config_dict, ray_session, resolve_run_dir

log = logging.getLogger(__name__)


class RemoteLearner:
    """The driver's view of the ``LearnerActor``: plain calls, each with a timeout."""

    def __init__(self, handle: Any, timeout_s: float) -> None:
        self.handle, self.timeout_s = handle, timeout_s

    def _call(self, method: str, *args: Any) -> Any:
        return ray.get(getattr(self.handle, method).remote(*args), timeout=self.timeout_s)

    def generate(self, prompts: list[str], n: int) -> Any:
        return self._call("generate", prompts, n)

    def update(
        self, rollouts: Any, rewards: list[float], imitate: list[bool] | None = None
    ) -> dict[str, float]:
        return self._call("update", rollouts, rewards, imitate)

    def save(self, path: str) -> str:
        return self._call("save", path)

    def load(self, path: str) -> None:
        self._call("load", path)

    def info(self) -> dict[str, Any]:
        return self._call("info")


def run(cfg: Config, on_cycle: OnCycle | None = None) -> int:
    """One whole run: set up, train ``cfg.loop.cycles`` cycles (or the rest of them), report."""
    if cfg.tune.space:
        raise ValueError("tune.space is set: that is a sweep (aiforml.sweep.run_sweep, which launch.py "
                         "calls); run() is one run, with tune.space empty")
    run_dir = resolve_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_start(cfg, run_dir)
    (run_dir / RUN_CONFIG_FILE).write_text(yaml.safe_dump(config_dict(cfg), sort_keys=False))
    console = Console()
    console.print(f"run directory: {run_dir}")
    seed_rngs(cfg.seed)
    with ExitStack() as stack:
        # Last out: after Ray is down no learner can still be writing a checkpoint Ctrl-C cut short.
        stack.callback(remove_partial_checkpoints, run_dir)
        stack.enter_context(ray_session(cfg.ray))
        state = _run_in_ray(cfg, run_dir, console, stack, on_cycle)
    if cfg.loop.report:
        console.print(f"report: {write_report(run_dir)}")
    console.print(f"done: {state.cycle} cycles, best validation Sharpe {state.best_val_sharpe}")
    return 0


def _run_in_ray(cfg: Config, run_dir: Path, console: Console, stack: ExitStack,
                on_cycle: OnCycle | None = None) -> LoopState:
    """Build every piece (each closed by ``stack``), resume if asked, run the loop."""
    with console.status("loading data"):
        dataset = load_dataset(cfg.data)
        split = split_dataset(dataset, cfg.data)
        dataset = held_once(dataset, split, cfg)  # on one machine the hand-off's mapped copy: the loaded one is freed
    schema = ColumnSchema.from_dataset(dataset)
    model_path = _policy_path(cfg, schema, console)
    handle = create_learner(cfg.policy, cfg.algo, model_path, cfg.seed, num_cpus=cfg.ray.learner_cpus,
                            resources=cfg.ray.learner_resources)
    stack.callback(ray.kill, handle)
    learner = RemoteLearner(handle, cfg.loop.timeout_s)
    # Results carry sealed-test scores for the archive only; the loop strips them before use.
    pool_cfg = dataclasses.replace(cfg, env=dataclasses.replace(
        cfg.env, server=dataclasses.replace(cfg.env.server, show_test=True)))
    with console.status("starting the environment pool and the learner"):
        pool = stack.enter_context(EnvPool(pool_cfg, dataset, split))
        dataset = pool.dataset
        console.print(f"learner: {learner.info()}")
        console.print(f"placement: env actors on nodes {[i.get('node_id') for i in pool.info]}")
    archive = Archive(run_dir / ARCHIVE_FILE)
    stack.callback(archive.close)
    state = _resume(cfg, learner, archive, console)
    baseline = _archive_baseline(cfg, pool, archive)
    reference = build_reference(cfg.reward, dataset, split, baseline, run_dir,
                                archive.rows(("program", "program_hash", "status", "val_sharpe")))
    logger = RunLogger(cfg.logger, run_dir, config_dict(cfg), purge_step=state.cycle + 1)
    stack.callback(logger.close)
    return train(cfg, learner, pool, archive, logger, render_prompt(schema), run_dir, state,
                 config_dict(cfg), reference=reference, on_cycle=on_cycle)


def _policy_path(cfg: Config, schema: Any, console: Console) -> str | None:
    """The tiny policy warm-started for this data's schema (built once, cached), or the config's path."""
    resolved, reason = resolve_policy_config(cfg.policy)
    console.print(f"policy: {reason}")
    if resolved.name != "tiny" or resolved.model_path:
        return resolved.model_path
    with console.status("tiny policy: building or loading the warm start"):
        return str(build_tiny_policy(cfg.policy.tiny, schema))


def _resume(cfg: Config, learner: RemoteLearner, archive: Any, console: Console) -> LoopState:
    """The state to start from: the last complete checkpoint's, or a fresh one."""
    if not cfg.resume:
        return LoopState()
    checkpoint = latest_checkpoint(Path(cfg.resume).expanduser().resolve())
    cycle = checkpoint.cycle if checkpoint else 0
    dropped = archive.truncate_after(cycle)
    if checkpoint is None:
        console.print(f"resume: no complete checkpoint yet; starting at cycle 1 ({dropped} archive rows dropped)")
        return LoopState()
    learner.load(str(checkpoint.learner_dir))
    restore_rng(checkpoint)
    console.print(f"resume: from {checkpoint.path.name}; {dropped} archive rows of later cycles dropped")
    return LoopState.from_dict({**checkpoint.state, "cycle": cycle})


def _archive_baseline(cfg: Config, pool: Any, archive: Any) -> Any:
    """Evaluate the default program; store it as the archive's baseline unless it holds one.

    Returns the result (its validation predictions anchor the uniqueness scores)."""
    source = default_program_source(cfg.env.pipeline, cfg.data.resolved_task)
    result = pool.evaluate([Program(source)])[0]
    if archive.baseline() is not None:
        return result
    archive.set_baseline(ArchiveRecord(
        cycle=0, sample_index=0, policy_version=0, program=source, completion="", result=result,
        reward=compute_reward(without_test(result), cfg.reward)))
    return result
