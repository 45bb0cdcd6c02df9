"""What a program is made of, read from its code by parsing it (never by running it or
asking a model).

Responsible for ``describe_program(source)``: the model family of ``define_model``, the
libraries imported, whether the program owns its features / target / CV (defines the
step *and* differs from the default), and the feature ideas its feature and target code
uses (``FEATURE_IDEAS``). Rules are syntactic and documented beside each idea; they are
deliberately simple, so a reader can predict them, and tested on hand-written programs.
Not responsible for storing descriptors (``aiforml.archive``) or aggregating them into
shares (``aiforml.diversity``).
"""

from __future__ import annotations

import ast
import re
from typing import Any

from aiforml.pipeline.defaults import default_sources

MODEL_FAMILIES = ("lightgbm", "sklearn_gbm", "linear", "random_forest", "extra_trees", "mlp",
                  "torch", "knn", "svm", "other", "default")
# The ideas, in this order everywhere (archive JSON lists, report columns):
# - group_stats: an aggregate on a ``groupby`` (``df.groupby("era")[c].transform("mean")``)
#   or a row statistic over columns (``df[cols].mean(axis=1)``); ``groupby(...).rank`` is ranks
# - ranks: a ``rank`` call, ``rankdata``, ``argsort().argsort()`` or a QuantileTransformer
# - interactions: ``a * b`` or ``a / b`` of two non-constant, non-call operands
#   (``df[a] * df[b]``), ``np.multiply``/``np.outer``, or PolynomialFeatures
# - nonlinear: ``x ** k`` (k not 1), or log/exp/sqrt/square/tanh/sin/cos/abs/power/sigmoid
# - neutralization: least squares or a pseudo-inverse (``lstsq``, ``pinv``, ``linalg.solve``)
#   or an identifier naming it (``neutral*``, ``residual*``, ``orthogonal*``)
FEATURE_IDEAS = ("group_stats", "ranks", "interactions", "nonlinear", "neutralization")

_FAMILY_PATTERNS: tuple[tuple[str, str], ...] = (
    ("torch", r"^torch\b"),
    ("lightgbm", r"^lightgbm\b|(^|\.)LGBM\w*$"),
    ("sklearn_gbm", r"(^|\.)(Hist)?GradientBoosting\w*$"),
    ("random_forest", r"(^|\.)RandomForest\w*$"),
    ("extra_trees", r"(^|\.)ExtraTrees\w*$"),
    ("mlp", r"(^|\.)MLP\w*$"),
    ("knn", r"(^|\.)(KNeighbors|RadiusNeighbors)\w*$"),
    ("svm", r"^sklearn\.svm\.|(^|\.)(SVR|NuSVR|LinearSVR)$"),
    ("linear", r"^sklearn\.linear_model\.|(^|\.)(Ridge|RidgeCV|Lasso|LassoCV|ElasticNet\w*|"
               r"LinearRegression|SGDRegressor|BayesianRidge|HuberRegressor|Lars)$"),
    ("other", r"^(xgboost|catboost)\b"),
)
_ROW_STATS = frozenset({"mean", "std", "sum", "median", "var", "min", "max", "skew", "kurt", "quantile"})
_GROUP_AGGREGATES = _ROW_STATS | {"transform", "agg", "aggregate", "apply"}
_NONLINEAR = frozenset({"log", "log1p", "log2", "log10", "exp", "expm1", "sqrt", "square", "tanh",
                        "sin", "cos", "abs", "power", "pow", "sigmoid", "expit", "cbrt"})
_NEUTRAL_CALLS = frozenset({"lstsq", "pinv"})
_NEUTRAL_NAME = re.compile(r"neutral|residual|orthogonal", re.IGNORECASE)
_STEP_FLAGS = {"create_features": "defines_features", "create_target": "defines_target",
               "define_cv": "defines_cv", "define_model": "defines_model"}
_DEFAULT_DUMPS = {step: ast.dump(ast.parse(src).body[0]) for step, src in default_sources().items()}


def _family_of(name: str) -> str | None:
    for family, pattern in _FAMILY_PATTERNS:
        if re.search(pattern, name):
            return family
    return None


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> qualified name, from every import in the program."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _qualified(node: ast.AST, aliases: dict[str, str]) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([aliases.get(node.id, node.id), *reversed(parts)])


def _model_family(fn: ast.FunctionDef, aliases: dict[str, str]) -> str:
    """The first model family referenced inside ``define_model``, in source order."""
    names = [(n.lineno, n.col_offset, _qualified(n, aliases)) for n in ast.walk(fn)
             if isinstance(n, ast.Attribute | ast.Name)]
    names += [(n.lineno, n.col_offset, f"{n.module}.{a.name}") for n in ast.walk(fn)
              if isinstance(n, ast.ImportFrom) and n.module for a in n.names]
    families = [_family_of(q) for _, _, q in sorted(names, key=lambda t: t[:2]) if q]
    if "torch" in families:  # a torch net may use sklearn helpers; the net is the model
        return "torch"
    return next((f for f in families if f), "other")


# --- feature ideas -------------------------------------------------------------------------
def _name(node: ast.AST) -> str | None:
    """The last identifier of a Name or Attribute (``np.log1p`` -> ``log1p``)."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _is_operand(node: ast.AST) -> bool:
    """A value that may be a column or array: not a constant, not a call's result."""
    if isinstance(node, ast.UnaryOp):
        return _is_operand(node.operand)
    return isinstance(node, ast.Subscript | ast.Name | ast.Attribute)


def _on_groupby(func: ast.AST) -> bool:
    """True when a method is called on a chain that holds a ``groupby(...)`` call."""
    node = func.value if isinstance(func, ast.Attribute) else None
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        if isinstance(node, ast.Call) and _name(node.func) == "groupby":
            return True
        node = node.func if isinstance(node, ast.Call) else node.value
    return False


def _call_ideas(node: ast.Call) -> set[str]:
    name = _name(node.func)
    ideas: set[str] = set()
    if name in _GROUP_AGGREGATES and _on_groupby(node.func):
        ideas.add("group_stats")
    if name in _ROW_STATS and any(k.arg == "axis" and isinstance(k.value, ast.Constant)
                                  and k.value.value in (1, "columns") for k in node.keywords):
        ideas.add("group_stats")
    if name in ("rank", "rankdata", "QuantileTransformer") or (
            name == "argsort" and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Call) and _name(node.func.value.func) == "argsort"):
        ideas.add("ranks")
    if name in ("multiply", "outer", "PolynomialFeatures"):
        ideas.add("interactions")
    if name in _NEUTRAL_CALLS or (name == "solve" and isinstance(node.func, ast.Attribute)
                                  and _name(node.func.value) == "linalg"):
        ideas.add("neutralization")
    return ideas


def _node_ideas(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Call):
        return _call_ideas(node)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Mult | ast.Div) and _is_operand(node.left) and _is_operand(node.right):
            return {"interactions"}
        if isinstance(node.op, ast.Pow) and not (isinstance(node.right, ast.Constant) and node.right.value == 1):
            return {"nonlinear"}
    name = _name(node) if isinstance(node, ast.Name | ast.Attribute) else None
    if isinstance(node, ast.FunctionDef | ast.arg):
        name = node.name if isinstance(node, ast.FunctionDef) else node.arg
    if name in _NONLINEAR:
        return {"nonlinear"}
    if name and _NEUTRAL_NAME.search(name):
        return {"neutralization"}
    return set()


def feature_ideas(nodes: list[ast.AST]) -> list[str]:
    """The FEATURE_IDEAS found anywhere inside ``nodes``, in FEATURE_IDEAS order."""
    found: set[str] = set()
    for root in nodes:
        for node in ast.walk(root):
            found |= _node_ideas(node)
    return [idea for idea in FEATURE_IDEAS if idea in found]


# --- the descriptor record -----------------------------------------------------------------
def describe_program(source: str) -> dict[str, Any]:
    """Descriptors read from the program's AST (never by running it).

    ``defines_features|target|cv`` are true only when the step is defined *and* differs
    from the default step (restating the default is not owning the step);
    ``defines_model`` is true whenever ``define_model`` is defined. ``model_family`` is
    "default" without a ``define_model``, else one of MODEL_FAMILIES. ``feature_ideas``
    come from the program's own ``create_features``/``create_target`` and the top-level
    helper functions they call by name; a default step counts nothing.
    Unparsable source falls back to a regex over its identifiers (no feature ideas).
    """
    out: dict[str, Any] = {flag: False for flag in _STEP_FLAGS.values()}
    out.update(model_family="default", libraries=[], feature_ideas=[])
    if not source.strip():
        return out
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return _describe_unparsable(source, out)
    aliases = _aliases(tree)
    out["libraries"] = sorted({q.split(".")[0] for q in aliases.values()})
    idea_nodes: list[ast.AST] = []
    for node in tree.body:
        if not (isinstance(node, ast.FunctionDef) and node.name in _STEP_FLAGS):
            continue
        own = node.name == "define_model" or ast.dump(node) != _DEFAULT_DUMPS.get(node.name)
        out[_STEP_FLAGS[node.name]] = own
        if node.name == "define_model":
            out["model_family"] = _model_family(node, aliases)
        elif node.name in ("create_features", "create_target") and own:
            idea_nodes.append(node)
    out["feature_ideas"] = feature_ideas(idea_nodes + _helpers_called(tree, idea_nodes))
    return out


def _helpers_called(tree: ast.Module, steps: list[ast.AST]) -> list[ast.AST]:
    """Top-level helper functions (not steps) that the given steps call by name."""
    called = {n.func.id for s in steps for n in ast.walk(s)
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in called
            and n.name not in _STEP_FLAGS]


def _describe_unparsable(source: str, out: dict[str, Any]) -> dict[str, Any]:
    for step, flag in _STEP_FLAGS.items():
        out[flag] = re.search(rf"^def {step}\b", source, re.MULTILINE) is not None
    chunk = re.search(r"^def define_model\b.*?(?=^def |\Z)", source, re.DOTALL | re.MULTILINE)
    if chunk:
        words = re.findall(r"[A-Za-z_][\w.]*", chunk.group(0))
        out["model_family"] = next((f for f in map(_family_of, words) if f), "other")
    return out
