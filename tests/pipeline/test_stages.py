"""The stage a run reached, as the trusted side validated it (for the shaped compile score),
and the validation predictions the evaluator hands to trusted callers."""

from __future__ import annotations

import numpy as np
import pytest

from aiforml.pipeline.defaults import default_program_source, default_sources
from aiforml.program import Program


def with_default(**steps: str) -> Program:
    sources = default_sources()
    sources.update(steps)
    return Program("\n\n".join(sources.values()))


@pytest.mark.parametrize(("program", "status", "stage"), [
    (with_default(create_features="def create_features(df, feature_cols):\n    return df[['nope']]\n"),
     "runtime_error", "parsed"),
    (with_default(define_cv="def define_cv(eras, embargo):\n    return []\n", define_model=(
        "def define_model():\n"
        "    from sklearn.linear_model import Ridge\n"
        "    class Broken(Ridge):\n"
        "        def predict(self, X):\n"
        "            raise ValueError('no')\n"
        "    return Broken()\n")), "runtime_error", "parsed"),  # default features: not its own
    (with_default(create_features="def create_features(df, feature_cols):\n    return df[feature_cols] * 2\n",
                  define_model="def define_model():\n    return object()\n"), "runtime_error", "features"),
])
def test_stage_reached_is_what_the_parent_validated(evaluator, program, status, stage):
    result = evaluator.evaluate(program)
    assert (result.status, result.stage) == (status, stage), result.message


def test_static_refusal_reaches_no_stage(evaluator):
    result = evaluator.evaluate(Program("def create_features(df, feature_cols)\n    return df\n"))
    assert result.status == "syntax_error" and result.stage == ""


def test_validation_predictions_are_the_validation_rows(evaluator):
    result = evaluator.evaluate(Program(default_program_source()))
    assert result.stage == "predict"
    preds = evaluator.validation_predictions(result)
    n_val = len(evaluator.task.validation_rows)
    assert preds.shape == (n_val,) and preds.dtype == np.float32
    np.testing.assert_allclose(preds, result.predictions["eval"][:n_val], rtol=1e-6)
    failed = evaluator.evaluate(with_default(define_model="def define_model():\n    return object()\n"))
    assert (failed.status, failed.stage) == ("runtime_error", "parsed")  # object() has no fit
    assert evaluator.validation_predictions(failed) is None
