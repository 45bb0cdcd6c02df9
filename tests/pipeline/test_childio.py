"""Hostile output a child may leave: each class is refused as a value, never raised or hung on.

Unit tests of :mod:`aiforml.pipeline.childio` first, then the evaluator's reading of a
hostile ``result.json``, then real hostile programs through the whole evaluator (slow).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from aiforml.config import (
    DataConfig,
    EnvConfig,
    PipelineConfig,
    SandboxConfig,
    SyntheticPricesConfig,
)
from aiforml.data import load_dataset, split_dataset
from aiforml.pipeline import childio
from aiforml.pipeline.childio import MAX_CHILD_FILE, load_array, load_matrix, read_json, remove_tree
from aiforml.pipeline.evaluator import Evaluator, build_evaluator
from aiforml.program import Program
from aiforml.sandbox import SandboxResult

DEPTH = 1500  # folders in a chain: past the recursion limit (1000) and, with long names, PATH_MAX


def write_header(path: Path, shape: tuple[int, ...], descr: str = "<f8", data: bytes = b"\0" * 64) -> None:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": shape})
        f.write(data)


def refused(read, *args, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        read(*args)


# --- .npy -------------------------------------------------------------------------------
def test_a_header_claiming_10_to_the_12_columns_is_refused_before_allocating(tmp_path):
    path = tmp_path / "features.npy"
    write_header(path, (100, 10**12))
    refused(load_matrix, path, 100, match="header promises")
    write_header(path, (10**12,))
    refused(load_array, path, (10**12,), match="header promises")  # even when that shape is "expected"


def test_truncated_object_structured_and_foreign_arrays_are_refused(tmp_path):
    path = tmp_path / "predictions.npy"
    np.save(path, np.arange(10.0))
    path.write_bytes(path.read_bytes()[:-3])
    refused(load_array, path, (10,), match="truncated")
    np.save(path, np.array([1, "x"], dtype=object), allow_pickle=True)
    refused(load_array, path, (2,), match="dtype object")
    np.save(path, np.zeros(3, dtype=[("a", "<f8")]))
    refused(load_array, path, (3,), match="plain numbers")
    np.save(path, np.arange(3.0).astype(">f8"))
    refused(load_array, path, (3,), match="native-order")
    path.write_bytes(b"\x93NUMPY\x01\x00" + b"\xff" * 200)
    refused(load_array, path, (3,), match="not a plain .npy")
    write_header(path, (3,), data=b"\0" * 40)  # too long: 3 float64 are 24 bytes
    refused(load_array, path, (3,), match="holds 40")


def test_plain_arrays_read_back_in_either_order(tmp_path):
    matrix = np.asfortranarray(np.arange(12.0).reshape(3, 4))  # what DataFrame.to_numpy often gives
    np.save(tmp_path / "m.npy", matrix)
    np.testing.assert_array_equal(load_matrix(tmp_path / "m.npy", 3), matrix)
    np.save(tmp_path / "i.npy", np.arange(5, dtype=np.int64))
    np.testing.assert_array_equal(load_array(tmp_path / "i.npy", (9,), integer=True), np.arange(5))


def test_a_mapped_matrix_is_the_file_read_only_and_checked_like_a_read_one(tmp_path):
    """A feature matrix is mapped, not copied into the trusted process, once its header and
    size are checked; nothing can write through the mapping."""
    for order in ("C", "F"):
        matrix = np.asarray(np.arange(24, dtype=np.int8).reshape(6, 4), order=order)
        np.save(tmp_path / "m.npy", matrix)
        mapped = load_matrix(tmp_path / "m.npy", 6, mapped=True)
        np.testing.assert_array_equal(mapped, matrix)
        assert not mapped.flags.writeable and not mapped.flags.owndata
        with pytest.raises(ValueError):
            mapped[0, 0] = 1
    path = tmp_path / "m.npy"
    path.write_bytes(path.read_bytes()[:-3])
    refused(load_matrix, path, 6, MAX_CHILD_FILE, True, match="truncated")
    write_header(path, (6, 10**12))
    refused(load_matrix, path, 6, MAX_CHILD_FILE, True, match="header promises")


def test_links_and_fifos_are_refused_without_blocking(tmp_path):
    target = tmp_path / "labels.npy"
    np.save(target, np.arange(3.0))
    (tmp_path / "link.npy").symlink_to(target)
    os.mkfifo(tmp_path / "fifo.npy")  # opening it for reading would block without O_NONBLOCK
    refused(load_array, tmp_path / "link.npy", (3,), match="not a regular file")
    refused(load_array, tmp_path / "fifo.npy", (3,), match="not a regular file")
    refused(read_json, tmp_path / "fifo.npy", match="not a regular file")
    with pytest.raises(childio.MissingOutput):
        load_array(tmp_path / "absent.npy", (3,))


# --- JSON -------------------------------------------------------------------------------
def test_deep_json_is_refused_without_recursion(tmp_path):
    path = tmp_path / "result.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    refused(read_json, path, match="nests 200000 deep")
    path.write_text('{"status": "ok", "message": "[[[[{{{{ \\" [[[["}')  # brackets in strings do not nest
    assert read_json(path, max_depth=1)["status"] == "ok"
    path.write_text("[1, 2]")
    refused(read_json, path, match="expected a JSON object")
    path.write_text(json.dumps({"message": "x" * 2000}))
    refused(read_json, path, 1000, match="at most 1000")
    path.write_bytes(b'{"a": "\xff"}')
    refused(read_json, path, match="not valid JSON")


def test_every_read_error_is_an_invalid_output_finding():
    for exc in (RecursionError("deep"), MemoryError(), OverflowError("big"), UnicodeDecodeError("utf-8", b"", 0, 1, "x")):
        assert isinstance(exc, childio.READ_ERRORS)
        status, message = childio.output_finding(exc)
        assert status == "invalid_output" and message


def sandbox_ok() -> SandboxResult:
    return SandboxResult(outcome="ok", exit_code=0, signal=None, stdout="", stderr="", wall_s=1.0,
                         cpu_s=1.0, peak_memory_mb=None, isolation="test", message="")


@pytest.mark.parametrize("content", [
    "[" * 200_000 + "]" * 200_000,  # RecursionError inside json.loads, unchecked
    json.dumps({"status": "ok", "timings": {"fit": 10**400}}),  # OverflowError from float(), unchecked
    json.dumps({"status": "ok", "timings": [1, 2]}),  # TypeError
    json.dumps({"status": "ok", "timings": "ab"}),  # ValueError from dict("ab")
    json.dumps(["ok"]),
    "x" * 2_000_000,
])
def test_a_hostile_result_file_is_invalid_output(tmp_path, content):
    (tmp_path / "result.json").write_text(content)
    evaluator = Evaluator.__new__(Evaluator)  # _interpret reads only the run and the folder
    result = evaluator._interpret(sandbox_ok(), tmp_path, "model")
    assert result.status == "invalid_output", result.message


def test_a_missing_result_file_is_a_runtime_error(tmp_path):
    result = Evaluator.__new__(Evaluator)._interpret(sandbox_ok(), tmp_path, "model")
    assert result.status == "runtime_error"


# --- removing a job folder ----------------------------------------------------------------
def build_chain(top: Path, depth: int = DEPTH, name: str = "d" * 200) -> None:
    """A folder chain ``depth`` deep (far past PATH_MAX) with a 20 MB file, a FIFO and a link at the bottom."""
    here = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir(name, dir_fd=here)
        below = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=here)
        os.close(here)
        here = below
    with open(os.open("big", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=here), "wb") as f:
        f.write(b"x" * 20_000_000)
    os.mkfifo("fifo", dir_fd=here)
    os.symlink("/", "root", dir_fd=here)
    os.close(here)


@pytest.fixture
def job(tmp_path):
    """A job folder, removed at teardown even if the test failed (pytest's clean-up stops at PATH_MAX)."""
    folder = tmp_path / "job"
    folder.mkdir()
    yield folder
    remove_tree(folder)


def test_remove_tree_removes_a_deep_chain_never_following_links(tmp_path, job):
    build_chain(job)
    outside = tmp_path / "keep"
    outside.mkdir()
    (outside / "precious").write_text("x")
    (job / "link").symlink_to(outside)
    (job / "locked").mkdir()
    (job / "locked" / "f").write_text("x")
    os.chmod(job / "locked", 0)
    os.chmod(job / ("d" * 200), 0o500)
    assert remove_tree(job) == []
    assert not os.path.lexists(job)
    assert (outside / "precious").exists()
    assert remove_tree(job) == []  # already gone: nothing to do, nothing raised


def test_remove_tree_as_an_unprivileged_user_fixes_modes(as_user, shared_dir):
    def build_and_remove() -> tuple[list[str], bool]:
        job = shared_dir / "job"
        job.mkdir()
        build_chain(job, depth=50, name="d")
        for folder in ("a", "a/b"):
            (job / folder).mkdir()
            (job / folder / "f").write_text("x")
        os.chmod(job / "a" / "b", 0)
        os.chmod(job / "a", 0o500)
        os.chmod(job, 0o500)
        return remove_tree(job), os.path.lexists(job)

    assert as_user(54321, build_and_remove) == ([], False)


def test_remove_tree_reports_what_it_cannot_remove(as_user, shared_dir):
    (shared_dir / "job").mkdir()
    (shared_dir / "job" / "root-owned").mkdir()  # the unprivileged user cannot chmod or empty it
    (shared_dir / "job" / "root-owned" / "f").write_text("x")
    os.chmod(shared_dir / "job", 0o777)
    left = as_user(54321, lambda: remove_tree(shared_dir / "job"))
    assert left and any("root-owned" in entry for entry in left)


# --- hostile programs through the evaluator -------------------------------------------
@pytest.mark.slow
def test_a_program_leaving_a_deep_chain_and_deep_result_is_invalid_output(open_evaluator):
    source = (
        "import os, sys\n"
        "def create_target(df):\n"
        "    out = os.path.dirname(sys.argv[1])\n"
        "    os.chdir(out)\n"
        f"    for _ in range({DEPTH}):\n"
        "        os.mkdir('d' * 200)\n"
        "        os.chdir('d' * 200)\n"
        "    open('big', 'wb').write(b'x' * 20_000_000)\n"
        "    os.mkfifo('fifo')\n"
        "    os.chdir(out)\n"
        "    os.chmod('d' * 200, 0)\n"
        "    open('result.json', 'w').write('[' * 200_000 + ']' * 200_000)\n"
        "    os._exit(0)\n")
    result = open_evaluator.evaluate(Program(source))
    assert result.status == "invalid_output", result.message
    assert "200000 deep" in result.message
    assert list(open_evaluator.work_root.iterdir()) == []


@pytest.mark.slow
def test_a_program_overwriting_its_outputs_is_invalid_output(open_evaluator):
    # the steps run, then a thread the program left behind rewrites the outputs as the harness exits
    source = (
        "import os, sys, threading, time\n"
        "def rewrite(out):\n"
        "    while not os.path.exists(os.path.join(out, 'result.json')):\n"
        "        time.sleep(0.01)\n"
        "    with open(os.path.join(out, 'new.npy'), 'wb') as f:\n"
        "        f.write(b'\\x93NUMPY\\x01\\x00v\\x00' + (\"{'descr': '<f8', 'fortran_order': False, \"\n"
        "                \"'shape': (1000000000000,), }\").ljust(117).encode() + b'\\n')\n"
        "    os.replace(os.path.join(out, 'new.npy'), os.path.join(out, 'oof.npy'))\n"
        "def define_model():\n"
        "    from sklearn.linear_model import Ridge\n"
        "    threading.Thread(target=rewrite, args=(os.path.dirname(sys.argv[1]),)).start()\n"
        "    return Ridge()\n")
    result = open_evaluator.evaluate(Program(source))
    assert result.status == "invalid_output", result.message
    assert "oof.npy" in result.message, result.message
    assert list(open_evaluator.work_root.iterdir()) == []


def test_stale_job_folders_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    ours = childio.job_prefix("guard")  # guard-<our pid>-<host>-
    host = ours.split("-")[2]
    stale = tmp_path / f"job-{dead.pid}-{host}-abc"
    stale.mkdir()
    (stale / "big").write_bytes(b"x" * 1000)
    kept = [f"{ours}def", f"job-{dead.pid}-00000000-ghi", "notes"]  # running, another machine's, not a job
    for name in kept:
        (tmp_path / name).mkdir()
    assert childio.remove_stale_jobs(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


@pytest.mark.slow
def test_a_trading_program_claiming_10_to_the_12_feature_columns_is_invalid_output(work_root, tmp_path_factory):
    data_cfg = DataConfig(source="synthetic_prices", prices=SyntheticPricesConfig(n_assets=2, n_days=500, seed=3),
                          horizon=5, embargo_eras=5, validation_eras=100, test_eras=100)
    data = load_dataset(data_cfg)
    evaluator = build_evaluator(data, split_dataset(data, data_cfg),
                                EnvConfig(sandbox=SandboxConfig(wall_s=120, memory_mb=2048),
                                          pipeline=PipelineConfig(static_checks=False)),
                                work_root=work_root, cache_dir=tmp_path_factory.mktemp("trading-baselines"))
    # features.npy is rewritten, once the harness is done, with a header promising 8 TB
    source = (
        "import os, sys, threading, time\n"
        "def rewrite(out, rows):\n"
        "    while not os.path.exists(os.path.join(out, 'result.json')):\n"
        "        time.sleep(0.01)\n"
        "    header = \"{'descr': '<f8', 'fortran_order': False, 'shape': (%d, 1000000000000), }\" % rows\n"
        "    with open(os.path.join(out, 'new.npy'), 'wb') as f:\n"
        "        f.write(b'\\x93NUMPY\\x01\\x00v\\x00' + header.ljust(117).encode() + b'\\n' + bytes(64))\n"
        "    os.replace(os.path.join(out, 'new.npy'), os.path.join(out, 'features.npy'))\n"
        "def create_features(df, feature_cols):\n"
        "    threading.Thread(target=rewrite, args=(os.path.dirname(sys.argv[1]), len(df))).start()\n"
        "    return df[['close']].pct_change().fillna(0)\n")
    try:
        result = evaluator.evaluate(Program(source), with_baseline=False)
    finally:
        evaluator.close()
    assert result.status == "invalid_output", result.message
    assert "features.npy" in result.message and "header promises" in result.message, result.message
    assert list(work_root.iterdir()) == []


def test_a_feature_matrix_is_read_up_to_the_limit_given(tmp_path):
    """The evaluator reads a feature matrix up to env.sandbox.file_mb (a full-width matrix
    is larger than the default cap of other child files); past it, the message names the key."""
    np.save(tmp_path / "features.npy", np.zeros((100, 10), dtype=np.int8))
    assert load_matrix(tmp_path / "features.npy", 100, limit=2000).shape == (100, 10)
    with pytest.raises(ValueError, match=r"at most 500 are read \(a feature matrix: up to env.sandbox.file_mb\)"):
        load_matrix(tmp_path / "features.npy", 100, limit=500)


# --- a matrix written as the training rows' file and the rest ------------------------------
def _joined(tmp_path: Path, matrix: np.ndarray, n_head: int) -> tuple[Path, Path]:
    from aiforml.pipeline.harness import JOINED_HEAD, JOINED_REST, write_rest

    head, rest = tmp_path / JOINED_HEAD, tmp_path / JOINED_REST
    np.save(head, matrix[:n_head])
    write_rest(rest, head, matrix, n_head)
    return head, rest


@pytest.mark.parametrize("mapped", [False, True])
def test_a_joined_matrix_reads_back_whole_and_checked(tmp_path, mapped):
    matrix = np.random.default_rng(0).normal(size=(900, 3))
    head, rest = _joined(tmp_path, matrix, 700)
    got = childio.load_joined(head, rest, 900, 700, mapped=mapped)
    np.testing.assert_array_equal(got, matrix)
    assert got.flags.writeable != mapped
    refused(childio.load_joined, head, rest, 900, 699, match="expected \\(699, k\\)")
    refused(childio.load_joined, head, rest, 901, 700, match="truncated or corrupt")
    refused(childio.load_joined, head, rest, 900, 700, head.stat().st_size + 100, match="at most")


def test_a_joined_matrix_whose_files_disagree_or_are_links_is_refused(tmp_path):
    matrix = np.arange(2000.0).reshape(1000, 2)
    head, rest = _joined(tmp_path, matrix, 600)
    data = bytearray(rest.read_bytes())
    data[0] ^= 1  # the repeated last page of the head, changed in the rest only
    rest.write_bytes(bytes(data))
    refused(childio.load_joined, head, rest, 1000, 600, match="does not begin with the last page")
    os.replace(head, tmp_path / "elsewhere.npy")
    head.symlink_to(tmp_path / "elsewhere.npy")
    refused(childio.load_joined, head, rest, 1000, 600, match="not a regular file")
    head.unlink()
    np.save(head, np.asfortranarray(matrix[:600]))
    refused(childio.load_joined, head, rest, 1000, 600, match="expected \\(600, k\\)")


def test_a_program_changing_its_training_rows_after_writing_them_is_invalid_output(open_evaluator):
    """The training rows' file is the model stage's matrix and the first rows of what the guards
    and the stream read: a thread the program left behind that changes it after the harness
    wrote it (its last page, which the rest file repeats) is caught."""
    n_train = open_evaluator.task.n_train
    assert (128 + 8 * n_train) % 4096, "the head file must end inside a page for this test"
    source = (
        "import os, sys, threading, time\n"
        "def change(out):\n"
        "    head = os.path.join(out, 'features.head.npy')\n"
        "    while not os.path.exists(os.path.join(out, 'result.json')):\n"
        "        time.sleep(0.005)\n"
        "    with open(head, 'r+b') as f:\n"
        "        f.seek(os.path.getsize(head) - 1)\n"
        "        f.write(b'\\x01')\n"
        "def create_features(df, feature_cols):\n"
        "    import pandas as pd\n"
        "    threading.Thread(target=change, args=(os.path.dirname(sys.argv[1]),)).start()\n"
        "    return pd.DataFrame({'f': df[feature_cols[0]].astype('float64')})\n")
    result = open_evaluator.evaluate(Program(source))
    assert result.status == "invalid_output", result.message
    assert "last page" in result.message, result.message
