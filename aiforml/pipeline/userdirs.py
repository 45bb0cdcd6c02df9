"""The per-user private folders where the trusted side keeps job folders and data hand-offs.

Responsible for: :func:`private_root`, ``<base>/aiforml-<uid>/<kind>`` with ``<base>`` /dev/shm
when it exists and is writable (a tmpfs: what a child writes into its job folder there is
memory, charged to the child's memory cgroup when one is in use, and never fills the host's
disk), else the temp dir. Each user gets their own folder, so that two users never collide
(a second user of a shared ``/dev/shm/aiforml-handoff`` failed with PermissionError) and no
one can plant files another user's evaluator reads (a ``meta.json`` in a hand-off folder).
Before anything is read from it, the parent and the ``kind`` folder are checked with
``lstat``: a real directory, not a symlink, owned by the current uid, writable and readable
by no one else. Anything else is refused with :class:`UnsafeFolderError` naming the path
and the fix.

Modes. For a user other than root the folders are 0700: the sandboxed child runs under the
caller's own uid (bubblewrap maps its uid 65534 to the caller through a user namespace; the
fallback without bubblewrap keeps the caller's uid), so it can reach its job folder and the
hand-off through 0700 folders. For root they are 0711: the fallback may run the child as
uid 65534 ("nobody", :mod:`aiforml.sandbox.fallback`), which must pass through the parent to
reach its job folder (handed over to it) and the hand-off folder (0755). 0711 lets other
users pass through to a name they already know, never list, create, rename or delete
anything; job folders have random names and mode 0700, hand-off folders hold training rows
only.

Not responsible for: what goes into the folders (:mod:`.handoff`, :mod:`.evaluate`) or
removing them (:func:`aiforml.pipeline.childio.remove_tree` for jobs, :func:`.handoff.lease` for hand-offs).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


class UnsafeFolderError(RuntimeError):
    """A private folder exists but is not a directory owned by this user and closed to others."""


def shared_base() -> Path:
    """/dev/shm when this machine has a writable one, else the temp dir."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def folder_mode(uid: int) -> int:
    """The mode of a private folder of ``uid``: 0711 for root (see the module doc), else 0700."""
    return 0o711 if uid == 0 else 0o700


def private_root(kind: str, base: Path | None = None) -> Path:
    """``<base>/aiforml-<uid>/<kind>``, made if missing, checked before use (see the module doc).

    ``kind`` is one folder name ("evals", "handoff"). Raises :class:`UnsafeFolderError`.
    """
    if not kind or kind in (".", "..") or "/" in kind:
        raise ValueError(f"kind must be one folder name, got {kind!r}")
    uid = os.geteuid()
    parent = Path(base or shared_base()) / f"aiforml-{uid}"
    for folder in (parent, parent / kind):
        _make(folder, folder_mode(uid))
        problem = check_private(folder, uid)
        if problem:
            raise UnsafeFolderError(problem)
    return parent / kind


def check_private(folder: Path, uid: int) -> str | None:
    """Why ``folder`` is not a private folder of ``uid`` (with the fix), or None."""
    fix = f"remove it (as its owner or root: rm -rf {folder}) and run again; it is made afresh"
    try:
        info = os.lstat(folder)
    except OSError as exc:
        return f"{folder} cannot be checked: {exc.strerror}"
    if not stat.S_ISDIR(info.st_mode):
        kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a directory"
        return f"{folder} is {kind}; this user's private folder must be a real directory: {fix}"
    if info.st_uid != uid:
        return f"{folder} is owned by uid {info.st_uid}, not by this user (uid {uid}): {fix}"
    extra = stat.S_IMODE(info.st_mode) & ~folder_mode(uid) & 0o077
    if extra:
        return (f"{folder} has mode {stat.S_IMODE(info.st_mode):o}: others may read or write it "
                f"(expected {folder_mode(uid):o}); {fix}")
    return None


def _make(folder: Path, mode: int) -> None:
    try:
        os.mkdir(folder, mode)
    except FileExistsError:
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, mode)  # mkdir's mode is cut by the umask
    finally:
        os.close(fd)
