"""One episode of the environment: the step overrides, and a cancellable evaluation.

Responsible for: the state an MCP client builds up in an episode (which overridable steps
have which source), refusing overrides of locked or unknown steps, the pipeline spec and
data schema as typed records, and running one evaluation in a worker thread so that a
client's cancel or timeout kills the sandboxed child (``Sandbox.kill_all`` until the
evaluation has returned: no orphans, no overlap with the next run). Progress stages of
the evaluator are forwarded to an async reporter.

Not responsible for: the MCP protocol (``server.py``), scoring (``aiforml.pipeline``),
or parallelism and caching across programs (``pool.py``). One session per server; one
evaluation at a time per session.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread

from aiforml.config import Config
from aiforml.data.dataset import Dataset, EraSplit
from aiforml.env.models import (
    DataSchema,
    EvaluationOutput,
    OverrideState,
    PipelineSpec,
    StepSpec,
    to_output,
)
from aiforml.pipeline.checks import ALLOWED_MODULES
from aiforml.pipeline.defaults import OPTIONAL_STEPS, SIGNATURES
from aiforml.pipeline.evaluator import build_evaluator
from aiforml.program import (
    LOCKED_STEPS,
    MAX_SOURCE_CHARS,
    OVERRIDABLE_STEPS,
    STEPS,
    EvalResult,
    Program,
)
from aiforml.reward import compute_reward

Reporter = Callable[[float, str], Awaitable[None]]  # (fraction done, stage) -> None
KILL_WAIT_S = 30.0  # after a cancel, how long to keep killing before giving up on the worker

CONTRACTS: dict[str, str] = {
    "load_data": "Locked. Training rows with era, features and every target; validation and "
                 "test rows with era and features only (their targets never reach the program).",
    "create_target": "df: training rows (era, features, every target column). Return one finite "
                     "float per row: the target the model is trained on. Scoring always uses 'target'.",
    "create_features": "df: all rows (training, validation, test) with era and the int8 features, "
                       "no targets. Return a numeric DataFrame with one row per input row, same order.",
    "define_model": "Return an unfitted object with fit(X, y) and predict(X).",
    "define_cv": "eras: the era of each training row. Return (train_idx, test_idx) integer arrays; "
                 "folds share no era and train eras stay more than `embargo` eras from test eras.",
    "run_optimization": "Locked. Fits per CV fold, fits on all training eras, predicts validation "
                        "and test; trusted code checks folds and predictions and scores per era.",
}
RULES = [
    "A program is Python source defining some of create_target, create_features, define_model, "
    "define_cv; steps it leaves out use the defaults.",
    "Import inside each function; only the allowed modules may be imported.",
    "The code runs in a sandbox without network or files; eval, exec, open and dunder "
    "attribute tricks are refused before it runs.",
    "Validation eras decide the reward; sealed test eras are never shown to the policy.",
    "A mean per-era corr above the leakage band is flagged leakage_suspected.",
]
# The trading task (a price series): same steps, different data and scoring.
TRADING_CONTRACTS: dict[str, str] = {
    **CONTRACTS,
    "load_data": "Locked. Every row in time order (era = period index, date, asset, open, high, low, "
                 "close, volume); training rows also carry 'target', the forward return over the "
                 "horizon; later rows never do.",
    "create_target": "df: training rows (era, date, asset, OHLCV, target). Return one finite float per "
                     "row: what the model is trained on (e.g. the sign of target). Scoring always uses "
                     "the realized returns.",
    "create_features": "df: all rows in time order (era, date, asset, OHLCV), no targets. Return a numeric "
                       "DataFrame, one row per input row, same order, using only the current and earlier "
                       "rows of each asset (group by 'asset'); a look-ahead guard recomputes the features "
                       "on data cut at several points and flags any change as leakage_suspected.",
    "define_cv": "eras: the period of each training row. Return (train_idx, test_idx) integer arrays; "
                 "walk forward: train periods before test periods, more than `embargo` periods apart.",
    "run_optimization": "Locked. Fits per CV fold, fits on all training periods, predicts every later row; "
                        "trusted code turns predictions into positions and backtests them net of costs.",
}
TRADING_RULES = [
    RULES[0], RULES[1], RULES[2],
    "Predictions become positions by the configured rule (sign: long when positive, short when "
    "negative), held one period, net of transaction costs per unit traded; the strategy's "
    "annualized Sharpe, total return, max drawdown, turnover and hit rate are shown beside buy-and-hold's.",
    "Validation periods decide the reward; sealed test periods are never shown to the policy.",
    "Features must not use the future: a look-ahead guard and a Sharpe band flag leakage_suspected.",
]


class EvaluationCancelled(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside the worker thread when the client cancelled the evaluation."""


class EnvSession:
    """The overrides of one episode over one Evaluator."""

    def __init__(self, cfg: Config, dataset: Dataset, split: EraSplit,
                 *, baseline_dir: Path | None = None, work_root: Path | None = None) -> None:
        self.cfg, self.dataset, self.split = cfg, dataset, split
        self.evaluator = build_evaluator(dataset, split, cfg.env, work_root=work_root, cache_dir=baseline_dir)
        self.overrides: dict[str, str] = {}
        # (program hash, validation predictions) of the last evaluation: the trusted caller
        # in this process (EnvActor) may take them; no MCP tool ever returns them.
        self.last_validation: tuple[str, Any] | None = None
        self._lock = threading.Lock()  # one evaluation at a time on this Evaluator

    # --- episode state ----------------------------------------------------------------
    def reset(self) -> None:
        """Forget every override: the next episode starts from the default program."""
        self.overrides.clear()

    def set_override(self, step: str, code: str) -> OverrideState:
        """Set the source of one overridable step; ValueError names what is wrong."""
        check_step(step)
        if len(code) > MAX_SOURCE_CHARS:
            raise ValueError(f"code is {len(code)} characters; the limit is {MAX_SOURCE_CHARS}")
        note = ""
        try:
            ast.parse(code)
        except (SyntaxError, ValueError) as exc:
            note = f"the code does not parse ({exc}); run_pipeline will report syntax_error"
        else:
            defined = Program(code).defined_steps()
            if step not in defined:
                raise ValueError(f"the code for step '{step}' must define a top-level `def {step}(...)`")
            others = [s for s in defined if s != step]
            if others:
                raise ValueError(f"the code for step '{step}' also defines {others}; "
                                 "set each step with its own set_override call")
        self.overrides[step] = code
        return OverrideState(step=step, action="set", overridden_steps=self.overridden(), note=note)

    def clear_override(self, step: str) -> OverrideState:
        check_step(step)
        had = self.overrides.pop(step, None) is not None
        note = "" if had else f"step '{step}' had no override; it already uses its default"
        return OverrideState(step=step, action="cleared", overridden_steps=self.overridden(), note=note)

    def overridden(self) -> list[str]:
        return [s for s in STEPS if s in self.overrides]

    def program(self) -> Program:
        """The current overrides as one program (no override: the default program)."""
        return Program.from_steps(self.overrides)

    # --- descriptions -----------------------------------------------------------------
    def pipeline_spec(self) -> PipelineSpec:
        defaults = self.evaluator.defaults
        trading = self.evaluator.task.name == "trading"
        contracts = TRADING_CONTRACTS if trading else CONTRACTS
        steps = [
            StepSpec(index=i + 1, name=name, locked=name in LOCKED_STEPS,
                     optional=name in OPTIONAL_STEPS, signature=SIGNATURES.get(name),
                     contract=contracts[name], default_source=defaults.get(name),
                     override=self.overrides.get(name))
            for i, name in enumerate(STEPS)
        ]  # fmt: skip
        return PipelineSpec(steps=steps, allowed_modules=sorted(ALLOWED_MODULES),
                            rules=TRADING_RULES if trading else RULES)

    def data_schema(self) -> DataSchema:
        info = self.dataset.describe(self.split)
        split = info.pop("split")
        embargo = split.pop("embargo_eras")
        fields = set(DataSchema.model_fields) - {"embargo_eras", "splits"}
        return DataSchema(**{k: v for k, v in info.items() if k in fields}, embargo_eras=embargo, splits=split)

    # --- evaluation -------------------------------------------------------------------
    def output(self, result: EvalResult) -> EvaluationOutput:
        """The tool output of a result under this server's settings."""
        reward = compute_reward(result, self.cfg.reward)
        server = self.cfg.env.server
        return to_output(result, show_test=server.show_test, output_chars=server.output_chars,
                         reward=None if reward is None else reward.reward)

    async def evaluate(self, program: Program, report: Reporter | None = None) -> EvalResult:
        """Evaluate ``program`` in a worker thread; cancelling this call kills its sandbox."""
        cancelled, finished = threading.Event(), threading.Event()

        def progress(stage: str, fraction: float) -> None:
            if cancelled.is_set():
                raise EvaluationCancelled(stage)
            if report is not None:
                try:
                    anyio.from_thread.run(report, fraction, stage)
                except (RuntimeError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass  # progress is best effort: the client may be gone

        def work() -> EvalResult:
            try:
                with self._lock:
                    result = self.evaluator.evaluate(program, progress=progress)
                    self.last_validation = (program.hash, self.evaluator.validation_predictions(result))
                    return result
            finally:
                finished.set()

        try:
            return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._kill_until, finished)
            raise

    def _kill_until(self, finished: threading.Event) -> None:
        """Kill the session's sandbox children until the cancelled evaluation has returned."""
        for _ in range(int(KILL_WAIT_S / 0.05)):
            self.evaluator.sandbox.kill_all()
            if finished.wait(0.05):
                return

    def close(self) -> None:
        self.evaluator.close()


def check_step(step: str) -> None:
    if step in LOCKED_STEPS:
        raise ValueError(f"step '{step}' is locked: it runs trusted code and cannot be overridden; "
                         f"overridable steps are {list(OVERRIDABLE_STEPS)}")
    if step not in OVERRIDABLE_STEPS:
        raise ValueError(f"unknown step '{step}'; the steps are {list(STEPS)}, "
                         f"of which {list(OVERRIDABLE_STEPS)} can be overridden")
