"""The weaker confinement used when bubblewrap cannot run (e.g. in a container without user
namespaces): what ``setpriv`` (util-linux) can still take away from the child.

Responsible for: the ``setpriv`` prefix of the child's command: every capability dropped
(bounding and inheritable sets), ``no_new_privs``, SIGKILL when this process dies, and,
when this process is root and the interpreter can run as ``nobody``, a switch to uid/gid
65534 with no supplementary groups; then the ownership of ``rw_dir`` handed to that uid.
With the switch, file permissions hide root's private files, RLIMIT_NPROC applies, and the
child cannot signal or inspect root's processes.

Not responsible for: namespaces (none here: network, the file tree and /proc stay shared,
which the caller is told loudly), limits (cgroups, rlimits) or spawning. Hand-written
because it is one command line around util-linux's ``setpriv``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

NOBODY = 65534
CONFINE = ("--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--pdeathsig", "KILL")
SELF_REPORT = "import sys; print(sys.version, sys.prefix, sys.base_prefix, sys.path)"
AS_NOBODY = (f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")


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
