"""The data secret: created once and private, never shown, and without it no era is rebuilt."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aiforml.config import DataConfig, SyntheticPricesConfig
from aiforml.data import Dataset, load_dataset, split_eras
from aiforml.data.cache import cache_path
from aiforml.data.presets import resolve_spec
from aiforml.data.price_synthetic import generate_prices
from aiforml.data.secret import SECRET_ENV, load_secret, secret_digest, secret_path
from aiforml.data.synthetic import generate

from .conftest import SMALL

SECRET = bytes.fromhex("00112233445566778899aabbccddeeff")
OTHER = bytes.fromhex("ffeeddccbbaa99887766554433221100")


def test_secret_is_made_once_private_and_checked(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    path = secret_path(tmp_path)
    assert path == tmp_path / "data-secret"
    first = load_secret(path)
    assert len(first) == 16 and path.stat().st_mode & 0o777 == 0o600
    assert load_secret(path) == first
    assert load_secret(secret_path(tmp_path / "elsewhere")) != first  # another installation
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        load_secret(path)
    path.write_text("not hex")
    path.chmod(0o600)
    with pytest.raises(ValueError, match="32 hex digits"):
        load_secret(path)
    monkeypatch.setenv(SECRET_ENV, str(tmp_path / "pinned"))
    assert secret_path(tmp_path) == tmp_path / "pinned"


def test_the_secret_shows_nowhere_but_changes_the_version(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    cfg = DataConfig(synthetic=SMALL, cache_dir=str(tmp_path), validation_eras=10, test_eras=10)
    data = load_dataset(cfg)
    hidden = load_secret(secret_path(tmp_path)).hex()
    cached = cache_path(tmp_path, data.name, data.version)
    texts = [data.version, json.dumps(data.describe()), (cached / "meta.json").read_text()]
    assert not any(hidden in text or hidden[:12] in text for text in texts)
    public = generate(resolve_spec(SMALL), 0, secret=None)
    assert data.version not in (public.version, generate(resolve_spec(SMALL), 0, OTHER).version)
    assert secret_digest(SECRET) != secret_digest(OTHER) and SECRET.hex() not in secret_digest(SECRET)


def _rebuilt_target_corr(real: Dataset, rebuilt: Dataset, eras: np.ndarray) -> float:
    """The attack: match each real row to the rebuilt row of the same era with the nearest
    features, read its target, and score it against the real target (mean per-era corr)."""
    corrs = []
    for era in eras:
        a, b = real.eras == era, rebuilt.eras == era
        distance = (real.features[a][:, None, :] != rebuilt.features[b][None, :, :]).sum(axis=2)
        guess = rebuilt.targets[b, 0][distance.argmin(axis=1)]
        corrs.append(np.corrcoef(guess, real.targets[a, 0])[0, 1])
    return float(np.mean(corrs))


def test_public_code_and_the_seed_do_not_rebuild_validation_or_test_targets() -> None:
    spec = resolve_spec(SMALL)
    real = generate(spec, 0, SECRET)
    split = split_eras(real.eras, 10, 10, 4)
    held_out = np.concatenate([split.validation, split.test])
    assert _rebuilt_target_corr(real, generate(spec, 0, SECRET), held_out[:3]) == pytest.approx(1.0)
    for guess in (None, OTHER):
        rebuilt = generate(spec, 0, guess)
        corr = _rebuilt_target_corr(real, rebuilt, held_out)
        assert abs(corr) < 0.05, (guess, corr)
        assert abs(_rebuilt_target_corr(real, rebuilt, split.train[-5:])) < 0.1  # the whole path differs
    # the design is the seed's: the same columns, groups and statistics, other draws
    assert real.feature_groups == rebuilt.feature_groups
    assert np.isnan(real.targets).mean() == pytest.approx(np.isnan(rebuilt.targets).mean(), abs=0.01)


def test_synthetic_prices_need_the_secret_too() -> None:
    cfg = SyntheticPricesConfig(n_assets=2, n_days=500, seed=3)
    real = generate_prices(cfg, 5, SECRET)
    np.testing.assert_array_equal(real.features, generate_prices(cfg, 5, SECRET).features)
    for guess in (None, OTHER):
        rebuilt = generate_prices(cfg, 5, guess)
        assert abs(np.corrcoef(real.next_return[:-2], rebuilt.next_return[:-2])[0, 1]) < 0.1
