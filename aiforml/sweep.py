"""Ray Tune sweeps over whole runs: ``launch.py`` runs one when ``tune.space`` is set.

    python launch.py +experiment=sweep_reward_weights               # reward weights, CPU budget
    python launch.py +experiment=sweep_ppo run_dir=/tmp/sweep       # PPO hyperparameters
    python launch.py +experiment=sweep_ppo resume=/tmp/sweep        # continue a crashed sweep
    python launch.py --config-path /tmp/sweep --config-name best_config   # rerun the best trial

Responsible for: turning ``tune.space`` into Tune's ``param_space`` and every trial's
values, each with its own seed (``aiforml.tune_space.trial_points``: trial ``k`` runs with
``seed + k``; the ``tune.seed_repeats`` last trials rerun trial 0's values at their own
seeds); reserving each trial's resources as one placement group (a bundle for the trial driver,
one for the learner when it asks for a GPU, CPUs or custom resources, one per env actor:
Tune captures the actors a trial starts into its group, so trials never starve each other
and the number running at once follows from the cluster's resources); running each trial
as one whole run (:func:`aiforml.run.run`) in its own run directory, reporting the
objective and a checkpoint to Tune every cycle; the ASHA scheduler; resuming a crashed
sweep with ``Tuner.restore`` (each unfinished trial then resumes its own run); and at the
end the trials table, the best trial's config as a YAML ``launch.py`` accepts, and a plot
of the objective against every swept value (``aiforml.sweep_report``).

The objective reads validation scores only (``tune.objective``: by default the mean
validation Sharpe of the last ``tune.last_k`` cycles, or their mean reward, or the best
validation Sharpe so far). Sealed-test Sharpe is read from each trial's archive for the
table, beside the objective, and never selects.

Not responsible for: what happens inside a run (``aiforml.run``, ``aiforml.loop``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator
from rich.console import Console

from aiforml.archive import open_run
from aiforml.checkpoint import latest_checkpoint
from aiforml.compose import RUN_CONFIG_FILE
from aiforml.config import Config, SweepConfig, from_dict
from aiforml.learner import wants_gpu
from aiforml.loop import LoopState
from aiforml.run import run
from aiforml.runtime import check_start, config_dict, ray_session
from aiforml.sweep_report import write_sweep_outputs
from aiforml.tune_space import NO_SCORE, SEED, apply_params, param_space, parse_space, trial_points

EXPERIMENT = "tune"  # Tune's experiment folder inside the sweep directory
RUNS = "runs"  # the trials' run directories: SWEEP_DIR/runs/<trial id> (a shared filesystem on a cluster)
MARKER = "cycle.json"  # the Tune checkpoint's content: the run's cycle (the run keeps its own checkpoints)


def run_sweep(cfg: Config, sweep_dir: Path) -> int:
    """The whole sweep; writes its outputs into ``sweep_dir``; 0, or 1 when no trial reported."""
    console = Console()
    base = _base_config(config_dict(cfg))
    parsed = parse_space(cfg.tune.space, base)
    experiment_dir = sweep_dir / EXPERIMENT
    if not cfg.resume and experiment_dir.exists():
        raise ValueError(f"run_dir={sweep_dir} already holds a sweep: continue it with resume={sweep_dir}, "
                         "or choose another run_dir")
    if cfg.resume and not tune.Tuner.can_restore(str(experiment_dir)):
        raise ValueError(f"resume={cfg.resume}: no Tune experiment to restore at {experiment_dir}")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    check_start(dataclasses.replace(cfg, resume=None), sweep_dir)
    console.print(f"sweep directory: {sweep_dir}")
    with ray_session(cfg.ray):
        bundles = trial_bundles(cfg)
        console.print(f"each trial reserves {bundles}")
        trainable = tune.with_resources(tune.with_parameters(run_trial, base=base, runs_dir=str(sweep_dir / RUNS)),
                                        tune.PlacementGroupFactory(bundles))
        if cfg.resume:
            tuner = tune.Tuner.restore(str(experiment_dir), trainable, resume_unfinished=True,
                                       resume_errored=True)
        else:
            points = trial_points(parsed, cfg.tune.num_samples, cfg.tune.seed_repeats, cfg.seed,
                                  cfg.tune.search_seed)
            tuner = tune.Tuner(trainable, param_space=param_space(parsed, [p[SEED] for p in points]),
                               tune_config=_tune_config(cfg, points), run_config=_run_config(sweep_dir))
        grid = tuner.fit()
    outputs = write_sweep_outputs(grid, base, parsed, cfg.tune, sweep_dir, sweep_dir / RUNS)
    for name, path in outputs.items():
        console.print(f"{name}: {path}")
    if "best config" not in outputs:
        console.print(f"no trial reported a cycle: see the trials' errors in {experiment_dir}")
        return 1
    return 0


def _base_config(data: dict[str, Any]) -> dict[str, Any]:
    """The trials' common config: no sweep, no run dir of its own, paths absolute (Tune moves cwd)."""
    base = copy.deepcopy(data)
    base["tune"]["space"] = {}
    base["run_dir"] = base["resume"] = None
    for section, key in (("data", "path"), ("data", "cache_dir")):
        if base[section].get(key):
            base[section][key] = str(Path(base[section][key]).expanduser().resolve())
    tiny = base["policy"]["tiny"]
    if tiny.get("cache_dir"):
        tiny["cache_dir"] = str(Path(tiny["cache_dir"]).expanduser().resolve())
    return base


def trial_bundles(cfg: Config) -> list[dict[str, float]]:
    """One trial's placement group: driver; learner (when it asks for anything); one per env actor."""
    def nonzero(bundle: dict[str, float]) -> dict[str, float]:
        return {k: float(v) for k, v in bundle.items() if v}

    learner = nonzero({"CPU": cfg.ray.learner_cpus, "GPU": 1.0 if wants_gpu(cfg.policy) else 0.0,
                       **(cfg.ray.learner_resources or {})})
    env = nonzero({"CPU": cfg.env.pool.cpus_per_actor, **(cfg.env.pool.actor_resources or {})})
    return [{"CPU": cfg.tune.trial_cpus}, *([learner] if learner else []), *[env] * cfg.env.pool.num_actors]


def _tune_config(cfg: Config, points: list[dict[str, Any]]) -> tune.TuneConfig:
    """Tune runs ``points`` (every trial's values, drawn up front) in order and samples nothing."""
    sweep = cfg.tune
    if sweep.scheduler == "asha":
        scheduler = ASHAScheduler(time_attr="cycle", max_t=cfg.loop.cycles, grace_period=sweep.grace_period,
                                  reduction_factor=sweep.reduction_factor)
    else:
        scheduler = FIFOScheduler()
    return tune.TuneConfig(metric="objective", mode="max", scheduler=scheduler, num_samples=len(points),
                           max_concurrent_trials=sweep.max_concurrent,
                           search_alg=BasicVariantGenerator(points_to_evaluate=points),
                           trial_dirname_creator=trial_dirname)


def trial_dirname(trial: Any) -> str:
    """Short trial folders (Tune's default name holds every sampled value)."""
    return f"trial_{trial.trial_id}"


def _run_config(sweep_dir: Path) -> tune.RunConfig:
    return tune.RunConfig(name=EXPERIMENT, storage_path=str(sweep_dir),
                          checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                          failure_config=tune.FailureConfig(max_failures=0), verbose=1)


# --- inside a trial (a Tune worker) -------------------------------------------------------
def run_trial(params: dict[str, Any], base: dict[str, Any], runs_dir: str) -> None:
    """One trial: the whole run with ``params`` applied, reporting to Tune every cycle."""
    # Not Tune's trial dir: that is a staging folder of this Ray session, gone after a crash.
    run_dir = Path(runs_dir) / tune.get_context().get_trial_id()
    data = apply_params(base, params)
    sweep = from_dict(SweepConfig, base["tune"], prefix="tune.")
    data["run_dir"] = str(run_dir)
    # A restored trial (or one retried after a crash) continues its own run from its last checkpoint.
    data["resume"] = str(run_dir) if (run_dir / RUN_CONFIG_FILE).is_file() else None
    data["loop"]["progress"] = False
    cfg = from_dict(Config, data)
    run(cfg, on_cycle=CycleReporter(sweep, run_dir))


RECENT = {"mean_val_sharpe": "val/sharpe_mean", "mean_reward": "reward/mean"}  # objective -> cycle metric


class CycleReporter:
    """The loop's ``on_cycle``: report the objective and a checkpoint marker to Tune."""

    def __init__(self, sweep: SweepConfig, run_dir: Path) -> None:
        self.sweep = sweep
        self.history: deque[dict[str, Any]] = deque(_archived_history(run_dir), maxlen=sweep.last_k)

    def __call__(self, cycle: int, metrics: dict[str, Any], state: LoopState) -> None:
        self.history.append(metrics)
        recent = [m.get(RECENT[self.sweep.objective]) for m in self.history] if self.sweep.objective in RECENT else []
        result = {
            "cycle": cycle,
            "objective": objective(self.sweep, state.best_val_sharpe, recent),
            "best_val_sharpe": state.best_val_sharpe,
            "val_sharpe_mean": metrics.get("val/sharpe_mean"),
            "reward_mean": metrics.get("reward/mean"),
            "compile_rate": metrics.get("env/compile_rate"),
        }
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / MARKER).write_text(json.dumps({"cycle": cycle}))
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))


def objective(sweep: SweepConfig, best_val_sharpe: float | None, recent: list[float | None]) -> float:
    """The number Tune maximizes (validation only); ``NO_SCORE`` while undefined.

    ``recent``: the per-cycle values of the objective's metric (``RECENT``), oldest first.
    """
    if sweep.objective == "best_val_sharpe":
        return NO_SCORE if best_val_sharpe is None else float(best_val_sharpe)
    defined = [r for r in recent[-sweep.last_k:] if r is not None]
    return sum(defined) / len(defined) if defined else NO_SCORE


def _archived_history(run_dir: Path) -> list[dict[str, Any]]:
    """``reward/mean`` and ``val/sharpe_mean`` of each cycle a resumed run keeps (to its last checkpoint)."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        return []
    with open_run(run_dir) as archive:
        rows = [r for r in archive.rows(("cycle", "status", "reward", "val_sharpe")) if r["cycle"] <= checkpoint.cycle]
    history = []
    for cycle in sorted({r["cycle"] for r in rows}):
        rewards = [r["reward"] for r in rows if r["cycle"] == cycle and r["reward"] is not None]
        sharpes = [r["val_sharpe"] for r in rows
                   if r["cycle"] == cycle and r["status"] == "ok" and r["val_sharpe"] is not None]
        history.append({"reward/mean": sum(rewards) / len(rewards) if rewards else None,
                        "val/sharpe_mean": sum(sharpes) / len(sharpes) if sharpes else None})
    return history
