"""Run one command (a Python child running generated code) isolated, limited, and return text.

Responsible for: choosing the isolation once (bubblewrap when it runs here, else a loudly
logged weaker fallback), spawning the child behind a gate so that its cgroup and rlimits are
in place before any of its code runs, enforcing the wall-clock limit from outside, capturing
capped output without blocking, killing every process of the run on every exit path
(normal end, timeout, :meth:`Sandbox.kill_all` from another thread, an exception or
KeyboardInterrupt in the caller), and classifying the end into a :class:`SandboxResult`.

Not responsible for: what the child runs, pipelines or scores, or reading the files the
child writes into ``rw_dir`` (the caller does, as ``.npy`` with ``allow_pickle=False`` or
JSON, never pickle; symlinks, FIFOs and set-id bits there are removed before ``run`` returns).

Hand-written because no maintained library does this combination for a plain process:
sandboxing libraries wrap containers or seccomp only, and ``subprocess.run(timeout=...)``
neither kills grandchildren nor stops reading a pipe a daemonized grandchild holds open.
The isolation itself is bubblewrap's; the limits are the kernel's (cgroups, rlimits).
"""

from __future__ import annotations

import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiforml.config import SandboxConfig
from aiforml.sandbox import bwrap as bw
from aiforml.sandbox import cgroup, environment, fallback, isolation, paths, seccomp
from aiforml.sandbox.capture import CappedBuffer, pump
from aiforml.sandbox.result import ExitFacts, SandboxResult, classify, exit_info
from aiforml.sandbox.zygote import (
    PID_TIMEOUT_S,
    Zygote,
    ZygoteError,
    ZygoteRun,
    python_command,
    read_result,
)

BASH = "/bin/bash"
# Outside: wait on stdin until the parent has put the process into its cgroup and set its
# rlimits, then become the next command with /dev/null as stdin.
GATE = 'read -r _ || exit 125; exec "$@" </dev/null'
# Last step before user code: write one byte on the status fd (proof that the sandbox was set
# up; the child cannot forge it, since the fd is closed before the exec), then exec.
MARK = 'printf . >&{fd} || exit 125; exec {fd}>&-; exec "$@"'
NOFILE = 4096  # open files per process
QUOTA_CHECK_S = 0.02  # without a memory cgroup: how often the run's folder is measured
MAX_FOLDER_ENTRIES = 100_000  # files and folders a run may make in its folder


@dataclass
class _Child:
    """The bookkeeping of one running child."""

    proc: subprocess.Popen[bytes] | None  # a spawned run's gate process; None for a zygote's run
    group: cgroup.RunGroup | None
    status_fd: int
    buffers: dict[int, CappedBuffer]
    killed: bool = False
    timed_out: bool = False
    reaped: tuple[int, resource.struct_rusage] | None = None
    started: bool = False
    fds: set[int] = field(default_factory=set)
    usage: cgroup.Usage | None = None
    zrun: ZygoteRun | None = None  # a run forked by the zygote
    rw_dir: Path | None = None  # watched for size where no memory cgroup counts its pages
    over_quota: str = ""  # why the run was stopped for what it wrote into rw_dir
    next_quota_check: float = 0.0


class Sandbox:
    """Runs commands isolated; one instance may run several children from several threads.

    Chosen once, at construction: ``isolation`` ("bwrap", or the fallback's description),
    ``limits`` (the protections in force, in words), ``controllers`` (cgroup v1 controllers in
    use), ``bwrap`` (the binary, or None). ``use_cgroups=False`` leaves cgroups out (tests of
    the rlimit-only path).

    ``cfg.mode == "zygote"`` (with bubblewrap): Python commands whose paths lie inside
    ``roots`` (read-write) and ``ro_roots`` (read-only) are forked from one pre-imported
    interpreter (:mod:`.zygote`), started at the first such run; any other command, or any
    run outside those folders, is spawned. ``mode`` says which applies ("zygote" or "spawn").
    """

    def __init__(self, cfg: SandboxConfig, *, use_cgroups: bool = True,
                 roots: Sequence[Path] = (), ro_roots: Sequence[Path] = ()) -> None:
        cfg.validate()
        self.cfg = cfg
        self._lock = threading.Lock()
        self._active: dict[int, _Child] = {}
        self._roots, self._ro_roots = list(roots), list(ro_roots)
        self._zygotes: dict[str, Zygote] = {}  # one per interpreter, started at its first run
        self._zygote_lock = threading.Lock()
        self._zygote_failures = 0
        self.controllers = cgroup.available() if use_cgroups else []
        cgroup.remove_stale(self.controllers)
        choice = isolation.choose(cfg, self.controllers)
        self.bwrap, self._seccomp, self._landlock = choice.bwrap, choice.seccomp, choice.landlock
        self.isolation, self.limits = choice.name, choice.describe(cfg)
        missing = choice.missing()
        if missing:
            isolation.warn_once(f"sandbox: {self.isolation}; limits: {self.limits}; MISSING: {missing}")
        self.mode = "zygote" if cfg.mode == "zygote" and self.bwrap and self._roots else "spawn"

    # --- public -----------------------------------------------------------------------
    @property
    def runs_are_sealed(self) -> bool:
        """Whether a finished run's folder is beyond every process: with bubblewrap no process
        of a run outlives it (its pid namespace) and a run can write only its own folder (its
        mount namespace). The fallback may leave a daemon (without cgroups) and, without
        Landlock, lets a later run write wherever its user may."""
        return self.bwrap is not None

    def run(
        self,
        argv: list[str],
        *,
        ro_paths: Sequence[Path],
        rw_dir: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        on_start: Callable[[int], None] | None = None,
        pass_fds: Sequence[int] = (),
    ) -> SandboxResult:
        """Run ``argv`` isolated; returns when it and every process it started are gone.

        ``pass_fds``: the caller's descriptors the child inherits under the same numbers
        (pipe ends for a protocol with the caller; the caller closes its own copies).

        Afterwards ``rw_dir`` holds only plain files and directories (see :mod:`.paths`).
        """
        start = time.monotonic()
        rw_dir, cwd = Path(rw_dir), Path(cwd or rw_dir)
        problem = paths.check(argv, ro_paths, rw_dir, cwd)
        if problem:
            return self._spawn_error(problem, start)
        zygote, command = self._zygote_for(argv, ro_paths, rw_dir)
        try:
            if zygote is not None and command is not None:
                child = self._spawn_zygote(zygote, command, ro_paths, rw_dir, cwd, env or {}, pass_fds, start)
            else:
                child = self._spawn(argv, ro_paths, rw_dir, cwd, env or {}, pass_fds)
        except (OSError, ZygoteError) as exc:
            return self._spawn_error(f"could not start the sandbox: {exc}", start)
        try:
            if on_start is not None:
                on_start(child.proc.pid if child.proc else (child.zrun.pid if child.zrun else 0) or 0)
            child.rw_dir = rw_dir if "memory" not in self.controllers else None
            self._watch(child, start + self.cfg.wall_s)
        finally:
            self._finish(child)
        return self._result(child, start, removed=paths.defuse(rw_dir))

    def kill_all(self) -> None:
        """Kill every child of this Sandbox still running; safe from any thread."""
        with self._lock:
            for child in self._active.values():
                child.killed = True
                _kill(child)

    def close(self) -> None:
        """Kill every child and end the zygote (a later run starts a new one)."""
        self.kill_all()
        with self._zygote_lock:
            for zygote in self._zygotes.values():
                zygote.close()
            self._zygotes.clear()

    @property
    def zygote_info(self) -> dict:
        """The start-up report of the zygote of this interpreter (import time, failed imports, pid), or {}."""
        zygote = self._zygotes.get(os.path.realpath(sys.executable))
        return {**zygote.info, "pid": zygote.proc.pid} if zygote is not None else {}

    # --- zygote -----------------------------------------------------------------------
    def _zygote_for(self, argv: list[str], ro_paths: Sequence[Path],
                    rw_dir: Path) -> tuple[Zygote | None, list[str] | None]:
        """The zygote that runs ``argv`` (started if need be) and its command, else (None, None)."""
        command = python_command(argv)
        if self.mode != "zygote" or command is None:
            return None, None
        key = os.path.realpath(argv[0])
        with self._zygote_lock:
            zygote = self._zygotes.get(key)
            if zygote is not None and not zygote.alive:
                zygote.close()
                del self._zygotes[key]
                zygote = None
            if zygote is None and self._zygote_failures < 2:
                try:
                    zygote = self._zygotes[key] = Zygote(
                        self.bwrap, rw_roots=self._roots, ro_roots=self._ro_roots, preload=self.cfg.preload,
                        threads=self.cfg.threads, tmpfs_mb=self.cfg.memory_mb, seccomp_program=self._seccomp,
                        executable=argv[0],
                    )  # fmt: skip
                except (OSError, ZygoteError) as exc:
                    self._zygote_failures += 1
                    isolation.warn_once(f"sandbox: the zygote did not start, spawning each run instead: {exc}")
                    return None, None
        if zygote is None or not zygote.covers(ro_paths, rw_dir):
            return None, None
        return zygote, command

    def _spawn_zygote(self, zygote: Zygote, command: list[str], ro_paths: Sequence[Path], rw_dir: Path,
                      cwd: Path, env: dict[str, str], pass_fds: Sequence[int], start: float) -> _Child:
        """Fork one run from the zygote, put it in its cgroup, release it."""
        status_r, status_w = os.pipe()
        os.set_blocking(status_r, False)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        child_env = environment.minimal(zygote.executable, home="/tmp", threads=self.cfg.threads) | env
        group = None
        try:
            group = self._make_group(extra_procs=0)
            # RLIMIT_NPROC counts per user namespace: the run's own one holds only the run.
            nproc = [(resource.RLIMIT_NPROC, (self.cfg.max_procs, self.cfg.max_procs))]
            zrun = zygote.spawn(command, ro_paths=ro_paths, rw_dir=rw_dir, cwd=cwd, env=child_env,
                                rlimits=self._rlimits(False) + nproc, pass_fds=pass_fds, status_w=status_w,
                                stdout_w=out_w, stderr_w=err_w)
        except BaseException:
            for fd in (status_r, out_r, err_r):
                os.close(fd)
            if group is not None:
                group.remove()
            raise
        finally:
            for fd in (status_w, out_w, err_w):
                os.close(fd)
        buffers = {fd: CappedBuffer(self.cfg.output_bytes) for fd in (out_r, err_r)}
        for fd in buffers:
            os.set_blocking(fd, False)
        child = _Child(None, group, status_r, buffers, fds=set(buffers), zrun=zrun)
        with self._lock:
            self._active[id(child)] = child
        try:
            timeout = max(0.0, min(PID_TIMEOUT_S, start + self.cfg.wall_s - time.monotonic()))
            pid = zygote.wait_pid(zrun, timeout)
            if pid is not None and not child.killed:  # else no mark: the result says how it ended
                if group is not None:
                    group.attach(pid)
                os.write(zrun.gate, b"go\n")
        except BaseException:
            self._finish(child)
            raise
        return child

    # --- one run ----------------------------------------------------------------------
    def _spawn(
        self, argv: list[str], ro_paths: Sequence[Path], rw_dir: Path, cwd: Path, env: dict[str, str],
        pass_fds: Sequence[int] = (),
    ) -> _Child:
        confine = [] if self.bwrap else fallback.prefix(argv[0])
        as_nobody = fallback.runs_as_nobody(confine)
        if as_nobody:
            fallback.hand_over(rw_dir)
        status_r, status_w = os.pipe()
        os.set_blocking(status_r, False)
        mark = [BASH, "-c", MARK.format(fd=status_w), "bash", *argv]
        if self.bwrap:  # RLIMIT_NPROC counts per user namespace: bwrap's holds only this run
            mark[2] = f"ulimit -u {self.cfg.max_procs} || exit 125; {mark[2]}"
        # without bwrap the host's /tmp is shared: HOME and TMPDIR go to rw_dir instead
        home = "/tmp" if self.bwrap else str(rw_dir)
        child_env = environment.minimal(argv[0], home=home, threads=self.cfg.threads) | env
        fds = [status_w]
        if self.bwrap:
            if self._seccomp is not None:
                fds.append(seccomp.filter_fd(self._seccomp))
            command = bw.build_argv(
                self.bwrap, mark, ro_paths=ro_paths, rw_dir=rw_dir, cwd=cwd, env=child_env,
                tmpfs_mb=self.cfg.memory_mb, seccomp_fd=fds[1] if len(fds) > 1 else None, interpreter=argv[0],
            )  # fmt: skip
            popen_env, popen_cwd = dict(bw.LAUNCHER_ENV), "/"
        else:
            if self._landlock:
                if self._seccomp is not None:
                    fds.append(seccomp.filter_fd(self._seccomp))
                mark = fallback.confine_command(
                    argv, mark, ro_paths=ro_paths, rw_dir=rw_dir,
                    seccomp_fd=fds[1] if len(fds) > 1 else None,
                )  # fmt: skip
            command, popen_env, popen_cwd = [*confine, *mark], child_env, str(cwd)
        group = None
        try:
            group = self._make_group()
            proc = subprocess.Popen(
                [BASH, "-c", GATE, "bash", *command],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=[*fds, *pass_fds], start_new_session=True, env=popen_env, cwd=popen_cwd,
            )  # fmt: skip
        except OSError:
            os.close(status_r)
            if group is not None:
                group.remove()
            raise
        finally:
            for fd in fds:
                os.close(fd)
        return self._release(proc, group, status_r, self._rlimits(as_nobody))

    def _make_group(self, extra_procs: int = 2) -> cgroup.RunGroup | None:
        """A run's cgroup; ``extra_procs``: processes of the sandbox itself in it (bwrap's monitor
        and init when spawned; none for a zygote's run, whose own process is the first)."""
        if not self.controllers:
            return None
        return cgroup.RunGroup.create(self.controllers, self.cfg.memory_mb, self.cfg.max_procs + extra_procs)

    def _release(
        self,
        proc: subprocess.Popen[bytes],
        group: cgroup.RunGroup | None,
        status_r: int,
        rlimits: list[tuple[int, tuple[int, int]]],
    ) -> _Child:
        """Apply cgroup and rlimits to the gated process, register it, and let it go."""
        assert proc.stdin and proc.stdout and proc.stderr
        buffers = {s.fileno(): CappedBuffer(self.cfg.output_bytes) for s in (proc.stdout, proc.stderr)}
        child = _Child(proc, group, status_r, buffers, fds=set(buffers))
        for fd in buffers:
            os.set_blocking(fd, False)
        with self._lock:
            self._active[id(child)] = child
        try:
            if group is not None:
                group.attach(proc.pid)
            for limit, value in rlimits:
                resource.prlimit(proc.pid, limit, value)
            proc.stdin.write(b"go\n")
            proc.stdin.close()
        except BaseException:
            self._finish(child)
            raise
        return child

    def _rlimits(self, as_nobody: bool) -> list[tuple[int, tuple[int, int]]]:
        cpu, fsize = self.cfg.cpu_s, self.cfg.file_mb * 2**20
        limits = [
            (resource.RLIMIT_CPU, (cpu, cpu + 1)),  # +1: SIGXCPU can be caught, SIGKILL cannot
            (resource.RLIMIT_FSIZE, (fsize, fsize)),  # a child cannot fill the disk with one file
            (resource.RLIMIT_NOFILE, (NOFILE, NOFILE)),
            (resource.RLIMIT_CORE, (0, 0)),
        ]
        if "memory" not in self.controllers:
            cap = self.cfg.memory_mb * 2**20
            limits.append((resource.RLIMIT_DATA, (cap, cap)))
        if as_nobody and "pids" not in self.controllers:  # counts every process of uid 65534
            limits.append((resource.RLIMIT_NPROC, (self.cfg.max_procs, self.cfg.max_procs)))
        return limits

    def _watch(self, child: _Child, deadline: float) -> None:
        """Read output until the child exits, is killed, or the deadline passes."""

        def stop() -> bool:
            return child.killed or _exited(child) or self._over_quota(child)

        child.fds = pump({fd: child.buffers[fd] for fd in child.fds}, deadline=deadline, stop=stop)
        if child.zrun is not None and not child.killed:  # its report follows the pipes' EOF at once
            select.select([child.zrun.result], [], [], max(0.0, deadline - time.monotonic()))
        while not stop() and time.monotonic() < deadline:
            time.sleep(0.02)  # both pipes closed but the child still runs
        child.timed_out = not stop()

    def _over_quota(self, child: _Child) -> bool:
        """Without a memory cgroup: stop a run whose folder outgrew its memory cap (checked often)."""
        now = time.monotonic()
        if child.rw_dir is None or now < child.next_quota_check:
            return False
        child.next_quota_check = now + QUOTA_CHECK_S
        why = paths.over_quota(child.rw_dir, self.cfg.memory_mb * 2**20, MAX_FOLDER_ENTRIES)
        if why:
            child.over_quota = why
            _kill(child)
        return bool(why)

    def _finish(self, child: _Child) -> None:
        """Kill every process of the run, reap, drain the pipes, release everything."""
        with self._lock:
            self._active.pop(id(child), None)
        try:
            _kill(child)
            if child.reaped is None:
                child.reaped = _reap(child) if child.proc else self._reap_zygote_run(child)
            if child.group is not None:
                child.group.kill()
            child.fds = pump({fd: child.buffers[fd] for fd in child.fds}, deadline=time.monotonic() + 0.5)
            child.started = _read_marker(child.status_fd)
            child.usage = cgroup.usage(child.group, child.reaped[1])
        finally:
            if child.group is not None:
                child.group.remove()
            if child.proc is not None:
                for stream in (child.proc.stdout, child.proc.stderr, child.proc.stdin):
                    if stream is not None:
                        stream.close()
            else:
                for fd in child.buffers:
                    os.close(fd)
            if child.zrun is not None:
                child.zrun.close()
            os.close(child.status_fd)

    def _reap_zygote_run(self, child: _Child) -> tuple[int, resource.struct_rusage]:
        """The zygote's report on a (killed) run; a zygote that cannot tell is ended."""
        assert child.zrun is not None
        report = read_result(child.zrun.result, timeout_s=10.0)
        if report is None:  # the intermediate is gone or stuck: end the zygotes and all in them
            with self._zygote_lock:
                for zygote in self._zygotes.values():
                    zygote.close()
                self._zygotes.clear()
            return 255 << 8, resource.struct_rusage((0,) * 16)
        child.zrun.wait_helper(timeout_s=2.0)  # gone too, as every process of a spawned run is
        status, fields = report
        return status, resource.struct_rusage(tuple(fields[:16]) + (0,) * (16 - len(fields[:16])))

    def _result(self, child: _Child, start: float, removed: list[str]) -> SandboxResult:
        assert child.reaped is not None and child.usage is not None
        stdout, stderr = (buffer.text() for buffer in child.buffers.values())
        facts = ExitFacts(
            waitstatus=child.reaped[0], started=child.started, killed=child.killed,
            timed_out=child.timed_out, exit_is_shell_coded=self.bwrap is not None and child.zrun is None,
            oom_kills=child.usage.oom_kills, hit_memory_limit=child.usage.hit_memory_limit,
            cpu_s=child.usage.cpu_s, stderr_tail=stderr[-4000:],
        )  # fmt: skip
        cfg = self.cfg
        outcome, message = classify(facts, wall_s=cfg.wall_s, cpu_limit_s=cfg.cpu_s, memory_mb=cfg.memory_mb)
        code, sig = exit_info(facts)
        if child.over_quota and not child.killed:
            outcome, message = "memory", f"memory cap of {cfg.memory_mb} MB reached: {child.over_quota}"
        if removed:
            message += f"; removed from rw_dir (not plain files): {', '.join(removed[:5])}"
        return SandboxResult(
            outcome=outcome, exit_code=code, signal=sig, stdout=stdout, stderr=stderr,
            wall_s=time.monotonic() - start, cpu_s=child.usage.cpu_s,
            peak_memory_mb=child.usage.peak_memory_mb, isolation=self.isolation, message=message,
        )  # fmt: skip

    def _spawn_error(self, message: str, start: float) -> SandboxResult:
        return SandboxResult(
            outcome="spawn_error", exit_code=None, signal=None, stdout="", stderr="",
            wall_s=time.monotonic() - start, cpu_s=None, peak_memory_mb=None,
            isolation=self.isolation, message=message,
        )  # fmt: skip


def _kill(child: _Child) -> None:
    """SIGKILL the run's session (and with it bwrap's pid namespace) and its cgroup.

    A zygote's run is pid 1 of its own pid namespace: killing it ends every process in it.
    Its pidfd names it even after it exited (no pid reused by another process is hit).
    """
    if child.zrun is not None:
        if child.zrun.pidfd is not None and child.zrun.pidfd not in child.zrun.closed:
            try:
                signal.pidfd_send_signal(child.zrun.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass  # already gone
    elif child.reaped is None:  # the unreaped leader pins the process group id
        try:
            os.killpg(child.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the whole group is already gone
    if child.group is not None:
        child.group.kill(timeout_s=0.5)


def _reap(child: _Child) -> tuple[int, resource.struct_rusage]:
    """Wait for the (killed) leader; its status and the rusage of its waited tree."""
    proc = child.proc
    assert proc is not None
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:  # reaped elsewhere (a SIGCHLD handler waiting on any child)
        status, usage = 255 << 8, resource.struct_rusage((0,) * 16)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return status, usage


def _exited(child: _Child) -> bool:
    """Whether the run ended: its leader exited, or the zygote's intermediate reported (or died)."""
    if child.zrun is not None:
        return bool(select.select([child.zrun.result], [], [], 0)[0])
    assert child.proc is not None
    return _has_exited(child.proc.pid)


def _has_exited(pid: int) -> bool:
    """Whether ``pid`` has exited, without reaping it (its id keeps pinning its group)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped elsewhere
        return True


def _read_marker(fd: int) -> bool:
    try:
        return bool(os.read(fd, 16))
    except BlockingIOError:
        return False
