"""Numerai's live file: this round's rows to predict, features only, and where they go.

    live = read_live("v5/live.parquet", dataset.feature_names)   # ids, one era, int8 features
    data, split = with_live_rows(dataset, live, embargo=4)       # every labelled row, then the live era

Responsible for: reading ``live.parquet`` (``id`` as the index or a column, ``era`` "X" or a
number, ``data_type`` "live", ``feature_*`` int8 0..4; a float column with NaN, as older
releases wrote, reads NaN as 2) with pyarrow, only ``id``, ``era``, ``data_type`` and the
dataset's feature columns, with errors that name the file and what it lacks; and appending
the live rows after every labelled row as one more era, without targets and without ids.

The split of the appended data trains on **every labelled era the dataset holds** (train,
validation and sealed test blocks, embargo eras too: what the loader read): for a
submission the newest eras matter most, and nothing is scored here. Numerai's example
model trains on train + validation; a Numerai folder's ``validation.parquet`` is part of
the loaded dataset, so that is the same data. The live era is the only evaluation block.

Not responsible for: running the program (``Evaluator.predict``), ranking or writing the
predictions (:mod:`aiforml.submission`). The ids stay in the returned :class:`LiveRows`;
nothing of them reaches a sandbox.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aiforml.data.dataset import Dataset, EraSplit

LIVE_ERA_X = "X"  # Numerai's era name of the live rows


@dataclass(frozen=True, eq=False)
class LiveRows:
    """The live rows of one era, on the trusted side: ids in file order, features in the dataset's."""

    ids: np.ndarray  # (n,) str
    era: int | None  # the file's era number, None for "X" (the era after the last labelled one)
    features: np.ndarray  # (n, f) int8 in 0..4, the dataset's feature order


def read_live(path: str | Path, feature_names: tuple[str, ...] | list[str]) -> LiveRows:
    """The live rows of ``path``; ValueError naming the file and what is wrong."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no live file at {path} (Numerai's live.parquet of the round)")
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{path} is not a parquet file: {exc}") from exc
    missing = [c for c in ["id", "era", *feature_names] if c not in names]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise ValueError(f"{path} lacks columns {shown}: a live file needs id (index or column), era and "
                         "the feature columns the run's data was loaded with (data.feature_set)")
    extra = ["data_type"] if "data_type" in names else []
    table = pq.read_table(path, columns=["id", "era", *extra, *feature_names])
    if extra:
        kind = np.asarray(table.column("data_type").to_numpy(zero_copy_only=False)).astype(str)
        table = table.filter(pa.array(kind == "live"))
    if table.num_rows == 0:
        raise ValueError(f"{path} holds no live rows (data_type 'live')")
    ids = np.asarray(table.column("id").to_numpy(zero_copy_only=False)).astype(str)
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f"{path}: ids must be unique, {len(ids) - len(np.unique(ids))} repeat")
    return LiveRows(ids=ids, era=_live_era(table, path),
                    features=_features(table, list(feature_names), path))


def _live_era(table: pa.Table, path: Path) -> int | None:
    eras = {str(e) for e in table.column("era").to_pylist()}
    if len(eras) != 1:
        raise ValueError(f"{path}: live rows must be one era, found {len(eras)}: {sorted(eras)[:5]}")
    era = eras.pop()
    if era.strip().upper() == LIVE_ERA_X:
        return None
    digits = re.sub(r"\D", "", era)
    if not digits:
        raise ValueError(f"{path}: era must be 'X' or a number like '0001', got {era!r}")
    return int(digits)


def _features(table: pa.Table, names: list[str], path: Path) -> np.ndarray:
    out = np.empty((table.num_rows, len(names)), dtype=np.int8)
    for j, name in enumerate(names):
        col = table.column(name).to_numpy(zero_copy_only=False)
        if col.dtype.kind == "f":
            col = np.where(np.isnan(col), 2, np.rint(col))
        if col.dtype.kind not in "iuf" or col.min() < 0 or col.max() > 4:
            raise ValueError(f"{path}: column {name} must hold integers 0..4, got {col.dtype} "
                             f"in [{col.min()}, {col.max()}]")
        out[:, j] = col
    return out


def with_live_rows(dataset: Dataset, live: LiveRows, embargo: int) -> tuple[Dataset, EraSplit]:
    """``dataset``'s labelled rows then the live rows (targets NaN, no ids), and the split that
    trains on every labelled era and predicts the live era (its only evaluation block)."""
    labelled = dataset.unique_eras
    era = int(labelled[-1]) + 1 if live.era is None else live.era
    if era <= labelled[-1]:
        raise ValueError(f"the live era {era} is not after the last labelled era {int(labelled[-1])}")
    n = len(live.ids)
    digest = hashlib.sha256(live.features.tobytes() + str(era).encode()).hexdigest()[:12]
    data = replace(
        dataset,
        eras=np.r_[dataset.eras, np.full(n, era, dtype=dataset.eras.dtype)],
        features=np.ascontiguousarray(np.vstack([dataset.features, live.features])),
        targets=np.vstack([dataset.targets, np.full((n, dataset.targets.shape[1]), np.nan, dtype=dataset.targets.dtype)]),
        version=f"{dataset.version}+live-{digest}",
        ids=None,
    )
    split = EraSplit(train=labelled, validation=labelled[:0], test=np.array([era], dtype=labelled.dtype),
                     embargo=embargo)
    return data, split
