"""Synthetic multi-asset daily prices: regime switching, fat tails, volatility clustering.

    prices = generate_prices(SyntheticPricesConfig(n_assets=3, n_days=2000, seed=0), horizon=5, secret=secret)

Each asset's daily log return is ``mu[regime] + vol_t * eps_t + signal * momentum_t`` where

- ``regime`` follows a 2-state Markov chain shared by all assets (bull: small positive drift,
  low vol; bear: negative drift, about twice the vol; spells of about 100 days);
- ``vol_t`` follows a GARCH(1, 1) recursion per asset (alpha 0.08, beta 0.9: clustering);
- ``eps_t`` is Student t with 4 degrees of freedom scaled to unit variance (fat tails),
  correlated across assets through one common factor (loading 0.5);
- ``momentum_t`` is the asset's mean log return over the last 5 days scaled by its vol: a
  small, stable, planted predictability so that a better program can really score better
  (``signal=0`` removes it).

Prices start at 100; high/low bracket open and close by a half-normal intraday range and
volume follows vol. Drawn with numpy only; no library ships a generator with these
properties for several correlated assets (``arch`` simulates one GARCH series at a time).
Not responsible for: validation and the target (``prices.from_frame``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aiforml.config import SyntheticPricesConfig
from aiforml.data.prices import PriceData, from_frame
from aiforml.data.secret import secret_entropy

MU = (0.0006, -0.0008)  # daily drift per regime (bull, bear)
BASE_VOL = (0.010, 0.022)  # long-run daily vol per regime
STAY = 0.99  # Markov stay probability: spells of about 100 days
GARCH_ALPHA, GARCH_BETA = 0.08, 0.90
DOF = 4.0
FACTOR_LOADING = 0.5
MOMENTUM_DAYS = 5


def _rngs(seed: int, secret: bytes | None) -> tuple[np.random.Generator, np.random.Generator]:
    """The returns' and the bars' generators: from the seed alone, or with the data secret."""
    if secret is None:
        return np.random.default_rng(seed), np.random.default_rng(seed + 1)
    returns_rng, bars_rng = np.random.default_rng(secret_entropy(seed, secret)).spawn(2)
    return returns_rng, bars_rng


def simulate_log_returns(cfg: SyntheticPricesConfig, secret: bytes | None) -> tuple[np.ndarray, np.ndarray]:
    """(T, A) daily log returns and (T,) regimes of the configured generator."""
    rng = _rngs(cfg.seed, secret)[0]
    T, A = cfg.n_days, cfg.n_assets
    scale = np.sqrt((DOF - 2) / DOF)  # unit-variance t draws
    common = rng.standard_t(DOF, size=T) * scale
    own = rng.standard_t(DOF, size=(T, A)) * scale
    eps = FACTOR_LOADING * common[:, None] + np.sqrt(1 - FACTOR_LOADING**2) * own
    regimes = np.zeros(T, dtype=np.int8)
    switch = rng.random(T) > STAY
    for t in range(1, T):
        regimes[t] = 1 - regimes[t - 1] if switch[t] else regimes[t - 1]
    returns = np.zeros((T, A))
    var = np.full(A, BASE_VOL[0] ** 2)
    for t in range(T):
        target_var = BASE_VOL[regimes[t]] ** 2
        if t:
            var = (1 - GARCH_ALPHA - GARCH_BETA) * target_var + GARCH_ALPHA * returns[t - 1] ** 2 + GARCH_BETA * var
        vol = np.sqrt(var)
        past = returns[max(0, t - MOMENTUM_DAYS):t]
        momentum = past.mean(axis=0) / vol if len(past) else np.zeros(A)
        returns[t] = MU[regimes[t]] + vol * (eps[t] + cfg.signal * np.clip(momentum, -3, 3))
    return returns, regimes


def generate_prices(cfg: SyntheticPricesConfig, horizon: int, secret: bytes | None) -> PriceData:
    """Synthetic OHLCV for ``cfg.n_assets`` assets over ``cfg.n_days`` business days.

    With the installation's data ``secret`` (``secret.py``) the whole path draws on it too:
    a program that reran this public code with the config's seed could otherwise compute
    future prices that its features, cut at any point, would agree on (the look-ahead guard
    would not see it). ``secret=None``: the seed alone, for tests.
    """
    returns, _ = simulate_log_returns(cfg, secret)
    rng = _rngs(cfg.seed, secret)[1]
    T, A = returns.shape
    close = 100.0 * np.exp(np.cumsum(returns, axis=0))
    prev = np.vstack([np.full((1, A), 100.0), close[:-1]])
    open_ = prev * np.exp(rng.normal(0, 0.002, size=(T, A)))
    spread = np.abs(rng.normal(0, 0.006, size=(T, A)))
    high = np.maximum(open_, close) * (1 + spread)
    low = np.minimum(open_, close) * (1 - spread)
    volume = np.round(1e6 * (1 + 50 * np.abs(returns)) * rng.lognormal(0, 0.2, size=(T, A)))
    dates = pd.bdate_range("2000-01-03", periods=T)
    frame = pd.DataFrame({
        "date": np.repeat(dates, A),
        "asset": np.tile([f"asset_{a}" for a in range(A)], T),
        **{name: arr.reshape(-1) for name, arr in
           (("open", open_), ("high", high), ("low", low), ("close", close), ("volume", volume))},
    })
    name = f"synthetic-prices-s{cfg.seed}-a{A}-d{T}-m{cfg.signal:g}"
    return from_frame(frame, horizon, name, "the synthetic price generator")
