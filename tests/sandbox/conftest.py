"""Fixtures for the sandbox's adversarial tests: a small-limits Sandbox and a script runner."""

from __future__ import annotations

import os
import socket
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from aiforml.config import SandboxConfig
from aiforml.sandbox import Sandbox, SandboxResult

Runner = Callable[..., SandboxResult]


def small_config(**overrides: object) -> SandboxConfig:
    """Limits small enough for tests to hit them in seconds."""
    values: dict[str, object] = dict(
        isolation="auto", wall_s=20.0, cpu_s=20, memory_mb=512, max_procs=32, output_bytes=4000
    )
    values.update(overrides)
    return SandboxConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session", params=["spawn", "zygote"])
def sandbox_mode(request: pytest.FixtureRequest) -> str:
    """Every test of a sandbox runs in both modes: a fresh interpreter, and forked from the zygote."""
    return str(request.param)


@pytest.fixture(scope="session")
def roots(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The folders a zygote sees: every tmp_path of this test session."""
    return [tmp_path_factory.getbasetemp()]


@pytest.fixture(scope="session")
def sandbox(sandbox_mode: str, roots: list[Path]) -> Iterator[Sandbox]:
    box = Sandbox(small_config(mode=sandbox_mode), roots=roots)
    yield box
    box.close()


@pytest.fixture(scope="session")
def make_sandbox(sandbox_mode: str, roots: list[Path]) -> Iterator[Callable[..., Sandbox]]:
    """make_sandbox(**config_overrides): a Sandbox with small limits (a zygote importing numpy only)."""
    boxes: list[Sandbox] = []

    def make(**overrides: object) -> Sandbox:
        overrides.setdefault("mode", sandbox_mode)
        overrides.setdefault("preload", ["numpy"])
        boxes.append(Sandbox(small_config(**overrides), roots=roots))
        return boxes[-1]

    yield make
    for box in boxes:
        box.close()


@pytest.fixture(scope="session")
def require(sandbox: Sandbox) -> Callable[..., None]:
    """require("bwrap", "pids", "memory"): skip unless this machine gives those protections."""

    def check(*needs: str) -> None:
        have = set(sandbox.controllers) | ({"bwrap"} if sandbox.isolation == "bwrap" else set())
        missing = sorted(set(needs) - have)
        if missing:
            pytest.skip(f"this machine lacks {missing}: {sandbox.isolation}; {sandbox.limits}")

    return check


@pytest.fixture(scope="session")
def leftovers(zygote_runs: Callable[[str], list[int]], roots: list[Path]) -> Callable[[str], list[int]]:
    """leftovers(token): host pids whose command line holds token, and this session's zygote runs
    (must be [] after a run)."""
    return lambda token: processes_with(token) + zygote_runs(str(roots[0]))


@pytest.fixture
def marker() -> str:
    """A token put on the child's command line, to find its processes on the host."""
    return f"sbx-test-{uuid.uuid4().hex}"


@pytest.fixture
def run_script(sandbox: Sandbox, tmp_path: Path, marker: str) -> Runner:
    """run_script(code, sandbox=..., **run_kwargs): run ``code`` with the venv's python."""
    rw = tmp_path / "rw"
    rw.mkdir(exist_ok=True)

    def run(code: str, box: Sandbox | None = None, **kwargs: object) -> SandboxResult:
        kwargs.setdefault("ro_paths", [])
        kwargs.setdefault("rw_dir", rw)
        argv = [sys.executable, "-c", textwrap.dedent(code), marker]
        return (box or sandbox).run(argv, **kwargs)  # type: ignore[arg-type]

    return run


def processes_with(token: str) -> list[int]:
    """Host pids whose command line contains ``token``."""
    return _cmdline_contains(token)


def _cmdline_contains(token: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in cmdline:
            found.append(int(entry))
    return found


TRAIN = """
import sys, numpy as np, pandas as pd, lightgbm as lgb, sklearn
data = np.load(sys.argv[2], mmap_mode="r", allow_pickle=False)
X = pd.DataFrame(np.asarray(data[:, :-1]), columns=[f"feature_{i}" for i in range(data.shape[1] - 1)])
model = lgb.LGBMRegressor(n_estimators=20, num_leaves=7, verbose=-1).fit(X, data[:, -1])
np.save(sys.argv[3], model.predict(X).astype(np.float32))
print("trained", len(X))
"""


@pytest.fixture
def train(tmp_path: Path) -> Callable[[Sandbox], tuple[SandboxResult, Path]]:
    """train(box): fit a tiny LightGBM on a read-only .npy inside box; (result, predictions path)."""
    return lambda box: _training_run(box, tmp_path)


def _training_run(box: Sandbox, tmp_path: Path) -> tuple[SandboxResult, Path]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    rng = np.random.default_rng(0)
    features = rng.integers(0, 5, size=(400, 5)).astype(np.float32)
    np.save(data_dir / "train.npy", np.c_[features, features[:, 0] * 0.25 + rng.normal(0, 0.1, 400)])
    rw = tmp_path / "rw"
    rw.mkdir(exist_ok=True)
    argv = [sys.executable, "-c", TRAIN, "marker", str(data_dir / "train.npy"), str(rw / "pred.npy")]
    return box.run(argv, ro_paths=[data_dir], rw_dir=rw), rw / "pred.npy"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback TCP socket the test listens on; a sandboxed connect must never reach it."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()
