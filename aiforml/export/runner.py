"""Run a model upload the way Numerai's hosted runner does: a standalone script, no aiforml.

    python -I runner.py --model predict.pkl --live live.parquet [--benchmarks b.parquet] [--out p.csv]

Mirrors the rules of ``predict.py`` in github.com/numerai/numerai-predict: the pickle is
loaded with ``pd.read_pickle``; ``len(inspect.signature(model).parameters)`` must be 1
(``model(live_features)``) or 2 (``model(live_features, live_benchmark_models)``); a result
is rejected when it is None, not a ``pd.DataFrame``, empty, holds a NaN, or its first column
leaves [0, 1]. Numerai calls the function once a round, on that round's live era; this
script calls it once per era of the live file (several eras stand for several rounds) and
also rejects a result whose length or index differs from its input's. Without
``--benchmarks`` a two-parameter function gets an empty frame indexed like the live rows.
Importing aiforml is blocked: an upload must not need it. ``pd.read_pickle`` silences
warnings; the pickle is loaded a second time to print them (scikit-learn's warning that an
estimator was pickled under another version, say). Exit status 0 when every call
passed, 1 otherwise (the first failure printed).
"""

import argparse
import importlib.abc
import importlib.metadata
import inspect
import pickle
import sys
import warnings
from pathlib import Path

import pandas as pd


class BlockAiforml(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "aiforml":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: an upload must not need aiforml)")
        return None


def versions() -> str:
    found = []
    for name in ("numpy", "pandas", "scikit-learn", "lightgbm", "cloudpickle"):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} absent")
    return ", ".join(found)


def fail(message: str) -> int:
    print(f"FAIL: {message}", flush=True)
    return 1


def check(predictions, live: pd.DataFrame) -> str | None:
    """numerai-predict's checks of one result, plus its length and index; None when it passes."""
    if predictions is None:
        return "Pickle function is invalid - returned None"
    if type(predictions) is not pd.DataFrame:
        return f"Pickle function is invalid - returned {type(predictions)} instead of pd.DataFrame"
    if len(predictions) == 0:
        return "Pickle function returned 0 predictions"
    if predictions.isna().any().any():
        return "Pickle function returned at least 1 NaN prediction"
    if not predictions.iloc[:, 0].between(0, 1).all():
        return "Pickle function returned invalid predictions. Ensure values are between 0 and 1."
    if len(predictions) != len(live):
        return f"returned {len(predictions)} rows for {len(live)} live rows"
    if not predictions.index.equals(live.index):
        return "the predictions' index is not the live frame's index"
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--live", required=True, type=Path)
    parser.add_argument("--benchmarks", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sys.meta_path.insert(0, BlockAiforml())
    print(f"python {sys.version.split()[0]}, {versions()}", flush=True)
    try:
        model = pd.read_pickle(args.model)
    except (pickle.UnpicklingError, TypeError, ModuleNotFoundError, AttributeError, ImportError) as exc:
        return fail(f"loading {args.model}: {type(exc).__name__}: {exc}")
    with warnings.catch_warnings(record=True) as caught:  # pd.read_pickle silences them: load again to see
        warnings.simplefilter("always")
        pickle.loads(args.model.read_bytes())
    for message in sorted({f"{w.category.__name__}: {' '.join(str(w.message).split())}" for w in caught}):
        print(f"warning while loading: {message[:240]}", flush=True)
    num_args = len(inspect.signature(model).parameters)
    if num_args not in (1, 2):
        return fail(f"Invalid pickle function - {args.model} must have 1 or 2 arguments, has {num_args}")
    live = pd.read_parquet(args.live)
    eras = live["era"].astype(str) if "era" in live.columns else pd.Series("X", index=live.index)
    outputs = []
    for era, rows in live.groupby(eras.to_numpy(), sort=False):
        bench = (pd.read_parquet(args.benchmarks).reindex(rows.index) if args.benchmarks
                 else pd.DataFrame(index=rows.index))
        try:
            predictions = model(rows) if num_args == 1 else model(rows, bench)
        except Exception as exc:  # noqa: BLE001 - the runner reports any failure of the upload
            return fail(f"era {era}: {type(exc).__name__}: {exc}")
        problem = check(predictions, rows)
        if problem:
            return fail(f"era {era}: {problem}")
        outputs.append(predictions)
        print(f"era {era}: {len(predictions)} predictions, min {predictions.iloc[:, 0].min():.4f} "
              f"max {predictions.iloc[:, 0].max():.4f}", flush=True)
    if "aiforml" in sys.modules:
        return fail("aiforml was imported")
    result = pd.concat(outputs)
    if args.out:
        result.to_csv(args.out)
    print(f"OK: {len(result)} predictions over {len(outputs)} eras, {num_args} parameters", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
