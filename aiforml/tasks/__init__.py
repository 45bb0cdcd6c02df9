"""Tasks: what one kind of tournament means for data, programs and scores (see ``base``).

``build_task(dataset, split, cfg)`` picks the task from the data it is given: a price
series (``PriceData``) is the trading task, tournament eras (``Dataset``) the Numerai one.
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
    name = getattr(dataset, "task", "numerai")
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; tasks are {sorted(TASKS)}")
    return name


def build_task(dataset: Any, split: EraSplit, cfg: EnvConfig) -> Task:
    return TASKS[task_name(dataset)](dataset, split, cfg)


__all__ = ["TASKS", "Task", "build_task", "task_name"]
