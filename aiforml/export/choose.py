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

import yaml

from aiforml.archive import ARCHIVE_FILE, open_run
from aiforml.config import Config, from_dict
from aiforml.pipeline.defaults import default_program_source

CONFIG_FILE = "config.yaml"  # written by aiforml.run into the run directory


@dataclass
class ChosenProgram:
    source: str
    label: str  # for headers and messages: "rank 1 (hash ...)", "the default program"
    program_hash: str = ""
    warning: str = ""  # set when the program failed in the run


def load_run_config(run_dir: Path) -> Config:
    """The typed config of a run directory; ValueError naming the file when it is missing or stale."""
    if not run_dir.is_dir():
        raise ValueError(f"no such run directory: {run_dir}")
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"{path} not found: a run directory written by launch.py holds its resolved config there")
    try:
        return from_dict(Config, yaml.safe_load(path.read_text()) or {})
    except ValueError as exc:
        raise ValueError(f"{path}: {exc} (a config from an older aiforml version: fix or remove the key)") from exc


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
    if rank < 1:
        raise ValueError(f"--rank must be >= 1, got {rank}")
    rows = archive.top(rank, by=by, include_test=False)
    if len(rows) < rank:
        raise ValueError(f"--rank {rank} is out of range: the leaderboard by {by} holds {len(rows)} programs "
                         f"(see python -m aiforml.archive {archive.path.parent} --top {max(len(rows), 1)})")
    row = rows[rank - 1]
    return ChosenProgram(row["program"], f"rank {rank} by {by} (hash {row['program_hash']})", row["program_hash"])


def _by_hash(archive, prefix: str) -> ChosenProgram:
    prefix = prefix.strip().lower()
    if not prefix:
        raise ValueError("--program needs a program hash or a prefix of one")
    rows = [r for role in ("sample", "baseline")
            for r in archive.rows(("program_hash", "program", "status", "message"), role=role)
            if r["program_hash"].startswith(prefix)]
    hashes = sorted({r["program_hash"] for r in rows})
    if not hashes:
        raise ValueError(f"no program in {archive.path} has a hash starting with {prefix!r}")
    if len(hashes) > 1:
        shown = ", ".join(hashes[:10]) + (f" and {len(hashes) - 10} more" if len(hashes) > 10 else "")
        raise ValueError(f"--program {prefix} is ambiguous: it starts {len(hashes)} hashes ({shown}); give more characters")
    ok = [r for r in rows if r["status"] == "ok"]
    row = (ok or rows)[-1]
    warning = "" if ok else (f"program {hashes[0]} did not pass in the run (status {row['status']}: "
                             f"{(row['message'] or '').strip()[:200]}); exporting it anyway")
    return ChosenProgram(row["program"], f"program {hashes[0]}", hashes[0], warning)
