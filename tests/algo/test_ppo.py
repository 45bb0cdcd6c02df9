"""PPO maths against hand-computed values, and one update on a toy differentiable policy."""

import math

import pytest
import torch

from aiforml.algo.ppo import (
    clipped_policy_loss,
    clipped_value_loss,
    compute_gae,
    ppo_advantages,
    ppo_update,
    token_rewards,
)
from aiforml.config import AlgoConfig


def test_gae_hand_values() -> None:
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.6, 0.7]])
    adv, ret = compute_gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=0.5)
    # deltas: 0.1, 0.1, 0.3; A2 = 0.3, A1 = 0.1 + 0.5 * 0.3, A0 = 0.1 + 0.5 * 0.25
    assert torch.allclose(adv, torch.tensor([[0.225, 0.25, 0.3]]))
    assert torch.allclose(ret, torch.tensor([[0.725, 0.85, 1.0]]))


def test_gae_ignores_padding_and_discounts() -> None:
    rewards = torch.tensor([[0.0, 1.0, 9.0]])
    values = torch.tensor([[0.5, 0.6, 99.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    adv, ret = compute_gae(rewards, values, mask, gamma=0.9, lam=1.0)
    assert torch.allclose(adv, torch.tensor([[0.4, 0.4, 0.0]]))
    # lam = 1: the return is the discounted reward-to-go, 0.9 * 1 from the first token
    assert torch.allclose(ret, torch.tensor([[0.9, 1.0, 0.0]]))


def test_gae_lambda_zero_is_one_step_td() -> None:
    rewards, values = torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.5]])
    adv, _ = compute_gae(rewards, values, torch.ones(1, 2), gamma=1.0, lam=0.0)
    assert torch.allclose(adv, torch.tensor([[0.5 - 1.0, 2.0 - 0.5]]))


def test_token_rewards_put_score_on_last_real_token() -> None:
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.1, 0.1, 0.1]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    out = token_rewards(torch.tensor([2.0, -1.0]), kl, mask, kl_coef=0.5)
    assert torch.allclose(out, torch.tensor([[-0.05, 1.9, 0.0], [-0.05, -0.05, -1.05]]))


def test_clipped_policy_loss_hand_values_and_gradient() -> None:
    ratios = torch.tensor([[1.5, 1.5, 0.5, 1.1, 7.0]])
    logprobs = ratios.log().requires_grad_(True)
    old = torch.zeros(1, 5)
    adv = torch.tensor([[1.0, -1.0, -1.0, 2.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])  # the last token is padding
    loss, clip_frac, approx_kl = clipped_policy_loss(logprobs, old, adv, mask, clip_range=0.2)
    # per token max(-A r, -A clip(r)): -1.2 (clipped), 1.5, 0.8 (clipped), -2.2
    assert math.isclose(loss.item(), (-1.2 + 1.5 + 0.8 - 2.2) / 4, abs_tol=1e-6)
    assert math.isclose(clip_frac.item(), 0.5)
    k3 = [(r - 1) - math.log(r) for r in (1.5, 1.5, 0.5, 1.1)]
    assert math.isclose(approx_kl.item(), sum(k3) / 4, abs_tol=1e-6)
    loss.backward()
    # clipped tokens pass no gradient; unclipped: d(-A r)/d log r = -A r, over 4 tokens
    assert torch.allclose(logprobs.grad, torch.tensor([[0.0, 1.5 / 4, 0.0, -2.2 / 4, 0.0]]))


def test_clipped_value_loss_hand_values() -> None:
    values = torch.tensor([[0.5, -0.1, 50.0]])
    old = torch.zeros(1, 3)
    returns = torch.tensor([[1.0, 1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, clip_frac = clipped_value_loss(values, old, returns, mask, clip_range=0.2)
    # token 1: max((0.5-1)^2, (0.2-1)^2) = 0.64; token 2: 1.21 either way
    assert math.isclose(loss.item(), 0.5 * (0.64 + 1.21) / 2, abs_tol=1e-6)
    assert math.isclose(clip_frac.item(), 0.5)


def test_ppo_advantages_whitened_and_kl_reported() -> None:
    mask = torch.ones(2, 3)
    logp = torch.full((2, 3), math.log(0.5))
    ref = torch.full((2, 3), math.log(0.25))
    adv, ret, stats = ppo_advantages(
        torch.tensor([1.0, 0.0]), logp, ref, torch.zeros(2, 3), mask, kl_coef=0.1,
        kl_estimator="k1", gamma=1.0, lam=1.0, whiten_rewards=False, whiten_advantages=True,
    )
    assert math.isclose(stats["kl_ref"], 3 * math.log(2.0), rel_tol=1e-6)
    # lam = gamma = 1, zero values: return = score - kl_coef * remaining KL
    k = 0.1 * math.log(2.0)
    assert torch.allclose(ret[0], torch.tensor([1 - 3 * k, 1 - 2 * k, 1 - k]))
    assert abs(adv.mean().item()) < 1e-6 and adv[0].min() > adv[1].max()


@pytest.mark.parametrize("micro", [1, 4])
def test_ppo_update_moves_towards_advantage(micro: int, toy_policy) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    policy = toy_policy(2, 3)
    batch = {
        "input_ids": torch.zeros(4, 3, dtype=torch.long),
        "attention_mask": torch.ones(4, 3),
        "response_ids": torch.tensor([[0, 1], [0, 1], [2, 2], [2, 2]]),
        "response_mask": torch.ones(4, 2),
        "old_logprobs": torch.full((4, 2), math.log(1 / 3)),
        "old_values": torch.zeros(4, 2),
        "advantages": torch.tensor([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0], [-1.0, -1.0]]),
        "returns": torch.ones(4, 2),
    }
    cfg = AlgoConfig(epochs=2, minibatch_size=4)
    opt = torch.optim.SGD(policy.parameters(), lr=0.5)
    stats = ppo_update(policy, opt, policy.parameters(), batch, cfg, micro_batch_size=micro)
    probs = policy.logits.softmax(-1)
    assert probs[0, 0] > 1 / 3 and probs[1, 1] > 1 / 3 and probs[0, 2] < 1 / 3
    assert (policy.values > 0).all()  # value head moved towards the returns
    assert stats["ppo/optimizer_steps"] == 2.0
    for key in ("policy_loss", "value_loss", "clip_frac", "approx_kl", "entropy", "grad_norm"):
        assert math.isfinite(stats[f"ppo/{key}"])


def test_whitened_rewards_enter_the_returns() -> None:
    mask = torch.ones(2, 1)
    zeros = torch.zeros(2, 1)
    _, ret, _ = ppo_advantages(
        torch.tensor([1.0, 3.0]), zeros, zeros, zeros, mask, kl_coef=0.0, kl_estimator="k1",
        gamma=1.0, lam=1.0, whiten_rewards=True, whiten_advantages=False,
    )
    # mean 2, sample std sqrt(2): (1 - 2) / sqrt(2), (3 - 2) / sqrt(2)
    assert torch.allclose(ret.squeeze(1), torch.tensor([-1.0, 1.0]) / math.sqrt(2.0), atol=1e-6)


def test_the_7b_default_credit_reaches_the_first_token_of_a_500_token_program() -> None:
    # The score sits on the last token, the value head starts at 0: the first token's share
    # is lam ** (T - 1). At 0.95 that is 7.7e-12 for 500 tokens; the 7B preset takes 1.0.
    from aiforml.config import AlgoConfig
    from aiforml.policy.model import PRESET_LAMBDAS

    T = 500
    rewards, values, mask = torch.zeros(1, T), torch.zeros(1, T), torch.ones(1, T)
    rewards[0, -1] = 1.0
    gamma = AlgoConfig().gamma
    adv_7b, _ = compute_gae(rewards, values, mask, gamma=gamma, lam=PRESET_LAMBDAS["mistral7b_qlora"])
    adv_tiny, _ = compute_gae(rewards, values, mask, gamma=gamma, lam=PRESET_LAMBDAS["tiny"])
    assert float(adv_7b[0, 0]) == pytest.approx(1.0)
    assert float(adv_tiny[0, 0]) == pytest.approx(0.95 ** (T - 1), rel=1e-3)


@pytest.mark.parametrize("coef", [0.0, 0.01])
def test_no_entropy_graph_when_its_coefficient_is_zero(coef: float, toy_policy, monkeypatch) -> None:  # noqa: ANN001
    # The entropy over the whole vocabulary is a large graph at a 7B's 32k vocabulary; with a
    # coefficient of 0 it is a statistic only and must be computed without one.
    import aiforml.algo.ppo as ppo

    seen = []
    real = ppo.entropy_from_logits
    monkeypatch.setattr(ppo, "entropy_from_logits", lambda logits: seen.append(torch.is_grad_enabled()) or real(logits))
    policy = toy_policy(2, 3)
    batch = {
        "input_ids": torch.zeros(2, 3, dtype=torch.long), "attention_mask": torch.ones(2, 3),
        "response_ids": torch.tensor([[0, 1], [2, 2]]), "response_mask": torch.ones(2, 2),
        "old_logprobs": torch.full((2, 2), math.log(1 / 3)), "old_values": torch.zeros(2, 2),
        "advantages": torch.ones(2, 2), "returns": torch.ones(2, 2),
    }
    cfg = AlgoConfig(epochs=1, minibatch_size=2, entropy_coef=coef)
    stats = ppo_update(policy, torch.optim.SGD(policy.parameters(), lr=0.1), policy.parameters(), batch, cfg, 2)
    assert seen == [coef != 0] and math.isfinite(stats["ppo/entropy"])
