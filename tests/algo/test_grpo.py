"""GRPO group advantages against hand values; one update on a toy policy."""

import math

import torch

from aiforml.algo.grpo import group_advantages, grpo_update
from aiforml.config import AlgoConfig


def test_group_advantages_hand_values() -> None:
    scores = torch.tensor([1.0, 2.0, 6.0, 10.0, 10.0, 5.0])
    groups = torch.tensor([0, 0, 0, 1, 1, 2])
    adv = group_advantages(scores, groups)
    std = math.sqrt(7.0)  # sample std of (1, 2, 6)
    expected = torch.tensor([-2 / std, -1 / std, 3 / std, 0.0, 0.0, 0.0])
    assert torch.allclose(adv, expected, atol=1e-5)  # equal rewards and lone samples: 0
    centred = group_advantages(scores, groups, scale_std=False)
    assert torch.allclose(centred, torch.tensor([-2.0, -1.0, 3.0, 0.0, 0.0, 0.0]))


def test_group_advantages_interleaved_groups() -> None:
    adv = group_advantages(torch.tensor([0.0, 5.0, 1.0, 5.0]), torch.tensor([0, 1, 0, 1]))
    assert torch.allclose(adv, torch.tensor([-1 / math.sqrt(0.5) / 2, 0.0, 1 / math.sqrt(0.5) / 2, 0.0]), atol=1e-5)


def test_grpo_update_moves_towards_advantage_and_reports_kl(toy_policy) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    policy = toy_policy(2, 3)
    uniform = torch.full((4, 2), math.log(1 / 3))
    batch = {
        "input_ids": torch.zeros(4, 3, dtype=torch.long),
        "attention_mask": torch.ones(4, 3),
        "response_ids": torch.tensor([[0, 1], [0, 1], [2, 2], [2, 2]]),
        "response_mask": torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0], [1.0, 0.0]]),
        "old_logprobs": uniform,
        "ref_logprobs": uniform,
        "advantages": torch.tensor([1.0, 1.0, -1.0, -1.0]),
    }
    cfg = AlgoConfig(name="grpo", epochs=3, minibatch_size=2, kl_estimator="k3")
    opt = torch.optim.SGD(policy.parameters(), lr=0.5)
    stats = grpo_update(policy, opt, policy.parameters(), batch, cfg, micro_batch_size=1)
    probs = policy.logits.softmax(-1)
    assert probs[0, 0] > 1 / 3 and probs[1, 1] > 1 / 3 and probs[0, 2] < 1 / 3
    assert stats["grpo/optimizer_steps"] == 6.0
    assert stats["grpo/kl_ref"] >= 0.0  # k3 is non-negative
    assert policy.values.grad is None or torch.all(policy.values.grad == 0)  # no critic
