"""Evaluate one program in stages, each its own sandbox run; check and score what came back.

The trusted side of the pipeline. :class:`Evaluator` holds a :class:`~aiforml.tasks.Task`
(the data, its split and its scoring) and the environment config. ``evaluate(program)``:

1. static checks of the source (``checks.check_source``);
2. the **feature stage**: ``create_features`` on every feature row, no target anywhere;
   the parent reads the matrix back and checks it (a program that keeps the default step
   gets the default's matrix, computed and guarded once per evaluator: steps 2 and 3 are
   skipped for it);
3. beside the model stage, the **look-ahead guard**: one sandbox per cut, each holding only
   the rows before its cut, cuts drawn per evaluation from a secret random source and never
   written anywhere before the run. A program's features of the rows before a cut must be
   the same with and without the rows after it (a feature that reads the future changes);
4. the **model stage**: ``create_target`` on the training view (the only targets a child
   sees), CV fits (advisory), the final fit on the checked feature matrix, then validation
   and test streamed one era (period) at a time (:mod:`aiforml.pipeline.stream`);
5. trusted scores of validation and sealed test by the task; suspected leakage by the task.

``predict(program)`` runs stages 1, 2 and 4 without CV fits, guard or scores: predictions
of rows nobody has targets of yet (live data, :mod:`aiforml.submission`), checked like
every streamed block (finite, one per row).

Nothing the child reports is believed: the stage a failed program reached is what the
parent validated itself (``program.STAGES``), and CV scores from the child's out-of-fold
predictions are advisory, never a leakage claim, reward or ranking. Every failure of the
program comes back as an :class:`EvalResult` with a status; only a broken environment raises.

Not responsible for rewards (``aiforml.reward``) or for parallelism and caching across
programs (the environment pool).
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from aiforml.config import EnvConfig
from aiforml.data.cache import default_cache_dir
from aiforml.data.dataset import EraSplit
from aiforml.pipeline import checks
from aiforml.pipeline.childio import (
    MAX_CHILD_FILE,
    READ_ERRORS,
    MissingOutput,
    job_prefix,
    load_array,
    load_joined,
    load_matrix,
    output_finding,
    read_child_file,
    read_json,
    remove_stale_jobs,
    remove_tree,
)
from aiforml.pipeline.defaults import SELECTS_THE_VIEW
from aiforml.pipeline.handoff import (
    link_or_copy,
    shared_bases,
    shared_matrix,
    shared_views,
    split_key,
    view_matrix,
    write_view,
)
from aiforml.pipeline.harness import JOINED_HEAD, JOINED_REST
from aiforml.pipeline.stream import BlockStreamer, write_array
from aiforml.pipeline.userdirs import private_root
from aiforml.program import EvalResult, Program
from aiforml.sandbox import Sandbox, SandboxResult
from aiforml.tasks import Task, build_task

HARNESS = Path(__file__).with_name("harness.py")
Progress = Callable[[str, float], None]
# Relative and absolute tolerance of the guard's comparison: honest features agree to the
# last bit on truncated data; these only absorb summation-order noise.
GUARD_RTOL, GUARD_ATOL = 1e-7, 1e-10
MAX_COLUMNS = 100_000
GUARD_BLOCK = 1 << 23  # values the guard compares at once (64 MiB as float64): a full-width matrix is GBs


class Evaluator:
    """Scores programs against one dataset and split. Not thread-safe: one per worker."""

    def __init__(self, dataset: Any, split: EraSplit, cfg: EnvConfig,
                 work_root: Path | None = None, cache_dir: Path | None = None) -> None:
        self.dataset, self.split, self.cfg = dataset, split, cfg
        self.task: Task = build_task(dataset, split, cfg)
        self.feature_dir, self.train_dir = shared_views(self.task)
        if hasattr(self.task, "bases_store"):  # feature-neutral bases: once per machine, beside the views
            self.task.bases_store = functools.partial(shared_bases, self.feature_dir.parent)
        self.work_root = Path(work_root or private_root("evals"))
        self.work_root.mkdir(parents=True, exist_ok=True)
        remove_stale_jobs(self.work_root)
        # The zygote (env.sandbox.mode) sees the job folders, this split's views and the harness.
        self.sandbox = Sandbox(cfg.sandbox, roots=[self.work_root], ro_roots=[self.feature_dir.parent, HARNESS])
        self.cache_dir = Path(cache_dir or default_cache_dir() / "baselines")
        self.defaults = self.task.defaults()
        self.data_version = f"{dataset.version}/{split_key(self.task)}"
        self._baseline: np.ndarray | None = None
        self._default_matrix: tuple[np.ndarray, list[str]] | None = None  # memory-mapped (shared_matrix)
        self._default_x_train: Path | None = None  # its training rows' file, hard-linked into inboxes
        self._cuts = np.random.default_rng(secrets.randbits(128))  # never seeded from config
        # a feature matrix is read back up to the size the sandbox lets a child write (env.sandbox.file_mb)
        self._matrix_limit = max(MAX_CHILD_FILE, cfg.sandbox.file_mb * 2**20)

    # --- public -------------------------------------------------------------------------
    def evaluate(self, program: Program, progress: Progress | None = None,
                 with_baseline: bool = True) -> EvalResult:
        progress = progress or (lambda stage, fraction: None)
        started = time.perf_counter()
        result = self._run(program, progress, with_baseline)
        return self._stamp(result, program, started, progress)

    def predict(self, program: Program, progress: Progress | None = None) -> EvalResult:
        """Fit on the training rows and predict the evaluation blocks, unscored.

        For rows whose targets nobody has (live data): the same sandbox stages as
        :meth:`evaluate` (static checks, the feature stage on every feature row with its
        matrix checked, the model stage with each streamed block's predictions checked),
        without CV fits, look-ahead guard (no row follows the last block) or scores. When
        the status is ok, ``predictions["eval"]`` holds one finite value per row of
        ``task.eval_rows``, in that order.
        """
        progress = progress or (lambda stage, fraction: None)
        started = time.perf_counter()
        finding = checks.check_source(program.source, self.cfg.pipeline.static_checks)
        if finding:
            return self._stamp(EvalResult(status=finding[0], message=finding[1]),  # type: ignore[arg-type]
                               program, started, progress)
        job = Path(tempfile.mkdtemp(prefix=job_prefix(), dir=self.work_root))
        try:
            progress("feature stage", 0.1)
            result, checked = self._feature_stage(program, job)
            if checked is not None:
                progress("model stage", 0.4)
                result, streamer = self._model_stage(program, job, *checked, result, cv=False)
                if result.status == "ok":
                    result.predictions = {"eval": streamer.result()}
        finally:
            remove_tree(job)
        return self._stamp(result, program, started, progress)

    def baseline_predictions(self) -> np.ndarray:
        """Validation+test predictions of the default program (cached on disk)."""
        if self._baseline is not None:
            return self._baseline
        path = self.cache_dir / f"{self._baseline_key()}.npy"
        if path.exists():
            self._baseline = np.load(path, allow_pickle=False)
            return self._baseline
        result = self.evaluate(Program(self.task.default_program()), with_baseline=False)
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
        return np.asarray(preds[: len(self.task.validation_rows)], dtype=np.float32)

    def draw_cuts(self) -> list[int]:
        """This evaluation's guard cuts: distinct era boundaries in validation and test, at random."""
        candidates = self.task.cut_candidates()
        k = min(self.cfg.pipeline.guard_cuts, len(candidates))
        return sorted(int(c) for c in self._cuts.choice(candidates, size=k, replace=False))

    def close(self) -> None:
        self.sandbox.close()

    def _stamp(self, result: EvalResult, program: Program, started: float, progress: Progress) -> EvalResult:
        """What every result carries: the program, data, steps overridden, isolation, total time."""
        result.program_hash = program.hash
        result.data_version = self.data_version
        result.steps_overridden = [s for s in program.defined_steps() if s in self.defaults]
        result.isolation = self.sandbox.isolation
        result.timings["total"] = time.perf_counter() - started
        progress("done", 1.0)
        return result

    # --- stages -------------------------------------------------------------------------
    def _run(self, program: Program, progress: Progress, with_baseline: bool) -> EvalResult:
        progress("static checks", 0.0)
        finding = checks.check_source(program.source, self.cfg.pipeline.static_checks)
        if finding:
            return EvalResult(status=finding[0], message=finding[1])  # type: ignore[arg-type]
        baseline = self.baseline_predictions() if with_baseline else None
        job = Path(tempfile.mkdtemp(prefix=job_prefix(), dir=self.work_root))
        try:
            progress("feature stage", 0.1)
            if checks.keeps_default_step(program.source, "create_features", self.defaults["create_features"]):
                # its own feature step computed nothing: no "features" credit (program.STAGES)
                result, (features, columns), cuts = EvalResult(status="ok", stage="parsed"), self._default_features(), []
            else:
                result, checked = self._feature_stage(program, job)
                if checked is None:
                    return result
                (features, columns), cuts = checked, self.draw_cuts()
            progress("model stage and look-ahead guard", 0.3)
            # the guards one after another, beside the model stage (each holds a cut view and its output), or
            # after it past env.pipeline.guards_after_mb: the same findings either way
            after_mb = self.cfg.pipeline.guards_after_mb
            beside = not after_mb or features.nbytes <= after_mb * 2**20
            with ThreadPoolExecutor(max_workers=1) as pool:
                def start_guards() -> list:
                    return [pool.submit(self._guard, program, job, k, cut, features) for k, cut in enumerate(cuts)]
                guards = start_guards() if beside else []
                result, streamer = self._model_stage(program, job, features, columns, result)
                findings = [g.result() for g in (guards if beside else start_guards())]
            result.timings["sandbox/guard"] = max((f[1] for f in findings), default=0.0)
            finding = next((f[0] for f in findings if f[0] is not None), None)
            if finding:
                result.status, result.message, result.stage = finding[0], finding[1], "parsed"  # type: ignore[assignment]
            elif result.status == "ok":
                progress("scoring", 0.8)
                self._score(result, job / "model", streamer.result(), baseline)
            return result
        finally:
            remove_tree(job)

    def _default_features(self) -> tuple[np.ndarray, list[str]]:
        """The default ``create_features``'s matrix: one feature stage and guard per evaluator.

        Every program that keeps the default step gets it (what the default computes does not
        depend on the program); their evaluations skip the feature stage and the guard. The
        Numerai default selects the feature columns as they are (``SELECTS_THE_VIEW``): its
        matrix is the feature view itself, with nothing to run or guard (a child's copy of
        it and its output file were, beside the view, three times the data at once).
        """
        if self._default_matrix is None and self.defaults["create_features"] == SELECTS_THE_VIEW:
            self._default_matrix = view_matrix(self.feature_dir), list(self.dataset.feature_names)
            self._default_x_train = self.train_dir / "features.npy"
        if self._default_matrix is None:
            program = Program(self.task.default_program())
            job = Path(tempfile.mkdtemp(prefix=job_prefix(), dir=self.work_root))
            try:
                result, checked = self._feature_stage(program, job)
                if checked is None:
                    raise RuntimeError(f"the default create_features failed ({result.status}): {result.message}")
                matrix, x_train = shared_matrix(self.feature_dir, checked[0], self.task.n_train, self._baseline_key())
                columns = checked[1]
                del checked
                remove_tree(job / "features")  # the shared matrix stands for it: not held through the guards
                findings = [self._guard(program, job, k, cut, matrix)[0] for k, cut in enumerate(self.draw_cuts())]
                if any(findings):
                    raise RuntimeError(f"the default create_features failed its look-ahead guard: {findings}")
                self._default_matrix, self._default_x_train = (matrix, columns), x_train
            finally:
                remove_tree(job)
        return self._default_matrix

    def _feature_stage(self, program: Program,
                       job: Path) -> tuple[EvalResult, tuple[np.ndarray, list[str]] | None]:
        out = _folder(job / "features")
        # written as the training rows' file and the rest: the model stage's training matrix as it is
        run = self._sandbox_run(program, "features", self.feature_dir, out, head_rows=self.task.n_train)
        result = self._interpret(run, out, "features")
        result.stage = "parsed"
        if result.status != "ok":
            return result, None
        try:
            checked = read_features(out, len(self.task.feature_rows), self._matrix_limit,
                                    mapped=self.sandbox.runs_are_sealed, n_head=self.task.n_train)
        except READ_ERRORS as exc:
            result.status, result.message = "invalid_output", f"create_features: {output_finding(exc)[1]}"
            return result, None
        result.stage = "features"
        return result, checked

    def _guard(self, program: Program, job: Path, k: int, cut: int,
               features: np.ndarray) -> tuple[checks.Finding | None, float]:
        """Run the feature step on the first ``cut`` rows alone; compare with the full run.

        The cut view and the guard's output go as soon as they are read: at full width each is
        as large as the feature view, and the job's other guards and stages may still run."""
        head = self.train_dir / "features.npy" if cut >= self.task.n_train else None  # rows before it: held once
        data = write_view(job / f"guard-{k}-data", self.task.feature_view(cut), head=head)
        out = _folder(job / f"guard-{k}")
        try:
            run = self._sandbox_run(program, "features", data, out)
        finally:
            remove_tree(data)
        try:
            guard = self._interpret(run, out, "guard")
            if guard.status != "ok":
                return (guard.status, "look-ahead guard: the feature step failed on the data cut after "
                        f"{self.task.describe_row(cut - 1)}: {guard.message}"), run.wall_s
            try:
                truncated, _ = read_features(out, cut, self._matrix_limit, mapped=self.sandbox.runs_are_sealed)
            except READ_ERRORS as exc:
                return ("invalid_output", f"look-ahead guard: {output_finding(exc)[1]}"), run.wall_s
            return compare_features(features, truncated, self.task), run.wall_s
        finally:
            remove_tree(out)

    def _model_stage(self, program: Program, job: Path, features: np.ndarray, columns: list[str],
                     feature_result: EvalResult, cv: bool = True) -> tuple[EvalResult, BlockStreamer]:
        inbox, out = _folder(job / "inbox"), _folder(job / "model")
        head = job / "features" / JOINED_HEAD
        if self._default_matrix is not None and features is self._default_matrix[0]:
            link_or_copy(self._default_x_train, inbox / "x_train.npy")  # no copy per evaluation
        elif self.sandbox.runs_are_sealed and head.exists():
            # the feature stage's training rows, checked and mapped: no process of its run is left to change them
            link_or_copy(head, inbox / "x_train.npy")
        else:
            write_array(inbox, "x_train.npy", features[: self.task.n_train])
        (inbox / "columns.json").write_text(json.dumps(columns))
        blocks = self.task.eval_blocks()
        streamer = BlockStreamer(features, blocks, inbox, out)
        streamer.start()
        try:
            run = self._sandbox_run(program, "model", self.train_dir, out, inbox=inbox, n_blocks=len(blocks),
                                    streamer=streamer, cv=cv)
        finally:
            streamer.stop()
        result = self._interpret(run, out, "model")
        result.timings = {**feature_result.timings, **result.timings}
        result.stage = "predict" if streamer.predictions else feature_result.stage
        if streamer.finding:
            result.status, result.message = streamer.finding  # type: ignore[assignment]
        elif result.status == "ok" and not streamer.complete:
            result.status = "invalid_output"
            result.message = f"the model stage ended after {len(streamer.predictions)} of {len(blocks)} blocks"
        return result, streamer

    def _sandbox_run(self, program: Program, stage: str, data_dir: Path, out: Path,
                     inbox: Path | None = None, n_blocks: int = 0,
                     streamer: BlockStreamer | None = None, cv: bool = True,
                     head_rows: int | None = None) -> SandboxResult:
        fds = streamer.child_fds if streamer else []
        job = {
            "stage": stage, "program": program.source, "defaults": self.defaults,
            "data_dir": str(data_dir), "out_dir": str(out), "inbox": str(inbox or ""),
            "n_blocks": n_blocks, "signal_fds": fds, "embargo": int(self.split.embargo),
            "max_cv_folds": self.cfg.pipeline.max_cv_folds, "feature_hint": self.task.feature_hint(),
            "cv": cv, "seed": self.cfg.pipeline.seed, "bin_sample_rows": self.cfg.pipeline.bin_sample_rows,
            "bin_sample_mb": self.cfg.pipeline.bin_sample_mb, "head_rows": head_rows,
        }
        job_file = out / "job.json"
        job_file.write_text(json.dumps(job))
        ro = [HARNESS, data_dir] + ([inbox] if inbox else [])
        return self.sandbox.run([sys.executable, "-I", str(HARNESS), str(job_file)], ro_paths=ro, rw_dir=out,
                                pass_fds=fds, on_start=lambda pid: streamer and streamer.started())

    def _interpret(self, run: SandboxResult, out: Path, stage: str) -> EvalResult:
        base: dict[str, Any] = {"stdout": run.stdout[-2000:], "timings": {f"sandbox/{stage}": run.wall_s}}
        if run.outcome == "timeout":
            return EvalResult(status="timeout", message=f"{stage} stage stopped after {run.wall_s:.1f}s: {run.message}", **base)
        if run.outcome == "memory":
            return EvalResult(status="memory", message=f"{stage} stage: memory limit exceeded: {run.message}", **base)
        if run.outcome in ("spawn_error", "killed"):
            return EvalResult(status="infra_error", message=run.message, **base)
        try:
            reported = read_json(out / "result.json", limit_bytes=1_000_000)
            status, message = str(reported["status"]), str(reported.get("message", ""))[:600]
            child = {f"child/{k}": float(v) for k, v in dict(reported.get("timings", {})).items()}
            tb = str(reported.get("traceback", ""))[-1500:]
        except MissingOutput:
            detail = f"signal {run.signal}" if run.signal else f"exit code {run.exit_code}"
            return EvalResult(status="runtime_error", traceback=run.stderr[-1500:],
                              message=f"the program's process ended without a result ({detail})", **base)
        except READ_ERRORS as exc:
            return EvalResult(status="invalid_output",
                              message=f"unreadable result from the child: {output_finding(exc)[1]}", **base)
        if status not in checks.CHILD_STATUSES:
            return EvalResult(status="invalid_output", message=f"unknown status {status!r} from the child", **base)
        base["timings"].update(child)
        return EvalResult(status=status, message=message, traceback=tb, **base)  # type: ignore[arg-type]

    # --- scores -------------------------------------------------------------------------
    def _score(self, result: EvalResult, out: Path, predictions: np.ndarray,
               baseline: np.ndarray | None) -> None:
        started = time.perf_counter()
        task = self.task
        try:
            folds = self._load_folds(out)
            oof = load_array(out / "oof.npy", (task.n_train,))
        except READ_ERRORS as exc:
            result.status, result.message = output_finding(exc)  # type: ignore[assignment]
            return
        finding = checks.check_cv_folds(folds, self.dataset.eras[task.train_rows], self.split.embargo)
        if finding:
            result.status, result.message = finding  # type: ignore[assignment]
            return
        result.predictions = {"eval": predictions, "oof": oof}
        result.cv = task.score_cv(oof)  # advisory: the child computed these predictions unwatched
        n_val = len(task.validation_rows)
        base = (None, None) if baseline is None else (baseline[:n_val], baseline[n_val:])
        result.validation = task.score(predictions[:n_val], task.validation_rows, base[0])
        result.test = task.score(predictions[n_val:], task.test_rows, base[1])
        finding = task.leakage(result.validation)
        if finding:
            result.status, result.message = finding  # type: ignore[assignment]
        result.timings["score"] = time.perf_counter() - started

    def _load_folds(self, out: Path) -> list[tuple[np.ndarray, np.ndarray]]:
        folds = []
        limit = (self.task.n_train * 4,)
        for k in range(self.cfg.pipeline.max_cv_folds):
            train, test = out / f"cv_train_{k}.npy", out / f"cv_test_{k}.npy"
            if not train.exists() and not train.is_symlink():
                break
            folds.append((load_array(train, limit, integer=True), load_array(test, limit, integer=True)))
        return folds

    def _baseline_key(self) -> str:
        text = json.dumps([self.data_version, self.defaults])  # the defaults embed the pipeline config
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_evaluator(dataset: Any, split: EraSplit, cfg: EnvConfig,
                    work_root: Path | None = None, cache_dir: Path | None = None) -> Evaluator:
    """The evaluator of ``dataset``'s task (see :func:`aiforml.tasks.build_task`)."""
    return Evaluator(dataset, split, cfg, work_root, cache_dir)


def read_features(out: Path, n_rows: int, limit: int = MAX_CHILD_FILE,
                  mapped: bool = False, n_head: int | None = None) -> tuple[np.ndarray, list[str]]:
    """The feature matrix a feature run wrote (at most ``limit`` bytes), and its column names,
    checked. ``mapped`` (only where no process of the run can be left to change the file, or
    truncating it would crash this process): memory-mapped, not read in. ``n_head``: the run
    was asked for its first ``n_head`` rows and the rest as two files (``head_rows``)."""
    if n_head is None:
        features = load_matrix(out / "features.npy", n_rows, limit, mapped=mapped)
    else:
        features = load_joined(out / JOINED_HEAD, out / JOINED_REST, n_rows, n_head, limit, mapped=mapped)
    columns = read_columns(out)
    if len(columns) != features.shape[1] or not features.shape[1]:
        raise ValueError(f"{features.shape[1]} feature columns but {len(columns)} column names")
    return features, columns


def read_columns(out: Path) -> list[str]:
    try:
        columns = json.loads(read_child_file(out / "columns.json", limit=4_000_000))
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise ValueError(f"columns.json: {exc}") from exc
    if not isinstance(columns, list) or len(columns) > MAX_COLUMNS or not all(isinstance(c, str) for c in columns):
        raise ValueError(f"columns.json must list at most {MAX_COLUMNS} column names")
    return [c[:200] for c in columns]


def compare_features(full: np.ndarray, truncated: np.ndarray, task: Task) -> checks.Finding | None:
    """``leakage_suspected`` when the features of the rows before a cut changed with the cut."""
    cut = len(truncated)
    if truncated.shape[1] != full.shape[1]:
        return "leakage_suspected", (f"create_features returned {truncated.shape[1]} columns on the data "
                                     f"cut after {task.describe_row(cut - 1)} but {full.shape[1]} on the "
                                     "whole data; features must not depend on later rows")
    step = max(1, GUARD_BLOCK // max(1, full.shape[1]))  # rows at a time: float64 copies of a block, not the matrix
    for start in range(0, cut, step):
        head = full[start:min(start + step, cut)].astype(np.float64)
        same = np.isclose(head, truncated[start:start + len(head)].astype(np.float64),
                          rtol=GUARD_RTOL, atol=GUARD_ATOL, equal_nan=True)
        if not same.all():
            row, col = np.argwhere(~same)[0]
            return _look_ahead(task, start + int(row), int(col), head[row, col], truncated, cut)
    return None


def _look_ahead(task: Task, row: int, col: int, whole: float, truncated: np.ndarray, cut: int) -> checks.Finding:
    return "leakage_suspected", (
        f"look-ahead: feature column {col} of row {row} ({task.describe_row(row)}) is "
        f"{whole:.6g} on the whole data but {float(truncated[row, col]):.6g} when the data ends "
        f"after {task.describe_row(cut - 1)}; features may use only the current and earlier rows "
        "(shift(-k), centered windows, whole-series statistics and links to later eras read the future)")


def _folder(path: Path) -> Path:
    path.mkdir(mode=0o755)
    return path
