"""Week-by-week simulation of a synthetic stock market behind the tournament data.

Responsible for: the persistent pool of stocks and their latent processes (characteristics
with slow and fast AR(1), risk exposures, size, persistent feature noise), the 3-state
Markov regime, drifting premia, and weekly returns

    r[w+1] = mu(C[w], regime[w], drift[w]) + C[w] @ style[w+1] + B[w] @ f[w+1] + m[w+1] + e

(premia signal + iid style returns + risk factors + market + t(4) noise), and for each era
the universe (largest stocks by the size latent, shuffled), its raw features quantized per
era, and its risk exposures. Returns a ``Panel``; targets are built from it elsewhere.
Not responsible for: targets, names, caching (``synthetic.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aiforml.data.design import MAX_LAG, Design
from aiforml.data.presets import SyntheticSpec
from aiforml.data.quantize import quantize_features

LONG_HORIZON = 12  # weeks summed by the longest target (a 60-day style target)
RISK_PHI = 0.995
SIZE_PHI = 0.98
NOISE_PHI = 0.9


@dataclass(frozen=True)
class Panel:
    """The simulated market as the tournament sees it, plus hidden truth for tests."""

    era_rows: np.ndarray  # (E,) rows in each era
    features: np.ndarray  # (n, F) int8, eras concatenated in order
    stock: np.ndarray  # (n,) hidden pool index of each row: the persistent stock
    exposures: np.ndarray  # (n, M) risk exposures of each row at its era
    cum_returns: np.ndarray  # (W, P): row w is the sum of weekly returns 1..w
    era_week: np.ndarray  # (E,) the week index of each era
    regimes: np.ndarray  # (W,) regime state of each week


def pool_size(spec: SyntheticSpec) -> int:
    return int(np.ceil(1.5 * spec.rows_per_era))


def simulate(spec: SyntheticSpec, design: Design, rng: np.random.Generator) -> Panel:
    """Run the weekly simulation and record every era's universe and features."""
    init_rng, regime_rng, shock_rng, era_rng = rng.spawn(4)
    p, k, m, f = pool_size(spec), spec.n_latents, spec.n_risk, spec.n_features
    n_weeks = MAX_LAG + spec.n_eras + LONG_HORIZON + 1
    era_week = MAX_LAG + np.arange(spec.n_eras)
    rows = np.round(spec.rows_per_era * era_rng.uniform(0.8, 1.2, spec.n_eras)).astype(np.int64)
    rows = np.minimum(rows, p)
    regimes = draw_regimes(spec, n_weeks, era_week, regime_rng)
    state = {
        "c": init_rng.standard_normal((p, k)),
        "b": init_rng.standard_normal((p, m)),
        "size": init_rng.standard_normal(p),
        "noise": init_rng.standard_normal((p, f)).astype(np.float32),
        "drift": init_rng.standard_normal(k),
    }
    history = np.empty((MAX_LAG + 1, p, k), dtype=np.float32)
    returns = np.zeros((n_weeks, p))
    features, stocks, exposures = [], [], []
    mu = np.zeros(p)
    for w in range(n_weeks):
        if w > 0:
            returns[w] = _weekly_return(spec, state, mu, shock_rng)
            _step(spec, design, state, shock_rng)
        mu = _expected_return(spec, design, state, regimes[w])
        history[w % (MAX_LAG + 1)] = state["c"]
        t = w - MAX_LAG
        if 0 <= t < spec.n_eras:
            members = era_rng.permutation(np.argsort(-state["size"], kind="stable")[: rows[t]])
            features.append(_era_features(design, state, history, w, t, members))
            stocks.append(members)
            exposures.append(state["b"][members])
    return Panel(
        era_rows=rows,
        features=np.ascontiguousarray(np.concatenate(features)),
        stock=np.concatenate(stocks),
        exposures=np.concatenate(exposures),
        cum_returns=np.cumsum(returns, axis=0),
        era_week=era_week,
        regimes=regimes,
    )


def draw_regimes(
    spec: SyntheticSpec, n_weeks: int, era_week: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """3-state Markov chain; the sealed test block switches to a chain of its own draws.

    Both chains are drawn over every week, so the path before the test block does not
    depend on how long the test block is.
    """
    main_rng, test_rng = rng.spawn(2)
    test_start = int(era_week[max(0, spec.n_eras - spec.test_eras)])
    main, test = _markov_chain(spec, n_weeks, main_rng), _markov_chain(spec, n_weeks, test_rng)
    return np.concatenate([main[:test_start], test[: n_weeks - test_start]])


def _markov_chain(spec: SyntheticSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    state = int(rng.integers(3))
    moves = rng.random(n) > spec.regime_stay
    jumps = rng.integers(1, 3, n)  # to one of the two other states
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        if moves[i]:
            state = (state + int(jumps[i])) % 3
        out[i] = state
    return out


def _ar_step(x: np.ndarray, phi: float | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    eps = rng.standard_normal(x.shape, dtype=x.dtype)
    return phi * x + np.sqrt(1.0 - np.square(phi)) * eps


def _step(spec: SyntheticSpec, design: Design, state: dict, rng: np.random.Generator) -> None:
    state["c"] = _ar_step(state["c"], design.latent_phi, rng)
    state["b"] = _ar_step(state["b"], RISK_PHI, rng)
    state["size"] = _ar_step(state["size"], SIZE_PHI, rng)
    state["noise"] = _ar_step(state["noise"], np.float32(NOISE_PHI), rng).astype(np.float32)
    state["drift"] = _ar_step(state["drift"], spec.drift_phi, rng)


def _expected_return(spec: SyntheticSpec, design: Design, state: dict, regime: int) -> np.ndarray:
    """The planted signal: stable (regime-flipped) linear, drifting linear, non-linear."""
    c = state["c"]
    linear = c @ (design.beta * design.regime_sign[regime])
    drift = c @ state["drift"] / np.sqrt(spec.n_latents)
    u = c[:, design.u_latents]
    nonlinear = (u * u - 1.0) @ design.u_coef
    nonlinear += (c[:, design.pairs[:, 0]] * c[:, design.pairs[:, 1]]) @ design.pair_coef
    return spec.signal_scale * (
        spec.w_linear * linear + spec.w_drift * drift + spec.w_nonlinear * nonlinear
    )


def _weekly_return(
    spec: SyntheticSpec, state: dict, mu: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Returns realized over one week, from the state at the start of the week."""
    p, k = state["c"].shape
    style = rng.standard_normal(k) * spec.style_std / np.sqrt(k)
    factors = rng.standard_normal(state["b"].shape[1]) * spec.risk_std
    market = rng.standard_normal() * spec.risk_std
    idio = rng.standard_t(4, p) / np.sqrt(2.0)  # t(4) has variance 2
    return mu + state["c"] @ style + state["b"] @ factors + market + idio


def _era_features(
    design: Design, state: dict, history: np.ndarray, w: int, t: int, members: np.ndarray
) -> np.ndarray:
    """Raw features of one era's members, quantized to 0..4; missing columns set to 2."""
    raw = np.empty((len(members), len(design.feat_src)))
    for lag in np.unique(design.feat_lag):
        cols = np.flatnonzero((design.feat_lag == lag) & ~design.feat_is_risk)
        c = history[(w - lag) % (MAX_LAG + 1)][members]
        raw[:, cols] = c[:, design.feat_src[cols]] + c[:, design.feat_mix[cols]] * design.feat_mix_w[cols]
    risk = np.flatnonzero(design.feat_is_risk)
    raw[:, risk] = state["b"][members][:, design.feat_src[risk]]
    raw = raw + state["noise"][members] * design.feat_noise
    out = quantize_features(raw)
    out[:, design.feat_start > t] = 2
    return out
