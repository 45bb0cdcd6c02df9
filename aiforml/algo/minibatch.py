"""The optimisation loop shared by PPO and GRPO: epochs, minibatches, accumulation, clipping.

Responsible for: shuffling a rollout batch each epoch, cutting it into minibatches (one
optimizer step each) and micro-batches (one forward/backward each, gradients accumulated),
clipping the global gradient norm, and averaging the stats the loss reports.

Not responsible for: what the loss is (the algorithm files pass it in), models or config.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

import torch
from torch import Tensor

Batch = dict[str, Tensor]
LossFn = Callable[[Batch], tuple[Tensor, dict[str, Tensor]]]


def select(batch: Batch, index: Tensor) -> Batch:
    """The rows ``index`` of every tensor in ``batch``."""
    return {key: value[index] for key, value in batch.items()}


def run_epochs(
    batch: Batch,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    params: Iterable[Tensor],
    *,
    epochs: int,
    minibatch_size: int,
    micro_batch_size: int,
    max_grad_norm: float,
    generator: torch.Generator | None = None,
    early_stop_kl: float | None = None,
) -> dict[str, float]:
    """Optimise ``loss_fn`` over ``batch``; return each stat averaged over micro-batches.

    ``early_stop_kl``: after each epoch, stop when that epoch's mean ``approx_kl`` stat (KL
    from the rollout policy to the updated one) exceeds it, so a large step cannot run away
    over the remaining epochs (CleanRL's ``target_kl``); also returns ``epochs_run``.

    A micro-batch's loss (a token mean over its ``response_mask``, or a sample mean when the
    batch has none) is weighted by its share of the minibatch's tokens (samples), so the
    accumulated gradient is that of the whole minibatch's token (sample) mean, whatever
    ``micro_batch_size`` is: weighting by samples made the objective depend on it.
    Also returns ``grad_norm`` (mean pre-clip norm) and ``optimizer_steps``.
    """
    params = [p for p in params if p.requires_grad]
    size = next(iter(batch.values())).shape[0]
    mask = batch.get("response_mask")
    weights = mask.sum(dim=1).float() if mask is not None else torch.ones(size)
    sums: dict[str, float] = defaultdict(float)
    n_micro, norms, epochs_run = 0, [], 0
    for _ in range(epochs):
        epoch_kl, epoch_micro = 0.0, 0
        order = torch.randperm(size, generator=generator)
        for start in range(0, size, minibatch_size):
            minibatch = order[start : start + minibatch_size]
            optimizer.zero_grad(set_to_none=True)
            total = weights[minibatch].sum().clamp(min=1e-8)
            for micro in minibatch.split(micro_batch_size):
                loss, stats = loss_fn(select(batch, micro))
                (loss * (weights[micro].sum() / total)).backward()
                for key, value in stats.items():
                    sums[key] += float(value)
                epoch_kl += float(stats.get("approx_kl", 0.0))
                epoch_micro += 1
                n_micro += 1
            norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            norms.append(float(norm))
            optimizer.step()
        epochs_run += 1
        if early_stop_kl is not None and epoch_kl / epoch_micro > early_stop_kl:
            break
    out = {key: value / n_micro for key, value in sums.items()}
    out["epochs_run"] = float(epochs_run)
    out["grad_norm"] = sum(norms) / len(norms)
    out["optimizer_steps"] = float(len(norms))
    return out
