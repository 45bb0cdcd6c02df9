"""The data a sandbox child may read: folders of plain ``.npy`` arrays and a ``meta.json``.

A *view* is what a task lets one stage see (:meth:`aiforml.tasks.Task.feature_view`,
``train_view``): features, eras and, for prices, assets and dates; training targets only
in the training view. Validation and test targets are never written anywhere a child can
read. The two views of a dataset and split are written once, under /dev/shm when it
exists (reads at memory speed, memory-mapped by the child: no copy per evaluation), and
shared by every evaluation (in this user's private folder, :mod:`.userdirs`); a look-ahead
guard's truncated view is written per evaluation into its job folder. The training rows are
held once: a view of more rows keeps its first ones as a hard link of the training view's
``features.npy`` and the rest in a second file, and every reader maps the two as one matrix
(:func:`write_joined`, :func:`aiforml.pipeline.harness.map_joined`).

The trusted side holds the same copy: :func:`shared_dataset` gives the task's rows of the
data set without the feature matrix, which :func:`open_shared_dataset` memory-maps from
the feature view (so the environment actors of one machine share one read-only copy with
every child). The default feature step's matrix is that file too when the step selects
the view's columns as they are (else written once, :func:`shared_matrix`), and its training
rows are hard-linked into each job's inbox, not copied.

Held while used, then freed. Under /dev/shm the views are memory: a split's folder would
hold its data (gigabytes at Numerai's full width) until the machine restarts. Every process
that uses a folder holds a shared ``flock`` on its ``lock`` file until it exits
(:func:`lease`); at exit, and when any process first leases a folder, each folder of the root
that no process holds is removed (also what a killed run left). The lock file lies beside
the views, where no child sees it (a child is shown only its own view's folder).

Not responsible for running or scoring; the trusted side keeps its own row indices.
"""

from __future__ import annotations

import atexit
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from aiforml.data.dataset import Dataset
from aiforml.metrics import EraBases
from aiforml.pipeline.harness import JOINED_HEAD, JOINED_REST, view_features, write_rest
from aiforml.pipeline.userdirs import private_root
from aiforml.tasks.base import RowsOf, Task, View

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
    """The folders of the task's whole feature view and its training view (written once).

    The training rows are held once: the feature view's matrix is joined onto the training
    view's (:func:`write_view` with ``head``), not a second copy of its first rows."""
    base = Path(root or default_root()) / split_key(task)
    lease(base)
    features, train = base / "features", base / "train"
    if not (train / "meta.json").exists():
        write_view(train, task.train_view())
    if not (features / "meta.json").exists():
        write_view(features, task.feature_view(len(task.feature_rows)), head=train / "features.npy")
    return features, train


def shared_dataset(task: Task, root: Path | None = None) -> tuple[dict[str, Any], Path]:
    """The task's data set cut to its feature rows, as ``Dataset`` fields less the feature
    matrix (small: eras, targets, names), and the file that holds the matrix: the feature
    view, written here once. Embargo rows are left out; no evaluation reads them."""
    feature_dir, _ = shared_views(task, root)
    d, rows = task.dataset, task.feature_rows
    fields = {f.name: getattr(d, f.name) for f in dataclasses.fields(d) if f.name != "features"}
    fields.update(eras=d.eras[rows], targets=d.targets[rows], ids=None if d.ids is None else d.ids[rows])
    return fields, feature_dir


def open_shared_dataset(fields: dict[str, Any], folder: Path) -> Dataset:
    """The data set of :func:`shared_dataset`, its matrix memory-mapped read-only from the
    feature view ``folder``."""
    return Dataset(**fields, features=view_matrix(folder))


class MappedMatrix(np.ndarray):
    """A view's matrix mapped read-only; ``filename``: the view's folder (as ``np.memmap``
    names its file, for a reader to tell which hand-off it holds)."""

    filename: str | None = None

    def __array_finalize__(self, obj: Any) -> None:
        self.filename = getattr(obj, "filename", None)


def view_matrix(folder: Path) -> np.ndarray:
    """The feature matrix of the view in ``folder``, memory-mapped read-only (one file, or
    the training rows' file joined with the rest: :func:`aiforml.pipeline.harness.map_joined`)."""
    matrix = view_features(Path(folder), writable=False).view(MappedMatrix)
    matrix.filename = str(folder)
    return matrix


def shared_matrix(feature_dir: Path, matrix: np.ndarray, n_train: int, key: str) -> tuple[np.ndarray, Path]:
    """``matrix`` (a default feature step's output on the feature view) memory-mapped from a
    hand-off folder beside the views, written once under ``key``, and the file of its first
    ``n_train`` rows, for hard links into inboxes. (A default that selects the view's columns
    as they are needs none of this: the view serves, ``Evaluator._default_features``.)"""
    folder = feature_dir.parent / f"default-joined-{key}"  # (an earlier layout kept "default-{key}")
    if not (folder / "all" / "meta.json").exists():
        write_view(folder, ({"features": matrix[:n_train]}, {}))  # a winner's is kept
        write_view(folder / "all", ({"features": matrix}, {}), head=folder / "features.npy")
    return view_matrix(folder / "all"), folder / "features.npy"


def shared_bases(base: Path, name: str, build: Callable[[], EraBases]) -> EraBases:
    """Feature-neutral bases kept once per machine in the hand-off folder ``base`` (its
    ``fnc-<name>`` folder, beside the views, where no child sees it), memory-mapped by every
    actor: built by the first to need them (two at once both build; one folder wins)."""
    folder = base / f"fnc-{name}"
    if not (folder / "index.npy").exists():
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=base))
        try:
            bases = build()
            save_bases(bases, staging / "bases")
            del bases
            try:
                os.rename(staging / "bases", folder)
            except OSError:  # another actor's folder won: the same bases
                pass
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return load_bases(folder)


def save_bases(bases: EraBases, folder: Path) -> None:
    """Every era's array in one flat file, an index of (offset, rows, columns), the rows' count
    and, for the map form, the rows' features."""
    folder.mkdir(parents=True)
    kept = [b for b in bases.bases if b is not None]
    index, at = [], 0
    for b in bases.bases:
        index.append((-1, 0, 0) if b is None else (at, *b.shape))
        at += 0 if b is None else b.size
    np.save(folder / "values.npy", np.concatenate([b.ravel() for b in kept]) if kept else np.zeros(0))
    np.save(folder / "index.npy", np.asarray(index, dtype=np.int64).reshape(-1, 3))
    np.save(folder / "n_rows.npy", np.asarray([bases.n_rows], dtype=np.int64))
    if bases.features is not None:
        np.save(folder / "features.npy", bases.features)


def load_bases(folder: Path) -> EraBases:
    """What :func:`save_bases` wrote, memory-mapped read-only."""
    flat = np.load(folder / "values.npy", mmap_mode="r", allow_pickle=False)
    index = np.load(folder / "index.npy", allow_pickle=False)
    bases = tuple(None if at < 0 else flat[at:at + rows * cols].reshape(rows, cols) for at, rows, cols in index)
    rows_file = folder / "features.npy"
    features = np.load(rows_file, mmap_mode="r", allow_pickle=False) if rows_file.exists() else None
    return EraBases(bases, int(np.load(folder / "n_rows.npy", allow_pickle=False)[0]), features)


def link_or_copy(source: Path, target: Path) -> None:
    """``target`` as a hard link of ``source`` (no copy), or a copy across file systems."""
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:  # another file system (a work_root elsewhere) or no links there
        shutil.copyfile(source, target)


def write_view(folder: Path, view: View, head: Path | None = None) -> Path:
    """Write ``view`` into ``folder`` atomically (staging folder, then rename); keep a winner's.

    ``head``: a ``features.npy`` holding the first rows of this view's features (the training
    view's); they are not written again, only the rows after them (:func:`write_joined`)."""
    arrays, meta = view
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder.parent))
    try:
        for name, array in arrays.items():
            if name == "features" and head is not None:
                write_joined(staging, array, head)
            elif isinstance(array, np.ndarray):
                np.save(staging / f"{name}.npy", array, allow_pickle=False)
            else:  # RowsOf: gathered a block at a time
                write_blocks(staging / f"{name}.npy", array)
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


def write_blocks(path: Path, rows: RowsOf, chunk_bytes: int = 1 << 26) -> None:
    """``rows`` as a ``.npy`` file, gathered and written a block of rows at a time."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=rows.dtype, shape=rows.shape)
    step = max(1, chunk_bytes // max(1, rows[:1].nbytes))
    for start in range(0, len(rows), step):
        out[start:start + step] = rows[start:start + step]
    out.flush()
    del out


def write_joined(folder: Path, matrix: np.ndarray | RowsOf, head: Path, chunk_bytes: int = 1 << 26) -> None:
    """``matrix`` as :data:`~aiforml.pipeline.harness.JOINED_HEAD`, a hard link of ``head`` (its
    first rows, not copied), and :data:`~aiforml.pipeline.harness.JOINED_REST`: ``head``'s last
    partial page, then the rows after it, written a chunk at a time.

    ``head`` must hold exactly ``matrix``'s first rows (the caller's view is a prefix of this
    one: :meth:`aiforml.tasks.Task.train_view`); its shape and type are checked here."""
    first = np.load(head, mmap_mode="r", allow_pickle=False)
    if first.dtype != matrix.dtype or first.shape[1:] != matrix.shape[1:] or len(first) > len(matrix):
        raise ValueError(f"{head} ({first.shape}, {first.dtype}) is not the first rows of a "
                         f"{matrix.shape} {matrix.dtype} matrix")
    link_or_copy(head, folder / JOINED_HEAD)
    write_rest(folder / JOINED_REST, head, matrix, len(first), chunk_bytes)


LOCK = "lock"
KEY_NAME = re.compile(r"[0-9a-f]{16}")  # split_key's names
UNLOCKED_STALE_S = 24 * 3600  # a hand-off folder without a lock file this old was left by an earlier version
_leases: dict[Path, int] = {}  # the folders this process uses: a shared flock on each, held until exit


def lease(base: Path) -> None:
    """Hold a shared lock on the hand-off folder ``base`` (made if missing) until this process
    exits; the first lease of a process removes the root's folders nobody holds."""
    base = Path(base)
    if base in _leases:
        return
    if not _leases:
        atexit.register(release_all)
    remove_unused(base.parent, keep=base)
    while True:  # a remover may delete the folder between our open and our lock: then again
        try:
            base.mkdir(parents=True, exist_ok=True)
            fd = os.open(base / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            continue
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            current = os.stat(base / LOCK).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            _leases[base] = fd
            return
        os.close(fd)


def remove_unused(root: Path, keep: Path | None = None) -> list[Path]:
    """Remove each hand-off folder of ``root`` (named by :func:`split_key`, holding a lock
    file) whose lock no process holds, except ``keep``; return those removed. Nothing else
    in ``root`` is touched."""
    removed = []
    for folder in sorted(Path(root).iterdir()) if Path(root).is_dir() else []:
        if folder == keep or folder in _leases or not KEY_NAME.fullmatch(folder.name) or folder.is_symlink():
            continue
        try:
            fd = os.open(folder / LOCK, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:  # being made now, or left by a version without locks (old: removed)
            if time.time() - folder.lstat().st_mtime > UNLOCKED_STALE_S and folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # in use
            os.close(fd)
            continue
        try:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            os.close(fd)
    return removed


def release_all() -> None:
    """Let go of this process's folders and remove those no other process holds."""
    roots = {base.parent for base in _leases}
    while _leases:
        os.close(_leases.popitem()[1])
    for root in roots:
        remove_unused(root)
