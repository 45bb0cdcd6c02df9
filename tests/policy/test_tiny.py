"""Tests of the tiny offline policy build: loadable, generates, learns, cached, configured."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

import aiforml.policy.tiny.build as tiny
from aiforml.compose import load_config
from aiforml.config import TinyPolicyConfig, from_dict
from aiforml.policy.prompt import render_prompt
from aiforml.policy.schema import stand_in_schema
from aiforml.program import parse_completion

SCHEMA = stand_in_schema()


def small_config(tmp_path, **overrides) -> TinyPolicyConfig:
    """A build of a few seconds: tiny corpus and model, enough steps to see the loss fall."""
    fields = dict(
        n_programs=96, epochs=6.0, vocab_size=512, hidden_size=32, num_layers=1, num_heads=2,
        num_kv_heads=1, intermediate_size=64, batch_size=16, learning_rate=1e-2,
        cache_dir=str(tmp_path), progress=False,
    )  # fmt: skip
    return TinyPolicyConfig(**{**fields, **overrides})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cfg = small_config(tmp_path_factory.mktemp("tiny"))
    return cfg, tiny.build_tiny_policy(cfg, SCHEMA)


def test_build_is_loadable_and_generates(built):
    cfg, path = built
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert tok.pad_token == "<pad>" and tok.eos_token == "</s>" and tok.bos_token == "<s>"
    assert model.config.model_type == "mistral" and model.config.vocab_size == len(tok)
    assert model.generation_config.eos_token_id == tok.eos_token_id
    ids = tok([render_prompt(SCHEMA)] * 2, return_tensors="pt")
    torch.manual_seed(0)
    out = model.generate(**ids, do_sample=True, max_new_tokens=12, pad_token_id=tok.pad_token_id)
    assert out.shape[0] == 2 and out.shape[1] > ids.input_ids.shape[1]


def test_build_records_what_it_did_and_the_loss_fell(built):
    cfg, path = built
    info = json.loads((path / tiny.READY_FILE).read_text())
    assert info["corpus"]["n"] == cfg.n_programs
    assert info["n_parameters"] == sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(path).parameters())
    assert info["sft"]["final_loss"] < 0.8 * info["sft"]["first_loss"]
    assert info["sft"]["mean_completion_tokens"] > 5


def test_second_call_is_served_from_the_cache_without_building(built, monkeypatch):
    cfg, path = built

    def must_not_build(*args, **kwargs):
        raise AssertionError("the builder ran again on a cache hit")

    monkeypatch.setattr(tiny, "_build", must_not_build)
    assert tiny.build_tiny_policy(cfg, SCHEMA) == path
    # Fields that do not change the weights share the entry; seeds and sizes do not.
    assert tiny.build_tiny_policy(small_config(path.parent, progress=True, threads=1), SCHEMA) == path
    assert tiny.cache_key(small_config(path.parent, seed=1), SCHEMA) != tiny.cache_key(cfg, SCHEMA)
    assert tiny.cache_key(cfg, stand_in_schema(n_per_group=4)) != tiny.cache_key(cfg, SCHEMA)


def test_corpus_version_is_part_of_the_key(built, monkeypatch):
    cfg, _ = built
    before = tiny.cache_key(cfg, SCHEMA)
    monkeypatch.setattr(tiny, "CORPUS_VERSION", "next")
    assert tiny.cache_key(cfg, SCHEMA) != before


def test_sft_pairs_mask_the_prompt_and_end_with_eos(built):
    _, path = built
    tok = AutoTokenizer.from_pretrained(path)
    prompt = render_prompt(SCHEMA)
    completion = "```python\ndef define_model():\n    return None\n```"
    ((ids, labels),) = tiny.encode_pairs(tok, prompt, [completion])
    n_prompt = len(tok(prompt).input_ids)
    assert labels[:n_prompt] == [-100] * n_prompt and ids[-1] == labels[-1] == tok.eos_token_id
    assert tok.decode(ids[n_prompt:-1]) == completion
    assert parse_completion(tok.decode(ids[n_prompt:], skip_special_tokens=True)) is not None


def test_a_failed_build_leaves_no_cache_entry(tmp_path, monkeypatch):
    cfg = small_config(tmp_path, n_programs=8)

    def broken_build(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(tiny, "_build", broken_build)
    with pytest.raises(RuntimeError):
        tiny.build_tiny_policy(cfg, SCHEMA)
    assert list(tmp_path.iterdir()) == []


def test_config_composes_and_bad_values_name_the_key():
    cfg = load_config(["policy=tiny", "policy.tiny.epochs=2"])
    assert cfg.policy.name == "tiny" and cfg.policy.tiny.epochs == 2.0
    assert cfg.policy.tiny == TinyPolicyConfig(epochs=2.0)  # the YAML mirrors the defaults
    with pytest.raises(ValueError, match="policy.tiny.mistake_rate"):
        from_dict(TinyPolicyConfig, {"mistake_rate": 1.5}, prefix="policy.tiny.")
    with pytest.raises(ValueError, match="policy.tiny.hidden_size"):
        from_dict(TinyPolicyConfig, {"hidden_size": 100, "num_heads": 3}, prefix="policy.tiny.")
