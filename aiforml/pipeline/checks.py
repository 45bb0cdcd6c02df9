"""Trusted checks around a program: a static look before it runs, and its outputs after.

Before: the source must parse, must not define a locked step, and (when static checks
are on) may only import the allowed packages and must not reach for the interpreter's
escape hatches (``eval``, ``open``, ``__import__``, dunder attributes). This is defence
in depth and a clear message for the policy; the sandbox is what actually contains a
program that slips past it.

After: the CV folds must be disjoint in rows and eras, in range, and embargoed; the
predictions must be finite and of the right length. Each failure is a (status, message)
pair, never an exception.
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
