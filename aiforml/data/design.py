"""The static structure of one synthetic market: what each latent and feature is.

Responsible for: drawing, once per seed, the characteristics' persistence and groups, the
premia (stable, regime-flipping, non-linear), and each feature's recipe (which latent or
risk exposure it shows, how noisy, how late, from which era it exists), plus the feature
names, groups and sets. Not responsible for: simulating weeks (``market.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aiforml.data.dataset import GROUP_NAMES
from aiforml.data.presets import SyntheticSpec

MAX_LAG = 8  # weeks: the latest a lagged feature shows its characteristic


@dataclass(frozen=True)
class Design:
    """Everything about a synthetic market that does not change from week to week."""

    latent_phi: np.ndarray  # (K,) AR(1) coefficient of each characteristic
    latent_group: np.ndarray  # (K,) group index of each characteristic
    beta: np.ndarray  # (K,) stable linear premia, unit norm
    regime_sign: np.ndarray  # (3, K) sign of each premium in each regime state
    u_latents: np.ndarray  # (U,) characteristics with a U-shaped premium
    u_coef: np.ndarray  # (U,)
    pairs: np.ndarray  # (Q, 2) within-group characteristic pairs with a product premium
    pair_coef: np.ndarray  # (Q,)
    feat_is_risk: np.ndarray  # (F,) bool: feature shows a risk exposure
    feat_src: np.ndarray  # (F,) latent (or risk column) index
    feat_mix: np.ndarray  # (F,) latent index mixed in (same group), -1 for none
    feat_mix_w: np.ndarray  # (F,) weight of the mixed-in latent
    feat_lag: np.ndarray  # (F,) weeks of delay
    feat_noise: np.ndarray  # (F,) std of the persistent noise
    feat_start: np.ndarray  # (F,) first era where the feature exists (before: all 2)
    feature_names: tuple[str, ...]
    feature_groups: dict[str, tuple[str, ...]]
    feature_sets: dict[str, tuple[str, ...]]


def draw_design(spec: SyntheticSpec, rng: np.random.Generator) -> Design:
    """Draw the static structure of a market from ``spec``."""
    k, g = spec.n_latents, min(spec.n_groups, len(GROUP_NAMES))
    if k < 2 * g:
        raise ValueError(f"n_latents ({k}) must be at least twice n_groups ({g})")
    n_slow = round(spec.slow_share * k)
    phi = np.concatenate([rng.uniform(0.98, 0.995, n_slow), rng.uniform(0.7, 0.9, k - n_slow)])
    phi = phi[rng.permutation(k)]
    group = rng.permutation(np.arange(k) % g)
    beta, regime_sign = _draw_linear(spec, rng)
    u_latents, u_coef, pairs, pair_coef = _draw_nonlinear(group, rng)
    recipe = _draw_features(spec, group, rng)
    names, groups = _name_features(recipe["group"], g)
    sets = _feature_sets(names, spec, rng)
    return Design(
        latent_phi=phi,
        latent_group=group,
        beta=beta,
        regime_sign=regime_sign,
        u_latents=u_latents,
        u_coef=u_coef,
        pairs=pairs,
        pair_coef=pair_coef,
        feat_is_risk=recipe["is_risk"],
        feat_src=recipe["src"],
        feat_mix=recipe["mix"],
        feat_mix_w=recipe["mix_w"],
        feat_lag=recipe["lag"],
        feat_noise=recipe["noise"],
        feat_start=recipe["start"],
        feature_names=names,
        feature_groups=groups,
        feature_sets=sets,
    )


def _draw_linear(spec: SyntheticSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    k = spec.n_latents
    # stratified draws (spaced magnitudes, random signs and order) keep the strength of
    # the signal similar from one seed to the next
    beta = rng.choice([-1.0, 1.0], size=k) * rng.permutation(np.linspace(0.2, 1.0, k))
    beta /= np.linalg.norm(beta)
    sign = np.ones((3, k))
    flips = rng.choice(k, size=max(1, round(spec.flip_share * k)), replace=False)
    sign[1, flips] = -1.0  # state 0 keeps the sign, state 1 reverses it, state 2 is mixed
    sign[2, flips] = rng.choice([-1.0, 1.0], size=len(flips))
    return beta, sign


def _draw_nonlinear(
    group: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    k = len(group)
    n_u = max(2, k // 6)
    u_latents = rng.choice(k, size=n_u, replace=False)
    pairs = []
    for gi in rng.permutation(np.unique(group))[: max(2, k // 8)]:
        members = np.flatnonzero(group == gi)
        pairs.append(rng.choice(members, size=2, replace=False))
    u_coef = rng.choice([-1.0, 1.0], size=n_u) / np.sqrt(2.0)
    pair_coef = rng.choice([-1.0, 1.0], size=len(pairs)) * 0.6
    # (c^2 - 1)/sqrt(2) and c_a * c_b have unit variance: scale the whole term to unit variance
    norm = np.sqrt(np.sum((u_coef * np.sqrt(2.0)) ** 2) + np.sum(pair_coef**2))
    return u_latents, u_coef / norm, np.array(pairs, dtype=np.int64), pair_coef / norm


def _draw_features(
    spec: SyntheticSpec, group: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    f, k = spec.n_features, len(group)
    n_risk = max(1, round(spec.risk_feature_share * f))
    n_lat = f - n_risk
    if n_lat < k:
        raise ValueError(f"n_features ({f}) must leave at least one feature per latent ({k})")
    src_lat = np.concatenate([np.arange(k), rng.integers(0, k, n_lat - k)])
    mix = np.full(n_lat, -1)
    mix_w = np.zeros(n_lat)
    for j in np.flatnonzero(rng.random(n_lat) < 0.3):  # grouped variants: blend a sibling
        siblings = np.flatnonzero((group == group[src_lat[j]]) & (np.arange(k) != src_lat[j]))
        mix[j], mix_w[j] = rng.choice(siblings), rng.uniform(0.2, 0.6)
    lag = np.where(rng.random(n_lat) < spec.lag_share, rng.integers(1, MAX_LAG + 1, n_lat), 0)
    src_risk = np.arange(n_risk) % spec.n_risk
    is_risk = np.concatenate([np.zeros(n_lat, bool), np.ones(n_risk, bool)])
    start = np.zeros(f, dtype=np.int64)
    late = rng.choice(f, size=round(spec.missing_share * f), replace=False)
    start[late] = rng.integers(1, max(2, spec.n_eras // 3), len(late))
    order = rng.permutation(f)  # interleave risk proxies among the other columns
    return {
        "is_risk": is_risk[order],
        "src": np.concatenate([src_lat, src_risk])[order],
        "mix": np.concatenate([mix, np.full(n_risk, -1)])[order],
        "mix_w": np.concatenate([mix_w, np.zeros(n_risk)])[order],
        "lag": np.concatenate([lag, np.zeros(n_risk, dtype=lag.dtype)])[order],
        "noise": rng.permutation(np.linspace(spec.noise_min, spec.noise_max, f)),
        "start": start,
        "group": np.concatenate([group[src_lat], rng.integers(0, len(np.unique(group)), n_risk)])[order],
    }


def _name_features(
    feat_group: np.ndarray, n_groups: int
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    counters = [0] * n_groups
    names = []
    for gi in feat_group:
        counters[gi] += 1
        names.append(f"feature_{GROUP_NAMES[gi]}{counters[gi]}")
    groups = {
        GROUP_NAMES[gi]: tuple(n for n, fg in zip(names, feat_group, strict=True) if fg == gi)
        for gi in range(n_groups)
    }
    return tuple(names), groups


def _feature_sets(
    names: tuple[str, ...], spec: SyntheticSpec, rng: np.random.Generator
) -> dict[str, tuple[str, ...]]:
    f = len(names)
    order = rng.permutation(f)
    small = set(order[: max(1, round(spec.small_share * f))].tolist())
    medium = set(order[: max(1, round(spec.medium_share * f))].tolist())
    return {
        "small": tuple(n for i, n in enumerate(names) if i in small),
        "medium": tuple(n for i, n in enumerate(names) if i in medium),
        "all": names,
    }
