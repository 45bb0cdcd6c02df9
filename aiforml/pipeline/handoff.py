"""The data a sandbox child may see, written once per data version and era split.

A folder (in this user's private folder under /dev/shm when it exists, so reads are
memory-speed, see :mod:`.userdirs`) holding:
``features.npy`` (int8, training rows then validation rows then test rows),
``eras.npy`` (int32, same rows), ``train_targets.npy`` (float32, training rows only) and
``meta.json`` (names, row counts, embargo). Validation and test targets are never
written here: the child cannot read what is not in its view. Children memory-map these
files, which costs a fraction of a second and no copy (NOTES.md measured pickling through
a pipe at ~20x the cost).

Not responsible for running or scoring; the trusted side keeps its own row indices.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aiforml.data.dataset import Dataset, EraSplit
from aiforml.pipeline.userdirs import private_root

HANDOFF_VERSION = 1


@dataclass(frozen=True)
class Handoff:
    """Where the child's data lives, and which dataset rows it holds, in order."""

    dir: Path
    train_rows: np.ndarray  # dataset row indices of the training rows
    validation_rows: np.ndarray
    test_rows: np.ndarray

    @property
    def n_train(self) -> int:
        return len(self.train_rows)

    @property
    def eval_rows(self) -> np.ndarray:
        """Validation rows then test rows: the order of the child's predictions."""
        return np.concatenate([self.validation_rows, self.test_rows])


def default_root() -> Path:
    """This user's private hand-off folder (:func:`aiforml.pipeline.userdirs.private_root`)."""
    return private_root("handoff")


def split_key(dataset: Dataset, split: EraSplit) -> str:
    text = json.dumps([dataset.version, split.train.tolist(), split.validation.tolist(),
                       split.test.tolist(), split.embargo, HANDOFF_VERSION])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_handoff(dataset: Dataset, split: EraSplit, root: Path | None = None) -> Handoff:
    """Write (or reuse) the hand-off folder for this dataset and split."""
    rows = {
        name: np.flatnonzero(np.isin(dataset.eras, eras))
        for name, eras in (("train", split.train), ("validation", split.validation), ("test", split.test))
    }
    handoff = Handoff(Path(root or default_root()) / split_key(dataset, split),
                      rows["train"], rows["validation"], rows["test"])
    if (handoff.dir / "meta.json").exists():
        return handoff
    handoff.dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=handoff.dir.parent))
    try:
        _write(staging, dataset, split, handoff)
        os.chmod(staging, 0o755)
        try:
            os.rename(staging, handoff.dir)
        except OSError:  # another process won the race; its folder is identical
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return handoff


def _write(folder: Path, dataset: Dataset, split: EraSplit, handoff: Handoff) -> None:
    order = np.concatenate([handoff.train_rows, handoff.eval_rows])
    np.save(folder / "features.npy", np.ascontiguousarray(dataset.features[order], dtype=np.int8))
    np.save(folder / "eras.npy", dataset.eras[order].astype(np.int32))
    np.save(folder / "train_targets.npy", dataset.targets[handoff.train_rows].astype(np.float32))
    meta = {
        "feature_names": list(dataset.feature_names),
        "target_names": list(dataset.target_names),
        "feature_groups": {k: list(v) for k, v in dataset.feature_groups.items()},
        "n_train": int(handoff.n_train),
        "n_validation": int(len(handoff.validation_rows)),
        "n_test": int(len(handoff.test_rows)),
        "embargo": int(split.embargo),
    }
    (folder / "meta.json").write_text(json.dumps(meta))
