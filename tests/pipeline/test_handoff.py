"""What each stage's child may read: no target in the feature view, training targets only
in the training view, rows in the documented order, folders written once."""

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from aiforml.config import EnvConfig, PipelineConfig
from aiforml.data.targets import training_targets
from aiforml.pipeline.evaluator import Evaluator
from aiforml.pipeline.handoff import (
    MappedMatrix,
    shared_matrix,
    shared_views,
    view_matrix,
    write_view,
)
from aiforml.pipeline.userdirs import shared_base
from aiforml.program import Program
from aiforml.tasks import build_task
from aiforml.tasks.base import RowsOf


def never_holds(folder, dataset, rows):
    """No column of any array in ``folder`` equals the targets of ``rows``."""
    hidden = dataset.targets[rows, 0]
    for path in [*folder.glob("*.npy"), folder / "features.rest"]:
        if not path.exists():
            continue
        arr = np.load(path) if path.suffix == ".npy" else view_matrix(folder)
        if arr.dtype.kind not in "iuf":
            continue
        flat = arr.reshape(len(arr), -1)
        for column in flat.T:
            for start in range(0, max(1, len(column) - len(hidden) + 1), max(1, len(hidden) // 2)):
                assert not np.array_equal(column[start:start + len(hidden)], hidden), path.name


def test_views_hold_no_validation_or_test_target(dataset, split, tmp_path):
    task = build_task(dataset, split, EnvConfig())
    features, train = shared_views(task, root=tmp_path)
    assert sorted(p.name for p in features.iterdir()) == ["eras.npy", "features.head.npy", "features.rest",
                                                          "meta.json"]
    assert sorted(p.name for p in train.iterdir()) == ["eras.npy", "features.npy", "meta.json", "targets.npy"]
    # the training rows are held once: the feature view's first rows are the training view's file
    assert (features / "features.head.npy").stat().st_ino == (train / "features.npy").stat().st_ino
    np.testing.assert_array_equal(view_matrix(features), dataset.features[task.feature_rows])
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
    matrix = view_matrix(features)
    assert matrix.dtype == np.int8 and not matrix.flags.writeable and matrix.shape == (len(eras), len(dataset.feature_names))
    assert json.loads((train / "meta.json").read_text())["n_rows"] == task.n_train
    assert shared_views(task, root=tmp_path) == (features, train)  # a second build reuses them
    # the loaded data set's feature rows skip the embargo eras: gathered as written, not copied whole
    assert isinstance(task.feature_view(len(task.feature_rows))[0]["features"], RowsOf)


def test_a_cut_view_holds_only_the_rows_before_the_cut(dataset, split, tmp_path):
    task = build_task(dataset, split, EnvConfig())
    cut = int(task.cut_candidates()[3])
    for head in (None, shared_views(task, root=tmp_path)[1] / "features.npy"):
        folder = write_view(tmp_path / f"cut-{head is None}", task.feature_view(cut), head=head)
        eras = np.load(folder / "eras.npy")
        assert len(eras) == cut and eras.max() < dataset.eras[task.feature_rows[cut]]
        np.testing.assert_array_equal(view_matrix(folder), dataset.features[task.feature_rows[:cut]])
    # joined on the training rows, the cut view writes only the rows between them and the cut
    rest = (folder / "features.rest").stat().st_size
    assert rest < 4096 + (cut - task.n_train) * dataset.features.shape[1]


def test_a_default_matrix_of_its_own_is_written_once_and_mapped(dataset, split, tmp_path):
    task = build_task(dataset, split, EnvConfig())
    features, train = shared_views(task, root=tmp_path)
    matrix = view_matrix(features).astype(np.float32) / 4  # not the view's own values
    mapped, x_train = shared_matrix(features, matrix, task.n_train, "k1")
    assert isinstance(mapped, MappedMatrix) and np.array_equal(mapped, matrix)
    assert x_train == features.parent / "default-joined-k1" / "features.npy"
    np.testing.assert_array_equal(np.load(x_train), matrix[: task.n_train])
    written = x_train.stat().st_mtime_ns
    shared_matrix(features, matrix, task.n_train, "k1")
    assert x_train.stat().st_mtime_ns == written  # once per machine, not per evaluator


def test_default_features_are_the_mapped_view_and_linked_into_each_inbox(dataset, split, tmp_path):
    work = Path(tempfile.mkdtemp(prefix="handoff-test-", dir=shared_base()))  # where the views are: links work
    ev = Evaluator(dataset, split, EnvConfig(pipeline=PipelineConfig(n_estimators=5, cv_folds=1)),
                   work_root=work, cache_dir=tmp_path)
    inboxes: list[tuple[int, list[str]]] = []

    def progress(stage: str, fraction: float) -> None:
        if stage == "scoring":  # the model stage is over, its job folder not yet removed
            for inbox in work.glob("*/inbox"):
                inboxes.append(((inbox / "x_train.npy").stat().st_ino, sorted(p.name for p in inbox.glob("x_*.npy"))))

    stages = []
    feature_stage = ev._feature_stage
    ev._feature_stage = lambda *args: stages.append(args) or feature_stage(*args)
    try:
        program = Program(ev.task.default_program() + "\nVARIANT = 1\n")
        for _ in range(2):
            assert ev.evaluate(program, progress, with_baseline=False).status == "ok"
        assert stages == []  # the default selects the view's columns: nothing to run or guard
        matrix = ev._default_matrix[0]
        assert isinstance(matrix, MappedMatrix) and Path(matrix.filename) == ev.feature_dir
        view_inode = (ev.train_dir / "features.npy").stat().st_ino
        # each evaluation's training matrix is the training view's file itself; streamed blocks
        # were removed once answered
        assert inboxes == [(view_inode, ["x_train.npy"])] * 2
    finally:
        ev.close()
        shutil.rmtree(work, ignore_errors=True)


def test_the_guard_compares_block_by_block_and_names_the_first_changed_value(dataset, split, monkeypatch):
    """The look-ahead comparison works in row blocks (a float64 copy of a full-width matrix
    would be GBs) and still reports the first changed value, wherever its block is."""
    from aiforml.pipeline import evaluator as evaluate

    task = build_task(dataset, split, EnvConfig())
    full = np.random.default_rng(0).integers(0, 5, size=(1000, 4)).astype(np.int8)
    truncated = full[:900].astype(np.float32)
    monkeypatch.setattr(evaluate, "GUARD_BLOCK", 40)  # 10 rows a block
    assert evaluate.compare_features(full, truncated, task) is None
    truncated[705, 2] += 0.5
    truncated[706, 1] += 0.5
    status, message = evaluate.compare_features(full, truncated, task)
    assert status == "leakage_suspected"
    assert message.startswith(f"look-ahead: feature column 2 of row 705 ({task.describe_row(705)}) is {full[705, 2]:.6g}")


HOLDER = """
import sys
from pathlib import Path
from aiforml.pipeline.handoff import lease
base = Path(sys.argv[1])
lease(base)
(base / "features.npy").write_bytes(b"rows")
print("held", flush=True)
sys.stdin.read()
"""


def _holder(base):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(base)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_hand_off_folder_lives_while_a_process_uses_it_and_goes_with_the_last(tmp_path):
    """Views under /dev/shm are memory: freed when no process uses them, kept while one does;
    nothing in the root but hand-off folders is touched."""
    import os
    import signal
    import time

    from aiforml.pipeline.handoff import lease, remove_unused

    root = tmp_path / "handoff"
    used, killed = root / "0123456789abcdef", root / "fedcba9876543210"
    holder = _holder(used)
    crashed = _holder(killed)
    os.kill(crashed.pid, signal.SIGKILL)  # a killed run: no exit handler ran
    crashed.wait()
    assert killed.is_dir()
    others = [root / "notes", root / "0000000000000000"]  # not a hand-off name; one being made (no lock yet)
    for folder in others:
        folder.mkdir()
    unlocked = root / "1111111111111111"  # left by a version without locks, two days ago
    unlocked.mkdir()
    os.utime(unlocked, (time.time() - 2 * 86400,) * 2)

    assert remove_unused(root) == [unlocked, killed]  # the holder's folder is in use
    assert (used / "features.npy").read_bytes() == b"rows" and all(f.is_dir() for f in others)

    holder.stdin.close()  # the last user exits: its folder goes with it
    assert holder.wait(timeout=60) == 0
    assert not used.exists() and all(f.is_dir() for f in others)

    stale = _holder(root / "aaaaaaaaaaaaaaaa")
    os.kill(stale.pid, signal.SIGKILL)
    stale.wait()
    lease(root / "bbbbbbbbbbbbbbbb")  # a new run's first lease clears what a killed one left
    assert sorted(p.name for p in root.iterdir()) == ["0000000000000000", "bbbbbbbbbbbbbbbb", "notes"]


def test_feature_neutral_bases_are_built_once_per_machine_and_mapped_by_each_user(tmp_path):
    """The first evaluator to score a split builds them; the others map the same file."""
    from aiforml.metrics import EraBases, per_era_feature_neutral_corr
    from aiforml.pipeline.handoff import shared_bases

    rng = np.random.default_rng(2)
    eras = np.repeat(np.arange(4), [50, 6, 60, 40])  # era 1 is spanned by its features: no basis
    features = rng.integers(0, 5, size=(len(eras), 8)).astype(np.int8)
    target = rng.normal(size=len(eras))
    target[[3, 90]] = np.nan
    predictions = features[:, 2] * 0.3 + rng.normal(size=len(eras))
    for form in ("basis", "map"):
        built = []

        def build(form=form, built=built):
            built.append(form)
            return EraBases.for_target(features, target, eras, form=form)

        first = shared_bases(tmp_path, f"split-{form}", build)
        second = shared_bases(tmp_path, f"split-{form}", build)
        assert built == [form]  # once
        assert first.bases[1] is None and isinstance(second.bases[0], np.memmap | np.ndarray)
        assert not second.bases[0].flags.writeable  # a read-only map of the one file
        want = per_era_feature_neutral_corr(predictions, build(), target, eras)
        for got in (first, second):
            np.testing.assert_array_equal(per_era_feature_neutral_corr(predictions, got, target, eras), want)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fnc-split-basis", "fnc-split-map"]


def test_a_programs_own_training_rows_go_to_the_model_stage_as_written(dataset, split, tmp_path):
    """A feature step of the program's own writes its training rows and the rest as two files;
    where no process of its run is left (bubblewrap), the model stage's matrix is that first
    file itself, not a copy of its rows."""
    work = Path(tempfile.mkdtemp(prefix="handoff-test-", dir=shared_base()))
    ev = Evaluator(dataset, split, EnvConfig(pipeline=PipelineConfig(n_estimators=5, cv_folds=1)),
                   work_root=work, cache_dir=tmp_path)
    seen: list[tuple[int, int]] = []

    def progress(stage: str, fraction: float) -> None:
        if stage == "scoring":
            for job in work.glob("*/inbox"):
                seen.append(((job / "x_train.npy").stat().st_ino,
                             (job.parent / "features" / "features.head.npy").stat().st_ino))

    try:
        source = ev.task.default_program().replace("return df[feature_cols]", "return df[feature_cols] * 2")
        result = ev.evaluate(Program(source), progress, with_baseline=False)
        assert result.status == "ok", result.message
        assert len(seen) == 1
        assert (seen[0][0] == seen[0][1]) == ev.sandbox.runs_are_sealed
    finally:
        ev.close()
        shutil.rmtree(work, ignore_errors=True)
