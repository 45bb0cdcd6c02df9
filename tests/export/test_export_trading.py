"""Export of trading programs: positions.py run as a subprocess on a small OHLCV CSV."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aiforml.export.__main__ import main

MEAN_REVERSION = '''\
def create_features(df, feature_cols):
    import pandas as pd

    close = df.groupby("asset")["close"]
    return pd.DataFrame({"rev_3": -close.pct_change(3), "gap": df["close"] / df["open"] - 1}).fillna(0.0)


def define_model():
    from sklearn.linear_model import Ridge

    return Ridge(alpha=1e-4)
'''


@pytest.fixture
def prices_csv(tmp_path: Path) -> Path:
    """Two assets, 300 business days of a random walk, in the long layout with an asset column."""
    rng = np.random.default_rng(0)
    dates = pd.bdate_range("2020-01-01", periods=300)
    parts = []
    for asset in ("AAA", "BBB"):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(dates))))
        parts.append(pd.DataFrame({"Date": dates, "Asset": asset, "Open": close * (1 + rng.normal(0, 0.002, len(dates))),
                                   "High": close * 1.01, "Low": close * 0.99, "Close": close,
                                   "Volume": rng.integers(1000, 5000, len(dates))}))
    path = tmp_path / "prices.csv"
    pd.concat(parts).to_csv(path, index=False)
    return path


def run_positions(script: Path, prices: Path, out: Path, *extra: str) -> pd.DataFrame:
    proc = subprocess.run([sys.executable, "-I", str(script), str(prices), "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return pd.read_csv(out, parse_dates=["date"])


def test_default_trading_program_turns_a_price_csv_into_positions(trading_run: Path, prices_csv: Path,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "export"
    assert main([str(trading_run), "--default", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["positions.py", "program.py"]
    positions = run_positions(out / "positions.py", prices_csv, tmp_path / "pos.csv")
    assert list(positions.columns) == ["date", "asset", "prediction", "position"]
    assert len(positions) == 600 and positions["date"].nunique() == 300
    assert (positions.groupby("date")["asset"].apply(list) == pd.Series([["AAA", "BBB"]] * 300).values).all()
    # the run's rule (clip, scale 100) applied to the model's predictions
    expected = np.clip(100 * positions["prediction"].to_numpy(), -1, 1)
    np.testing.assert_allclose(positions["position"], expected)
    assert positions["position"].between(-1, 1).all() and positions["position"].nunique() > 2  # a model, not a constant


def test_archived_trading_program_with_a_train_end(trading_run: Path, prices_csv: Path, tmp_path: Path,
                                                   add_programs) -> None:
    (hash_,) = add_programs(trading_run, [(MEAN_REVERSION, "ok", 0.8)])
    out = tmp_path / "export"
    assert main([str(trading_run), "--program", hash_[:8], "--out", str(out)]) == 0
    full = run_positions(out / "positions.py", prices_csv, tmp_path / "full.csv")
    early = run_positions(out / "positions.py", prices_csv, tmp_path / "early.csv", "--train-end", "2020-06-01")
    assert len(full) == len(early) == 600
    assert not np.allclose(full["prediction"].fillna(0), early["prediction"].fillna(0))  # fitted on fewer rows
    proc = subprocess.run([sys.executable, "-I", str(out / "positions.py"), str(tmp_path / "none.csv")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "none.csv" in proc.stderr
