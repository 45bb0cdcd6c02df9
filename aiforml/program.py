"""The records that cross every boundary: a Program, its EvalResult, and the status names.

A *program* is Python source written by a policy. It may define any of the overridable
pipeline functions (``create_target``, ``create_features``, ``define_model``,
``define_cv``); the steps it leaves out fall back to the defaults. The two locked steps
(``load_data``, ``run_optimization``) cannot be defined by a program.

This module is responsible for: the Program record and its normalized hash, turning a
model's completion (markdown with code fences) into a Program, and the EvalResult record
with its status vocabulary, and ``finite`` (a number a record may hold: finite, else None).
It is not responsible for running or scoring anything.
"""

from __future__ import annotations

import ast
import hashlib
import io
import math
import re
import tokenize
from dataclasses import asdict, dataclass, field, fields
from typing import Annotated, Any, Literal

from pydantic import Field

# The six steps of the pipeline, in order. Locked steps run trusted orchestration code.
STEPS: tuple[str, ...] = (
    "load_data",
    "create_target",
    "create_features",
    "define_model",
    "define_cv",
    "run_optimization",
)
LOCKED_STEPS: frozenset[str] = frozenset({"load_data", "run_optimization"})
OVERRIDABLE_STEPS: tuple[str, ...] = tuple(s for s in STEPS if s not in LOCKED_STEPS)

Status = Literal[
    "ok",
    "parse_error",
    "syntax_error",
    "import_error",
    "runtime_error",
    "timeout",
    "memory",
    "forbidden",
    "invalid_output",
    "leakage_suspected",
    "infra_error",
]
STATUSES: tuple[str, ...] = Status.__args__  # type: ignore[attr-defined]
# Statuses that mean the program itself failed (charged to the policy). `infra_error` is
# the environment's fault and `ok` is success; every other status is a program failure.
PROGRAM_FAILURES: frozenset[str] = frozenset(STATUSES) - {"ok", "infra_error"}

MAX_SOURCE_CHARS = 40_000
# How far a failed run got, in order, as the trusted side validated it itself (nothing the
# child reports counts): parsed: the source passed the static checks; features: the program's
# own feature matrix was read back, checked, and passed the look-ahead guard (a program that
# keeps the default step gets no such credit); predict: the first streamed block's
# predictions came back valid.
STAGES: tuple[str, ...] = ("parsed", "features", "predict")



def finite(value: float | None) -> float | None:
    """``value`` as a float when it is a finite number, else None: what records, JSON and SQL hold."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Program:
    """Python source that defines some of the overridable steps."""

    source: str

    @property
    def normalized(self) -> str:
        """Source with comments, docstring-free blank lines and trailing spaces removed.

        Two programs that differ only in comments or blank lines normalize identically,
        so the evaluation cache serves both. Unparsable source normalizes to itself.
        """
        return normalize_source(self.source)

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.normalized.encode()).hexdigest()[:16]

    def defined_steps(self) -> list[str]:
        """Top-level function names that are pipeline steps, in pipeline order."""
        try:
            tree = ast.parse(self.source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return []
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        return [s for s in STEPS if s in names]

    @classmethod
    def from_steps(cls, steps: dict[str, str]) -> Program:
        """Join per-step sources (each a full ``def``) into one program, in pipeline order."""
        unknown = set(steps) - set(STEPS)
        if unknown:
            raise ValueError(f"unknown pipeline steps {sorted(unknown)}; steps are {list(STEPS)}")
        return cls("\n\n".join(steps[s].strip() + "\n" for s in STEPS if s in steps))


def normalize_source(source: str) -> str:
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return source.strip()
    kept = [t for t in tokens if t.type != tokenize.COMMENT]
    text = tokenize.untokenize(kept)
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line.strip())


_FENCE = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def parse_completion(text: str) -> Program | None:
    """Extract a Program from a model's completion, or None when it holds no code.

    Code inside fenced blocks (```python ... ```) is joined in order; a completion without
    fences is taken whole when it parses as Python and defines at least one step.
    """
    blocks = [b.strip() for b in _FENCE.findall(text)]
    if blocks:
        program = Program("\n\n".join(blocks) + "\n")
    else:
        program = Program(text.strip() + "\n")
        if not program.defined_steps():
            return None
    if not program.source.strip():
        return None
    return program


def _doc(text: str) -> Any:
    return Field(description=text)


@dataclass
class SplitMetrics:
    """Scores of one split's predictions against its official target, per era aggregated.

    Numerai task: the per-era corr statistics. Trading task: ``sharpe`` is the strategy's
    annualized Sharpe, ``max_drawdown`` its largest fall of equity (a fraction), ``n_eras``
    the periods traded, the ``total_return``/``turnover``/``hit_rate`` fields are set and
    ``bh_*`` hold the same statistics of buy-and-hold, the benchmark. Every float is finite
    or None (a NaN becomes None when the record is made), so the record is valid JSON as it is.
    """

    mean_corr: Annotated[float | None, _doc("mean per-era Numerai corr")] = None
    std_corr: Annotated[float | None, _doc("std of per-era corr")] = None
    sharpe: Annotated[float | None, _doc("mean / std of per-era corr; trading: the strategy's annualized Sharpe")] = None
    max_drawdown: Annotated[float | None, _doc("largest fall of the cumulative per-era corr; trading: of equity, "
                                               "a fraction")] = None
    feature_neutral_corr: Annotated[float | None, _doc("mean per-era corr after neutralizing to the features")] = None
    baseline_corr: Annotated[float | None, _doc("mean per-era corr with the default program's predictions")] = None
    baseline_contribution: Annotated[float | None, _doc(
        "mean per-era contribution beyond the default program's predictions (BMC): being right where the "
        "default is not")] = None
    n_eras: int = 0
    per_era_corr: Annotated[list[float | None], _doc("None where an era scored NaN")] = field(default_factory=list)
    total_return: Annotated[float | None, _doc("trading: compounded return net of costs")] = None
    turnover: Annotated[float | None, _doc("trading: mean |position change| per period and asset")] = None
    hit_rate: Annotated[float | None, _doc("trading: share of held positions that gained")] = None
    bh_sharpe: Annotated[float | None, _doc("trading: buy-and-hold's annualized Sharpe")] = None
    bh_total_return: Annotated[float | None, _doc("trading: buy-and-hold's total return")] = None
    bh_max_drawdown: Annotated[float | None, _doc("trading: buy-and-hold's max drawdown")] = None
    bh_turnover: Annotated[float | None, _doc("trading: buy-and-hold's turnover")] = None
    bh_hit_rate: Annotated[float | None, _doc("trading: buy-and-hold's hit rate")] = None

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name not in ("n_eras", "per_era_corr"):
                setattr(self, f.name, finite(getattr(self, f.name)))
        self.n_eras = int(self.n_eras)
        self.per_era_corr = [finite(x) for x in self.per_era_corr]


@dataclass
class EvalResult:
    """The outcome of evaluating one program: plain data, JSON as it is.

    The same record is the MCP tool's structured output (``aiforml.env.models``), read back
    into this class once, by the actor. ``predictions`` is not a field: the arrays stay in
    memory beside the record (never in a schema, a tool reply, JSON or the archive).
    """

    status: Annotated[Status, _doc("ok, a program failure (syntax_error, runtime_error, timeout, ...) "
                                   "or infra_error")]
    message: str = ""
    traceback: Annotated[str, _doc("the tail of the program's traceback, capped")] = ""
    program_hash: str = ""
    data_version: str = ""
    steps_overridden: list[str] = field(default_factory=list)
    cv: Annotated[SplitMetrics | None, _doc(
        "cross-validation folds of the training eras: advisory, from the program's own out-of-fold "
        "predictions; never a reward or a ranking")] = None
    validation: Annotated[SplitMetrics | None, _doc("validation eras: what the reward uses")] = None
    test: Annotated[SplitMetrics | None, _doc("sealed test eras: only when the server shows them")] = None
    timings: Annotated[dict[str, float], _doc("seconds per stage")] = field(default_factory=dict)
    stdout: Annotated[str, _doc("the tail of what the program printed, capped")] = ""
    isolation: str = ""
    stage: Annotated[str, _doc(
        "how far a failed run got, as the evaluator validated it: parsed (static checks passed), features "
        "(feature matrix checked, look-ahead guard passed), predict (a first streamed block predicted)")] = ""

    def __post_init__(self) -> None:
        # in memory only: "eval" (validation + test), "oof", or "validation" from the pool
        self.predictions: dict[str, Any] = {}

    @property
    def ran(self) -> bool:
        """True when the program ran to the end and produced valid predictions."""
        return self.status in ("ok", "leakage_suspected")

    def to_dict(self, include_test: bool = True) -> dict[str, Any]:
        out = asdict(self)
        if not include_test:
            out.pop("test")
        return out
