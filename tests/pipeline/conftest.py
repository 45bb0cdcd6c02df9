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
from aiforml.pipeline.evaluate import Evaluator


@pytest.fixture(scope="session")
def data_cfg(tmp_path_factory) -> DataConfig:
    return DataConfig(cache_dir=str(tmp_path_factory.mktemp("data-cache")))


@pytest.fixture(scope="session")
def dataset(data_cfg):
    return load_dataset(data_cfg)


@pytest.fixture(scope="session")
def split(dataset, data_cfg):
    return split_dataset(dataset, data_cfg)


def make_evaluator(dataset, split, tmp_path_factory, **sandbox) -> Evaluator:
    cfg = EnvConfig(sandbox=dataclasses.replace(SandboxConfig(), **sandbox), pipeline=PipelineConfig())
    return Evaluator(dataset, split, cfg, cache_dir=tmp_path_factory.mktemp("baselines"))


@pytest.fixture(scope="session")
def evaluator(dataset, split, tmp_path_factory):
    ev = make_evaluator(dataset, split, tmp_path_factory, wall_s=60.0, memory_mb=2048)
    yield ev
    ev.close()


@pytest.fixture(scope="session")
def open_evaluator(dataset, split, tmp_path_factory):
    """Static checks off: only the sandbox stands between the program and the host."""
    ev = make_evaluator(dataset, split, tmp_path_factory, wall_s=20.0, cpu_s=30, memory_mb=1024)
    ev.cfg.pipeline.static_checks = False
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
def harness_processes():
    """A function listing host pids of processes still running the sandbox child's harness."""
    return list_harness_processes


def list_harness_processes() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"harness.py" in cmdline:
            pids.append(int(entry.name))
    return pids
