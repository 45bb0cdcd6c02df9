"""The fallback without bubblewrap: it says what it lacks, and still contains what it can.

Forced with ``isolation="none"``. Where the kernel has Landlock (these machines do), the
fallback confines files, TCP and signals; the rlimit-only variant is tested by making the
Landlock probe fail.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from aiforml.sandbox import Sandbox, SandboxResult, fallback, isolation

Runner = Callable[..., SandboxResult]
Boxes = Callable[..., Sandbox]
Leftovers = Callable[[str], list[int]]
Trainer = Callable[[Sandbox], tuple[SandboxResult, Path]]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fallback_box(
    make_sandbox: Boxes, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Sandbox]:
    """fallback_box(landlock=True, cgroups=True, **limits): a Sandbox without bwrap."""

    def make(landlock: bool = True, cgroups: bool = True, **limits: object) -> Sandbox:
        if not landlock:
            monkeypatch.setattr(fallback, "confine_works", lambda *a: "disabled by the test")
        box = Sandbox(make_sandbox(isolation="none", **limits).cfg, use_cgroups=cgroups)
        if landlock and not box.isolation.startswith("landlock"):
            pytest.skip(f"no Landlock here: {box.isolation}")
        return box

    return make



def test_rlimit_fallback_says_what_is_missing(
    fallback_box: Callable[..., Sandbox],
    run_script: Runner,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(isolation, "_warned", set())
    monkeypatch.setenv("AIFORML_TEST_SECRET", "leak")
    with caplog.at_level(logging.WARNING, logger=isolation.__name__):
        box = fallback_box(landlock=False, cgroups=False)
    assert box.isolation.startswith("rlimits") and "NOT isolated" in box.isolation
    assert not box.runs_are_sealed  # a daemon may outlive a run: its files are read in, never mapped
    for gap in ("network, filesystem", "process cap", "daemon", "seccomp"):
        assert gap in caplog.text
    result = run_script("import os\nprint(sorted(os.environ))", box)
    assert result.ok and result.isolation == box.isolation
    assert "AIFORML_TEST_SECRET" not in result.stdout and "OMP_NUM_THREADS" in result.stdout


def test_landlock_fallback_says_what_is_missing(
    fallback_box: Callable[..., Sandbox],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(isolation, "_warned", set())
    with caplog.at_level(logging.WARNING, logger=isolation.__name__):
        box = fallback_box()
    assert "Landlock" in box.limits and "no inet sockets" in box.limits
    assert "MISSING" in caplog.text and "/proc and the process list are shared" in caplog.text


def test_landlock_fallback_contains_escapes(
    fallback_box: Callable[..., Sandbox],
    run_script: Runner,
    listener: socket.socket,
    tmp_path: Path,
) -> None:
    secret = tmp_path / "labels.csv"
    secret.write_text("the answers")
    port = listener.getsockname()[1]
    result = run_script(
        f"""
        import ctypes, json, os, socket
        report = {{}}
        def attempt(name, action):
            try:
                action()
                report[name] = "done"
            except OSError as exc:
                report[name] = type(exc).__name__
        attempt("read secret", lambda: open({str(secret)!r}).read())
        attempt("read repo", lambda: open({str(REPO / "pyproject.toml")!r}).read())
        attempt("read /root", lambda: os.listdir("/root"))
        attempt("write outside", lambda: open({str(tmp_path / "evil")!r}, "w").close())
        attempt("write /dev/shm", lambda: open("/dev/shm/evil-{os.getpid()}", "w").close())
        attempt("tcp", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2))
        attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        attempt("signal parent", lambda: os.kill(os.getppid(), 0))
        libc = ctypes.CDLL(None, use_errno=True)
        report["ptrace"] = libc.syscall(101, 0, 0, 0, 0)
        open("inside.txt", "w").write("ok")
        print(json.dumps(report))
        """,
        fallback_box(),
    )
    assert result.ok, result.stderr
    report = json.loads(result.stdout)
    assert report.pop("ptrace") == -1
    assert "done" not in report.values(), report
    with pytest.raises(BlockingIOError):
        listener.accept()
    assert (tmp_path / "rw" / "inside.txt").read_text() == "ok"
    assert not (tmp_path / "evil").exists()


@pytest.mark.slow
def test_lightgbm_trains_in_the_fallback(
    fallback_box: Callable[..., Sandbox], train: Trainer
) -> None:
    """Landlock, seccomp and RLIMIT_DATA (no cgroup): mmap-heavy libraries must still work."""
    box = fallback_box(cgroups=False, memory_mb=1024, wall_s=60.0)
    assert "RLIMIT_DATA" in box.limits
    result, pred_path = train(box)
    assert result.ok, result.stderr
    assert np.load(pred_path, allow_pickle=False).shape == (400,)


def test_memory_bomb_under_rlimit_data(
    fallback_box: Callable[..., Sandbox], run_script: Runner
) -> None:
    box = fallback_box(cgroups=False)
    result = run_script("hog = []\nwhile True:\n    hog.append(bytearray(32 * 2**20))", box)
    assert result.outcome == "memory"
    assert "MemoryError" in result.message


def test_fallback_with_cgroup_kills_a_daemon(
    fallback_box: Callable[..., Sandbox], run_script: Runner, marker: str, leftovers: Leftovers
) -> None:
    """Without namespaces the cgroup still catches a setsid double-fork holding the pipe."""
    box = fallback_box()
    if "pids" not in box.controllers:
        pytest.skip("no cgroup here")
    code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nprint('done')"
    result = run_script(code, box)
    assert result.outcome == "exited" and "done" in result.stdout
    assert result.wall_s < box.cfg.wall_s / 2
    assert leftovers(marker) == []


def test_fallback_runs_as_nobody_where_the_interpreter_allows(
    fallback_box: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """Without bwrap, root hands the child uid 65534 when its interpreter is readable by all."""
    system_python = "/usr/bin/python3"
    if os.geteuid() != 0 or not fallback.nobody_can_run(system_python):
        pytest.skip("needs root and a system python that uid 65534 can run")
    secret = tmp_path / "secret.txt"
    secret.write_text("root only")
    secret.chmod(0o600)
    rw = tmp_path / "rw"
    rw.mkdir()
    box = fallback_box(landlock=False, cgroups=False, max_procs=8)  # the uid alone hides it
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
