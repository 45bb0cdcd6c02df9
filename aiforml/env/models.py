"""Typed outputs of the environment's MCP tools, and their conversion to and from records.

Responsible for: the pydantic models that give every tool an output schema (data schema,
pipeline spec, override state, evaluation result), NaN-safe conversion of an
:class:`aiforml.program.EvalResult` into an :class:`EvaluationOutput` (every non-finite
float becomes ``None``, since a NaN in a float field breaks the call on the client side),
capping of captured output, withholding of sealed-test scores, and the way back from an
output to an ``EvalResult`` for the pool. Not responsible for evaluating anything.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, Field

from aiforml.program import EvalResult, SplitMetrics, Status, finite


class SplitScores(BaseModel):
    """Scores of one split: per-era corr (Numerai task) or the backtest (trading task)."""

    mean_corr: float | None = Field(None, description="mean per-era Numerai corr")
    std_corr: float | None = Field(None, description="std of per-era corr")
    sharpe: float | None = Field(None, description="mean / std of per-era corr; trading: the strategy's annualized Sharpe")
    max_drawdown: float | None = Field(None, description="largest fall of the cumulative per-era corr; trading: of equity, a fraction")
    feature_neutral_corr: float | None = Field(None, description="mean per-era corr after neutralizing to the features")
    baseline_corr: float | None = Field(None, description="mean per-era corr with the default program's predictions")
    baseline_contribution: float | None = Field(None, description="mean per-era contribution beyond the default "
                                                "program's predictions (BMC): being right where the default is not")
    n_eras: int = 0
    per_era_corr: list[float | None] = Field(default_factory=list, description="None where an era scored NaN")
    total_return: float | None = Field(None, description="trading: compounded return net of costs")
    turnover: float | None = Field(None, description="trading: mean |position change| per period and asset")
    hit_rate: float | None = Field(None, description="trading: share of held positions that gained")
    bh_sharpe: float | None = Field(None, description="trading: buy-and-hold's annualized Sharpe")
    bh_total_return: float | None = Field(None, description="trading: buy-and-hold's total return")
    bh_max_drawdown: float | None = Field(None, description="trading: buy-and-hold's max drawdown")
    bh_turnover: float | None = None
    bh_hit_rate: float | None = None


class EvaluationOutput(BaseModel):
    """The outcome of one evaluation. A failing program is a status here, never a tool error."""

    status: Status = Field(description="ok, a program failure (syntax_error, runtime_error, timeout, ...) or infra_error")
    ran: bool = Field(description="true when the program ran to the end with valid predictions")
    message: str = ""
    traceback: str = Field("", description="the tail of the program's traceback, capped")
    stdout: str = Field("", description="the tail of what the program printed, capped")
    program_hash: str = ""
    data_version: str = ""
    steps_overridden: list[str] = Field(default_factory=list)
    cv: SplitScores | None = Field(None, description="cross-validation folds of the training eras: advisory, "
                                   "from the program's own out-of-fold predictions; never a reward or a ranking")
    validation: SplitScores | None = Field(None, description="validation eras: what the reward uses")
    test: SplitScores | None = Field(None, description="sealed test eras: only when the server shows them")
    test_withheld: bool = Field(True, description="true when sealed-test scores were withheld")
    reward: float | None = Field(None, description="the configured reward (validation only); None for infra_error")
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per stage")
    isolation: str = ""
    stage: str = Field("", description="how far a failed run got, as the evaluator validated it: parsed "
                       "(static checks passed), features (feature matrix checked, look-ahead guard passed), "
                       "predict (a first streamed block predicted)")


class StepSpec(BaseModel):
    """One of the six pipeline steps."""

    index: int
    name: str
    locked: bool = Field(description="locked steps run trusted code and cannot be overridden")
    optional: bool = Field(description="an overridable step that most programs keep at its default")
    signature: str | None = None
    contract: str
    default_source: str | None = None
    override: str | None = Field(None, description="the source currently set for this step, if any")


class PipelineSpec(BaseModel):
    """The six steps in order, what each must do, and the rules every program follows."""

    steps: list[StepSpec]
    allowed_modules: list[str]
    rules: list[str]


class OverrideState(BaseModel):
    """The episode's overrides after a set_override / clear_override call."""

    step: str
    action: str = Field(description="'set' or 'cleared'")
    overridden_steps: list[str] = Field(description="steps that currently have an override, in pipeline order")
    note: str = ""


class SplitInfo(BaseModel):
    n_eras: int
    era_range: list[int]
    n_rows: int
    date_range: list[str] = Field(default_factory=list, description="trading: first and last date")


class DataSchema(BaseModel):
    """What a program must know about the data to name only columns that exist.

    The Numerai task fills the feature sets/groups and target values; the trading task the
    assets, dates, horizon and the other (non-feature) columns."""

    task: str = Field("numerai", description="numerai (cross-sectional eras) or trading (price series)")
    name: str
    version: str
    n_rows: int
    n_eras: int
    era_column: str
    era_range: list[int]
    rows_per_era_mean: float
    feature_columns: list[str]
    feature_values: list[int] = Field(default_factory=list)
    feature_dtype: str
    feature_sets: dict[str, list[str]] = Field(default_factory=dict)
    feature_groups: dict[str, list[str]] = Field(default_factory=dict)
    target_columns: list[str]
    target_values: list[float] = Field(default_factory=list)
    scoring_target: str
    other_columns: dict[str, str] = Field(default_factory=dict, description="trading: date and asset")
    assets: list[str] = Field(default_factory=list, description="trading: the assets, one row each per period")
    date_range: list[str] = Field(default_factory=list, description="trading: first and last date")
    horizon: int | None = Field(None, description="trading: periods of the forward return that is the target")
    target_definition: str = ""
    target_nan_share: dict[str, float | None]
    embargo_eras: int
    splits: dict[str, SplitInfo] = Field(description="train / validation / test blocks (counts only)")


def cap(text: str, limit: int) -> str:
    """The last ``limit`` characters of ``text``, marked when something was cut."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    return f"[... {cut} characters cut]\n" + (text[-limit:] if limit else "")


def split_scores(metrics: SplitMetrics | None) -> SplitScores | None:
    if metrics is None:
        return None
    data = asdict(metrics)
    per_era = [finite(x) for x in data.pop("per_era_corr")]
    n_eras = int(data.pop("n_eras"))
    return SplitScores(**{k: finite(v) for k, v in data.items()}, n_eras=n_eras, per_era_corr=per_era)


def to_output(result: EvalResult, *, show_test: bool, output_chars: int,
              reward: float | None = None) -> EvaluationOutput:
    """The tool output of ``result``; sealed-test scores only when ``show_test``."""
    return EvaluationOutput(
        status=result.status,
        ran=result.ran,
        message=cap(result.message, output_chars),
        traceback=cap(result.traceback, output_chars),
        stdout=cap(result.stdout, output_chars),
        program_hash=result.program_hash,
        data_version=result.data_version,
        steps_overridden=list(result.steps_overridden),
        cv=split_scores(result.cv),
        validation=split_scores(result.validation),
        test=split_scores(result.test) if show_test else None,
        test_withheld=not show_test,
        reward=finite(reward),
        timings={k: v for k, v in ((k, finite(v)) for k, v in result.timings.items()) if v is not None},
        isolation=result.isolation,
        stage=result.stage,
    )


def from_output(data: dict[str, Any]) -> EvalResult:
    """An EvalResult (without predictions) from an EvaluationOutput's structured content."""
    out = EvaluationOutput.model_validate(data)

    def metrics(scores: SplitScores | None) -> SplitMetrics | None:
        return None if scores is None else SplitMetrics(**scores.model_dump())

    return EvalResult(
        status=out.status, message=out.message, traceback=out.traceback,
        program_hash=out.program_hash, data_version=out.data_version,
        steps_overridden=out.steps_overridden, cv=metrics(out.cv),
        validation=metrics(out.validation), test=metrics(out.test),
        timings=dict(out.timings), stdout=out.stdout, isolation=out.isolation, stage=out.stage,
    )  # fmt: skip
