"""Calibrate the synthetic presets: how much signal, how stable, how leaky.

For a preset and a few generator seeds: fit LightGBM (the default program's parameters,
two model seeds), a LightGBM with few trees and a Ridge on the training eras, score the
validation eras per era with ``numerai_tools.scoring.numerai_corr`` (mean, std, Sharpe),
the feature-neutral / plain ratio (``feature_neutral_corr``), and the leaky-CV inflation
(random-row KFold vs era-forward CV with the embargo). Prints one line per seed and a
summary: the Sharpe gap between pipelines against the spread between seeds.

Run (about a minute for fast on 2 cores; realistic takes several minutes per seed):
    .venv/bin/python benchmarks/calibrate_synthetic.py --preset fast --seeds 0 1 2
    .venv/bin/python benchmarks/calibrate_synthetic.py --preset realistic --seeds 0 --features 40
    .venv/bin/python benchmarks/calibrate_synthetic.py --preset fast --set w_nonlinear=0.3

Not a test: it asserts nothing; the figures it prints are written down in
``aiforml/data/synthetic.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace

# One thread each: on a busy 2-core machine, 2 BLAS/OpenMP threads ran 10-30x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from aiforml.config import SyntheticConfig  # noqa: E402
from aiforml.data.calibration import ModelSpec, leaky_cv_inflation, validation_scores  # noqa: E402
from aiforml.data.dataset import split_eras  # noqa: E402
from aiforml.data.presets import resolve_spec  # noqa: E402
from aiforml.data.synthetic import generate  # noqa: E402

MODELS = {
    "lgbm": ModelSpec(),
    "lgbm_seed1": ModelSpec(seed=1),
    "lgbm_20trees": ModelSpec(n_estimators=20),
    "ridge": ModelSpec(kind="ridge"),
}


def parse_overrides(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        key, value = item.split("=", 1)
        out[key] = float(value) if "." in value or "e" in value else int(value)
    return out


def calibrate_seed(preset: str, seed: int, n_features: int | None, overrides: dict, embargo: int) -> dict:
    spec = replace(resolve_spec(SyntheticConfig(preset=preset)), **overrides)  # type: ignore[arg-type]
    start = time.perf_counter()
    data = generate(spec, seed, secret=None)  # the public path: the same figures on every installation
    out: dict = {"seed": seed, "generate_s": round(time.perf_counter() - start, 2)}
    split = split_eras(data.eras, data.default_validation_eras, data.default_test_eras, embargo)
    cols = None
    if n_features:
        cols = np.sort(np.random.default_rng(seed).choice(len(data.feature_names), n_features, replace=False))
    out["train_rows"] = int(data.rows(split.train).sum())
    for name, model in MODELS.items():
        start = time.perf_counter()
        res = validation_scores(data, split, model, cols, neutral=name == "lgbm")
        out[name] = {k: round(v, 4) for k, v in res["validation"].items()}
        out[name]["fit_s"] = round(time.perf_counter() - start, 2)
        if name == "lgbm":
            out["fn_ratio"] = round(res["fn_ratio"], 3)
    cv = leaky_cv_inflation(data, split, MODELS["lgbm"], cols)
    out["cv"] = {k: round(v, 4) for k, v in cv.items()}
    return out


def summarize(rows: list[dict]) -> dict:
    sharpe = {m: np.array([r[m]["sharpe"] for r in rows]) for m in MODELS}
    return {
        "lgbm_mean_corr": round(float(np.mean([r["lgbm"]["mean"] for r in rows])), 4),
        "lgbm_std_corr": round(float(np.mean([r["lgbm"]["std"] for r in rows])), 4),
        "lgbm_sharpe_by_data_seed": sharpe["lgbm"].round(2).tolist(),
        "ridge_sharpe_by_data_seed": sharpe["ridge"].round(2).tolist(),
        "gap_lgbm_minus_ridge": (sharpe["lgbm"] - sharpe["ridge"]).round(2).tolist(),
        "gap_lgbm_minus_20trees": (sharpe["lgbm"] - sharpe["lgbm_20trees"]).round(2).tolist(),
        "model_seed_spread": np.abs(sharpe["lgbm"] - sharpe["lgbm_seed1"]).round(2).tolist(),
        "data_seed_spread_lgbm": round(float(np.ptp(sharpe["lgbm"])), 2),
        "fn_ratio": round(float(np.mean([r["fn_ratio"] for r in rows])), 3),
        "leaky_inflation": round(float(np.mean([r["cv"]["inflation"] for r in rows])), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--features", type=int, default=None, help="random feature subset size")
    parser.add_argument("--embargo", type=int, default=4)
    parser.add_argument("--set", nargs="*", default=[], help="spec overrides, e.g. w_linear=0.05")
    args = parser.parse_args()
    overrides = parse_overrides(args.set)
    rows = []
    for seed in args.seeds:
        rows.append(calibrate_seed(args.preset, seed, args.features, overrides, args.embargo))
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"preset": args.preset, "overrides": overrides, "summary": summarize(rows)}))


if __name__ == "__main__":
    main()
