"""Score one pipeline file by hand.

    python -m aiforml.evaluate my_pipeline.py                 # synthetic data, table output
    python -m aiforml.evaluate my_pipeline.py --json          # one JSON object, for scripts
    python -m aiforml.evaluate --default                      # the default program (the baseline)
    python -m aiforml.evaluate my_pipeline.py --data /path/to/numerai   # Numerai parquet folder
    python -m aiforml.evaluate my_pipeline.py --set data.embargo_eras=8 --set env.sandbox.wall_s=60
    python -m aiforml.evaluate --print-default > my_pipeline.py   # start from the defaults

The program runs in the sandbox exactly as in training; the table shows cross-validation,
validation and sealed-test scores, and the reward the design's weights would give. Exit
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

from aiforml.compose import load_config
from aiforml.config import Config
from aiforml.program import EvalResult, Program
from aiforml.reward import compute_reward

DATA_CHOICES = {"synthetic": "data=synthetic", "synthetic_realistic": "data=synthetic_realistic"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m aiforml.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("program", nargs="?", help="Python file defining some of the overridable steps")
    parser.add_argument("--default", action="store_true", help="evaluate the default program")
    parser.add_argument("--print-default", action="store_true", help="print the default program and exit")
    parser.add_argument("--data", default="synthetic",
                        help="synthetic (default), synthetic_realistic, or a folder of Numerai parquet files")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, as on launch.py's command line (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> Config:
    overrides = []
    if args.data in DATA_CHOICES:
        overrides.append(DATA_CHOICES[args.data])
    else:
        path = Path(args.data).expanduser().resolve()
        if not path.exists():
            raise ValueError(f"--data: no such folder {path} (or use one of {sorted(DATA_CHOICES)})")
        overrides += ["data=numerai", f"data.path={path}"]
    return load_config(overrides + list(args.set))


def read_program(args: argparse.Namespace, cfg: Config) -> Program:
    from aiforml.pipeline.defaults import default_program_source

    if args.default:
        return Program(default_program_source(cfg.env.pipeline))
    if not args.program:
        raise ValueError("give a program file to evaluate, or --default for the default program")
    path = Path(args.program)
    if not path.is_file():
        raise ValueError(f"no such program file: {path.resolve()}")
    return Program(path.read_text())


def evaluate(program: Program, cfg: Config, console: Console | None) -> EvalResult:
    """Load data, evaluate one program with a progress display, and return the result."""
    from aiforml.data import load_dataset, split_dataset
    from aiforml.pipeline.evaluate import Evaluator

    status = console.status("loading data") if console else None
    if status:
        status.start()
    try:
        dataset = load_dataset(cfg.data)
        split = split_dataset(dataset, cfg.data)
        evaluator = Evaluator(dataset, split, cfg.env)
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
    for column in ("split", "eras", "mean corr", "std", "Sharpe", "max drawdown", "FN corr", "corr w/ default"):
        table.add_column(column, justify="right")
    for name in ("cv", "validation", "test"):
        m = getattr(result, name)
        if m is None:
            continue
        table.add_row(name, str(m.n_eras), *(fmt(x) for x in (m.mean_corr, m.std_corr, m.sharpe, m.max_drawdown,
                                                             m.feature_neutral_corr, m.baseline_corr)))
    if table.row_count:
        console.print(table)
    reward = compute_reward(result, cfg.reward)
    if reward is not None:
        console.print(f"reward {reward.reward:+.4f} = {cfg.reward.w_compile} * compile {reward.compile:+.0f} "
                      f"+ {cfg.reward.w_perf} * performance {reward.performance:+.4f}"
                      + (f" + {cfg.reward.w_unique} * uniqueness {reward.uniqueness:.4f}" if cfg.reward.w_unique else ""))
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items() if not k.startswith("child/"))
    console.print(f"time: {timings}", style="dim")


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=args.json)
    try:
        cfg = build_config(args)
        if args.print_default:
            from aiforml.pipeline.defaults import default_program_source

            print(default_program_source(cfg.env.pipeline))
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
        reward = compute_reward(result, cfg.reward)
        out["reward"] = None if reward is None else reward.__dict__
        print(json.dumps(out, allow_nan=False, default=str))
    else:
        render(result, cfg, console)
    return 3 if result.status == "infra_error" else 0


if __name__ == "__main__":
    sys.exit(main())
