"""The trading task: a price series (one row per period and asset), traded by the predictions.

Feature rows are every row in time order, embargo periods included: a price series needs
its past. ``create_features`` sees OHLCV, each row's period, date and asset; the model sees
only the features it returned. Scoring is :func:`aiforml.backtest.score_trading`: positions
by the configured rule, returns net of costs, the strategy's statistics beside buy-and-hold's;
an annualized validation Sharpe above ``env.trading.leakage_sharpe`` is suspected leakage.
Not responsible for loading prices (``aiforml.data.prices``) or the backtest's maths.
"""

from __future__ import annotations

import numpy as np

from aiforml.backtest import score_trading
from aiforml.program import SplitMetrics
from aiforml.tasks.base import Finding, Task, View


class TradingTask(Task):
    name = "trading"
    target_dtype = np.float64

    def _feature_rows(self) -> np.ndarray:
        return np.arange(self.dataset.n_rows)

    def feature_view(self, n_rows: int) -> View:
        d = self.dataset
        arrays = {"features": np.ascontiguousarray(d.features[:n_rows], dtype=np.float64),
                  "eras": d.eras[:n_rows].astype(np.int32),
                  "assets": d.assets[:n_rows].astype(np.int16),
                  "dates": d.dates[: int(d.eras[n_rows - 1]) + 1]}
        meta = {"feature_names": list(d.feature_names), "feature_groups": {},
                "asset_names": list(d.asset_names)}
        return arrays, meta

    def feature_hint(self) -> str:
        return ", ".join(["date", "asset", *self.dataset.feature_names])

    def describe_row(self, position: int) -> str:
        d = self.dataset
        return f"{d.asset_names[d.assets[position]]}, {str(d.dates[d.eras[position]])[:10]}"

    def score(self, predictions: np.ndarray, rows: np.ndarray, baseline: np.ndarray | None) -> SplitMetrics:
        t, d = self.cfg.trading, self.dataset
        return score_trading(predictions, d.next_return[rows], d.eras[rows], rule=t.position_rule,
                             scale=t.position_scale, cost_bps=t.cost_bps,
                             periods_per_year=t.periods_per_year, baseline=baseline)

    def leakage(self, validation: SplitMetrics) -> Finding | None:
        band = self.cfg.trading.leakage_sharpe
        if validation.sharpe is not None and validation.sharpe > band:
            return "leakage_suspected", (f"validation annualized Sharpe {validation.sharpe:.3f} is above the "
                                         f"leakage band {band}: honest pipelines do not score this high")
        return None
