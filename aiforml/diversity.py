"""The diversity figures of a cycle: what kinds of programs the policy writes.

Responsible for :func:`cycle_diversity`: model-family shares, shares with own
features/target/CV and each feature idea, and the number of behavioural clusters (greedy,
by mean per-era rank corr above ``diversity.cluster_corr``, best validation Sharpe first),
as the loop holds a cycle (:func:`batch_diversity`) or from a run directory's archive and
saved predictions (:func:`run_diversity`, for the report).
Not responsible for the maths (``aiforml.uniqueness``), parsing code
(``aiforml.descriptors``) or the run's memory of programs (``aiforml.reference``).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from aiforml.archive import open_run
from aiforml.descriptors import FEATURE_IDEAS, MODEL_FAMILIES, describe_program
from aiforml.program import EvalResult, Program
from aiforml.reference import ERAS_FILE, PREDICTIONS_DIR
from aiforml.uniqueness import EraIndex, corr_matrix, greedy_clusters


# --- figures of a cycle --------------------------------------------------------------------
def cycle_diversity(descriptors: list[dict[str, Any]], predictions: list[np.ndarray],
                    index: EraIndex | None, cluster_corr: float) -> dict[str, Any]:
    """Diversity figures of one cycle.

    ``descriptors``: ``describe_program`` of each sample that holds code (infra failures
    left out); ``predictions``: validation predictions of the cycle's distinct programs that
    ran, best validation score first (the greedy clustering's order). ``clusters`` is None
    when nothing ran.
    """
    n = len(descriptors)
    families = Counter(d["model_family"] for d in descriptors)

    def share(test: Any) -> float | None:
        return sum(bool(test(d)) for d in descriptors) / n if n else None

    clusters = None
    if predictions and index is not None:
        clusters = max(greedy_clusters(corr_matrix(predictions, index), cluster_corr)) + 1
    return {
        "n_programs": n,
        "family_shares": {f: families[f] / n for f in MODEL_FAMILIES if families[f]} if n else {},
        "share_own_features": share(lambda d: d["defines_features"]),
        "share_own_target": share(lambda d: d["defines_target"]),
        "share_own_cv": share(lambda d: d["defines_cv"]),
        "idea_shares": {i: share(lambda d, i=i: i in d["feature_ideas"]) for i in FEATURE_IDEAS},
        "clusters": clusters,
        "distinct_families": len(families),
    }


def diversity_metrics(figures: dict[str, Any]) -> dict[str, float | None]:
    """``cycle_diversity`` figures as ``diversity/...`` metric keys (every family and idea, 0 when absent)."""
    if not figures["n_programs"]:
        return {}
    out: dict[str, float | None] = {
        f"diversity/family/{f}": figures["family_shares"].get(f, 0.0) for f in MODEL_FAMILIES}
    out.update({f"diversity/idea/{i}": figures["idea_shares"][i] for i in FEATURE_IDEAS})
    out.update({f"diversity/{k}": figures[k] for k in ("share_own_features", "share_own_target",
                                                       "share_own_cv", "distinct_families")})
    out["diversity/clusters"] = figures["clusters"]
    out["diversity/top_family_share"] = max(figures["family_shares"].values())
    return out


def batch_diversity(programs: list[Program | None], results: list[EvalResult], index: EraIndex | None,
                    cluster_corr: float) -> dict[str, Any]:
    """``cycle_diversity`` of a cycle's samples as the loop holds them."""
    coded = [describe_program(p.source) for p, r in zip(programs, results, strict=True)
             if p is not None and r.status != "infra_error"]
    ran: dict[str, tuple[float, np.ndarray]] = {}
    for r in results:
        preds = r.predictions.get("validation")
        if r.status == "ok" and preds is not None and r.program_hash not in ran:
            sharpe = r.validation.sharpe if r.validation and r.validation.sharpe is not None else -math.inf
            ran[r.program_hash] = (sharpe, np.asarray(preds, dtype=np.float64))
    ordered = [p for _, p in sorted(ran.values(), key=lambda t: -t[0])]
    return cycle_diversity(coded, ordered, index, cluster_corr)


def run_diversity(run_dir: Path, cluster_corr: float = 0.9) -> list[dict[str, Any]]:
    """``cycle_diversity`` figures of every archived cycle of a run directory, plus ``cycle``.

    Descriptors are read again from each program's code (so runs archived by older
    versions get them too); clusters need the saved validation predictions
    (``RUN_DIR/val_predictions``) and are None without them.
    """
    with open_run(run_dir) as archive:
        rows = archive.rows(("cycle", "status", "program", "program_hash", "val_sharpe"))
    store = Path(run_dir) / PREDICTIONS_DIR
    index = EraIndex.from_eras(np.load(store / ERAS_FILE)) if (store / ERAS_FILE).is_file() else None
    by_cycle: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_cycle.setdefault(row["cycle"], []).append(row)
    out = []
    for cycle, cycle_rows in by_cycle.items():
        coded = [describe_program(r["program"]) for r in cycle_rows
                 if r["program_hash"] and r["status"] != "infra_error"]
        ok = sorted((r for r in cycle_rows if r["status"] == "ok"),
                    key=lambda r: -(r["val_sharpe"] if r["val_sharpe"] is not None else -math.inf))
        paths = dict.fromkeys(store / f"{r['program_hash']}.npy" for r in ok)
        preds = [np.load(p, allow_pickle=False).astype(np.float64) for p in paths if p.is_file()]
        out.append({"cycle": cycle, **cycle_diversity(coded, preds if index else [], index, cluster_corr)})
    return out
