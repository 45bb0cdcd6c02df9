"""The learner: the one Ray actor that owns the policy's weights, samples from it, trains it.

Responsible for: loading the policy (:func:`aiforml.policy.model.load_policy`), sampling
rollouts (:meth:`LearnerActor.generate`), one PPO or GRPO update from rollouts and their
rewards (:meth:`LearnerActor.update`: reference log-probs with the adapter switched off,
advantages, then :mod:`aiforml.algo`, and optionally filtered imitation of chosen samples),
checkpoints of adapters, value head, optimizer
and KL controller (:meth:`save` / :meth:`load`). :func:`create_learner` starts it with
``num_gpus=1`` when a GPU is to be used, so Ray pins it to the card; on CPU otherwise.

Not responsible for: prompts, evaluating programs, rewards (they arrive as numbers), the
loop. Nothing else in the system touches model weights.

Usage (driver side)::

    learner = create_learner(cfg.policy, cfg.algo, seed=cfg.seed)
    rollouts = ray.get(learner.generate.remote(prompts, n=4), timeout=600)
    stats = ray.get(learner.update.remote(rollouts, rewards), timeout=600)
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import ray
import torch
from torch import Tensor

from aiforml.algo.core import AdaptiveKLController, FixedKLController
from aiforml.algo.grpo import group_advantages, grpo_update
from aiforml.algo.imitation import imitation_update
from aiforml.algo.minibatch import select
from aiforml.algo.ppo import ppo_advantages, ppo_update
from aiforml.config import AlgoConfig, PolicyConfig
from aiforml.policy.model import PRESET_LAMBDAS, PRESET_LEARNING_RATES, PolicyModel, load_policy
from aiforml.policy.sampling import Rollouts, generate_rollouts, score_responses

_STATE_FILE = "learner_state.pt"


class LearnerActor:
    """Holds the policy, its optimizer and KL controller; use through :func:`create_learner`."""

    def __init__(
        self, policy: PolicyConfig, algo: AlgoConfig, model_path: str | None = None, seed: int = 0
    ) -> None:
        torch.manual_seed(seed)
        self.algo = algo
        self.policy: PolicyModel = load_policy(policy, model_path)
        self.learning_rate = algo.learning_rate or PRESET_LEARNING_RATES[self.policy.cfg.name]
        self.lam = algo.lam if algo.lam is not None else PRESET_LAMBDAS[self.policy.cfg.name]
        self.optimizer = torch.optim.AdamW(
            self.policy.trainable_parameters(), lr=self.learning_rate, weight_decay=0.0
        )
        self.kl_ctl = (
            AdaptiveKLController(algo.kl_coef, algo.kl_target, algo.kl_horizon)
            if algo.adaptive_kl else FixedKLController(algo.kl_coef)
        )
        self.generator = torch.Generator().manual_seed(seed)
        self.updates = 0

    def info(self) -> dict[str, Any]:
        """Which policy was loaded, where, and why; peak GPU memory so far when on CUDA."""
        on_cuda = self.policy.device.type == "cuda"
        return {
            "policy": self.policy.cfg.name, "reason": self.policy.reason,
            "device": str(self.policy.device), "algo": self.algo.name,
            "learning_rate": self.learning_rate, "lam": self.lam,
            "trainable_parameters": sum(p.numel() for p in self.policy.trainable_parameters()),
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if on_cuda else None,
            "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if on_cuda else None,
            "node_id": ray.get_runtime_context().get_node_id() if ray.is_initialized() else None,
        }

    def generate(self, prompts: list[str], n: int = 1) -> Rollouts:
        """Sample ``n`` completions per prompt, with log-probs and values; rows grouped by prompt."""
        start = time.perf_counter()
        rollouts = generate_rollouts(self.policy, prompts, n)
        elapsed = time.perf_counter() - start
        rollouts.stats["time/generate"] = elapsed
        rollouts.stats["tokens_per_s"] = rollouts.stats["response_tokens"] / max(elapsed, 1e-9)
        return rollouts

    def update(
        self, rollouts: Rollouts, rewards: list[float] | Tensor, imitate: list[bool] | None = None
    ) -> dict[str, float]:
        """One PPO or GRPO update from ``rollouts`` and one reward per sample; returns stats.

        Stats are keyed ``ppo/...`` or ``grpo/...`` (losses, ``clip_frac``, ``approx_kl``
        between the rollout and updated policies, ``entropy``, ``grad_norm``) plus
        ``time/update``. ``ppo/kl_ref`` is the rollout policy's KL to the reference in nats
        per sequence (what the adaptive controller tracks); ``grpo/kl_ref`` is the loss's
        per-token estimate.

        ``imitate`` (one flag per sample): when ``algo.imitation_coef > 0`` and any is set,
        the RL update is followed by NLL passes over those samples' responses
        (:mod:`aiforml.algo.imitation`), adding ``imitation/loss``, ``imitation/samples``
        and ``imitation/grad_norm``.
        """
        start = time.perf_counter()
        scores = torch.as_tensor(rewards, dtype=torch.float32)
        if scores.shape != (len(rollouts),):
            raise ValueError(f"expected {len(rollouts)} rewards, got shape {tuple(scores.shape)}")
        if not torch.isfinite(scores).all():
            raise ValueError(f"rewards must be finite, got {scores.tolist()}")
        if imitate is not None and len(imitate) != len(rollouts):
            raise ValueError(f"expected {len(rollouts)} imitation flags, got {len(imitate)}")
        batch = self._base_batch(rollouts)
        with self.policy.reference():
            batch["ref_logprobs"], _ = score_responses(
                self.policy, batch["input_ids"], batch["attention_mask"], batch["response_ids"],
                self.policy.cfg.micro_batch_size,
            )
        if self.algo.name == "ppo":
            stats = self._ppo(batch, scores, rollouts)
        else:
            stats = self._grpo(batch, scores, rollouts)
        if imitate is not None:
            stats.update(self._imitate(rollouts, imitate))
        self.updates += 1
        prefix = self.algo.name
        stats[f"{prefix}/score_mean"] = float(scores.mean())
        stats["time/update"] = time.perf_counter() - start
        return stats

    def _base_batch(self, rollouts: Rollouts) -> dict[str, Tensor]:
        return {
            "input_ids": rollouts.input_ids, "attention_mask": rollouts.attention_mask,
            "response_ids": rollouts.response_ids, "response_mask": rollouts.response_mask,
            "old_logprobs": rollouts.logprobs,
        }

    def _to_device(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: v.to(self.policy.device) for k, v in batch.items()}

    def _ppo(self, batch: dict[str, Tensor], scores: Tensor, rollouts: Rollouts) -> dict[str, float]:
        cfg = self.algo
        advantages, returns, pre = ppo_advantages(
            scores, batch["old_logprobs"], batch["ref_logprobs"], rollouts.values,
            batch["response_mask"], kl_coef=self.kl_ctl.value, kl_estimator=cfg.kl_estimator,
            gamma=cfg.gamma, lam=self.lam, whiten_rewards=cfg.whiten_rewards,
            whiten_advantages=cfg.whiten_advantages,
        )
        batch.update(old_values=rollouts.values, advantages=advantages, returns=returns)
        del batch["ref_logprobs"]
        self.policy.train()
        stats = ppo_update(
            self.policy, self.optimizer, self.policy.trainable_parameters(),
            self._to_device(batch), cfg, self.policy.cfg.micro_batch_size, self.generator,
        )
        self.kl_ctl.update(pre["kl_ref"], len(rollouts))
        stats.update({f"ppo/{key}": value for key, value in pre.items()})
        return stats

    def _grpo(self, batch: dict[str, Tensor], scores: Tensor, rollouts: Rollouts) -> dict[str, float]:
        cfg = dataclasses.replace(self.algo, kl_coef=self.kl_ctl.value)
        batch["advantages"] = group_advantages(scores, rollouts.group, cfg.group_scale_std)
        mask = batch["response_mask"]
        kl_old = ((batch["old_logprobs"] - batch["ref_logprobs"]) * mask).sum(dim=1).mean()
        self.policy.train()
        stats = grpo_update(
            self.policy, self.optimizer, self.policy.trainable_parameters(),
            self._to_device(batch), cfg, self.policy.cfg.micro_batch_size, self.generator,
        )
        self.kl_ctl.update(float(kl_old), len(rollouts))
        stats["grpo/kl_coef"] = cfg.kl_coef
        stats["grpo/advantage_abs_mean"] = float(batch["advantages"].abs().mean())
        return stats

    def _imitate(self, rollouts: Rollouts, imitate: list[bool]) -> dict[str, float]:
        rows = torch.tensor(imitate, dtype=torch.bool).nonzero().flatten()
        if self.algo.imitation_coef == 0 or len(rows) == 0:
            return {}
        batch = self._base_batch(rollouts)
        del batch["old_logprobs"]
        self.policy.train()
        return imitation_update(
            self.policy, self.optimizer, self.policy.trainable_parameters(),
            self._to_device(select(batch, rows)), self.algo, self.policy.cfg.micro_batch_size,
            self.generator,
        )

    def trainable_state(self) -> dict[str, Tensor]:
        """CPU copies of every trainable tensor (LoRA, value head), by name."""
        return {n: p.detach().cpu().clone() for n, p in self.policy.named_parameters() if p.requires_grad}

    def save(self, path: str) -> str:
        """Checkpoint adapters, value head, optimizer, KL state and RNGs to directory ``path``."""
        out = Path(path)
        out.mkdir(exist_ok=True)  # never its parent: a save the driver gave up on stays gone
        self.policy.save(out)
        state = {
            "optimizer": self.optimizer.state_dict(), "kl_ctl": self.kl_ctl.state_dict(),
            "updates": self.updates, "generator": self.generator.get_state(),
            # Sampling draws from this process's global RNGs: saved so a resume samples the same.
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        torch.save(state, out / _STATE_FILE)
        return str(out)

    def load(self, path: str) -> None:
        """Restore a checkpoint written by :meth:`save` (same policy and LoRA shape)."""
        self.policy.load(path)
        state = torch.load(Path(path) / _STATE_FILE, map_location=self.policy.device, weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.kl_ctl.load_state_dict(state["kl_ctl"])
        self.updates = int(state["updates"])
        self.generator.set_state(state["generator"].cpu())  # map_location moved it to the GPU
        torch.set_rng_state(state["torch_rng"].cpu())
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])

    def optimizer_state(self) -> dict[str, Any]:
        """The optimizer's state dict (for checks and diagnostics)."""
        return self.optimizer.state_dict()


def wants_gpu(policy: PolicyConfig) -> bool:
    """Whether the learner should hold a GPU: asked for, or (auto) one exists in the cluster."""
    if policy.device == "cpu":
        return False
    if policy.device == "cuda":
        return True
    cluster_gpus = ray.cluster_resources().get("GPU", 0) if ray.is_initialized() else 0
    return torch.cuda.is_available() or cluster_gpus >= 1


def create_learner(
    policy: PolicyConfig, algo: AlgoConfig, model_path: str | None = None, seed: int = 0,
    num_cpus: float = 1, resources: dict[str, float] | None = None,
) -> ray.actor.ActorHandle:
    """Start a :class:`LearnerActor`; ``num_gpus=1`` when a GPU is to be used.

    ``resources``: custom Ray resources (``ray.learner_resources``) that pin it to some nodes.
    """
    num_gpus = 1 if wants_gpu(policy) else 0
    actor = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0,
                       resources=dict(resources or {}))(LearnerActor)
    return actor.remote(policy, algo, model_path, seed)
