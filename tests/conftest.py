"""Fixtures for every test folder: running a function as another uid, and a folder all uids share."""

from __future__ import annotations

import os
import pickle
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from aiforml.pipeline.childio import remove_tree


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
