"""Synthetic Numerai-like tournament data, deterministic from a seed.

Responsible for: turning a simulated market (``market.py``) into a ``Dataset``: overlapping
multi-week forward-return targets with the risk factors regressed out per era, quantized to
Numerai's five values, auxiliary targets, fresh row ids every era, names, groups and sets.
Not responsible for: the latent processes (``market.py``), the structure draws
(``design.py``), the on-disk cache (``cache.py``).

How it is hard in the ways real data is hard (Numerai's data docs, docs.numer.ai, describe
the eras, obfuscated int features and neutralized targets this imitates):
- a persistent pool of stocks whose characteristics follow slow (phi 0.98-0.995) and fast
  (phi 0.7-0.9) AR(1) processes; rows get fresh ids every era;
- risk factors dominate raw returns and are removed from the targets by per-era
  regression; about 10 % of the features are noisy proxies of the risk exposures;
- a 3-state Markov regime (spells of about 50 eras) flips the linear premium of a quarter
  of the characteristics; premia also drift slowly (AR 0.98), and iid weekly "style"
  returns load on the characteristics, so feature exposure is risky;
- small stable non-linear terms (U-shapes, within-group products) that trees can find and
  linear models cannot; fat-tailed t(4) idiosyncratic noise;
- targets are overlapping forward sums of weekly returns (``target``: 4 weeks, the 20-day
  style main target; ``target_alpha_60``: 12 weeks), so a split without an embargo leaks;
- features are noisy, grouped, partly lagged variants of the characteristics, quantized
  per era to 0..4 in equal fifths; a tenth of them are missing (all 2) in early eras;
  targets are quantized to {0, .25, .5, .75, 1} at 5/20/50/20/5 %.

Presets (``presets.py``); figures from ``benchmarks/calibrate_synthetic.py`` (validation
per-era ``numerai_corr``; LightGBM = the default program's 200 trees, lr 0.05, depth 5,
31 leaves, colsample 0.1, fit in-process on all training eras; embargo 4; 2 cores):

- ``fast`` (default): a DEMO/TEST preset whose planted signal is several times stronger
  than real data (real: corr 0.01-0.03), so that better pipelines reliably score better at
  600 rows per era. 228 eras = 100 train + 4 + 60 validation + 4 + 60 test, 480-720 rows
  per era (about 60k training rows, 137k in all), 80 features (small 20 / medium 48),
  8 groups, 5 targets. Generation about 1 s (up to 3 s on a busy machine), 11 MB of
  features, cached load 0.05 s. Over generator seeds 0-3:
  LightGBM mean corr 0.072 / 0.091 / 0.083 / 0.097, std 0.038-0.056, Sharpe
  1.68 / 1.81 / 1.48 / 2.59; Ridge Sharpe -0.02 / 0.96 / 0.85 / 0.69 (gap to LightGBM
  0.64-1.89); two LightGBM model seeds differ by 0.11-0.51 in Sharpe, less than the
  LightGBM-Ridge gap on every seed; LightGBM with 20 trees scores 0.23 / 0.98 / 0.59 /
  -0.14 below 200 trees. The spread between generator seeds (1.1 in Sharpe) exceeds some
  of these gaps: compare pipelines on one seed. Feature-neutral / plain ratio 0.71-1.15
  (mean 0.86); random-row CV scores 2.9-3.7x (mean 3.3x) the era-forward CV with embargo.
- ``realistic``: Numerai-calibrated statistics at Numerai-like sizes: 260 eras = 148 train
  + 4 + 52 validation + 4 + 52 test, 2400-3600 rows per era (about 444k training rows,
  779k in all), 200 features (small 50 / medium 120), 10 groups. Generation 15-33 s on a
  busy 2-core machine, 156 MB of features, cached load 0.5 s. Measured like the first
  prototype of this generator, with LightGBM on a random 40-feature subset, generator seeds 0 / 1 / 2
  (the prototype's figures in brackets):
  mean corr 0.0196 / 0.0167 / 0.0115, mean 0.0159 (0.0145);
  std 0.019 / 0.018 / 0.018 (0.016); Sharpe 1.03 / 0.95 / 0.63, mean 0.87 (0.92);
  Ridge Sharpe 0.43 / 0.37 / 0.39; two LightGBM model seeds differ by 0.16-0.36 in Sharpe;
  feature-neutral / plain ratio 0.86 / 0.93 / 0.74 (0.70; real data about 0.6);
  random-row CV 3.9 / 3.7 / 3.9x the era-forward CV (3.4x).

Every era's market path also draws on the installation's data secret (``secret.py``): the
config's seed and this public code do not rebuild the validation or test rows. The figures
above were measured without a secret (``secret=None``); a secret changes the draws, not
the statistics (tests/data/test_secret.py).

``GENERATOR_VERSION`` is part of every cache key: bump it whenever the generated data
changes for the same spec and seed.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from aiforml.data.dataset import Dataset
from aiforml.data.design import Design, draw_design
from aiforml.data.market import Panel, simulate
from aiforml.data.presets import SyntheticSpec, spec_key
from aiforml.data.quantize import quantize_target, residualize
from aiforml.data.secret import secret_digest, secret_entropy

GENERATOR_VERSION = "3"

# name -> (weeks summed, risk columns regressed out (None: all, 0: only the mean), first
# era share where the target is known)
TARGETS: dict[str, tuple[int, int | None, float]] = {
    "target": (4, None, 0.0),
    "target_alpha_60": (12, None, 0.0),
    "target_beta_20": (4, 3, 0.1),
    "target_gamma_40": (8, None, 0.25),
    "target_raw_20": (4, 0, 0.0),
}


def synthetic_version(spec: SyntheticSpec, seed: int, secret: bytes | None) -> str:
    """Content id of the data a spec, seed and secret generate (only the secret's hash enters)."""
    hidden = secret_digest(secret) if secret is not None else None
    key = json.dumps({"v": GENERATOR_VERSION, "seed": seed, "secret": hidden, **spec_key(spec)}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def generate(spec: SyntheticSpec, seed: int, secret: bytes | None) -> Dataset:
    """Generate the whole dataset of ``spec``, bit for bit reproducible from ``seed`` and ``secret``.

    The design (which latents drive which features and returns) comes from ``seed`` alone;
    the market path, the universes and the row ids also need ``secret`` (``secret.py``), so
    public code and the config's seed cannot rebuild any era. ``secret=None`` draws them from
    the seed alone: for tests and benchmarks that want the same data everywhere.
    """
    design, panel = simulate_panel(spec, seed, secret)
    id_rng = _rngs(seed, secret)[2]
    eras = np.repeat(np.arange(spec.n_eras, dtype=np.int32), panel.era_rows)
    return Dataset(
        eras=eras,
        features=panel.features,
        targets=build_targets(panel),
        feature_names=design.feature_names,
        target_names=tuple(TARGETS),
        feature_sets=design.feature_sets,
        feature_groups=design.feature_groups,
        version=synthetic_version(spec, seed, secret),
        name=f"synthetic-{spec.preset}",
        default_validation_eras=spec.validation_eras,
        default_test_eras=spec.test_eras,
        ids=fresh_ids(len(eras), id_rng),
    )


def simulate_panel(spec: SyntheticSpec, seed: int, secret: bytes | None) -> tuple[Design, Panel]:
    """The structure and the simulated market behind ``generate(spec, seed, secret)``."""
    design_rng, market_rng, _ = _rngs(seed, secret)
    design = draw_design(spec, design_rng)
    return design, simulate(spec, design, market_rng)


def _rngs(seed: int, secret: bytes | None) -> tuple[np.random.Generator, ...]:
    """Generators of the design (seed only), the market path and the row ids (seed and secret)."""
    design_rng, market_rng, id_rng = np.random.default_rng(seed).spawn(3)
    if secret is not None:
        market_rng, id_rng = np.random.default_rng(secret_entropy(seed, secret)).spawn(2)
    return design_rng, market_rng, id_rng


def build_targets(panel: Panel) -> np.ndarray:
    """(n, t) float32: every target of every era, residualized and quantized per era."""
    n_eras = len(panel.era_rows)
    bounds = np.concatenate([[0], np.cumsum(panel.era_rows)])
    out = np.full((bounds[-1], len(TARGETS)), np.nan, dtype=np.float32)
    for t in range(n_eras):
        lo, hi = bounds[t], bounds[t + 1]
        week, stocks = panel.era_week[t], panel.stock[lo:hi]
        for j, (weeks, n_risk, known_from) in enumerate(TARGETS.values()):
            if t < known_from * n_eras:
                continue
            fwd = panel.cum_returns[week + weeks, stocks] - panel.cum_returns[week, stocks]
            neutral = residualize(fwd, panel.exposures[lo:hi, :n_risk])
            out[lo:hi, j] = quantize_target(neutral)
    return out


def fresh_ids(n: int, rng: np.random.Generator) -> np.ndarray:
    """n distinct int64 ids in a random-looking order: no stock keeps its id across eras."""
    multiplier = int(rng.integers(1 << 40, 1 << 61)) | 1  # odd: a bijection modulo 2**62
    offset = int(rng.integers(0, 1 << 62))
    idx = np.arange(n, dtype=np.uint64)
    mixed = (idx * np.uint64(multiplier) + np.uint64(offset)) & np.uint64((1 << 62) - 1)
    return mixed.astype(np.int64)
