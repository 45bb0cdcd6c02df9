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
from dataclasses import dataclass, field
from typing import Any, Literal

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


@dataclass
class SplitMetrics:
    """Scores of one split's predictions against its official target, per era aggregated.

    Numerai task: the per-era corr statistics. Trading task: ``sharpe`` is the strategy's
    annualized Sharpe, ``max_drawdown`` its largest fall of equity (a fraction), ``n_eras``
    the periods traded, the ``total_return``/``turnover``/``hit_rate`` fields are set and
    ``bh_*`` hold the same statistics of buy-and-hold, the benchmark.
    """

    mean_corr: float | None = None
    std_corr: float | None = None
    sharpe: float | None = None
    max_drawdown: float | None = None
    feature_neutral_corr: float | None = None
    baseline_corr: float | None = None  # mean per-era corr with the default program's preds
    baseline_contribution: float | None = None  # mean per-era contribution beyond the default's preds (BMC)
    n_eras: int = 0
    per_era_corr: list[float | None] = field(default_factory=list)  # None where an era scored NaN
    total_return: float | None = None  # trading: compounded return net of costs
    turnover: float | None = None  # trading: mean |position change| per period and asset
    hit_rate: float | None = None  # trading: share of held positions that gained
    bh_sharpe: float | None = None  # trading: buy-and-hold's annualized Sharpe
    bh_total_return: float | None = None
    bh_max_drawdown: float | None = None
    bh_turnover: float | None = None
    bh_hit_rate: float | None = None


@dataclass
class EvalResult:
    """The outcome of evaluating one program. Every field is plain data (JSON-able)."""

    status: Status
    message: str = ""
    traceback: str = ""
    program_hash: str = ""
    data_version: str = ""
    steps_overridden: list[str] = field(default_factory=list)
    cv: SplitMetrics | None = None
    validation: SplitMetrics | None = None
    test: SplitMetrics | None = None
    timings: dict[str, float] = field(default_factory=dict)
    stdout: str = ""
    isolation: str = ""
    stage: str = ""  # the last of STAGES the trusted side validated ("" none)
    # Predictions stay in memory only (never serialized into JSON by default).
    predictions: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ran(self) -> bool:
        """True when the program ran to the end and produced valid predictions."""
        return self.status in ("ok", "leakage_suspected")

    def to_dict(self, include_test: bool = True) -> dict[str, Any]:
        from dataclasses import asdict

        out = asdict(self)
        out.pop("predictions")
        if not include_test:
            out.pop("test")
        return out
