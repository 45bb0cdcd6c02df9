"""Metrics equal numerai-tools' and hand-computed values on small fixed inputs."""

import numpy as np
import pandas as pd
import pytest
from numerai_tools.scoring import feature_neutral_corr, numerai_corr
from scipy.stats import norm

from aiforml import metrics
from aiforml.uniqueness import baseline_contribution


def hand_numerai_corr(p: np.ndarray, t: np.ndarray) -> float:
    ranks = pd.Series(p).rank(method="average").to_numpy()
    g = norm.ppf((ranks - 0.5) / len(p))
    g15 = np.sign(g) * np.abs(g) ** 1.5
    tc = t - t.mean()
    t15 = np.sign(tc) * np.abs(tc) ** 1.5
    return float(np.corrcoef(g15, t15)[0, 1])


@pytest.fixture
def two_eras():
    p = np.array([0.1, 0.4, 0.3, 0.9, 0.5, 0.2, 0.8, 0.6, 0.7, 0.1])
    t = np.array([0.0, 0.5, 0.25, 1.0, 0.5, 0.75, 0.5, 0.25, 1.0, 0.0])
    eras = np.array([1, 1, 1, 1, 1, 2, 2, 2, 2, 2])
    return p, t, eras


def test_per_era_corr_matches_numerai_tools_and_hand(two_eras):
    p, t, eras = two_eras
    got = metrics.per_era_corr(p, t, eras)
    assert got.shape == (2,)
    for k, era in enumerate([1, 2]):
        rows = eras == era
        official = numerai_corr(pd.DataFrame({"p": p[rows]}), pd.Series(t[rows], name="t")).iloc[0]
        assert got[k] == pytest.approx(official, abs=1e-12)
        assert got[k] == pytest.approx(hand_numerai_corr(p[rows], t[rows]), abs=1e-9)
    # era 1 ranks agree well with the target; the score must be clearly positive
    assert got[0] > 0.8


def test_constant_predictions_score_nan(two_eras):
    _, t, eras = two_eras
    got = metrics.per_era_corr(np.ones(10), t, eras)
    assert np.isnan(got).all()


def test_sharpe_and_drawdown_by_hand():
    assert metrics.sharpe(np.array([0.01, 0.03, 0.02])) == pytest.approx(2.0)
    assert np.isnan(metrics.sharpe(np.array([0.02])))
    assert metrics.max_drawdown(np.array([0.1, -0.05, -0.1, 0.2])) == pytest.approx(0.15)
    assert metrics.max_drawdown(np.array([-0.1, 0.05])) == pytest.approx(0.1)
    assert metrics.max_drawdown(np.array([0.1, 0.2])) == 0.0


def test_rank_corr_with_baseline(two_eras):
    p, _, eras = two_eras
    assert metrics.per_era_rank_corr(p, p, eras) == pytest.approx([1.0, 1.0])
    assert metrics.per_era_rank_corr(p, -p, eras) == pytest.approx([-1.0, -1.0])


def test_score_split_aggregates(two_eras):
    p, t, eras = two_eras
    features = np.stack([np.arange(10) % 5, (np.arange(10) * 3) % 5], axis=1).astype(np.int8)
    m = metrics.score_split(p, t, eras, features=features, baseline=p)
    per_era = metrics.per_era_corr(p, t, eras)
    assert m.n_eras == 2
    assert m.mean_corr == pytest.approx(per_era.mean())
    assert m.sharpe == pytest.approx(per_era.mean() / per_era.std(ddof=1))
    assert m.baseline_corr == pytest.approx(1.0)
    assert m.baseline_contribution == pytest.approx(0.0, abs=1e-12)  # nothing beyond itself
    assert m.feature_neutral_corr is not None and abs(m.feature_neutral_corr) <= 1
    other = metrics.score_split(t, t, eras, baseline=p)
    assert other.baseline_contribution == pytest.approx(baseline_contribution(t, p, t, eras))
    assert other.baseline_contribution > 0
    assert metrics.score_split(p, t, eras).baseline_contribution is None


def test_probabilistic_sharpe_by_hand():
    # scores 0.01, 0.03, 0.02, 0.04: SR = 0.025 / sqrt(0.0005 / 3) = sqrt(3.75), skew 0,
    # kurtosis (2 * 0.015^4 + 2 * 0.005^4) / 4 / 0.000125^2 = 1.64: variance term
    # 1 + 0.64 / 4 * 3.75 = 1.6, z = sqrt(3.75) * sqrt(3) / sqrt(1.6) = sqrt(7.03125)
    scores = np.array([0.01, 0.03, 0.02, 0.04])
    want = norm.cdf(np.sqrt(7.03125))
    assert metrics.probabilistic_sharpe(np.sqrt(3.75), 4, 0.0, 1.64) == pytest.approx(want)
    # one trial: nothing was selected, the deflated Sharpe is the PSR against 0
    assert metrics.expected_max_sharpe(1, 0.3) == 0.0
    assert metrics.deflated_sharpe(scores, [0.7]) == pytest.approx(want)
    assert np.isnan(metrics.probabilistic_sharpe(1.0, 2, 0.0, 3.0))  # too few returns
    assert np.isnan(metrics.deflated_sharpe(np.ones(5), [0.7]))
    with pytest.raises(ValueError, match="at least one trial"):
        metrics.deflated_sharpe(scores, [])


def test_deflated_sharpe_matches_the_papers_example():
    # Bailey and Lopez de Prado (2014), numerical example: 100 trials with annualized Sharpe
    # variance 1/2, the best annualized Sharpe 2.5 over 1250 daily returns with skewness -3
    # and kurtosis 10: expected maximum Sharpe 0.1132 a day, DSR 0.9004
    sr0 = metrics.expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    assert metrics.probabilistic_sharpe(2.5 / np.sqrt(250), 1250, -3.0, 10.0, benchmark=sr0) == pytest.approx(
        0.9004, abs=5e-5)


def test_deflated_sharpe_falls_with_more_and_more_dispersed_trials():
    scores = np.random.default_rng(0).normal(0.02, 0.02, size=60)  # Sharpe about 1 a period
    few = metrics.deflated_sharpe(scores, [1.0, 0.8, 0.6])
    many = metrics.deflated_sharpe(scores, np.tile([1.0, 0.8, 0.6], 100))
    dispersed = metrics.deflated_sharpe(scores, [1.0, 0.0, -1.0])
    psr = metrics.deflated_sharpe(scores, [1.0])
    assert psr > few > many and few > dispersed
    # the benchmark is the Sharpe of the best of N by luck: sqrt(V) times the normal's expected max
    assert metrics.expected_max_sharpe(300, 0.04) > metrics.expected_max_sharpe(3, 0.04) > 0


def test_unsorted_eras_rejected():
    with pytest.raises(ValueError, match="sorted"):
        metrics.per_era_corr(np.arange(4.0), np.arange(4.0), np.array([2, 2, 1, 1]))


def test_vectorized_corr_equals_numerai_tools_on_many_eras():
    rng = np.random.default_rng(7)
    eras = np.repeat(np.arange(40), rng.integers(20, 80, size=40))
    p = np.round(rng.normal(size=len(eras)), 1)  # many ties
    t = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], p=[0.05, 0.2, 0.5, 0.2, 0.05], size=len(eras))
    t[rng.random(len(eras)) < 0.05] = np.nan  # a few unknown targets
    got = metrics.per_era_corr(p, t, eras)
    for k, era in enumerate(np.unique(eras)):
        rows = (eras == era) & np.isfinite(t)
        official = numerai_corr(pd.DataFrame({"p": p[rows]}), pd.Series(t[rows], name="t"),
                                max_filtered_index_ratio=0.0).iloc[0]
        assert got[k] == pytest.approx(official, abs=1e-10)


def test_vectorized_feature_neutral_corr_equals_numerai_tools():
    rng = np.random.default_rng(3)
    eras = np.repeat(np.arange(12), rng.integers(60, 120, size=12))
    features = rng.integers(0, 5, size=(len(eras), 6)).astype(np.int8)
    p = features[:, 0] * 0.3 + rng.normal(size=len(eras))
    t = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], size=len(eras))
    t[rng.random(len(eras)) < 0.05] = np.nan
    got = metrics.per_era_feature_neutral_corr(p, features, t, eras)
    for k, era in enumerate(np.unique(eras)):
        rows = (eras == era) & np.isfinite(t)
        official = feature_neutral_corr(pd.DataFrame({"p": p[rows]}),
                                        pd.DataFrame(features[rows].astype(np.float64)),
                                        pd.Series(t[rows], name="t")).iloc[0]
        assert got[k] == pytest.approx(official, abs=1e-9)
    # neutral to a feature it was built from: lower than the plain correlation
    assert np.nanmean(got) != pytest.approx(np.nanmean(metrics.per_era_corr(p, t, eras)))


def test_era_bases_give_the_least_squares_residual_of_every_era():
    rng = np.random.default_rng(3)
    eras = np.repeat(np.arange(6), 40)
    features = rng.integers(0, 5, size=(240, 7)).astype(np.float32)
    features[:, 6] = features[:, 0] * 2  # rank-deficient, as real feature sets are
    target = rng.normal(size=240)
    target[[5, 77, 200]] = np.nan  # bases are of the finite-target rows
    predictions = features[:, 0] * 0.3 + rng.normal(size=240)
    bases = metrics.EraBases.for_target(features, target, eras)
    with_bases = metrics.per_era_feature_neutral_corr(predictions, bases, target, eras)
    with_solves = metrics.per_era_feature_neutral_corr(predictions, features, target, eras)
    np.testing.assert_allclose(with_bases, with_solves, atol=1e-9)
    assert np.isfinite(with_bases).all()
    with pytest.raises(ValueError, match="rows"):
        metrics.per_era_feature_neutral_corr(predictions[:200], bases, target[:200], eras[:200])


def test_an_era_its_features_span_has_no_feature_neutral_corr_and_keeps_no_basis():
    """More independent features than rows: the residual is nothing, not rounding noise."""
    rng = np.random.default_rng(5)
    eras = np.repeat(np.arange(4), [30, 30, 12, 30])  # era 2: 12 rows, 16 features and a constant
    features = rng.integers(0, 5, size=(len(eras), 16)).astype(np.int8)
    target = rng.normal(size=len(eras))
    predictions = features[:, 0] * 0.3 + rng.normal(size=len(eras))
    bases = metrics.EraBases.for_target(features, target, eras)
    assert bases.bases[2] is None and all(bases.bases[k].shape == (30, 17) for k in (0, 1, 3))
    with_bases = metrics.per_era_feature_neutral_corr(predictions, bases, target, eras)
    with_solves = metrics.per_era_feature_neutral_corr(predictions, features, target, eras)
    assert np.isnan(with_bases[2]) and np.isnan(with_solves[2])
    np.testing.assert_allclose(with_bases[[0, 1, 3]], with_solves[[0, 1, 3]], atol=1e-9)
    assert np.isfinite(with_bases[[0, 1, 3]]).all()


def test_the_map_form_of_era_bases_gives_the_same_residual_with_less_kept():
    """Where rows outnumber features, keeping V/s (and the int8 features) instead of U."""
    rng = np.random.default_rng(8)
    eras = np.repeat(np.arange(5), [90, 120, 8, 100, 95])  # era 2: fewer rows than features (spanned)
    features = rng.integers(0, 5, size=(len(eras), 11)).astype(np.int8)
    features[:, 10] = features[:, 3]  # rank-deficient
    target = rng.normal(size=len(eras))
    target[[4, 150, 333]] = np.nan
    predictions = features[:, 1] * 0.2 + rng.normal(size=len(eras))
    basis = metrics.EraBases.for_target(features, target, eras, form="basis")
    mapped = metrics.EraBases.for_target(features, target, eras, form="map")
    assert mapped.bases[2] is None and mapped.features.dtype == np.int8
    assert all(m.shape == (12, 11) and b.shape[1] == 11 and b.shape[0] > 12
               for m, b in zip(mapped.bases, basis.bases, strict=True) if m is not None)
    got = metrics.per_era_feature_neutral_corr(predictions, mapped, target, eras)
    want = metrics.per_era_feature_neutral_corr(predictions, basis, target, eras)
    solved = metrics.per_era_feature_neutral_corr(predictions, features, target, eras)
    np.testing.assert_allclose(got, want, atol=1e-9)
    np.testing.assert_allclose(got, solved, atol=1e-9)
    assert np.isfinite(got[[0, 1, 3, 4]]).all() and np.isnan(got[2])
