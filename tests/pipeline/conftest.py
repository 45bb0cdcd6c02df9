"""Shared fixtures: the fast synthetic dataset, its split, and evaluators over it."""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
from pathlib import Path

import pytest

from aiforml.config import DataConfig, EnvConfig, PipelineConfig, SandboxConfig
from aiforml.data import load_dataset, split_dataset
from aiforml.pipeline.evaluator import Evaluator


@pytest.fixture(scope="session")
def data_cfg(tmp_path_factory) -> DataConfig:
    return DataConfig(cache_dir=str(tmp_path_factory.mktemp("data-cache")))


@pytest.fixture(scope="session")
def dataset(data_cfg):
    return load_dataset(data_cfg)


@pytest.fixture(scope="session")
def split(dataset, data_cfg):
    return split_dataset(dataset, data_cfg)


@pytest.fixture(scope="session")
def work_root(tmp_path_factory) -> Path:
    """Where this session's sandbox jobs live: their command lines name it."""
    return tmp_path_factory.mktemp("evals")


@pytest.fixture(scope="session")
def make_evaluator(dataset, split, work_root, tmp_path_factory):
    """Build an Evaluator with some sandbox limits changed; all share one baseline cache."""
    baselines = tmp_path_factory.mktemp("baselines")

    def make(static_checks: bool = True, **sandbox) -> Evaluator:
        cfg = EnvConfig(sandbox=dataclasses.replace(SandboxConfig(), **sandbox),
                        pipeline=PipelineConfig(static_checks=static_checks))
        return Evaluator(dataset, split, cfg, work_root=work_root, cache_dir=baselines)

    return make


@pytest.fixture(scope="session")
def evaluator(make_evaluator):
    ev = make_evaluator(wall_s=120.0, memory_mb=2048)
    ev.baseline_predictions()
    yield ev
    ev.close()


@pytest.fixture(scope="session")
def open_evaluator(make_evaluator, evaluator):
    """Static checks off: only the sandbox stands between the program and the host."""
    ev = make_evaluator(static_checks=False, wall_s=20.0, cpu_s=30, memory_mb=1024)
    yield ev
    ev.close()


@pytest.fixture(scope="session")
def short_wall_evaluator(make_evaluator, evaluator):
    """Static checks off and a 4-second wall: for programs that only end when the sandbox ends them."""
    ev = make_evaluator(static_checks=False, wall_s=4.0, cpu_s=8, memory_mb=1024)
    yield ev
    ev.close()


@pytest.fixture
def listener():
    """A TCP server on loopback that records every connection it receives."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    hits: list[str] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, addr = server.accept()
            except (TimeoutError, OSError):
                continue
            hits.append(str(addr))
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], hits
    stop.set()
    thread.join(2)
    server.close()


@pytest.fixture
def harness_processes(work_root, zygote_runs):
    """A function listing host pids of this session's sandbox children still running."""

    needle = str(work_root).encode()

    def running() -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if needle in cmdline and b"zygote_main.py" not in cmdline:  # a zygote may outlive a run
                pids.append(int(entry.name))
        return pids + zygote_runs(str(work_root))  # its runs may not

    return running
