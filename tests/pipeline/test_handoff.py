"""The child's view of the data holds training targets only, in the documented row order."""

import json

import numpy as np

from aiforml.data.targets import training_targets
from aiforml.pipeline.handoff import build_handoff


def test_handoff_holds_no_validation_or_test_target(dataset, split, tmp_path):
    handoff = build_handoff(dataset, split, root=tmp_path)
    files = sorted(p.name for p in handoff.dir.iterdir())
    assert files == ["eras.npy", "features.npy", "meta.json", "train_targets.npy"]
    targets = np.load(handoff.dir / "train_targets.npy")
    assert targets.shape == (handoff.n_train, len(dataset.target_names))
    np.testing.assert_array_equal(targets, training_targets(dataset, split))
    np.testing.assert_array_equal(targets[:, 0], dataset.targets[handoff.train_rows, 0])
    # auxiliary targets whose window reaches validation are masked (the 12-era one of the
    # last training era linked rows to validation stocks)
    last = dataset.eras[handoff.train_rows] == split.train[-1]
    long = dataset.target_names.index("target_alpha_60")
    assert np.isnan(targets[last, long]).all() and np.isfinite(dataset.targets[handoff.train_rows][last, long]).all()
    # no array in the folder carries a validation or test target column
    for rows in (handoff.validation_rows, handoff.test_rows):
        hidden = dataset.targets[rows, 0]
        for name in ("eras.npy", "features.npy", "train_targets.npy"):
            arr = np.load(handoff.dir / name)
            flat = arr.reshape(len(arr), -1)
            if len(flat) >= len(hidden):
                for column in flat.T:
                    for start in (0, len(flat) - len(hidden)):
                        assert not np.array_equal(column[start:start + len(hidden)], hidden)


def test_handoff_row_order_and_meta(dataset, split, tmp_path):
    handoff = build_handoff(dataset, split, root=tmp_path)
    eras = np.load(handoff.dir / "eras.npy")
    meta = json.loads((handoff.dir / "meta.json").read_text())
    assert meta["n_train"] == handoff.n_train
    assert meta["n_validation"] + meta["n_test"] == len(handoff.eval_rows)
    assert set(eras[: handoff.n_train]) == set(split.train.tolist())
    assert set(eras[handoff.n_train:]) == set(split.validation.tolist()) | set(split.test.tolist())
    assert np.all(np.diff(eras) >= 0)
    features = np.load(handoff.dir / "features.npy", mmap_mode="r")
    assert features.dtype == np.int8 and features.shape == (len(eras), len(dataset.feature_names))
    # a second build reuses the folder
    assert build_handoff(dataset, split, root=tmp_path).dir == handoff.dir
