"""The paths of a run: checked before it starts, and what the child left in ``rw_dir`` defused.

Responsible for: refusing a run whose paths cannot be bound (missing, relative), and, once
every process of the run is dead, removing from ``rw_dir`` whatever is not a plain file or a
directory, clearing set-uid/set-gid bits and giving folders back rwx for their owner. A
symlink made inside the sandbox may point at any host path (the target need not be visible
inside), so a trusted reader of ``rw_dir/predictions.npy`` would follow it to, say, a file of
labels; a FIFO would block the reader forever; a set-uid file made by a child whose uid maps
to root would be a set-uid-root binary on the host.

Not responsible for: what the regular files contain (the caller reads them as ``.npy`` with
``allow_pickle=False`` or JSON).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from aiforml.sandbox.tree import walk_tree

log = logging.getLogger(__name__)


def check(argv: list[str], ro_paths: Sequence[Path], rw_dir: Path, cwd: Path) -> str | None:
    """Why the run cannot start, or None."""
    if not argv:
        return "empty argv"
    if not rw_dir.is_absolute() or not rw_dir.is_dir():
        return f"rw_dir {rw_dir} must be an existing absolute directory"
    for path in [*ro_paths, cwd]:
        if not Path(path).is_absolute() or not Path(path).exists():
            return f"{path} must be an existing absolute path"
    return None


def defuse(rw_dir: Path) -> list[str]:
    """Remove non-regular entries under ``rw_dir`` and set-id bits; the names removed. Never raises.

    Iterative and by file descriptor (:mod:`.tree`): a folder chain thousands deep is defused
    to the bottom, where a recursive walk would stop at the recursion limit or PATH_MAX.
    Folders the child closed to their owner (mode 000, read-only) are opened again for it,
    so that a caller without root's privileges can read and remove what is there.
    """
    removed: list[str] = []

    def visit(dir_fd: int, entry: os.DirEntry) -> bool:
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode):
            mode = _defused_mode(info)
            if mode != stat.S_IMODE(info.st_mode):
                os.chmod(entry.name, mode, dir_fd=dir_fd)  # not a link: lstat'd above
            return stat.S_ISDIR(info.st_mode)
        os.unlink(entry.name, dir_fd=dir_fd)  # a symlink (to a file or a directory), FIFO, socket or device
        removed.append(entry.name)
        return False

    try:
        info = os.lstat(rw_dir)
        if stat.S_ISDIR(info.st_mode) and _defused_mode(info) != stat.S_IMODE(info.st_mode):
            os.chmod(rw_dir, _defused_mode(info))
        problems = walk_tree(rw_dir, visit)
    except OSError as exc:
        problems = [f"{rw_dir}: {exc.strerror or exc}"]
    if problems:
        log.warning("defusing %s: %d entries not checked: %s", rw_dir, len(problems), "; ".join(problems[:5]))
    return removed


def _defused_mode(info: os.stat_result) -> int:
    """The entry's mode without set-id bits, and for a folder with rwx for its owner."""
    mode = stat.S_IMODE(info.st_mode) & 0o777
    return mode | 0o700 if stat.S_ISDIR(info.st_mode) else mode


def over_quota(rw_dir: Path, max_bytes: int, max_entries: int) -> str | None:
    """Why ``rw_dir`` holds more than a run may write (bytes allocated, entries), or None.

    Without a memory cgroup nothing else counts the pages of a folder on a tmpfs: the
    sandbox calls this while the run goes on and stops a run that crossed either bound.
    Links are not followed; a folder the walk cannot read counts as nothing (the run can
    only hide what it cannot write into either).
    """
    used, entries, stack = 0, 0, [str(rw_dir)]
    while stack:
        try:
            with os.scandir(stack.pop()) as listing:
                for entry in listing:
                    entries += 1
                    if entries > max_entries:
                        return f"wrote more than {max_entries} files and folders into its folder"
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISDIR(info.st_mode):
                        stack.append(entry.path)
                    used += info.st_blocks * 512
                    if used > max_bytes:
                        return f"wrote more than {max_bytes // 2**20} MB into its folder"
        except OSError:
            continue
    return None
