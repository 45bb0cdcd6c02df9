"""Trusted checks around a program: a static look before it runs, and its outputs after.

Before: the source must parse, must not define a locked step, and (when static checks
are on) may only import the allowed packages and must not reach for the interpreter's
escape hatches (``eval``, ``open``, ``__import__``, dunder attributes). This is defence
in depth and a clear message for the policy; the sandbox is what actually contains a
program that slips past it.

After: the CV folds must be disjoint in rows and eras, in range, and embargoed; the
predictions must be finite and of the right length; the per-era validation scores must not
be more consistent, nor any era higher, than honest pipelines reach
(``implausible_consistency``). Each failure is a (status, message) pair, never an exception.
"""

from __future__ import annotations

import ast

import numpy as np

from aiforml.program import LOCKED_STEPS, MAX_SOURCE_CHARS

ALLOWED_MODULES = frozenset({
    "numpy", "pandas", "scipy", "sklearn", "lightgbm", "torch",
    "math", "statistics", "random", "itertools", "functools", "collections", "operator",
    "typing", "dataclasses", "warnings", "copy", "numbers", "abc", "enum", "heapq", "bisect", "re",
})
FORBIDDEN_NAMES = frozenset({
    "eval", "exec", "compile", "open", "__import__", "globals", "locals", "vars",
    "breakpoint", "input", "help", "exit", "quit", "memoryview", "__builtins__", "__loader__",
})
# Attributes that lead out of the program's sandboxed objects into the interpreter.
FORBIDDEN_ATTRIBUTES = frozenset({
    "__globals__", "__subclasses__", "__builtins__", "__code__", "__closure__", "__bases__",
    "__mro__", "__class__", "__dict__", "__getattribute__", "__reduce__", "__reduce_ex__",
    "__setattr__", "__delattr__", "__loader__", "__spec__", "f_globals", "f_locals", "f_back",
    "gi_frame", "tb_frame", "__self__", "__func__", "__wrapped__",
})

Finding = tuple[str, str]  # (status, message)
# What the sandbox child may report about itself; anything else is invalid output.
CHILD_STATUSES = frozenset({"ok", "syntax_error", "import_error", "runtime_error", "memory", "invalid_output"})


def check_source(source: str, static_checks: bool = True) -> Finding | None:
    """None when the program may run, else (status, message)."""
    if len(source) > MAX_SOURCE_CHARS:
        return "forbidden", f"program is {len(source)} characters; at most {MAX_SOURCE_CHARS} are allowed"
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return "syntax_error", f"line {exc.lineno}: {exc.msg}"
    except (ValueError, RecursionError, MemoryError) as exc:
        return "syntax_error", f"{type(exc).__name__}: the program cannot be parsed"
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name in LOCKED_STEPS:
            return "forbidden", f"'{node.name}' is a locked step and cannot be overridden"
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id in LOCKED_STEPS for t in node.targets
        ):
            return "forbidden", "locked steps (load_data, run_optimization) cannot be overridden"
    return _check_tree(tree) if static_checks else None


def _check_tree(tree: ast.AST) -> Finding | None:
    allowed = ", ".join(sorted(ALLOWED_MODULES))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                return "forbidden", "relative imports are not allowed"
            modules = [node.module or ""]
        else:
            modules = []
        for module in modules:
            if module.split(".")[0] not in ALLOWED_MODULES:
                return "forbidden", f"import of '{module}' is not allowed; allowed packages: {allowed}"
        if isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            return "forbidden", f"use of '{node.id}' is not allowed"
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            return "forbidden", f"access to attribute '{node.attr}' is not allowed"
    return None


def check_cv_folds(
    folds: list[tuple[np.ndarray, np.ndarray]], train_eras: np.ndarray, embargo: int
) -> Finding | None:
    """Each fold's train and test rows share no era and stay more than `embargo` eras apart."""
    n = len(train_eras)
    for k, (train_idx, test_idx) in enumerate(folds):
        for name, idx in (("train", train_idx), ("test", test_idx)):
            if len(idx) == 0 or idx.min() < 0 or idx.max() >= n:
                return "invalid_output", f"CV fold {k}: {name} indices must be non-empty and lie in [0, {n})"
        if np.intersect1d(train_idx, test_idx).size:
            return "leakage_suspected", f"CV fold {k}: the same rows are in train and test"
        train_e, test_e = np.unique(train_eras[train_idx]), np.unique(train_eras[test_idx])
        shared = np.intersect1d(train_e, test_e)
        if shared.size:
            return "leakage_suspected", (
                f"CV fold {k}: train and test share {shared.size} eras (e.g. era {int(shared[0])}); "
                "split by era, not by row"
            )
        gap = np.min(np.abs(train_e[:, None] - test_e[None, :]))
        if gap <= embargo:
            return "leakage_suspected", (
                f"CV fold {k}: train and test eras are only {int(gap)} eras apart; targets overlap, "
                f"keep more than embargo={embargo} eras between them"
            )
    return None


def check_predictions(predictions: np.ndarray, expected_rows: int) -> Finding | None:
    if predictions.dtype.kind not in "fiu":
        return "invalid_output", f"predictions must be numeric, got dtype {predictions.dtype}"
    if predictions.shape != (expected_rows,):
        return "invalid_output", f"expected {expected_rows} predictions, got shape {predictions.shape}"
    bad = int(np.sum(~np.isfinite(predictions)))
    if bad:
        return "invalid_output", f"{bad} predictions are NaN or infinite"
    return None


# Sampling noise allowed on top of ``max_era_corr``, in standard errors of one era's corr
# (about 1 / sqrt(rows)): ppo_sharpe's 200 rows an era let an honest default score 0.306 in
# one of 60 eras, past the bare 0.3 calibrated at 480-720 rows.
ERA_NOISE_SE = 3.5


def implausible_consistency(
    per_era_corr: np.ndarray | list[float | None], max_sharpe: float, max_era_corr: float,
    era_rows: np.ndarray | list[int] | None = None, min_eras: int = 20,
) -> Finding | None:
    """``leakage_suspected`` when per-era scores are more consistent than honest ones get.

    The leakage band looks at the mean corr only; a leak diluted under it still shows as
    a Sharpe (mean / std of per-era corr, ddof 1, over at least ``min_eras`` scored eras)
    above ``max_sharpe``, or, when it helps only a few eras, as one era scoring above
    ``max_era_corr`` plus ``ERA_NOISE_SE / sqrt(rows)`` of that era when ``era_rows`` (rows
    of each era, aligned with ``per_era_corr``) is given. ``per_era_corr`` is
    ``SplitMetrics.per_era_corr`` (None or NaN for an era that did not score is left out).

    Calibrated on the fast preset (``benchmarks/calibrate_leakage.py``: generator seeds 0-3
    x no secret and two secrets, default split, 60 validation eras of 480-720 rows). Honest,
    84 runs (the default program's LightGBM, another model seed, 20 trees, 1000 trees at lr
    0.01, Ridge, LightGBM on the mean of the targets the child sees, a rank ensemble):
    mean corr -0.001..0.114, Sharpe -0.02..3.34, best era 0.095..0.241. Leaks, 12 runs each:
    the stale-target link of ``aiforml/data/targets.py`` alone (mean 0.031-0.069, Sharpe
    0.27-0.64, best era 0.361-0.461: 12/12 flagged by the era) or added to the LightGBM
    rank (mean 0.071-0.108, Sharpe 0.86-1.57, best era 0.290-0.398: 10/12); the LightGBM
    rank plus 0.1 x the true target's rank, a diluted leak under the 0.25 mean-corr band
    (mean 0.208-0.242, Sharpe 4.28-7.09, best era 0.290-0.362: 12/12, by the Sharpe or
    the era); plus 0.2 / 0.4 x (Sharpe 6.5-16.7: 12/12). Hence the defaults
    ``env.pipeline.leakage_sharpe`` 4.5 (honest best 3.34) and ``leakage_era_corr`` 0.3
    (honest best 0.241). They are the fast preset's: realistic or Numerai data (per-era
    corr about 0.02 +- 0.02) never comes near them, and can lower them.
    With the evaluator's sampling allowance (``ERA_NOISE_SE``: 0.44 at 600 rows an era) the
    single-era test no longer catches every stale-target link on the fast preset (its
    eras 0.361-0.461); masking those targets (``aiforml/data/targets.py``) is what stops it.
    """
    scores = np.array([np.nan if c is None else c for c in per_era_corr], dtype=np.float64)
    rows = np.full(len(scores), np.inf) if era_rows is None else np.asarray(era_rows, dtype=np.float64)
    scored = np.isfinite(scores)
    scores, bounds = scores[scored], max_era_corr + ERA_NOISE_SE / np.sqrt(rows[scored])
    if len(scores) == 0:
        return None
    top = int(np.argmax(scores - bounds))
    if scores[top] > bounds[top]:
        return "leakage_suspected", (
            f"one era scored corr {scores[top]:.3f} (era {top + 1} of {len(scores)} scored), above "
            f"{bounds[top]:.3f}: honest pipelines never score an era this high; does the program "
            "read targets that overlap the evaluated eras?")
    std = scores.std(ddof=1) if len(scores) > 1 else 0.0
    if len(scores) >= min_eras and std > 0 and scores.mean() / std > max_sharpe:
        return "leakage_suspected", (
            f"per-era corr is implausibly consistent: Sharpe {scores.mean() / std:.2f} over "
            f"{len(scores)} eras is above {max_sharpe}, which honest pipelines do not reach")
    return None


def keeps_default_step(source: str, step: str, default_source: str) -> bool:
    """Whether ``source`` leaves ``step`` as the default: nothing binds the name anywhere but,
    at most, one top-level function identical (as a syntax tree) to the default's.

    Lets the evaluator reuse what the default step computes once per dataset (its output
    does not depend on the rest of the program); when in doubt, False.
    """
    try:
        tree, default = ast.parse(source), ast.parse(default_source).body[0]
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == step]
    if len(defs) > 1 or defs and ast.dump(defs[0]) != ast.dump(default):
        return False
    return not any(_binds(node, step) for node in ast.walk(tree) if node not in defs)


def _binds(node: ast.AST, name: str) -> bool:
    """Whether ``node`` binds ``name`` (a definition, an assignment target, an import, global)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name == name
    if isinstance(node, ast.Name):
        return node.id == name and isinstance(node.ctx, ast.Store | ast.Del)
    if isinstance(node, ast.alias):
        return (node.asname or node.name).split(".")[0] == name
    return isinstance(node, ast.Global | ast.Nonlocal) and name in node.names
