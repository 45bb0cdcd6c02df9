"""A synthetic folder in Numerai v5's file layout, for tests and the memory benchmark.

Writes ``train.parquet`` (``data_type`` "train"), ``validation.parquet`` ("validation"
eras, then "test" eras whose targets are all missing, as in v5) and ``features.json``
(``feature_sets`` small / medium / all plus group sets, and ``targets``): string ``id``
and ``era`` ("0001"), int8 features in 0..4, float32 targets with v5's names in
{0, .25, .5, .75, 1} at 5/20/50/20/5 %, the 60-day ones missing in each file's first eras.
Rows are written a row group at a time, so a full-width file at millions of rows is
written within a few hundred MB.

Not responsible for: a learnable signal (values are independent noise: for data with a
planted signal use ``aiforml.data.synthetic``), nor for reading (``numerai.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aiforml.data.dataset import GROUP_NAMES

# v5's main target first, then auxiliary targets by name and horizon (_20 / _60 days).
V5_TARGETS = ("target", *(f"target_{name}_{h}" for name in (
    "cyrus_v4", "teager2b", "agnes", "claudia", "ralph", "victor", "alpha", "bravo", "charlie", "delta",
    "echo", "jeremy", "rowan", "sam", "xerxes", "caroline") for h in (20, 60)))
V5_N_FEATURES, V5_SMALL, V5_MEDIUM = 2376, 42, 705  # features in "all", "small", "medium"
TARGET_VALUES = np.array([0.0, 0.25, 0.5, 0.75, 1.0], dtype=np.float32)
TARGET_P = np.array([0.05, 0.2, 0.5, 0.2, 0.05])


@dataclass(frozen=True)
class V5Layout:
    """Sizes of the folder to write; the defaults are tiny (a test's)."""

    n_train_eras: int = 8
    n_validation_eras: int = 4
    n_test_eras: int = 1  # eras of "test" rows at the end of validation.parquet (no targets)
    rows_per_era: int = 10
    n_features: int = 12
    n_targets: int = 5  # the first n of V5_TARGETS
    rows_per_group: int = 100_000  # parquet row group size (bounds memory while writing)
    seed: int = 0


def feature_names(n: int) -> list[str]:
    return [f"feature_{i:04d}" for i in range(n)]


def write_v5_layout(folder: str | Path, layout: V5Layout = V5Layout()) -> Path:
    """Write the three files into ``folder`` (created); returns the folder."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(layout.seed)
    names = feature_names(layout.n_features)
    targets = list(V5_TARGETS[: layout.n_targets])
    first_val = layout.n_train_eras + 1
    _write_file(root / "train.parquet", list(range(1, first_val)), [], names, targets, layout, rng)
    _write_file(root / "validation.parquet", list(range(first_val, first_val + layout.n_validation_eras)),
                list(range(first_val + layout.n_validation_eras,
                           first_val + layout.n_validation_eras + layout.n_test_eras)),
                names, targets, layout, rng)
    (root / "features.json").write_text(json.dumps({"feature_sets": _feature_sets(names, rng), "targets": targets}))
    return root


def _feature_sets(names: list[str], rng: np.random.Generator) -> dict[str, list[str]]:
    """small and medium at v5's shares of "all" (random subsets, file order), and groups."""
    n = len(names)
    sets = {}
    for key, size in (("small", V5_SMALL), ("medium", V5_MEDIUM)):
        k = max(1, round(n * size / V5_N_FEATURES))
        sets[key] = [names[i] for i in np.sort(rng.choice(n, size=k, replace=False))]
    sets["all"] = list(names)
    for g, group in enumerate(GROUP_NAMES[:8]):
        sets[group] = names[g::8]
    return sets


def _write_file(path: Path, eras: list[int], test_eras: list[int], names: list[str], targets: list[str],
                layout: V5Layout, rng: np.random.Generator) -> None:
    era = np.repeat(np.array(eras + test_eras, dtype=np.int64), layout.rows_per_era)
    kind = np.where(np.isin(era, test_eras), "test", "train" if path.stem == "train" else "validation")
    schema = pa.schema([("id", pa.string()), ("era", pa.string()), ("data_type", pa.string()),
                        *((n, pa.int8()) for n in names), *((t, pa.float32()) for t in targets)])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, len(era), layout.rows_per_group):
            e, k = era[start:start + layout.rows_per_group], kind[start:start + layout.rows_per_group]
            x = rng.integers(0, 5, size=(len(names), len(e)), dtype=np.int8)  # one row per column
            y = rng.choice(TARGET_VALUES, size=(len(targets), len(e)), p=TARGET_P)
            y[:, k == "test"] = np.nan
            y[2::2, e < eras[0] + 3] = np.nan  # the 60-day targets start late in each file
            cols = [pa.array([f"n{start + i:015x}" for i in range(len(e))]),
                    pa.array([f"{v:04d}" for v in e]), pa.array(k),
                    *(pa.array(row) for row in x), *(pa.array(row) for row in y)]
            writer.write_table(pa.Table.from_arrays(cols, schema=schema))
