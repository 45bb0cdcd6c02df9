"""Sample completions from the policy and score them token by token.

Responsible for: the :class:`Rollouts` record (prompt and response token ids, response
masks, per-token log-probs and values, group ids, decoded text), sampling ``n``
completions per prompt in batches, and :func:`score_responses`, the no-grad forward pass
that gives log-probs and values of given responses (with the adapter on, or off for the
reference policy).

Generation backends are registered by name in ``SAMPLERS`` (``policy.sampler``): a sampler
only turns prompt token ids into response token ids; everything after it is the same for
every backend. ``hf`` is transformers' ``generate`` on the policy itself; a server such as
vLLM serving the same weights would be another (``docs/extending.md``).

Log-probs are recomputed by a forward pass after generation rather than taken from
the backend's scores, so the "old" log-probs of PPO come from exactly the computation
the update differentiates, whichever backend sampled. They are log-probs of the *tempered* distribution; top-k is
off and ``top_p`` (off by default) truncates sampling only, as usual in RLHF code.

Not responsible for: prompts (built elsewhere, passed in as strings), rewards, updates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import StoppingCriteria, StoppingCriteriaList

from aiforml.algo.core import logprobs_from_logits
from aiforml.policy.model import PolicyModel
from aiforml.registry import registrar


@dataclass
class Rollouts:
    """A batch of sampled completions; every tensor on CPU, one row per sample."""

    prompt_ids: Tensor  # [B, P] long, left-padded
    prompt_mask: Tensor  # [B, P] long, 1 on prompt tokens
    response_ids: Tensor  # [B, R] long, right-padded with the pad token
    response_mask: Tensor  # [B, R] float, 1 up to and including the first EOS
    logprobs: Tensor  # [B, R] float, log p(token) under the sampling policy (0 on padding)
    values: Tensor  # [B, R] float, value head's estimate before each token (0 on padding)
    group: Tensor  # [B] long, one id per distinct prompt text (GRPO groups)
    prompts: list[str]  # the prompt of each sample
    texts: list[str]  # decoded responses, special tokens removed
    stats: dict[str, float] = field(default_factory=dict)  # e.g. generation time, tokens

    def __len__(self) -> int:
        return self.response_ids.shape[0]

    @property
    def input_ids(self) -> Tensor:
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)

    @property
    def attention_mask(self) -> Tensor:
        return torch.cat([self.prompt_mask, self.response_mask.long()], dim=1)


# Mistral-7B-Instruct's own format, for a weights folder whose tokenizer carries no template.
MISTRAL_TEMPLATE = "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}"


def as_model_input(policy: PolicyModel, prompts: list[str]) -> tuple[list[str], bool]:
    """The prompts as the model was trained to read them, and whether to add special tokens.

    An instruct model gets each prompt as one user turn of its chat template (the
    tokenizer's, else Mistral's ``[INST] ... [/INST]``), which already holds the BOS token;
    the tiny policy keeps the plain format its warm start was trained on.
    """
    if policy.cfg.name == "tiny":
        return prompts, True
    tok = policy.tokenizer
    template = tok.chat_template or MISTRAL_TEMPLATE
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], chat_template=template,
                                     tokenize=False, add_generation_prompt=True) for p in prompts]
    return texts, False


def prompt_groups(prompts: list[str]) -> Tensor:
    """One group id per sample: samples of the same prompt text share one (GRPO's groups).

    A cycle that asks the same prompt several times (``loop.prompts_per_cycle`` copies of one
    rendered prompt) makes one group of all its samples, not one per copy.
    """
    ids: dict[str, int] = {}
    return torch.tensor([ids.setdefault(p, len(ids)) for p in prompts], dtype=torch.long)


def response_mask_from_ids(response_ids: Tensor, valid: Tensor, eos_token_id: int) -> Tensor:
    """1 on every generated token up to and including the first EOS, 0 after and on padding."""
    is_eos = (response_ids == eos_token_id) & valid.bool()
    eos_before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()  # EOS strictly before t
    return ((eos_before == 0) & valid.bool()).float()


@torch.no_grad()
def score_responses(
    policy: PolicyModel, input_ids: Tensor, attention_mask: Tensor, response_ids: Tensor,
    micro_batch_size: int,
) -> tuple[Tensor, Tensor]:
    """Log-probs and values ``[B, R]`` (on CPU) of ``response_ids`` in eval mode."""
    was_training = policy.training
    policy.eval()
    length = response_ids.shape[1]
    logprobs, values = [], []
    for start in range(0, input_ids.shape[0], micro_batch_size):
        rows = slice(start, start + micro_batch_size)
        logits, value = policy(
            input_ids[rows].to(policy.device), attention_mask[rows].to(policy.device), length
        )
        logprobs.append(logprobs_from_logits(logits, response_ids[rows].to(policy.device)).cpu())
        values.append(value.float().cpu())
    policy.train(was_training)
    return torch.cat(logprobs), torch.cat(values)


FENCE = "```"


def fence_end(text: str) -> int | None:
    """Where the first code block of ``text`` closes (just past its closing fence), or None."""
    first = text.find(FENCE)
    second = text.find(FENCE, first + len(FENCE)) if first >= 0 else -1
    return None if second < 0 else second + len(FENCE)


def tokens_to_fence(tokenizer: Any, ids: list[int]) -> int | None:
    """The fewest leading tokens of ``ids`` whose text holds a closed code block, or None."""
    decode = lambda k: tokenizer.decode(ids[:k], skip_special_tokens=True)  # noqa: E731
    if fence_end(decode(len(ids))) is None:
        return None
    low, high = 1, len(ids)  # the text only grows with k: the first k that closes it
    while low < high:
        mid = (low + high) // 2
        low, high = (low, mid) if fence_end(decode(mid)) is not None else (mid + 1, high)
    return low


class StopAtFence(StoppingCriteria):
    """Ends a row of ``generate`` once its completion has closed its code block: a program is
    one fenced block, and what follows it is neither run nor worth the tokens."""

    def __init__(self, tokenizer: Any, prompt_length: int) -> None:
        self.tokenizer, self.prompt_length = tokenizer, prompt_length

    def __call__(self, input_ids: Tensor, scores: Tensor, **kwargs: Any) -> Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length:], skip_special_tokens=True)
        return torch.tensor([fence_end(t) is not None for t in texts], device=input_ids.device)


# prompt ids [B, P] (left-padded) and mask -> response ids [B, R] (right-padded) and where they are real
Sampler = Callable[[PolicyModel, Tensor, Tensor], tuple[Tensor, Tensor]]
SAMPLERS: dict[str, Sampler] = {}


sampler = registrar(SAMPLERS, "generation backend")  # @sampler(name): chosen with policy.sampler=<name>


def get_sampler(name: str) -> Sampler:
    if name not in SAMPLERS:
        raise ValueError(f"policy.sampler={name}: no such generation backend; backends are {sorted(SAMPLERS)}")
    return SAMPLERS[name]


@sampler("hf")
@torch.no_grad()
def hf_sample(policy: PolicyModel, prompt_ids: Tensor, prompt_mask: Tensor) -> tuple[Tensor, Tensor]:
    """transformers' ``generate`` on the policy: tokens ``[B, R]`` right-padded across chunks,
    and where they are real.

    A row ends at its closing code fence: the tokens ``generate`` pads it with afterwards are
    not real (nor trained on).
    """
    cfg, tok = policy.cfg, policy.tokenizer
    was_training = policy.training
    policy.eval()
    chunks, valids = [], []
    for start in range(0, prompt_ids.shape[0], cfg.generation_batch_size):
        rows = slice(start, start + cfg.generation_batch_size)
        ids = prompt_ids[rows].to(policy.device)
        out = policy.model.generate(
            input_ids=ids, attention_mask=prompt_mask[rows].to(policy.device), do_sample=True,
            temperature=cfg.temperature, top_p=cfg.top_p, top_k=0,
            max_new_tokens=cfg.max_new_tokens, pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            stopping_criteria=StoppingCriteriaList([StopAtFence(tok, ids.shape[1])]),
        )
        generated = out[:, ids.shape[1] :].cpu()
        valid = torch.ones_like(generated)
        for row, tokens in enumerate(generated.tolist()):
            end = tokens_to_fence(tok, tokens)
            if end is not None:
                valid[row, end:] = 0
                generated[row, end:] = tok.pad_token_id
        chunks.append(generated)
        valids.append(valid)
    policy.train(was_training)
    length = max(c.shape[1] for c in chunks)
    response = torch.cat([F.pad(c, (0, length - c.shape[1]), value=tok.pad_token_id) for c in chunks])
    valid = torch.cat([F.pad(v, (0, length - v.shape[1])) for v in valids])
    return response, valid


def generate_rollouts(policy: PolicyModel, prompts: list[str], n: int = 1) -> Rollouts:
    """Sample ``n`` completions of each prompt and score them (log-probs, values)."""
    cfg, tok = policy.cfg, policy.tokenizer
    expanded = [p for p in prompts for _ in range(n)]
    group = prompt_groups(expanded)
    texts, special = as_model_input(policy, expanded)
    enc = tok(texts, padding=True, truncation=True, max_length=cfg.max_prompt_tokens,
              return_tensors="pt", add_special_tokens=special)
    prompt_ids, prompt_mask = enc["input_ids"], enc["attention_mask"]
    response_ids, valid = get_sampler(cfg.sampler)(policy, prompt_ids, prompt_mask)
    mask = response_mask_from_ids(response_ids, valid, tok.eos_token_id)
    response_ids = response_ids.masked_fill(mask == 0, tok.pad_token_id)
    input_ids = torch.cat([prompt_ids, response_ids], dim=1)
    attention = torch.cat([prompt_mask, mask.long()], dim=1)
    logprobs, values = score_responses(policy, input_ids, attention, response_ids,
                                       cfg.micro_batch_size)
    lengths = mask.sum(dim=1).long().tolist()
    texts = tok.batch_decode([row[:k] for row, k in zip(response_ids.tolist(), lengths, strict=True)],
                             skip_special_tokens=True)
    return Rollouts(
        prompt_ids=prompt_ids, prompt_mask=prompt_mask, response_ids=response_ids,
        response_mask=mask, logprobs=logprobs * mask, values=values * mask, group=group,
        prompts=expanded, texts=texts,
        stats={"response_tokens": float(mask.sum()), "samples": float(len(expanded))},
    )
