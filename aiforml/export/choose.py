"""Which program to export, and the run's configuration.

A run directory holds ``config.yaml`` (the resolved config) and ``archive.sqlite``. A program
is chosen by leaderboard rank (``Archive.top`` by validation Sharpe, as
``python -m aiforml.archive RUN_DIR --top N`` shows it), by program hash (a unique prefix
will do; failed programs too, with a warning), or as the run's default program.
Not responsible for: fitting or writing anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiforml import compose
from aiforml.archive import ARCHIVE_FILE, open_run
from aiforml.compose import RUN_CONFIG_FILE
from aiforml.config import Config
from aiforml.pipeline.defaults import default_program_source


@dataclass
class ChosenProgram:
    source: str
    label: str  # for headers and messages: "rank 1 (hash ...)", "the default program"
    program_hash: str = ""
    warning: str = ""  # set when the program failed in the run


def load_run_config(run_dir: Path) -> Config:
    """The typed config of a run directory (:func:`aiforml.compose.load_run_config`); ValueError
    naming the folder or the file when it is missing or holds a key this version does not know."""
    if not run_dir.is_dir():
        raise ValueError(f"no such run directory: {run_dir}")
    try:
        return compose.load_run_config(run_dir)
    except FileNotFoundError as exc:
        raise ValueError(str(exc)) from exc
    except ValueError as exc:
        raise ValueError(f"{run_dir / RUN_CONFIG_FILE}: {exc} (a config from an older aiforml version: fix or "
                         "remove the key)") from exc


def choose_program(run_dir: Path, cfg: Config, rank: int | None = None, program_hash: str | None = None,
                   default: bool = False, by: str = "val_sharpe") -> ChosenProgram:
    """Exactly one of ``rank`` (1 = best), ``program_hash`` (a prefix) or ``default``."""
    if sum((rank is not None, program_hash is not None, default)) != 1:
        raise ValueError("choose one of --rank N, --program HASH or --default")
    if default:
        return ChosenProgram(default_program_source(cfg.env.pipeline, cfg.data.resolved_task),
                             "the default program")
    if not (run_dir / ARCHIVE_FILE).is_file():
        raise ValueError(f"no {ARCHIVE_FILE} in {run_dir}: the run evaluated no program yet (use --default)")
    with open_run(run_dir) as archive:
        if rank is not None:
            return _by_rank(archive, rank, by)
        return _by_hash(archive, program_hash or "")


def _by_rank(archive, rank: int, by: str) -> ChosenProgram:
    row = archive.at_rank(rank, by)
    return ChosenProgram(row["program"], f"rank {rank} by {by} (hash {row['program_hash']})", row["program_hash"])


def _by_hash(archive, prefix: str) -> ChosenProgram:
    """The program whose hash starts with ``prefix`` (``Archive.find``: its best ok evaluation);
    a program that never passed is exported too, with a warning."""
    if not prefix.strip():
        raise ValueError("--program needs a program hash or a prefix of one")
    row = archive.find(prefix)
    warning = "" if row["status"] == "ok" else (
        f"program {row['program_hash']} did not pass in the run (status {row['status']}: "
        f"{(row['message'] or '').strip()[:200]}); exporting it anyway")
    return ChosenProgram(row["program"], f"program {row['program_hash']}", row["program_hash"], warning)
