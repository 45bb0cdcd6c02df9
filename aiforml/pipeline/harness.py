"""The sandbox child: runs a program's steps on the handed-off data and writes plain arrays.

Run as a script inside the sandbox (``python -I harness.py JOB.json``); it imports nothing
of aiforml, only numpy and pandas, because only this one file is visible in the sandbox.
It sees the training targets and the feature rows of the validation and test eras, never
their targets, and it scores nothing: it writes predictions, out-of-fold CV predictions,
the CV folds it used, and a status with a short message to its output directory. The
trusted parent checks and scores those arrays.

With ``guard_cuts`` in the job (the trading task's look-ahead guard), it only computes the
features of the first rows at each cut and writes them; the parent compares them with the
full run's.

Order of the six steps: 1 load data (here, locked), 2 create_target, 3 create_features,
4 define_model, 5 define_cv, 6 run optimization (here, locked: fit per CV fold, then fit
on all training rows and predict validation and test rows).
"""

from __future__ import annotations

import json
import linecache
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd

PROGRAM_FILE = "program.py"
STAGE_FILE = "stage"  # holds the last stage reached; the parent reads only a name from STAGES
STAGES = ("parsed", "imports", "features", "fit", "predict")  # = aiforml.program.STAGES
TRACEBACK_CHARS = 1500


class StepError(Exception):
    """A program's step returned something unusable (status ``invalid_output``)."""


def main(job_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    out = Path(job["out_dir"])
    timings: dict[str, float] = {}
    result: dict = {"status": "ok", "message": "", "traceback": "", "timings": timings}
    try:
        run_job(job, out, timings)
    except StepError as exc:
        result.update(status="invalid_output", message=str(exc))
    except SyntaxError as exc:
        result.update(status="syntax_error", message=f"line {exc.lineno}: {exc.msg}")
        result["traceback"] = "".join(traceback.format_exception_only(exc))[-TRACEBACK_CHARS:]
    except MemoryError:
        result.update(status="memory", message="MemoryError: the program ran out of memory")
    except ImportError as exc:
        result.update(status="import_error", message=f"{type(exc).__name__}: {exc}")
        result["traceback"] = program_traceback(exc)
    except BaseException as exc:  # noqa: BLE001 - any failure of generated code is data
        result.update(status="runtime_error", message=describe_exception(exc, job))
        result["traceback"] = program_traceback(exc)
    (out / "result.json").write_text(json.dumps(result))
    return 0


def run_job(job: dict, out: Path, timings: dict[str, float]) -> None:
    t0 = time.perf_counter()
    data = load_data(Path(job["data_dir"]))
    timings["load_data"] = time.perf_counter() - t0

    steps = load_steps(job["program"], job["defaults"], timings, out)
    if job.get("guard_cuts"):
        run_guard(steps["create_features"], data, job["guard_cuts"], out, timings)
        return
    meta = data["meta"]
    n_train = meta["n_train"]

    t = time.perf_counter()
    y = step_create_target(steps["create_target"], data)
    timings["create_target"] = time.perf_counter() - t

    t = time.perf_counter()
    X = step_create_features(steps["create_features"], data)
    timings["create_features"] = time.perf_counter() - t
    reach(out, "features")
    if job.get("save_features"):  # the trading task's look-ahead guard compares them
        np.save(out / "features.npy", X.to_numpy(dtype=np.float64, na_value=np.nan))

    t = time.perf_counter()
    folds = step_define_cv(steps["define_cv"], data["eras"][:n_train], meta["embargo"], job["max_cv_folds"])
    timings["define_cv"] = time.perf_counter() - t

    run_optimization(steps["define_model"], X, y, folds, n_train, out, timings)


def load_data(data_dir: Path) -> dict:
    """Step 1 (locked): memory-map the hand-off arrays and build the feature frame."""
    meta = json.loads((data_dir / "meta.json").read_text())
    features = np.load(data_dir / "features.npy", mmap_mode="r", allow_pickle=False)
    eras = np.load(data_dir / "eras.npy", allow_pickle=False)
    targets = np.load(data_dir / "train_targets.npy", allow_pickle=False)
    frame = pd.DataFrame(np.array(features), columns=meta["feature_names"])
    frame.insert(0, "era", eras)
    if "asset_names" in meta:  # price data: each row's date and asset too
        dates = np.load(data_dir / "dates.npy", allow_pickle=False)
        assets = np.load(data_dir / "assets.npy", allow_pickle=False)
        frame.insert(1, "date", dates[eras])
        frame.insert(2, "asset", np.asarray(meta["asset_names"], dtype=object)[assets])
    return {"meta": meta, "frame": frame, "eras": eras, "targets": targets}


def run_guard(create_features, data: dict, cuts: list[int], out: Path, timings: dict[str, float]) -> None:
    """Look-ahead guard: features of the first ``cut`` rows only, shortest cut first.

    This process holds no row past the longest cut, and each call sees only its own rows,
    so a feature that reads the future cannot produce the same values before the cut as
    it does on the whole data. The trusted parent compares the arrays.
    """
    t = time.perf_counter()
    for k, cut in enumerate(sorted(cuts)):
        X = step_create_features(create_features, {**data, "frame": data["frame"].iloc[:cut].copy()})
        np.save(out / f"guard_{k}.npy", X.to_numpy(dtype=np.float64, na_value=np.nan))
    timings["guard"] = time.perf_counter() - t


def reach(out: Path, stage: str) -> None:
    """Record that the run got to ``stage`` (overwritten by each later stage)."""
    (out / STAGE_FILE).write_text(stage)


def load_steps(source: str, defaults: dict[str, str], timings: dict[str, float], out: Path) -> dict:
    """Compile and run the program, then take each step from it or from the defaults."""
    t = time.perf_counter()
    linecache.cache[PROGRAM_FILE] = (len(source), None, source.splitlines(True), PROGRAM_FILE)
    code = compile(source, PROGRAM_FILE, "exec")
    reach(out, "parsed")
    namespace: dict = {"__name__": "program"}
    exec(code, namespace)  # noqa: S102 - this whole process is the sandboxed child
    reach(out, "imports")
    steps = {}
    for name, default_source in defaults.items():
        fn = namespace.get(name)
        if not callable(fn):
            default_ns: dict = {"__name__": "defaults"}
            exec(compile(default_source, f"<default {name}>", "exec"), default_ns)  # noqa: S102
            fn = default_ns[name]
        steps[name] = fn
    timings["exec_program"] = time.perf_counter() - t
    return steps


def step_create_target(create_target, data: dict) -> np.ndarray:
    meta, n_train = data["meta"], data["meta"]["n_train"]
    train = data["frame"].iloc[:n_train].copy()
    for k, name in enumerate(meta["target_names"]):
        train[name] = data["targets"][:, k]
    y = create_target(train)
    y = np.asarray(y, dtype=np.float64).reshape(-1) if not isinstance(y, pd.DataFrame) else None
    if y is None or len(y) != n_train:
        raise StepError(f"create_target must return one value per training row ({n_train}), "
                        f"got {describe_shape(y)}")
    if np.isfinite(y).mean() < 0.5:
        raise StepError("create_target returned NaN or inf for more than half of the rows")
    return y


def step_create_features(create_features, data: dict) -> pd.DataFrame:
    meta = data["meta"]
    n_all = len(data["frame"])
    X = create_features(data["frame"].copy(), list(meta["feature_names"]))
    if isinstance(X, np.ndarray):
        X = pd.DataFrame(X.reshape(len(X), -1))
    if not isinstance(X, pd.DataFrame):
        raise StepError(f"create_features must return a DataFrame, got {type(X).__name__}")
    if len(X) != n_all:
        raise StepError(f"create_features must return one row per input row ({n_all}), got {len(X)}")
    if X.shape[1] == 0:
        raise StepError("create_features returned no columns")
    bad = [str(c) for c, dt in X.dtypes.items() if not (pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt))]
    if bad:
        raise StepError(f"create_features returned non-numeric columns: {bad[:5]}")
    X.columns = [str(c) for c in X.columns]
    return X.reset_index(drop=True)


def step_define_cv(define_cv, train_eras: np.ndarray, embargo: int, max_folds: int) -> list:
    folds = list(define_cv(train_eras.copy(), embargo))
    if len(folds) > max_folds:
        raise StepError(f"define_cv returned {len(folds)} folds; at most {max_folds} are allowed")
    checked = []
    for k, fold in enumerate(folds):
        try:
            train_idx, test_idx = (np.asarray(part).reshape(-1) for part in fold)
        except (TypeError, ValueError) as exc:
            raise StepError(f"define_cv fold {k} must be a (train_idx, test_idx) pair: {exc}") from exc
        for name, idx in (("train", train_idx), ("test", test_idx)):
            if idx.dtype.kind not in "iu" or len(idx) == 0:
                raise StepError(f"define_cv fold {k}: {name} indices must be a non-empty integer array")
        checked.append((train_idx.astype(np.int64), test_idx.astype(np.int64)))
    return checked


def run_optimization(define_model, X: pd.DataFrame, y: np.ndarray, folds: list, n_train: int,
                     out: Path, timings: dict[str, float]) -> None:
    """Step 6 (locked): CV fits, then the final fit on all training rows and prediction."""
    t = time.perf_counter()
    X_train = X.iloc[:n_train]
    finite = np.isfinite(y)
    oof = np.full(n_train, np.nan)
    for k, (train_idx, test_idx) in enumerate(folds):
        if train_idx.min() < 0 or test_idx.min() < 0 or max(train_idx.max(), test_idx.max()) >= n_train:
            raise StepError(f"define_cv fold {k}: indices must lie in [0, {n_train})")
        np.save(out / f"cv_train_{k}.npy", train_idx)
        np.save(out / f"cv_test_{k}.npy", test_idx)
        fit_idx = train_idx[finite[train_idx]]
        model = define_model()
        model.fit(X_train.iloc[fit_idx], y[fit_idx])
        oof[test_idx] = predict(model, X_train.iloc[test_idx])
    np.save(out / "oof.npy", oof)
    timings["cv"] = time.perf_counter() - t

    t = time.perf_counter()
    model = define_model()
    model.fit(X_train[finite], y[finite])
    timings["fit"] = time.perf_counter() - t
    reach(out, "fit")
    t = time.perf_counter()
    np.save(out / "predictions.npy", predict(model, X.iloc[n_train:]))
    timings["predict"] = time.perf_counter() - t
    reach(out, "predict")


def predict(model, X: pd.DataFrame) -> np.ndarray:
    if not hasattr(model, "predict"):
        raise StepError(f"define_model must return an object with fit and predict, got {type(model).__name__}")
    p = np.asarray(model.predict(X), dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.shape != (len(X),):
        raise StepError(f"predict must return one value per row ({len(X)}), got shape {p.shape}")
    return p


def describe_shape(value) -> str:
    shape = getattr(value, "shape", None)
    return f"shape {shape}" if shape is not None else type(value).__name__


def describe_exception(exc: BaseException, job: dict) -> str:
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, KeyError):
        names = job.get("feature_hint", "")
        message += (f" (not a column; columns are 'era' and the features {names}; target columns "
                    "exist only in create_target's df)")
    return message[:600]


def program_traceback(exc: BaseException) -> str:
    """The traceback lines that point into the program, then the exception line."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == PROGRAM_FILE]
    lines = traceback.format_list(frames) + traceback.format_exception_only(exc)
    return "".join(lines)[-TRACEBACK_CHARS:]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
