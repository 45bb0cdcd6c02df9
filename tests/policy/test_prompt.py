"""The prompt's optional feedback block: whole programs within the character budget."""

from __future__ import annotations

from aiforml.policy.prompt import FEEDBACK_HEAD, render_feedback

A = "def define_model():\n    from sklearn.linear_model import Ridge\n    return Ridge()\n"
B = "def define_model():\n    import lightgbm as lgb\n    return lgb.LGBMRegressor()\n"


def test_feedback_renders_each_chosen_program_with_its_label():
    text = render_feedback([("linear, validation Sharpe 1.20", A), ("lightgbm, validation Sharpe 0.90", B)], 10_000)
    assert text.startswith(FEEDBACK_HEAD)
    assert f"# linear, validation Sharpe 1.20\n```python\n{A}```\n" in text
    assert f"# lightgbm, validation Sharpe 0.90\n```python\n{B}```\n" in text
    assert text.index("linear") < text.index("lightgbm")


def test_feedback_is_cut_to_whole_programs_or_labels_within_the_budget():
    whole_a = len(FEEDBACK_HEAD) + len(f"# a\n```python\n{A}```\n")
    text = render_feedback([("a", A), ("b", B)], whole_a + 30)
    assert len(text) <= whole_a + 30
    assert A in text and B not in text and "# b (code left out)\n" in text
    assert render_feedback([("a", A)], len(FEEDBACK_HEAD) + 5) == ""  # nothing fits: no block at all
    assert render_feedback([], 10_000) == ""
