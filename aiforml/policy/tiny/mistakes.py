"""Realistic mistakes injected into clean programs, each labelled with its kind.

Responsible for: turning a clean program source into one that fails in a known way, the
way the original proof of concept's programs failed (KeyError on a column that does not
exist, a name used without its import, a TypeError, a misspelled method). Every mutation
here breaks the program when its steps run; tests check that. Not responsible for: deciding
how often mistakes happen (``corpus.py``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

MISTAKE_KINDS: tuple[str, ...] = ("wrong_column", "missing_import", "type_error", "misspelled_method")

# Spelling slips: (correct text, misspelled text). The correct text must be a method/class use.
_MISSPELLINGS: tuple[tuple[str, str], ...] = (
    (".groupby(", ".group_by("),
    (".rank(", ".rnak("),
    (".mean(axis=1)", ".maen(axis=1)"),
    (".std(axis=1)", ".stdev(axis=1)"),
    (".add_suffix(", ".add_sufix("),
    (".astype(", ".as_type("),
    (".transform(", ".tranform("),
    ("np.flatnonzero(", "np.flatnonzeros("),
    ("np.isin(", "np.is_in("),
    ("np.array_split(", "np.split_array("),
    ("lgb.LGBMRegressor(", "lgb.LGBMRegresor("),
    ("opt.zero_grad()", "opt.zero_grads()"),
    (".fillna(", ".fill_na("),
)

# Type slips: (regex, replacement). Each one raises TypeError (or sklearn's
# InvalidParameterError, itself a TypeError) when the step runs.
_TYPE_SLIPS: tuple[tuple[str, str], ...] = (
    (r"feature_cols\[:(\d+)\]", r'feature_cols[:"\1"]'),
    (r"feature_cols\[::(\d+)\]", r'feature_cols[::"\1"]'),
    (r"np\.array_split\(unique, (\d+)", r'np.array_split(unique, "\1"'),
    (r"return df\[\"target\"\]\n", 'return df["target"] + "0"\n'),
    (r"cols\[:(\d+)\]", r"cols[:\1.0]"),
    (r"range\(self\.epochs\)", "range(self.epochs / 2)"),
    (r"self\.hidden = (\d+)", r"self.hidden = \1.0"),
    (r"hidden_layer_sizes=\((\d+)", r'hidden_layer_sizes=("\1"'),
    # scikit-learn checks parameter types at fit (InvalidParameterError is a TypeError)
    (r"\n        (alpha|max_iter|min_samples_leaf|max_depth)=([\d.]+),\n(?![^)]*verbose)", r'\n        \1="\2",\n'),
)

_IMPORT_LINE = re.compile(r"^    (import (\w+)(?: as (\w+))?|from [\w.]+ import (\w+))\n", re.MULTILINE)


def _is_read(source: str, at: int) -> bool:
    """True when the literal at ``at`` is read as a column (not a new column or a prefix)."""
    before = source[source.rfind("\n", 0, at) + 1 : at]
    opened = source.rfind("prefixes = (", 0, at)
    in_prefixes = opened >= 0 and source.find("\n    )", opened, at) < 0
    return not before.endswith("X[") and "startswith(" not in before and not in_prefixes


def _wrong_column(source: str, rng: random.Random) -> str | None:
    reads = [m for m in re.finditer(r'"((?:feature|target)\w*|era)"', source) if _is_read(source, m.start())]
    if not reads:
        return None
    m = rng.choice(reads)
    name = m.group(1)
    if name == "era":
        wrong = rng.choice(["era_id", "date", "eras"])
    elif name.startswith("target"):
        wrong = rng.choice(["target_main", "targets", "label", name + "_v2"])
    else:
        wrong = rng.choice([name + "_v2", name.replace("feature_", "feat_"), name.upper()])
    return source[: m.start()] + f'"{wrong}"' + source[m.end() :]


def _missing_import(source: str, rng: random.Random) -> str | None:
    candidates = []
    for m in _IMPORT_LINE.finditer(source):
        name = m.group(3) or m.group(2) or m.group(4)
        if re.search(rf"\b{re.escape(name)}\b", source[m.end() :]):
            candidates.append(m)
    if not candidates:
        return None
    m = rng.choice(candidates)
    name = m.group(3) or m.group(2) or m.group(4)
    # Only drop it when the name is not imported again in the same function.
    rest = source[m.end() :]
    next_def = rest.find("\ndef ")
    scope = rest if next_def < 0 else rest[:next_def]
    if re.search(rf"import .*\b{re.escape(name)}\b", scope):
        return None
    return source[: m.start()] + source[m.end() :]


def _substitute(source: str, rng: random.Random, slips: list[tuple[str, str]]) -> str | None:
    if not slips:
        return None
    pattern, replacement = rng.choice(slips)
    matches = list(re.finditer(pattern, source))
    m = rng.choice(matches)
    return source[: m.start()] + m.expand(replacement) + source[m.end() :]


def _type_error(source: str, rng: random.Random) -> str | None:
    return _substitute(source, rng, [(p, r) for p, r in _TYPE_SLIPS if re.search(p, source)])


def _misspelled_method(source: str, rng: random.Random) -> str | None:
    slips = [(re.escape(good), bad.replace("\\", "\\\\")) for good, bad in _MISSPELLINGS if good in source]
    return _substitute(source, rng, slips)


_MUTATORS: dict[str, Callable[[str, random.Random], str | None]] = {
    "wrong_column": _wrong_column,
    "missing_import": _missing_import,
    "type_error": _type_error,
    "misspelled_method": _misspelled_method,
}


def inject_mistake(source: str, rng: random.Random, kind: str | None = None) -> tuple[str, str] | None:
    """Return (broken source, kind), or None when no mistake of ``kind`` fits this program.

    With ``kind`` None, the kind is drawn uniformly among those that fit.
    """
    kinds = [kind] if kind is not None else list(MISTAKE_KINDS)
    rng.shuffle(kinds)
    for k in kinds:
        broken = _MUTATORS[k](source, rng)
        if broken is not None and broken != source:
            return broken, k
    return None
