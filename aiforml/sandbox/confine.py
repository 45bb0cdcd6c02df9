"""Child-side confinement for the fallback (no bubblewrap): Landlock and seccomp, then exec.

Run as ``python -I -S confine.py SPEC_JSON -- command...`` by the sandbox, never imported by
it: it uses the standard library only, since nothing of aiforml is importable in the child.
SPEC_JSON holds ``read`` and ``write`` path lists and ``seccomp_fd`` (a pipe holding a BPF
program, or null).

Responsible for: restricting this process and everything it execs, before any user code,
with Landlock (file access only beneath the listed paths; on ABI >= 4 no TCP bind/connect;
on ABI >= 6 no abstract unix sockets or signals outside the sandbox) and the seccomp filter
built by :mod:`aiforml.sandbox.seccomp`; then exec'ing ``command``. Exits 125 (the sandbox
reports a spawn error) when the kernel refuses any of it: never runs the command open.

Not responsible for: choosing paths or limits (the sandbox does), or namespaces (Landlock
hides nothing from ``/proc``, and UDP and pathname unix sockets are not covered by it).
Hand-written: three syscalls through ``ctypes``; no maintained Python binding is installed.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import sys

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446  # same on every arch
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1, 2, 4, 8
FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | (1 << 14) | (1 << 15)  # + truncate, ioctl_dev
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
libc = ctypes.CDLL(None, use_errno=True)


def fail(message: str) -> None:
    print(f"confine: {message}", file=sys.stderr)
    sys.exit(125)


def landlock(read: list[str], write: list[str]) -> None:
    abi = libc.syscall(SYS_CREATE_RULESET, None, 0, CREATE_RULESET_VERSION)
    if abi < 1:
        fail(f"Landlock unavailable (errno {ctypes.get_errno()})")
    handled = FS_BY_ABI[max(v for v in FS_BY_ABI if v <= abi)]
    net, scoped = (3 if abi >= 4 else 0), (3 if abi >= 6 else 0)
    attr = struct.pack("QQQ", handled, net, scoped)[: 8 if abi < 4 else 16 if abi < 6 else 24]
    ruleset = libc.syscall(SYS_CREATE_RULESET, ctypes.c_char_p(attr), len(attr), 0)
    if ruleset < 0:
        fail(f"landlock_create_ruleset failed (errno {ctypes.get_errno()})")
    for paths, rights in ((read, EXECUTE | READ_FILE | READ_DIR), (write, handled)):
        for path in paths:
            add_rule(ruleset, path, rights & handled)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        fail("prctl(NO_NEW_PRIVS) failed")
    if libc.syscall(SYS_RESTRICT_SELF, ruleset, 0) != 0:
        fail(f"landlock_restrict_self failed (errno {ctypes.get_errno()})")
    os.close(ruleset)


def add_rule(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except (FileNotFoundError, PermissionError):
        return  # absent (/lib32 ...) or out of this uid's reach anyway
    if not os.path.isdir(path):
        rights &= FILE_RIGHTS
    rule = struct.pack("=Qi", rights, fd)
    if libc.syscall(SYS_ADD_RULE, ruleset, RULE_PATH_BENEATH, ctypes.c_char_p(rule), 0) != 0:
        fail(f"landlock_add_rule({path}) failed (errno {ctypes.get_errno()})")
    os.close(fd)


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def seccomp(fd: int) -> None:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    program = b"".join(chunks)
    fprog = SockFprog(len(program) // 8, program)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        fail("prctl(NO_NEW_PRIVS) failed")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        fail(f"loading the seccomp filter failed (errno {ctypes.get_errno()})")


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[2] != "--":
        fail("usage: confine.py SPEC_JSON -- command...")
    spec = json.loads(argv[1])
    landlock(spec["read"], spec["write"])
    if spec.get("seccomp_fd") is not None:
        seccomp(int(spec["seccomp_fd"]))
    command = argv[3:]
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        fail(f"exec {command[0]}: {exc}")


if __name__ == "__main__":
    main(sys.argv)
