"""PPO for language models: KL-shaped token rewards, GAE, clipped policy and value losses.

TRL 1.x no longer ships PPO (``from trl import PPOTrainer`` fails under TRL 1.16), so this is ours,
written in the style of CleanRL and veRL: small pure functions on tensors, tested against
hand-computed numbers, plus one update step that runs them over minibatches.

The sequence is the episode and each response token an action. The reward of a sample (a
scalar from the environment) lands on its last response token; every token also pays
``kl_coef * KL(policy || reference)``. GAE over the response tokens turns those rewards
and the value head's estimates into advantages and returns.

Responsible for: :func:`token_rewards`, :func:`compute_gae`, :func:`ppo_advantages`,
:func:`clipped_policy_loss`, :func:`clipped_value_loss`, :func:`ppo_update`.
Not responsible for: models, sampling, Ray or I/O (the update receives a forward function).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from aiforml.algo.core import (
    KLEstimator,
    entropy_from_logits,
    kl_estimate,
    logprobs_from_logits,
    masked_mean,
    masked_sum,
    masked_whiten,
)
from aiforml.algo.minibatch import Batch, run_epochs
from aiforml.config import AlgoConfig

# forward(input_ids, attention_mask, response_len) -> (logits [B, R, V], values [B, R] | None)
ForwardFn = Callable[[Tensor, Tensor, int], tuple[Tensor, Tensor | None]]


def last_token_index(mask: Tensor) -> Tensor:
    """Index of the last 1 in each row of ``mask`` (0 for an empty row)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return (positions * mask.long()).argmax(dim=1)


def token_rewards(scores: Tensor, kl: Tensor, mask: Tensor, kl_coef: float) -> Tensor:
    """Per-token rewards: ``-kl_coef * kl`` everywhere, plus the score on the last token."""
    rewards = -kl_coef * kl * mask
    rows = torch.arange(scores.shape[0], device=scores.device)
    rewards[rows, last_token_index(mask)] += scores.to(rewards.dtype)
    return rewards * mask


def compute_gae(
    rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation over right-padded responses.

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` (``V`` past the last token is 0) and
    ``A_t = delta_t + gamma * lam * A_{t+1}``; ``returns = A + V``. Returns
    ``(advantages, returns)``, both 0 on padding.
    """
    values, rewards = values * mask, rewards * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    length = rewards.shape[1]
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    returns = (advantages + values) * mask
    return advantages, returns


def ppo_advantages(
    scores: Tensor,
    old_logprobs: Tensor,
    ref_logprobs: Tensor,
    old_values: Tensor,
    mask: Tensor,
    *,
    kl_coef: float,
    kl_estimator: KLEstimator,
    gamma: float,
    lam: float,
    whiten_rewards: bool,
    whiten_advantages: bool,
) -> tuple[Tensor, Tensor, dict[str, float]]:
    """Advantages and returns of a rollout batch, and the KL to the reference (per sequence)."""
    if whiten_rewards:
        scores = masked_whiten(scores.float(), torch.ones_like(scores, dtype=torch.float))
    kl = kl_estimate(old_logprobs, ref_logprobs, kl_estimator) * mask
    rewards = token_rewards(scores, kl, mask, kl_coef)
    advantages, returns = compute_gae(rewards, old_values, mask, gamma, lam)
    if whiten_advantages:
        advantages = masked_whiten(advantages, mask)
    kl_per_seq = masked_sum(kl, mask, dim=1)
    stats = {
        "kl_ref": float(kl_per_seq.mean()),
        "kl_coef": kl_coef,
        "non_score_reward": float((-kl_coef * kl_per_seq).mean()),
        "returns_mean": float(masked_mean(returns, mask)),
        "values_mean": float(masked_mean(old_values, mask)),
    }
    return advantages, returns, stats


def clipped_policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, clip_range: float
) -> tuple[Tensor, Tensor, Tensor]:
    """PPO's clipped surrogate: ``mean(max(-A * ratio, -A * clip(ratio, 1 - c, 1 + c)))``.

    Returns ``(loss, clip_frac, approx_kl)``; ``clip_frac`` is the share of tokens whose
    clipped term was the larger (gradient zero), ``approx_kl`` the k3 estimate of
    KL(old || new).
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clip_frac = masked_mean((clipped > unclipped).float(), mask)
    approx_kl = masked_mean(kl_estimate(old_logprobs, logprobs, "k3"), mask)
    return loss, clip_frac.detach(), approx_kl.detach()


def clipped_value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip_range: float
) -> tuple[Tensor, Tensor]:
    """``0.5 * mean(max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2))`` and its clip frac."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    unclipped_loss = (values - returns) ** 2
    clipped_loss = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_loss, clipped_loss), mask)
    clip_frac = masked_mean((clipped_loss > unclipped_loss).float(), mask)
    return loss, clip_frac.detach()


def ppo_update(
    forward: ForwardFn,
    optimizer: torch.optim.Optimizer,
    params: Iterable[Tensor],
    batch: Batch,
    cfg: AlgoConfig,
    micro_batch_size: int,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Several epochs of clipped PPO over ``batch``; stats keyed ``ppo/...``.

    ``batch`` holds ``input_ids``, ``attention_mask`` (prompt + response), ``response_ids``,
    ``response_mask``, ``old_logprobs``, ``old_values``, ``advantages`` and ``returns``.
    """

    def loss_fn(mb: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        mask = mb["response_mask"]
        logits, values = forward(mb["input_ids"], mb["attention_mask"], mask.shape[1])
        assert values is not None, "PPO needs a value head"
        logprobs = logprobs_from_logits(logits, mb["response_ids"])
        pg_loss, clip_frac, approx_kl = clipped_policy_loss(
            logprobs, mb["old_logprobs"], mb["advantages"], mask, cfg.clip_range
        )
        vf_loss, vf_clip_frac = clipped_value_loss(
            values.float(), mb["old_values"], mb["returns"], mask, cfg.clip_range_value
        )
        with torch.set_grad_enabled(cfg.entropy_coef != 0):  # no graph for a stat alone
            entropy = masked_mean(entropy_from_logits(logits), mask)
        loss = pg_loss + cfg.vf_coef * vf_loss - cfg.entropy_coef * entropy
        return loss, {
            "loss": loss.detach(), "policy_loss": pg_loss.detach(), "value_loss": vf_loss.detach(),
            "clip_frac": clip_frac, "value_clip_frac": vf_clip_frac, "approx_kl": approx_kl,
            "entropy": entropy.detach(),
        }

    stats = run_epochs(
        batch, loss_fn, optimizer, params, epochs=cfg.epochs, minibatch_size=cfg.minibatch_size,
        micro_batch_size=micro_batch_size, max_grad_norm=cfg.max_grad_norm, generator=generator,
        early_stop_kl=cfg.early_stop_kl,
    )
    return {f"ppo/{key}": value for key, value in stats.items()}
