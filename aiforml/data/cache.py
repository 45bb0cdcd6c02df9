"""On-disk cache of generated datasets: one directory of ``.npy`` files per content id.

Responsible for: saving a ``Dataset`` atomically (write a temporary directory, then
rename, so concurrent processes never see half a dataset) and loading it back.
Not responsible for: deciding the key (``synthetic.synthetic_version``) or generating.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from aiforml.data.dataset import Dataset

ARRAYS = ("eras", "features", "targets", "ids")
META = (
    "feature_names", "target_names", "feature_sets", "feature_groups", "version", "name",
    "default_validation_eras", "default_test_eras",
)  # fmt: skip


def default_cache_dir() -> Path:
    return Path(os.environ.get("AIFORML_CACHE", Path.home() / ".cache" / "aiforml"))


def cache_path(cache_dir: str | Path | None, name: str, version: str) -> Path:
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return root / f"{name}-{version}"


def save_dataset(dataset: Dataset, path: Path) -> None:
    """Write ``dataset`` to directory ``path`` atomically; a concurrent winner is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        for name in ARRAYS:
            arr = getattr(dataset, name)
            if arr is not None:
                np.save(tmp / f"{name}.npy", arr, allow_pickle=False)
        meta = {k: getattr(dataset, k) for k in META}
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.rename(tmp, path)
        except OSError:
            if not (path / "meta.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_cached(path: Path) -> Dataset | None:
    """The dataset saved at ``path``, or None when there is none (or it is unreadable)."""
    meta_file = path / "meta.json"
    if not meta_file.exists():
        return None
    try:
        meta = json.loads(meta_file.read_text())
        arrays = {
            name: np.load(path / f"{name}.npy", allow_pickle=False)
            for name in ARRAYS
            if (path / f"{name}.npy").exists()
        }
    except (OSError, ValueError):
        return None
    return Dataset(
        **arrays,
        feature_names=tuple(meta["feature_names"]),
        target_names=tuple(meta["target_names"]),
        feature_sets={k: tuple(v) for k, v in meta["feature_sets"].items()},
        feature_groups={k: tuple(v) for k, v in meta["feature_groups"].items()},
        version=meta["version"],
        name=meta["name"],
        default_validation_eras=int(meta["default_validation_eras"]),
        default_test_eras=int(meta["default_test_eras"]),
    )
