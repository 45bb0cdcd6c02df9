"""Price series for the trading task: the ``PriceData`` record and the OHLCV loaders.

    prices = load_sp500(horizon=5)                    # the daily S&P 500 shipped in `arch`, 1999-2018
    prices = load_prices("prices.csv", horizon=5)     # long table with an asset column, or one asset
    prices = load_prices("folder/", horizon=5)        # one CSV/parquet file per asset (name = asset)

Responsible for: reading OHLCV tables (CSV or parquet, one file per asset or one long
table with an ``asset`` column), refusing bad ones with a message that says what is wrong
and where (missing columns, unsorted or duplicated timestamps, gaps: a hole in time, an
asset missing on a date other assets trade, or a missing value), the forward-return target over a horizon,
and a JSON-able ``describe()`` for prompts and tools. ``PriceData`` has the fields of
``aiforml.data.Dataset`` that splitting and the policy's schema read (``eras``,
``features``, ``targets``, names, default block sizes), so ``split_dataset`` cuts it by
time: an "era" here is a period (a trading day), numbered 0, 1, 2, ... in date order.
Not responsible for: generating prices (``price_synthetic.py``), scoring (``aiforml.backtest``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aiforml.data.dataset import EraSplit

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
TIME_COLUMNS = ("date", "timestamp", "time", "datetime")
# A step between timestamps over this many times the median step is a gap (daily data: 10
# days; the S&P 500's longest closure since 1999, after 2001-09-11, was 7 days).
MAX_STEP_RATIO = 10
DEFAULT_BLOCK = 504  # two years of trading days for validation and for the sealed test


@dataclass(frozen=True, eq=False)
class PriceData:
    """OHLCV rows sorted by (period, asset); every asset has a row in every period."""

    eras: np.ndarray  # (n,) int32 period index 0..T-1, ascending
    assets: np.ndarray  # (n,) int16 index into asset_names
    asset_names: tuple[str, ...]
    dates: np.ndarray  # (T,) datetime64[s] of each period
    features: np.ndarray  # (n, 5) float64 open, high, low, close, volume
    targets: np.ndarray  # (n, 1) float64 forward return over `horizon` periods; NaN at the end
    next_return: np.ndarray  # (n,) float64 close-to-close return to the next period; NaN at the end
    horizon: int
    version: str
    name: str
    default_validation_eras: int
    default_test_eras: int
    feature_names: tuple[str, ...] = PRICE_COLUMNS
    target_names: tuple[str, ...] = ("target",)
    feature_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    task: str = "trading"

    @property
    def n_rows(self) -> int:
        return len(self.eras)

    @property
    def unique_eras(self) -> np.ndarray:
        return np.arange(len(self.dates), dtype=np.int32)

    def rows(self, eras: np.ndarray | list[int]) -> np.ndarray:
        """Boolean row mask of the rows whose period is in ``eras``."""
        return np.isin(self.eras, np.asarray(eras, dtype=self.eras.dtype))

    def describe(self, split: EraSplit | None = None) -> dict[str, Any]:
        """The schema as plain data: what a prompt or a tool shows about this data."""
        out: dict[str, Any] = {
            "task": "trading",
            "name": self.name,
            "version": self.version,
            "n_rows": self.n_rows,
            "era_column": "era (int): the period index 0, 1, 2, ... in date order",
            "n_eras": len(self.dates),
            "era_range": [0, len(self.dates) - 1],
            "rows_per_era_mean": float(len(self.asset_names)),
            "feature_columns": list(self.feature_names),
            "feature_dtype": "float64",
            "other_columns": {"date": "datetime64 of the period", "asset": "asset name (str)"},
            "assets": list(self.asset_names),
            "date_range": [str(self.dates[0])[:10], str(self.dates[-1])[:10]],
            "target_columns": list(self.target_names),
            "scoring_target": "target",
            "horizon": self.horizon,
            "target_definition": f"close[t + {self.horizon}] / close[t] - 1 of the same asset",
            "target_nan_share": {"target": round(float(np.isnan(self.targets[:, 0]).mean()), 4)},
        }
        if split is not None:
            out["split"] = {"embargo_eras": split.embargo} | {
                name: {"n_eras": len(block), "era_range": [int(block[0]), int(block[-1])] if len(block) else [],
                       "n_rows": int(self.rows(block).sum()),
                       "date_range": [str(self.dates[block[0]])[:10], str(self.dates[block[-1]])[:10]] if len(block) else []}
                for name, block in split.blocks().items()
            }
        return out


def from_frame(frame: pd.DataFrame, horizon: int, name: str, source: str = "the table") -> PriceData:
    """Validate a long OHLCV table (columns date/asset/open/high/low/close/volume) into PriceData."""
    frame = normalize_columns(frame, source)
    if "asset" not in frame.columns:
        frame = frame.assign(asset=name)
    frame["asset"] = frame["asset"].astype(str)
    check_order(frame, source)
    wide = frame.pivot(index="date", columns="asset", values=list(PRICE_COLUMNS))
    missing = wide.isna()
    if missing.to_numpy().any():
        date, (column, asset) = _first_true(missing)
        raise ValueError(f"{source}: gap: asset {asset!r} has no {column} on {str(date)[:10]} "
                         "(every asset needs a row with every price column on every date)")
    assets = tuple(str(a) for a in wide.columns.get_level_values(1).unique())
    dates = wide.index.to_numpy().astype("datetime64[s]")
    n_periods, n_assets = len(dates), len(assets)
    if n_periods < 3:
        raise ValueError(f"{source}: needs at least 3 dates, got {n_periods}")
    # rows ordered (period, asset): a (T, A, 5) cube flattened period-major
    cube = np.stack([wide[c].to_numpy(dtype=np.float64) for c in PRICE_COLUMNS], axis=-1)
    close = cube[:, :, 3]
    if (close <= 0).any():
        raise ValueError(f"{source}: close prices must be positive")
    target = _forward_return(close, horizon)
    next_ret = _forward_return(close, 1)
    features = cube.reshape(n_periods * n_assets, len(PRICE_COLUMNS))
    digest = hashlib.sha256(features.tobytes() + repr((assets, horizon)).encode()).hexdigest()[:12]
    block = min(DEFAULT_BLOCK, max(1, n_periods // 5))
    return PriceData(
        eras=np.repeat(np.arange(n_periods, dtype=np.int32), n_assets),
        assets=np.tile(np.arange(n_assets, dtype=np.int16), n_periods),
        asset_names=assets, dates=dates, features=features,
        targets=target.reshape(-1, 1), next_return=next_ret.reshape(-1), horizon=horizon,
        version=f"{name}-h{horizon}-{digest}", name=name,
        default_validation_eras=block, default_test_eras=block,
    )  # fmt: skip


def _forward_return(close: np.ndarray, horizon: int) -> np.ndarray:
    """close[t + h] / close[t] - 1 per column, NaN for the last ``h`` periods."""
    out = np.full_like(close, np.nan)
    out[:-horizon] = close[horizon:] / close[:-horizon] - 1.0
    return out


def normalize_columns(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Lower-case names, the time column as ``date`` (from an index too), 'adj close' ignored."""
    frame = frame.copy()
    if not any(str(c).strip().lower() in TIME_COLUMNS for c in frame.columns) and isinstance(
            frame.index, pd.DatetimeIndex):
        frame = frame.reset_index(names="date")
    frame.columns = [str(c).strip().lower().replace(" ", "_") for c in frame.columns]
    time_col = next((c for c in TIME_COLUMNS if c in frame.columns), None)
    missing = [c for c in PRICE_COLUMNS if c not in frame.columns] + ([] if time_col else ["date"])
    if missing:
        raise ValueError(f"{source}: missing columns {missing}; an OHLCV table needs a date column "
                         f"({'/'.join(TIME_COLUMNS)}) and {list(PRICE_COLUMNS)}, optionally 'asset'; "
                         f"it has {list(frame.columns)}")
    frame = frame.rename(columns={time_col: "date"})
    try:
        frame["date"] = pd.to_datetime(frame["date"])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{source}: column {time_col!r} does not parse as dates: {exc}") from exc
    for c in PRICE_COLUMNS:
        if not pd.api.types.is_numeric_dtype(frame[c]):
            raise ValueError(f"{source}: column {c!r} must be numeric, got {frame[c].dtype}")
    keep = ["date", *PRICE_COLUMNS] + (["asset"] if "asset" in frame.columns else [])
    return frame[keep]


def check_order(frame: pd.DataFrame, source: str) -> None:
    """Timestamps strictly increasing within each asset (no duplicates, no unsorted rows) and
    no hole in time: a step over ``MAX_STEP_RATIO`` times the median step is a gap."""
    for asset, dates in frame.groupby("asset", sort=False)["date"]:
        step = np.diff(dates.to_numpy().astype("datetime64[ns]").astype(np.int64))
        if (step == 0).any():
            at = dates.iloc[int(np.flatnonzero(step == 0)[0]) + 1]
            raise ValueError(f"{source}: duplicated timestamp {at} for asset {asset!r}")
        if (step < 0).any():
            k = int(np.flatnonzero(step < 0)[0])
            raise ValueError(f"{source}: timestamps not sorted for asset {asset!r}: "
                             f"{dates.iloc[k + 1]} comes after {dates.iloc[k]}; sort the table by date")
        if len(step) and (step > MAX_STEP_RATIO * np.median(step)).any():
            k = int(np.argmax(step))
            raise ValueError(f"{source}: gap: asset {asset!r} has no rows between {dates.iloc[k]} and "
                             f"{dates.iloc[k + 1]} (over {MAX_STEP_RATIO} times its usual step); "
                             "fill the missing periods or cut the series there")


def _first_true(mask: pd.DataFrame) -> tuple[Any, Any]:
    row, col = np.argwhere(mask.to_numpy())[0]
    return mask.index[row], mask.columns[col]


def read_table(path: Path) -> pd.DataFrame:
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")


def load_prices(path: str | Path, horizon: int) -> PriceData:
    """An OHLCV file (long table, or one asset named after the file) or a folder of per-asset files."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".csv", ".parquet", ".pq"))
        if not files:
            raise ValueError(f"{path}: no .csv or .parquet files in this folder")
        parts = []
        for f in files:
            table = normalize_columns(read_table(f), str(f))
            if "asset" in table.columns:
                raise ValueError(f"{f}: a folder holds one file per asset; this one has an asset column")
            check_order(table.assign(asset=f.stem), str(f))
            parts.append(table.assign(asset=f.stem))
        return from_frame(pd.concat(parts, ignore_index=True), horizon, path.name, str(path))
    if not path.is_file():
        raise ValueError(f"no such price file or folder: {path}")
    return from_frame(read_table(path), horizon, path.stem, str(path))


def load_sp500(horizon: int) -> PriceData:
    """The daily S&P 500 index (1999-2018) that ships inside the ``arch`` package."""
    from arch.data import sp500

    frame = sp500.load().drop(columns=["Adj Close"])
    return from_frame(frame.assign(asset="SP500"), horizon, "sp500", "arch.data.sp500")
