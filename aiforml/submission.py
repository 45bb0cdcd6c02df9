"""Live predictions of one program, in Numerai's submission format.

    python -m aiforml.evaluate --run RUN_DIR --rank 1 --live v5/live.parquet --out predictions.csv

Responsible for: the trusted side of a submission. The program runs through the same
staged sandbox as scoring (:meth:`aiforml.pipeline.evaluator.Evaluator.predict`): its
feature step on every labelled row and the live rows, its target step and model fitted on
the labelled eras (:func:`aiforml.data.live.with_live_rows` says which and why), the live
era streamed to the fitted model like a validation era. The child never sees an id; the
predictions it returns are checked (finite, one per live row), joined to the ids here,
ranked within the era to (0, 1] (Numerai's own example ranks with ``pct=True``), and
written as ``id,prediction`` (CSV, or parquet by the suffix).

Not responsible for: reading the live file (:mod:`aiforml.data.live`), uploading.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from aiforml.config import Config
from aiforml.data.dataset import Dataset
from aiforml.data.live import LiveRows, with_live_rows
from aiforml.pipeline.evaluator import build_evaluator
from aiforml.program import EvalResult, Program


def predict_live(program: Program, cfg: Config, dataset: Dataset, live: LiveRows,
                 work_root: Path | None = None) -> tuple[EvalResult, pd.DataFrame | None]:
    """The program's result and, when it is ok, the submission frame (index id, column prediction)."""
    if not isinstance(dataset, Dataset):
        raise ValueError("live predictions need tournament data (task numerai); "
                         f"data.source={cfg.data.source} is a price series")
    data, split = with_live_rows(dataset, live, cfg.data.embargo_eras)
    evaluator = build_evaluator(data, split, cfg.env, work_root=work_root)
    try:
        result = evaluator.predict(program)
    finally:
        evaluator.close()
    if result.status != "ok":
        return result, None
    return result, submission_frame(live.ids, result.predictions["eval"])


def submission_frame(ids: np.ndarray, predictions: np.ndarray) -> pd.DataFrame:
    """Predictions of one era ranked to (0, 1] (ties averaged), indexed by id."""
    if len(ids) != len(predictions) or not np.isfinite(predictions).all():
        raise ValueError("predictions must be finite, one per live row")  # the evaluator checked them
    ranked = pd.Series(predictions).rank(pct=True, method="average").to_numpy()
    return pd.DataFrame({"prediction": ranked}, index=pd.Index(ids, name="id"))


def write_submission(frame: pd.DataFrame, path: str | Path) -> Path:
    """``frame`` as ``id,prediction`` CSV, or parquet when ``path`` ends in .parquet."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path)
    return path
