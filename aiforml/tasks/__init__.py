"""Tasks: what one kind of tournament means for data, programs and scores (see ``base``).

``build_task(dataset, split, cfg)`` picks the task the data is marked with: a price
series (``PriceData``) is the trading task, tournament eras (``Dataset``) the Numerai one
unless ``data.task`` names another registered here (``docs/extending.md``: a third task).
"""

from __future__ import annotations

from typing import Any

from aiforml.config import EnvConfig
from aiforml.data.dataset import EraSplit
from aiforml.tasks.base import Task
from aiforml.tasks.numerai import NumeraiTask
from aiforml.tasks.trading import TradingTask

TASKS: dict[str, type[Task]] = {"numerai": NumeraiTask, "trading": TradingTask}


def task_name(dataset: Any) -> str:
    """The task of a loaded dataset: its own ``task`` attribute, else Numerai-style."""
    return check_task(getattr(dataset, "task", "numerai"))


def check_task(name: str) -> str:
    """``name`` when a task of that name is registered; ValueError naming ``data.task`` otherwise."""
    if name not in TASKS:
        raise ValueError(f"data.task={name}: no such task; tasks are {sorted(TASKS)} (a new one is a Task "
                         "subclass registered in TASKS, aiforml/tasks/__init__.py)")
    return name


def build_task(dataset: Any, split: EraSplit, cfg: EnvConfig) -> Task:
    return TASKS[task_name(dataset)](dataset, split, cfg)


__all__ = ["TASKS", "Task", "build_task", "check_task", "task_name"]
