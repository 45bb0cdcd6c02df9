"""Loader of Numerai-format parquet files into a ``Dataset``.

Responsible for: finding the files (a directory with ``train.parquet``, optional
``validation.parquet`` and ``features.json``, or one parquet file), reading only the
columns of the chosen feature set with pyarrow (int8 stays int8; no whole-frame upcast),
checking the schema with errors that name the file and the missing columns, and mapping
eras ("0001" or ints) to sorted int32 eras. Rows whose ``target`` is unknown are dropped.
Not responsible for: downloading data, splitting eras (``dataset.py``).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aiforml.config import DataConfig
from aiforml.data.dataset import GROUP_NAMES, Dataset, restrict

LOADER_VERSION = "1"
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


def _features_array(table: pa.Table, names: list[str], path: Path) -> np.ndarray:
    out = np.empty((table.num_rows, len(names)), dtype=np.int8)
    for j, name in enumerate(names):
        col = table.column(name).to_numpy()
        if col.dtype.kind == "f":  # older releases: float with NaN for missing values
            col = np.where(np.isnan(col), 2, np.rint(col))
        if col.dtype.kind not in "iuf" or (len(col) and (col.min() < 0 or col.max() > 4)):
            raise ValueError(f"{path}: column {name} must hold integers 0..4, got {col.dtype}")
        out[:, j] = col
    return out


def _era_array(table: pa.Table, path: Path) -> np.ndarray:
    col = table.column("era").to_numpy(zero_copy_only=False)
    if col.dtype.kind in "iu":
        return col.astype(np.int32)
    try:
        return np.array([int(re.sub(r"\D", "", str(e))) for e in col], dtype=np.int32)
    except ValueError as exc:
        raise ValueError(f"{path}: era values must be integers or strings like '0001'") from exc


def _read_file(
    path: Path, features: list[str], targets: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    schema = pq.read_schema(path).names
    missing = [c for c in ["era", *features, *targets] if c not in schema]
    if missing:
        raise ValueError(f"{path} lacks columns {missing[:10]} (total {len(missing)} missing)")
    extra = ["data_type"] if "data_type" in schema else []
    table = pq.read_table(path, columns=["era", *extra, *features, *targets])
    y = np.column_stack([table.column(t).to_numpy(zero_copy_only=False) for t in targets])
    y = y.astype(np.float32)
    keep = np.isfinite(y[:, 0])
    kind = np.asarray(table.column("data_type").to_numpy(zero_copy_only=False)) if extra else None
    eras = _era_array(table, path)
    x = _features_array(table, features, path)
    if keep.all():  # the usual case: no copy of the feature block
        return eras, x, y, kind
    return eras[keep], x[keep], y[keep], None if kind is None else kind[keep]


def load_numerai(path: str | Path, feature_set: str = "all") -> Dataset:
    """Read Numerai-format data (see the module docstring) into a ``Dataset``."""
    files, meta_path = find_files(path)
    meta = json.loads(meta_path.read_text()) if meta_path else {}
    features, targets = choose_columns(pq.read_schema(files[0]).names, meta, feature_set, files[0])
    parts = [_read_file(f, features, targets) for f in files]
    eras, x, y = (_join([p[i] for p in parts]) for i in range(3))
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
        version=_version(files, feature_set),
        name="numerai",
        default_validation_eras=n_val,
        default_test_eras=n_test,
    )


def _join(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _default_blocks(parts: list) -> tuple[int, int]:
    """Held-out eras (``data_type`` != "train", else the last file's, else the last 30 %)
    become the sealed test block (later half) and the validation block (the rest less the
    default embargo, so that validation starts where the held-out eras start)."""
    eras = np.concatenate([p[0] for p in parts])
    if all(p[3] is not None for p in parts):
        held = np.concatenate([p[3] for p in parts]) != "train"
        n_held = len(np.unique(eras[held]))
    else:
        n_held = len(np.unique(parts[-1][0])) if len(parts) > 1 else 0
    if n_held < 2:
        n_held = max(2, round(0.3 * len(np.unique(eras))))
    n_test = max(1, n_held // 2)
    return max(1, n_held - n_test - DataConfig.embargo_eras), n_test


def _version(files: list[Path], feature_set: str) -> str:
    stats = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    key = json.dumps({"v": LOADER_VERSION, "files": stats, "set": feature_set})
    return hashlib.sha256(key.encode()).hexdigest()[:16]
