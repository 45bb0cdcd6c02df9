"""The Task seam: everything the evaluator needs to know about one kind of tournament.

A Task answers, for one dataset and era split: which rows the feature stage sees and in
what order (``feature_rows``), what a child may read at each stage (:meth:`feature_view`,
:meth:`train_view`: plain arrays and a JSON-able meta, never a target of a row the child
predicts), where the look-ahead guard may cut (:meth:`cut_candidates`), the blocks the
model stage receives one at a time (:meth:`eval_blocks`), the default program, how
predictions are scored (:meth:`score`: a ``SplitMetrics`` whose fields the archive keeps,
NULL where a task has no such statistic) and what is suspected leakage (:meth:`leakage`).

The evaluator (:mod:`aiforml.pipeline.evaluator`) asks the Task and never which task it
is. Adding a task means one module here with a subclass, plus its data loader and config.
Not responsible for: running anything, sandboxes, rewards.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from aiforml.config import EnvConfig
from aiforml.data.dataset import EraSplit
from aiforml.data.targets import training_targets
from aiforml.pipeline.defaults import default_program_source, default_sources
from aiforml.program import SplitMetrics

Finding = tuple[str, str]  # (status, message)
View = tuple[dict[str, Any], dict[str, Any]]  # arrays (or RowsOf) by file stem, and meta.json


class RowsOf:
    """``matrix[rows]`` not gathered yet: what a view holds when its rows are not one slice of
    the data set (the feature rows skip the embargo eras). Its writer gathers a block of rows
    at a time (:func:`aiforml.pipeline.handoff.write_view`), so no whole copy is made beside
    the loaded data set."""

    def __init__(self, matrix: np.ndarray, rows: np.ndarray, dtype: Any) -> None:
        self.matrix, self.rows, self.dtype = matrix, np.asarray(rows), np.dtype(dtype)
        self.shape = (len(self.rows), *matrix.shape[1:])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: slice) -> np.ndarray:
        return np.ascontiguousarray(self.matrix[self.rows[key]], dtype=self.dtype)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self[:] if dtype is None else self[:].astype(dtype)


class Task(ABC):
    """One tournament's data contract and scoring; subclasses set ``name`` and the rows."""

    name: ClassVar[str]
    target_dtype: ClassVar[type] = np.float32  # of the training targets handed to the child

    def __init__(self, dataset: Any, split: EraSplit, cfg: EnvConfig) -> None:
        self.dataset, self.split, self.cfg = dataset, split, cfg
        blocks = {name: np.flatnonzero(dataset.rows(eras)) for name, eras in
                  (("train", split.train), ("validation", split.validation), ("test", split.test))}
        self.train_rows, self.validation_rows, self.test_rows = blocks["train"], blocks["validation"], blocks["test"]
        self.feature_rows = self._feature_rows()
        position = np.full(dataset.n_rows, -1, dtype=np.int64)
        position[self.feature_rows] = np.arange(len(self.feature_rows))
        self._position = position
        assert (position[self.train_rows] == np.arange(len(self.train_rows))).all(), \
            "training rows must come first among the feature rows"

    # --- rows ---------------------------------------------------------------------------
    @abstractmethod
    def _feature_rows(self) -> np.ndarray:
        """Dataset rows the feature stage sees, in time order, training rows first."""

    @property
    def n_train(self) -> int:
        return len(self.train_rows)

    @property
    def eval_rows(self) -> np.ndarray:
        """Validation rows then test rows: the order of the predictions the model returns."""
        return np.concatenate([self.validation_rows, self.test_rows])

    def positions(self, rows: np.ndarray) -> np.ndarray:
        """Positions of dataset ``rows`` in the feature matrix."""
        return self._position[rows]

    def eval_blocks(self) -> list[np.ndarray]:
        """Feature-matrix positions of each era (period) of validation then test, in time order.

        The model stage gets one block, returns its predictions, and only then the next.
        """
        eras = self.dataset.eras[self.eval_rows]
        positions = self.positions(self.eval_rows)
        starts = np.flatnonzero(np.r_[True, eras[1:] != eras[:-1]])
        return np.split(positions, starts[1:])

    def cut_candidates(self) -> np.ndarray:
        """Row counts (era boundaries) where the guard may cut: inside validation and test."""
        eras = self.dataset.eras[self.feature_rows]
        first = self.positions(self.validation_rows[:1])[0]
        starts = np.flatnonzero(np.r_[False, eras[1:] != eras[:-1]])
        return starts[starts >= first]

    def describe_row(self, position: int) -> str:
        """A short human name of a feature-matrix row, for messages."""
        return f"era {int(self.dataset.eras[self.feature_rows[position]])}"

    # --- what a child sees --------------------------------------------------------------
    @abstractmethod
    def feature_view(self, n_rows: int) -> View:
        """The first ``n_rows`` feature rows without any target: what ``create_features`` reads."""

    def train_view(self) -> View:
        """The training rows with their usable targets: what ``create_target`` reads."""
        arrays, meta = self.feature_view(self.n_train)
        arrays["targets"] = self.training_targets().astype(self.target_dtype)
        meta["target_names"] = list(self.dataset.target_names)
        return arrays, meta

    def training_targets(self) -> np.ndarray:
        """Targets of the training rows, every column, NaN where a window reaches validation."""
        return training_targets(self.dataset, self.split)

    def feature_hint(self) -> str:
        names = self.dataset.feature_names
        return f"{names[0]} ... {names[-1]} ({len(names)} columns)"

    # --- the program --------------------------------------------------------------------
    def defaults(self) -> dict[str, str]:
        return default_sources(self.cfg.pipeline, self.name)

    def default_program(self) -> str:
        return default_program_source(self.cfg.pipeline, self.name)

    # --- scoring ------------------------------------------------------------------------
    @abstractmethod
    def score(self, predictions: np.ndarray, rows: np.ndarray, baseline: np.ndarray | None) -> SplitMetrics:
        """Trusted scores of ``predictions`` of dataset ``rows`` (one block, time order)."""

    def score_cv(self, oof: np.ndarray) -> SplitMetrics | None:
        """Scores of the child's out-of-fold predictions: advisory, never a reward or a ranking."""
        covered = np.flatnonzero(np.isfinite(oof))
        if not len(covered):
            return None
        try:
            return self.score(oof[covered], self.train_rows[covered], None)
        except ValueError:  # folds that cover too little to score
            return None

    @abstractmethod
    def leakage(self, validation: SplitMetrics) -> Finding | None:
        """``leakage_suspected`` when validation scores are above what honest programs reach."""
