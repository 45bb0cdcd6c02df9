"""Evaluate one program: static checks, the sandboxed child, trusted checks and scores.

The trusted side of the pipeline. :class:`Evaluator` holds a dataset, its era split and
the environment config; ``evaluate(program)`` writes a job for the child
(``harness.py``), runs it through :class:`aiforml.sandbox.Sandbox`, reads back only
plain ``.npy`` arrays (``allow_pickle=False``, header checked before reading) and a JSON
status, checks the CV folds and predictions, and scores cross-validation, validation and
sealed test with :mod:`aiforml.metrics`. Every failure of the program comes back as an
:class:`EvalResult` with a status; only a broken environment raises.

Not responsible for rewards (``aiforml.reward``) or for parallelism and caching across
programs (the environment pool).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from aiforml.config import EnvConfig
from aiforml.data.cache import default_cache_dir
from aiforml.data.dataset import Dataset, EraSplit
from aiforml.metrics import score_split
from aiforml.pipeline import checks
from aiforml.pipeline.childio import (
    READ_ERRORS,
    MissingOutput,
    job_prefix,
    load_array,
    output_finding,
    read_child_file,
    read_json,
    remove_stale_jobs,
    remove_tree,
)
from aiforml.pipeline.defaults import default_program_source, default_sources
from aiforml.pipeline.handoff import Handoff, build_handoff
from aiforml.pipeline.userdirs import private_root
from aiforml.program import STAGES, EvalResult, Program
from aiforml.sandbox import Sandbox, SandboxResult

HARNESS = Path(__file__).with_name("harness.py")
Progress = Callable[[str, float], None]


class Evaluator:
    """Scores programs against one dataset and split. Not thread-safe: one per worker."""

    task = "numerai"  # the scoring this evaluator does (aiforml.pipeline.trading: "trading")

    def __init__(self, dataset: Dataset, split: EraSplit, cfg: EnvConfig,
                 work_root: Path | None = None, cache_dir: Path | None = None) -> None:
        self.dataset, self.split, self.cfg = dataset, split, cfg
        self.handoff: Handoff = self._build_handoff()
        self.sandbox = Sandbox(cfg.sandbox)
        self.work_root = Path(work_root or private_root("evals"))
        self.work_root.mkdir(parents=True, exist_ok=True)
        remove_stale_jobs(self.work_root)
        self.cache_dir = Path(cache_dir or default_cache_dir() / "baselines")
        self.defaults = default_sources(cfg.pipeline, self.task)
        self._baseline: np.ndarray | None = None
        rows = self.handoff
        self._train_target = dataset.targets[rows.train_rows, 0].astype(np.float64)
        self._train_eras = dataset.eras[rows.train_rows]
        self.data_version = f"{dataset.version}/{self.handoff.dir.name}"

    # --- public -------------------------------------------------------------------------
    def evaluate(self, program: Program, progress: Progress | None = None,
                 with_baseline: bool = True) -> EvalResult:
        progress = progress or (lambda stage, fraction: None)
        started = time.perf_counter()
        result = self._run(program, progress, with_baseline)
        result.program_hash = program.hash
        result.data_version = self.data_version
        result.steps_overridden = [s for s in program.defined_steps() if s in self.defaults]
        result.isolation = self.sandbox.isolation
        result.timings["total"] = time.perf_counter() - started
        progress("done", 1.0)
        return result

    def baseline_predictions(self) -> np.ndarray:
        """Validation+test predictions of the default program (cached on disk)."""
        if self._baseline is not None:
            return self._baseline
        path = self.cache_dir / f"{self._baseline_key()}.npy"
        if path.exists():
            self._baseline = np.load(path, allow_pickle=False)
            return self._baseline
        result = self.evaluate(Program(default_program_source(self.cfg.pipeline, self.task)), with_baseline=False)
        if result.status != "ok":
            raise RuntimeError(f"the default program failed ({result.status}): {result.message}\n"
                               f"{result.traceback}")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, result.predictions["eval"])
        self._baseline = result.predictions["eval"]
        return self._baseline

    def validation_predictions(self, result: EvalResult) -> np.ndarray | None:
        """The validation part of a scored result's predictions (float32), else None."""
        preds = result.predictions.get("eval")
        if preds is None or not result.ran:
            return None
        return np.asarray(preds[: len(self.handoff.validation_rows)], dtype=np.float32)

    def close(self) -> None:
        self.sandbox.kill_all()

    # --- steps --------------------------------------------------------------------------
    def _build_handoff(self) -> Handoff:
        return build_handoff(self.dataset, self.split)

    def _job_extras(self) -> dict:
        """Task-specific entries of the child's job (none for the Numerai task)."""
        return {}

    def _run(self, program: Program, progress: Progress, with_baseline: bool) -> EvalResult:
        progress("static checks", 0.0)
        finding = checks.check_source(program.source, self.cfg.pipeline.static_checks)
        if finding:
            return EvalResult(status=finding[0], message=finding[1])  # type: ignore[arg-type]
        baseline = self.baseline_predictions() if with_baseline else None
        job_dir = Path(tempfile.mkdtemp(prefix=job_prefix(), dir=self.work_root))
        try:
            progress("running in sandbox", 0.1)
            run = self._run_child(program, job_dir)
            result = self._interpret(run, job_dir)
            result.stage = read_stage(job_dir)
            if result.status == "ok":
                progress("scoring", 0.8)
                result = self._score(result, job_dir, baseline)
            return result
        finally:
            remove_tree(job_dir)

    def _run_child(self, program: Program, job_dir: Path) -> SandboxResult:
        names = self.dataset.feature_names
        job = {
            "program": program.source,
            "defaults": self.defaults,
            "data_dir": str(self.handoff.dir),
            "out_dir": str(job_dir),
            "max_cv_folds": self.cfg.pipeline.max_cv_folds,
            "feature_hint": f"{names[0]} ... {names[-1]} ({len(names)} columns)",
            **self._job_extras(),
        }
        job_file = job_dir / "job.json"
        job_file.write_text(json.dumps(job))
        return self.sandbox.run(
            [sys.executable, "-I", str(HARNESS), str(job_file)],
            ro_paths=[HARNESS, self.handoff.dir],
            rw_dir=job_dir,
        )

    def _interpret(self, run: SandboxResult, job_dir: Path) -> EvalResult:
        base = {"stdout": run.stdout[-2000:], "timings": {"sandbox": run.wall_s}}
        if run.outcome == "timeout":
            return EvalResult(status="timeout", message=f"stopped after {run.wall_s:.1f}s: {run.message}", **base)
        if run.outcome == "memory":
            return EvalResult(status="memory", message=f"memory limit exceeded: {run.message}", **base)
        if run.outcome == "spawn_error":
            return EvalResult(status="infra_error", message=run.message, **base)
        try:
            reported = read_json(job_dir / "result.json", limit_bytes=1_000_000)
            status, message = str(reported["status"]), str(reported.get("message", ""))[:600]
            child_timings = {f"child/{k}": float(v) for k, v in dict(reported.get("timings", {})).items()}
            tb = str(reported.get("traceback", ""))[-1500:]
        except MissingOutput:
            detail = f"signal {run.signal}" if run.signal else f"exit code {run.exit_code}"
            return EvalResult(status="runtime_error", traceback=run.stderr[-1500:],
                              message=f"the program's process ended without a result ({detail})", **base)
        except READ_ERRORS as exc:
            return EvalResult(status="invalid_output", message=f"unreadable result from the child: {output_finding(exc)[1]}", **base)
        if status not in checks.CHILD_STATUSES:
            return EvalResult(status="invalid_output", message=f"unknown status {status!r} from the child", **base)
        base["timings"].update(child_timings)
        return EvalResult(status=status, message=message, traceback=tb, **base)  # type: ignore[arg-type]

    def _score(self, result: EvalResult, job_dir: Path, baseline: np.ndarray | None) -> EvalResult:
        started = time.perf_counter()
        rows = self.handoff
        try:
            predictions = load_array(job_dir / "predictions.npy", (len(rows.eval_rows),))
            folds = self._load_folds(job_dir)
            oof = load_array(job_dir / "oof.npy", (rows.n_train,))
        except READ_ERRORS as exc:
            result.status, result.message = output_finding(exc)
            return result
        finding = (checks.check_predictions(predictions, len(rows.eval_rows))
                   or checks.check_cv_folds(folds, self._train_eras, self.split.embargo))
        if finding:
            result.status, result.message = finding  # type: ignore[assignment]
            return result
        result.predictions = {"eval": predictions, "oof": oof}
        result.cv = self._score_cv(oof)
        n_val = len(rows.validation_rows)
        for name, idx, preds, base in (
            ("validation", rows.validation_rows, predictions[:n_val], None if baseline is None else baseline[:n_val]),
            ("test", rows.test_rows, predictions[n_val:], None if baseline is None else baseline[n_val:]),
        ):
            metrics = score_split(preds, self.dataset.targets[idx, 0], self.dataset.eras[idx],
                                  features=self.dataset.features[idx], baseline=base)
            setattr(result, name, metrics)
        self._flag_leakage(result)
        result.timings["score"] = time.perf_counter() - started
        return result

    def _score_cv(self, oof: np.ndarray):
        covered = np.isfinite(oof)
        if not covered.any():
            return None
        return score_split(oof[covered], self._train_target[covered], self._train_eras[covered])

    def _leakage_band(self) -> tuple[str, str, float]:
        """The statistic the leakage band applies to: (SplitMetrics field, its name, the band)."""
        return "mean_corr", "mean corr", self.cfg.pipeline.leakage_band

    def _flag_leakage(self, result: EvalResult) -> None:
        field, label, band = self._leakage_band()
        for name, metrics in (("cross-validation", result.cv), ("validation", result.validation)):
            value = getattr(metrics, field) if metrics is not None else None
            if value is not None and value > band:
                result.status = "leakage_suspected"
                result.message = (f"{name} {label} {value:.3f} is above the leakage band "
                                  f"{band}: honest pipelines do not score this high")
                return

    def _load_folds(self, job_dir: Path) -> list[tuple[np.ndarray, np.ndarray]]:
        folds = []
        for k in range(self.cfg.pipeline.max_cv_folds):
            train, test = job_dir / f"cv_train_{k}.npy", job_dir / f"cv_test_{k}.npy"
            if not train.exists() and not train.is_symlink():
                break
            limit = (self.handoff.n_train * 4,)
            folds.append((load_array(train, limit, integer=True), load_array(test, limit, integer=True)))
        return folds

    def _baseline_key(self) -> str:
        text = json.dumps([self.data_version, self.defaults])  # the defaults embed the pipeline config
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_evaluator(dataset: Dataset, split: EraSplit, cfg: EnvConfig,
                    work_root: Path | None = None, cache_dir: Path | None = None) -> Evaluator:
    """The evaluator of the data's task: trading for a price series, else the Numerai one."""
    if getattr(dataset, "task", "numerai") == "trading":
        from aiforml.pipeline.trading import TradingEvaluator

        return TradingEvaluator(dataset, split, cfg, work_root, cache_dir)
    return Evaluator(dataset, split, cfg, work_root, cache_dir)


def read_stage(job_dir: Path) -> str:
    """The last stage the child reported, only when it is one of STAGES; else ""."""
    try:
        raw = read_child_file(job_dir / "stage", limit=32)
    except ValueError:
        return ""
    stage = raw.decode("ascii", errors="replace").strip()
    return stage if stage in STAGES else ""

