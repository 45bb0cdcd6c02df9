"""The policy's prompt: the task, the step signatures, a summary of the data schema.

Two tasks: Numerai-style tournament data, and trading a price series (``schema.task``).

Responsible for: rendering the one prompt text that the warm start (SFT) trains on and the
RL loop samples from, so both see exactly the same state. It is short on purpose: the
task, the contract of the overridable steps (``aiforml.pipeline.defaults.SIGNATURES``),
the real columns and groups, the rules, and no worked example to copy (the original
proof of concept's policy copied its single LightGBM example 96 % of the time).
Optional in-context feedback (``diversity.feedback``): :func:`render_feedback` renders a few
of the best, mutually different programs so far with their validation Sharpe (chosen by
``aiforml.reference.select_feedback``), and the loop puts it *before* the prompt. Its
length is capped at ``diversity.feedback_chars`` characters, whole programs only (one that
does not fit is named in one line without its code), and because the policy's tokenizer
truncates on the left (``policy.max_prompt_tokens``), an over-long prompt loses feedback,
never the task. Measured token counts (tiny policy, default schema): the prompt alone is
18 tokens with the default line tokenizer (vocabulary 4096) and 249 with the smoke build's
(vocabulary 512), the default program 37 and 289; so under the tiny preset's 384 prompt
tokens the default build has room for several programs and the smoke build for about
400 characters. Sealed test scores are never shown.
Not responsible for: parsing completions (``aiforml.program.parse_completion``) or
choosing the programs shown.
"""

from __future__ import annotations

from aiforml.pipeline.defaults import SIGNATURES
from aiforml.policy.schema import ColumnSchema

ALLOWED_PACKAGES = ("numpy", "pandas", "scikit-learn", "lightgbm", "torch")
MAX_GROUPS_SHOWN = 12


def _group_line(schema: ColumnSchema, group: str) -> str:
    cols = schema.feature_groups[group]
    prefix = schema.group_prefix(group)
    names = f"{prefix}*" if prefix else ", ".join(cols[:2]) + (", ..." if len(cols) > 2 else "")
    return f"- {group} ({len(cols)}): {names}"


def render_schema(schema: ColumnSchema) -> str:
    """The schema summary: features, groups, targets."""
    lines = [
        f"Columns: era (int), {len(schema.feature_names)} features (int8, 0..4) in feature_cols, targets (0..1).",
    ]
    groups = sorted(schema.feature_groups)
    if groups:
        lines.append("Feature groups:")
        lines += [_group_line(schema, g) for g in groups[:MAX_GROUPS_SHOWN]]
        if len(groups) > MAX_GROUPS_SHOWN:
            lines.append(f"- ... {len(groups) - MAX_GROUPS_SHOWN} more groups")
    lines.append("Targets: " + ", ".join(schema.target_names) + " (target is scored).")
    return "\n".join(lines)


def render_trading_schema(schema: ColumnSchema) -> str:
    """The trading task's schema summary: columns, assets, target, how it is scored."""
    assets = ", ".join(schema.assets[:8]) + (", ..." if len(schema.assets) > 8 else "")
    return (
        "Columns: era (int period index, time order), date, asset, "
        + ", ".join(schema.feature_names) + " (float) in feature_cols.\n"
        f"Assets: {assets}; one row per asset and period.\n"
        "Targets: target (forward return; training rows only). Features may use only the current "
        "and earlier rows of each asset (a look-ahead guard checks); predictions become "
        "long/short positions scored by Sharpe net of costs.\n"
    )


def render_prompt(schema: ColumnSchema) -> str:
    """The whole prompt. It ends with a newline, so the completion starts on a token boundary."""
    signatures = "\n".join(SIGNATURES.values())
    if schema.task == "trading":
        return (
            "Write a pipeline that trades a price series: one ```python block defining some of\n"
            f"{signatures}\n"
            f"{render_trading_schema(schema)}"
            "Import inside each function. Packages: " + ", ".join(ALLOWED_PACKAGES) + ".\n"
        )
    return (
        "Write a pipeline for tournament data: one ```python block defining some of\n"
        f"{signatures}\n"
        f"{render_schema(schema)}\n"
        "Import inside each function. Packages: " + ", ".join(ALLOWED_PACKAGES) + ".\n"
    )


FEEDBACK_HEAD = "Best different programs so far (validation Sharpe); write a better or different one.\n"


def render_feedback(programs: list[tuple[str, str]], max_chars: int) -> str:
    """The feedback block for ``(label, source)`` pairs, at most ``max_chars`` characters.

    Each program goes in whole when it fits, else as its label alone; "" when nothing fits.
    """
    parts, used = [FEEDBACK_HEAD], len(FEEDBACK_HEAD)
    for label, source in programs:
        for text in (f"# {label}\n```python\n{source.strip()}\n```\n", f"# {label} (code left out)\n"):
            if used + len(text) <= max_chars:
                parts.append(text)
                used += len(text)
                break
    return "".join(parts) if len(parts) > 1 else ""
