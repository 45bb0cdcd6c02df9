"""Resource attacks: each hostile script must hit its limit and leave nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from aiforml.config import SandboxConfig
from aiforml.sandbox import Sandbox, SandboxResult

Runner = Callable[..., SandboxResult]
Boxes = Callable[..., Sandbox]
Leftovers = Callable[[str], list[int]]


def sandbox_isolation_is_weak(make_sandbox: Boxes) -> bool:
    box = make_sandbox()
    return box.isolation != "bwrap" and "pids" not in box.controllers


def test_infinite_loop_hits_wall_clock(
    run_script: Runner, marker: str, make_sandbox: Boxes, leftovers: Leftovers
) -> None:
    box = make_sandbox(wall_s=2.0)
    result = run_script("while True:\n    pass", box)
    assert result.outcome == "timeout"
    assert "wall-clock" in result.message
    assert result.wall_s < box.cfg.wall_s + 3
    assert leftovers(marker) == []


@pytest.mark.slow
def test_cpu_burner_ignoring_sigxcpu_is_stopped(
    run_script: Runner, marker: str, make_sandbox: Boxes, leftovers: Leftovers
) -> None:
    box = make_sandbox(cpu_s=1, wall_s=15.0)
    result = run_script(
        """
        import signal
        signal.signal(signal.SIGXCPU, lambda *a: print("caught SIGXCPU, carrying on", flush=True))
        while True:
            pass
        """,
        box,
    )
    assert result.outcome == "timeout"
    assert "CPU limit" in result.message
    assert "caught SIGXCPU" in result.stdout  # it did catch the soft limit; the hard one killed it
    assert leftovers(marker) == []


def test_memory_bomb_reports_memory(run_script: Runner) -> None:
    result = run_script(
        """
        hog = []
        while True:
            hog.append(bytearray(32 * 2**20))  # touched: bytearray zero-fills
        """
    )
    assert result.outcome == "memory"
    assert result.peak_memory_mb is not None and result.peak_memory_mb <= 512 + 16


def test_numpy_memory_bomb_reports_memory(run_script: Runner) -> None:
    result = run_script("import numpy as np\nx = np.ones((2048, 2**20 // 8 * 2))  # 4 GiB")
    assert result.outcome == "memory"


def test_memory_in_private_tmp_counts(run_script: Runner, require: Callable[..., None]) -> None:
    """Filling the private tmpfs /tmp must not sidestep the memory cap."""
    require("bwrap")
    result = run_script(
        """
        with open("/tmp/fill", "wb") as f:
            for _ in range(64):
                f.write(b"x" * 32 * 2**20)
        print("wrote 2 GiB")
        """
    )
    assert "wrote 2 GiB" not in result.stdout
    assert result.outcome in ("memory", "exited") and not result.ok


FORK_COUNT = """
import os, time
n = 0
try:
    for _ in range(500):
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
except OSError as exc:
    print("fork refused after", n, type(exc).__name__, flush=True)
print("forked", n, flush=True)
"""


def test_process_cap_refuses_forks(
    run_script: Runner, marker: str, leftovers: Leftovers, require: Callable[..., None]
) -> None:
    require("pids")
    result = run_script(FORK_COUNT)
    assert result.outcome == "exited", result.message
    assert "fork refused after" in result.stdout
    forked = int(result.stdout.split("forked")[1].split()[0])
    assert forked < 32
    assert leftovers(marker) == []  # the sleeping children died with the run


@pytest.mark.slow
def test_fork_bomb_is_contained(
    run_script: Runner,
    marker: str,
    make_sandbox: Boxes,
    leftovers: Leftovers,
    require: Callable[..., None],
) -> None:
    require("pids")
    box = make_sandbox(wall_s=3.0)
    result = run_script(
        """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """,
        box,
    )
    assert result.outcome == "timeout"
    assert leftovers(marker) == []
    # the host can still start processes
    assert subprocess.run(["true"], check=False).returncode == 0


def test_kill_all_from_another_thread(
    run_script: Runner, marker: str, make_sandbox: Boxes, leftovers: Leftovers
) -> None:
    box = make_sandbox(wall_s=30.0)
    started = threading.Event()
    killer = threading.Thread(target=lambda: (started.wait(10), time.sleep(0.5), box.kill_all()))
    killer.start()
    result = run_script("import time\ntime.sleep(60)", box, on_start=lambda pid: started.set())
    killer.join()
    assert result.outcome == "killed"
    assert result.wall_s < box.cfg.wall_s
    assert leftovers(marker) == []


def test_cancelled_caller_leaves_no_process(
    run_script: Runner, marker: str, make_sandbox: Boxes, leftovers: Leftovers
) -> None:
    """A KeyboardInterrupt in the calling thread mid-run still kills the whole run."""
    if sandbox_isolation_is_weak(make_sandbox):
        pytest.skip("without bwrap or a cgroup a setsid daemon escapes (reported as missing)")
    box = make_sandbox(wall_s=30.0)
    pids: list[int] = []

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(KeyboardInterrupt):
            run_script(
                "import os, time\nif os.fork() == 0:\n    os.setsid()\ntime.sleep(60)",
                box,
                on_start=pids.append,
            )
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert pids and not os.path.exists(f"/proc/{pids[0]}")
    assert leftovers(marker) == []


FILL_FOLDER = """
import os
for k in range(150):  # 600 MB in all, one 4 MB file at a time: far above the 64 MB cap
    with open(f"part-{k}.bin", "wb") as f:
        f.write(os.urandom(4 * 2**20))
print("wrote 600 MB", flush=True)
"""


@pytest.mark.parametrize("mode", ["spawn", "zygote"])
def test_a_plain_user_gets_memory_and_process_caps_without_cgroups(
    as_user: Callable[..., object], shared_dir: Path, mode: str
) -> None:
    """Not root: no cgroup, yet the run's folder, its processes and its memory stay bounded."""
    python = "/usr/bin/python3"  # the venv's interpreter may sit where another uid cannot read
    if not os.access(python, os.X_OK):
        pytest.skip("no system python a plain user can run")

    def attempt() -> tuple:
        cfg = SandboxConfig(wall_s=20.0, cpu_s=20, memory_mb=64, max_procs=16, mode=mode, preload=[])
        box = Sandbox(cfg, roots=[shared_dir])
        try:
            if box.isolation != "bwrap" or box.controllers:
                return box.isolation, box.controllers, None, None, None
            fill, forks = shared_dir / f"fill-{mode}", shared_dir / f"forks-{mode}"
            fill.mkdir()
            forks.mkdir()
            filled = box.run([python, "-c", FILL_FOLDER], ro_paths=[], rw_dir=fill, cwd=fill)
            size = sum(f.stat().st_blocks * 512 for f in fill.iterdir())
            forked = box.run([python, "-c", FORK_COUNT], ro_paths=[], rw_dir=forks)
            return box.isolation, box.mode, (filled.outcome, filled.message, filled.stdout), size, forked.stdout
        finally:
            box.close()

    isolation, box_mode, filled, size, forked = as_user(54329, attempt)  # type: ignore[misc]
    if filled is None:
        pytest.skip(f"needs bubblewrap without cgroups as a plain user here: {isolation}, {box_mode}")
    assert box_mode == mode
    outcome, message, stdout = filled
    assert outcome == "memory" and "into its folder" in message and "wrote 600 MB" not in stdout, message
    assert size < 300 * 2**20  # stopped within a few checks of crossing 64 MB
    assert "fork refused after" in forked
    assert int(forked.split("forked")[1].split()[0]) < 16
