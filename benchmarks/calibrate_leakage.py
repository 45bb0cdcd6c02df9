"""Calibrate the implausible-consistency check: honest pipelines against known leaks.

    PYTHONPATH=. python benchmarks/calibrate_leakage.py --seeds 0 1 2 3 --secrets 2

On the fast synthetic preset (default split, embargo 4), for each generator seed and data
secret: validation per-era ``numerai_corr`` (``aiforml.metrics.per_era_corr``, as the
evaluator scores) of honest models (the default program's LightGBM, another model seed,
20 trees, Ridge, 1000 trees at lr 0.01, LightGBM on the mean of the training targets the
child sees, and a rank ensemble of four) and of leaks: ``link`` (the attack of aiforml/data/targets.py: each
validation row linked to the same stock in the last training era, whose unmasked 12-era
target is added to the honest prediction's rank), and ``mix_c`` (the honest rank plus c
times the true target's rank: a partial leak, e.g. rows rebuilt from a public generator).
Prints mean corr, Sharpe, the largest per-era corr and what ``implausible_consistency``
says. Results are written down in that function's docstring.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy.stats import rankdata

from aiforml.config import PipelineConfig, SyntheticConfig
from aiforml.data import split_eras
from aiforml.data.calibration import ModelSpec, fit_predict
from aiforml.data.presets import resolve_spec
from aiforml.data.synthetic import generate, simulate_panel
from aiforml.data.targets import training_targets
from aiforml.metrics import per_era_corr, sharpe
from aiforml.pipeline.checks import implausible_consistency

HONEST = {
    "lgbm": ModelSpec(),
    "lgbm_seed1": ModelSpec(seed=1),
    "lgbm_20": ModelSpec(n_estimators=20),
    "ridge": ModelSpec(kind="ridge"),
    "lgbm_big": ModelSpec(n_estimators=1000, learning_rate=0.01),
}
MIX = (0.1, 0.2, 0.4)


def era_rank(values: np.ndarray, eras: np.ndarray) -> np.ndarray:
    out = np.empty(len(values))
    for era in np.unique(eras):
        rows = eras == era
        out[rows] = rankdata(values[rows]) / rows.sum() - 0.5
    return out


def linked_target(data, panel, split, name: str = "target_alpha_60") -> np.ndarray:
    """The attack: each validation row's stock in the last training era, and its target there."""
    last = np.flatnonzero(data.eras == split.train[-1])
    by_stock = dict(zip(panel.stock[last].tolist(), data.targets[last, data.target_names.index(name)], strict=True))
    val = np.flatnonzero(data.rows(split.validation))
    return np.array([by_stock.get(s, 0.5) for s in panel.stock[val].tolist()])


def summary(scores: np.ndarray, cfg: PipelineConfig) -> dict:
    return {"mean": round(float(np.mean(scores)), 4), "sharpe": round(sharpe(scores), 2),
            "max_era": round(float(np.max(scores)), 3), "std": round(float(np.std(scores, ddof=1)), 4),
            "flag": implausible_consistency(scores, cfg.leakage_sharpe, cfg.leakage_era_corr)}


def run(seed: int, secret: bytes | None, cfg: PipelineConfig) -> dict:
    spec = resolve_spec(SyntheticConfig(preset="fast"))
    start = time.perf_counter()
    data = generate(spec, seed, secret)
    _, panel = simulate_panel(spec, seed, secret)
    split = split_eras(data.eras, data.default_validation_eras, data.default_test_eras, 4)
    train, val = data.rows(split.train), data.rows(split.validation)
    y, eras = data.targets[val, 0], data.eras[val]
    out: dict = {}
    preds = {}
    for name, model in HONEST.items():
        preds[name] = fit_predict(model, data.features[train], data.targets[train, 0], data.features[val])
        out[name] = summary(per_era_corr(preds[name], y, eras), cfg)
    seen = training_targets(data, split)  # what the child gets: aux targets masked near validation
    aux = np.nanmean(seen, axis=1)  # an honest multi-target model: the mean of the known targets
    preds["lgbm_aux"] = fit_predict(HONEST["lgbm"], data.features[train], aux, data.features[val])
    out["lgbm_aux"] = summary(per_era_corr(preds["lgbm_aux"], y, eras), cfg)
    ensemble = sum(era_rank(preds[k], eras) for k in ("lgbm", "lgbm_seed1", "lgbm_big", "lgbm_aux"))
    out["ensemble"] = summary(per_era_corr(ensemble, y, eras), cfg)
    honest = era_rank(preds["lgbm"], eras)
    link = era_rank(linked_target(data, panel, split), eras)
    out["link_only"] = summary(per_era_corr(link, y, eras), cfg)
    out["link"] = summary(per_era_corr(honest + link, y, eras), cfg)
    truth = era_rank(y, eras)
    for c in MIX:
        out[f"mix_{c}"] = summary(per_era_corr(honest + c * truth, y, eras), cfg)
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--secrets", type=int, default=2, help="data secrets per seed besides none")
    args = parser.parse_args()
    cfg = PipelineConfig()
    secrets = [None] + [bytes([k + 1]) * 16 for k in range(args.secrets)]
    for seed in args.seeds:
        for secret in secrets:
            label = "none" if secret is None else secret.hex()[:4]
            print(json.dumps({"seed": seed, "secret": label, **run(seed, secret, cfg)}), flush=True)


if __name__ == "__main__":
    main()
