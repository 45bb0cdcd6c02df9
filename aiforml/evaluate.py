"""Score one pipeline file by hand.

    python -m aiforml.evaluate my_pipeline.py                 # synthetic data, table output
    python -m aiforml.evaluate my_pipeline.py --json          # one JSON object, for scripts
    python -m aiforml.evaluate --default                      # the default program (the baseline)
    python -m aiforml.evaluate my_pipeline.py --data /path/to/numerai   # Numerai parquet folder
    python -m aiforml.evaluate my_pipeline.py --data sp500    # trading the daily S&P 500 (arch.data.sp500)
    python -m aiforml.evaluate my_pipeline.py --data prices.csv   # trading your OHLCV file (or --task trading)
    python -m aiforml.evaluate my_pipeline.py --set data.embargo_eras=8 --set env.sandbox.wall_s=60
    python -m aiforml.evaluate --print-default > my_pipeline.py   # start from the defaults

The program runs in the sandbox exactly as in training; the table shows cross-validation,
validation and sealed-test scores (trading: the strategy's backtest beside buy-and-hold's),
and the reward the design's weights would give. An empty program file means all defaults. Exit
status: 0 when the program was evaluated (whatever its status), 2 on bad input (no such
file, bad option or config key), 3 when the environment itself failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from aiforml.compose import data_overrides, load_config
from aiforml.config import Config
from aiforml.program import EvalResult, Program
from aiforml.reward import compute_reward
from aiforml.reward import describe as describe_reward


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m aiforml.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("program", nargs="?", help="Python file defining some of the overridable steps")
    parser.add_argument("--default", action="store_true", help="evaluate the default program")
    parser.add_argument("--print-default", action="store_true", help="print the default program and exit")
    parser.add_argument("--data", default="synthetic",
                        help="synthetic (default), synthetic_realistic, sp500, synthetic_prices, a folder of "
                             "Numerai parquet files, or an OHLCV CSV/parquet file or folder (trading)")
    parser.add_argument("--task", choices=("numerai", "trading"), default=None,
                        help="the task of a --data path (default: inferred from the files)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, as on launch.py's command line (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> Config:
    return load_config(data_overrides(args.data, args.task) + list(args.set))


def read_program(args: argparse.Namespace, cfg: Config) -> Program:
    from aiforml.pipeline.defaults import default_program_source

    if args.default:
        return Program(default_program_source(cfg.env.pipeline, cfg.data.resolved_task))
    if not args.program:
        raise ValueError("give a program file to evaluate, or --default for the default program")
    path = Path(args.program)
    if not path.is_file():
        raise ValueError(f"no such program file: {path.resolve()}")
    return Program(path.read_text())


def evaluate(program: Program, cfg: Config, console: Console | None) -> EvalResult:
    """Load data, evaluate one program with a progress display, and return the result."""
    from aiforml.data import load_dataset, split_dataset
    from aiforml.pipeline.evaluate import build_evaluator

    status = console.status("loading data") if console else None
    if status:
        status.start()
    try:
        dataset = load_dataset(cfg.data)
        split = split_dataset(dataset, cfg.data)
        evaluator = build_evaluator(dataset, split, cfg.env)
        try:
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
            from aiforml.pipeline.defaults import default_program_source

            print(default_program_source(cfg.env.pipeline, cfg.data.resolved_task))
            return 0
        program = read_program(args, cfg)
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/] {exc}", markup=True, highlight=False)
        return 2
    try:
        result = evaluate(program, cfg, None if args.json else console)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    if args.json:
        out = result.to_dict()
        out["task"] = cfg.data.resolved_task
        if cfg.data.resolved_task == "trading":
            out["backtest"] = backtest_table(result)
        reward = compute_reward(result, cfg.reward)
        out["reward"] = None if reward is None else {"reward": reward.reward, **reward.terms}
        print(json.dumps(out, allow_nan=False, default=str))
    else:
        render(result, cfg, console)
    return 3 if result.status == "infra_error" else 0


if __name__ == "__main__":
    sys.exit(main())
