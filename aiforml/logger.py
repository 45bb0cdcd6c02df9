"""Where a run's metrics go, and what the person watching sees.

Responsible for: :class:`RunLogger`, which writes every cycle's metrics to TensorBoard
(always, under ``RUN_DIR/tensorboard``) and, when enabled in ``cfg.logger``, to Weights &
Biases and MLflow, both imported only when enabled and failing at start with a message
that names the key and the install command when missing; and :class:`ProgressDisplay`, the
rich progress bar of the loop (cycle k/N, compile rate, mean reward, best validation Sharpe
so far, time per phase).
Not responsible for: computing metrics (the loop does), the archive, checkpoints.

On resume, TensorBoard events of the cycles being redone are purged
(``SummaryWriter(purge_step=...)``), so curves show each cycle once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from aiforml.config import LoggerConfig

log = logging.getLogger(__name__)


class Tracker(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...
    def close(self) -> None: ...


class TensorBoardTracker:
    """torch's SummaryWriter: one scalar per metric key, step = cycle."""

    def __init__(self, log_dir: Path, purge_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, global_step=step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


_OPTIONAL = {"wandb": "logger.wandb.enabled", "mlflow": "logger.mlflow.enabled"}


def _missing(module: str) -> ValueError:
    key = _OPTIONAL[module]
    return ValueError(f"{key}=true but the '{module}' package is not installed: `pip install {module}` "
                      f"or set {key}=false (TensorBoard logging is always on)")


def check_trackers(cfg: LoggerConfig) -> None:
    """Fail at start, naming the key, when an enabled optional tracker is not installed."""
    import importlib.util

    for module, enabled in (("wandb", cfg.wandb.enabled), ("mlflow", cfg.mlflow.enabled)):
        if enabled and importlib.util.find_spec(module) is None:
            raise _missing(module)


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise _missing(module) from exc


class WandbTracker:
    def __init__(self, cfg: LoggerConfig, run_dir: Path, run_config: dict[str, Any]) -> None:
        wandb = _require("wandb")
        self.run = wandb.init(
            project=cfg.wandb.project, entity=cfg.wandb.entity, mode=cfg.wandb.mode, dir=str(run_dir),
            config=run_config, id=run_dir.name, resume="allow",
        )

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def close(self) -> None:
        self.run.finish()


class MlflowTracker:
    def __init__(self, cfg: LoggerConfig, run_dir: Path, run_config: dict[str, Any]) -> None:
        self.mlflow = _require("mlflow")
        self.mlflow.set_tracking_uri(cfg.mlflow.tracking_uri or (run_dir / "mlruns").resolve().as_uri())
        self.mlflow.set_experiment(cfg.mlflow.experiment)
        self.mlflow.start_run(run_name=run_dir.name)
        self.mlflow.log_dict(run_config, "config.json")

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.mlflow.log_metrics({k.replace("/", "."): v for k, v in metrics.items()}, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


class RunLogger:
    """Every metric of every cycle to TensorBoard, and to W&B / MLflow when enabled."""

    def __init__(self, cfg: LoggerConfig, run_dir: Path, run_config: dict[str, Any],
                 purge_step: int | None = None) -> None:
        self.cfg = cfg
        self.tensorboard = TensorBoardTracker(run_dir / "tensorboard", purge_step)
        self.trackers: list[Tracker] = [self.tensorboard]
        try:
            if cfg.wandb.enabled:
                self.trackers.append(WandbTracker(cfg, run_dir, run_config))
            if cfg.mlflow.enabled:
                self.trackers.append(MlflowTracker(cfg, run_dir, run_config))
        except BaseException:
            self.close()
            raise

    def log(self, metrics: dict[str, float], step: int) -> None:
        defined = {k: float(v) for k, v in metrics.items() if v is not None}
        for tracker in self.trackers:
            tracker.log(defined, step)
        if step % self.cfg.flush_every == 0:
            self.tensorboard.flush()

    def close(self) -> None:
        """Close every tracker; one failing to close does not keep the others open."""
        for tracker in self.trackers:
            try:
                tracker.close()
            except (OSError, RuntimeError, ValueError) as exc:
                log.warning("closing %s failed: %s", type(tracker).__name__, exc)
        self.trackers = []


class ProgressDisplay:
    """The loop's rich progress bar: one task, its description updated after every phase."""

    def __init__(self, total: int, completed: int, enabled: bool = True, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("[bold]cycle"), MofNCompleteColumn(), BarColumn(bar_width=20),
            TextColumn("{task.description}"), TimeElapsedColumn(),
            console=console, disable=not enabled, transient=False,
        )
        self.task = self.progress.add_task("starting", total=total, completed=completed)
        self.summary = ""

    def __enter__(self) -> ProgressDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def phase(self, name: str) -> None:
        """Show which phase of the current cycle is running."""
        self.progress.update(self.task, description=f"{self.summary} [cyan]{name}...")

    def cycle_done(self, cycle: int, metrics: dict[str, float | None]) -> None:
        """Advance one cycle, show its headline figures, and print them with the phase times."""
        best = metrics.get("val/best_sharpe")
        self.summary = (
            f"compile {metrics.get('env/compile_rate') or 0.0:.0%} | reward {metrics.get('reward/mean') or 0.0:+.3f} | "
            f"best val Sharpe {'-' if best is None else f'{best:.2f}'}"
        )
        self.progress.update(self.task, advance=1, description=self.summary)
        times = " ".join(f"{k[5:]} {v:.1f}s" for k, v in metrics.items() if k.startswith("time/") and v is not None)
        if self.progress.disable:
            return
        total = self.progress.tasks[0].total
        self.progress.console.print(f"cycle {cycle}/{total:g}: {self.summary} | {times}")
