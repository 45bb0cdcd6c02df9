"""The parent's side of the zygote: start it, hand it one run, learn the run's pid, end it.

Responsible for: starting :mod:`.zygote_main` under bubblewrap (``bwrap.build_argv(zygote=True)``)
with the folders it may show its children (``rw_roots`` read-write, ``ro_roots`` read-only;
nothing else of the host), waiting until it has imported ``preload``, turning a command
(``python [-I] -c CODE ...`` or ``python [-I] SCRIPT ...``) into a request, sending it with
the run's descriptors, and reading back the run's host pid (stamped by the kernel on a
``SO_PASSCRED`` socket, so the child cannot lie about it) and, at the end, its wait status
and resource usage. Ending the zygote: closing its control socket (it exits, and with it
its pid namespace and every run in it).

Not responsible for: the wall clock, cgroups, killing a run or reading its output (the
:class:`~aiforml.sandbox.Sandbox` does, as for a spawned run). Written by hand, as
:mod:`.zygote_main`.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiforml.sandbox import bwrap as bw
from aiforml.sandbox import environment

ZYGOTE_MAIN = Path(__file__).with_name("zygote_main.py")
START_TIMEOUT_S = 120.0  # imports of a loaded laptop
PID_TIMEOUT_S = 30.0  # from request to the run's pid (set-up only: mounts, no imports)
UCRED = struct.Struct("iII")  # pid, uid, gid


class ZygoteError(RuntimeError):
    """The zygote could not be started or stopped answering."""


@dataclass
class ZygoteRun:
    """One run forked by the zygote: the parent's ends of its control descriptors (its output
    pipes and start mark are the Sandbox's, as for a spawned run)."""

    gate: int  # "go\n" releases the run (its cgroup is in place)
    result: int  # the intermediate's report: wait status and rusage (JSON), then EOF
    pid_sock: socket.socket
    pid: int | None = None  # the run's host pid, once it said who it is
    pidfd: int | None = None
    helper_pidfd: int | None = None  # the intermediate that waits for the run and reports
    closed: set[int] = field(default_factory=set)

    def wait_helper(self, timeout_s: float) -> None:
        """Return once the intermediate has exited (it reports, then exits at once)."""
        if self.helper_pidfd is not None and self.helper_pidfd not in self.closed:
            select.select([self.helper_pidfd], [], [], timeout_s)

    def close(self) -> None:
        for fd in (self.gate, self.result, self.pidfd, self.helper_pidfd):
            if fd is not None and fd not in self.closed:
                self.closed.add(fd)
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.pid_sock.close()


def python_command(argv: Sequence[str]) -> list[str] | None:
    """The zygote's form of ``argv`` (``["-c", CODE, *args]`` or ``[SCRIPT, *args]``), or None.

    Only a Python interpreter given by its absolute path qualifies (a zygote of that
    interpreter runs it), with at most ``-I`` (the zygote's own mode) before the code or script.
    """
    if not argv or not os.path.isabs(argv[0]) or not os.path.basename(argv[0]).startswith("python"):
        return None
    rest = list(argv[1:])
    while rest and rest[0] == "-I":
        rest = rest[1:]
    if len(rest) >= 2 and rest[0] == "-c":
        return rest
    if rest and not rest[0].startswith("-") and os.path.isabs(rest[0]):
        return rest
    return None


class Zygote:
    """One zygote process. ``spawn`` is safe from several threads."""

    def __init__(self, bwrap: str, *, rw_roots: Sequence[Path], ro_roots: Sequence[Path],
                 preload: Sequence[str], threads: int, tmpfs_mb: int, seccomp_program: bytes | None,
                 executable: str = sys.executable) -> None:
        self.executable = executable
        self.rw_roots = [Path(os.path.realpath(p)) for p in rw_roots]
        self.ro_roots = [Path(os.path.realpath(p)) for p in ro_roots]
        self._lock = threading.Lock()
        self.info: dict = {}
        for root in self.rw_roots:
            root.mkdir(parents=True, exist_ok=True)
        ctl, inner = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._log = tempfile.TemporaryFile()
        env = environment.minimal(executable, home="/tmp", threads=threads)
        argv = bw.build_argv(
            bwrap, [executable, "-I", str(ZYGOTE_MAIN), str(inner.fileno())],
            ro_paths=[ZYGOTE_MAIN, *self.ro_roots], rw_dir=self.rw_roots[0], extra_rw=self.rw_roots[1:],
            cwd=Path("/"), env=env, tmpfs_mb=64, zygote=True,
        )  # fmt: skip
        try:
            self.proc = subprocess.Popen(argv, pass_fds=[inner.fileno()], stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=self._log, start_new_session=True,
                                         env=dict(bw.LAUNCHER_ENV), cwd="/")
        finally:
            inner.close()
        self._ctl = ctl
        hide = [str(p) for p in [*self.rw_roots, *self.ro_roots] if p.is_dir()]
        try:
            ctl.send(json.dumps({"preload": list(preload), "hide": hide,
                                 "seccomp": seccomp_program.hex() if seccomp_program else ""}).encode())
            ready, _, _ = select.select([ctl], [], [], START_TIMEOUT_S)
            reply = ctl.recv(1 << 16) if ready else b""
            self.info = json.loads(reply) if reply else {}
        except (OSError, ValueError) as exc:
            self.close()
            raise ZygoteError(f"the zygote did not start: {exc}; {self._output()}") from exc
        if not self.info.get("ready"):
            self.close()
            raise ZygoteError(f"the zygote did not start: {self._output()}")
        self.tmpfs_mb = tmpfs_mb
        # A run gets a fresh /tmp and /dev/shm: an interpreter (a venv) living there is bound back
        # at the path Python knows it by (a link's own path, not its target), or lazy imports fail.
        self._interpreter_in_tmp = [str(p) for p in bw.interpreter_paths(executable)
                                    if bw.under(p, ("/tmp", "/dev/shm"))]

    def covers(self, ro_paths: Sequence[Path], rw_dir: Path) -> bool:
        """Whether every path of a run is inside the folders this zygote sees."""
        rw_ok = _inside(Path(os.path.realpath(rw_dir)), self.rw_roots)
        return rw_ok and all(_inside(Path(os.path.realpath(p)), [*self.rw_roots, *self.ro_roots])
                             for p in ro_paths)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def spawn(self, command: list[str], *, ro_paths: Sequence[Path], rw_dir: Path, cwd: Path,
              env: dict[str, str], rlimits: list[tuple[int, tuple[int, int]]],
              pass_fds: Sequence[int], status_w: int, stdout_w: int, stderr_w: int) -> ZygoteRun:
        """Hand one run to the zygote; the caller closes its copies of the write ends it gave."""
        gate_r, gate_w = os.pipe()
        result_r, result_w = os.pipe()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        request = {
            "command": command, "env": env, "cwd": str(cwd), "rw_dir": os.path.realpath(rw_dir),
            "ro_paths": [os.path.realpath(p) for p in ro_paths] + self._interpreter_in_tmp,
            "tmpfs_mb": self.tmpfs_mb,
            "rlimits": [[limit, soft, hard] for limit, (soft, hard) in rlimits],
            "fd_targets": list(pass_fds),
        }  # fmt: skip
        run = ZygoteRun(gate=gate_w, result=result_r, pid_sock=mine)
        try:
            with self._lock:
                socket.send_fds(self._ctl, [json.dumps(request).encode()],
                                [stdout_w, stderr_w, status_w, gate_r, result_w, theirs.fileno(), *pass_fds])
        except OSError as exc:
            run.close()
            raise ZygoteError(f"the zygote stopped answering: {exc}") from exc
        finally:
            os.close(gate_r)
            os.close(result_w)
            theirs.close()
        return run

    def wait_pid(self, run: ZygoteRun, timeout_s: float = PID_TIMEOUT_S) -> int | None:
        """The run's host pid once its set-up is done (None: it failed before, or timed out)."""
        end = time.monotonic() + timeout_s
        while True:  # the intermediate says "c", then the run "p"
            ready, _, _ = select.select([run.pid_sock, run.result], [], [], max(0.0, end - time.monotonic()))
            if run.pid_sock not in ready:  # the set-up failed (the intermediate reported) or hung
                return None
            who, pid = _sender(run.pid_sock)
            if pid is None:
                continue
            if who == b"c" and run.helper_pidfd is None:
                run.helper_pidfd = _pidfd(pid)
            elif who == b"p":
                run.pid, run.pidfd = pid, _pidfd(pid)
                return pid if run.pidfd is not None else None

    def close(self) -> None:
        """End the zygote (and so every run still in its pid namespace)."""
        try:
            self._ctl.close()
        except AttributeError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        except AttributeError:
            pass
        self._log.close()

    def _output(self) -> str:
        try:
            self._log.seek(0)
            return self._log.read()[-2000:].decode(errors="replace").strip() or "no output"
        except (OSError, ValueError):
            return "no output"


def _sender(sock: socket.socket) -> tuple[bytes, int | None]:
    """One message and the host pid the kernel stamped on it (SO_PASSCRED), else None."""
    message, ancillary, _, _ = sock.recvmsg(1, socket.CMSG_SPACE(UCRED.size))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= UCRED.size:
            pid = UCRED.unpack(data[: UCRED.size])[0]
            return message, pid if pid > 0 else None
    return message, None


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:  # already gone
        return None


def read_result(fd: int, timeout_s: float) -> tuple[int, tuple] | None:
    """The intermediate's report (wait status, rusage fields), or None without one in time."""
    end = time.monotonic() + timeout_s
    chunks = []
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    try:
        report = json.loads(b"".join(chunks))
        return int(report["status"]), tuple(report["rusage"])
    except (ValueError, KeyError, TypeError):
        return None


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)
