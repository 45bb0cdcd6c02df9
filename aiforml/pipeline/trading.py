"""Evaluate one program on the trading task: a price series through the same six steps.

The trusted side of the trading task, an :class:`~aiforml.pipeline.evaluate.Evaluator`
with three differences:

- the hand-off holds every row in time order (training, embargo, validation, embargo,
  test: a price series needs its past), with OHLCV as float64, each row's date and asset,
  and the forward-return targets of the training rows only; the child predicts every row
  after the training block and the trusted side keeps the validation and test ones;
- the look-ahead guard: after a program ran, a second sandboxed run sees the data only up
  to the last of ``env.trading.guard_cuts`` cut points and computes the program's features
  on the rows before each cut, shortest first. Here the trusted side compares them with
  the full run's features; any difference before a cut ends the evaluation with
  ``leakage_suspected`` (a feature that reads the future changes when the future is cut off);
- scoring is :func:`aiforml.backtest.score_trading`: positions by the configured rule,
  returns net of costs, the strategy's statistics beside buy-and-hold's; an annualized
  Sharpe above ``env.trading.leakage_sharpe`` on CV or validation is suspected leakage.

What the guard does not see: a program whose features are honest but whose model keeps the
full data aside and peeks at it when predicting. The Sharpe band above is the check for that.
Not responsible for the backtest's maths (``aiforml.backtest``) or the reward.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from aiforml.backtest import score_trading
from aiforml.data.prices import PriceData
from aiforml.pipeline import checks
from aiforml.pipeline.childio import (
    READ_ERRORS,
    job_prefix,
    load_array,
    load_matrix,
    output_finding,
    remove_tree,
)
from aiforml.pipeline.evaluate import HARNESS, Evaluator
from aiforml.pipeline.handoff import Handoff, default_root, split_key
from aiforml.program import EvalResult, Program, SplitMetrics

# Relative and absolute tolerance of the guard's comparison: honest rolling features agree
# to the last bit on a truncated series; these only absorb summation-order noise.
GUARD_RTOL, GUARD_ATOL = 1e-7, 1e-10


class TradingEvaluator(Evaluator):
    """Scores trading programs against one price series and its time split."""

    task = "trading"
    dataset: PriceData

    def _build_handoff(self) -> Handoff:
        rows = {name: np.flatnonzero(self.dataset.rows(block)) for name, block in self.split.blocks().items()}
        key = split_key(self.dataset, self.split)  # type: ignore[arg-type]
        handoff = Handoff(default_root() / f"prices-{key}", rows["train"], rows["validation"], rows["test"])
        write_price_handoff(handoff.dir, self.dataset, self.dataset.n_rows, len(rows["train"]), self.split.embargo)
        return handoff

    def _job_extras(self) -> dict:
        return {"save_features": True, "feature_hint": ", ".join(["date", "asset", *self.dataset.feature_names])}

    def _run_child(self, program: Program, job_dir: Path):
        self._program = program  # the guard runs the same program once the main run succeeded
        return super()._run_child(program, job_dir)

    # --- scoring ------------------------------------------------------------------------
    def _score(self, result: EvalResult, job_dir: Path, baseline: np.ndarray | None) -> EvalResult:
        started = time.perf_counter()
        n, n_train = self.dataset.n_rows, self.handoff.n_train
        try:
            predictions = load_array(job_dir / "predictions.npy", (n - n_train,))
            features = load_matrix(job_dir / "features.npy", n)
            folds = self._load_folds(job_dir)
            oof = load_array(job_dir / "oof.npy", (n_train,))
        except READ_ERRORS as exc:
            result.status, result.message = output_finding(exc)
            return result
        finding = (checks.check_predictions(predictions, n - n_train)
                   or checks.check_cv_folds(folds, self._train_eras, self.split.embargo))
        if finding:
            result.status, result.message = finding  # type: ignore[assignment]
            return result
        guard_started = time.perf_counter()
        finding = self._guard(features, result)
        result.timings["guard"] = time.perf_counter() - guard_started
        if finding:
            result.status, result.message = finding  # type: ignore[assignment]
            return result
        eval_predictions = predictions[self.handoff.eval_rows - n_train]
        result.predictions = {"eval": eval_predictions, "oof": oof}
        result.cv = self._score_cv(oof)
        n_val = len(self.handoff.validation_rows)
        for name, rows, preds, base in (
            ("validation", self.handoff.validation_rows, eval_predictions[:n_val], None if baseline is None else baseline[:n_val]),
            ("test", self.handoff.test_rows, eval_predictions[n_val:], None if baseline is None else baseline[n_val:]),
        ):
            setattr(result, name, self._backtest(preds, rows, base))
        self._flag_leakage(result)
        result.timings["score"] = time.perf_counter() - started - result.timings["guard"]
        return result

    def _backtest(self, predictions: np.ndarray, rows: np.ndarray, baseline: np.ndarray | None = None) -> SplitMetrics:
        t = self.cfg.trading
        return score_trading(predictions, self.dataset.next_return[rows], self.dataset.eras[rows],
                             rule=t.position_rule, scale=t.position_scale, cost_bps=t.cost_bps,
                             periods_per_year=t.periods_per_year, baseline=baseline)

    def _score_cv(self, oof: np.ndarray) -> SplitMetrics | None:
        covered = np.flatnonzero(np.isfinite(oof))
        if not len(covered):
            return None
        try:
            return self._backtest(oof[covered], self.handoff.train_rows[covered])
        except ValueError:  # folds that cover only some assets of a period: no portfolio to score
            return None

    def _leakage_band(self) -> tuple[str, str, float]:
        return "sharpe", "annualized Sharpe", self.cfg.trading.leakage_sharpe

    # --- the look-ahead guard -----------------------------------------------------------
    def guard_cuts(self) -> list[int]:
        """Row counts at which the guard cuts the data: periods spread from validation to the end."""
        d = self.dataset
        n_assets, n_periods = len(d.asset_names), len(d.dates)
        periods = np.linspace(int(self.split.validation[0]), n_periods - 1, self.cfg.trading.guard_cuts)
        return sorted({int(round(p)) * n_assets for p in periods})

    def _guard(self, features: np.ndarray, result: EvalResult) -> checks.Finding | None:
        """Run the program's feature step on truncated data in the sandbox; compare with ``features``."""
        cuts = self.guard_cuts()
        guard_dir = Path(tempfile.mkdtemp(prefix=job_prefix("guard"), dir=self.work_root))
        try:
            data_dir = self.handoff.dir.with_name(f"{self.handoff.dir.name}-cut{cuts[-1]}")
            write_price_handoff(data_dir, self.dataset, cuts[-1], 0, self.split.embargo)
            job = {"program": self._program.source, "defaults": self.defaults, "data_dir": str(data_dir),
                   "out_dir": str(guard_dir), "max_cv_folds": 0, "guard_cuts": cuts, "feature_hint": ""}
            (guard_dir / "job.json").write_text(json.dumps(job))
            run = self.sandbox.run([sys.executable, "-I", str(HARNESS), str(guard_dir / "job.json")],
                                   ro_paths=[HARNESS, data_dir], rw_dir=guard_dir)
            guard = self._interpret(run, guard_dir)
            if guard.status != "ok":
                return guard.status, f"look-ahead guard: the feature step failed on truncated data: {guard.message}"
            for k, cut in enumerate(cuts):
                try:
                    truncated = load_matrix(guard_dir / f"guard_{k}.npy", cut)
                except READ_ERRORS as exc:
                    return "invalid_output", f"look-ahead guard: {output_finding(exc)[1]}"
                finding = compare_features(features, truncated, self.dataset)
                if finding:
                    return finding
            return None
        finally:
            remove_tree(guard_dir)


def compare_features(full: np.ndarray, truncated: np.ndarray, data: PriceData) -> checks.Finding | None:
    """``leakage_suspected`` when the features of the rows before a cut changed with the cut."""
    cut = len(truncated)
    if truncated.shape[1] != full.shape[1]:
        return "leakage_suspected", (f"create_features returned {truncated.shape[1]} columns on the data cut "
                                     f"after {cut} rows but {full.shape[1]} on the whole data; features "
                                     "must not depend on rows after their own")
    same = np.isclose(full[:cut], truncated, rtol=GUARD_RTOL, atol=GUARD_ATOL, equal_nan=True)
    if same.all():
        return None
    row, col = np.argwhere(~same)[0]
    date = str(data.dates[data.eras[row]])[:10]
    last = str(data.dates[data.eras[cut - 1]])[:10]
    return "leakage_suspected", (
        f"look-ahead: feature column {col} of row {row} ({data.asset_names[data.assets[row]]}, {date}) is "
        f"{full[row, col]:.6g} on the whole data but {truncated[row, col]:.6g} when the data ends on {last}; "
        "features may use only the current and earlier rows (shift(-k), centered windows and "
        "whole-series statistics read the future)")


def write_price_handoff(folder: Path, data: PriceData, n_rows: int, n_train: int, embargo: int) -> None:
    """Write (once) the first ``n_rows`` rows for a child: prices, periods, assets, dates, training targets."""
    if (folder / "meta.json").exists():
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder.parent))
    try:
        np.save(staging / "features.npy", np.ascontiguousarray(data.features[:n_rows]))
        np.save(staging / "eras.npy", data.eras[:n_rows].astype(np.int32))
        np.save(staging / "assets.npy", data.assets[:n_rows].astype(np.int16))
        np.save(staging / "dates.npy", data.dates[: int(data.eras[n_rows - 1]) + 1])
        np.save(staging / "train_targets.npy", data.targets[:n_train].astype(np.float64))
        meta = {"feature_names": list(data.feature_names), "target_names": list(data.target_names),
                "feature_groups": {}, "asset_names": list(data.asset_names), "n_train": int(n_train),
                "embargo": int(embargo)}
        (staging / "meta.json").write_text(json.dumps(meta))
        os.chmod(staging, 0o755)
        try:
            os.rename(staging, folder)
        except OSError:  # another process won the race; its folder is identical
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
