"""Tests of the warm-start corpus, its mistakes, the prompt and the tokenizer."""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

import pytest

from aiforml.pipeline.defaults import SIGNATURES
from aiforml.policy.prompt import render_prompt
from aiforml.policy.schema import ColumnSchema, stand_in_schema
from aiforml.policy.tiny.corpus import corpus_stats, generate_corpus
from aiforml.policy.tiny.grammar import MODEL_GROUPS, classify_model
from aiforml.policy.tiny.mistakes import MISTAKE_KINDS
from aiforml.policy.tiny.tokenizer import train_tokenizer
from aiforml.program import parse_completion

sys.path.insert(0, str(Path(__file__).parent))  # the quick check helper beside this file
from program_check import check_program  # noqa: E402

SCHEMA = stand_in_schema()
EXPECTED_ARGS = {
    "create_target": ["df"],
    "create_features": ["df", "feature_cols"],
    "define_model": [],
    "define_cv": ["eras", "embargo"],
}


@pytest.fixture(scope="module")
def corpus():
    return generate_corpus(SCHEMA, 1000, seed=3, mistake_rate=0.25)


def test_same_seed_same_corpus_other_seed_other_corpus():
    a = generate_corpus(SCHEMA, 200, seed=1)
    b = generate_corpus(SCHEMA, 200, seed=1)
    c = generate_corpus(SCHEMA, 200, seed=2)
    assert [p.source for p in a] == [p.source for p in b]
    assert sum(x.source != y.source for x, y in zip(a, c, strict=True)) > 190


def test_corpus_is_varied_and_not_dominated_by_one_model(corpus):
    stats = corpus_stats(corpus)
    assert set(stats.family_shares) >= {"gbm", "linear", "forest", "mlp", "torch"}
    assert max(stats.family_shares.values()) < 0.3
    assert stats.model_shares["lightgbm"] < 0.15
    assert len({p.source for p in corpus}) > 0.98 * len(corpus)
    ideas = Counter(i for p in corpus for i in p.features)
    for idea in ("group_means", "interactions", "era_rank", "squares", "row_stats", "stride", "groups"):
        assert ideas[idea] > 20, idea
    assert {p.target for p in corpus} == {"default", "official", "rank", "blend", "mean"}
    assert {p.cv for p in corpus} == {"default", "forward", "grouped", "sliding"}
    assert stats.step_shares["create_features"] > 0.9 and stats.step_shares["define_model"] > 0.9


def test_mistake_rate_matches_the_configuration(corpus):
    stats = corpus_stats(corpus)
    assert stats.mistake_rate == 0.25
    assert set(stats.mistake_shares) == set(MISTAKE_KINDS)
    assert min(stats.mistake_shares.values()) > 0.03
    assert corpus_stats(generate_corpus(SCHEMA, 300, seed=0, mistake_rate=0.0)).mistake_rate == 0.0


def test_clean_programs_parse_with_the_step_signatures_and_their_labels(corpus):
    for program in (p for p in corpus if p.mistake is None):
        parsed = parse_completion(program.completion)
        assert parsed is not None and parsed.source == program.source
        tree = ast.parse(parsed.source)
        funcs = {n.name: [a.arg for a in n.args.args] for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert list(funcs) == list(program.steps)
        for name, args in funcs.items():
            assert args == EXPECTED_ARGS[name], (name, args)
        assert classify_model(program.source) == program.model


def test_clean_programs_run_and_broken_ones_fail():
    programs = generate_corpus(SCHEMA, 120, seed=5, mistake_rate=0.5)
    clean = [p for p in programs if p.mistake is None][:20]
    broken = [p for p in programs if p.mistake is not None]
    picked = [next(p for p in broken if p.mistake == k) for k in MISTAKE_KINDS] + broken[:12]
    for program in clean:
        result = check_program(program.source, SCHEMA)
        assert result.ran, (result, program.source)
    for program in picked:
        result = check_program(program.source, SCHEMA)
        assert not result.ran, (program.mistake, program.source)


def test_programs_follow_a_schema_without_name_prefixes():
    groups = {"alpha": ("feature_x_one", "feature_y_two", "feature_z_three"), "beta": ("feature_q", "feature_r")}
    schema = ColumnSchema(sum(groups.values(), ()), ("target", "target_b"), groups)
    for program in generate_corpus(schema, 40, seed=0, mistake_rate=0.0)[:10]:
        assert check_program(program.source, schema).ran, program.source


def test_prompt_shows_the_schema_and_signatures_but_no_example():
    prompt = render_prompt(SCHEMA)
    for signature in SIGNATURES.values():
        assert signature in prompt
    for group in SCHEMA.feature_groups:
        assert group in prompt
    assert "target_alpha_60" in prompt and "```python" in prompt
    assert "return " not in prompt and "LGBM" not in prompt
    assert prompt.endswith("\n") and len(prompt) < 1500


@pytest.mark.parametrize("split", ["line", "identifier"])
def test_tokenizer_round_trips_and_keeps_programs_short(corpus, split):
    prompt = render_prompt(SCHEMA)
    texts = [prompt + p.completion for p in corpus]
    tok = train_tokenizer(texts, vocab_size=2048, split=split)
    assert (tok.pad_token, tok.bos_token, tok.eos_token) == ("<pad>", "<s>", "</s>")
    assert tok(prompt).input_ids[0] == tok.bos_token_id
    for text in texts[:50] + ["x = 'ünïcode ✓'\n\tdef f(): pass"]:
        assert tok.decode(tok(text, add_special_tokens=False).input_ids) == text
    lengths = [len(tok(p.completion, add_special_tokens=False).input_ids) for p in corpus[:300]]
    mean = sum(lengths) / len(lengths)
    # Identifiers whole: about one token per identifier; lines: most lines one token.
    assert mean < (300 if split == "identifier" else 60), mean
    assert len(tok) > 1000  # the GPT-2 split stalls near 650


def test_model_families_table_covers_every_label(corpus):
    assert {p.model for p in corpus} <= set(MODEL_GROUPS) | {"default"}
