"""An archived program scored again under its run's configuration, beside what the run archived.

    python -m aiforml.evaluate --run RUN_DIR --rank 1          # the run's best program by validation Sharpe
    python -m aiforml.evaluate --run RUN_DIR --program 3fa2c1  # by its hash (a prefix will do)
    python -m aiforml.evaluate exported.py --run RUN_DIR       # a file: its archived row found by its hash

Responsible for: finding the archived row of a program (leaderboard rank, hash prefix, or
the hash of a given source: comments do not change it, so an exported file finds its row),
and comparing a fresh result's scores with the archived ones, metric by metric, within
``REPRODUCE_TOL``. A program's scores do not depend on the look-ahead guard's random cuts;
with the run's data (same generator seed, cache dir and data secret: the data version
says so) and the run's pipeline and sandbox settings they reproduce to the last bit:
every sandbox stage starts from the same global random state (``env.pipeline.seed``), so
unseeded draws repeat too. What can still differ: a program whose result depends on the
iteration order of a set of strings (Python's hash seed is the interpreter's own), one
that fits with several threads, and runs archived before the seed existed.
Not responsible for: composing the run's config (:func:`aiforml.compose.load_run_config`),
evaluating, printing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from aiforml.archive import METRICS, SPLITS, TRADING_METRICS, open_run
from aiforml.program import EvalResult, Program

REPRODUCE_TOL = 1e-6  # absolute and relative: floating-point noise, not a different model


@dataclass(frozen=True)
class ScoreCheck:
    """One metric of one split: the fresh value beside the archived one."""

    split: str  # cv, validation, test
    metric: str  # an archive metric (mean_corr, sharpe, ...)
    fresh: float | None
    archived: float | None

    @property
    def same(self) -> bool:
        if self.fresh is None or self.archived is None:
            return self.fresh is None and self.archived is None
        return math.isclose(self.fresh, self.archived, rel_tol=REPRODUCE_TOL, abs_tol=REPRODUCE_TOL)


def archived_row(run_dir: str | Path, rank: int | None = None, program_hash: str | None = None,
                 program: Program | None = None) -> dict | None:
    """The archive row of the program at leaderboard ``rank`` (by validation Sharpe, 1 = best),
    of ``program_hash`` (a prefix), or of ``program`` (None when the run never evaluated it)."""
    with open_run(Path(run_dir)) as archive:
        if rank is not None:
            return archive.at_rank(rank)
        if program_hash is not None:
            return archive.find(program_hash)
        if program is not None and program.source.strip():
            try:
                return archive.find(program.hash)
            except ValueError:
                return None
    return None


def run_data_version(run_dir: str | Path) -> str | None:
    """The data version the run evaluated on (its baseline's, else any program's)."""
    with open_run(Path(run_dir)) as archive:
        rows = archive.rows(("data_version",), role="baseline") + archive.rows(("data_version",))
    return next((r["data_version"] for r in rows if r["data_version"]), None)


def compare_scores(result: EvalResult, row: dict) -> list[ScoreCheck]:
    """Every metric that the result or the archived row holds, split by split."""
    checks = []
    for prefix, split in SPLITS.items():
        fresh = getattr(result, split)
        for metric in METRICS + TRADING_METRICS:
            value = None if fresh is None else getattr(fresh, metric)
            value = None if value is None or not math.isfinite(value) else float(value)
            archived = row.get(f"{prefix}_{metric}")
            if value is not None or archived is not None:
                checks.append(ScoreCheck(split, metric, value, archived))
    return checks


def reproduced(result: EvalResult, row: dict) -> bool:
    """Same status and every score within ``REPRODUCE_TOL``."""
    return result.status == row["status"] and all(c.same for c in compare_scores(result, row))
