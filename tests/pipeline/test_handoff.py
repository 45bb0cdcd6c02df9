"""What each stage's child may read: no target in the feature view, training targets only
in the training view, rows in the documented order, folders written once."""

import json

import numpy as np

from aiforml.config import EnvConfig
from aiforml.data.targets import training_targets
from aiforml.pipeline.handoff import shared_views, write_view
from aiforml.tasks import build_task


def never_holds(folder, dataset, rows):
    """No column of any array in ``folder`` equals the targets of ``rows``."""
    hidden = dataset.targets[rows, 0]
    for path in folder.glob("*.npy"):
        arr = np.load(path)
        if arr.dtype.kind not in "iuf":
            continue
        flat = arr.reshape(len(arr), -1)
        for column in flat.T:
            for start in range(0, max(1, len(column) - len(hidden) + 1), max(1, len(hidden) // 2)):
                assert not np.array_equal(column[start:start + len(hidden)], hidden), path.name


def test_views_hold_no_validation_or_test_target(dataset, split, tmp_path):
    task = build_task(dataset, split, EnvConfig())
    features, train = shared_views(task, root=tmp_path)
    assert sorted(p.name for p in features.iterdir()) == ["eras.npy", "features.npy", "meta.json"]
    assert sorted(p.name for p in train.iterdir()) == ["eras.npy", "features.npy", "meta.json", "targets.npy"]
    targets = np.load(train / "targets.npy")
    assert targets.shape == (task.n_train, len(dataset.target_names))
    np.testing.assert_array_equal(targets, training_targets(dataset, split))
    np.testing.assert_array_equal(targets[:, 0], dataset.targets[task.train_rows, 0])
    # auxiliary targets whose window reaches validation are masked (the 12-era one of the
    # last training era linked rows to validation stocks)
    last = dataset.eras[task.train_rows] == split.train[-1]
    long = dataset.target_names.index("target_alpha_60")
    assert np.isnan(targets[last, long]).all() and np.isfinite(dataset.targets[task.train_rows][last, long]).all()
    for rows in (task.validation_rows, task.test_rows):
        never_holds(features, dataset, rows)
        never_holds(train, dataset, rows)


def test_view_row_order_and_meta(dataset, split, tmp_path):
    task = build_task(dataset, split, EnvConfig())
    features, train = shared_views(task, root=tmp_path)
    eras = np.load(features / "eras.npy")
    meta = json.loads((features / "meta.json").read_text())
    assert meta["n_rows"] == len(task.feature_rows) == len(eras)
    assert set(eras[: task.n_train]) == set(split.train.tolist())
    assert set(eras[task.n_train:]) == set(split.validation.tolist()) | set(split.test.tolist())
    assert np.all(np.diff(eras) >= 0)
    matrix = np.load(features / "features.npy", mmap_mode="r")
    assert matrix.dtype == np.int8 and matrix.shape == (len(eras), len(dataset.feature_names))
    assert json.loads((train / "meta.json").read_text())["n_rows"] == task.n_train
    assert shared_views(task, root=tmp_path) == (features, train)  # a second build reuses them


def test_a_cut_view_holds_only_the_rows_before_the_cut(dataset, split, tmp_path):
    task = build_task(dataset, split, EnvConfig())
    cut = int(task.cut_candidates()[3])
    folder = write_view(tmp_path / "cut", task.feature_view(cut))
    eras = np.load(folder / "eras.npy")
    assert len(eras) == cut and eras.max() < dataset.eras[task.feature_rows[cut]]
