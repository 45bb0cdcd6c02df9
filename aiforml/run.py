"""The main job, from a typed config: ``launch.py`` calls :func:`run`.

    python launch.py +experiment=ppo_sharpe                       # a fresh run in Hydra's output dir
    python launch.py +experiment=smoke run_dir=/tmp/smoke          # a chosen run directory
    python launch.py +experiment=ppo_sharpe resume=outputs/DATE/TIME  # continue a killed run

Responsible for, top to bottom: the run directory (``resume``, else ``run_dir``, else
Hydra's output dir) and the resolved config in it; checks that fail before anything
starts (missing data path, a fresh run pointed at a directory that holds one); Ray (local
by default, ``ray.address`` to join a cluster); the data, the tiny policy's warm start
(built once for this data's schema), the prompt, the learner actor, the env pool, the
archive (with the default program as baseline) and the logger; resuming from the last
complete checkpoint (archive rows after it removed, RNGs and learner restored); the loop;
the report. Every actor, tracker and file is closed in ``finally``, also on Ctrl-C.
Not responsible for: what happens inside a cycle (``aiforml.loop``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import ray
import yaml
from rich.console import Console

from aiforml.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    remove_partial_checkpoints,
    restore_rng,
    seed_rngs,
)
from aiforml.config import Config, RayConfig
from aiforml.logger import check_trackers
from aiforml.loop import LoopState, OnCycle, train

log = logging.getLogger(__name__)
CONFIG_FILE = "config.yaml"


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


def resolve_run_dir(cfg: Config) -> Path:
    """``resume`` when continuing, else ``run_dir``, else Hydra's output dir, else outputs/<time>."""
    if cfg.resume:
        path = Path(cfg.resume).expanduser().resolve()
        if not path.is_dir():
            raise ValueError(f"resume={cfg.resume}: no such run directory")
        return path
    if cfg.run_dir:
        return Path(cfg.run_dir).expanduser().resolve()
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir).resolve()
    return Path("outputs", time.strftime("%Y-%m-%d_%H-%M-%S")).resolve()


def check_start(cfg: Config, run_dir: Path) -> None:
    """Fail at start, naming the key, on what would otherwise fail minutes in."""
    if cfg.data.source == "numerai" and cfg.data.path and not Path(cfg.data.path).expanduser().exists():
        raise ValueError(f"data.path={cfg.data.path} does not exist: point it at a folder of Numerai parquet files")
    if cfg.data.source == "prices" and cfg.data.path and not Path(cfg.data.path).expanduser().exists():
        raise ValueError(f"data.path={cfg.data.path} does not exist: point it at an OHLCV CSV/parquet file or folder")
    check_trackers(cfg.logger)
    _check_policy_weights(cfg)
    if not cfg.resume and list_checkpoints(run_dir):
        raise ValueError(f"run_dir={run_dir} already holds a run with checkpoints: continue it with "
                         f"resume={run_dir}, or choose another run_dir")


def _check_policy_weights(cfg: Config) -> None:
    """A policy loaded from weights (not the tiny one built here) needs them all on this machine."""
    from aiforml.policy.model import check_model_folder, resolve_policy_config

    resolved, _ = resolve_policy_config(cfg.policy)
    if resolved.name != "tiny" or resolved.model_path:
        check_model_folder(resolved.model_path)


def config_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


@contextmanager
def ray_session(cfg: RayConfig) -> Iterator[None]:
    """Connect to Ray (local unless ``ray.address``); shut down only what this call started.

    Without ``ray.address`` the run starts a Ray of its own whatever else is on the machine:
    ``address="local"``, because Ray's default (None) joins the cluster that
    ``/tmp/ray/ray_current_cluster`` or ``$RAY_ADDRESS`` names (another user's, or one killed
    long ago) and then refuses ``num_cpus``.
    """
    if ray.is_initialized():
        yield
        return
    if cfg.address:
        ray.init(address=cfg.address, log_to_driver=True)
    else:
        ray.init(address="local", num_cpus=cfg.num_cpus, include_dashboard=cfg.include_dashboard,
                 log_to_driver=True)
    try:
        yield
    finally:
        ray.shutdown()


def run(cfg: Config, on_cycle: OnCycle | None = None) -> int:
    """One whole run: set up, train ``cfg.loop.cycles`` cycles (or the rest of them), report.

    With ``tune.space`` set, a Ray Tune sweep of such runs instead (``aiforml.sweep``).
    """
    if cfg.tune.space:
        from aiforml.sweep import run_sweep

        return run_sweep(cfg, resolve_run_dir(cfg))
    run_dir = resolve_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_start(cfg, run_dir)
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(config_dict(cfg), sort_keys=False))
    console = Console()
    console.print(f"run directory: {run_dir}")
    seed_rngs(cfg.seed)
    with ExitStack() as stack:
        # Last out: after Ray is down no learner can still be writing a checkpoint Ctrl-C cut short.
        stack.callback(remove_partial_checkpoints, run_dir)
        stack.enter_context(ray_session(cfg.ray))
        state = _run_in_ray(cfg, run_dir, console, stack, on_cycle)
    if cfg.loop.report:
        from aiforml.report import write_report

        console.print(f"report: {write_report(run_dir)}")
    console.print(f"done: {state.cycle} cycles, best validation Sharpe {state.best_val_sharpe}")
    return 0


def _run_in_ray(cfg: Config, run_dir: Path, console: Console, stack: ExitStack,
                on_cycle: OnCycle | None = None) -> LoopState:
    """Build every piece (each closed by ``stack``), resume if asked, run the loop."""
    from aiforml.archive import ARCHIVE_FILE, Archive
    from aiforml.data import load_dataset, split_dataset
    from aiforml.diversity import build_reference
    from aiforml.env.pool import EnvPool
    from aiforml.learner import create_learner
    from aiforml.logger import RunLogger
    from aiforml.policy.prompt import render_prompt
    from aiforml.policy.schema import DataSchema

    with console.status("loading data"):
        dataset = load_dataset(cfg.data)
        split = split_dataset(dataset, cfg.data)
    schema = DataSchema.from_dataset(dataset)
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
        dataset = pool.dataset  # the pool's shared copy (memory-mapped on one machine): the loaded one is freed
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
    from aiforml.policy.model import resolve_policy_config

    resolved, reason = resolve_policy_config(cfg.policy)
    console.print(f"policy: {reason}")
    if resolved.name != "tiny" or resolved.model_path:
        return resolved.model_path
    from aiforml.policy.tiny import build_tiny_policy

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
    from aiforml.archive import ArchiveRecord
    from aiforml.loop import without_test
    from aiforml.pipeline.defaults import default_program_source
    from aiforml.program import Program
    from aiforml.reward import compute_reward

    source = default_program_source(cfg.env.pipeline, cfg.data.resolved_task)
    result = pool.evaluate([Program(source)])[0]
    if archive.baseline() is not None:
        return result
    archive.set_baseline(ArchiveRecord(
        cycle=0, sample_index=0, policy_version=0, program=source, completion="", result=result,
        reward=compute_reward(without_test(result), cfg.reward)))
    return result
