"""The synthetic generator: determinism, schema, Numerai's value sets, fresh ids, risk removal."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest

from aiforml.config import SyntheticConfig
from aiforml.data import Dataset
from aiforml.data.market import draw_regimes
from aiforml.data.presets import PRESETS, resolve_spec
from aiforml.data.quantize import quantize_target, residualize
from aiforml.data.synthetic import GENERATOR_VERSION, generate, simulate_panel

SMALL = SyntheticConfig(n_eras=60, rows_per_era=200, n_features=30)


def _small(seed: int) -> Dataset:
    return generate(resolve_spec(SMALL), seed, secret=None)


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = _small(3), _small(3), _small(4)
    assert a.version == b.version != c.version
    for name in ("eras", "features", "ids"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert np.array_equal(a.targets, b.targets, equal_nan=True)
    assert a.feature_names == b.feature_names
    assert not np.array_equal(a.features[:1000], c.features[:1000])


def test_schema_dtypes_and_value_sets(small_data: Dataset) -> None:
    d = small_data
    assert d.eras.dtype == np.int32 and np.all(np.diff(d.eras) >= 0)
    assert d.features.dtype == np.int8 and d.features.flags.c_contiguous
    assert set(np.unique(d.features)) == {0, 1, 2, 3, 4}
    assert d.targets.dtype == np.float32
    assert set(np.unique(d.targets[np.isfinite(d.targets)])) == {0.0, 0.25, 0.5, 0.75, 1.0}
    assert not np.isnan(d.targets[:, 0]).any()
    assert d.target_names[0] == "target" and all(t.startswith("target_") for t in d.target_names[1:])
    assert all(f.startswith("feature_") for f in d.feature_names)
    assert len(set(d.feature_names)) == len(d.feature_names) == 30
    grouped = sorted(f for names in d.feature_groups.values() for f in names)
    assert grouped == sorted(d.feature_names)
    assert set(d.feature_sets["small"]) <= set(d.feature_sets["medium"]) <= set(d.feature_sets["all"])
    rows = np.bincount(d.eras)
    assert rows.min() >= 0.8 * 200 - 1 and rows.max() <= 1.2 * 200 + 1 and rows.std() > 0


def test_feature_bins_are_equal_fifths_per_era_unless_missing(small_data: Dataset) -> None:
    d = small_data
    era = d.eras == d.eras[-1]
    shares = np.stack([(d.features[era] == v).mean(axis=0) for v in range(5)])
    np.testing.assert_allclose(shares, 0.2, atol=0.01)
    first = d.features[d.eras == 0]
    missing = np.all(first == 2, axis=0)
    assert 1 <= missing.sum() <= 0.2 * d.features.shape[1]  # about a tenth start late


def test_target_bins_are_5_20_50_20_5(small_data: Dataset) -> None:
    y = small_data.targets[:, 0]
    shares = np.array([(y == v).mean() for v in (0, 0.25, 0.5, 0.75, 1.0)])
    np.testing.assert_allclose(shares, [0.05, 0.2, 0.5, 0.2, 0.05], atol=0.01)
    assert np.isnan(small_data.targets[small_data.eras == 0]).any()  # late auxiliary targets


def test_quantize_target_exact_shares() -> None:
    y = quantize_target(np.random.default_rng(0).standard_normal(1000))
    counts = [int((y == v).sum()) for v in (0, 0.25, 0.5, 0.75, 1.0)]
    assert counts == [50, 200, 500, 200, 50]


def test_ids_are_fresh_while_stocks_persist() -> None:
    spec = resolve_spec(SMALL)
    _, panel = simulate_panel(spec, 0, secret=None)
    eras = np.repeat(np.arange(spec.n_eras), panel.era_rows)
    same = np.intersect1d(panel.stock[eras == 10], panel.stock[eras == 11])
    assert len(same) > 0.7 * panel.era_rows[10]  # the universe is sticky...
    d = _small(0)
    assert len(np.unique(d.ids)) == len(d.ids)  # ...but no row id repeats, within or across eras
    assert not np.array_equal(panel.stock[eras == 10][:50], panel.stock[eras == 11][:50])


def test_targets_are_risk_neutral_but_raw_returns_are_not() -> None:
    spec = resolve_spec(SMALL)
    _, panel = simulate_panel(spec, 0, secret=None)
    lo, hi, week = 0, panel.era_rows[0], panel.era_week[0]
    stocks, b = panel.stock[lo:hi], panel.exposures[lo:hi]
    raw = panel.cum_returns[week + 4, stocks] - panel.cum_returns[week, stocks]
    raw_r2 = 1 - np.var(residualize(raw, b)) / np.var(raw)
    assert raw_r2 > 0.5  # risk dominates raw returns
    target = generate(spec, 0, secret=None).targets[lo:hi, 0]
    assert np.max(np.abs([np.corrcoef(target, b[:, j])[0, 1] for j in range(b.shape[1])])) < 0.1


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_resolve_with_overrides(preset: str) -> None:
    base = PRESETS[preset]
    spec = resolve_spec(replace(SMALL, preset=preset))
    assert (spec.n_eras, spec.rows_per_era, spec.n_features) == (60, 200, 30)
    assert spec.validation_eras <= 15 and spec.test_eras <= 15
    assert spec.n_latents < 30 and spec.w_linear == base.w_linear
    data = generate(spec, 0, secret=None)
    assert data.features.shape[1] == 30 and data.name == f"synthetic-{preset}"


def test_targets_overlap_within_the_horizon_only() -> None:
    """The same stock's 4-week targets share returns one era apart, not five: why embargo."""
    spec = resolve_spec(SMALL)
    _, panel = simulate_panel(spec, 0, secret=None)
    targets = generate(spec, 0, secret=None).targets[:, 0]
    eras = np.repeat(np.arange(spec.n_eras), panel.era_rows)

    def same_stock_corr(t: int, lag: int) -> float:
        a, b = eras == t, eras == t + lag
        common, ia, ib = np.intersect1d(panel.stock[a], panel.stock[b], return_indices=True)
        return float(np.corrcoef(targets[a][ia], targets[b][ib])[0, 1])

    near = np.mean([same_stock_corr(t, 1) for t in range(20, 40)])
    far = np.mean([same_stock_corr(t, 5) for t in range(20, 40)])
    assert near > 0.5 and far < 0.2, (near, far)


def test_regimes_have_long_spells_and_the_test_block_its_own_draws() -> None:
    spec = replace(resolve_spec(SMALL), n_eras=3000, test_eras=1000)
    weeks = np.arange(3000) + 8
    regimes = draw_regimes(spec, 3020, weeks, np.random.default_rng(0))
    spells = np.diff(np.flatnonzero(np.diff(regimes) != 0))
    assert set(regimes.tolist()) == {0, 1, 2} and 30 < spells.mean() < 80
    other = draw_regimes(replace(spec, test_eras=500), 3020, weeks, np.random.default_rng(0))
    assert np.array_equal(regimes[:1000], other[:1000])  # the path before the test block is kept
    assert not np.array_equal(regimes[-500:], other[-500:])  # the test block redraws its own


# Content of generate(SMALL, seed 0) under each GENERATOR_VERSION. When this test fails
# after a generator change, bump GENERATOR_VERSION (so stale caches are not served) and
# record the new fingerprint here.
FINGERPRINTS = {"3": "be9d233299800a89"}


def test_generated_content_matches_the_generator_version() -> None:
    d = _small(0)
    digest = hashlib.sha256()
    for arr in (d.eras, d.features, d.targets, d.ids):
        digest.update(np.ascontiguousarray(arr).tobytes())
    assert FINGERPRINTS.get(GENERATOR_VERSION) == digest.hexdigest()[:16], (
        "generated data changed: bump GENERATOR_VERSION in aiforml/data/synthetic.py"
    )
