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

import os
import stat
from collections.abc import Sequence
from pathlib import Path


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
    """Remove non-regular entries under ``rw_dir`` and set-id bits; the names removed."""
    removed = []
    for root, dirs, files in os.walk(rw_dir):  # top-down, never following symlinks
        real_dirs = []
        for name in dirs + files:
            path = os.path.join(root, name)
            info = os.lstat(path)
            if stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode):
                if info.st_mode & (stat.S_ISUID | stat.S_ISGID):
                    os.chmod(path, stat.S_IMODE(info.st_mode) & 0o777)
                if stat.S_ISDIR(info.st_mode):
                    real_dirs.append(name)
                continue
            os.unlink(path)  # a symlink (to a file or a directory), FIFO, socket or device
            removed.append(os.path.relpath(path, rw_dir))
        dirs[:] = [name for name in dirs if name in real_dirs]
    return removed
