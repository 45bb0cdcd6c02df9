"""GRPO: group-relative advantages over the n samples of a prompt, no critic.

Each prompt is sampled n times; a sample's advantage is its reward minus the mean reward of
its group, divided by the group's standard deviation (DeepSeekMath, Shao et al. 2024;
``group_scale_std=False`` keeps only the centring, as Dr. GRPO argues). Every response
token carries its sample's advantage into the same clipped surrogate as PPO, and the KL
to the reference enters the loss (``beta = kl_coef``), not the reward.

Responsible for: :func:`group_advantages` and :func:`grpo_update`.
Not responsible for: models, sampling, Ray or I/O (the update receives a forward function).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from aiforml.algo.core import entropy_from_logits, kl_estimate, logprobs_from_logits, masked_mean
from aiforml.algo.minibatch import Batch, run_epochs
from aiforml.algo.ppo import ForwardFn, clipped_policy_loss
from aiforml.config import AlgoConfig


def group_advantages(
    scores: Tensor, groups: Tensor, scale_std: bool = True, eps: float = 1e-6
) -> Tensor:
    """``(r - mean(group)) / (std(group) + eps)`` per sample; 0 for a group of one.

    ``groups`` holds a group id per sample (the index of its prompt). The std is the
    sample (Bessel-corrected) standard deviation, as in the reference implementations.
    """
    scores = scores.float()
    advantages = torch.zeros_like(scores)
    for group in torch.unique(groups):
        members = groups == group
        if int(members.sum()) < 2:
            continue
        centred = scores[members] - scores[members].mean()
        if scale_std:
            centred = centred / (scores[members].std() + eps)
        advantages[members] = centred
    return advantages


def grpo_update(
    forward: ForwardFn,
    optimizer: torch.optim.Optimizer,
    params: Iterable[Tensor],
    batch: Batch,
    cfg: AlgoConfig,
    micro_batch_size: int,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Epochs of the clipped surrogate + ``kl_coef * KL`` over ``batch``; stats ``grpo/...``.

    ``batch`` holds ``input_ids``, ``attention_mask``, ``response_ids``, ``response_mask``,
    ``old_logprobs``, ``ref_logprobs`` and ``advantages`` (one per sample).
    """

    def loss_fn(mb: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        mask = mb["response_mask"]
        logits, _ = forward(mb["input_ids"], mb["attention_mask"], mask.shape[1])
        logprobs = logprobs_from_logits(logits, mb["response_ids"])
        token_advantages = mb["advantages"].unsqueeze(1) * mask
        pg_loss, clip_frac, approx_kl = clipped_policy_loss(
            logprobs, mb["old_logprobs"], token_advantages, mask, cfg.clip_range
        )
        kl_ref = masked_mean(kl_estimate(logprobs, mb["ref_logprobs"], cfg.kl_estimator), mask)
        with torch.set_grad_enabled(cfg.entropy_coef != 0):  # no graph for a stat alone
            entropy = masked_mean(entropy_from_logits(logits), mask)
        loss = pg_loss + cfg.kl_coef * kl_ref - cfg.entropy_coef * entropy
        return loss, {
            "loss": loss.detach(), "policy_loss": pg_loss.detach(), "kl_ref": kl_ref.detach(),
            "clip_frac": clip_frac, "approx_kl": approx_kl, "entropy": entropy.detach(),
        }

    stats = run_epochs(
        batch, loss_fn, optimizer, params, epochs=cfg.epochs, minibatch_size=cfg.minibatch_size,
        micro_batch_size=micro_batch_size, max_grad_norm=cfg.max_grad_norm, generator=generator,
        early_stop_kl=cfg.early_stop_kl,
    )
    return {f"grpo/{key}": value for key, value in stats.items()}
