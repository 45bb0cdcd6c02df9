"""A seccomp filter for the sandboxed child: deny the syscalls ML code never needs.

Responsible for: building, once, a BPF program with the system's libseccomp (through
``ctypes``; the library is on every Debian system, its Python binding is not) that allows
every syscall except a deny list of kernel attack surface and system administration:
tracing other processes, loading BPF or kernel modules, keyrings, io_uring, userfaultfd,
mounting, namespaces (``unshare``, ``setns``, and ``clone`` with a namespace flag), clocks,
swap, reboot. Denied calls fail with EPERM; 32-bit and x32
syscall ABIs are killed (libseccomp's default for a foreign architecture), so the list
cannot be bypassed through them. bwrap loads the program with ``--seccomp FD``.

Not responsible for: the namespaces and mounts (bubblewrap), or limits (cgroups, rlimits).
The deny list follows Docker's default profile and Flatpak's, trimmed to calls that numpy,
pandas, LightGBM, scikit-learn and torch on CPU do not make.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

DENIED = (
    # other processes' memory and tracing
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    # kernel attack surface
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key", "personality", "uselib",
    "lookup_dcookie", "open_by_handle_at", "name_to_handle_at", "syslog", "ioperm", "iopl",
    # system administration
    "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsmount",
    "fspick", "mount_setattr", "unshare", "setns", "init_module", "finit_module",
    "delete_module", "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff",
    "acct", "quotactl", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "vhangup", "sethostname", "setdomainname", "chroot",
)  # fmt: skip
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000
SCMP_CMP_EQ = 4
SCMP_CMP_MASKED_EQ = 7
# clone() flags that make a namespace: refused, so that no program makes a user namespace of
# its own (bubblewrap's --disable-userns does the same in spawn mode; a zygote's child needs
# namespaces for its own set-up, before it loads this filter). clone3 answers ENOSYS: its
# flags sit in memory a filter cannot read, and libc falls back to clone.
CLONE_NEW_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
# Without a network namespace (the fallback): no IPv4/IPv6/packet sockets at all, UDP included
INET_FAMILIES = (2, 10, 17)  # AF_INET, AF_INET6, AF_PACKET


class ScmpArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class SeccompUnavailable(RuntimeError):
    """libseccomp is missing or refused to build the filter."""


def build_filter(deny_inet: bool = False) -> bytes:
    """The BPF program (raw ``struct sock_filter`` array) bwrap's ``--seccomp`` expects.

    ``deny_inet``: also refuse ``socket()`` for the families in :data:`INET_FAMILIES`.
    """
    lib = _load()
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise SeccompUnavailable("seccomp_init failed")
    try:
        for name in DENIED:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:
                continue  # not a syscall on this architecture or libseccomp version
            rc = lib.seccomp_rule_add(ctx, SCMP_ACT_ERRNO | errno.EPERM, number, 0)
            if rc < 0:
                raise SeccompUnavailable(f"seccomp_rule_add({name}) failed: {os.strerror(-rc)}")
        for family in INET_FAMILIES if deny_inet else ():
            _deny_socket_family(lib, ctx, family)
        _deny_new_namespaces(lib, ctx)
        read_fd, write_fd = os.pipe()
        try:
            rc = lib.seccomp_export_bpf(ctx, write_fd)
            os.close(write_fd)
            write_fd = -1
            if rc < 0:
                raise SeccompUnavailable(f"seccomp_export_bpf failed: {os.strerror(-rc)}")
            return _read_all(read_fd)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
    finally:
        lib.seccomp_release(ctx)


def _deny_socket_family(lib: ctypes.CDLL, ctx: int, family: int) -> None:
    number = lib.seccomp_syscall_resolve_name(b"socket")
    cmp = ScmpArgCmp(0, SCMP_CMP_EQ, family, 0)
    rc = lib.seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO | errno.EPERM, number, 1, ctypes.byref(cmp))
    if rc < 0:
        raise SeccompUnavailable(f"seccomp rule socket({family}) failed: {os.strerror(-rc)}")


def _deny_new_namespaces(lib: ctypes.CDLL, ctx: int) -> None:
    clone = lib.seccomp_syscall_resolve_name(b"clone")
    for flag in CLONE_NEW_FLAGS:
        cmp = ScmpArgCmp(0, SCMP_CMP_MASKED_EQ, flag, flag)
        rc = lib.seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO | errno.EPERM, clone, 1, ctypes.byref(cmp))
        if rc < 0:
            raise SeccompUnavailable(f"seccomp rule clone({flag:#x}) failed: {os.strerror(-rc)}")
    clone3 = lib.seccomp_syscall_resolve_name(b"clone3")
    if clone3 >= 0:
        rc = lib.seccomp_rule_add(ctx, SCMP_ACT_ERRNO | errno.ENOSYS, clone3, 0)
        if rc < 0:
            raise SeccompUnavailable(f"seccomp rule clone3 failed: {os.strerror(-rc)}")


def filter_fd(program: bytes) -> int:
    """A readable fd holding ``program`` (a pipe: the program is far below a pipe's buffer)."""
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, program)
    finally:
        os.close(write_fd)
    return read_fd


def _load() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise SeccompUnavailable(f"libseccomp not found ({exc}); apt-get install libseccomp2") from exc
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(ScmpArgCmp)
    ]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)
