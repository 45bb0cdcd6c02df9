"""The columns the policy writes programs against: feature names, feature groups, targets.

``ColumnSchema`` is the policy's compact, hashable view (a cache key of the tiny policy); the
full description a client reads from the environment (splits, value ranges, NaN shares) is
``aiforml.env.models.DataSchema``.

Responsible for: a small, hashable description of a data set's columns, built from any
object with ``feature_names``, ``target_names`` and ``feature_groups`` (the data set of
``aiforml.data``), and a stand-in schema for tests and for builds without a data set.
Not responsible for: loading data, or rendering the schema into a prompt (``prompt.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ColumnSchema:
    """The columns a program may name: feature names (in column order), target names (``target`` first), feature groups."""

    feature_names: tuple[str, ...]
    target_names: tuple[str, ...]
    feature_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    task: str = "numerai"  # numerai (tournament eras) or trading (a price series; see aiforml.data.prices)
    assets: tuple[str, ...] = ()  # trading: the assets

    def __post_init__(self) -> None:
        if not self.feature_names:
            raise ValueError("ColumnSchema needs at least one feature name")
        if not self.target_names or self.target_names[0] != "target":
            raise ValueError(f"ColumnSchema.target_names must start with 'target', got {self.target_names!r}")

    @classmethod
    def from_dataset(cls, dataset: Any) -> ColumnSchema:
        """Read the schema off a data set (anything with the three attributes)."""
        groups = getattr(dataset, "feature_groups", None) or {}
        return cls(
            feature_names=tuple(dataset.feature_names),
            target_names=tuple(dataset.target_names),
            feature_groups={str(g): tuple(cols) for g, cols in groups.items()},
            task=getattr(dataset, "task", "numerai"),
            assets=tuple(getattr(dataset, "asset_names", ())),
        )

    @property
    def aux_targets(self) -> tuple[str, ...]:
        return self.target_names[1:]

    def group_prefix(self, group: str) -> str | None:
        """A name prefix that selects exactly this group's features, or None when none does."""
        cols = self.feature_groups[group]
        prefix = os.path.commonprefix(list(cols))
        if not prefix or prefix == "feature_":
            return None
        chosen = {c for c in self.feature_names if c.startswith(prefix)}
        return prefix if chosen == set(cols) else None

    def digest(self) -> str:
        """A short hash of the whole schema, for cache keys."""
        parts: list = [self.feature_names, self.target_names, sorted(self.feature_groups.items())]
        if self.task != "numerai":  # Numerai digests stay as they were (cached policies keep their keys)
            parts += [self.task, self.assets]
        payload = json.dumps(parts, default=list)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


STAND_IN_GROUPS = (
    "intelligence", "charisma", "strength", "dexterity", "constitution", "wisdom", "agility", "serenity",
)  # fmt: skip
STAND_IN_TARGETS = ("target", "target_alpha_60", "target_beta_20", "target_gamma_40", "target_raw_20")


def stand_in_schema(n_per_group: int = 10, groups: tuple[str, ...] = STAND_IN_GROUPS) -> ColumnSchema:
    """A schema shaped like the fast synthetic preset's, for tests and builds without data."""
    feature_groups = {g: tuple(f"feature_{g}{i}" for i in range(1, n_per_group + 1)) for g in groups}
    features = tuple(c for cols in feature_groups.values() for c in cols)
    return ColumnSchema(features, STAND_IN_TARGETS, feature_groups)


def default_schema() -> ColumnSchema:
    """The schema of the default synthetic data set when ``aiforml.data`` exists, else the stand-in."""
    try:
        from aiforml.config import DataConfig
        from aiforml.data import load_dataset
    except ImportError:
        return stand_in_schema()
    return ColumnSchema.from_dataset(load_dataset(DataConfig()))
