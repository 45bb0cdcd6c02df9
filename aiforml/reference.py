"""The run's memory of what has been found, in the trusted process: uniqueness scores against
it, the behavioural near-duplicate rule, and the choice of programs shown back to the policy.

Responsible for:
- :class:`ReferenceSet`: the validation predictions of every distinct program that ran
  (kept in the driver; the policy never sees them), the default program's, and the meta
  model (the ``reward.meta_model_size`` best by validation Sharpe plus the default
  program, equal weights). ``score(result)`` gives a program's :class:`UniquenessScore`;
  ``add_cycle`` stores a finished cycle's programs (after the cycle is scored, so programs
  of one cycle are judged against earlier cycles only, never against each other) and
  saves their predictions under ``RUN_DIR/val_predictions/<hash>.npy`` for the report and
  for resuming. Memory: two float32 vectors of validation rows per distinct program (its
  predictions and their per-era unit ranks), e.g. 0.3 MB each on the fast synthetic preset.
- :func:`select_feedback`: a few of the best and mutually different programs (best per
  model family, behaviourally distinct) for the prompt.
Not responsible for the maths (``aiforml.uniqueness``), the cycle's diversity figures
(``aiforml.diversity``), the reward formula (``aiforml.reward``) or rendering the prompt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aiforml.config import DiversityConfig, RewardConfig
from aiforml.descriptors import describe_program
from aiforml.policy.prompt import render_feedback
from aiforml.program import EvalResult, Program
from aiforml.uniqueness import (
    EraIndex,
    baseline_contribution,
    corr_matrix,
    finite_mean,
    meta_model,
    per_era_contribution,
    unit_era_ranks,
)

PREDICTIONS_DIR = "val_predictions"  # under the run directory: <hash>.npy and eras.npy
ERAS_FILE = "eras.npy"


@dataclass(frozen=True)
class UniquenessScore:
    """How different one program's validation predictions are; ``value`` enters the reward."""

    baseline_contribution: float | None  # mean per-era contribution beyond the default program (BMC)
    contribution: float | None  # mean per-era MMC over the meta model
    max_corr: float | None  # highest mean per-era rank corr with an archived program or the default
    duplicate: bool  # max_corr above reward.duplicate_corr: no uniqueness credit
    value: float


@dataclass
class ReferenceEntry:
    """One archived program that ran."""

    program_hash: str
    source: str
    val_sharpe: float | None
    predictions: np.ndarray

    @property
    def model_family(self) -> str:
        return describe_program(self.source)["model_family"]


class ReferenceSet:
    """Archived programs' validation predictions, the default program's, and the meta model."""

    def __init__(self, eras: np.ndarray, target: np.ndarray, baseline: np.ndarray, cfg: RewardConfig,
                 store_dir: Path | None = None) -> None:
        self.eras, self.target, self.cfg = np.asarray(eras), np.asarray(target, dtype=np.float64), cfg
        self.index = EraIndex.from_eras(self.eras)
        self.baseline = np.asarray(baseline, dtype=np.float64)
        self.entries: dict[str, ReferenceEntry] = {}
        self._units = unit_era_ranks(self.baseline, self.index)[None, :].astype(np.float32)  # row 0: the default
        self.store_dir = Path(store_dir) if store_dir else None
        if self.store_dir is not None:
            self.store_dir.mkdir(parents=True, exist_ok=True)
            np.save(self.store_dir / ERAS_FILE, self.eras)
        self.meta = meta_model([self.baseline], self.index)

    # --- scores -------------------------------------------------------------------------
    def score(self, result: EvalResult) -> UniquenessScore | None:
        """The uniqueness of a result with validation predictions; None without them."""
        preds = result.predictions.get("validation")
        if preds is None or result.status != "ok":
            return None
        preds = np.asarray(preds, dtype=np.float64)
        base = baseline_contribution(preds, self.baseline, self.target, self.eras)
        mmc = finite_mean(per_era_contribution(preds, self.meta, self.target, self.eras))
        contribution = float(mmc) if np.isfinite(mmc) else None
        corrs = finite_mean(self.index.era_sums(self._units * unit_era_ranks(preds, self.index)[None, :]))
        max_corr = float(np.nanmax(corrs)) if np.isfinite(corrs).any() else None
        duplicate = max_corr is not None and max_corr > self.cfg.duplicate_corr
        return UniquenessScore(base, contribution, max_corr, duplicate,
                               0.0 if duplicate else self._value(base, contribution))

    def _value(self, base: float | None, contribution: float | None) -> float:
        """The mode's squashed contribution: beyond the default (baseline), beyond the meta
        model (contribution), or their mean (both); an unknown one counts 0."""
        base, meta = (math.tanh(c / self.cfg.contribution_scale) if c is not None else 0.0
                      for c in (base, contribution))
        return {"baseline": base, "contribution": meta, "both": (base + meta) / 2}[self.cfg.uniqueness]

    # --- state --------------------------------------------------------------------------
    def add_cycle(self, programs: list[Program | None], results: list[EvalResult]) -> None:
        """Store every new program of a finished cycle that ran; refresh the meta model."""
        for program, result in zip(programs, results, strict=True):
            preds = result.predictions.get("validation")
            if program is None or preds is None or result.status != "ok":
                continue
            sharpe = result.validation.sharpe if result.validation else None
            self._add(ReferenceEntry(program.hash, program.source, sharpe, np.asarray(preds, dtype=np.float32)))
            if self.store_dir is not None:
                np.save(self.store_dir / f"{program.hash}.npy", np.asarray(preds, dtype=np.float32))
        self._refresh_meta()

    def restore(self, rows: list[dict[str, Any]]) -> int:
        """Reload archived programs (archive rows: program, program_hash, status, val_sharpe)
        whose predictions were saved; returns how many were restored."""
        if self.store_dir is None:
            return 0
        for row in rows:
            path = self.store_dir / f"{row['program_hash']}.npy"
            if row["status"] == "ok" and row["program_hash"] and path.is_file():
                preds = np.load(path, allow_pickle=False).astype(np.float32)
                self._add(ReferenceEntry(row["program_hash"], row["program"], row["val_sharpe"], preds))
        self._refresh_meta()
        return len(self.entries)

    def _add(self, entry: ReferenceEntry) -> None:
        if entry.program_hash in self.entries or entry.predictions.shape != self.baseline.shape:
            return
        self.entries[entry.program_hash] = entry
        units = unit_era_ranks(entry.predictions, self.index)[None, :].astype(np.float32)
        self._units = np.vstack([self._units, units])

    def best(self, n: int) -> list[ReferenceEntry]:
        """The ``n`` best entries by validation Sharpe (ties: first stored first)."""
        ranked = [e for e in self.entries.values() if e.val_sharpe is not None]
        return sorted(ranked, key=lambda e: -e.val_sharpe)[:n]

    def _refresh_meta(self) -> None:
        members = [e.predictions for e in self.best(self.cfg.meta_model_size)]
        self.meta = meta_model([self.baseline, *members], self.index)


def build_reference(cfg: RewardConfig, dataset: Any, split: Any, baseline: EvalResult, run_dir: Path,
                    rows: list[dict[str, Any]]) -> ReferenceSet | None:
    """The run's reference set over the validation rows (``dataset``, ``split``), anchored on the
    default program's result, with the archived ``rows`` whose predictions were saved
    (resume); None when the default program left no predictions (uniqueness then falls
    back to each result's baseline corr)."""
    preds = baseline.predictions.get("validation")
    if preds is None:
        return None
    rows_idx = np.flatnonzero(np.isin(dataset.eras, split.validation))
    reference = ReferenceSet(dataset.eras[rows_idx], dataset.targets[rows_idx, 0], preds, cfg,
                             Path(run_dir) / PREDICTIONS_DIR)
    reference.restore(rows)
    return reference


def uniqueness_metrics(scores: list[UniquenessScore | None]) -> dict[str, float | None]:
    """Means of a cycle's uniqueness scores (programs that ran) as ``uniqueness/...`` metrics."""
    got = [s for s in scores if s is not None]
    if not got:
        return {}

    def mean(values: list[float | None]) -> float | None:
        kept = [v for v in values if v is not None]
        return sum(kept) / len(kept) if kept else None

    return {
        "uniqueness/mean": mean([s.value for s in got]),
        "uniqueness/baseline_contribution_mean": mean([s.baseline_contribution for s in got]),
        "uniqueness/contribution_mean": mean([s.contribution for s in got]),
        "uniqueness/max_corr_mean": mean([s.max_corr for s in got]),
        "uniqueness/duplicate_rate": sum(s.duplicate for s in got) / len(got),
    }


# --- feedback ------------------------------------------------------------------------------
def select_feedback(entries: list[ReferenceEntry], n: int, distinct_corr: float,
                    index: EraIndex) -> list[ReferenceEntry]:
    """Up to ``n`` of the best entries, one per model family, behaviourally distinct.

    Candidates go in order of validation Sharpe; one is taken when no taken entry has its
    model family and none correlates with it above ``distinct_corr``.
    """
    chosen: list[ReferenceEntry] = []
    for entry in sorted((e for e in entries if e.val_sharpe is not None), key=lambda e: -e.val_sharpe):
        if len(chosen) == n:
            break
        if any(c.model_family == entry.model_family for c in chosen):
            continue
        if chosen:
            corr = corr_matrix([entry.predictions, *[c.predictions for c in chosen]], index)[0, 1:]
            if np.any(corr > distinct_corr):
                continue
        chosen.append(entry)
    return chosen


def feedback_prompt(prompt: str, reference: ReferenceSet | None, cfg: DiversityConfig) -> str:
    """``prompt`` with the feedback block before it when ``diversity.feedback`` is on."""
    if reference is None or not cfg.feedback:
        return prompt
    chosen = select_feedback(list(reference.entries.values()), cfg.feedback_programs, cfg.cluster_corr,
                             reference.index)
    items = [(f"{e.model_family}, validation Sharpe {e.val_sharpe:.2f}", e.source) for e in chosen]
    return render_feedback(items, cfg.feedback_chars) + prompt
