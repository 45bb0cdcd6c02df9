"""Shared fixtures for the environment tests: a small composed config, the fast synthetic
data, an episode session over it, and helpers that drive an MCP client through one episode.

Everything that writes caches writes under one session-scoped fake HOME, so the server
subprocesses (stdio, HTTP, the Inspector) reuse the data and baseline that the in-process
fixtures already built instead of recomputing them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from aiforml.compose import load_config
from aiforml.config import Config
from aiforml.data import load_dataset, split_dataset
from aiforml.data.secret import SECRET_ENV
from aiforml.env.session import EnvSession
from aiforml.program import Program

# Small settings: one evaluation of the default program takes seconds.
SMALL = ["env.pipeline.n_estimators=30", "env.pipeline.cv_folds=2", "env.sandbox.wall_s=60",
         "env.server.output_chars=1000"]
RIDGE = "def define_model():\n    from sklearn.linear_model import Ridge\n\n    return Ridge(alpha=10.0)\n"
SPIN = "def create_features(df, feature_cols):\n    while True:\n        pass\n"
# Passes the static checks, then tries to read a host file that the sandbox does not show.
HOSTILE = ("def create_features(df, feature_cols):\n    import numpy as np\n\n"
           "    secret = np.loadtxt('/etc/shadow', dtype=str)\n    return df[feature_cols] * 0 + len(secret)\n")


@pytest.fixture(scope="session")
def programs() -> SimpleNamespace:
    """Program sources the env tests share: a Ridge model, a spinner, a hostile reader."""
    return SimpleNamespace(ridge=RIDGE, spin=SPIN, hostile=HOSTILE)


@pytest.fixture(scope="session")
def fake_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session")
def overrides(fake_home) -> list[str]:
    """Config overrides shared by in-process fixtures and server subprocesses."""
    return [*SMALL, f"data.cache_dir={fake_home / '.cache' / 'aiforml'}"]


@pytest.fixture(scope="session")
def cfg(overrides) -> Config:
    return load_config(overrides)


@pytest.fixture(scope="session")
def dataset(cfg):
    return load_dataset(cfg.data)


@pytest.fixture(scope="session")
def split(dataset, cfg):
    return split_dataset(dataset, cfg.data)


@pytest.fixture(scope="session")
def baseline_dir(fake_home) -> Path:
    """Where Evaluator keeps baselines under the fake HOME (its default is ~/.cache/aiforml/baselines)."""
    return fake_home / ".cache" / "aiforml" / "baselines"


@pytest.fixture(scope="session")
def work_root(tmp_path_factory) -> Path:
    """Job folders of this test session only, so orphan checks ignore other people's sandboxes."""
    return tmp_path_factory.mktemp("env-jobs")


@pytest.fixture(scope="session")
def session(cfg, dataset, split, baseline_dir, work_root):
    env = EnvSession(cfg, dataset, split, baseline_dir=baseline_dir, work_root=work_root)
    env.evaluator.baseline_predictions()  # warm once; every later evaluation reuses it
    yield env
    env.close()


@pytest.fixture(scope="session")
def library_result(session) -> Callable[[str], Any]:
    """The library's own result for a program source (memoized): what the server must match."""
    memo: dict[str, Any] = {}

    def get(source: str):
        if source not in memo:
            memo[source] = session.evaluator.evaluate(Program(source))
        return memo[source]

    return get


@pytest.fixture(scope="session")
def server_env(fake_home) -> dict[str, str]:
    """Environment of a server subprocess: the fake HOME, and this interpreter's PATH."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
    env.update(HOME=str(fake_home), PYTHONUNBUFFERED="1")
    env[SECRET_ENV] = os.environ[SECRET_ENV]  # the suite's pinned data secret: the same data
    return env


@pytest.fixture(scope="session")
def server_argv(overrides) -> list[str]:
    """The stdio server's command line, with the same config as the in-process fixtures."""
    argv = [sys.executable, "-m", "aiforml.env.server", "--data", "synthetic"]
    for item in overrides:
        argv += ["--set", item]
    return argv


def harness_pids(marker: str) -> list[int]:
    """Host pids of sandbox children whose command line mentions ``marker`` (a job root)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"harness.py" in cmdline and marker.encode() in cmdline and b"zygote_main.py" not in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def sandbox_children(zygote_runs: Callable[[str], list[int]]) -> Callable[[Path], list[int]]:
    """Spawned children of a job root, and every run its zygote forked (a zygote may outlive its runs)."""
    return lambda root: harness_pids(str(root)) + zygote_runs(str(root))


async def run_episode(client) -> dict[str, Any]:
    """One episode through any MCP client: list, describe, refuse a locked step, override, run,
    and a hostile program.

    Returns the facts the tests assert on.
    """
    tools = {t.name: t for t in (await client.list_tools()).tools}
    schema = (await client.call_tool("describe_data", {})).structured_content
    locked = await client.call_tool("set_override", {"step": "run_optimization", "code": "def run_optimization(): pass"})
    state = (await client.call_tool("set_override", {"step": "define_model", "code": RIDGE})).structured_content
    stages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        stages.append(message or "")

    run = await client.call_tool("run_pipeline", {}, progress_callback=on_progress)
    hostile = await client.call_tool("evaluate_program", {"code": HOSTILE})
    return {"tools": tools, "schema": schema, "locked": locked, "state": state, "run": run, "stages": stages,
            "hostile": hostile}


@pytest.fixture(scope="session")
def episode() -> Callable[[Any], Any]:
    return run_episode


def assert_same_scores(output: dict[str, Any], result) -> None:
    """The server's structured output carries exactly the library's scores (test withheld)."""
    assert output["status"] == result.status == "ok"
    for split_name in ("cv", "validation"):
        mine, theirs = output[split_name], getattr(result, split_name)
        for key in ("mean_corr", "std_corr", "sharpe", "max_drawdown", "n_eras"):
            assert mine[key] == pytest.approx(getattr(theirs, key), rel=1e-12, abs=1e-15), (split_name, key)
    assert output["test"] is None and output["test_withheld"] is True


def assert_hostile_is_a_result(reply) -> None:
    """The hostile program failed inside the sandbox and came back as a normal result."""
    assert not reply.is_error
    out = reply.structured_content
    assert out["status"] == "runtime_error" and not out["ran"]
    assert "FileNotFoundError" in out["message"] and "/etc/shadow" in out["message"]


@pytest.fixture(scope="session")
def same_scores() -> Callable[[dict[str, Any], Any], None]:
    return assert_same_scores


@pytest.fixture(scope="session")
def hostile_is_a_result() -> Callable[[Any], None]:
    return assert_hostile_is_a_result
