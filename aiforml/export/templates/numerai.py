"""The locked steps of an exported Numerai pipeline: a text template, never imported.

``aiforml.export.script`` pastes everything below the ``LOCKED STEPS`` marker into a
generated ``pipeline.py`` after the default steps and the program (which define
``create_target``, ``create_features`` and ``define_model``: hence the F821 waiver), and the
exporter runs that same text to build the pickled ``predict``. So it may import nothing of
aiforml, and it holds only what the sandbox harness does (aiforml/pipeline/harness.py):
features on every row, the target on the training rows, one fit on the finite targets;
then per-era percentile ranks, Numerai's upload format. ``define_cv`` is kept in the
script but not called: cross-validation scores a program, the final fit uses every row.
"""
# ruff: noqa: F821
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SETTINGS: dict = {}

# --- LOCKED STEPS ---
LOCKED_FILES = ("train.parquet", "validation.parquet")


def locked_era_numbers(eras, unknown: int) -> np.ndarray:
    """Era labels as ints ("0001" -> 1, 7 -> 7); labels without digits (live's "X") -> ``unknown``."""
    text = pd.Series(np.asarray(eras)).astype(str).str.replace(r"\D", "", regex=True)
    return pd.to_numeric(text, errors="coerce").fillna(unknown).to_numpy(dtype=np.int64)


def locked_columns(data_dir: Path, feature_set: str) -> tuple[list[str], list[str]]:
    """The feature columns of ``feature_set`` and the target columns ("target" first)."""
    import pyarrow.parquet as pq

    names = pq.read_schema(data_dir / LOCKED_FILES[0]).names
    meta_path = data_dir / "features.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    sets = meta.get("feature_sets", {})
    if feature_set in sets:
        features = list(sets[feature_set])
    elif feature_set == "all":
        features = [c for c in names if c.startswith("feature_")]
    else:
        raise ValueError(f"feature set {feature_set!r} is not in {meta_path}; sets there: {sorted(sets)} "
                         "(or use --feature-set all)")
    targets = ["target"] + [t for t in meta.get("targets", [c for c in names if c.startswith("target_")])
                            if t != "target" and t in names]
    missing = [c for c in ["era", *features, "target"] if c not in names]
    if missing:
        raise ValueError(f"{data_dir / LOCKED_FILES[0]} lacks columns {missing[:10]} (needs era, the features, target)")
    return features, targets


def locked_read_labelled(data_dir: Path, feature_set: str) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Every row of train.parquet and validation.parquet whose ``target`` is known, in era order."""
    if not (data_dir / LOCKED_FILES[0]).is_file():
        raise ValueError(f"no {LOCKED_FILES[0]} in {data_dir}: give --data a Numerai v5 folder")
    features, targets = locked_columns(data_dir, feature_set)
    parts = []
    for name in LOCKED_FILES:
        path = data_dir / name
        if path.is_file():
            part = pd.read_parquet(path, columns=["era", *features, *targets])
            parts.append(part[part["target"].notna()])
    frame = pd.concat(parts).reset_index(drop=True)
    frame["era"] = locked_era_numbers(frame["era"], -1)
    return frame.sort_values("era", kind="stable").reset_index(drop=True), features, targets


def locked_features(frame: pd.DataFrame, feature_cols: list[str]) -> pd.DataFrame:
    """``create_features`` on ``era`` and the feature columns, checked like the sandbox checks it."""
    X = create_features(frame[["era", *feature_cols]].copy(), list(feature_cols))
    if isinstance(X, np.ndarray):
        X = pd.DataFrame(X.reshape(len(X), -1))
    if not isinstance(X, pd.DataFrame) or len(X) != len(frame) or X.shape[1] == 0:
        raise ValueError(f"create_features must return a non-empty DataFrame with one row per input row "
                         f"({len(frame)}), got {type(X).__name__} of shape {getattr(X, 'shape', None)}")
    X.columns = [str(c) for c in X.columns]
    return X.reset_index(drop=True)


def locked_target(frame: pd.DataFrame, feature_cols: list[str], target_cols: list[str]) -> np.ndarray:
    """``create_target`` on the training rows (era, features, every target column)."""
    y = create_target(frame[["era", *feature_cols, *target_cols]].copy())
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(y) != len(frame):
        raise ValueError(f"create_target must return one value per training row ({len(frame)}), got {len(y)}")
    return y


def locked_model_predict(model: dict, X: pd.DataFrame) -> np.ndarray:
    """Predictions of a fitted model in its portable form (see ``locked_portable``)."""
    if model["kind"] == "lightgbm":
        if "booster" not in model:  # rebuilt once, at the first call after unpickling
            import lightgbm

            model["booster"] = lightgbm.Booster(model_str=model["model_str"])
        p = model["booster"].predict(X.to_numpy(dtype=np.float64))
    elif model["kind"] == "linear":
        p = X.to_numpy(dtype=np.float64) @ model["coef"] + model["intercept"]
    else:
        p = model["object"].predict(X)
    p = np.asarray(p, dtype=np.float64)
    return p[:, 0] if p.ndim == 2 and p.shape[1] == 1 else p


def locked_portable(model, X: pd.DataFrame) -> dict:
    """A fitted model as plain data where its predictions stay the same on ``X``.

    LightGBM regressors -> the booster's model text; linear scikit-learn regressors ->
    ``coef_`` and ``intercept_`` arrays; anything else -> the object itself (kind
    ``object``: it may not load under other library versions).
    """
    module = type(model).__module__
    forms = []
    if module.startswith("lightgbm") and type(model).__name__ in ("LGBMRegressor", "LGBMRanker"):
        forms.append({"kind": "lightgbm", "model_str": model.booster_.model_to_string()})
    coef, intercept = getattr(model, "coef_", None), getattr(model, "intercept_", 0.0)
    if module.startswith("sklearn.linear_model") and coef is not None and np.size(coef) == X.shape[1]:
        forms.append({"kind": "linear", "coef": np.asarray(coef, dtype=np.float64).reshape(-1),
                      "intercept": float(np.asarray(intercept, dtype=np.float64).reshape(-1)[0])})
    sample = X.iloc[: min(len(X), 2000)]
    expected = locked_model_predict({"kind": "object", "object": model}, sample)
    for form in forms:  # kept only when it predicts what the fitted object predicts
        if np.allclose(locked_model_predict(dict(form), sample), expected, rtol=1e-6, atol=1e-9, equal_nan=True):
            return form
    return {"kind": "object", "object": model}


def locked_fit(frame: pd.DataFrame, feature_cols: list[str], target_cols: list[str], progress=print) -> dict:
    """Features on every row, the target, one fit: the fitted state, plain data only."""
    progress(f"create_features on {len(frame)} rows")
    X = locked_features(frame, feature_cols)
    progress("create_target")
    y = locked_target(frame, feature_cols, target_cols)
    finite = np.isfinite(y)
    if finite.mean() < 0.5:
        raise ValueError("create_target returned NaN or inf for more than half of the rows")
    progress(f"fitting define_model() on {int(finite.sum())} rows, {X.shape[1]} columns")
    model = define_model()
    params = model.get_params() if type(model).__module__.startswith("lightgbm") else {}
    if params.get("subsample_for_bin") == 200_000 and "bin_construct_sample_cnt" not in params:
        # as the evaluation's locked fit (env.pipeline.bin_sample_rows, bin_sample_mb): histogram bins from
        # at most this many rows (LightGBM's default sample of 200,000 rows is held as doubles: 3.8 GB at
        # 2,376 features), fewer where they would be more than bin_sample_mb MB, 1,000 at least
        rows, mb = SETTINGS.get("bin_sample_rows", 20_000), SETTINGS.get("bin_sample_mb", 100)
        model.set_params(subsample_for_bin=int(min(rows, max(1_000, mb * 2**20 // (8 * max(1, X.shape[1]))))))
    if params and not {"force_col_wise", "force_row_wise"} & set(params):
        model.set_params(force_col_wise=True)  # as the locked fit: no second, row-wise copy of the bins
    model.fit(X if finite.all() else X[finite], y if finite.all() else y[finite])
    return {"feature_cols": list(feature_cols), "columns": list(X.columns),
            "live_era": int(frame["era"].max()) + 1, "model": locked_portable(model, X)}


def locked_predict(state: dict, live: pd.DataFrame) -> pd.DataFrame:
    """Ranked predictions of ``live`` (Numerai's live frame): index kept, column ``prediction``.

    ``create_features`` sees ``era`` and the feature columns; live's era label ("X") becomes
    the era after the last training era. Ranks are percentiles within each era, in (0, 1];
    a NaN prediction becomes 0.5.
    """
    missing = [c for c in state["feature_cols"] if c not in live.columns]
    if missing:
        raise KeyError(f"the live frame lacks {len(missing)} feature columns the model was trained on, "
                       f"e.g. {missing[:5]}")
    frame = live[state["feature_cols"]].reset_index(drop=True)
    labels = live["era"].to_numpy() if "era" in live.columns else np.zeros(len(live), dtype=np.int64)
    frame.insert(0, "era", locked_era_numbers(labels, state["live_era"]))
    X = locked_features(frame, state["feature_cols"])
    if list(X.columns) != state["columns"]:
        raise ValueError(f"create_features returned columns {list(X.columns)[:5]}... on live data, "
                         f"not the {len(state['columns'])} it returned at training")
    p = pd.Series(locked_model_predict(state["model"], X))
    ranks = p.groupby(pd.Series(labels).astype(str).to_numpy()).rank(pct=True).fillna(0.5)
    return pd.DataFrame({"prediction": ranks.to_numpy()}, index=live.index)


def locked_predict_function(state: dict):
    """The function Numerai's model upload takes: ``predict(live_features, live_benchmark_models)``."""

    def predict(live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame) -> pd.DataFrame:
        return locked_predict(state, live_features)

    return predict


def locked_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Train this pipeline on a Numerai v5 folder and predict its live.parquet.")
    parser.add_argument("--data", type=Path, default=Path(SETTINGS.get("data", "v5.0")),
                        help="folder with train.parquet, validation.parquet, live.parquet, features.json")
    parser.add_argument("--feature-set", default=SETTINGS.get("feature_set", "all"))
    parser.add_argument("--out", type=Path, default=Path("predictions.csv"), help="CSV of live predictions")
    args = parser.parse_args(argv)
    try:
        frame, features, targets = locked_read_labelled(args.data, args.feature_set)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    state = locked_fit(frame, features, targets, progress=lambda m: print(m, file=sys.stderr))
    live_path = args.data / "live.parquet"
    if not live_path.is_file():
        raise SystemExit(f"no live.parquet in {args.data}: nothing to predict")
    predictions = locked_predict(state, pd.read_parquet(live_path, columns=["era", *features]))
    predictions.to_csv(args.out)
    print(f"wrote {len(predictions)} predictions to {args.out} (model kept as {state['model']['kind']})",
          file=sys.stderr)
    return 0
