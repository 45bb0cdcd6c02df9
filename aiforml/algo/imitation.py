"""Filtered imitation (expert iteration, as in ReST and RAFT): supervised steps on the best samples.

After the RL update, one or more passes of negative log-likelihood over the response tokens
of the cycle's best samples make the programs that ran and scored well more likely
directly, rather than only through an advantage that PPO clips and whitens.

Responsible for: which samples to imitate (:func:`imitation_mask`), the loss
(:func:`imitation_loss`) and the passes over the chosen samples (:func:`imitation_update`).
Not responsible for: models, sampling, Ray or I/O (the update receives a forward function),
nor evaluating programs or telling their model family (the loop passes statuses, rewards
and families in).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from aiforml.algo.core import logprobs_from_logits, masked_mean
from aiforml.algo.minibatch import Batch, run_epochs
from aiforml.algo.ppo import ForwardFn
from aiforml.config import AlgoConfig


def imitation_mask(
    statuses: Sequence[str],
    rewards: Sequence[float | None],
    families: Sequence[str],
    max_family_share: float = 0.5,
) -> list[bool]:
    """Which samples to imitate: ok samples at or above the median reward of the ok ones.

    Nothing is chosen when fewer than 2 samples are ok (no median worth the name). Each model
    family keeps at most ``max_family_share`` of those candidates (at least one), its best
    rewards first, so imitation does not push the policy onto one recipe: when a single
    family holds every candidate, only its better half is imitated.
    """
    assert len(statuses) == len(rewards) == len(families), "one status, reward, family per sample"
    ok = [i for i, status in enumerate(statuses) if status == "ok"]
    if len(ok) < 2:
        return [False] * len(statuses)
    scores = {i: rewards[i] for i in ok}
    assert all(r is not None for r in scores.values()), "an ok sample always has a reward"
    cut = statistics.median(scores.values())
    candidates = sorted((i for i in ok if scores[i] >= cut), key=lambda i: -scores[i])
    cap = max(1, int(max_family_share * len(candidates)))
    taken: Counter[str] = Counter()
    chosen = [False] * len(statuses)
    for i in candidates:
        if taken[families[i]] < cap:
            taken[families[i]] += 1
            chosen[i] = True
    return chosen


def imitation_loss(logprobs: Tensor, mask: Tensor) -> Tensor:
    """Negative log-likelihood per response token: ``-mean(logprobs)`` over ``mask``."""
    return -masked_mean(logprobs, mask)


def imitation_update(
    forward: ForwardFn,
    optimizer: torch.optim.Optimizer,
    params: Iterable[Tensor],
    batch: Batch,
    cfg: AlgoConfig,
    micro_batch_size: int,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """``cfg.imitation_epochs`` passes of ``imitation_coef * NLL`` over ``batch``; stats ``imitation/...``.

    ``batch`` holds ``input_ids``, ``attention_mask`` (prompt + response), ``response_ids``
    and ``response_mask`` of the chosen samples only. The value head gets no gradient.
    ``imitation/loss`` is the NLL in nats per token before the weight.
    """

    def loss_fn(mb: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        mask = mb["response_mask"]
        logits, _ = forward(mb["input_ids"], mb["attention_mask"], mask.shape[1])
        nll = imitation_loss(logprobs_from_logits(logits, mb["response_ids"]), mask)
        return cfg.imitation_coef * nll, {"loss": nll.detach()}

    stats = run_epochs(
        batch, loss_fn, optimizer, params, epochs=cfg.imitation_epochs,
        minibatch_size=cfg.minibatch_size, micro_batch_size=micro_batch_size,
        max_grad_norm=cfg.max_grad_norm, generator=generator,
    )
    return {
        "imitation/loss": stats["loss"], "imitation/grad_norm": stats["grad_norm"],
        "imitation/samples": float(next(iter(batch.values())).shape[0]),
    }
