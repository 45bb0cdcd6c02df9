"""The zygote: one pre-imported Python inside bubblewrap that forks one sandboxed child per run.

Run by :mod:`aiforml.sandbox.zygote` as ``python -I zygote_main.py FD`` inside a bubblewrap
sandbox (every namespace unshared, uid 65534, read-only system, no job data of its own). It
imports the heavy libraries once, then waits on the control socket ``FD``; each request (a
JSON object and the run's descriptors) becomes one child, set up exactly as a spawned run:

1. an intermediate child makes new user, mount, pid, ipc, net, uts and cgroup namespaces,
   forks the run's process (pid 1 of its own pid namespace), waits for it and reports its
   wait status and resource usage on the run's result pipe; it never runs generated code;
2. the run's process mounts its own ``/proc``, a fresh ``/tmp`` and ``/dev/shm``, a tmpfs
   over every folder the zygote sees (so sibling job folders vanish), and binds back only
   its own folder (read-write) and read paths (read-only); sets its rlimits; says who it is
   on the run's pid socket (the kernel stamps its host pid) and waits for the parent's "go"
   (its cgroup is in place); then takes stdout, stderr and the passed pipes, closes every
   other descriptor, drops every capability, loads the seccomp filter, writes the start
   mark and runs the command (``-c CODE`` or a script) in this already-importing interpreter.

The zygote never runs generated code and never opens a run's data. Only the standard
library: nothing of the project is visible in here. Written by hand: no library forks
sandboxed children from a pre-imported interpreter (the Linux system calls are ctypes').
"""

from __future__ import annotations

import builtins
import ctypes
import importlib
import json
import os
import resource
import runpy
import signal
import socket
import sys
import threading
import time
import traceback

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x02000000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
# statvfs f_flag bits -> mount flags: a read-only remount must keep the flags the kernel locked
ST_TO_MS = {1: MS_RDONLY, 2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: MS_NOATIME,
            2048: MS_NODIRATIME, 4096: MS_RELATIME}
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 24, 22, 2
PR_SET_PDEATHSIG = 1
SETUP_FAILED = 125  # the exit code of a child whose set-up failed (no mark written: spawn_error)
O_PATH = getattr(os, "O_PATH", 0o10000000)

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(text: str | None) -> bytes | None:
        return text.encode() if text is not None else None

    check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


# --- the zygote ------------------------------------------------------------------------
def main(ctl_fd: int) -> int:
    ctl = socket.socket(fileno=ctl_fd)
    start = json.loads(ctl.recv(1 << 20))
    started = time.perf_counter()
    failed = []
    for name in start["preload"]:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a missing optional library is reported, not fatal
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    setup = {"hide": start["hide"], "seccomp": bytes.fromhex(start["seccomp"]) if start["seccomp"] else b""}
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # intermediate children are reaped by the kernel
    sys.stdout.flush()
    sys.stderr.flush()
    ctl.send(json.dumps({"ready": True, "preload_s": time.perf_counter() - started, "failed": failed,
                         "threads": _thread_names()}).encode())
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(ctl, 1 << 20, 256)
        except ConnectionResetError:
            return 0
        if not message:  # the parent is gone: so is every run (our pid namespace ends with us)
            return 0
        try:
            request = json.loads(message)
        except ValueError:
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            ctl.close()
            intermediate(request, fds, setup)  # never returns
        for fd in fds:
            os.close(fd)


# --- one run ---------------------------------------------------------------------------
def intermediate(request: dict, fds: list[int], setup: dict) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    result_w, stderr_w = fds[4], fds[1]
    try:
        os.write(fds[5], b"c")  # the parent learns this process's pid too: it waits for its end
        uid, gid = os.geteuid(), os.getegid()
        check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET
                           | CLONE_NEWUTS | CLONE_NEWCGROUP), "unshare")
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
        pid = os.fork()
    except BaseException as exc:  # noqa: BLE001 - reported as a failed set-up
        _fail(stderr_w, f"zygote child: {exc}")
        os._exit(SETUP_FAILED)
    if pid == 0:
        try:
            child(request, fds, setup)
        except BaseException as exc:  # noqa: BLE001 - nothing of a failed set-up may run on
            _fail(stderr_w, f"zygote child set-up: {exc}") or _fail(2, f"zygote child set-up: {exc}")
        os._exit(SETUP_FAILED)
    for fd in fds:
        if fd != result_w:
            os.close(fd)
    _, status, usage = os.wait4(pid, 0)
    os.write(result_w, json.dumps({"status": status, "rusage": list(usage)}).encode())
    os._exit(0)


def child(request: dict, fds: list[int], setup: dict) -> None:
    stdout_w, stderr_w, status_w, gate_r, result_w, pid_sock, *passed = fds
    os.close(result_w)
    prctl = libc.prctl
    check(prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    make_mounts(request, setup["hide"])
    for resource_id, soft, hard in request["rlimits"]:
        resource.setrlimit(resource_id, (soft, hard))
    # The kernel stamps this message with our pid as the parent sees it (SO_PASSCRED there).
    os.write(pid_sock, b"p")
    if os.read(gate_r, 16) != b"go\n":
        raise RuntimeError("the parent did not release the run")
    os.close(pid_sock)
    os.close(gate_r)
    devnull = os.open("/dev/null", os.O_RDONLY)
    status_w = os.dup(status_w) if status_w in request["fd_targets"] or status_w < 3 else status_w
    keep = take_descriptors([devnull, stdout_w, stderr_w, *passed], [0, 1, 2, *request["fd_targets"]],
                            status_w)
    _close_others(keep | {status_w})
    os.environ.clear()
    os.environ.update(request["env"])
    reseed()
    os.chdir(request["cwd"])
    drop_privileges(setup["seccomp"])
    os.write(status_w, b".")
    os.close(status_w)
    os._exit(run_command(request["command"]))


def make_mounts(request: dict, hide: list[str]) -> None:
    """Own /proc, /tmp and /dev/shm; siblings hidden; own folder and read paths bound back."""
    binds = [(path, True) for path in request["ro_paths"]] + [(request["rw_dir"], False)]
    opened = [(os.open(path, O_PATH | os.O_CLOEXEC), path, ro) for path, ro in binds]
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Read-only: the run's uid may map to the host's root, which the sysctl files trust by uid.
    mount("proc", "/proc", "proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    size = f"size={request['tmpfs_mb'] * 2**20}"
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"{size},mode=1777")
    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"{size},mode=1777")
    for folder in hide:
        if not (_under(folder, "/tmp") or _under(folder, "/dev/shm")) and os.path.isdir(folder):
            mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, "size=1048576,mode=0755")
    # Parents before children, so a bind nested in another stays visible; rw wins over ro.
    for fd, path, ro in sorted(opened, key=lambda b: (b[1].rstrip("/").count("/"), not b[2])):
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if not os.path.exists(path):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
        mount(f"/proc/self/fd/{fd}", path, None, MS_BIND)
        if ro:
            flags = os.statvfs(path).f_flag
            locked = sum(ms for st, ms in ST_TO_MS.items() if flags & st)
            mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | locked)
        os.close(fd)
    for folder in hide:  # nothing may be written into the hiding tmpfs itself
        if not (_under(folder, "/tmp") or _under(folder, "/dev/shm")) and os.path.isdir(folder):
            mount(None, folder, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def take_descriptors(sources: list[int], targets: list[int], avoid: int) -> set[int]:
    """dup2 each source onto its target number (through fresh numbers: targets may collide)."""
    floor = max([*targets, *sources, avoid]) + 1
    moved = [os.dup2(fd, floor + i, inheritable=True) for i, fd in enumerate(sources)]
    for fd in sources:
        os.close(fd)
    for fd, target in zip(moved, targets, strict=True):
        os.dup2(fd, target, inheritable=True)
        os.close(fd)
    return set(targets)


def _close_others(keep: set[int]) -> None:
    for entry in os.listdir("/proc/self/fd"):
        fd = int(entry)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own descriptor, already closed


def drop_privileges(seccomp_program: bytes) -> None:
    """No capability left (bounding set too), no new privileges, the seccomp filter loaded."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")
    header, data = CapHeader(0x20080522, 0), (CapData * 2)()
    check(libc.capset(ctypes.byref(header), data), "capset")
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    if seccomp_program:
        count = len(seccomp_program) // ctypes.sizeof(SockFilter)
        program = (SockFilter * count).from_buffer_copy(seccomp_program)
        fprog = SockFprog(count, ctypes.cast(program, ctypes.POINTER(SockFilter)))
        check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")


def reseed() -> None:
    """Fresh entropy for NumPy's global generator, as a new interpreter has (``random`` reseeds
    itself after a fork; NumPy's legacy global state would otherwise be the zygote's in every run)."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


def run_command(command: list[str]) -> int:
    """Run ``-c CODE ARGS`` or ``SCRIPT ARGS`` as ``python -I`` would; the exit code."""
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - /dev/null, as a spawned child has
    try:
        if command[0] == "-c":
            sys.argv = ["-c", *command[2:]]
            code = compile(command[1], "<string>", "exec")
            exec(code, {"__name__": "__main__", "__builtins__": builtins})  # noqa: S102
        else:
            sys.argv = list(command)
            runpy.run_path(command[0], run_name="__main__")
        status = 0
    except SystemExit as exc:
        status = _exit_status(exc.code)
    except BaseException:  # noqa: BLE001 - as the interpreter does: traceback, exit 1
        traceback.print_exc()
        status = 1
    try:  # as the interpreter's shutdown: wait for the threads the command left running
        threading._shutdown()  # type: ignore[attr-defined]
    except BaseException:  # noqa: BLE001 - an interrupted join ends the run as it stands
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - a closed or broken stream loses only its tail
            pass
    return status


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _fail(fd: int, message: str) -> bool:
    """Write ``message`` on ``fd``; whether it was written."""
    try:
        os.write(fd, (message + "\n").encode(errors="replace"))
    except OSError:
        return False
    return True


def _thread_names() -> list[str]:
    """The comm of every thread of this process (a zygote should have one: forks copy only it)."""
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return names


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
