"""Target horizons, and training targets that never reach into the validation block."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from aiforml.config import MAIN_TARGET_ERAS, DataConfig, SyntheticPricesConfig
from aiforml.data import Dataset, load_dataset, split_dataset, split_eras
from aiforml.data.presets import resolve_spec
from aiforml.data.secret import load_secret, secret_path
from aiforml.data.synthetic import TARGETS, build_targets, simulate_panel
from aiforml.data.targets import numerai_horizon, target_horizons, training_targets

from .conftest import SMALL


@pytest.mark.parametrize(("name", "eras"), [
    ("target", 4), ("target_cyrusd_20", 4), ("target_teager2b_60", 12), ("target_bravo_40", 8),
    ("target_odd", 12), ("target_v4", 12),
])  # fmt: skip
def test_numerai_horizon_from_the_day_suffix_unknown_is_the_longest(name: str, eras: int) -> None:
    assert numerai_horizon(name) == eras


def test_synthetic_horizons_are_the_generators_and_agree_with_the_suffixes(small_data: Dataset) -> None:
    horizons = target_horizons(small_data)
    assert horizons.tolist() == [TARGETS[t][0] for t in small_data.target_names] == [4, 12, 4, 8, 4]
    assert horizons.tolist() == [numerai_horizon(t) for t in small_data.target_names]
    assert horizons[0] == MAIN_TARGET_ERAS
    numerai_like = replace(small_data, name="numerai")
    assert target_horizons(numerai_like).tolist() == horizons.tolist()


def test_no_usable_training_target_shares_a_return_with_validation(small_data: Dataset, small_cfg: DataConfig) -> None:
    """Proof with the generator's own returns: scramble every weekly return from the first
    validation era's week on, rebuild the targets, and every target left usable is unchanged
    (its window ends by the last embargoed era), while the masked ones did change."""
    split = split_dataset(small_data, small_cfg)
    seen = training_targets(small_data, split)
    spec = resolve_spec(SMALL)
    secret = load_secret(secret_path(small_cfg.cache_dir))
    _, panel = simulate_panel(spec, small_cfg.synthetic.seed, secret)
    v_week = int(panel.era_week[split.validation[0]])
    returns = np.diff(panel.cum_returns, axis=0, prepend=0.0)
    returns[v_week:] = np.random.default_rng(1).standard_normal(returns[v_week:].shape)
    scrambled = build_targets(replace(panel, cum_returns=np.cumsum(returns, axis=0)))
    original = build_targets(panel)
    np.testing.assert_array_equal(original, small_data.targets)  # the panel behind small_data
    train = small_data.rows(split.train)
    usable = np.isfinite(seen)
    np.testing.assert_array_equal(scrambled[train][usable], original[train][usable])
    masked = ~usable & np.isfinite(original[train])
    assert masked.sum() > 0
    assert np.mean(scrambled[train][masked] != original[train][masked]) > 0.3
    # the main target is fully usable; the 12-era target of the last training era is not
    assert np.isfinite(seen[:, 0]).all()
    np.testing.assert_array_equal(seen[:, 0], small_data.targets[train, 0])
    last = small_data.eras[train] == split.train[-1]
    assert np.isnan(seen[last, small_data.target_names.index("target_alpha_60")]).all()
    # exactly the rule: era + horizon <= first validation era - 1
    eras, horizons = small_data.eras[train], target_horizons(small_data)
    assert np.array_equal(usable, (eras[:, None] + horizons <= split.validation[0] - 1)
                          & np.isfinite(small_data.targets[train]))


def test_an_embargo_shorter_than_the_main_target_is_refused(small_data: Dataset, small_cfg: DataConfig) -> None:
    with pytest.raises(ValueError, match=r"data.embargo_eras \(3\) must be >= 4.*at least 4"):
        DataConfig(embargo_eras=3).validate()
    with pytest.raises(ValueError, match="data.embargo_eras .*set data.embargo_eras to at least 4"):
        split_dataset(small_data, replace(small_cfg, embargo_eras=3))
    short = split_eras(small_data.eras, 10, 10, 2)
    with pytest.raises(ValueError, match="at least 4"):
        training_targets(small_data, short)


def test_price_targets_handed_over_end_before_validation(tmp_path) -> None:
    cfg = DataConfig(source="synthetic_prices", horizon=5, embargo_eras=5, cache_dir=str(tmp_path),
                     prices=SyntheticPricesConfig(n_assets=2, n_days=600))
    data = load_dataset(cfg)
    split = split_dataset(data, cfg)
    assert target_horizons(data).tolist() == [5]
    seen = training_targets(data, split)
    train = np.flatnonzero(data.rows(split.train))
    # the trading hand-off writes targets[:n_train]: the same rows, nothing to mask
    np.testing.assert_array_equal(seen, data.targets[: len(train)])
    assert np.isfinite(seen).all()
    assert data.eras[train].max() + data.horizon <= split.validation[0] - 1
    with pytest.raises(ValueError, match="at least 5"):
        training_targets(data, split_eras(data.eras, 100, 100, 4))
