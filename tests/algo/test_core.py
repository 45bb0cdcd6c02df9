"""Masked maths, log-probs, entropy, KL estimators and KL controllers against hand values."""

import math

import pytest
import torch

from aiforml.algo.core import (
    AdaptiveKLController,
    FixedKLController,
    entropy_from_logits,
    kl_estimate,
    logprobs_from_logits,
    masked_mean,
    masked_var,
    masked_whiten,
)

VALUES = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # right-padded responses


def test_masked_mean_ignores_padding() -> None:
    assert torch.isclose(masked_mean(VALUES, MASK), torch.tensor(7.0 / 3.0))
    assert torch.allclose(masked_mean(VALUES, MASK, dim=1), torch.tensor([1.5, 4.0]))
    # an all-padding row averages to 0 rather than NaN
    assert masked_mean(VALUES, torch.zeros_like(MASK)).item() == 0.0


def test_masked_var_hand_values() -> None:
    # entries 1, 2, 4: mean 7/3, squared deviations sum 42/9
    assert torch.isclose(masked_var(VALUES, MASK, unbiased=False), torch.tensor(14.0 / 9.0))
    assert torch.isclose(masked_var(VALUES, MASK), torch.tensor(7.0 / 3.0))


def test_masked_whiten_standardizes_only_real_tokens() -> None:
    out = masked_whiten(VALUES, MASK)
    assert torch.all(out[MASK == 0] == 0)
    assert torch.isclose(masked_mean(out, MASK), torch.tensor(0.0), atol=1e-6)
    assert torch.isclose(masked_var(out, MASK), torch.tensor(1.0), atol=1e-5)
    expected = (torch.tensor([1.0, 2.0, 4.0]) - 7.0 / 3.0) / math.sqrt(7.0 / 3.0)
    assert torch.allclose(out[MASK == 1], expected, atol=1e-6)


def test_logprobs_and_entropy() -> None:
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0]]])  # p = (1/4, 3/4), (1/2, 1/2)
    lp = logprobs_from_logits(logits, torch.tensor([[1, 0]]))
    assert torch.allclose(lp, torch.tensor([[math.log(0.75), math.log(0.5)]]))
    uniform = torch.zeros(1, 1, 4)
    assert torch.isclose(entropy_from_logits(uniform), torch.tensor([[math.log(4.0)]])).all()


def test_kl_estimators_hand_values() -> None:
    logp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    assert torch.isclose(kl_estimate(logp, ref, "k1"), torch.tensor([math.log(2.0)]))
    assert torch.isclose(kl_estimate(logp, ref, "k2"), torch.tensor([0.5 * math.log(2.0) ** 2]))
    assert torch.isclose(kl_estimate(logp, ref, "k3"), torch.tensor([0.5 - 1 + math.log(2.0)]))
    # identical policies: every estimator is exactly 0
    for name in ("k1", "k2", "k3"):
        assert kl_estimate(logp, logp, name).item() == 0.0


def test_kl_estimators_are_unbiased_where_claimed() -> None:
    # sample from p = (0.7, 0.3), reference q = (0.4, 0.6): true KL(p || q)
    p, q = torch.tensor([0.7, 0.3]), torch.tensor([0.4, 0.6])
    true_kl = float((p * (p / q).log()).sum())
    tokens = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    logp, ref = p.log()[tokens], q.log()[tokens]
    for name in ("k1", "k3"):
        assert abs(kl_estimate(logp, ref, name).mean().item() - true_kl) < 0.01


def test_kl_controllers() -> None:
    fixed = FixedKLController(0.1)
    fixed.update(100.0, 64)
    assert fixed.value == 0.1
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=100)
    ctl.update(12.0, 10)  # error clipped to +0.2: x (1 + 0.2 * 10 / 100)
    assert math.isclose(ctl.value, 0.102)
    ctl.update(6.0, 10)  # on target: unchanged
    assert math.isclose(ctl.value, 0.102)
    ctl.update(3.0, 10)  # error -0.5 clipped to -0.2
    assert math.isclose(ctl.value, 0.102 * 0.98)
    restored = AdaptiveKLController(1.0, 6.0, 100)
    restored.load_state_dict(ctl.state_dict())
    assert restored.value == ctl.value


def test_the_default_adaptive_kl_controller_can_move_within_a_default_run() -> None:
    # ppo_sharpe: 14 cycles of 16 samples. At full error (KL far above target) the coefficient
    # must be able to move by a useful factor; with a horizon of 10,000 it moved 0.45 %.
    from aiforml.config import AlgoConfig

    cfg = AlgoConfig()
    ctl = AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon)
    for _ in range(14):
        ctl.update(10 * cfg.kl_target, 16)
    assert ctl.value / cfg.kl_coef == pytest.approx((1 + 0.2 * 16 / cfg.kl_horizon) ** 14)
    assert ctl.value / cfg.kl_coef > 1.5
