"""Read back what a sandboxed child wrote, never trusting it.

Responsible for: reading a file the child wrote without following links or blocking on a
FIFO, ``.npy`` arrays without pickle after checking their header, and removing a job's
folders. Not responsible for what the arrays mean (the evaluator and its checks).
"""

from __future__ import annotations

import io
import os
import shutil
import stat
from pathlib import Path

import numpy as np

MAX_CHILD_FILE = 256 * 1024 * 1024  # bytes read back from any one file the child wrote


def read_child_file(path: Path, limit: int = MAX_CHILD_FILE) -> bytes:
    """Bytes of a regular file the child wrote; never follows a link, never blocks on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError as exc:
        raise ValueError(f"the child did not write {path.name}") from exc
    except OSError as exc:
        raise ValueError(f"{path.name} is not a regular file the child wrote: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path.name} is {info.st_size} bytes; at most {limit} are read")
        return f.read(limit + 1)[:limit]


def load_array(path: Path, shape: tuple[int, ...], integer: bool = False) -> np.ndarray:
    """Read a child's .npy without pickle, after checking its header.

    ``shape`` is the exact expected shape, or with ``integer=True`` a 1-D upper bound.
    """
    buffer = io.BytesIO(read_child_file(path))
    fmt = np.lib.format
    try:
        version = fmt.read_magic(buffer)
        read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}[version]
        got_shape, _, dtype = read_header(buffer)
    except (ValueError, KeyError, OSError) as exc:
        raise ValueError(f"{path.name} is not a plain .npy array: {exc}") from exc
    kinds = "iu" if integer else "fiu"
    if dtype.kind not in kinds or dtype.hasobject:
        raise ValueError(f"{path.name} has dtype {dtype}; expected {'integers' if integer else 'numbers'}")
    if integer:
        if len(got_shape) != 1 or got_shape[0] > shape[0]:
            raise ValueError(f"{path.name} has shape {got_shape}; expected a 1-D index array")
    elif tuple(got_shape) != shape:
        raise ValueError(f"{path.name} has shape {got_shape}; expected {shape}")
    buffer.seek(0)
    try:
        return np.load(buffer, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path.name} is truncated or corrupt: {exc}") from exc


def load_matrix(path: Path, n_rows: int) -> np.ndarray:
    """A child's 2-D numeric array with ``n_rows`` rows (checked header, no pickle)."""
    header = io.BytesIO(read_child_file(path))
    fmt = np.lib.format
    try:
        version = fmt.read_magic(header)
        shape, _, dtype = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}[version](header)
    except (ValueError, KeyError, OSError) as exc:
        raise ValueError(f"{path.name} is not a plain .npy array: {exc}") from exc
    if len(shape) != 2 or shape[0] != n_rows or dtype.kind not in "fiu":
        raise ValueError(f"{path.name} has shape {shape} and dtype {dtype}; expected ({n_rows}, k) numbers")
    return load_array(path, tuple(shape))


def remove_tree(path: Path) -> None:
    """Remove a job folder and everything in it."""
    shutil.rmtree(path, ignore_errors=True)
