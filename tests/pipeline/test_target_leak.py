"""The stale-target attack: validation rows linked by their features to the same stock in
the last training era, whose 12-era target overlaps the first validation eras' targets.

With every training target handed over, it scored 0.31-0.43 on each of the first four
validation eras; the hand-off now masks those targets (``aiforml.data.targets``), so
through the sandbox it scores nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aiforml.config import PipelineConfig
from aiforml.data.targets import training_targets
from aiforml.metrics import per_era_corr
from aiforml.pipeline.checks import implausible_consistency
from aiforml.program import Program

pytestmark = pytest.mark.slow

ATTACK = """import numpy as np
import pandas as pd

_SEEN = {}


def create_target(df):
    _SEEN["train"] = df
    return df["target"]


def create_features(df, feature_cols):
    train = _SEEN["train"]
    last = int(train["era"].max())
    source = train[train["era"] == last]
    x_src = source[feature_cols].to_numpy(dtype=np.int16)
    linked = source["target_alpha_60"].to_numpy(dtype=np.float64)
    x_all = df[feature_cols].to_numpy(dtype=np.int16)
    eras = df["era"].to_numpy()
    out = np.full(len(df), np.nan)
    for era in np.unique(eras[eras > last])[:6]:
        rows = np.flatnonzero(eras == era)
        distance = np.abs(x_all[rows][:, None, :] - x_src[None, :, :]).sum(axis=2)
        out[rows] = linked[distance.argmin(axis=1)]
    noise = np.random.default_rng(0).random(len(df)) * 1e-3
    return pd.DataFrame({"leak": np.where(np.isfinite(out), out, 0.5) + noise})


class Peek:
    def fit(self, X, y):
        return self

    def predict(self, X):
        return np.asarray(X)[:, 0]


def define_model():
    return Peek()
"""


def _in_process(dataset, split, train_targets: np.ndarray) -> np.ndarray:
    """Per-era corr of the attack's validation predictions, run here on the given targets."""
    namespace: dict = {}
    exec(compile(ATTACK, "attack", "exec"), namespace)  # noqa: S102 - our own test program
    train, val = dataset.rows(split.train), dataset.rows(split.validation)
    cols = list(dataset.feature_names)
    frame = pd.DataFrame(dataset.features[train], columns=cols)
    frame.insert(0, "era", dataset.eras[train])
    for k, name in enumerate(dataset.target_names):
        frame[name] = train_targets[:, k]
    namespace["create_target"](frame)
    rows = train | val
    everything = pd.DataFrame(dataset.features[rows], columns=cols)
    everything.insert(0, "era", dataset.eras[rows])
    leak = namespace["create_features"](everything, cols)["leak"].to_numpy()
    return per_era_corr(leak[dataset.eras[rows] >= split.validation[0]], dataset.targets[val, 0], dataset.eras[val])


def test_the_attack_reads_overlapping_targets_only_when_they_are_handed_over(dataset, split) -> None:
    unmasked = _in_process(dataset, split, dataset.targets[dataset.rows(split.train)])
    assert unmasked[:4].mean() > 0.25, unmasked[:6]
    cfg = PipelineConfig()
    assert implausible_consistency(unmasked, cfg.leakage_sharpe, cfg.leakage_era_corr) is not None
    masked = _in_process(dataset, split, training_targets(dataset, split))
    assert abs(masked[:4].mean()) < 0.1, masked[:6]


# The same link made where the staged evaluator lets both meet: the model stage holds the
# training frame (create_target) and receives validation features one era at a time.
STAGED_ATTACK = """import numpy as np

_SEEN = {}


def create_target(df):
    _SEEN["train"] = df
    return df["target"]


def create_features(df, feature_cols):
    return df[feature_cols]


class Link:
    def fit(self, X, y):
        train = _SEEN["train"]
        source = train[train["era"] == int(train["era"].max())]
        self.x = source[[c for c in X.columns]].to_numpy(dtype=np.int16)
        self.y = source["target_alpha_60"].to_numpy(dtype=np.float64)
        return self

    def predict(self, X):
        if len(X) > 5 * len(self.x):  # CV folds: not the attack's business
            return np.zeros(len(X))
        distance = np.abs(X.to_numpy(dtype=np.int16)[:, None, :] - self.x[None, :, :]).sum(axis=2)
        linked = self.y[distance.argmin(axis=1)]
        noise = np.random.default_rng(0).random(len(X)) * 1e-3
        return np.where(np.isfinite(linked), linked, 0.5) + noise


def define_model():
    return Link()
"""


def test_through_the_sandbox_the_attack_scores_nothing(evaluator) -> None:
    result = evaluator.evaluate(Program(STAGED_ATTACK))
    assert result.status == "ok", result.message
    first = np.array(result.validation.per_era_corr[:4], dtype=np.float64)
    assert abs(first.mean()) < 0.1, result.validation.per_era_corr[:6]
