"""Write a ``Dataset`` as a Numerai v5 folder: to run exported pipelines on synthetic data.

The layout Numerai publishes: ``train.parquet`` and ``validation.parquet`` (index ``id``,
``era`` as "0001" strings, ``data_type``, int8 ``feature_*`` columns, float target columns),
``live.parquet`` (one era labelled "X", ``data_type`` live, targets unknown) and
``features.json`` (``feature_sets``, ``targets``). The last era becomes live, the
``validation_eras`` before it validation, the rest train. ``load_numerai`` reads it back.
Not responsible for: reading (``numerai.py``) or generating data (``synthetic.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from aiforml.data.dataset import Dataset


def write_numerai_folder(dataset: Dataset, out_dir: Path, validation_eras: int = 10) -> Path:
    """Write ``dataset`` into ``out_dir`` (created) as a v5 folder; returns ``out_dir``."""
    eras = dataset.unique_eras
    if len(eras) < validation_eras + 2:
        raise ValueError(f"{dataset.name} has {len(eras)} eras: too few for {validation_eras} validation eras, "
                         "train and live")
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = dataset.ids if dataset.ids is not None else np.array([f"n{k:08d}" for k in range(dataset.n_rows)])
    blocks = {"train": eras[: -validation_eras - 1], "validation": eras[-validation_eras - 1: -1], "live": eras[-1:]}
    for kind, block in blocks.items():
        rows = np.flatnonzero(dataset.rows(block))
        frame = pd.DataFrame(dataset.features[rows], columns=list(dataset.feature_names),
                             index=pd.Index(np.asarray(ids)[rows].astype(str), name="id"))
        labels = ["X"] * len(rows) if kind == "live" else [f"{e:04d}" for e in dataset.eras[rows]]
        frame.insert(0, "era", labels)
        frame.insert(1, "data_type", kind)
        for k, name in enumerate(dataset.target_names):
            frame[name] = np.nan if kind == "live" else dataset.targets[rows, k]
        frame.to_parquet(out_dir / f"{kind}.parquet")
    sets = {name: list(cols) for name, cols in dataset.feature_sets.items()}
    (out_dir / "features.json").write_text(json.dumps({"feature_sets": sets, "targets": list(dataset.target_names)}))
    return out_dir
