"""Loader of Numerai-format parquet files into a ``Dataset``.

Responsible for: finding the files (a directory with ``train.parquet``, optional
``validation.parquet`` and ``features.json``, or one parquet file), reading them with a
lazy polars scan that projects only ``era``, ``data_type``, the chosen feature set's
columns and the targets, with two predicates pushed into the reader: a known ``target``
(v5's test rows have none and are dropped) and the era stride (``data.era_stride``: every
k-th era, counted from the first file's first era). Features stay int8 and are read one
row-group slice at a time into one C-contiguous int8 matrix (the transient copy is one
slice, not the file). Also checking the schema with errors that name the file and the
missing columns, and mapping eras ("0001" or ints) to sorted int32 eras.
Not responsible for: downloading data, splitting eras (``dataset.py``), sharing the
arrays between processes (the environment pool and the hand-off).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

# polars' allocator (jemalloc) keeps freed pages for 10 s by default: each slice's transient
# would stay with the process while it writes the hand-off views (about 300 MB at full width,
# stride 4). Read when polars first allocates, so set before it loads; a user's own setting wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:100,muzzy_decay_ms:0")

import numpy as np  # noqa: E402 - after the allocator's setting
import polars as pl  # noqa: E402
import pyarrow.parquet as pq

from aiforml.config import DataConfig
from aiforml.data.dataset import GROUP_NAMES, Dataset, restrict

LOADER_VERSION = "2"
FILES = ("train.parquet", "validation.parquet")


def find_files(path: str | Path) -> tuple[list[Path], Path | None]:
    """The parquet files to read, in era order, and the features.json beside them."""
    root = Path(path).expanduser()
    if root.is_file():
        files, meta_dir = [root], root.parent
    elif root.is_dir():
        files, meta_dir = [root / f for f in FILES if (root / f).exists()], root
        if not files:
            raise FileNotFoundError(
                f"no Numerai data in {root}: looked for {', '.join(str(root / f) for f in FILES)}"
            )
    else:
        raise FileNotFoundError(
            f"Numerai data path {root} does not exist (set data.path to a directory with "
            f"{' / '.join(FILES)} and features.json, or to one parquet file)"
        )
    meta = meta_dir / "features.json"
    return files, meta if meta.exists() else None


def choose_columns(
    schema_names: list[str], meta: dict, feature_set: str, path: Path
) -> tuple[list[str], list[str]]:
    """Feature and target columns to read; ValueError naming what the file lacks."""
    sets = meta.get("feature_sets", {})
    file_features = [c for c in schema_names if c.startswith("feature_")]
    if feature_set in sets:
        features = list(sets[feature_set])
    elif feature_set == "all":
        features = file_features
    else:
        raise ValueError(
            f"data.feature_set '{feature_set}' is not in {path.parent / 'features.json'}; "
            f"sets there: {sorted(sets) or 'none (only all is available)'}"
        )
    targets = ["target"] + [
        t for t in meta.get("targets", [c for c in schema_names if c.startswith("target_")])
        if t != "target" and t in schema_names
    ]
    missing = [c for c in ["era", *features, "target"] if c not in schema_names]
    if missing or not features:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise ValueError(
            f"{path} is not Numerai-format data: missing columns {shown or 'feature_*'} "
            f"(needs era, feature_* int8 0..4, target)"
        )
    return features, targets


BATCH_ROWS = 16_384  # most rows read at once (a larger row group is read in pieces)


def _era_expr(dtype: pl.DataType) -> pl.Expr:
    """Eras as int32: ints as they are, strings like "0001" or "era1" by their digits."""
    if dtype.is_integer():
        return pl.col("era").cast(pl.Int32)
    return pl.col("era").cast(pl.String).str.replace_all(r"\D", "").cast(pl.Int32)


def _feature_expr(name: str, dtype: pl.DataType, path: Path) -> pl.Expr:
    """A feature column as it is read: int8 stays int8; older float releases (NaN for
    missing) become rounded ints with NaN as 2; an int wider than int8 is kept wide here
    so that an out-of-range value is caught, not wrapped."""
    if dtype == pl.Int8:
        return pl.col(name)
    if dtype.is_float():
        return pl.col(name).fill_nan(2).fill_null(2).round().cast(pl.Int16, strict=False).fill_null(-1)
    if dtype.is_integer():
        return pl.col(name).cast(pl.Int16, strict=False).fill_null(-1)
    raise ValueError(f"{path}: column {name} must hold integers 0..4, got {dtype}")


def _first_era(path: Path) -> int:
    """The first era of a file, where the era stride starts counting."""
    lf = pl.scan_parquet(path)
    try:
        return int(lf.select(_era_expr(lf.collect_schema()["era"]).min()).collect().item())
    except (pl.exceptions.InvalidOperationError, TypeError) as exc:
        raise ValueError(f"{path}: era values must be integers or strings like '0001'") from exc


def _scan(path: Path, features: list[str], targets: list[str], first_era: int,
          era_stride: int) -> tuple[pl.LazyFrame, pl.Expr, dict[str, pl.DataType]]:
    """A lazy scan of ``path``, the row predicate (a known ``target``, a kept era: pushed
    into the parquet reader) and the schema; names the missing columns."""
    lf = pl.scan_parquet(path)
    schema = dict(lf.collect_schema())
    missing = [c for c in ["era", *features, *targets] if c not in schema]
    if missing:
        raise ValueError(f"{path} lacks columns {missing[:10]} (total {len(missing)} missing)")
    keep = pl.col("target").cast(pl.Float64).is_finite()
    if era_stride > 1:
        keep = keep & ((_era_expr(schema["era"]) - first_era) % era_stride == 0)
    return lf, keep, schema


def _slices(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of the file's row groups, a large group cut into BATCH_ROWS pieces:
    reading one slice at a time bounds the reader's transient memory to about one slice."""
    meta = pq.ParquetFile(path).metadata
    out, offset = [], 0
    for i in range(meta.num_row_groups):
        rows = meta.row_group(i).num_rows
        out += [(offset + k, min(BATCH_ROWS, rows - k)) for k in range(0, rows, BATCH_ROWS)]
        offset += rows
    return out


@dataclass(frozen=True)
class _FilePart:
    """One file's small columns, read; its features still to read (``_read_features``)."""

    path: Path
    eras: np.ndarray  # (n,) int32
    targets: np.ndarray  # (n, t) float32
    held: np.ndarray | None  # (n,) bool: data_type is not "train"; None without the column
    scan: pl.LazyFrame
    keep: pl.Expr
    features: list[pl.Expr]
    schema: dict[str, pl.DataType]


def _read_small(path: Path, features: list[str], targets: list[str], first_era: int = 0,
                era_stride: int = 1) -> _FilePart:
    """Eras, float32 targets and ``data_type`` of the kept rows: the row count, cheaply."""
    lf, keep, schema = _scan(path, features, targets, first_era, era_stride)
    small = [_era_expr(schema["era"]).alias("era"),
             *[pl.col(t).cast(pl.Float32).fill_null(float("nan")) for t in targets]]
    if "data_type" in schema:
        small.append((pl.col("data_type").cast(pl.String) != "train").alias("held"))
    try:
        head = lf.filter(keep).select(small).collect()
    except pl.exceptions.InvalidOperationError as exc:
        raise ValueError(f"{path}: era values must be integers or strings like '0001'") from exc
    return _FilePart(
        path=path, eras=head["era"].to_numpy().astype(np.int32, copy=False),
        targets=head.select(targets).to_numpy(order="c").astype(np.float32, copy=False),
        held=head["held"].to_numpy() if "data_type" in schema else None,
        scan=lf, keep=keep, features=[_feature_expr(f, schema[f], path) for f in features], schema=schema)


def _read_features(part: _FilePart, out: np.ndarray) -> None:
    """Fill ``out`` (the part's rows of the int8 matrix) one row-group slice at a time.

    (Measured on a full-width file: polars' ``collect_batches`` held about as much again as
    the result; slices keep the transient to about one slice.)
    """
    at = 0
    for offset, length in _slices(part.path):
        block = part.scan.slice(offset, length).filter(part.keep).select(part.features).collect()
        values = block.to_numpy(order="c")
        bad = (values < 0) | (values > 4)
        if bad.any():
            name = block.columns[int(np.flatnonzero(bad.any(axis=0))[0])]
            raise ValueError(f"{part.path}: column {name} must hold integers 0..4, got {part.schema[name]}")
        out[at:at + len(values)] = values
        at += len(values)
    assert at == len(out), "the feature slices and the small columns disagree on the rows"


def load_numerai(path: str | Path, feature_set: str = "all", era_stride: int = 1) -> Dataset:
    """Read Numerai-format data (see the module docstring) into a ``Dataset``."""
    if era_stride < 1:
        raise ValueError(f"data.era_stride must be >= 1 (1 keeps every era), got {era_stride}")
    files, meta_path = find_files(path)
    meta = json.loads(meta_path.read_text()) if meta_path else {}
    features, targets = choose_columns(list(pl.scan_parquet(files[0]).collect_schema()), meta, feature_set,
                                       files[0])
    first = _first_era(files[0]) if era_stride > 1 else 0
    parts = [_read_small(f, features, targets, first, era_stride) for f in files]
    eras, y = _join([p.eras for p in parts]), _join([p.targets for p in parts])
    x = np.empty((len(eras), len(features)), dtype=np.int8)  # the one copy: files read into it
    at = 0
    for part in parts:
        _read_features(part, x[at:at + len(part.eras)])
        at += len(part.eras)
    if np.any(np.diff(eras) < 0):  # files are normally sorted already: sort only if needed
        order = np.argsort(eras, kind="stable")
        eras, x, y = eras[order], x[order], y[order]
    names = tuple(features)
    sets = {k: tuple(v) for k, v in meta.get("feature_sets", {}).items()}
    groups = {k: v for k, v in restrict(sets, names).items() if k in GROUP_NAMES and v}
    sets = restrict({"small": names, "medium": names, **sets, "all": names}, names)
    n_val, n_test = _default_blocks(parts)
    return Dataset(
        eras=eras,
        features=x,
        targets=y,
        feature_names=names,
        target_names=tuple(targets),
        feature_sets={k: v for k, v in sets.items() if k not in GROUP_NAMES},
        feature_groups=groups,
        version=_version(files, feature_set, era_stride),
        name="numerai",
        default_validation_eras=n_val,
        default_test_eras=n_test,
    )


def _join(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _default_blocks(parts: list[_FilePart]) -> tuple[int, int]:
    """Held-out eras (``data_type`` != "train", else the last file's, else the last 30 %)
    become the sealed test block (later half) and the validation block (the rest less the
    default embargo, so that validation starts where the held-out eras start)."""
    eras = np.concatenate([p.eras for p in parts])
    if all(p.held is not None for p in parts):
        held = np.concatenate([p.held for p in parts])
        n_held = len(np.unique(eras[held]))
    else:
        n_held = len(np.unique(parts[-1].eras)) if len(parts) > 1 else 0
    if n_held < 2:
        n_held = max(2, round(0.3 * len(np.unique(eras))))
    n_test = max(1, n_held // 2)
    return max(1, n_held - n_test - DataConfig.embargo_eras), n_test


def _version(files: list[Path], feature_set: str, era_stride: int) -> str:
    stats = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    key = json.dumps({"v": LOADER_VERSION, "files": stats, "set": feature_set, "stride": era_stride})
    return hashlib.sha256(key.encode()).hexdigest()[:16]
