"""The sandbox child: runs one stage of a program on the data it was handed, writes plain arrays.

Run as a script inside the sandbox (``python -I harness.py JOB.json``); it imports nothing
of aiforml, only numpy and pandas, because only this one file is visible in the sandbox.
It scores nothing and nothing it reports is believed: the trusted parent reads its arrays,
checks them and scores them. One process runs one stage (``job["stage"]``):

- ``features``: ``create_features`` on a feature view (every feature row, or for a
  look-ahead guard only the rows before a cut), no target anywhere; writes
  ``features.npy`` (or, asked for ``head_rows``, the training rows as ``features.head.npy``
  and the rest as ``features.rest``: :func:`map_joined`) and ``columns.json``;
- ``model``: ``create_target`` on the training view (the only targets a child ever sees),
  ``define_cv`` and the CV fits (``cv_*.npy``, ``oof.npy``: advisory), the final fit on the
  feature matrix the parent checked (``inbox/x_train.npy``), then the validation and test
  blocks one at a time: block k arrives as ``inbox/x_k.npy`` (one byte on the job's first
  pipe says so) only after ``p_{k-1}.npy`` came back (one byte on the second pipe), so the
  model never holds a later era than the one it predicts. With ``job["cv"]`` false (live
  predictions) ``define_cv`` and the CV fits are skipped.

``result.json`` holds a status and a short message (an exception of the program's steps is
data, not a crash of this process).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import linecache
import mmap
import os
import random
import sys
import time
import traceback
import weakref
from pathlib import Path

import numpy as np
import pandas as pd

PROGRAM_FILE = "program.py"
TRACEBACK_CHARS = 1500
try:
    _LIBC = ctypes.CDLL(None, use_errno=True)  # the C library this interpreter runs on
    _LIBC.mmap.restype = ctypes.c_void_p
    _LIBC.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
except OSError:  # pragma: no cover - a platform without dlopen(NULL)
    _LIBC = None


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
    t = time.perf_counter()
    data = load_data(Path(job["data_dir"]), with_targets=job["stage"] == "model")
    timings["load_data"] = time.perf_counter() - t
    seed_generators(job.get("seed"))
    steps = load_steps(job["program"], job["defaults"], timings)
    if job["stage"] == "features":
        run_features(steps["create_features"], data, out, timings, job.get("head_rows"))
    else:
        run_model(steps, data, job, out, timings)


def seed_generators(seed: int | None) -> None:
    """The same global random state in every run (``env.pipeline.seed``): a program that draws
    unseeded random numbers (scikit-learn's ``random_state=None``, HistGradientBoosting's early
    stopping split) gets the same numbers each time it is evaluated, so its scores reproduce."""
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed)


def load_data(data_dir: Path, with_targets: bool) -> dict:
    """Step 1 (locked): memory-map the view's arrays and build its frame on them (no copy)."""
    meta = json.loads((data_dir / "meta.json").read_text())
    eras = np.load(data_dir / "eras.npy", allow_pickle=False)
    frame = pd.DataFrame(view_features(data_dir), columns=meta["feature_names"], copy=False)
    frame.insert(0, "era", eras)
    if "asset_names" in meta:  # price data: each row's date and asset too
        dates = np.load(data_dir / "dates.npy", allow_pickle=False)
        assets = np.load(data_dir / "assets.npy", allow_pickle=False)
        frame.insert(1, "date", dates[eras])
        frame.insert(2, "asset", np.asarray(meta["asset_names"], dtype=object)[assets])
    data = {"meta": meta, "frame": frame, "eras": eras}
    if with_targets:
        data["targets"] = np.load(data_dir / "targets.npy", allow_pickle=False)
    return data


def run_features(create_features, data: dict, out: Path, timings: dict[str, float],
                 head_rows: int | None = None) -> None:
    """``features.npy``, or with ``head_rows`` (the training rows' count) the same matrix as
    ``features.head.npy`` (those rows: the model stage's training matrix as it is) and
    ``features.rest`` (:func:`write_rest`), so nobody copies the training rows out of it."""
    t = time.perf_counter()
    X = step_create_features(create_features, data)
    values = X.to_numpy()
    if values.dtype.kind == "b":
        values = values.astype(np.int8)
    if values.dtype.kind not in "iuf":
        values = X.to_numpy(dtype=np.float64, na_value=np.nan)
    if head_rows is None:
        np.save(out / "features.npy", values)
    else:
        values = np.ascontiguousarray(values)
        np.save(out / JOINED_HEAD, values[:head_rows])
        write_rest(out / JOINED_REST, out / JOINED_HEAD, values, head_rows)
    (out / "columns.json").write_text(json.dumps(list(X.columns)))
    timings["create_features"] = time.perf_counter() - t


def run_model(steps: dict, data: dict, job: dict, out: Path, timings: dict[str, float]) -> None:
    inbox = Path(job["inbox"])
    t = time.perf_counter()
    y = step_create_target(steps["create_target"], data)
    timings["create_target"] = time.perf_counter() - t
    columns = pd.Index(json.loads((inbox / "columns.json").read_text()))  # once: each block's frame shares it
    X_train = pd.DataFrame(mapped(inbox / "x_train.npy"), columns=columns, copy=False)
    folds = []
    if job.get("cv", True):  # live predictions skip the CV fits: nothing scores them
        t = time.perf_counter()
        folds = step_define_cv(steps["define_cv"], data["eras"], job["embargo"], job["max_cv_folds"])
        timings["define_cv"] = time.perf_counter() - t
    sample = bin_sample(job.get("bin_sample_rows"), job.get("bin_sample_mb"), X_train.shape[1])
    model = fit(steps["define_model"], X_train, y, folds, out, timings, sample)
    t = time.perf_counter()
    signals, answers = job["signal_fds"]
    for k in range(job["n_blocks"]):
        X = pd.DataFrame(next_block(inbox / f"x_{k}.npy", signals), columns=columns)
        with open(out / f".p_{k}.npy", "wb") as f:
            np.save(f, predict(model, X))
        os.rename(out / f".p_{k}.npy", out / f"p_{k}.npy")
        os.write(answers, b"p")
    timings["predict"] = time.perf_counter() - t


def mapped(path: Path) -> np.ndarray:
    """An array file mapped copy-on-write: its pages are the shared file's until the program
    writes one (then that page is the child's own); the file itself never changes."""
    return np.load(path, mmap_mode="c", allow_pickle=False)


JOINED_HEAD, JOINED_REST = "features.head.npy", "features.rest"
PROT_NONE, MAP_FIXED = 0, 0x10  # Linux; not in Python's mmap module


def view_features(data_dir: Path, writable: bool = True) -> np.ndarray:
    """A view's feature matrix, mapped: ``features.npy``, or a joined pair (:func:`map_joined`)."""
    if (data_dir / JOINED_REST).exists():
        return map_joined(data_dir / JOINED_HEAD, data_dir / JOINED_REST, writable)
    return np.load(data_dir / "features.npy", mmap_mode="c" if writable else "r", allow_pickle=False)


def map_joined(head: Path, rest: Path, writable: bool = True) -> np.ndarray:
    """One matrix over two files, mapped side by side: no copy of either.

    ``head`` is a plain ``.npy`` file of the first rows (a training view's features, which
    children of the training rows alone map as they are). ``rest`` holds the bytes of
    ``head``'s last partial page, then the later rows. ``head``'s whole pages are mapped and
    ``rest`` right after them, so the rows run on without a gap. ``writable``: copy-on-write,
    as ``np.load(mmap_mode="c")``; else read-only. The mapping lives as long as the array.
    """
    with open(head, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset, head_size = f.tell(), os.fstat(f.fileno()).st_size
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    if fortran or dtype.hasobject or len(shape) != 2 or head_size != offset + shape[0] * row_bytes or row_bytes == 0:
        raise ValueError(f"{head}: not a plain C-ordered matrix file")
    pages = head_size // mmap.PAGESIZE * mmap.PAGESIZE
    rest_size = os.path.getsize(rest)
    later, extra = divmod(rest_size - (head_size - pages), row_bytes)
    if later < 0 or extra:
        raise ValueError(f"{rest}: not {head.name}'s last page and whole rows after it")
    prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
    size = pages + rest_size
    address = _checked_map(None, size, PROT_NONE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1)  # the range
    try:
        for path, at, length in ((head, 0, pages), (rest, pages, rest_size)):
            if length:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    _checked_map(address + at, length, prot, mmap.MAP_PRIVATE | MAP_FIXED, fd)
                finally:
                    os.close(fd)
    except OSError:
        _LIBC.munmap(ctypes.c_void_p(address), ctypes.c_size_t(size))
        raise
    buffer = (ctypes.c_char * size).from_address(address)
    weakref.finalize(buffer, _LIBC.munmap, ctypes.c_void_p(address), ctypes.c_size_t(size))
    array = np.frombuffer(buffer, dtype=dtype, count=(shape[0] + later) * row_bytes // dtype.itemsize,
                          offset=offset).reshape(shape[0] + later, *shape[1:])
    array.flags.writeable = writable
    return array


def write_rest(path: Path, head: Path, matrix, head_rows: int, chunk_bytes: int = 1 << 26) -> None:
    """The rest file of :func:`map_joined`: ``head``'s last partial page, then ``matrix``'s rows
    from ``head_rows`` on, a chunk of rows at a time (``matrix``: anything sliced into arrays)."""
    size = head.stat().st_size
    pages = size // mmap.PAGESIZE * mmap.PAGESIZE
    rows = max(1, chunk_bytes // max(1, matrix[:1].nbytes))
    with open(path, "wb") as f, open(head, "rb") as h:
        h.seek(pages)
        f.write(h.read(size - pages))
        for start in range(head_rows, len(matrix), rows):
            f.write(np.ascontiguousarray(matrix[start:start + rows]).tobytes())


def _checked_map(address: int | None, length: int, prot: int, flags: int, fd: int) -> int:
    got = _LIBC.mmap(address, length, prot, flags, fd, 0)
    if got is None or got == ctypes.c_void_p(-1).value:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mmap: {os.strerror(errno)}")
    return got


def next_block(path: Path, signals: int) -> np.ndarray:
    """The next block, once the parent says it is there (the sandbox's limits end a stuck wait)."""
    if os.read(signals, 1) != b"n":
        raise StepError("the parent stopped the stream after refusing a block's predictions")
    return np.load(path, allow_pickle=False)


def load_steps(source: str, defaults: dict[str, str], timings: dict[str, float]) -> dict:
    """Compile and run the program, then take each step from it or from the defaults."""
    t = time.perf_counter()
    linecache.cache[PROGRAM_FILE] = (len(source), None, source.splitlines(True), PROGRAM_FILE)
    code = compile(source, PROGRAM_FILE, "exec")
    namespace: dict = {"__name__": "program"}
    exec(code, namespace)  # noqa: S102 - this whole process is the sandboxed child
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
    meta, n_train = data["meta"], data["meta"]["n_rows"]
    train = data["frame"].copy(deep=False)  # copy-on-write: the program's writes copy what they touch
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


def fit(define_model, X_train: pd.DataFrame, y: np.ndarray, folds: list, out: Path,
        timings: dict[str, float], bin_sample_rows: int | None = None):
    """Step 6 (locked): the CV fits (advisory out-of-fold predictions), then the final fit."""
    t = time.perf_counter()
    n_train = len(X_train)
    finite = np.isfinite(y)
    oof = np.full(n_train, np.nan)
    for k, (train_idx, test_idx) in enumerate(folds):
        if train_idx.min() < 0 or test_idx.min() < 0 or max(train_idx.max(), test_idx.max()) >= n_train:
            raise StepError(f"define_cv fold {k}: indices must lie in [0, {n_train})")
        np.save(out / f"cv_train_{k}.npy", train_idx)
        np.save(out / f"cv_test_{k}.npy", test_idx)
        fit_idx = train_idx[finite[train_idx]]
        model = lean(define_model(), bin_sample_rows)
        with rows_in_batches(model):
            model.fit(rows_at(X_train, fit_idx), y[fit_idx])
        release_freed()
        oof[test_idx] = predict(model, rows_at(X_train, test_idx))
        del model
        release_freed()
    np.save(out / "oof.npy", oof)
    timings["cv"] = time.perf_counter() - t
    t = time.perf_counter()
    model = lean(define_model(), bin_sample_rows)
    with rows_in_batches(model):
        if finite.all():  # no masked copy of the whole matrix
            model.fit(X_train, y)
        else:
            model.fit(X_train[finite], y[finite])
    release_freed()
    timings["fit"] = time.perf_counter() - t
    return model


def rows_at(X: pd.DataFrame, idx: np.ndarray) -> pd.DataFrame:
    """The rows at ``idx``: a view when they are consecutive (a forward-chaining fold: no
    copy of the mapped rows), else a copy. The same rows, the same index labels."""
    run = consecutive(idx)
    return X.iloc[run] if run is not None else X.iloc[idx]


def consecutive(idx: np.ndarray) -> slice | None:
    """``idx`` as a slice when it is a run of consecutive row numbers, else None."""
    if len(idx) and idx[-1] - idx[0] == len(idx) - 1 and bool((np.diff(idx) == 1).all()):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return None


def release_freed() -> None:
    """Hand back to the system the heap memory a fit has freed (glibc's ``malloc_trim``).

    LightGBM frees its binned rows and its bin sample after a fit, but as many small blocks
    that glibc keeps in the process's heap (about 450 MB after a fit on 100,000 x 2,376
    rows). A later large array is mapped fresh beside them, so without this the next fold's
    fit or prediction would stack on the last one's leftovers. Without glibc it does nothing."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


def bin_sample(rows: int | None, mb: int | None, n_columns: int) -> int | None:
    """The rows of LightGBM's bin sample: ``rows`` (``env.pipeline.bin_sample_rows``), fewer
    where they would take more than ``mb`` MB as doubles (``env.pipeline.bin_sample_mb``),
    1,000 at least."""
    if not rows or not mb:
        return rows
    return int(min(rows, max(MIN_BIN_SAMPLE, mb * 2**20 // (8 * max(1, n_columns)))))


MIN_BIN_SAMPLE = 1_000


def lean(model, bin_sample_rows: int | None):
    """A LightGBM model, unless the program chose otherwise, builds its histogram bins from at
    most ``bin_sample_rows`` rows (``subsample_for_bin``, LightGBM's ``bin_construct_sample_cnt``)
    and its histograms column by column (``force_col_wise``). LightGBM holds the bin sample as
    doubles per feature (its default of 200,000 rows x 705 features is 1.7 GB), while an int8
    feature's five values show in far fewer rows; left to choose, it builds both a column-wise
    and a row-wise copy of the binned data and keeps the one that ran faster then (0.43 GB
    more at 218,000 x 2,376, and a choice that depends on the machine's load). Either way the
    model is the same (``tests/pipeline/test_evaluate.py``)."""
    lightgbm = sys.modules.get("lightgbm")  # imported by the program (or the zygote) when it uses it
    if bin_sample_rows and lightgbm is not None and isinstance(model, lightgbm.LGBMModel):
        params = model.get_params()
        if "bin_construct_sample_cnt" not in params and params.get("subsample_for_bin") == LIGHTGBM_BIN_SAMPLE:
            model.set_params(subsample_for_bin=int(bin_sample_rows))
        if not {"force_col_wise", "force_row_wise"} & set(params):
            model.set_params(force_col_wise=True)
    return model


LIGHTGBM_BIN_SAMPLE = 200_000  # LightGBM's default subsample_for_bin
BATCHED_FROM_CELLS = 32_000_000  # from here (rows x columns) a float32 copy would be 128 MB or more


@contextlib.contextmanager
def rows_in_batches(model):
    """While a LightGBM model fits, it reads a large numeric frame a batch of rows at a time.

    Given a frame or array, LightGBM first copies the whole of it as float32: four times
    the int8 training rows (2 GB of 494 MB at 2,376 features). Given a ``lightgbm.Sequence``
    it bins the same sample rows and pushes the rest in batches, and builds the same model
    (the same booster text; ``tests/pipeline/test_evaluate.py``). The scikit-learn
    interface programs use takes no ``Sequence``, so for the fit its ``Dataset`` is given one.
    """
    lightgbm = sys.modules.get("lightgbm")
    if lightgbm is None or not isinstance(model, lightgbm.LGBMModel):
        yield
        return
    module = sys.modules["lightgbm.sklearn"]
    original = module.Dataset

    def dataset(data=None, *args, **kwargs):
        rows = plain_rows(data)
        if rows is None:
            return original(data, *args, **kwargs)
        if isinstance(kwargs.get("feature_name", "auto"), str):  # "auto": the frame's names, as LightGBM takes them
            kwargs["feature_name"] = [str(c) for c in data.columns]
        batched = original([row_sequence(rows, lightgbm)], *args, **kwargs)
        batched.pandas_categorical = []  # what a frame without categories gives, kept in the model text
        return batched

    module.Dataset = dataset
    try:
        yield
    finally:
        module.Dataset = original


def plain_rows(data) -> np.ndarray | None:
    """The frame's values as one array, when they are plain numbers and many (else None)."""
    if not isinstance(data, pd.DataFrame) or data.shape[0] * data.shape[1] < BATCHED_FROM_CELLS:
        return None
    if not all(isinstance(dt, np.dtype) and dt.kind in "biuf" for dt in data.dtypes):
        return None  # categories and extension types keep LightGBM's own handling
    return data.to_numpy()  # one block (the mapped training view): no copy


def row_sequence(values: np.ndarray, lightgbm) -> object:
    """``values`` as a ``lightgbm.Sequence``: rows as float64, read 4,096 at a time."""

    class Rows(lightgbm.Sequence):
        batch_size = 4096

        def __getitem__(self, index):
            return np.asarray(values[index], dtype=np.float64)

        def __len__(self) -> int:
            return len(values)

    return Rows()


def predict(model, X: pd.DataFrame) -> np.ndarray:
    if not hasattr(model, "predict"):
        raise StepError(f"define_model must return an object with fit and predict, got {type(model).__name__}")
    p = np.asarray(model_predict(model, X), dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.shape != (len(X),):
        raise StepError(f"predict must return one value per row ({len(X)}), got shape {p.shape}")
    return p


def model_predict(model, X: pd.DataFrame):
    """``model.predict(X)``; a LightGBM model predicts many rows 4,096 at a time.

    Given a frame, LightGBM first copies it as float32 (four times an int8 frame: 450 MB
    for a CV fold of 50,000 x 2,376 rows). A tree's prediction for a row depends on that
    row alone, so the batches give the same values."""
    lightgbm = sys.modules.get("lightgbm")
    if (lightgbm is None or not isinstance(model, lightgbm.LGBMModel) or not isinstance(X, pd.DataFrame)
            or X.shape[0] * X.shape[1] < BATCHED_FROM_CELLS):
        return model.predict(X)
    batch = PREDICT_BATCH_ROWS
    return np.concatenate([np.asarray(model.predict(X.iloc[s:s + batch])).reshape(-1)
                           for s in range(0, len(X), batch)])


PREDICT_BATCH_ROWS = 4096


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
