"""Mistral-7B-v0.3's real tokenizer (a test fixture, no download): vocabulary and special ids,
pad/eos, the chat template round trip, token counts of the prompt and of programs, the stop
at the closing fence, and the 4-bit QLoRA path on CPU at tiny width with the real vocabulary.

The 7B learner runs its real tokenizer only on a GPU otherwise; these are the same code paths
with the same token ids, on CPU.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from aiforml.config import AlgoConfig, PolicyConfig
from aiforml.learner import LearnerActor
from aiforml.pipeline.defaults import default_program_source
from aiforml.policy.model import PRESETS, load_tokenizer
from aiforml.policy.prompt import render_prompt
from aiforml.policy.sampling import as_model_input, tokens_to_fence
from aiforml.policy.schema import stand_in_schema
from aiforml.policy.scratch import build_scratch_policy

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mistral_v3"
VOCAB = 32768

pytest.importorskip("sentencepiece", reason="converting the fixture needs sentencepiece (dev extra)")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture converted once to a fast tokenizer (``tokenizer.json``)."""
    folder = tmp_path_factory.mktemp("mistral_v3")
    shutil.copytree(FIXTURE, folder, dirs_exist_ok=True)
    load_tokenizer(folder).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tok(tokenizer_dir: Path):
    return load_tokenizer(tokenizer_dir)


def instruct(tokenizer) -> SimpleNamespace:
    """What as_model_input reads of a policy: its name and tokenizer (the 7B's path)."""
    return SimpleNamespace(cfg=PolicyConfig(name="mistral7b_qlora"), tokenizer=tokenizer)


def test_vocabulary_special_ids_and_padding(tok) -> None:
    assert len(tok) == VOCAB
    assert tok.convert_ids_to_tokens([1, 2, 3, 4]) == ["<s>", "</s>", "[INST]", "[/INST]"]
    assert tok.pad_token_id == tok.eos_token_id == 2  # Mistral ships no pad: responses end at EOS
    assert tok.padding_side == "left" and tok.truncation_side == "left"


def test_the_chat_template_round_trip(tok) -> None:
    prompt = render_prompt(stand_in_schema())
    (text,), special = as_model_input(instruct(tok), [prompt])
    ids = tok(text, add_special_tokens=special)["input_ids"]
    assert ids[:2] == [1, 3] and ids[-1] == 4 and ids.count(1) == 1  # <s>[INST] ... [/INST]
    assert tok.decode(ids[2:-1]).strip() == prompt.strip()


def test_token_counts_fit_the_7b_preset(tok) -> None:
    preset = PRESETS["mistral7b_qlora"]
    (text,), special = as_model_input(instruct(tok), [render_prompt(stand_in_schema())])
    prompt_tokens = len(tok(text, add_special_tokens=special)["input_ids"])
    program = "```python\n" + default_program_source() + "```"
    program_tokens = len(tok(program, add_special_tokens=False)["input_ids"])
    # measured: the prompt 323 tokens (as the GPU check counted), the default program 293
    # (the trading default's 461: close to the 512-token cap)
    assert 200 < prompt_tokens < preset["max_prompt_tokens"] / 2
    assert 100 < program_tokens < preset["max_new_tokens"]


def test_the_fence_stop_on_real_tokens(tok) -> None:
    completion = "```python\n" + default_program_source() + "```\nThis pipeline uses LightGBM."
    ids = tok(completion, add_special_tokens=False)["input_ids"]
    k = tokens_to_fence(tok, ids)
    assert k is not None and k < len(ids)
    assert tok.decode(ids[:k]).rstrip().endswith("```") and "LightGBM." not in tok.decode(ids[:k])


def test_the_4bit_path_on_cpu_with_the_real_vocabulary(tmp_path: Path, tokenizer_dir: Path) -> None:
    import bitsandbytes as bnb

    model_dir = build_scratch_policy(tmp_path / "m", vocab_size=VOCAB)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (model_dir / name).unlink(missing_ok=True)
    for path in tokenizer_dir.iterdir():
        shutil.copy(path, model_dir / path.name)
    cfg = PolicyConfig(name="mistral7b_qlora", device="cpu", max_prompt_tokens=512, max_new_tokens=8,
                       generation_batch_size=4, micro_batch_size=2)
    learner = LearnerActor(cfg, AlgoConfig(epochs=1, minibatch_size=4, learning_rate=1e-2), str(model_dir))
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in learner.policy.modules())
    assert learner.policy.tokenizer.pad_token_id == 2
    before = learner.trainable_state()
    rollouts = learner.generate([render_prompt(stand_in_schema())], n=4)
    assert rollouts.prompt_ids[0, :2].tolist() == [1, 3]  # the chat template reached generate
    stats = learner.update(rollouts, [1.0, 0.0, 0.5, -1.0])
    after = learner.trainable_state()
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    assert any(not torch.equal(before[n], after[n]) for n in before if "lora_" in n)
