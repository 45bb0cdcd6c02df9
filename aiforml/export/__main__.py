"""Command line of ``aiforml.export`` (see that package's docstring).

    python -m aiforml.export RUN_DIR (--rank N | --program HASH | --default) --out DIR [--data V5_DIR]

Exit status: 0 when the files were written (and, for the Numerai task, predict.pkl passed
the runner's checks in a fresh interpreter), 1 when the program failed while fitting or the
check failed, 2 on bad input (no such run directory, no archive, rank out of range,
unknown or ambiguous hash).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from aiforml.export import export_program
from aiforml.export.choose import choose_program, load_run_config

WARNING = ("export runs the program's code in this process, outside the sandbox, because you asked for it: "
           "export only programs you have read")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m aiforml.export",
                                     description="Export a program of a run as files that run without aiforml.")
    parser.add_argument("run_dir", type=Path, help="a run directory (config.yaml, archive.sqlite)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--rank", type=int, help="leaderboard rank (1 = best by validation Sharpe)")
    which.add_argument("--program", metavar="HASH", help="program hash, or a unique prefix of one")
    which.add_argument("--default", action="store_true", help="the run's default program")
    parser.add_argument("--by", default="val_sharpe", help="leaderboard column of --rank (default val_sharpe)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the files into")
    parser.add_argument("--data", type=Path, default=None,
                        help="Numerai v5 folder to fit predict.pkl on (default: the run's data)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=True, soft_wrap=True)  # a path in a message stays whole
    try:
        cfg = load_run_config(args.run_dir)
        program = choose_program(args.run_dir, cfg, rank=args.rank, program_hash=args.program,
                                 default=args.default, by=args.by)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    console.print(f"[yellow]warning:[/] {WARNING}", highlight=False)
    if program.warning:
        console.print(f"[yellow]warning:[/] {program.warning}", highlight=False)
    status = console.status(f"exporting {program.label}")
    status.start()
    try:
        result = export_program(program, cfg, args.out, args.data, progress=status.update)
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    except Exception as exc:  # noqa: BLE001 - the program's own failure, reported as such
        console.print(f"[red]the export failed:[/] {type(exc).__name__}: {exc}", highlight=False)
        return 1
    finally:
        status.stop()
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if result.check_output:
        console.print(result.check_output, style="dim", highlight=False, markup=False)
    kind = f" (model kept as {result.model_kind})" if result.model_kind else ""
    console.print(f"exported {program.label}{kind}:", highlight=False)
    for path in result.files:
        console.print(f"  {path}", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
