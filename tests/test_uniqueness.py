"""The uniqueness maths against hand-computed values and numerai-tools, era by era."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numerai_tools.scoring import correlation_contribution
from scipy.stats import norm

from aiforml.metrics import per_era_rank_corr
from aiforml.uniqueness import (
    EraIndex,
    baseline_contribution,
    corr_matrix,
    greedy_clusters,
    meta_model,
    per_era_contribution,
    per_era_rank_corr_many,
)

ERAS = np.array([1, 1, 1, 2, 2, 2])


def test_rank_corr_with_the_baseline_hand_computed():
    # era 1: identical order, corr 1; era 2: ranks (1,2,3) vs (3,1,2) centred (-1,0,1)·(1,-1,0) = -1
    # over norms 2 -> -0.5
    a = np.array([0.1, 0.2, 0.3, 0.1, 0.2, 0.3])
    b = np.array([5.0, 6.0, 7.0, 0.9, 0.1, 0.5])
    np.testing.assert_allclose(per_era_rank_corr_many(a, [b], EraIndex.from_eras(ERAS))[0], [1.0, -0.5])


def test_baseline_contribution_hand_computed():
    # era 1: gaussian ranks g = ppf((r - 0.5) / 3): predictions ranks (1,3,2) -> (-q, q, 0),
    # baseline ranks (1,2,3) -> (-q, 0, q), q = ppf(5/6). g orthogonalized to the baseline:
    # g - (g.m / m.m) m = g - m / 2 = (-q/2, q, -q/2); target (0, 1, .5) x 4 centred (-2, 2, 0);
    # dot / 3 rows = (q + 2q) / 3 = q. Era 2: the baseline's own order -> 0. Mean q / 2.
    baseline = np.array([0.1, 0.2, 0.3, 0.1, 0.2, 0.3])
    preds = np.array([0.0, 2.0, 1.0, 1.0, 2.0, 3.0])
    target = np.array([0.0, 1.0, 0.5, 0.0, 1.0, 0.5])
    q = norm.ppf(5 / 6)
    np.testing.assert_allclose(per_era_contribution(preds, baseline, target, ERAS), [q, 0.0], atol=1e-12)
    assert baseline_contribution(preds, baseline, target, ERAS) == pytest.approx(q / 2)
    # a copy of the baseline, or its mirror image, adds nothing beyond it
    assert baseline_contribution(baseline * 3, baseline, target, ERAS) == pytest.approx(0.0, abs=1e-12)
    assert baseline_contribution(-baseline, baseline, target, ERAS) == pytest.approx(0.0, abs=1e-12)


def test_baseline_contribution_pays_only_for_being_right_differently():
    rng = np.random.default_rng(4)
    eras = np.repeat(np.arange(20), 300)
    target = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], p=[0.05, 0.2, 0.5, 0.2, 0.05], size=6000)
    baseline = target + rng.normal(scale=0.5, size=6000)  # an honest default
    right_differently = target + rng.normal(scale=0.5, size=6000)  # as honest, its own errors
    noise = rng.normal(size=6000)
    bmc = {name: baseline_contribution(p, baseline, target, eras) for name, p in (
        ("copy", baseline + 1e-3 * rng.normal(size=6000)), ("right", right_differently),
        ("wrong", -right_differently), ("noise", noise))}
    assert bmc["right"] > 0.2 and bmc["wrong"] == pytest.approx(-bmc["right"])
    assert abs(bmc["copy"]) < 0.01 and abs(bmc["noise"]) < 0.02  # about 0.89 / sqrt(6000) = 0.011 for noise
    assert bmc["right"] > bmc["noise"] > bmc["wrong"]


def test_constant_baseline_era_is_left_out_and_all_constant_is_none():
    baseline = np.array([0.1, 0.2, 0.3, 1.0, 1.0, 1.0])  # era 2 constant: only era 1 counts
    preds = np.array([0.0, 2.0, 1.0, 0.5, 0.1, 0.2])
    target = np.array([0.0, 1.0, 0.5, 0.0, 1.0, 0.5])
    assert baseline_contribution(preds, baseline, target, ERAS) == pytest.approx(norm.ppf(5 / 6))
    assert baseline_contribution(preds, np.ones(6), target, ERAS) is None


def test_rank_corr_many_equals_metrics_rank_corr():
    rng = np.random.default_rng(0)
    eras = np.repeat(np.arange(5), 40)
    a = rng.normal(size=200)
    refs = [rng.normal(size=200), a + rng.normal(size=200), np.round(a, 1)]
    got = per_era_rank_corr_many(a, refs, EraIndex.from_eras(eras))
    for row, ref in zip(got, refs, strict=True):
        np.testing.assert_allclose(row, per_era_rank_corr(a, ref, eras), atol=1e-12)


def _numerai_contribution(preds, meta, target, eras):
    out = []
    for era in np.unique(eras):
        rows = eras == era
        idx = pd.RangeIndex(rows.sum())
        out.append(correlation_contribution(pd.DataFrame({"p": preds[rows]}, index=idx),
                                            pd.Series(meta[rows], index=idx),
                                            pd.Series(target[rows], index=idx)).iloc[0])
    return np.array(out)


def test_contribution_equals_numerai_tools_era_by_era():
    rng = np.random.default_rng(1)
    eras = np.repeat(np.arange(6), 50)
    target = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], size=300)
    signal = target + rng.normal(scale=0.5, size=300)
    members = [signal + rng.normal(size=300) for _ in range(3)]
    meta = meta_model(members, EraIndex.from_eras(eras))
    preds = np.round(signal + rng.normal(size=300), 1)  # ties kept
    np.testing.assert_allclose(per_era_contribution(preds, meta, target, eras),
                               _numerai_contribution(preds, meta, target, eras), atol=1e-12)


def test_contribution_drops_nan_targets_like_numerai_tools():
    rng = np.random.default_rng(2)
    eras = np.repeat(np.arange(3), 30)
    target = rng.choice([0.0, 0.5, 1.0], size=90)
    target[[0, 31, 32]] = np.nan
    preds, meta = rng.normal(size=90), rng.normal(size=90)
    got = per_era_contribution(preds, meta, target, eras)
    keep = np.isfinite(target)
    want = _numerai_contribution(preds[keep], meta[keep], target[keep], eras[keep])
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_contribution_of_the_meta_model_itself_is_zero():
    eras = np.repeat(np.arange(2), 4)
    meta = np.array([0.1, 0.4, 0.2, 0.3, 0.5, 0.6, 0.8, 0.7])
    target = np.array([0, 1, 0.5, 0.5, 0, 0.25, 1, 0.75])
    np.testing.assert_allclose(per_era_contribution(2 * meta, meta, target, eras), [0, 0], atol=1e-12)


def test_meta_model_is_mean_of_gaussian_ranks():
    index = EraIndex.from_eras(np.array([1, 1]))
    # two rows: ranks (1, 2) -> percentiles (0.25, 0.75) -> norm.ppf = (-0.6745, 0.6745)
    m = meta_model([np.array([0.0, 1.0]), np.array([1.0, 0.0])], index)
    np.testing.assert_allclose(m, [0.0, 0.0], atol=1e-12)
    m = meta_model([np.array([0.0, 1.0]), np.array([0.0, 1.0])], index)
    np.testing.assert_allclose(m, [-0.6744897502, 0.6744897502], atol=1e-9)


def test_greedy_clusters_hand_matrix():
    corr = np.array([[1.0, 0.95, 0.2, 0.1],
                     [0.95, 1.0, 0.3, 0.92],
                     [0.2, 0.3, 1.0, np.nan],
                     [0.1, 0.92, np.nan, 1.0]])
    # 1 joins 0; 2 founds; 3 is close to 1 but not to founder 0, nor to 2 (NaN): founds
    assert greedy_clusters(corr, 0.9) == [0, 0, 1, 2]


def test_corr_matrix_symmetric_with_unit_diagonal():
    rng = np.random.default_rng(3)
    eras = np.repeat(np.arange(4), 25)
    a = rng.normal(size=100)
    vectors = [a, a * 3 + 1, rng.normal(size=100)]
    m = corr_matrix(vectors, EraIndex.from_eras(eras))
    np.testing.assert_allclose(np.diag(m), 1.0)
    np.testing.assert_allclose(m, m.T, atol=1e-12)
    assert m[0, 1] == pytest.approx(1.0)
    assert abs(m[0, 2]) < 0.3
