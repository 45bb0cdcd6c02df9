"""Named size and strength presets of the synthetic generator, and their resolution.

Responsible for: the ``SyntheticSpec`` record (every knob of the generator, one place),
the ``fast`` and ``realistic`` presets, and applying the overrides of a ``SyntheticConfig``.
Not responsible for: drawing anything (``design.py``, ``market.py``).

Units: weekly idiosyncratic returns have unit variance; every signal component is scaled
to unit cross-sectional variance before its weight applies, so the weights below read as
"standard deviations of weekly return per unit of idiosyncratic noise".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from aiforml.config import SyntheticConfig


@dataclass(frozen=True)
class SyntheticSpec:
    """Every knob of the generator. ``GENERATOR_VERSION`` + this record key the cache.

    Defaults are the ``fast`` preset's strengths; ``realistic`` overrides them."""

    preset: str
    n_eras: int  # total eras (train + validation + test + 2 embargoes)
    rows_per_era: int  # mean rows per era; each era draws +-20 % around it
    n_features: int
    validation_eras: int  # default size of the validation block
    test_eras: int  # default size of the sealed test block
    n_latents: int  # hidden stock characteristics the features are noisy variants of
    n_groups: int  # feature groups (each latent and its features belong to one)
    n_risk: int = 6  # risk factors: dominate raw returns, removed from the targets
    signal_scale: float = 1.0  # multiplies every planted signal weight
    w_linear: float = 0.05  # stable linear premia (a quarter flip sign with the regime)
    w_nonlinear: float = 0.16  # U-shapes and within-group products: trees find them
    w_drift: float = 0.04  # slowly drifting linear premia (AR drift_phi): features that fade
    style_std: float = 0.35  # weekly iid returns on the characteristics (era-level noise)
    risk_std: float = 2.0  # weekly factor-return std (raw returns are mostly risk)
    regime_stay: float = 0.98  # Markov stay probability: spells of about 50 eras
    flip_share: float = 0.25  # share of characteristics whose premium flips with the regime
    slow_share: float = 0.5  # share of slow characteristics (AR phi 0.98-0.995, else 0.7-0.9)
    drift_phi: float = 0.98  # AR coefficient of the drifting premia
    noise_min: float = 0.4  # feature noise std range (per feature, persistent per stock)
    noise_max: float = 1.0
    risk_feature_share: float = 0.10  # features that are noisy proxies of risk exposures
    lag_share: float = 0.2  # features that show a characteristic 1-8 weeks late
    missing_share: float = 0.10  # features missing (all 2) in the early eras
    small_share: float = 0.25  # share of features in the "small" feature set
    medium_share: float = 0.6  # share in "medium" (a superset of "small")


PRESETS: dict[str, SyntheticSpec] = {
    # Demo/test preset: small and fast, with a planted signal several times stronger than
    # real data, so that a better pipeline reliably outscores a worse one at 600 rows/era.
    "fast": SyntheticSpec(
        preset="fast",
        n_eras=228,
        rows_per_era=600,
        n_features=80,
        validation_eras=60,
        test_eras=60,
        n_latents=24,
        n_groups=8,
    ),
    # Numerai-calibrated statistics at Numerai-like sizes (see synthetic.py for figures).
    "realistic": SyntheticSpec(
        preset="realistic",
        n_eras=260,
        rows_per_era=3000,
        n_features=200,
        validation_eras=52,
        test_eras=52,
        n_latents=48,
        n_groups=10,
        w_linear=0.025,
        w_nonlinear=0.055,
        w_drift=0.009,
        style_std=0.15,
        noise_max=1.5,
    ),
}


def resolve_spec(cfg: SyntheticConfig) -> SyntheticSpec:
    """The preset named by ``cfg.preset`` with the sizes ``cfg`` sets."""
    if cfg.preset not in PRESETS:
        raise ValueError(
            f"data.synthetic.preset must be one of {sorted(PRESETS)}, got {cfg.preset!r}"
        )
    spec = PRESETS[cfg.preset]
    overrides: dict[str, Any] = {
        k: getattr(cfg, k)
        for k in ("n_eras", "rows_per_era", "n_features", "signal_scale")
        if getattr(cfg, k) is not None
    }
    spec = replace(spec, **overrides)
    if "n_eras" in overrides:
        spec = _shrink_blocks(spec)
    if "n_features" in overrides:
        # every latent needs a feature of its own; every group at least two latents
        n_latents = max(2, min(spec.n_latents, round(0.9 * spec.n_features) - 1))
        spec = replace(spec, n_latents=n_latents, n_groups=max(1, min(spec.n_groups, n_latents // 2)))
    return spec


def _shrink_blocks(spec: SyntheticSpec) -> SyntheticSpec:
    """Keep the default validation/test blocks at most a quarter of the eras each."""
    quarter = max(1, spec.n_eras // 4)
    return replace(
        spec,
        validation_eras=min(spec.validation_eras, quarter),
        test_eras=min(spec.test_eras, quarter),
    )


def spec_key(spec: SyntheticSpec) -> dict[str, Any]:
    """The spec as plain data, for cache keys and metadata."""
    return asdict(spec)
