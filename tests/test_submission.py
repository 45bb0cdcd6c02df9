"""Live predictions: a Numerai v5-layout folder, its live.parquet, through the sandbox to id,prediction."""

import json

import numpy as np
import pandas as pd
import pytest

from aiforml.config import DataConfig, SyntheticConfig
from aiforml.data import load_dataset
from aiforml.evaluate import main

# The model predicts the first feature (plus a little of the second, to break ties): the
# file's predictions must be that, ranked, on the right ids. The feature and target steps
# raise unless they see exactly what scoring shows them: era and features, labelled targets.
FIRST_FEATURE = '''
def create_features(df, feature_cols):
    if set(df.columns) != {"era", *feature_cols}:
        raise ValueError(f"unexpected columns {sorted(set(df.columns) - set(feature_cols))}")
    return df[feature_cols]

def create_target(df):
    if df["target"].isna().any():
        raise ValueError("a training row without its target")
    return df["target"]

def define_model():
    class FirstFeature:
        def fit(self, X, y):
            return self

        def predict(self, X):
            return X.iloc[:, 0].to_numpy() + 0.001 * X.iloc[:, 1].to_numpy()
    return FirstFeature()
'''


@pytest.fixture(scope="module")
def v5(tmp_path_factory):
    """train.parquet from a small synthetic dataset (its last era held back) and live.parquet of
    that era's rows with fresh ids, era "X", data_type "live" and no usable target."""
    folder = tmp_path_factory.mktemp("v5")
    cfg = DataConfig(cache_dir=str(folder / "cache"), synthetic=SyntheticConfig(n_eras=40, rows_per_era=100, n_features=12))
    data = load_dataset(cfg)
    names = list(data.feature_names)
    last = data.eras == data.eras[-1]

    def frame(rows: np.ndarray, era: list[str], kind: str, target: np.ndarray, prefix: str) -> pd.DataFrame:
        df = pd.DataFrame(data.features[rows], columns=names)
        df.insert(0, "era", era)
        df.insert(1, "data_type", kind)
        df["target"] = target
        df.index = pd.Index([f"{prefix}{i:06x}" for i in range(len(df))], name="id")
        return df

    train = np.flatnonzero(~last)
    frame(train, [f"{e:04d}" for e in data.eras[train]], "train", data.targets[train, 0], "t").to_parquet(
        folder / "train.parquet")
    live = np.flatnonzero(last)
    live_df = frame(live, ["X"] * len(live), "live", np.full(len(live), np.nan, np.float32), "live")
    live_df = live_df.sample(frac=1.0, random_state=0)  # ids in no particular order
    live_df.to_parquet(folder / "live.parquet")
    return folder, live_df, names


def _argv(folder, program, out, *extra):
    return [str(program), "--data", str(folder), "--live", str(folder / "live.parquet"), "--out", str(out),
            "--set", "env.pipeline.n_estimators=10", "--set", "data.validation_eras=6", "--set", "data.test_eras=6", "--set", "data.feature_set=all",
            *extra]


def test_live_predictions_are_the_programs_ranked_on_the_right_ids(v5, tmp_path, capsys):
    folder, live_df, names = v5
    program = tmp_path / "first.py"
    program.write_text(FIRST_FEATURE)
    out = tmp_path / "sub" / "predictions.csv"
    assert main(_argv(folder, program, out, "--json")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "ok" and report["rows"] == len(live_df)
    sub = pd.read_csv(out)
    assert list(sub.columns) == ["id", "prediction"]
    assert sorted(sub["id"]) == sorted(live_df.index) and sub["id"].is_unique
    assert sub["prediction"].notna().all() and sub["prediction"].between(0, 1).all()
    raw = live_df[names[0]].astype(float) + 0.001 * live_df[names[1]].astype(float)
    expected = raw.rank(pct=True)
    assert np.allclose(sub.set_index("id")["prediction"].loc[expected.index], expected)


def test_the_default_program_predicts_live_as_parquet(v5, tmp_path):
    folder, live_df, _ = v5
    out = tmp_path / "predictions.parquet"
    assert main(_argv(folder, "", out, "--default")[1:]) == 0
    sub = pd.read_parquet(out)
    assert sub.index.name == "id" and list(sub.columns) == ["prediction"]
    assert len(sub) == len(live_df) and sub["prediction"].between(0, 1).all() and sub["prediction"].nunique() > 10


def test_a_failing_program_is_a_status_and_no_file(v5, tmp_path, capsys):
    folder, _, _ = v5
    program = tmp_path / "broken.py"
    program.write_text("def create_features(df, feature_cols):\n    raise RuntimeError('boom')\n")
    out = tmp_path / "predictions.csv"
    assert main(_argv(folder, program, out, "--json")) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "runtime_error" and "boom" in report["message"] and report["rows"] == 0
    assert not out.exists()


def test_live_needs_out_and_the_datasets_columns(v5, tmp_path, capsys):
    folder, live_df, names = v5
    assert main(["--default", "--data", str(folder), "--live", str(folder / "live.parquet"),
                 "--set", "data.feature_set=all"]) == 2
    assert "--live needs --out" in capsys.readouterr().out
    live_df.drop(columns=[names[3]]).to_parquet(tmp_path / "live.parquet")
    assert main(_argv(folder, "--default", tmp_path / "p.csv")[:3] + ["--live", str(tmp_path / "live.parquet"),
                "--out", str(tmp_path / "p.csv"), "--set", "data.feature_set=all"]) == 2
    message = capsys.readouterr().out.replace("\n", " ")
    assert "live.parquet lacks columns" in message and names[3] in message
