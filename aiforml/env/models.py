"""Typed outputs of the environment's MCP tools.

Responsible for: the records that give every tool an output schema (data schema, pipeline
spec, override state as pydantic models; the evaluation result is
:class:`aiforml.program.EvalResult` itself, extended by what the server adds), capping of
captured output, withholding of sealed-test scores, and reading a reply back into an
``EvalResult``: one conversion each way. Scores are NaN-free when made (``SplitMetrics``),
since a NaN in a float field breaks the call on the client side. Not responsible for
evaluating anything.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter

from aiforml.program import EvalResult, finite


@dataclass
class EvaluationOutput(EvalResult):
    """The outcome of one evaluation: the EvalResult record itself, plus what the server adds.

    A failing program is a status here, never a tool error. The driver reads a reply back
    as an ``EvalResult`` (:func:`read_result`): the added fields are the server's view
    and are dropped, the reward included (the driver computes its own).
    """

    ran: Annotated[bool, Field(description="true when the program ran to the end with valid predictions")] = False
    test_withheld: Annotated[bool, Field(description="true when sealed-test scores were withheld")] = True
    reward: Annotated[float | None, Field(description="the configured reward (validation only); None for "
                                                      "infra_error")] = None


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


def to_output(result: EvalResult, *, show_test: bool, output_chars: int,
              reward: float | None = None) -> EvaluationOutput:
    """The tool output of ``result``: captured text capped, sealed-test scores only when ``show_test``."""
    data = {f.name: getattr(result, f.name) for f in fields(EvalResult)}
    data.update(message=cap(result.message, output_chars), traceback=cap(result.traceback, output_chars),
                stdout=cap(result.stdout, output_chars), test=result.test if show_test else None,
                timings={k: float(v) for k, v in result.timings.items() if finite(v) is not None})
    return EvaluationOutput(**data, ran=result.ran, test_withheld=not show_test, reward=finite(reward))


_RESULT = TypeAdapter(EvalResult)


def read_result(data: dict[str, Any]) -> EvalResult:
    """The EvalResult of a tool reply's structured content (the one conversion on the way back)."""
    return _RESULT.validate_python(data)
