"""The weaker confinement used when bubblewrap cannot run (e.g. in a container without user
namespaces): what ``setpriv`` (util-linux) and Landlock can still take away from the child.

Responsible for: the command prefix of a fallback child. ``setpriv``: every capability
dropped (bounding and inheritable sets), ``no_new_privs``, SIGKILL when this process dies,
and, when this process is root and the interpreter can run as ``nobody``, uid/gid 65534 with
no supplementary groups (then ``rw_dir`` is handed to that uid; file permissions hide root's
files, RLIMIT_NPROC applies). Then :mod:`.confine`, where the kernel has Landlock: file
access only beneath the interpreter, system and caller paths (read) and ``rw_dir`` (write),
no TCP, no abstract unix sockets or signals outside, and the seccomp filter.

Not responsible for: namespaces (none here: /proc and the process list stay shared, which
the caller is told loudly), limits (cgroups, rlimits) or spawning. Under Landlock the host's
/dev/shm stays closed (other processes' shared memory lives there), so multiprocessing's
semaphores, and with them ``n_jobs > 1`` in scikit-learn, fail in this fallback. Hand-written because it
is a command line around util-linux's ``setpriv`` and the small :mod:`.confine` launcher.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from aiforml.sandbox import bwrap as bw
from aiforml.sandbox import seccomp

NOBODY = 65534
CONFINE = ("--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--pdeathsig", "KILL")
SELF_REPORT = "import sys; print(sys.version, sys.prefix, sys.base_prefix, sys.path)"
AS_NOBODY = (f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
CONFINE_SCRIPT = str(Path(__file__).with_name("confine.py"))
# readable by every fallback child besides the interpreter and the caller's paths
READABLE = ("/proc", "/sys", "/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/full")
WRITABLE = ("/dev/null",)


def setpriv() -> str | None:
    return shutil.which("setpriv", path="/usr/bin:/bin")


@functools.lru_cache(maxsize=16)
def nobody_can_run(interpreter: str) -> bool:
    """Whether ``interpreter`` works as uid 65534 exactly as it does for us.

    Not only ``-c pass``: an interpreter that cannot read its own installation (a pyenv
    build under a private /root) still starts, on some other Python's standard library.
    """
    tool = setpriv()
    if tool is None or os.geteuid() != 0 or not os.path.basename(interpreter).startswith("python"):
        return False
    # the same chain as a run: setpriv, then bash, then the interpreter
    command = ["/bin/bash", "-c", 'exec "$@"', "bash", interpreter, "-I", "-c", SELF_REPORT]
    reports = []
    for prefix in ([], [tool, *AS_NOBODY, *CONFINE, "--"]):
        try:
            done = subprocess.run(
                [*prefix, *command], capture_output=True, timeout=30, cwd="/",
                env={"PATH": "/usr/bin:/bin"},
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return False
        reports.append((done.returncode, done.stdout))
    return reports[0][0] == 0 and reports[0] == reports[1]


def prefix(interpreter: str) -> list[str]:
    """The ``setpriv ... --`` words to put before the child's command (empty without setpriv)."""
    tool = setpriv()
    if tool is None:
        return []
    identity = AS_NOBODY if nobody_can_run(interpreter) else ()
    return [tool, *identity, *CONFINE, "--"]


def runs_as_nobody(command_prefix: list[str]) -> bool:
    return AS_NOBODY[0] in command_prefix


def hand_over(rw_dir: Path) -> None:
    """Give ``rw_dir`` and everything in it to uid 65534, so that the child can write there."""
    os.lchown(rw_dir, NOBODY, NOBODY)
    for root, dirs, files in os.walk(rw_dir):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), NOBODY, NOBODY)


def launcher(executable: str) -> str:
    """The interpreter that runs :mod:`.confine`: the child's own when it is a Python."""
    return executable if os.path.basename(executable).startswith("python") else sys.executable


def confine_command(
    argv: Sequence[str],
    command: Sequence[str],
    *,
    ro_paths: Sequence[Path],
    rw_dir: Path,
    seccomp_fd: int | None,
) -> list[str]:
    """``python -I -S confine.py SPEC -- command``: Landlock and seccomp, then exec ``command``.

    ``argv`` is the user command that ``command`` (the sandbox's wrapper) ends in: its
    interpreter runs the launcher and its installation is readable.
    """
    read = [*bw.SYSTEM_DIRS, *bw.ETC_FILES, *READABLE]
    read += [str(p) for p in (*bw.interpreter_paths(argv[0]), *ro_paths)]
    spec = {"read": read, "write": [str(rw_dir), *WRITABLE], "seccomp_fd": seccomp_fd}
    return [launcher(argv[0]), "-I", "-S", CONFINE_SCRIPT, json.dumps(spec), "--", *command]


@functools.lru_cache(maxsize=16)
def confine_works(executable: str, prefix: tuple[str, ...], program: bytes | None) -> str | None:
    """None when :mod:`.confine` can restrict ``executable`` behind ``prefix`` here, else why."""
    fds = [seccomp.filter_fd(program)] if program is not None else []
    try:
        with tempfile.TemporaryDirectory(prefix="aiforml-sbx-probe-") as tmp:
            command = confine_command(
                [executable], [executable, "-c", "pass"], ro_paths=[], rw_dir=Path(tmp),
                seccomp_fd=fds[0] if fds else None,
            )  # fmt: skip
            done = subprocess.run(
                [*prefix, *command], capture_output=True, timeout=30, cwd="/",
                env={"PATH": "/usr/bin:/bin"}, pass_fds=fds,
            )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    finally:
        for fd in fds:
            os.close(fd)
    if done.returncode != 0:
        return done.stderr.decode(errors="replace").strip()[-300:] or f"exit {done.returncode}"
    return None
