"""Signatures and default sources of the overridable pipeline steps.

The defaults together are, for the Numerai task, the Numerai example model (LightGBM on the raw features, the
official target, forward-chaining CV over eras), with fewer trees for speed; the tree
parameters come from ``PipelineConfig``. For the trading task (price series) they are
momentum, volatility and range features per asset, a small LightGBM and the same
walk-forward CV. They are plain source text so that the policy's
prompt, the MCP server and the sandbox child all show and run exactly the same code.

Contract of each step (the child calls them in this order):

- ``create_target(df) -> Series``: ``df`` holds the *training* rows only: ``era`` and the
  feature columns and every training target column (``target`` first). Return one finite
  float per row: the target the model is trained on. Scoring always uses ``target``.
- ``create_features(df, feature_cols) -> DataFrame``: ``df`` holds *all* rows (training,
  validation, test) with ``era`` and the feature columns (int8, 0..4) and no targets.
  Return a numeric DataFrame with one row per input row, in the same order.
- ``define_model() -> model``: an unfitted object with ``fit(X, y)`` and ``predict(X)``.
- ``define_cv(eras, embargo) -> list[(train_idx, test_idx)]``: ``eras`` is the era of
  each training row (int array); return integer row-index arrays. Folds must not share
  eras, and a fold's train eras must stay more than ``embargo`` eras away from its test eras.
"""

from __future__ import annotations

from aiforml.config import PipelineConfig

SIGNATURES: dict[str, str] = {
    "create_target": "def create_target(df: pd.DataFrame) -> pd.Series",
    "create_features": "def create_features(df: pd.DataFrame, feature_cols: list[str]) -> pd.DataFrame",
    "define_model": "def define_model() -> object  # with fit(X, y) and predict(X)",
    "define_cv": "def define_cv(eras: np.ndarray, embargo: int) -> list[tuple[np.ndarray, np.ndarray]]",
}

OPTIONAL_STEPS = frozenset({"create_target", "define_cv"})

_CREATE_TARGET = '''\
def create_target(df):
    return df["target"]
'''

_CREATE_FEATURES = '''\
def create_features(df, feature_cols):
    return df[feature_cols]
'''
SELECTS_THE_VIEW = _CREATE_FEATURES  # the feature columns as they are: its matrix is the feature view itself

_DEFINE_MODEL = '''\
def define_model():
    import lightgbm as lgb

    return lgb.LGBMRegressor(
        n_estimators={n_estimators},
        learning_rate={learning_rate},
        max_depth={max_depth},
        num_leaves={num_leaves},
        colsample_bytree={colsample_bytree},
        verbose=-1,
    )
'''

_DEFINE_CV = '''\
def define_cv(eras, embargo):
    import numpy as np

    unique = np.unique(eras)
    blocks = np.array_split(unique, {folds} + 1)
    splits = []
    for k in range(1, len(blocks)):
        test_eras = blocks[k]
        train_eras = unique[unique < test_eras.min() - embargo]
        if len(train_eras) == 0:
            continue
        splits.append((np.flatnonzero(np.isin(eras, train_eras)), np.flatnonzero(np.isin(eras, test_eras))))
    return splits
'''


# The trading task (price series): the same steps and signatures; ``df`` holds ``era`` (the
# period index), ``date``, ``asset`` and the OHLCV columns; ``target`` is the forward return
# over the data's horizon. Features must use only past rows: a look-ahead guard checks.
_TRADING_FEATURES = '''\
def create_features(df, feature_cols):
    import pandas as pd

    close = df.groupby("asset")["close"]
    X = pd.DataFrame(index=df.index)
    for n in (1, 5, 20, 60):
        X[f"ret_{{n}}"] = close.pct_change(n)
    X["vol_20"] = X.groupby(df["asset"])["ret_1"].transform(lambda s: s.rolling(20).std())
    X["ma_gap_50"] = df["close"] / close.transform(lambda s: s.rolling(50).mean()) - 1
    X["range"] = (df["high"] - df["low"]) / df["close"]
    return X
'''

_TRADING_MODEL = '''\
def define_model():
    import lightgbm as lgb

    return lgb.LGBMRegressor(
        n_estimators={n_estimators},
        learning_rate=0.02,
        max_depth=3,
        num_leaves=7,
        min_child_samples=200,
        verbose=-1,
    )
'''


def default_sources(cfg: PipelineConfig | None = None, task: str = "numerai") -> dict[str, str]:
    """The default source of every overridable step, rendered with the configured parameters."""
    cfg = cfg or PipelineConfig()
    if task == "trading":
        return {
            "create_target": _CREATE_TARGET,
            "create_features": _TRADING_FEATURES.format(),
            "define_model": _TRADING_MODEL.format(n_estimators=cfg.n_estimators),
            "define_cv": _DEFINE_CV.format(folds=cfg.cv_folds),
        }
    return {
        "create_target": _CREATE_TARGET,
        "create_features": _CREATE_FEATURES,
        "define_model": _DEFINE_MODEL.format(
            n_estimators=cfg.n_estimators,
            learning_rate=cfg.learning_rate,
            max_depth=cfg.max_depth,
            num_leaves=cfg.num_leaves,
            colsample_bytree=cfg.colsample_bytree,
        ),
        "define_cv": _DEFINE_CV.format(folds=cfg.cv_folds),
    }


def default_program_source(cfg: PipelineConfig | None = None, task: str = "numerai") -> str:
    """The whole default program as one source file."""
    return "\n\n".join(default_sources(cfg, task).values())
