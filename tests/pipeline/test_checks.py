"""The implausible-consistency check: honest per-era scores pass, leaks under the band do not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata

from aiforml.config import PipelineConfig
from aiforml.data.calibration import ModelSpec, fit_predict
from aiforml.metrics import per_era_corr, score_split
from aiforml.pipeline.checks import implausible_consistency

CFG = PipelineConfig()


def _check(scores) -> tuple[str, str] | None:
    return implausible_consistency(scores, CFG.leakage_sharpe, CFG.leakage_era_corr)


def test_hand_made_per_era_scores() -> None:
    honest = 0.08 + 0.05 * np.random.default_rng(0).standard_normal(60)  # Sharpe about 1.6
    assert _check(honest) is None
    steady = 0.2 + 0.03 * np.random.default_rng(1).standard_normal(60)  # mean under the band, Sharpe ~7
    status, message = _check(steady)
    assert status == "leakage_suspected" and "Sharpe" in message
    assert _check(steady[:10]) is None  # too few eras to call a Sharpe implausible
    spike = honest.copy()
    spike[2] = 0.45  # one era far above any honest one
    status, message = _check(spike)
    assert status == "leakage_suspected" and "era 3 of 60" in message
    with_gaps = [None, *honest.tolist(), float("nan")]  # SplitMetrics.per_era_corr holds None
    assert _check(with_gaps) is None and _check([]) is None


@pytest.mark.slow
def test_the_default_model_passes_and_a_diluted_target_leak_is_caught(dataset, split) -> None:
    """On the fast preset: the default program's LightGBM is not flagged; its prediction
    plus a tenth of the true target's rank stays under the mean-corr band but is flagged."""
    train, val = dataset.rows(split.train), dataset.rows(split.validation)
    y, eras = dataset.targets[val, 0], dataset.eras[val]
    preds = fit_predict(ModelSpec(), dataset.features[train], dataset.targets[train, 0], dataset.features[val])
    honest = score_split(preds, y, eras)
    assert honest.mean_corr > 0.04 and _check(honest.per_era_corr) is None
    rank = np.concatenate([rankdata(preds[eras == e]) / (eras == e).sum() for e in np.unique(eras)])
    truth = np.concatenate([rankdata(y[eras == e]) / (eras == e).sum() for e in np.unique(eras)])
    leaky = per_era_corr(rank + 0.1 * truth, y, eras)
    assert leaky.mean() < CFG.leakage_band  # the band alone misses it
    assert _check(leaky) is not None


@pytest.mark.parametrize(("extra", "keeps"), [
    ("", True),  # the default program as it is
    ("\ncreate_features = None\n", False),  # rebound after the default definition
    ("\ndef f():\n    global create_features\n    create_features = len\n", False),
    ("\nif True:\n    def create_features(df, feature_cols):\n        return df\n", False),
    ("\nfrom math import floor as create_features\n", False),
    ("\ndef create_features(df, feature_cols):\n    return df[feature_cols] * 2\n", False),
])
def test_keeps_default_step_only_when_nothing_rebinds_it(extra, keeps) -> None:
    from aiforml.pipeline.checks import keeps_default_step
    from aiforml.pipeline.defaults import default_program_source, default_sources

    default = default_sources()["create_features"]
    assert keeps_default_step(default_program_source() + extra, "create_features", default) is keeps
    assert keeps_default_step("def define_model():\n    return None\n", "create_features", default)
    assert not keeps_default_step("def (", "create_features", default)


def test_one_high_era_is_judged_against_its_own_sampling_noise() -> None:
    # ppo_sharpe (200 rows an era): an honest default scored 0.306 in one of 60 eras. One
    # era's corr has a standard error of about 1/sqrt(rows): 0.4 is noise at 200 rows (bound
    # 0.55), not at 5,000 (bound 0.35); the bare 0.3 holds when rows are not given.
    scores = [0.05] * 59 + [0.4]
    assert implausible_consistency(scores, CFG.leakage_sharpe, CFG.leakage_era_corr, [200] * 60) is None
    assert implausible_consistency(scores, CFG.leakage_sharpe, CFG.leakage_era_corr, [5000] * 60) is not None
    assert implausible_consistency(scores, CFG.leakage_sharpe, CFG.leakage_era_corr) is not None
