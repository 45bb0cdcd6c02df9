"""Price data for the trading task: the OHLCV loader's errors, the S&P 500, synthetic prices,
and splits by time with an embargo of at least the target horizon."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kurtosis

from aiforml.config import DataConfig, SyntheticPricesConfig
from aiforml.data import load_dataset, split_dataset
from aiforml.data.price_synthetic import generate_prices, simulate_log_returns
from aiforml.data.prices import load_prices


def ohlcv(n: int = 6, asset: str | None = None, start: str = "2020-01-01") -> pd.DataFrame:
    close = 100 + np.arange(n, dtype=float)
    frame = pd.DataFrame({"Date": pd.date_range(start, periods=n).strftime("%Y-%m-%d"), "Open": close - 0.5,
                          "High": close + 1, "Low": close - 1, "Close": close, "Volume": 1000})
    return frame if asset is None else frame.assign(asset=asset)


def test_one_asset_csv_loads_with_the_forward_return_target(tmp_path) -> None:
    path = tmp_path / "spy.csv"
    ohlcv().to_csv(path, index=False)
    data = load_prices(path, horizon=2)
    assert data.asset_names == ("spy",) and data.n_rows == 6
    assert data.eras.tolist() == list(range(6))
    assert data.targets[0, 0] == pytest.approx(102 / 100 - 1)
    assert data.next_return[0] == pytest.approx(101 / 100 - 1)
    assert np.isnan(data.targets[-2:, 0]).all() and np.isnan(data.next_return[-1])


def test_long_table_and_folder_of_files_give_the_same_rows(tmp_path) -> None:
    long = pd.concat([ohlcv(asset="b"), ohlcv(asset="a")])
    long.to_parquet(tmp_path / "long.parquet")
    folder = tmp_path / "assets"
    folder.mkdir()
    ohlcv().to_csv(folder / "a.csv", index=False)
    ohlcv().to_parquet(folder / "b.parquet")
    one, many = load_prices(tmp_path / "long.parquet", 1), load_prices(folder, 1)
    assert one.asset_names == many.asset_names == ("a", "b")
    assert one.assets.tolist()[:4] == [0, 1, 0, 1] and one.eras.tolist()[:4] == [0, 0, 1, 1]
    np.testing.assert_array_equal(one.features, many.features)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda f: f.drop(columns=["Volume"]), r"missing columns \['volume'\]"),
    (lambda f: f.drop(columns=["Date"]), r"missing columns \['date'\]"),
    (lambda f: f.iloc[[0, 2, 1, 3, 4, 5]], "not sorted for asset 'x'"),
    (lambda f: f.iloc[[0, 1, 1, 2, 3, 4]], "duplicated timestamp 2020-01-02"),
    (lambda f: f.assign(Close=f["Close"].where(f.index != 3)), "gap: asset 'x' has no close on 2020-01-04"),
])  # fmt: skip
def test_bad_tables_fail_saying_what_is_wrong(tmp_path, mutate, message) -> None:
    path = tmp_path / "x.csv"
    mutate(ohlcv()).to_csv(path, index=False)
    with pytest.raises(ValueError, match=message):
        load_prices(path, 1)


def test_a_hole_in_time_is_a_gap(tmp_path) -> None:
    table = ohlcv(n=100).drop(index=range(40, 70))
    table.to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(ValueError, match="gap: asset 'x' has no rows between 2020-02-09 .* and 2020-03-11"):
        load_prices(tmp_path / "x.csv", 1)


def test_an_asset_missing_on_a_date_the_others_trade_is_a_gap(tmp_path) -> None:
    table = pd.concat([ohlcv(asset="a"), ohlcv(asset="b").drop(index=4)])
    table.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match="gap: asset 'b' has no open on 2020-01-05"):
        load_prices(tmp_path / "t.csv", 1)


def test_sp500_from_arch_split_by_time_with_embargo() -> None:
    cfg = DataConfig(source="sp500", horizon=5, embargo_eras=5)
    data = load_dataset(cfg)
    split = split_dataset(data, cfg)
    assert data.n_rows == 5031 and str(data.dates[0])[:10] == "1999-01-04"
    assert len(split.validation) == len(split.test) == 504 and split.test[-1] == 5030
    assert split.validation[0] - split.train[-1] == 6 and split.test[0] - split.validation[-1] == 6
    # the last training target ends inside the embargo, before validation starts
    assert split.train[-1] + cfg.horizon < split.validation[0]
    close = data.features[:, 3]
    assert data.targets[100, 0] == pytest.approx(close[105] / close[100] - 1)


def test_embargo_shorter_than_the_horizon_is_refused() -> None:
    with pytest.raises(ValueError, match=r"data.embargo_eras \(2\) must be >= data.horizon \(5\)"):
        DataConfig(source="sp500", horizon=5, embargo_eras=2).validate()
    with pytest.raises(ValueError, match="data.task=numerai does not fit data.source=sp500"):
        DataConfig(source="sp500", task="numerai", embargo_eras=5).validate()


def test_synthetic_prices_have_fat_tails_vol_clustering_and_regimes() -> None:
    cfg = SyntheticPricesConfig(n_assets=3, n_days=3000, seed=1)
    returns, regimes = simulate_log_returns(cfg, secret=None)
    assert kurtosis(returns, axis=0).min() > 1.0  # fatter than normal
    size = np.abs(returns)
    autocorr = [np.corrcoef(size[1:, a], size[:-1, a])[0, 1] for a in range(3)]
    assert min(autocorr) > 0.1  # volatility clusters: big moves follow big moves
    assert 0.2 < regimes.mean() < 0.8 and np.abs(np.diff(regimes)).sum() >= 5  # both regimes, several spells
    assert np.corrcoef(returns.T)[0, 1] > 0.1  # assets move together
    bear, bull = returns[regimes == 1], returns[regimes == 0]
    assert bear.std() > 1.2 * bull.std() and bear.mean() < 0 < bull.mean()  # seed 1: 1.26x the vol
    prices = generate_prices(cfg, horizon=5, secret=None)
    assert prices.asset_names == ("asset_0", "asset_1", "asset_2") and prices.n_rows == 9000
    np.testing.assert_array_equal(prices.features, generate_prices(cfg, horizon=5, secret=None).features)
    high, low = prices.features[:, 1], prices.features[:, 2]
    assert (high >= prices.features[:, [0, 3]].max(axis=1)).all() and (low <= prices.features[:, [0, 3]].min(axis=1)).all()
