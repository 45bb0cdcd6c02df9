"""The Numerai-style task: per-era cross sections of int8 features, a ranked target.

Feature rows are the training, validation and test eras (embargo eras dropped), in era
order. Scores are Numerai's per-era correlation statistics (:func:`aiforml.metrics.score_split`);
a validation mean corr above ``env.pipeline.leakage_band``, or a consistency honest
pipelines never reach (``checks.implausible_consistency``: per-era Sharpe, best single
era), is suspected leakage (Numerai itself flags scores above 0.04 on real data).
Not responsible for loading or generating the data (``aiforml.data``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from aiforml.config import EnvConfig
from aiforml.data.dataset import EraSplit
from aiforml.metrics import EraBases, score_split
from aiforml.pipeline.checks import implausible_consistency
from aiforml.pipeline.harness import consecutive
from aiforml.program import SplitMetrics
from aiforml.tasks.base import Finding, RowsOf, Task, View

log = logging.getLogger(__name__)


def rows_of(matrix: np.ndarray, rows: np.ndarray, dtype: Any = np.int8) -> np.ndarray | RowsOf:
    """``matrix[rows]`` as ``dtype``: a view when ``rows`` are consecutive (the held-once data
    set's feature rows, and every prefix of them: a look-ahead guard's cut view is written
    from the mapped file, not from a copy in the actor), else gathered as it is written (the
    loaded data set's feature rows, which skip the embargo eras)."""
    run = consecutive(rows)
    return np.ascontiguousarray(matrix[run], dtype=dtype) if run is not None else RowsOf(matrix, rows, dtype)


def basis_mb(eras: np.ndarray, n_features: int, form: str = "basis") -> float:
    """At most what :class:`EraBases` of this ``form`` keeps for these rows' eras: per era
    rows x min(rows, features + 1) doubles ("basis"), or (features + 1) x min(rows, features + 1)
    doubles and the rows' int8 features ("map")."""
    _, rows = np.unique(eras, return_counts=True)
    rows = rows.astype(np.float64)
    rank = np.minimum(rows, n_features + 1)
    if form == "basis":
        return float((rows * rank).sum() * 8 / 2**20)
    return float(((n_features + 1) * rank * 8 + rows * n_features).sum() / 2**20)


class NumeraiTask(Task):
    name = "numerai"

    def __init__(self, dataset: Any, split: EraSplit, cfg: EnvConfig) -> None:
        super().__init__(dataset, split, cfg)
        self._era_bases: dict[str, EraBases | None] = {}
        # where bases are kept once per machine (the evaluator's hand-off folder), or None: in this process
        self.bases_store: Callable[[str, Callable[[], EraBases]], EraBases] | None = None

    def _feature_rows(self) -> np.ndarray:
        return np.concatenate([self.train_rows, self.validation_rows, self.test_rows])

    def feature_view(self, n_rows: int) -> View:
        rows = self.feature_rows[:n_rows]
        d = self.dataset
        arrays = {"features": rows_of(d.features, rows),
                  "eras": d.eras[rows].astype(np.int32)}
        meta = {"feature_names": list(d.feature_names),
                "feature_groups": {k: list(v) for k, v in d.feature_groups.items()}}
        return arrays, meta

    def score(self, predictions: np.ndarray, rows: np.ndarray, baseline: np.ndarray | None) -> SplitMetrics:
        d = self.dataset
        return score_split(predictions, d.targets[rows, 0], d.eras[rows], features=self._bases(rows),
                           baseline=baseline)

    def _bases(self, rows: np.ndarray) -> EraBases | None:
        """The feature-neutral correlation's per-era bases of ``rows``: once per split, not per
        program; None (no feature-neutral correlation) where they would take more than
        ``env.pipeline.fnc_basis_mb``."""
        key = hashlib.sha1(np.ascontiguousarray(rows).tobytes()).hexdigest()
        if key not in self._era_bases:
            d, budget = self.dataset, self.cfg.pipeline.fnc_basis_mb
            eras = d.eras[rows][np.isfinite(d.targets[rows, 0])]
            need = {form: basis_mb(eras, len(d.feature_names), form) for form in ("basis", "map")}
            form = next((f for f in ("basis", "map") if need[f] <= budget), None)
            if form is None:
                log.warning("feature_neutral_corr is not computed: its per-era bases would take %.0f MB of memory, "
                            "above env.pipeline.fnc_basis_mb=%d (raise it to compute it)",
                            need["map"], budget)
                self._era_bases[key] = None
            else:
                def build() -> EraBases:
                    return EraBases.for_target(d.features[rows], d.targets[rows, 0], d.eras[rows], form=form)
                share = self.bases_store
                self._era_bases[key] = share(f"{key[:16]}-{form}", build) if share else build()
        return self._era_bases[key]

    def score_cv(self, oof: np.ndarray) -> SplitMetrics | None:
        covered = np.flatnonzero(np.isfinite(oof))
        if not len(covered):
            return None
        rows = self.train_rows[covered]
        return score_split(oof[covered], self.dataset.targets[rows, 0], self.dataset.eras[rows])

    def leakage(self, validation: SplitMetrics) -> Finding | None:
        cfg = self.cfg.pipeline
        if validation.mean_corr is not None and validation.mean_corr > cfg.leakage_band:
            return "leakage_suspected", (f"validation mean corr {validation.mean_corr:.3f} is above the "
                                         f"leakage band {cfg.leakage_band}: honest pipelines do not score this high")
        _, rows = np.unique(self.dataset.eras[self.validation_rows], return_counts=True)  # per_era_corr's order
        return implausible_consistency(validation.per_era_corr, cfg.leakage_sharpe, cfg.leakage_era_corr, rows)
