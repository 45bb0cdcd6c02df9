"""Checkpoints of a run: written atomically, found again on resume, the last few kept.

A checkpoint is a directory ``RUN_DIR/checkpoints/cycle-000007`` holding:

- ``learner/``: what ``LearnerActor.save`` writes (adapters, value head, optimizer, KL
  controller, its update counter and sampling generator);
- ``rng.pt``: the driver's Python, NumPy and torch RNG states;
- ``state.json``: the cycle counter and the loop's running state (best validation Sharpe
  so far, ...);
- ``config.yaml``: the run's resolved configuration at that cycle.

It is written into a hidden temporary directory next to the others and renamed into place
only when complete, so a process killed at any moment leaves either the previous set of
checkpoints or the new one, never a half-written checkpoint under a real name. Left-over
temporary directories are removed by the next save.

Responsible for: writing, finding, reading and pruning checkpoints. Not responsible for:
what the learner saves (``aiforml.learner``) or the archive's rows (``aiforml.archive``).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^cycle-(\d{6})$")
LEARNER_DIR = "learner"


@dataclass
class Checkpoint:
    """A complete checkpoint on disk."""

    path: Path
    cycle: int  # cycles completed when it was written
    state: dict[str, Any]  # the loop's running state (state.json)

    @property
    def learner_dir(self) -> Path:
        return self.path / LEARNER_DIR


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def seed_rngs(seed: int) -> None:
    """Seed the driver's Python, NumPy and torch RNGs (a fresh run; a resume restores them)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(
    run_dir: Path, cycle: int, save_learner: Callable[[str], Any], state: dict[str, Any],
    config: dict[str, Any], keep: int = 2,
) -> Path:
    """Write checkpoint ``cycle`` atomically; keep the newest ``keep``; return its path.

    ``save_learner(path)`` writes the learner's state into ``path`` (a directory it creates).
    """
    root = run_dir / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"cycle-{cycle:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    try:
        save_learner(str(tmp / LEARNER_DIR))
        torch.save(rng_state(), tmp / "rng.pt")
        (tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (tmp / "state.json").write_text(json.dumps({"cycle": cycle, **state}, indent=2))
        if final.exists():  # a cycle redone after a resume from an earlier checkpoint
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    prune_checkpoints(run_dir, keep)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of ``run_dir``, oldest first."""
    root = run_dir / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: p.name)


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints, and left-over temporary directories."""
    for path in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
    remove_partial_checkpoints(run_dir)


def remove_partial_checkpoints(run_dir: Path) -> None:
    """Delete checkpoints left half-written (a save interrupted while the learner still wrote)."""
    root = run_dir / CHECKPOINT_DIR
    if root.is_dir():
        for path in root.glob(".tmp-*"):
            shutil.rmtree(path, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The newest complete checkpoint of ``run_dir``, or None when it has none."""
    found = list_checkpoints(run_dir)
    if not found:
        return None
    path = found[-1]
    state = json.loads((path / "state.json").read_text())
    return Checkpoint(path=path, cycle=int(state.pop("cycle")), state=state)


def restore_rng(checkpoint: Checkpoint) -> None:
    """Put the driver's RNGs back where they were when ``checkpoint`` was written."""
    set_rng_state(torch.load(checkpoint.path / "rng.pt", weights_only=False))
