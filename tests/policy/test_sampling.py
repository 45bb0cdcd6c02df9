"""Sampling: response masks, rollout shapes, and log-probs that match a fresh forward pass."""

from pathlib import Path

import pytest
import torch

from aiforml.config import PolicyConfig
from aiforml.policy.model import load_policy
from aiforml.policy.sampling import generate_rollouts, response_mask_from_ids, score_responses
from aiforml.policy.scratch import build_scratch_policy


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_scratch_policy(tmp_path_factory.mktemp("tiny_policy"))


def test_response_mask_stops_after_first_eos() -> None:
    eos = 2
    ids = torch.tensor([[5, 6, 2, 7, 2], [5, 5, 5, 5, 5], [2, 0, 0, 0, 0]])
    valid = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    mask = response_mask_from_ids(ids, valid, eos)
    expected = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.float)
    assert torch.equal(mask, expected)


def test_rollouts_are_grouped_masked_and_scored(tiny_model_dir: Path) -> None:
    torch.manual_seed(0)
    policy = load_policy(PolicyConfig(name="tiny", max_new_tokens=12, generation_batch_size=3,
                                      micro_batch_size=2), tiny_model_dir)
    prompts = ["def define_model():", "import lightgbm as lgb\n"]
    r = generate_rollouts(policy, prompts, n=3)
    assert len(r) == 6 and r.group.tolist() == [0, 0, 0, 1, 1, 1]
    assert r.prompts == [prompts[0]] * 3 + [prompts[1]] * 3 and len(r.texts) == 6
    assert r.response_ids.shape[1] <= 12 and r.prompt_ids.shape == r.prompt_mask.shape
    assert r.response_mask.sum() > 0
    assert torch.all(r.logprobs[r.response_mask == 0] == 0)
    assert torch.all(r.logprobs[r.response_mask == 1] < 0)
    # the stored log-probs are what a fresh forward pass of the same model gives
    logprobs, values = score_responses(policy, r.input_ids, r.attention_mask, r.response_ids, 6)
    assert torch.allclose(logprobs * r.response_mask, r.logprobs, atol=1e-5)
    assert torch.allclose(values * r.response_mask, r.values, atol=1e-6)
    # decoded text is the masked response, without special tokens
    first = r.response_ids[0, : int(r.response_mask[0].sum())].tolist()
    assert r.texts[0] == policy.tokenizer.decode(first, skip_special_tokens=True)


def test_scoring_forward_matches_the_logits_generate_sampled_from(tiny_model_dir: Path) -> None:
    """Left-padded prompts: our forward (positions from the mask) equals generate's own logits."""
    policy = load_policy(PolicyConfig(name="tiny", temperature=0.7), tiny_model_dir)
    tok = policy.tokenizer
    enc = tok(["def define_model():", "x"], padding=True, return_tensors="pt")
    policy.eval()
    with torch.no_grad():
        out = policy.model.generate(**enc, do_sample=True, temperature=0.7, top_k=0,
                                    max_new_tokens=6, min_new_tokens=6,
                                    pad_token_id=tok.pad_token_id, output_logits=True,
                                    return_dict_in_generate=True)
        response = out.sequences[:, enc["input_ids"].shape[1] :]
        attention = torch.cat([enc["attention_mask"], torch.ones_like(response)], dim=1)
        logits, _ = policy(out.sequences, attention, response.shape[1])
    sampled = torch.stack(out.logits, dim=1) / 0.7  # generate's raw logits, then tempered
    assert torch.allclose(logits, sampled, atol=1e-4)


def test_groups_are_samples_of_the_same_prompt() -> None:
    # 2 copies of one prompt and another prompt, 2 samples each: the 4 samples of the copies
    # are one group (they were cut into groups of 2 by position before).
    from aiforml.policy.sampling import prompt_groups

    expanded = [p for p in ["a", "a", "b"] for _ in range(2)]
    assert prompt_groups(expanded).tolist() == [0, 0, 0, 0, 1, 1]


def test_an_instruct_model_reads_its_prompt_through_the_chat_template(tiny_model_dir: Path) -> None:
    # The 7B path (any policy but tiny) wraps each prompt in [INST] ... [/INST] with one BOS;
    # the tiny policy keeps its own plain format.
    from aiforml.policy.sampling import as_model_input

    policy = load_policy(PolicyConfig(name="tiny"), tiny_model_dir)
    assert as_model_input(policy, ["write code"]) == (["write code"], True)
    policy.cfg = PolicyConfig(name="mistral7b_qlora")  # same weights, the instruct path
    (text,), special = as_model_input(policy, ["write code"])
    assert text == "<s>[INST] write code [/INST]" and special is False
    ids = policy.tokenizer(text, add_special_tokens=special)["input_ids"]
    assert ids.count(policy.tokenizer.bos_token_id) == 1


def test_generation_ends_at_the_closing_code_fence(tiny_model_dir: Path) -> None:
    from aiforml.policy.sampling import StopAtFence, fence_end, tokens_to_fence

    assert fence_end("```python\nx = 1\n```\nand more") == len("```python\nx = 1\n```")
    assert fence_end("```python\nx = 1\n") is None and fence_end("no code") is None
    tok = load_policy(PolicyConfig(name="tiny"), tiny_model_dir).tokenizer
    ids = tok("```python\nx = 1\n```\nthen words the program does not need", add_special_tokens=False)["input_ids"]
    k = tokens_to_fence(tok, ids)
    assert "```" in tok.decode(ids[:k]).split("python", 1)[1] and fence_end(tok.decode(ids[: k - 1])) is None
    assert tokens_to_fence(tok, ids[: k - 1]) is None
    filler = tok("a", add_special_tokens=False)["input_ids"][:1] * (len(ids) - k + 1)
    rows = torch.tensor([[7] + ids, [7] + ids[: k - 1] + filler])  # one prompt token, then the completions
    assert StopAtFence(tok, 1)(rows, torch.zeros(2)).tolist() == [True, False]


def test_a_registered_generation_backend_samples_and_the_policy_scores_what_it_wrote(tiny_model_dir: Path) -> None:
    """A backend only turns prompt ids into response ids; log-probs and values come from the policy."""
    from aiforml.policy.sampling import SAMPLERS, get_sampler, sampler

    @sampler("test_fixed")
    def fixed(policy, prompt_ids, prompt_mask):  # noqa: ANN001, ANN202 - a backend as a newcomer writes one
        ids = policy.tokenizer("x = 1", add_special_tokens=False)["input_ids"]
        response = torch.tensor([ids] * prompt_ids.shape[0])
        return response, torch.ones_like(response)

    try:
        policy = load_policy(PolicyConfig(name="tiny", sampler="test_fixed", max_new_tokens=12,
                                          generation_batch_size=2, micro_batch_size=2), tiny_model_dir)
        r = generate_rollouts(policy, ["def define_model():"], n=2)
        assert r.texts == ["x = 1", "x = 1"] and torch.all(r.logprobs[r.response_mask == 1] < 0)
        logprobs, _ = score_responses(policy, r.input_ids, r.attention_mask, r.response_ids, 2)
        assert torch.allclose(logprobs * r.response_mask, r.logprobs, atol=1e-5)
    finally:
        del SAMPLERS["test_fixed"]
    with pytest.raises(ValueError, match="policy.sampler=vllm: no such generation backend"):
        get_sampler("vllm")
    with pytest.raises(ValueError, match="'hf' is registered twice"):
        sampler("hf")(fixed)
