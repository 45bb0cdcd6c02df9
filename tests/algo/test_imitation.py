"""Filtered imitation: which samples are chosen, the NLL against hand values, one update on a toy policy."""

import math

import pytest
import torch

from aiforml.algo.imitation import imitation_loss, imitation_mask, imitation_update
from aiforml.config import AlgoConfig


def test_mask_keeps_ok_samples_at_or_above_the_median() -> None:
    statuses = ["ok", "ok", "runtime_error", "ok", "ok", "parse_error"]
    rewards = [0.1, 0.5, -0.3, 0.3, 0.4, -0.3]
    families = ["lgbm", "xgb", "", "torch", "ridge", ""]
    # ok rewards 0.1, 0.5, 0.3, 0.4: median 0.35, so 0.5 and 0.4; failures never
    assert imitation_mask(statuses, rewards, families) == [False, True, False, False, True, False]


def test_mask_counts_a_reward_equal_to_the_median() -> None:
    rewards = [0.2, 0.4, 0.6]  # odd count: the median is a sample's own reward
    assert imitation_mask(["ok"] * 3, rewards, ["a", "b", "c"]) == [False, True, True]


def test_mask_caps_each_model_family_at_half_of_the_candidates() -> None:
    statuses = ["ok"] * 8
    rewards = [0.9, 0.8, 0.7, 0.6, 0.5, 0.1, 0.1, 0.1]
    families = ["lgbm", "lgbm", "lgbm", "xgb", "lgbm", "x", "y", "z"]
    # median 0.55: 4 candidates (3 lgbm, 1 xgb); lgbm keeps its best 2
    assert imitation_mask(statuses, rewards, families) == [True, True, False, True] + [False] * 4


def test_mask_of_one_family_keeps_its_better_half() -> None:
    rewards = [0.1, 0.9, 0.5, 0.7]
    # median 0.6: candidates 0.9 and 0.7, one family: the best one only
    assert imitation_mask(["ok"] * 4, rewards, ["default"] * 4) == [False, True, False, False]
    assert imitation_mask(["ok"] * 4, rewards, ["default"] * 4, max_family_share=1.0) == \
        [False, True, False, True]


@pytest.mark.parametrize("statuses", [[], ["runtime_error"] * 3, ["ok", "timeout", "memory"]])
def test_mask_chooses_nothing_with_fewer_than_two_ok(statuses: list[str]) -> None:
    rewards = [1.0 if s == "ok" else None for s in statuses]
    assert imitation_mask(statuses, rewards, ["lgbm"] * len(statuses)) == [False] * len(statuses)


def test_imitation_loss_is_the_token_mean_nll() -> None:
    logprobs = torch.tensor([[math.log(0.5), math.log(0.25)], [math.log(0.1), 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    expected = (math.log(2) + math.log(4) + math.log(10)) / 3
    assert float(imitation_loss(logprobs, mask)) == pytest.approx(expected)


def test_imitation_update_raises_the_likelihood_of_the_batch(toy_policy) -> None:  # noqa: ANN001
    policy = toy_policy(2, 3)
    batch = {
        "input_ids": torch.zeros(3, 3, dtype=torch.long),
        "attention_mask": torch.ones(3, 3),
        "response_ids": torch.tensor([[0, 1], [0, 1], [0, 2]]),
        "response_mask": torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]]),
    }
    cfg = AlgoConfig(imitation_coef=1.0, imitation_epochs=2, minibatch_size=2)
    opt = torch.optim.SGD(policy.parameters(), lr=0.5)
    stats = imitation_update(policy, opt, policy.parameters(), batch, cfg, micro_batch_size=1)
    probs = policy.logits.softmax(-1)
    assert probs[0, 0] > 1 / 3 and probs[1, 1] > 1 / 3, "imitated tokens more likely"
    assert probs[1, 2] < 1 / 3, "a masked token is not imitated"
    assert torch.equal(policy.values.detach(), torch.zeros(2)), "the value head is untouched"
    assert stats["imitation/samples"] == 3.0
    assert math.log(3) - 0.5 < stats["imitation/loss"] < math.log(3) + 1e-6, "mean NLL over the passes"
