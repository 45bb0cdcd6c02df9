"""Which isolation a Sandbox uses, chosen once, and what it protects against, in words.

Responsible for: probing bubblewrap (the system binary, else the bundled one) with the
seccomp filter; without it, the fallback (setpriv, and Landlock + seccomp through
:mod:`.confine` where the kernel allows); refusing when the config requires bwrap; and
the two descriptions the caller logs: the protections in force, and the missing ones,
warned once per process.

Not responsible for: running anything (see :mod:`.sandbox`).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field

from aiforml.config import SandboxConfig
from aiforml.sandbox import bwrap as bw
from aiforml.sandbox import fallback, seccomp

log = logging.getLogger(__name__)
FALLBACK = "rlimits (no namespaces: network, filesystem and /proc NOT isolated)"
LANDLOCK = "landlock (no namespaces: /proc and the process list NOT isolated)"
_warned: set[str] = set()


@dataclass
class Choice:
    """The mechanisms in force for every run of one Sandbox."""

    controllers: list[str]  # cgroup v1 controllers in use
    bwrap: str | None = None  # the bwrap binary, or None for the fallback
    seccomp: bytes | None = None  # the BPF program loaded into the child, if any
    confine: list[str] = field(default_factory=list)  # fallback: the setpriv prefix
    landlock: bool = False  # fallback: Landlock (+ seccomp) through confine.py

    @property
    def name(self) -> str:
        return "bwrap" if self.bwrap else LANDLOCK if self.landlock else FALLBACK

    def describe(self, cfg: SandboxConfig) -> str:
        parts = ["wall-clock kill from outside", f"RLIMIT_CPU {cfg.cpu_s}+1 s", f"RLIMIT_FSIZE {cfg.file_mb} MB"]
        parts.append("memory cgroup" if "memory" in self.controllers else "RLIMIT_DATA")
        if "pids" in self.controllers:
            parts.append("pids cgroup")
        if self.landlock:
            parts.append("Landlock: files only beneath the bound paths, no TCP, no outside signals")
        if self.seccomp is not None:
            parts.append("seccomp deny list" + ("" if self.bwrap else " and no inet sockets"))
        if self.confine:
            parts.append("no capabilities, no_new_privs, dies with the parent")
        if fallback.runs_as_nobody(self.confine):
            parts.append("uid 65534" + ("" if "pids" in self.controllers else " with RLIMIT_NPROC"))
        parts.append(f"output capped at {cfg.output_bytes} B per stream")
        return ", ".join(parts)

    def missing(self) -> str:
        missing = []
        if not self.bwrap:
            if self.landlock:
                missing.append(
                    "no namespaces: /proc and the process list are shared, and pathname unix "
                    "sockets on the host can be connected to"
                )
            else:
                missing.append("network, filesystem, /proc and other processes are NOT isolated")
            if not fallback.runs_as_nobody(self.confine):
                signals = "" if self.landlock else " (it can signal our processes)"
                missing.append(f"the child runs as this process's uid{signals}")
            if not self.controllers:
                missing.append("a setsid double-forked daemon can outlive the run (no cgroup)")
        if self.seccomp is None:
            missing.append("no seccomp filter (ptrace, bpf, io_uring, keyctl ... allowed)")
        if "memory" not in self.controllers:
            missing.append(
                "no memory cgroup (RLIMIT_DATA only: per process, shared memory and tmpfs not counted)"
            )
        if "pids" not in self.controllers and not fallback.runs_as_nobody(self.confine):
            missing.append("no process cap (no pids cgroup; root ignores RLIMIT_NPROC)")
        return "; ".join(missing)


def choose(cfg: SandboxConfig, controllers: list[str]) -> Choice:
    choice = Choice(controllers, seccomp=_seccomp_program(deny_inet=False))
    if cfg.isolation != "none":
        choice.bwrap = _choose_bwrap(cfg, choice)
    if choice.bwrap is None:
        choice.confine = fallback.prefix(sys.executable)
        choice.seccomp = _seccomp_program(deny_inet=True)  # no network namespace: no inet
        error = fallback.confine_works(sys.executable, tuple(choice.confine), choice.seccomp)
        choice.landlock = error is None
        if error:
            warn_once(f"sandbox: Landlock/seccomp confinement unusable here: {error}")
            choice.seccomp = None  # the confine launcher is what loads it
    return choice


def _choose_bwrap(cfg: SandboxConfig, choice: Choice) -> str | None:
    errors = []
    for candidate in bw.candidates():
        error = bw.probe(candidate, choice.seccomp)
        if error and choice.seccomp is not None and bw.probe(candidate, None) is None:
            warn_once(f"sandbox: {candidate} refused the seccomp filter ({error}); running without it")
            choice.seccomp, error = None, None
        if error is None:
            return candidate
        errors.append(f"{candidate}: {error}")
    why = "; ".join(errors) or "no bwrap binary found (apt-get install bubblewrap)"
    if cfg.require_isolation or cfg.isolation == "bwrap":
        raise RuntimeError(
            f"env.sandbox requires bubblewrap isolation but bwrap cannot run here: {why}. "
            "Install bubblewrap and allow user namespaces, or set "
            "env.sandbox.require_isolation=false and env.sandbox.isolation=auto."
        )
    warn_once(f"sandbox: bubblewrap unusable ({why}); falling back to weaker isolation")
    return None


def _seccomp_program(deny_inet: bool) -> bytes | None:
    try:
        return seccomp.build_filter(deny_inet)
    except seccomp.SeccompUnavailable as exc:
        warn_once(f"sandbox: no seccomp filter: {exc}")
        return None


def warn_once(message: str) -> None:
    """logging.warning, once per process and message."""
    if message not in _warned:
        _warned.add(message)
        log.warning(message)
