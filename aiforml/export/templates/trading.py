"""The locked steps of an exported trading pipeline: a text template, never imported.

``aiforml.export.script`` pastes everything below the ``LOCKED STEPS`` marker into a
generated ``positions.py`` after the default steps and the program (hence the F821 waiver).
It holds what the sandbox harness and the trusted backtest do for the trading task: an
OHLCV table read into rows sorted by (date, asset) with ``era`` = the period number,
``create_features`` on every row, the forward return over ``SETTINGS["horizon"]`` periods
as ``target`` (NaN where unknown) for ``create_target``, one fit on the finite targets,
predictions on every row, and positions by the run's rule (aiforml/backtest.py:
``sign`` -1/0/+1, ``clip`` clip(scale * prediction, -1, 1), ``long_only`` 1 when > 0).
``define_cv`` is kept but not called.
"""
# ruff: noqa: F821
import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SETTINGS: dict = {}

# --- LOCKED STEPS ---
LOCKED_PRICES = ("open", "high", "low", "close", "volume")
LOCKED_TIME = ("date", "timestamp", "time", "datetime")


def locked_read_prices(path: Path) -> pd.DataFrame:
    """An OHLCV CSV/parquet (a long table with ``asset``, or one asset named after the file) as
    rows sorted by (date, asset) with ``era``, ``date``, ``asset`` and the price columns."""
    table = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path)
    table.columns = [str(c).strip().lower().replace(" ", "_") for c in table.columns]
    time_col = next((c for c in LOCKED_TIME if c in table.columns), None)
    missing = [c for c in LOCKED_PRICES if c not in table.columns] + ([] if time_col else ["date"])
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; needs a date column and {list(LOCKED_PRICES)}, "
                         f"optionally asset")
    table = table.rename(columns={time_col: "date"})
    table["date"] = pd.to_datetime(table["date"])
    table["asset"] = table["asset"].astype(str) if "asset" in table.columns else path.stem
    if table.duplicated(["date", "asset"]).any():
        raise ValueError(f"{path}: a date appears twice for one asset")
    wide = table.pivot(index="date", columns="asset", values="close")
    if wide.isna().to_numpy().any():
        raise ValueError(f"{path}: every asset needs a row on every date (gaps found)")
    table = table.sort_values(["date", "asset"], kind="stable").reset_index(drop=True)
    table.insert(0, "era", table["date"].rank(method="dense").astype(np.int64) - 1)
    return table[["era", "date", "asset", *LOCKED_PRICES]]


def locked_forward_return(frame: pd.DataFrame, horizon: int) -> np.ndarray:
    """close[t + horizon] / close[t] - 1 of the same asset; NaN for the last ``horizon`` periods."""
    future = frame.groupby("asset")["close"].shift(-horizon)
    return (future / frame["close"] - 1.0).to_numpy(dtype=np.float64)


def locked_fit_predict(frame: pd.DataFrame, train_end, progress=print) -> np.ndarray:
    """Features on every row, the target on rows whose window closes before ``train_end``
    (every known one when None), one fit, a prediction for every row."""
    X = create_features(frame.copy(), list(LOCKED_PRICES))
    if not isinstance(X, pd.DataFrame) or len(X) != len(frame):
        raise ValueError(f"create_features must return a DataFrame with one row per input row ({len(frame)})")
    X = X.reset_index(drop=True)
    X.columns = [str(c) for c in X.columns]
    train = frame.copy()
    train["target"] = locked_forward_return(frame, SETTINGS["horizon"])
    if train_end is not None:
        before = frame.loc[frame["date"] < pd.Timestamp(train_end), "era"]
        if before.empty:
            raise ValueError(f"--train-end {train_end} is before the first date")
        train.loc[train["era"] + SETTINGS["horizon"] > before.max(), "target"] = np.nan
    y = np.asarray(create_target(train), dtype=np.float64).reshape(-1)
    if len(y) != len(frame):
        raise ValueError(f"create_target must return one value per row ({len(frame)}), got {len(y)}")
    finite = np.isfinite(y)
    if not finite.any():
        raise ValueError("no row has a known target: the table is shorter than the horizon")
    progress(f"fitting define_model() on {int(finite.sum())} rows, {X.shape[1]} columns")
    model = define_model()
    model.fit(X[finite], y[finite])
    p = np.asarray(model.predict(X), dtype=np.float64)
    return p[:, 0] if p.ndim == 2 else p


def locked_positions(predictions: np.ndarray) -> np.ndarray:
    """Positions in [-1, 1] by the run's rule; NaN predictions hold no position."""
    p = np.nan_to_num(predictions, nan=0.0)
    rule = SETTINGS["position_rule"]
    if rule == "sign":
        return np.sign(p)
    if rule == "clip":
        return np.clip(SETTINGS["position_scale"] * p, -1.0, 1.0)
    return (p > 0).astype(np.float64)


def locked_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Fit this pipeline on an OHLCV table and write positions.")
    parser.add_argument("prices", type=Path, help="OHLCV CSV or parquet: date, open, high, low, close, volume[, asset]")
    parser.add_argument("--out", type=Path, default=Path("positions.csv"))
    parser.add_argument("--train-end", default=None,
                        help="fit only on targets known before this date (positions after it are out of sample)")
    args = parser.parse_args(argv)
    try:
        frame = locked_read_prices(args.prices)
    except (ValueError, OSError) as exc:
        raise SystemExit(f"error: {exc}") from None
    predictions = locked_fit_predict(frame, args.train_end, progress=lambda m: print(m, file=sys.stderr))
    out = frame[["date", "asset"]].assign(prediction=predictions, position=locked_positions(predictions))
    out.to_csv(args.out, index=False)
    print(f"wrote {len(out)} positions ({out['date'].nunique()} dates) to {args.out}", file=sys.stderr)
    return 0
