"""The paths of a run: checked before it starts, and what the child left in ``rw_dir`` defused.

Responsible for: refusing a run whose paths cannot be bound (missing, relative), and, once
every process of the run is dead, removing from ``rw_dir`` whatever is not a plain file or a
directory and clearing set-uid/set-gid bits. A symlink made inside the sandbox may point at
any host path (the target need not be visible inside), so a trusted reader of
``rw_dir/predictions.npy`` would follow it to, say, a file of labels; a FIFO would block the
reader forever; a set-uid file made by a child whose uid maps to root would be a set-uid-root
binary on the host.

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
    """Remove non-regular entries under ``rw_dir`` and set-id bits; the names removed.

    Iterative and by file descriptor (:mod:`.tree`): a folder chain thousands deep is defused
    to the bottom, where a recursive walk would stop at the recursion limit or PATH_MAX.
    """
    removed: list[str] = []

    def visit(dir_fd: int, entry: os.DirEntry) -> bool:
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode):
            if info.st_mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(entry.name, stat.S_IMODE(info.st_mode) & 0o777, dir_fd=dir_fd)  # not a link: lstat'd
            return stat.S_ISDIR(info.st_mode)
        os.unlink(entry.name, dir_fd=dir_fd)  # a symlink (to a file or a directory), FIFO, socket or device
        removed.append(entry.name)
        return False

    problems = walk_tree(rw_dir, visit)
    if problems:
        log.warning("defusing %s: %d entries not checked: %s", rw_dir, len(problems), "; ".join(problems[:5]))
    return removed
