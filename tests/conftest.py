"""Session-wide test setup: a pinned data secret (generated data is the same every run), running
a function as another uid, and a folder all uids share."""

from __future__ import annotations

import os
import pickle
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aiforml.data.secret import SECRET_ENV
from aiforml.pipeline.childio import remove_tree

TEST_SECRET = "00112233445566778899aabbccddeeff"  # fixed: the suite's data must not vary by machine


@pytest.fixture(scope="session", autouse=True)
def pinned_data_secret(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """$AIFORML_DATA_SECRET_FILE names a fixed secret for every test and its subprocesses."""
    path = tmp_path_factory.mktemp("secret") / "data-secret"
    path.write_text(TEST_SECRET + "\n")
    path.chmod(0o600)
    old = os.environ.get(SECRET_ENV)
    os.environ[SECRET_ENV] = str(path)
    yield path
    if old is None:
        os.environ.pop(SECRET_ENV, None)
    else:
        os.environ[SECRET_ENV] = old


@pytest.fixture
def as_user() -> Callable[[int, Callable[[], object]], object]:
    """``as_user(uid, fn)``: ``fn()`` run in a forked child as uid/gid ``uid``; its value or error.

    Needs root (to change uid): skips otherwise.
    """
    if os.geteuid() != 0:
        pytest.skip("changing uid needs root")

    def run(uid: int, fn: Callable[[], object]) -> object:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child never returns into pytest
            try:
                os.close(read)
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
                try:
                    outcome = ("value", fn())
                except BaseException as exc:  # noqa: BLE001 - handed back to the test
                    outcome = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
                with os.fdopen(write, "wb") as f:
                    pickle.dump(outcome, f)
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
        kind, value = pickle.loads(data)  # written by our own forked test process
        if kind == "error":
            raise AssertionError(f"as uid {uid}: {value}")
        return value

    return run


@pytest.fixture
def shared_dir() -> Path:
    """A fresh folder where any uid may create entries (mode 1777, like /dev/shm and /tmp)."""
    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else Path(tempfile.gettempdir())
    folder = Path(tempfile.mkdtemp(prefix="aiforml-test-", dir=base))
    os.chmod(folder, 0o1777)
    yield folder
    remove_tree(folder)


@pytest.fixture(scope="session")
def zygote_runs() -> Callable[[str], list[int]]:
    """zygote_runs(marker): host pids of what zygotes whose bwrap command line holds ``marker``
    (one of their folders) forked and is still alive (must be [] after a run)."""
    return zygote_run_pids


def zygote_run_pids(marker: str) -> list[int]:
    """Descendants of every zygote started with ``marker`` on its bwrap command line."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    launchers = set(_pids_with(b"zygote_main.py")) & set(_pids_with(marker.encode()))
    zygotes = {pid for pid, parent in parents.items() if parent in launchers and pid not in launchers}
    found, frontier = [], set(zygotes)
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        found += sorted(frontier)
    return found


def _pids_with(needle: bytes) -> list[int]:
    """Host pids (not this one) whose command line contains ``needle``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found
