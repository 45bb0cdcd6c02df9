"""The environment as an MCP server: tools that mirror the six-step pipeline.

    python -m aiforml.env.server --data synthetic                            # stdio
    python -m aiforml.env.server --data synthetic --transport http --port 8765  # http://127.0.0.1:8765/mcp
    python -m aiforml.env.server --data synthetic --set env.pipeline.n_estimators=30
    python -m aiforml.env.server --data synthetic --show-test                # a person's session: test scores too

Tools: ``describe_data``, ``get_pipeline``, ``set_override(step, code)``,
``clear_override(step)``, ``run_pipeline()`` and the one-shot ``evaluate_program(code)``,
each with a typed output schema (``models.py``). Resources ``data://schema``,
``pipeline://spec`` and ``pipeline://default-program``; the prompt ``task_instructions``.
A locked or unknown step is a tool error; a failing program is a normal result with a
status. Runs report progress; a cancelled or timed-out call kills its sandbox. One server
holds one episode (the 2026 protocol has no sessions): over HTTP every client shares its
overrides, and evaluations run one at a time.

Sealed-test scores are withheld unless the server is started with ``--show-test``
(``env.server.show_test``): an agent sees cross-validation and validation only, so test
eras stay out of every reward, prompt and selection decision.

Responsible for: the MCP surface and the command line. Not responsible for episode state
and cancellation (``session.py``) or evaluation itself (``aiforml.pipeline``).
"""

from __future__ import annotations

import argparse
import json
import sys

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from aiforml.compose import data_overrides, load_config
from aiforml.data import load_dataset, split_dataset
from aiforml.env.models import DataSchema, EvaluationOutput, OverrideState, PipelineSpec
from aiforml.env.session import EnvSession
from aiforml.policy.prompt import render_prompt
from aiforml.policy.schema import ColumnSchema
from aiforml.program import EvalResult, Program

INSTRUCTIONS = (
    "An environment for writing machine-learning pipelines for Numerai-style tournament data, "
    "or for trading a price series (describe_data says which task). "
    "Read describe_data (columns, groups, targets, eras) and get_pipeline (the six steps; which "
    "are locked; signature and default source of each overridable one). Then either "
    "set_override(step, code) per step and run_pipeline(), or evaluate_program(code) with a "
    "whole program. Results carry a status and scores (per-era corr, or the strategy's backtest beside "
    "buy-and-hold); validation Sharpe decides the reward."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
RUNS_CODE = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


def build_server(session: EnvSession, name: str = "aiforml-env") -> MCPServer:
    """An MCP server over one episode ``session`` (one server per episode or actor)."""
    server = MCPServer(name, instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool(annotations=READ_ONLY)
    def describe_data() -> DataSchema:
        """The data schema: the task, feature columns, sets and groups (or assets and dates), targets, eras per split."""
        return session.data_schema()

    @server.tool(annotations=READ_ONLY)
    def get_pipeline() -> PipelineSpec:
        """The six steps in order: locked or not, signature, contract, default source, current override."""
        return session.pipeline_spec()

    @server.tool()
    def set_override(step: str, code: str) -> OverrideState:
        """Replace one overridable step (create_target, create_features, define_model, define_cv)
        by `code`, which must define `def <step>(...)`. Locked steps are refused."""
        try:
            return session.set_override(step, code)
        except ValueError as exc:
            raise ToolError(str(exc)) from exc

    @server.tool()
    def clear_override(step: str) -> OverrideState:
        """Drop the override of one step: it goes back to its default source."""
        try:
            return session.clear_override(step)
        except ValueError as exc:
            raise ToolError(str(exc)) from exc

    @server.tool(annotations=RUNS_CODE)
    async def run_pipeline(ctx: Context) -> EvaluationOutput:
        """Run the pipeline with the current overrides in the sandbox; returns status and scores."""
        return await _evaluate(session, session.program(), ctx)

    @server.tool(annotations=RUNS_CODE)
    async def evaluate_program(code: str, ctx: Context) -> EvaluationOutput:
        """Evaluate a whole program (source defining some of the overridable steps) in one call,
        independently of the overrides set in this episode."""
        return await _evaluate(session, Program(code), ctx)

    _add_resources(server, session)
    return server


async def _evaluate(session: EnvSession, program: Program, ctx: Context) -> EvaluationOutput:
    async def report(fraction: float, stage: str) -> None:
        await ctx.report_progress(fraction, 1.0, stage)

    try:
        result = await session.evaluate(program, report)
    except (RuntimeError, OSError) as exc:  # the environment failed, not the program
        result = EvalResult(status="infra_error", message=f"{type(exc).__name__}: {exc}",
                            program_hash=program.hash)
    return session.output(result)


def _add_resources(server: MCPServer, session: EnvSession) -> None:
    @server.resource("data://schema", mime_type="application/json")
    def data_schema() -> str:
        """The data schema (same as the describe_data tool)."""
        return session.data_schema().model_dump_json(indent=1)

    @server.resource("pipeline://spec", mime_type="application/json")
    def pipeline_spec() -> str:
        """The pipeline spec (same as the get_pipeline tool)."""
        return session.pipeline_spec().model_dump_json(indent=1)

    @server.resource("pipeline://default-program", mime_type="text/x-python")
    def default_program() -> str:
        """The default program: every overridable step at its default, as one file."""
        return "\n\n".join(session.evaluator.defaults.values())

    @server.prompt()
    def task_instructions() -> str:
        """The task: what to write, the step signatures, the data schema, the rules."""
        return render_instructions(session)


def render_instructions(session: EnvSession) -> str:
    """The policy's own prompt text, followed by the rules and how to use the tools."""
    spec = session.pipeline_spec()
    rules = "\n".join(f"- {rule}" for rule in spec.rules)
    return (f"{render_prompt(ColumnSchema.from_dataset(session.dataset))}\nRules:\n{rules}\n"
            f"Allowed modules: {', '.join(spec.allowed_modules)}.\n\n{INSTRUCTIONS}\n")


# --- command line -----------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m aiforml.env.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="synthetic",
                        help="synthetic (default), synthetic_realistic, sp500, synthetic_prices, a folder of "
                             "Numerai parquet files, or an OHLCV CSV/parquet file or folder (trading)")
    parser.add_argument("--task", choices=("numerai", "trading"), default=None,
                        help="the task of a --data path (default: inferred from the files)")
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default=None, help="http: bind address (default env.server.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="http: port (default env.server.port)")
    parser.add_argument("--show-test", action="store_true", help="also return sealed-test scores (people only)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, as on launch.py's command line (repeatable)")
    return parser.parse_args(argv)


def config_overrides(args: argparse.Namespace) -> list[str]:
    overrides = data_overrides(args.data, args.task) + list(args.set)
    if args.show_test:
        overrides.append("env.server.show_test=true")
    if args.host is not None:
        overrides.append(f"env.server.host={json.dumps(args.host)}")
    if args.port is not None:
        overrides.append(f"env.server.port={args.port}")
    return overrides


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(config_overrides(args))
        dataset = load_dataset(cfg.data)
        split = split_dataset(dataset, cfg.data)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    session = EnvSession(cfg, dataset, split)
    server = build_server(session)
    try:
        if args.transport == "stdio":
            server.run()
        else:
            host, port = cfg.env.server.host, cfg.env.server.port
            print(f"serving MCP on http://{host}:{port}/mcp", file=sys.stderr)
            server.run("streamable-http", host=host, port=port)
    finally:
        session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
