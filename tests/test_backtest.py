"""The trading task's locked scoring against numbers worked out by hand, costs included."""

import math

import numpy as np
import pytest

from aiforml.backtest import max_drawdown, positions, score_trading, statistics

# One asset, four periods: predictions made at t, returns realized from t to t + 1.
PRED = np.array([0.5, -0.2, 0.0, 0.3])
RET = np.array([0.01, 0.02, -0.01, 0.03])
COST_BPS = 10.0  # 0.001 per unit traded


def test_positions_by_rule() -> None:
    p = np.array([0.004, -0.02, 0.0, 0.5])
    assert positions(p, "sign").tolist() == [1, -1, 0, 1]
    assert positions(p, "clip", scale=100).tolist() == pytest.approx([0.4, -1.0, 0.0, 1.0])
    assert positions(p, "long_only").tolist() == [1, 0, 0, 1]


def test_sign_strategy_net_of_costs_by_hand() -> None:
    # positions 1, -1, 0, 1; traded 1, 2, 1, 1; net = pos * r - 0.001 * traded
    # = 0.009, -0.022, -0.001, 0.029
    s = statistics(positions(PRED, "sign")[:, None], RET[:, None], COST_BPS, 252)
    assert s["total_return"] == pytest.approx(1.009 * 0.978 * 0.999 * 1.029 - 1)
    # mean 0.015 / 4; deviations 0.00525, -0.02575, -0.00475, 0.02525: sum of squares 1.35075e-3
    assert s["sharpe"] == pytest.approx(0.00375 / math.sqrt(1.35075e-3 / 3) * math.sqrt(252))
    assert s["max_drawdown"] == pytest.approx(1 - 0.978 * 0.999)  # peak 1.009, trough after two losses
    assert s["turnover"] == pytest.approx(5 / 4)
    assert s["hit_rate"] == pytest.approx(2 / 3)  # held at t = 0, 1, 3; right at 0 and 3


def test_buy_and_hold_by_hand() -> None:
    # always long: only the entry costs; net 0.009, 0.02, -0.01, 0.03
    s = statistics(np.ones((4, 1)), RET[:, None], COST_BPS, 252)
    assert s["total_return"] == pytest.approx(1.009 * 1.02 * 0.99 * 1.03 - 1)
    assert s["max_drawdown"] == pytest.approx(0.01)
    assert s["turnover"] == pytest.approx(0.25)
    assert s["hit_rate"] == pytest.approx(0.75)
    net = np.array([0.009, 0.02, -0.01, 0.03])
    assert s["sharpe"] == pytest.approx(net.mean() / net.std(ddof=1) * math.sqrt(252))


def test_two_assets_clip_rule_equal_weight_and_unknown_last_period() -> None:
    # rows (period, asset); the last period's next return is unknown and is left out
    pred = np.array([0.004, -0.02, 0.001, 0.0, 0.3, 0.3])
    ret = np.array([0.01, 0.02, -0.02, 0.01, np.nan, np.nan])
    eras = np.array([0, 0, 1, 1, 2, 2])
    m = score_trading(pred, ret, eras, rule="clip", scale=100, cost_bps=5, periods_per_year=252)
    # positions [0.4, -1], [0.1, 0]; traded [0.4, 1], [0.3, 1]; cost 0.0005 per unit
    # net t0 = mean(0.004 - 0.0002, -0.02 - 0.0005) = -0.00835; t1 = mean(-0.002 - 0.00015, -0.0005) = -0.001325
    assert m.n_eras == 2
    assert m.total_return == pytest.approx((1 - 0.00835) * (1 - 0.001325) - 1)
    assert m.turnover == pytest.approx((0.7 + 0.65) / 2)
    assert m.hit_rate == pytest.approx(1 / 3)
    assert m.max_drawdown == pytest.approx(1 - (1 - 0.00835) * (1 - 0.001325))
    net = np.array([-0.00835, -0.001325])
    assert m.sharpe == pytest.approx(net.mean() / net.std(ddof=1) * math.sqrt(252))
    # buy-and-hold: mean(0.01, 0.02) - 0.0005, then mean(-0.02, 0.01)
    assert m.bh_total_return == pytest.approx((1 + 0.015 - 0.0005) * (1 - 0.005) - 1)
    assert m.bh_turnover == pytest.approx(0.5)


def test_max_drawdown_counts_a_first_loss_and_is_zero_when_rising() -> None:
    assert max_drawdown(np.array([-0.1, 0.05])) == pytest.approx(0.1)
    assert max_drawdown(np.array([0.01, 0.02])) == 0.0


def test_constant_returns_have_no_sharpe() -> None:
    m = score_trading(np.ones(3), np.array([0.01, 0.01, 0.01]), np.arange(3), rule="sign",
                      scale=1, cost_bps=0, periods_per_year=252)
    assert m.sharpe is None and m.total_return == pytest.approx(1.01**3 - 1)
