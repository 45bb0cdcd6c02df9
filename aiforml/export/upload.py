"""A Numerai model upload: the fitted ``predict`` pickled so that Numerai's runner loads it.

Numerai's hosted runner (github.com/numerai/numerai-predict, ``predict.py``) loads the
upload with ``pd.read_pickle`` in an image pinned per Python version, counts the
function's parameters with ``inspect.signature`` (1: ``predict(live_features)``, 2: also
``live_benchmark_models``), calls it on the live frame, and rejects a result that is not a
``pd.DataFrame``, is empty, holds a NaN, or whose first column leaves [0, 1]. Its image
has older numpy/pandas/scikit-learn than this project, so the pickle holds only functions
pickled by value (the generated script's namespace is not importable), plain numpy arrays,
Python scalars and strings, and the model in a portable form (``templates/numerai.py``,
``locked_portable``); pandas and aiforml objects never. A model with no portable form is
pickled as is, with a warning.

Responsible for: the training frame of a run's data, fitting through the script's locked
steps, pickling, listing what the pickle refers to, and checking the pickle in a fresh
interpreter without aiforml (``runner.py``, this interpreter, ``-I``).
Not responsible for: the steps themselves (the script), choosing the program, the pinned
environment of the compatibility check (``benchmarks/numerai_compat.py``).
"""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd

RUNNER = Path(__file__).with_name("runner.py")
# Modules whose classes a portable pickle may name: cloudpickle's reconstructors, numpy's
# array reconstruction, the standard library. Anything else is version-sensitive.
PORTABLE_MODULES = ("cloudpickle", "numpy", "builtins", "copyreg", "_codecs", "collections", "types")


@dataclass
class UploadModel:
    """A pickled ``predict`` and what is known about it."""

    blob: bytes
    model_kind: str  # lightgbm | linear | object (the fitted object itself)
    modules: list[str]  # modules of the classes the pickle names
    warnings: list[str] = field(default_factory=list)


def dataset_frame(dataset: Any) -> tuple[pd.DataFrame, list[str], list[str]]:
    """A run's Numerai-style ``Dataset`` as the locked steps' training frame: every row whose
    ``target`` is known, with ``era`` (int), the feature columns and every target column."""
    keep = np.isfinite(dataset.targets[:, 0])
    frame = pd.DataFrame(dataset.features[keep], columns=list(dataset.feature_names))
    frame.insert(0, "era", dataset.eras[keep].astype(np.int64))
    for k, name in enumerate(dataset.target_names):
        frame[name] = dataset.targets[keep, k]
    return frame, list(dataset.feature_names), list(dataset.target_names)


def build_upload(namespace: dict[str, Any], frame: pd.DataFrame, features: list[str], targets: list[str],
                 progress: Callable[[str], None]) -> UploadModel:
    """Fit with the script's locked steps and pickle its ``predict`` function by value."""
    state = namespace["locked_fit"](frame, features, targets, progress)
    predict = namespace["locked_predict_function"](state)
    progress("pickling predict")
    blob = cloudpickle.dumps(predict, protocol=pickle.DEFAULT_PROTOCOL)
    modules = pickled_modules(blob)
    upload = UploadModel(blob=blob, model_kind=state["model"]["kind"], modules=modules)
    if any(m.split(".")[0] == "aiforml" for m in modules):
        raise RuntimeError(f"the pickle refers to aiforml ({modules}): it would not load in Numerai's runner")
    if upload.model_kind == "object":
        upload.warnings.append(
            f"the model {type(state['model']['object']).__name__} has no portable form (LightGBM regressor or "
            "linear scikit-learn regressor): it is pickled as is and may not load under the runner's "
            "library versions; `make numerai-compat PKL=OUT/predict.pkl LIVE=live.parquet` finds out")
    foreign = [m for m in modules if m.split(".")[0] not in PORTABLE_MODULES]
    if foreign and upload.model_kind != "object":
        upload.warnings.append(f"the pickle names classes of {foreign}: they must load under the runner's versions")
    return upload


def pickled_modules(blob: bytes) -> list[str]:
    """Modules of the classes and functions a pickle names (it is loaded here to find them)."""
    seen: set[str] = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            seen.add(module)
            return super().find_class(module, name)

    Recorder(io.BytesIO(blob)).load()
    return sorted(seen)


@dataclass
class RunnerResult:
    ok: bool
    output: str
    predictions: pd.DataFrame | None


def run_in_fresh_interpreter(pickle_path: Path, live: pd.DataFrame, python: str = sys.executable,
                             timeout_s: float = 600) -> RunnerResult:
    """Load and call the pickle the way Numerai's runner does, in a new ``python -I`` that may
    not import aiforml (``runner.py``); its predictions when every check passed."""
    with tempfile.TemporaryDirectory(prefix="aiforml-upload-") as tmp:
        live_path, out_path = Path(tmp) / "live.parquet", Path(tmp) / "predictions.csv"
        live.to_parquet(live_path)
        proc = subprocess.run([python, "-I", str(RUNNER), "--model", str(pickle_path), "--live", str(live_path),
                               "--out", str(out_path)], capture_output=True, text=True, timeout=timeout_s,
                              cwd=tmp)
        output = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0:
            return RunnerResult(False, output, None)
        return RunnerResult(True, output, pd.read_csv(out_path, index_col=0))


def live_stand_in(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The last era of a training frame, shaped like Numerai's live frame (era "X"): to check a
    pickle when the data has no live.parquet."""
    last = frame[frame["era"] == frame["era"].max()]
    live = last[features].copy()
    live.insert(0, "era", "X")
    live.index = pd.Index([f"row{k}" for k in range(len(live))], name="id")
    return live
