"""Score one pipeline file by hand.

    python -m aiforml.evaluate my_pipeline.py                 # synthetic data, table output
    python -m aiforml.evaluate my_pipeline.py --json          # one JSON object, for scripts
    python -m aiforml.evaluate --default                      # the default program (the baseline)
    python -m aiforml.evaluate my_pipeline.py --data /path/to/numerai   # Numerai parquet folder
    python -m aiforml.evaluate my_pipeline.py --data sp500    # trading the daily S&P 500 (arch.data.sp500)
    python -m aiforml.evaluate my_pipeline.py --data prices.csv   # trading your OHLCV file (or --task trading)
    python -m aiforml.evaluate my_pipeline.py --set data.embargo_eras=8 --set env.sandbox.wall_s=60
    python -m aiforml.evaluate --print-default > my_pipeline.py   # start from the defaults
    python -m aiforml.evaluate --run RUN_DIR --rank 1         # a run's best program, under the run's config
    python -m aiforml.evaluate --run RUN_DIR --program 3fa2c1 --set env.sandbox.wall_s=60
    python -m aiforml.evaluate --run RUN_DIR --rank 1 --live v5/live.parquet --out predictions.csv

The program runs in the sandbox exactly as in training; the table shows cross-validation,
validation and sealed-test scores (trading: the strategy's backtest beside buy-and-hold's),
and the reward the design's weights would give. An empty program file means all defaults.

``--run RUN_DIR`` takes the run's own config (``RUN_DIR/config.yaml``: data, split, pipeline,
sandbox, reward) as the base, ``--set`` on top; ``--data``/``--task`` conflict with it. The
program is a file, or an archived one by leaderboard ``--rank`` or ``--program`` hash; the
archived scores are printed beside the fresh ones and any that differ are flagged
(:mod:`aiforml.rescore`). Generated data must be the run's: the same cache dir
(``data.cache_dir`` or ``$AIFORML_CACHE``) and data secret, else the data version differs
and nothing is evaluated (unless a ``--set data.*`` asks for other data).

``--live FILE --out PATH`` writes the program's predictions of Numerai's live rows instead
of scores (:mod:`aiforml.submission`): fitted on every labelled era, through the sandbox.

Exit status: 0 when the program was evaluated (whatever its status) or the predictions were
written, 1 when a live prediction's program failed (nothing written), 2 on bad input (no
such file, bad option or config key, data that is not the run's), 3 when the environment
itself failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from aiforml.compose import data_overrides, load_config, load_run_config
from aiforml.config import Config
from aiforml.data import load_dataset, split_dataset
from aiforml.data.live import read_live
from aiforml.pipeline.defaults import default_program_source
from aiforml.pipeline.evaluator import build_evaluator
from aiforml.program import EvalResult, Program
from aiforml.rescore import (
    REPRODUCE_TOL,
    archived_row,
    compare_scores,
    reproduced,
    run_data_version,
)
from aiforml.reward import compute_reward
from aiforml.reward import describe as describe_reward
from aiforml.submission import predict_live, write_submission


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m aiforml.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("program", nargs="?", help="Python file defining some of the overridable steps")
    parser.add_argument("--default", action="store_true", help="evaluate the default program")
    parser.add_argument("--print-default", action="store_true", help="print the default program and exit")
    parser.add_argument("--data", default=None,
                        help="synthetic (default), synthetic_realistic, sp500, synthetic_prices, a folder of "
                             "Numerai parquet files, or an OHLCV CSV/parquet file or folder (trading)")
    parser.add_argument("--task", choices=("numerai", "trading"), default=None,
                        help="the task of a --data path (default: inferred from the files)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, as on launch.py's command line (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--run", default=None, metavar="RUN_DIR",
                        help="a run directory: its config.yaml is the base config, its archive the scores to match")
    parser.add_argument("--rank", type=int, default=None, metavar="N",
                        help="with --run: the program at rank N of the run's leaderboard (validation Sharpe)")
    parser.add_argument("--program", dest="program_hash", default=None, metavar="HASH",
                        help="with --run: the archived program with this hash (a prefix will do)")
    parser.add_argument("--live", default=None, metavar="LIVE.parquet",
                        help="predict Numerai's live rows (features only) instead of scoring; needs --out")
    parser.add_argument("--out", default=None, metavar="PATH",
                        help="with --live: where to write id,prediction (CSV, or parquet by the suffix)")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> Config:
    if args.run:
        if args.data is not None or args.task is not None:
            raise ValueError("--data/--task conflict with --run: the run's config names its data; "
                             "change it with --set data.<key>=<value> if you mean to")
        return load_run_config(args.run, list(args.set))
    if args.rank is not None or args.program_hash is not None:
        raise ValueError("--rank and --program name a program of a run: give --run RUN_DIR too")
    return load_config(data_overrides(args.data or "synthetic", args.task) + list(args.set))


def read_program(args: argparse.Namespace, cfg: Config) -> tuple[Program, dict | None]:
    """The program to evaluate and, with ``--run``, its archived row (None if the run lacks it)."""
    named = [name for name, given in (("a program file", args.program), ("--default", args.default),
                                      ("--rank", args.rank is not None),
                                      ("--program", args.program_hash is not None)) if given]
    if len(named) > 1:
        raise ValueError(f"name one program: got {' and '.join(named)}")
    if args.live and not args.out:
        raise ValueError("--live needs --out PATH for the predictions file")
    if args.rank is not None or args.program_hash is not None:
        row = archived_row(args.run, rank=args.rank, program_hash=args.program_hash)
        assert row is not None
        return Program(row["program"]), row
    if args.default:
        program = Program(default_program_source(cfg.env.pipeline, cfg.data.resolved_task))
    elif not args.program:
        raise ValueError("give a program file to evaluate, --default for the default program, "
                         "or --run RUN_DIR with --rank N or --program HASH")
    else:
        path = Path(args.program)
        if not path.is_file():
            raise ValueError(f"no such program file: {path.resolve()}")
        program = Program(path.read_text())
    return program, archived_row(args.run, program=program) if args.run else None


def evaluate(program: Program, cfg: Config, console: Console | None,
             data_version: str | None = None) -> EvalResult:
    """Load data, evaluate one program with a progress display, and return the result.

    ``data_version``: the version the evaluation must see (a run's); ValueError before any
    evaluation when the data here differs.
    """
    status = console.status("loading data") if console else None
    if status:
        status.start()
    try:
        dataset = load_dataset(cfg.data)
        split = split_dataset(dataset, cfg.data)
        evaluator = build_evaluator(dataset, split, cfg.env)
        try:
            check_data_version(evaluator.data_version, data_version)
            if status:
                status.update("evaluating the default program (baseline, cached afterwards)")
            evaluator.baseline_predictions()
            on_progress = (lambda stage, _: status.update(stage)) if status else None
            return evaluator.evaluate(program, progress=on_progress)
        finally:
            evaluator.close()
    finally:
        if status:
            status.stop()


def check_data_version(here: str, run: str | None) -> None:
    if run and here != run:
        raise ValueError(
            f"the data here is not the run's (data version {here}, the run archived {run}). Generated "
            "data depends on the generator seed and on the data secret in the cache dir (data.cache_dir, "
            "else $AIFORML_CACHE or ~/.cache/aiforml; $AIFORML_DATA_SECRET_FILE names another secret): "
            "evaluate with the environment the run had; Numerai data must be the same files. To score "
            "on other data on purpose, change it with --set data.<key>=<value>")


def live_predictions(program: Program, cfg: Config, args: argparse.Namespace, console: Console) -> int:
    """``--live``: predict the live file's rows and write them; the exit status."""
    with console.status("loading data and predicting the live rows"):
        dataset = load_dataset(cfg.data)
        live = read_live(args.live, dataset.feature_names)
        result, frame = predict_live(program, cfg, dataset, live)
    out = {"status": result.status, "message": result.message, "program_hash": result.program_hash,
           "rows": 0, "out": None}
    if frame is not None:
        out.update(rows=len(frame), out=str(write_submission(frame, args.out)))
    if args.json:
        print(json.dumps(out))
    elif frame is None:
        console.print(f"status: [red]{result.status}[/]  {result.message}\nno predictions written")
        if result.traceback:
            console.print(result.traceback.rstrip(), style="dim", markup=False, highlight=False)
    else:
        console.print(f"wrote {out['rows']} live predictions to {out['out']}")
    return 0 if frame is not None else 3 if result.status == "infra_error" else 1


def archived_table(result: EvalResult, row: dict, console: Console) -> None:
    """The fresh scores beside the archived ones; rows that differ beyond the tolerance flagged."""
    same = reproduced(result, row)
    table = Table(title=f"against the run's archive (cycle {row['cycle']}, sample {row['sample_index']}): "
                        + ("[green]reproduced[/]" if same else f"[red]differs[/] (beyond {REPRODUCE_TOL:g})"))
    for column in ("split", "metric", "fresh", "archived", ""):
        table.add_column(column, justify="left" if column in ("split", "metric") else "right")
    table.add_row("", "status", result.status, row["status"], "" if result.status == row["status"] else "[red]differs[/]")
    for check in compare_scores(result, row):
        table.add_row(check.split, check.metric, fmt(check.fresh, 6), fmt(check.archived, 6),
                      "" if check.same else "[red]differs[/]")
    console.print(table)


def archived_json(result: EvalResult, row: dict) -> dict:
    checks = compare_scores(result, row)
    scores: dict[str, dict[str, float | None]] = {}
    for check in checks:
        scores.setdefault(check.split, {})[check.metric] = check.archived
    return {"archived": {"status": row["status"], "cycle": row["cycle"], "sample_index": row["sample_index"],
                         "program_hash": row["program_hash"], "scores": scores},
            "reproduced": reproduced(result, row),
            "differences": [c.__dict__ for c in checks if not c.same]}


def render(result: EvalResult, cfg: Config, console: Console) -> None:
    colour = "green" if result.status == "ok" else "red"
    console.print(f"status: [{colour}]{result.status}[/]  {result.message}")
    if result.traceback:
        console.print(result.traceback.rstrip(), style="dim", markup=False, highlight=False)
    table = Table(title=f"scores ({result.data_version}, isolation: {result.isolation})")
    if cfg.data.resolved_task == "trading":
        trading_rows(result, table)
    else:
        numerai_rows(result, table)
    if table.row_count:
        console.print(table)
    reward = compute_reward(result, cfg.reward)
    if reward is not None:
        console.print(describe_reward(reward, cfg.reward))
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items() if not k.startswith("child/"))
    console.print(f"time: {timings}", style="dim")


def numerai_rows(result: EvalResult, table: Table) -> None:
    for column in ("split", "eras", "mean corr", "std", "Sharpe", "max drawdown", "FN corr", "corr w/ default"):
        table.add_column(column, justify="right")
    for name in ("cv", "validation", "test"):
        m = getattr(result, name)
        if m is None:
            continue
        table.add_row(name, str(m.n_eras), *(fmt(x) for x in (m.mean_corr, m.std_corr, m.sharpe, m.max_drawdown,
                                                             m.feature_neutral_corr, m.baseline_corr)))


TRADING_STATS = ("sharpe", "total_return", "max_drawdown", "turnover", "hit_rate")


def backtest_table(result: EvalResult) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per split, the strategy's statistics beside buy-and-hold's (trading task)."""
    out = {}
    for name in ("cv", "validation", "test"):
        m = getattr(result, name)
        if m is not None:
            out[name] = {"strategy": {k: getattr(m, k) for k in TRADING_STATS},
                         "buy_and_hold": {k: getattr(m, f"bh_{k}") for k in TRADING_STATS}}
    return out


def trading_rows(result: EvalResult, table: Table) -> None:
    """Strategy and buy-and-hold, one row each per split (Sharpe annualized; return net of costs)."""
    for column in ("split", "who", "periods", "Sharpe", "return", "max DD", "turn.", "hit"):
        table.add_column(column, justify="right")
    for name, sides in backtest_table(result).items():
        n = str(getattr(result, name).n_eras)
        for side, label in (("strategy", "strategy"), ("buy_and_hold", "buy&hold")):
            s = sides[side]
            table.add_row(name if side == "strategy" else "", label, n, fmt(s["sharpe"], 2), pct(s["total_return"]),
                          pct(s["max_drawdown"]), fmt(s["turnover"], 3), pct(s["hit_rate"]))


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=args.json)
    try:
        cfg = build_config(args)
        if args.print_default:
            print(default_program_source(cfg.env.pipeline, cfg.data.resolved_task))
            return 0
        program, row = read_program(args, cfg)
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
        return 2
    try:
        if args.live:
            return live_predictions(program, cfg, args, console)
        own_data = any(o.lstrip("+").startswith("data.") for o in args.set)  # other data on purpose
        version = None if not args.run or own_data else row["data_version"] if row else run_data_version(args.run)
        result = evaluate(program, cfg, None if args.json else console, version)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    if args.json:
        out = result.to_dict()
        out["task"] = cfg.data.resolved_task
        if cfg.data.resolved_task == "trading":
            out["backtest"] = backtest_table(result)
        reward = compute_reward(result, cfg.reward)
        out["reward"] = None if reward is None else {"reward": reward.reward, **reward.terms}
        if row is not None:
            out.update(archived_json(result, row))
        print(json.dumps(out, allow_nan=False, default=str))
    else:
        render(result, cfg, console)
        if row is not None:
            archived_table(result, row, console)
    return 3 if result.status == "infra_error" else 0


if __name__ == "__main__":
    sys.exit(main())
