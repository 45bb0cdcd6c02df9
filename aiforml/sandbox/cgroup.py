"""One cgroup v1 group per sandboxed run: memory cap, process cap, CPU accounting, kill-all.

Responsible for: finding whether this process may create child groups under its own
``memory``, ``pids`` and ``cpuacct`` cgroups (v1, as mounted on these machines), creating one
group per run with ``memory.limit_in_bytes`` and ``pids.max``, moving a process into it,
reading peak memory, OOM kills and CPU time, killing every process in it, and removing it.

Not responsible for: cgroup v2 (``/sys/fs/cgroup/unified`` holds no controllers here), or
choosing limits. Hand-written: it is a handful of file writes, and the Python wrappers for
cgroups that exist target systemd or v2 rather than a bare v1 hierarchy.

The groups are nested under this process's own cgroup, so whatever limits the host put on
this process still apply to the children, and a group left by a crashed parent is removed
by the next :func:`remove_stale` of a later process.
"""

from __future__ import annotations

import itertools
import os
import resource
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids", "cpuacct")
PREFIX = "aiforml-sbx-"
_counter = itertools.count()


def own_base(controller: str) -> Path | None:
    """The directory of this process's own cgroup for ``controller`` (v1), or None."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, names, path = line.split(":", 2)
        if controller in names.split(","):  # co-mounted controllers: "cpu,cpuacct"
            for mount in (controller, names):
                base = ROOT / mount / path.lstrip("/")
                if (base / "cgroup.procs").exists():
                    return base
    return None


def available() -> list[str]:
    """Controllers under which a child group can be created and removed right now."""
    found = []
    for controller in CONTROLLERS:
        base = own_base(controller)
        if base is None:
            continue
        probe = base / f"{PREFIX}{os.getpid()}-probe"
        try:
            probe.mkdir()
            probe.rmdir()
        except OSError:
            continue
        found.append(controller)
    return found


def remove_stale(controllers: list[str]) -> None:
    """Remove empty groups left by processes of ours that died without cleaning up."""
    for controller in controllers:
        base = own_base(controller)
        for group in base.glob(f"{PREFIX}*") if base else []:
            pid = group.name[len(PREFIX) :].split("-")[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                try:
                    group.rmdir()
                except OSError:
                    pass  # still holds processes, or raced another cleaner: left for later


@dataclass
class RunGroup:
    """The groups (one per controller) of one run."""

    dirs: dict[str, Path]

    @classmethod
    def create(cls, controllers: list[str], memory_mb: int, max_procs: int) -> RunGroup:
        name = f"{PREFIX}{os.getpid()}-{next(_counter)}"
        group = cls({})
        try:
            for controller in controllers:
                base = own_base(controller)
                assert base is not None, controller
                (base / name).mkdir()
                group.dirs[controller] = base / name
            if "memory" in group.dirs:
                limit = str(memory_mb * 2**20)
                _write(group.dirs["memory"] / "memory.limit_in_bytes", limit)
                memsw = group.dirs["memory"] / "memory.memsw.limit_in_bytes"
                if memsw.exists():  # swap accounting on: cap memory + swap as well
                    _write(memsw, limit)
            if "pids" in group.dirs:
                _write(group.dirs["pids"] / "pids.max", str(max_procs))
        except OSError:
            group.remove()
            raise
        return group

    def attach(self, pid: int) -> None:
        """Move process ``pid`` (not yet running user code) into every group."""
        for path in self.dirs.values():
            _write(path / "cgroup.procs", str(pid))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.dirs.values():
            try:
                found |= {int(p) for p in (path / "cgroup.procs").read_text().split()}
            except OSError:
                continue
        return found

    def kill(self, timeout_s: float = 2.0) -> bool:
        """SIGKILL every process in the groups until none is left; True when empty."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            pids = self.pids()
            if not pids:
                return True
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass  # exited between the read and the kill
            time.sleep(0.005)
        return not self.pids()

    def oom_kills(self) -> int | None:
        """Processes the kernel's OOM killer killed in the memory group (None: not counted)."""
        for line in self._read("memory", "memory.oom_control").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":  # kernels >= 4.13
                return int(value)
        return None

    def hit_memory_limit(self) -> bool:
        """Whether usage ever reached the cap (page-cache reclaim counts too: a weak sign)."""
        return int(self._read("memory", "memory.failcnt") or 0) > 0

    def peak_memory_mb(self) -> float | None:
        text = self._read("memory", "memory.max_usage_in_bytes")
        return int(text) / 2**20 if text else None

    def cpu_s(self) -> float | None:
        text = self._read("cpuacct", "cpuacct.usage")
        return int(text) / 1e9 if text else None

    def remove(self) -> None:
        """Remove the groups; they must be empty (call :meth:`kill` first)."""
        for path in self.dirs.values():
            for _ in range(500):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.002)  # EBUSY while the last killed task is torn down

    def _read(self, controller: str, name: str) -> str:
        path = self.dirs.get(controller)
        try:
            return (path / name).read_text().strip() if path else ""
        except OSError:
            return ""


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


@dataclass
class Usage:
    """Resource figures of a finished run, read before its groups are removed."""

    cpu_s: float | None
    peak_memory_mb: float | None
    oom_kills: int = 0
    hit_memory_limit: bool = False


def usage(group: RunGroup | None, rusage: resource.struct_rusage) -> Usage:
    """CPU and peak memory of the whole run from its groups, else of the waited process tree.

    The cgroup peak includes page cache the run read in (shared libraries, data files).
    """
    cpu = group.cpu_s() if group and "cpuacct" in group.dirs else None
    peak = group.peak_memory_mb() if group and "memory" in group.dirs else None
    oom_kills = group.oom_kills() if group and "memory" in group.dirs else None
    return Usage(
        cpu_s=cpu if cpu is not None else rusage.ru_utime + rusage.ru_stime,
        peak_memory_mb=peak if peak is not None else rusage.ru_maxrss / 1024,
        oom_kills=oom_kills or 0,
        # only where the kernel does not count OOM kills: reaching the cap, then SIGKILL
        hit_memory_limit=oom_kills is None and group is not None and group.hit_memory_limit(),
    )
