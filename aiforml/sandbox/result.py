"""The typed result of one sandboxed run, and how an exit is classified into an outcome.

Responsible for: :class:`SandboxResult` (text and exit information only: nothing the child
produced is ever unpickled) and :func:`classify`, the one place that decides between
``exited``, ``timeout``, ``memory``, ``killed`` and ``spawn_error``.

Not responsible for: running anything, or what an outcome is worth to a reward.
"""

from __future__ import annotations

import os
import signal as signals
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["exited", "timeout", "memory", "killed", "spawn_error"]


@dataclass
class SandboxResult:
    """What a sandboxed run left behind, apart from the files it wrote into ``rw_dir``."""

    outcome: Outcome  # exited: ran to its own end (any exit code); spawn_error: user code never started
    exit_code: int | None  # the child's exit status when it exited by itself
    signal: int | None  # the signal that ended it (under bwrap: from the 128+N exit status)
    stdout: str  # capped at cfg.output_bytes (head and tail, with a truncation marker)
    stderr: str  # capped likewise
    wall_s: float  # spawn to reap
    cpu_s: float | None  # user + system CPU of every process of the run (cgroup) or of the waited tree
    peak_memory_mb: float | None  # cgroup peak of the whole run, else the largest process's max RSS
    isolation: str  # which isolation ran it, e.g. "bwrap"
    message: str  # one line for a human or a log: why it ended

    @property
    def ok(self) -> bool:
        """Ran to its end and exited 0."""
        return self.outcome == "exited" and self.exit_code == 0


@dataclass
class ExitFacts:
    """Everything :func:`classify` looks at, gathered by the runner."""

    waitstatus: int
    started: bool  # the in-sandbox marker arrived: user code was about to run
    killed: bool  # Sandbox.kill_all() was called during the run
    timed_out: bool  # the wall-clock deadline passed while it ran
    exit_is_shell_coded: bool  # bwrap reports a child's death by signal N as exit 128+N
    oom_kills: int
    hit_memory_limit: bool
    cpu_s: float | None
    stderr_tail: str


def exit_info(facts: ExitFacts) -> tuple[int | None, int | None]:
    """(exit_code, signal) of the run."""
    status = facts.waitstatus
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    code = os.WEXITSTATUS(status)
    if facts.exit_is_shell_coded and 128 < code < 128 + 65:
        return None, code - 128
    return code, None


def classify(facts: ExitFacts, *, wall_s: float, cpu_limit_s: int, memory_mb: int) -> tuple[Outcome, str]:
    """The outcome and a one-line message."""
    code, sig = exit_info(facts)
    if facts.killed:
        return "killed", "killed by Sandbox.kill_all()"
    if not facts.started:
        tail = facts.stderr_tail.strip().splitlines()[-1:] or ["no output"]
        return "spawn_error", f"the sandbox failed before user code ran: {tail[0][:300]}"
    if facts.timed_out:
        return "timeout", f"wall-clock limit of {wall_s:g} s reached; every process killed"
    if facts.oom_kills:
        return "memory", f"memory cap of {memory_mb} MB reached (OOM kill)"
    if sig == signals.SIGXCPU:
        return "timeout", f"CPU limit of {cpu_limit_s} s reached (SIGXCPU)"
    if sig == signals.SIGKILL and facts.cpu_s is not None and facts.cpu_s >= cpu_limit_s - 0.05:
        return "timeout", f"CPU limit of {cpu_limit_s} s reached (SIGKILL at the hard limit)"
    if sig == signals.SIGKILL and facts.hit_memory_limit:
        return "memory", f"memory cap of {memory_mb} MB reached (SIGKILL at the cap)"
    if code != 0 and "MemoryError" in facts.stderr_tail[-2000:]:
        return "memory", f"memory cap of {memory_mb} MB reached (MemoryError)"
    if sig is not None:
        return "exited", f"killed by signal {sig} ({_signal_name(sig)})"
    return "exited", f"exit code {code}"


def _signal_name(sig: int) -> str:
    try:
        return signals.Signals(sig).name
    except ValueError:
        return "unknown"
