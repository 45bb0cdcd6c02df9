"""Descriptors read by parsing, checked on hand-written programs and on the labelled corpus."""

from __future__ import annotations

import random

import pytest

from aiforml.descriptors import describe_program
from aiforml.pipeline.defaults import default_program_source
from aiforml.policy.schema import default_schema
from aiforml.policy.tiny import grammar

RIDGE_RANKS = '''
def create_features(df, feature_cols):
    X = df.groupby("era")[feature_cols].rank(pct=True)
    return X

def define_model():
    from sklearn.linear_model import Ridge
    return Ridge(alpha=1.0)
'''

INTERACT_LOG = '''
import numpy as np

def create_features(df, feature_cols):
    X = df[feature_cols].astype("float32")
    X["ab"] = df["feature_a"] * df["feature_b"]
    X["la"] = np.log1p(df["feature_a"])
    X = X * 2.0
    return X

def define_model():
    import lightgbm as lgb
    return lgb.LGBMRegressor(n_estimators=10)
'''

ROWSTATS_NEUTRAL_TARGET = '''
def neutralize(values, exposures):
    import numpy as np
    beta = np.linalg.lstsq(exposures, values, rcond=None)[0]
    return values - exposures @ beta

def create_target(df):
    cols = [c for c in df.columns if c.startswith("feature")]
    return neutralize(df["target"].to_numpy(), df[cols].to_numpy())

def create_features(df, feature_cols):
    X = df[feature_cols] - 2.0
    X["row_mean"] = df[feature_cols].mean(axis=1)
    X["sq"] = (df[feature_cols[0]] - 2.0) ** 2
    return X

def define_cv(eras, embargo):
    import numpy as np
    unique = np.unique(eras)
    return [(np.flatnonzero(eras < unique[5]), np.flatnonzero(eras > unique[5] + embargo))]
'''

TORCH_NET = '''
def define_model():
    import torch
    from sklearn.preprocessing import StandardScaler

    class Net:
        def fit(self, X, y):
            self.net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 8), torch.nn.Tanh())
            return self
        def predict(self, X):
            return X.mean(axis=1)
    return Net()
'''


def test_ridge_with_era_ranks():
    d = describe_program(RIDGE_RANKS)
    assert d["model_family"] == "linear"
    assert d["libraries"] == ["sklearn"]
    assert (d["defines_features"], d["defines_target"], d["defines_cv"]) == (True, False, False)
    assert d["feature_ideas"] == ["ranks"]  # a rank within eras is a rank, not a group statistic


def test_lightgbm_with_interaction_and_log_but_scaling_is_not_an_interaction():
    d = describe_program(INTERACT_LOG)
    assert d["model_family"] == "lightgbm"
    assert d["libraries"] == ["lightgbm", "numpy"]
    assert d["feature_ideas"] == ["interactions", "nonlinear"]
    scaled_only = INTERACT_LOG.replace('    X["ab"] = df["feature_a"] * df["feature_b"]\n', "")
    assert describe_program(scaled_only)["feature_ideas"] == ["nonlinear"]


def test_helper_neutralization_row_stats_and_own_cv():
    d = describe_program(ROWSTATS_NEUTRAL_TARGET)
    assert d["model_family"] == "default"
    assert (d["defines_features"], d["defines_target"], d["defines_cv"], d["defines_model"]) == (
        True, True, True, False)
    assert d["feature_ideas"] == ["group_stats", "nonlinear", "neutralization"]


def test_model_internals_are_not_feature_ideas():
    d = describe_program(TORCH_NET)
    assert d["model_family"] == "torch"
    assert d["feature_ideas"] == []  # Tanh and mean(axis=1) live in define_model
    assert d["defines_features"] is False


def test_default_program_owns_nothing():
    d = describe_program(default_program_source())
    assert d["model_family"] == "lightgbm"
    assert not any(d[k] for k in ("defines_features", "defines_target", "defines_cv"))
    assert d["feature_ideas"] == []


def test_unparsable_source_still_gets_a_family():
    d = describe_program("def define_model(:\n    return RandomForestRegressor()\n")
    assert d["model_family"] == "random_forest"
    assert d["feature_ideas"] == []


# corpus label -> the idea it must show (None: no idea)
_CORPUS_IDEAS = {"group_means": "group_stats", "row_stats": "group_stats", "era_demean": "group_stats",
                 "era_rank": "ranks", "interactions": "interactions", "squares": "nonlinear",
                 "abs_dev": "nonlinear", "log": "nonlinear"}


@pytest.mark.parametrize("seed", range(40))
def test_corpus_feature_ideas_match_their_labels(seed):
    schema = default_schema()
    source, labels = grammar.create_features_source(random.Random(seed), schema)
    want = sorted({_CORPUS_IDEAS[k] for k in labels if k in _CORPUS_IDEAS})
    assert sorted(describe_program(source)["feature_ideas"]) == want, source
