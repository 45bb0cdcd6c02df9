"""The in-memory dataset record, era splits with embargo, and a schema summary.

Responsible for: the ``Dataset`` and ``EraSplit`` records every other layer reads, cutting
eras into train / validation / sealed test blocks with an embargo between them
(``split_eras``; ``aiforml.data.split_dataset`` adds the sizes and checks of a config), and a
JSON-able ``describe()`` of the schema (columns, groups, sets, eras per split) that prompts
and tools show so that generated code names only columns that exist.
Not responsible for: reading files or generating data (``numerai.py``, ``synthetic.py``),
nor for scoring.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

FEATURE_VALUES = (0, 1, 2, 3, 4)
# Numerai's feature group names (features.json lists each as a feature set).
GROUP_NAMES = (
    "intelligence", "charisma", "strength", "dexterity", "constitution", "wisdom",
    "agility", "serenity", "sunshine", "rain", "midnight", "wind",
)  # fmt: skip
TARGET_VALUES = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no truth value; identity hash
class Dataset:
    """Tournament data held as plain arrays, rows sorted by era ascending."""

    eras: np.ndarray  # (n,) int32, ascending
    features: np.ndarray  # (n, f) int8 in 0..4, C-contiguous
    targets: np.ndarray  # (n, t) float32, NaN where unknown; column 0 is "target"
    feature_names: tuple[str, ...]  # all start with "feature_"
    target_names: tuple[str, ...]  # "target" first, then "target_*"
    feature_sets: dict[str, tuple[str, ...]]  # at least "small", "medium", "all"
    feature_groups: dict[str, tuple[str, ...]]  # group name -> feature names
    version: str  # stable content id, a cache key: changes when the data changes
    name: str  # "synthetic-fast", "synthetic-realistic", "numerai"
    default_validation_eras: int
    default_test_eras: int
    ids: np.ndarray | None = field(default=None, repr=False)  # (n,) row ids, fresh every era
    task: str = "numerai"  # how it is scored (aiforml.tasks.TASKS); data.task chooses another

    def __post_init__(self) -> None:
        n = len(self.eras)
        assert self.features.shape == (n, len(self.feature_names)), "features shape"
        assert self.targets.shape == (n, len(self.target_names)), "targets shape"
        assert self.target_names[:1] == ("target",), "column 0 must be 'target'"

    @property
    def n_rows(self) -> int:
        return len(self.eras)

    @property
    def unique_eras(self) -> np.ndarray:
        return np.unique(self.eras)

    def rows(self, eras: np.ndarray | list[int]) -> np.ndarray:
        """Boolean row mask of the rows whose era is in ``eras``."""
        return np.isin(self.eras, np.asarray(eras, dtype=self.eras.dtype))

    def feature_indices(self, set_name: str) -> np.ndarray:
        """Column indices of a feature set or group, in the dataset's column order."""
        names = self.feature_sets.get(set_name, self.feature_groups.get(set_name))
        if names is None:
            raise KeyError(
                f"unknown feature set '{set_name}'; sets are {sorted(self.feature_sets)}, "
                f"groups are {sorted(self.feature_groups)}"
            )
        wanted = set(names)
        return np.array([i for i, f in enumerate(self.feature_names) if f in wanted], dtype=np.int64)

    def select_features(self, set_name: str) -> Dataset:
        """A dataset with only the columns of one feature set (sets and groups restricted)."""
        idx = self.feature_indices(set_name)
        names = tuple(self.feature_names[i] for i in idx)
        return replace(
            self,
            features=np.ascontiguousarray(self.features[:, idx]),
            feature_names=names,
            feature_sets=restrict(self.feature_sets, names),
            feature_groups=restrict(self.feature_groups, names),
            version=f"{self.version}-{set_name}",
        )

    def describe(self, split: EraSplit | None = None) -> dict[str, Any]:
        """The schema as plain data: what a prompt or a tool shows about this dataset."""
        eras = self.unique_eras
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "n_rows": self.n_rows,
            "era_column": "era (int)",
            "n_eras": len(eras),
            "era_range": [int(eras[0]), int(eras[-1])] if len(eras) else [],
            "rows_per_era_mean": round(self.n_rows / max(len(eras), 1), 1),
            "feature_columns": list(self.feature_names),
            "feature_values": list(FEATURE_VALUES),
            "feature_dtype": "int8",
            "feature_sets": {k: list(v) for k, v in self.feature_sets.items()},
            "feature_groups": {k: list(v) for k, v in self.feature_groups.items()},
            "target_columns": list(self.target_names),
            "target_values": list(TARGET_VALUES),
            "scoring_target": "target",
            "target_nan_share": {
                t: round(float(np.isnan(self.targets[:, i]).mean()), 4)
                for i, t in enumerate(self.target_names)
            },
        }
        if split is not None:
            out["split"] = {
                "embargo_eras": split.embargo,
                **{
                    name: {
                        "n_eras": len(block),
                        "era_range": [int(block[0]), int(block[-1])] if len(block) else [],
                        "n_rows": int(self.rows(block).sum()),
                    }
                    for name, block in split.blocks().items()
                },
            }
        return out


@dataclass(frozen=True, eq=False)
class EraSplit:
    """Era numbers of each block, ascending; ``embargo`` eras are dropped between blocks."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    embargo: int

    def blocks(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


def restrict(mapping: dict[str, tuple[str, ...]], names: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Each set or group cut down to ``names`` (order kept); "all" becomes ``names``."""
    keep = set(names)
    out = {k: tuple(f for f in v if f in keep) for k, v in mapping.items()}
    if "all" in mapping:
        out["all"] = tuple(names)
    return out


def split_eras(
    eras: np.ndarray, validation_eras: int, test_eras: int, embargo: int
) -> EraSplit:
    """Cut sorted unique eras: [train] embargo [validation] embargo [test], test last.

    Blocks are counted in positions of the sorted unique eras (Numerai eras are
    consecutive integers, so positions and era numbers agree).
    """
    unique = np.unique(eras)
    if validation_eras < 1 or test_eras < 1 or embargo < 0:
        raise ValueError(
            "data.validation_eras and data.test_eras must be >= 1 and data.embargo_eras >= 0, "
            f"got {validation_eras}, {test_eras}, {embargo}"
        )
    n_train = len(unique) - test_eras - validation_eras - 2 * embargo
    if n_train < 1:
        raise ValueError(
            f"too few eras to split: the data has {len(unique)} eras, but validation "
            f"({validation_eras}) + test ({test_eras}) + 2 x embargo ({embargo}) leave "
            f"{n_train} for training; lower data.validation_eras / data.test_eras / "
            "data.embargo_eras or use more eras"
        )
    val_start = n_train + embargo
    test_start = val_start + validation_eras + embargo
    return EraSplit(
        train=unique[:n_train],
        validation=unique[val_start : val_start + validation_eras],
        test=unique[test_start:],
        embargo=embargo,
    )
