"""Every program ever evaluated, in one SQLite file in the run directory.

Responsible for: storing each evaluated program with its code, normalized hash, cycle,
sample index, policy version, status, error class and message, all metrics (cross-
validation, validation, and sealed test in their own columns), reward and its terms,
descriptors (``aiforml.descriptors``, read from the code's AST), timings and per-era correlations; per-cycle
summaries; the leaderboard of the best programs *by a validation or CV metric only*; a
small CLI. Uses the standard library's ``sqlite3`` (one table, plain SQL: no ORM needed).
Writes are one transaction per cycle, so a crash loses at most the cycle in flight, and
re-adding a cycle replaces its rows (resume never duplicates).
Not responsible for: evaluating, rewarding, or plotting (``aiforml.report``).

The default program's evaluation (the baseline the report compares against) is stored
apart from the policy's samples with ``Archive.set_baseline``; it never enters summaries
or the leaderboard.

Run: ``python -m aiforml.archive RUN_DIR [--top N] [--by val_sharpe] [--export DIR]``
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiforml.descriptors import describe_program
from aiforml.program import PROGRAM_FAILURES, EvalResult, Program, SplitMetrics, finite
from aiforml.reward import RewardBreakdown

ARCHIVE_FILE = "archive.sqlite"
SCHEMA_VERSION = 4  # v2 added feature_ideas, v3 the trading metrics, v4 reward_terms; older archives are migrated on open
COMPLETION_CHARS = 20_000
MESSAGE_CHARS = 2_000
TRACEBACK_CHARS = 4_000
SPLITS = {"cv": "cv", "val": "validation", "test": "test"}  # column prefix -> EvalResult field
METRICS = ("mean_corr", "std_corr", "sharpe", "max_drawdown", "feature_neutral_corr",
           "baseline_corr", "n_eras")
# The trading task's statistics and buy-and-hold's (NULL for the Numerai-style task).
TRADING_METRICS = ("total_return", "turnover", "hit_rate", "bh_sharpe", "bh_total_return",
                   "bh_max_drawdown", "bh_turnover", "bh_hit_rate")
RANKABLE = ("sharpe", "mean_corr", "feature_neutral_corr")  # higher is better
METRIC_COLUMNS = tuple(f"{p}_{m}" for p in SPLITS for m in METRICS + TRADING_METRICS)
DESCRIPTORS = ("model_family", "defines_features", "defines_target", "defines_cv", "defines_model")
COLUMNS: dict[str, str] = {
    "role": "TEXT NOT NULL",  # 'sample' (the policy's) or 'baseline' (the default program)
    "cycle": "INTEGER NOT NULL", "sample_index": "INTEGER NOT NULL",
    "policy_version": "INTEGER NOT NULL", "program_hash": "TEXT NOT NULL",
    "data_version": "TEXT", "status": "TEXT NOT NULL", "error_class": "TEXT",
    "message": "TEXT", "traceback": "TEXT", "program": "TEXT NOT NULL", "completion": "TEXT",
    "steps_overridden": "TEXT", "libraries": "TEXT",
    "feature_ideas": "TEXT",  # JSON list of descriptors.FEATURE_IDEAS the code uses
    **{d: "TEXT" if d == "model_family" else "INTEGER" for d in DESCRIPTORS},
    "reward": "REAL", "reward_terms": "TEXT",  # JSON {term: value} of every aiforml.reward.TERMS
    **{c: "INTEGER" if c.endswith("n_eras") else "REAL" for c in METRIC_COLUMNS},
    "val_per_era": "TEXT", "test_per_era": "TEXT",  # JSON lists of per-era corr (null = NaN era)
    "timings": "TEXT",  # JSON of the evaluator's phase timings; time_total is its "total"
    "time_total": "REAL", "isolation": "TEXT", "created_at": "TEXT NOT NULL",
}


@dataclass
class ArchiveRecord:
    """One evaluated completion of the policy, as the loop hands it over."""

    cycle: int
    sample_index: int
    policy_version: int
    program: str  # source ('' when the completion had no code)
    completion: str  # the model's raw text (capped at COMPLETION_CHARS when stored)
    result: EvalResult
    reward: RewardBreakdown | None  # None for infra_error


def error_class(result: EvalResult) -> str | None:
    """The exception type when the message starts with one (KeyError, ...), else the status."""
    if result.status == "ok":
        return None
    if result.status == "syntax_error":
        return "SyntaxError"
    match = re.match(r"([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Iteration|Warning)):",
                     result.message)
    return match.group(1).split(".")[-1] if match else result.status


# --- rows ----------------------------------------------------------------------------------
def _split_columns(prefix: str, split: SplitMetrics | None) -> dict[str, Any]:
    return {f"{prefix}_{m}": (finite(getattr(split, m)) if m != "n_eras" else split.n_eras)
            if split is not None else None for m in METRICS + TRADING_METRICS}


def _per_era(split: SplitMetrics | None) -> str | None:
    return json.dumps([finite(x) for x in split.per_era_corr]) if split is not None else None


def _row(record: ArchiveRecord, role: str) -> dict[str, Any]:
    r, rw = record.result, record.reward
    row: dict[str, Any] = {
        "role": role, "cycle": record.cycle, "sample_index": record.sample_index,
        "policy_version": record.policy_version,
        "program_hash": Program(record.program).hash if record.program.strip() else "",
        "data_version": r.data_version, "status": r.status, "error_class": error_class(r),
        "message": r.message[:MESSAGE_CHARS], "traceback": r.traceback[-TRACEBACK_CHARS:],
        "program": record.program, "completion": record.completion[:COMPLETION_CHARS],
        "steps_overridden": json.dumps(r.steps_overridden),
        "reward": rw.reward if rw else None,
        "reward_terms": json.dumps({k: finite(v) for k, v in rw.terms.items()}) if rw else None,
        "val_per_era": _per_era(r.validation), "test_per_era": _per_era(r.test),
        "timings": json.dumps(r.timings), "time_total": r.timings.get("total"),
        "isolation": r.isolation, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for prefix, name in SPLITS.items():
        row.update(_split_columns(prefix, getattr(r, name)))
    desc = describe_program(record.program)
    row.update({d: desc[d] for d in DESCRIPTORS}, libraries=json.dumps(desc["libraries"]),
               feature_ideas=json.dumps(desc["feature_ideas"]))
    return row


# --- the store -----------------------------------------------------------------------------
class Archive:
    """The run's archive: one SQLite file (WAL mode), one row per evaluated completion."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)  # explicit transactions
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            cols = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
            self._db.executescript(
                f"BEGIN; CREATE TABLE programs (id INTEGER PRIMARY KEY, {cols});"
                " CREATE INDEX programs_cycle ON programs(role, cycle);"
                f" PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        elif version in (1, 2, 3):
            added = ["feature_ideas TEXT"] if version == 1 else []
            added += [f"{p}_{m} REAL" for p in SPLITS for m in TRADING_METRICS] if version < 3 else []
            # v4: the three reward-term columns become one JSON object of every term
            terms = ("UPDATE programs SET reward_terms = json_object('compile', reward_compile, "
                     "'performance', reward_performance, 'uniqueness', reward_uniqueness) "
                     "WHERE reward IS NOT NULL;")
            self._db.executescript("BEGIN; " + " ".join(f"ALTER TABLE programs ADD COLUMN {a};" for a in added)
                                   + " ALTER TABLE programs ADD COLUMN reward_terms TEXT; " + terms
                                   + f" PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        elif version != SCHEMA_VERSION:
            self._db.close()
            raise RuntimeError(f"{self.path} holds archive schema v{version}; this code reads "
                               f"v{SCHEMA_VERSION}: open it with a matching aiforml version")

    def _replace(self, where: str, params: tuple, records: list[ArchiveRecord], role: str) -> int:
        """Delete the rows matching ``where``, insert ``records``, all or nothing; rows deleted."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            deleted = self._db.execute(f"DELETE FROM programs WHERE {where}", params).rowcount
            for record in records:  # rows are built inside the transaction: a bad one rolls back
                row = _row(record, role)
                marks = ", ".join("?" * len(row))
                self._db.execute(f"INSERT INTO programs ({', '.join(row)}) VALUES ({marks})",
                                 tuple(row.values()))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return deleted

    def add_cycle(self, cycle: int, records: list[ArchiveRecord]) -> None:
        """Store one cycle's records in one transaction, replacing any earlier rows of it."""
        wrong = [r.cycle for r in records if r.cycle != cycle]
        if wrong:
            raise ValueError(f"add_cycle({cycle}) got records of cycles {sorted(set(wrong))}")
        self._replace("role = 'sample' AND cycle = ?", (cycle,), records, "sample")

    def set_baseline(self, record: ArchiveRecord) -> None:
        """Store the default program's evaluation (replaces the previous baseline)."""
        self._replace("role = 'baseline'", (), [record], "baseline")

    def truncate_after(self, cycle: int) -> int:
        """Delete the rows of cycles after ``cycle`` (resume from a checkpoint); rows removed."""
        return self._replace("role = 'sample' AND cycle > ?", (cycle,), [], "sample")

    def last_cycle(self) -> int | None:
        return self._db.execute("SELECT MAX(cycle) FROM programs WHERE role = 'sample'").fetchone()[0]

    def rows(self, columns: tuple[str, ...] = tuple(COLUMNS), role: str = "sample") -> list[dict]:
        """Rows of ``role`` by cycle, then insertion order, as dicts of the named columns."""
        unknown = set(columns) - set(COLUMNS) - {"id"}
        if unknown:
            raise ValueError(f"unknown archive columns {sorted(unknown)}")
        sql = f"SELECT {', '.join(columns)} FROM programs WHERE role = ? ORDER BY cycle, id"
        return [dict(r) for r in self._db.execute(sql, (role,))]

    def baseline(self) -> dict | None:
        rows = self.rows(role="baseline")
        return _decode(rows[0]) if rows else None

    def cycle_summary(self) -> list[dict]:
        """Per cycle, in order: the figures of ``summarize_cycle`` plus the best val Sharpe so far."""
        cols = ("cycle", "status", "error_class", "reward", "val_sharpe", "program_hash",
                *DESCRIPTORS)
        by_cycle: dict[int, list[dict]] = {}
        for row in self.rows(cols):
            by_cycle.setdefault(row["cycle"], []).append(row)
        out, best = [], None
        for cycle, rows in by_cycle.items():
            summary = summarize_cycle(rows)
            if summary["best_val_sharpe"] is not None:
                best = max(best, summary["best_val_sharpe"]) if best is not None else summary["best_val_sharpe"]
            out.append({"cycle": cycle, **summary, "best_val_sharpe_so_far": best})
        return out

    def top(self, n: int = 10, by: str = "val_sharpe", include_test: bool = True) -> list[dict]:
        """The best distinct ``ok`` programs by a validation or CV metric; test metrics beside.

        Sealed test scores never select, nor do CV scores (the child computed them unwatched):
        ``by`` must be a ``val_*`` score or ``reward``. Each program hash appears once (its best evaluation). Pass
        ``include_test=False`` for anything the policy may see (a prompt): test columns dropped.
        """
        allowed = [f"val_{m}" for m in RANKABLE] + ["reward"]
        if by not in allowed:
            raise ValueError(f"top(by={by!r}): rank by one of {allowed}; test and CV scores never select")
        sql = (f"SELECT id, * FROM programs WHERE role = 'sample' AND status = 'ok' AND {by} IS NOT NULL"
               f" ORDER BY {by} DESC, id ASC")
        out, seen = [], set()
        for row in self._db.execute(sql):
            if row["program_hash"] in seen:
                continue
            seen.add(row["program_hash"])
            out.append(_decode({k: row[k] for k in row.keys()
                                if include_test or not k.startswith("test_")}))
            if len(out) == n:
                break
        return out

    def at_rank(self, rank: int, by: str = "val_sharpe") -> dict:
        """The row at leaderboard ``rank`` (1 = best) of ``top(by=by)``; ValueError naming the range."""
        if rank < 1:
            raise ValueError(f"--rank must be >= 1, got {rank}")
        rows = self.top(rank, by=by)
        if len(rows) < rank:
            raise ValueError(f"--rank {rank} is out of range: the leaderboard by {by} holds {len(rows)} programs "
                             f"(see python -m aiforml.archive {self.path.parent} --top {max(len(rows), 1)})")
        return rows[rank - 1]

    def find(self, hash_prefix: str) -> dict:
        """The policy's program whose hash starts with ``hash_prefix``: its best ``ok``
        evaluation by validation Sharpe (as ``top`` lists it), else its latest one.
        ValueError when no program or several distinct programs match."""
        prefix = hash_prefix.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{1,16}", prefix):
            raise ValueError(f"--program {hash_prefix!r}: a program hash is 1-16 hex digits (see the leaderboard)")
        sql = ("SELECT id, * FROM programs WHERE role = 'sample' AND program_hash LIKE ? "
               "ORDER BY status = 'ok' DESC, val_sharpe IS NULL, val_sharpe DESC, id DESC")
        rows = list(self._db.execute(sql, (prefix + "%",)))
        hashes = sorted({r["program_hash"] for r in rows})
        if not hashes:
            raise ValueError(f"no program in {self.path} has a hash starting with {prefix!r}")
        if len(hashes) > 1:
            raise ValueError(f"{len(hashes)} programs have hashes starting with {prefix!r} "
                             f"({', '.join(hashes[:5])}): give more digits")
        return _decode({k: rows[0][k] for k in rows[0].keys()})

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decode(row: dict) -> dict:
    """JSON columns parsed, descriptor flags as bools."""
    for key in ("val_per_era", "test_per_era", "timings", "steps_overridden", "libraries", "feature_ideas", "reward_terms"):
        if key in row:
            row[key] = json.loads(row[key]) if row[key] else None
    for key in DESCRIPTORS[1:]:
        if key in row and row[key] is not None:
            row[key] = bool(row[key])
    return row


def summarize_cycle(rows: list[dict]) -> dict[str, Any]:
    """Figures of one cycle's rows (dicts with status, error_class, reward, val_sharpe,
    program_hash and the descriptors). Infra errors are left out of the rates and shares;
    shares count only rows that hold code."""
    n_infra = sum(r["status"] == "infra_error" for r in rows)
    judged = len(rows) - n_infra
    rewards = [r["reward"] for r in rows if r["reward"] is not None]
    sharpes = [r["val_sharpe"] for r in rows if r["status"] == "ok" and r["val_sharpe"] is not None]
    coded = [r for r in rows if r["program_hash"] and r["status"] != "infra_error"]

    def share(key: str) -> float | None:
        return sum(bool(r[key]) for r in coded) / len(coded) if coded else None

    families = Counter(r["model_family"] for r in coded)
    return {
        "n": len(rows), "n_infra": n_infra,
        "compile_rate": sum(r["status"] == "ok" for r in rows) / judged if judged else None,
        "error_classes": dict(Counter(r["error_class"] for r in rows
                                      if r["status"] in PROGRAM_FAILURES).most_common()),
        "mean_reward": sum(rewards) / len(rewards) if rewards else None,
        "max_reward": max(rewards) if rewards else None,
        "best_val_sharpe": max(sharpes) if sharpes else None,
        "family_shares": {f: k / len(coded) for f, k in families.most_common()},
        "share_own_features": share("defines_features"),
        "share_own_target": share("defines_target"),
        "share_own_cv": share("defines_cv"),
    }


# --- CLI -----------------------------------------------------------------------------------
def open_run(run_dir: Path) -> Archive:
    """The archive of a run directory (or an archive file); FileNotFoundError naming the path."""
    path = Path(run_dir)
    path = path if path.is_file() else path / ARCHIVE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no archive at {path} (expected {ARCHIVE_FILE} in the run directory)")
    return Archive(path)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def export_programs(rows: list[dict], out_dir: Path) -> list[Path]:
    """Write each row's program as ``NN_<hash>.py`` with a header comment of its scores."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for rank, row in enumerate(rows, 1):
        header = (f"# rank {rank} | cycle {row['cycle']} sample {row['sample_index']} | "
                  f"hash {row['program_hash']} | model {row['model_family']}\n"
                  f"# validation: sharpe {_fmt(row['val_sharpe'])} mean_corr {_fmt(row['val_mean_corr'], 4)}"
                  f" | cv sharpe {_fmt(row['cv_sharpe'])} | reward {_fmt(row['reward'])}\n"
                  f"# sealed test: sharpe {_fmt(row['test_sharpe'])} mean_corr {_fmt(row['test_mean_corr'], 4)}\n\n")
        path = out_dir / f"{rank:02d}_{row['program_hash']}.py"
        path.write_text(header + row["program"])
        paths.append(path)
    return paths


def print_leaderboard(rows: list[dict], by: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"top programs by {by} (test: sealed, never used to rank)")
    for col in ("#", "cycle", "hash", "model", "own feats", "val sharpe", "val corr",
                "cv sharpe", "test sharpe", "test corr", "reward"):
        table.add_column(col, justify="left" if col in ("hash", "model") else "right")
    for rank, r in enumerate(rows, 1):
        table.add_row(str(rank), str(r["cycle"]), r["program_hash"], r["model_family"],
                      "yes" if r["defines_features"] else "no", _fmt(r["val_sharpe"]),
                      _fmt(r["val_mean_corr"], 4), _fmt(r["cv_sharpe"]), _fmt(r["test_sharpe"]),
                      _fmt(r["test_mean_corr"], 4), _fmt(r["reward"]))
    Console(width=140).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiforml.archive", description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run directory (or its archive file)")
    parser.add_argument("--top", type=int, default=10, help="how many programs to show/export")
    parser.add_argument("--by", default="val_sharpe", help="validation/CV column to rank by")
    parser.add_argument("--export", type=Path, default=None, help="write the top programs here as .py")
    args = parser.parse_args(argv)
    try:
        archive = open_run(args.run_dir)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with archive:
        rows = archive.top(args.top, by=args.by)
    print_leaderboard(rows, args.by)
    if args.export is not None:
        paths = export_programs(rows, args.export)
        print(f"wrote {len(paths)} programs to {args.export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
