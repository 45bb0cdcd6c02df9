"""The data a sandbox child may read: folders of plain ``.npy`` arrays and a ``meta.json``.

A *view* is what a task lets one stage see (:meth:`aiforml.tasks.Task.feature_view`,
``train_view``): features, eras and, for prices, assets and dates; training targets only
in the training view. Validation and test targets are never written anywhere a child can
read. The two views of a dataset and split are written once, under /dev/shm when it
exists (reads at memory speed, memory-mapped by the child: no copy per evaluation), and
shared by every evaluation (in this user's private folder, :mod:`.userdirs`); a look-ahead
guard's truncated view is written per evaluation into its job folder.

The trusted side holds the same copy: :func:`shared_dataset` gives the task's rows of the
data set without the feature matrix, which :func:`open_shared_dataset` memory-maps from
the feature view (so the environment actors of one machine share one read-only copy with
every child). The default feature step's matrix (:func:`shared_matrix`) is that file too
when it is equal (else written once), and its training rows are hard-linked into each
job's inbox, not copied.

Not responsible for running or scoring; the trusted side keeps its own row indices.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from aiforml.data.dataset import Dataset
from aiforml.pipeline.userdirs import private_root
from aiforml.tasks.base import Task, View

HANDOFF_VERSION = 2


def default_root() -> Path:
    """This user's private hand-off folder (:func:`aiforml.pipeline.userdirs.private_root`)."""
    return private_root("handoff")


def split_key(task: Task) -> str:
    s = task.split
    text = json.dumps([task.name, task.dataset.version, s.train.tolist(), s.validation.tolist(),
                       s.test.tolist(), s.embargo, HANDOFF_VERSION])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shared_views(task: Task, root: Path | None = None) -> tuple[Path, Path]:
    """The folders of the task's whole feature view and its training view (written once)."""
    base = Path(root or default_root()) / split_key(task)
    features, train = base / "features", base / "train"
    if not (features / "meta.json").exists():
        write_view(features, task.feature_view(len(task.feature_rows)))
    if not (train / "meta.json").exists():
        write_view(train, task.train_view())
    return features, train


def shared_dataset(task: Task, root: Path | None = None) -> tuple[dict[str, Any], Path]:
    """The task's data set cut to its feature rows, as ``Dataset`` fields less the feature
    matrix (small: eras, targets, names), and the file that holds the matrix: the feature
    view, written here once. Embargo rows are left out; no evaluation reads them."""
    feature_dir, _ = shared_views(task, root)
    d, rows = task.dataset, task.feature_rows
    fields = {f.name: getattr(d, f.name) for f in dataclasses.fields(d) if f.name != "features"}
    fields.update(eras=d.eras[rows], targets=d.targets[rows], ids=None if d.ids is None else d.ids[rows])
    return fields, feature_dir / "features.npy"


def open_shared_dataset(fields: dict[str, Any], path: Path) -> Dataset:
    """The data set of :func:`shared_dataset`, its matrix memory-mapped read-only from ``path``."""
    return Dataset(**fields, features=np.load(path, mmap_mode="r", allow_pickle=False))


def shared_matrix(feature_dir: Path, train_dir: Path, matrix: np.ndarray, n_train: int,
                  key: str) -> tuple[np.ndarray, Path]:
    """``matrix`` (the default feature step's output on the feature view) memory-mapped from
    a hand-off file, and the file of its first ``n_train`` rows, for hard links into inboxes.

    When it equals the view's own features (the Numerai default selects the columns as they
    are), those files serve and nothing is written; else it is written once under ``key``.
    """
    view = np.load(feature_dir / "features.npy", mmap_mode="r", allow_pickle=False)
    if view.dtype == matrix.dtype and np.array_equal(view, matrix):
        return view, train_dir / "features.npy"
    folder = feature_dir.parent / f"default-{key}"
    if not (folder / "meta.json").exists():
        write_view(folder, ({"matrix": matrix, "x_train": matrix[:n_train]}, {}))
    return np.load(folder / "matrix.npy", mmap_mode="r", allow_pickle=False), folder / "x_train.npy"


def link_or_copy(source: Path, target: Path) -> None:
    """``target`` as a hard link of ``source`` (no copy), or a copy across file systems."""
    try:
        os.link(source, target)
    except OSError:  # another file system (a work_root elsewhere) or no links there
        shutil.copyfile(source, target)


def write_view(folder: Path, view: View) -> Path:
    """Write ``view`` into ``folder`` atomically (staging folder, then rename); keep a winner's."""
    arrays, meta = view
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder.parent))
    try:
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", array, allow_pickle=False)
        n_rows = len(arrays["eras"] if "eras" in arrays else next(iter(arrays.values())))
        (staging / "meta.json").write_text(json.dumps({**meta, "n_rows": int(n_rows)}))
        os.chmod(staging, 0o755)
        try:
            os.rename(staging, folder)
        except OSError:  # another process won the race; its folder is identical
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
