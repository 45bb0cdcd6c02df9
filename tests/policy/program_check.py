"""A quick in-process check that a program's steps run, for tests and the tiny-policy benchmark.

Responsible for: building a small random frame from a data schema and calling a program's
steps on it in the order and with the contract of ``aiforml.pipeline.defaults`` (target,
features, CV splits, model fit and predict), returning a status and a message.
Not responsible for: isolation or scoring. It trusts the code it runs (our own corpus and
our own model's samples) and is no substitute for the sandboxed evaluator.
"""

from __future__ import annotations

import contextlib
import signal
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from aiforml.pipeline.defaults import default_sources
from aiforml.policy.schema import ColumnSchema


@dataclass
class CheckResult:
    status: str  # ok, syntax_error, runtime_error, invalid_output, timeout
    message: str = ""

    @property
    def ran(self) -> bool:
        return self.status == "ok"


def make_frame(schema: ColumnSchema, n_eras: int = 16, rows_per_era: int = 40, seed: int = 0) -> pd.DataFrame:
    """Random rows shaped like the data: era, int8 features 0..4, targets in fifths."""
    rng = np.random.default_rng(seed)
    n = n_eras * rows_per_era
    data: dict[str, Any] = {"era": np.repeat(np.arange(1, n_eras + 1), rows_per_era)}
    for col in schema.feature_names:
        data[col] = rng.integers(0, 5, n).astype("int8")
    for col in schema.target_names:
        data[col] = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], n, p=[0.05, 0.2, 0.5, 0.2, 0.05])
    return pd.DataFrame(data)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout


def _run_steps(ns: dict[str, Any], frame: pd.DataFrame, schema: ColumnSchema) -> str:
    """Run the steps; return "" when the output is valid, else what is wrong."""
    features = list(schema.feature_names)
    y = np.asarray(ns["create_target"](frame.copy()), dtype=float)
    if y.shape != (len(frame),) or not np.isfinite(y).all():
        return f"target has shape {y.shape} or non-finite values"
    X = ns["create_features"](frame[["era", *features]].copy(), features)
    if not isinstance(X, pd.DataFrame) or len(X) != len(frame):
        return "create_features must return a DataFrame with one row per input row"
    X = X.astype("float32")
    splits = ns["define_cv"](frame["era"].to_numpy(), 4)
    if not splits:
        return "define_cv returned no folds"
    train, test = splits[-1]
    model = ns["define_model"]()
    model.fit(X.iloc[train], y[train])
    pred = np.asarray(model.predict(X.iloc[test]), dtype=float).ravel()
    if pred.shape != (len(test),) or not np.isfinite(pred).all():
        return "predictions have the wrong length or non-finite values"
    return ""


def check_program(source: str, schema: ColumnSchema, frame: pd.DataFrame | None = None, timeout_s: int = 30) -> CheckResult:
    """Exec ``source``, fill missing steps with the defaults, run them on a small frame."""
    frame = make_frame(schema) if frame is None else frame
    try:
        code = compile(source, "<program>", "exec")
    except (SyntaxError, ValueError) as exc:
        return CheckResult("syntax_error", str(exc))
    ns: dict[str, Any] = {}
    for default in default_sources().values():
        exec(default, ns)  # noqa: S102 - defaults first, the program overrides them
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout_s)
    try:
        # One thread, as in the sandbox: OpenMP pools spin badly on a shared 2-core machine.
        with warnings.catch_warnings(), threadpool_limits(1), _torch_threads(1):
            warnings.simplefilter("ignore")
            exec(code, ns)  # noqa: S102 - our own corpus or our own model's samples, see docstring
            problem = _run_steps(ns, frame, schema)
    except _Timeout:
        return CheckResult("timeout", f"more than {timeout_s} s")
    except Exception as exc:  # noqa: BLE001 - any failure of generated code is a result
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return CheckResult("runtime_error", tb[:300])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return CheckResult("invalid_output", problem) if problem else CheckResult("ok")
