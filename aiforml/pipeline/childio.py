"""Reading back what a sandboxed child wrote, and removing its folders; never trusting either.

Responsible for: the trusted side's only readers of a child's output, each bounded before
it allocates or recurses: regular files only (no symlink followed, no FIFO blocked on),
``.npy`` arrays whose header is checked against the file's real size before any array is
made (a header may claim 10**12 columns), numbers only (no object, structured or
foreign-byte-order dtypes, never pickle), JSON of bounded size and nesting depth (a
200,000-deep ``[[[...]]]`` would raise RecursionError inside ``json.loads``); the exceptions
any reader may still raise (:data:`READ_ERRORS`) and their translation into an
``invalid_output`` finding charged to the program (:func:`output_finding`); and
:func:`remove_tree`, which deletes a job folder however the child shaped it (thousands
deep, read-only or mode-000 folders, symlinks) without recursion and without raising, and
:func:`remove_stale_jobs`, the job folders of evaluator processes killed mid-evaluation.

Not responsible for: what the arrays mean (:mod:`aiforml.pipeline.checks` checks rows,
folds and values), or for where job folders live (:mod:`aiforml.pipeline.userdirs`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import mmap
import os
import re
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np

from aiforml.pipeline.checks import Finding
from aiforml.pipeline.harness import map_joined
from aiforml.sandbox.tree import walk_tree

log = logging.getLogger(__name__)

MAX_CHILD_FILE = 256 * 1024 * 1024  # bytes read back from any one file the child wrote
MAX_JSON_DEPTH = 32  # result.json is a flat object with one nested "timings" object
# Everything a reader of child output can raise on hostile bytes; a program whose output
# raises one of these is charged invalid_output. Not ``Exception``: a bug of the trusted
# side (NameError, AttributeError) must not be charged to the program.
READ_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # and UnicodeDecodeError, json.JSONDecodeError
    OSError, EOFError, RecursionError, MemoryError, KeyError, IndexError, TypeError, OverflowError,
)  # fmt: skip
# what is wrong with an array of this shape and dtype, or None
Expected = Callable[[tuple[int, ...], np.dtype], str | None]
_JOB_NAME = re.compile(r"(?:job|guard)-(\d+)-([0-9a-f]{8})-.+")  # what job_prefix() makes
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)  # a JSON string (brackets inside do not nest)


class MissingOutput(ValueError):
    """The child did not write the file at all (as opposed to writing something unusable)."""


def output_finding(exc: BaseException) -> Finding:
    """The ``invalid_output`` finding for an error raised while reading a child's output."""
    text = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
    return "invalid_output", text[:600]


def read_child_file(path: Path, limit: int = MAX_CHILD_FILE) -> bytes:
    """Bytes of a regular file the child wrote; never follows a link, never blocks on a FIFO.

    Raises ``ValueError`` (:class:`MissingOutput` when the file is absent).
    """
    with _open_regular(path, limit) as f:
        try:
            return f.read(limit + 1)[:limit]
        except OSError as exc:
            raise ValueError(f"{path.name} could not be read: {exc.strerror}") from exc


def read_json(path: Path, limit_bytes: int = 1_000_000, max_depth: int = MAX_JSON_DEPTH) -> dict:
    """A JSON object the child wrote, at most ``limit_bytes`` long and ``max_depth`` deep.

    The depth is counted on the bytes before parsing, so that no nesting reaches the
    parser's recursion. Raises ``ValueError``.
    """
    raw = read_child_file(path, limit_bytes)
    depth = json_depth(raw)
    if depth > max_depth:
        raise ValueError(f"{path.name} nests {depth} deep; at most {max_depth} levels are read")
    try:
        value = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{path.name} is not valid JSON: {str(exc)[:200]}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{path.name} holds a {type(value).__name__}; expected a JSON object")
    return value


def json_depth(raw: bytes) -> int:
    """The deepest bracket nesting of JSON text, outside strings (without parsing it)."""
    codes = np.frombuffer(_STRING.sub(b'""', raw), dtype=np.uint8)
    steps = np.isin(codes, (ord("["), ord("{"))).astype(np.int64) - np.isin(codes, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def load_array(path: Path, shape: tuple[int, ...], integer: bool = False) -> np.ndarray:
    """A child's ``.npy`` array of numbers, its header checked before anything is allocated.

    ``shape`` is the exact expected shape, or with ``integer=True`` a 1-D upper bound.
    Raises ``ValueError``.
    """

    def expected(got: tuple[int, ...], dtype: np.dtype) -> str | None:
        if dtype.kind not in ("iu" if integer else "fiu"):
            return f"dtype {dtype}; expected {'integers' if integer else 'numbers'}"
        if integer and (len(got) != 1 or got[0] > shape[0]):
            return f"shape {got}; expected a 1-D index array"
        if not integer and got != tuple(shape):
            return f"shape {got}; expected {tuple(shape)}"
        return None

    return _load_npy(path, expected)


def load_matrix(path: Path, n_rows: int, limit: int = MAX_CHILD_FILE, mapped: bool = False) -> np.ndarray:
    """A child's 2-D numeric ``.npy`` array with ``n_rows`` rows, at most ``limit`` bytes.

    ``mapped``: memory-mapped read-only from the file once its header and size are checked,
    not read into this process (a feature matrix at Numerai's width is as large as the data
    set). Only for a file no process can write any more: its child's tree is gone, and no
    later child is shown its folder. Raises ``ValueError``."""

    def expected(got: tuple[int, ...], dtype: np.dtype) -> str | None:
        if len(got) != 2 or got[0] != n_rows or dtype.kind not in "fiu":
            return f"shape {got} and dtype {dtype}; expected ({n_rows}, k) numbers"
        return None

    return _load_npy(path, expected, limit, mapped)


def load_joined(head: Path, rest: Path, n_rows: int, n_head: int, limit: int = MAX_CHILD_FILE,
                mapped: bool = False) -> np.ndarray:
    """A child's matrix written as two files (:func:`aiforml.pipeline.harness.run_features`
    with ``head_rows``): ``head``, a 2-D numeric ``.npy`` of the first ``n_head`` rows, and
    ``rest``, ``head``'s last partial page again, then the other ``n_rows - n_head`` rows.
    Both files together at most ``limit`` bytes; the repeated bytes must be the same. As
    :func:`load_matrix`: read in, or ``mapped`` (only for files no process can write any
    more) one read-only mapping of both. Raises ``ValueError``."""
    with _open_regular(head, limit) as h, _open_regular(rest, limit) as r:
        shape, fortran, dtype = _npy_header(h, head.name)
        problem = _plain_dtype(dtype) or (
            f"shape {shape} and dtype {dtype}; expected ({n_head}, k) numbers"
            if len(shape) != 2 or shape[0] != n_head or dtype.kind not in "fiu" or fortran else None)
        if problem:
            raise ValueError(f"{head.name} has {problem}")
        offset, head_size, rest_size = h.tell(), os.fstat(h.fileno()).st_size, os.fstat(r.fileno()).st_size
        row_bytes = shape[1] * dtype.itemsize
        pages = head_size // mmap.PAGESIZE * mmap.PAGESIZE
        if head_size != offset + n_head * row_bytes or rest_size != head_size - pages + (n_rows - n_head) * row_bytes:
            raise ValueError(f"{head.name} and {rest.name} are truncated or corrupt: {head_size} and {rest_size} "
                             f"bytes for {n_rows} rows of {row_bytes} bytes")
        if head_size + rest_size > limit:
            raise ValueError(f"{head.name} and {rest.name} are {head_size + rest_size} bytes; at most {limit} "
                             "are read (a feature matrix: up to env.sandbox.file_mb)")
        h.seek(pages)
        if h.read(head_size - pages) != r.read(head_size - pages):
            raise ValueError(f"{rest.name} does not begin with the last page of {head.name}")
        if mapped and row_bytes:
            return map_joined(head, rest, writable=False)
        array = np.empty((n_rows, shape[1]), dtype=dtype)
        h.seek(offset)
        for f, part in ((h, array[:n_head]), (r, array[n_head:])):
            want = part.nbytes
            got = f.readinto(memoryview(part).cast("B")) if want else 0
            if got != want:
                raise ValueError(f"{head.name} and {rest.name} are truncated: {got} of {want} bytes")
        return array


def _load_npy(path: Path, expected: Expected, limit: int = MAX_CHILD_FILE, mapped: bool = False) -> np.ndarray:
    """Open, check the header (``expected`` says what is wrong, or None), size, then read (or map)."""
    with _open_regular(path, limit) as f:
        shape, fortran, dtype = _npy_header(f, path.name)
        problem = _plain_dtype(dtype) or expected(shape, dtype)
        if problem:
            raise ValueError(f"{path.name} has {problem}")
        size = os.fstat(f.fileno()).st_size - f.tell()
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes != size:
            raise ValueError(f"{path.name} is truncated or corrupt: its header promises {nbytes} bytes "
                             f"of data, the file holds {size}")
        if mapped and nbytes:
            pages = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # through the checked descriptor
            array = np.frombuffer(pages, dtype=dtype, count=math.prod(shape), offset=f.tell())
            array = array.reshape(shape[::-1] if fortran else shape)
            return array.T if fortran else array
        array = np.empty(shape[::-1] if fortran else shape, dtype=dtype)  # C order either way
        try:
            got = f.readinto(memoryview(array).cast("B")) if nbytes else 0
        except OSError as exc:
            raise ValueError(f"{path.name} could not be read: {exc.strerror}") from exc
        if got != nbytes:
            raise ValueError(f"{path.name} is truncated: {got} of {nbytes} bytes")
        return array.T if fortran else array


def _npy_header(f: BinaryIO, name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}[version]
        shape, fortran, dtype = read(f)
    except (*READ_ERRORS, SyntaxError) as exc:  # literal_eval of the header dict can raise anything of these
        raise ValueError(f"{name} is not a plain .npy array: {str(exc)[:200]}") from exc
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f"{name} has an invalid shape {shape}")
    return tuple(shape), bool(fortran), dtype


def _plain_dtype(dtype: np.dtype) -> str | None:
    """Why ``dtype`` is not a plain native number type, or None."""
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        return f"dtype {dtype}; expected plain numbers"
    if dtype.byteorder not in ("=", "|") or dtype.itemsize > 8:
        return f"dtype {dtype.str}; expected native-order numbers of at most 8 bytes"
    return None


def _open_regular(path: Path, limit: int) -> BinaryIO:
    """``path`` opened for reading when it is a regular file of at most ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise MissingOutput(f"the child did not write {path.name}") from exc
    except OSError as exc:
        raise ValueError(f"{path.name} is not a regular file the child wrote: {exc.strerror}") from exc
    f = os.fdopen(fd, "rb")
    info = os.fstat(fd)
    problem = (f"{path.name} is not a regular file" if not stat.S_ISREG(info.st_mode)
               else f"{path.name} is {info.st_size} bytes; at most {limit} are read (a feature matrix: "
                    "up to env.sandbox.file_mb)" if info.st_size > limit
               else None)  # fmt: skip
    if problem:
        f.close()
        raise ValueError(problem)
    return f


def job_prefix(kind: Literal["job", "guard"] = "job") -> str:
    """The name prefix of a job folder this process makes: ``<kind>-<pid>-<host>-``.

    The pid says whose it is (:func:`remove_stale_jobs`); the host, a short hash of this
    machine's name, keeps a work root shared between machines from being swept by the wrong one.
    """
    return f"{kind}-{os.getpid()}-{_host()}-"


def remove_stale_jobs(work_root: Path) -> int:
    """Remove the job folders of this machine's processes that no longer run (killed
    mid-evaluation); how many. Any other folder is left alone.
    """
    removed = 0
    for entry in os.scandir(work_root):
        match = _JOB_NAME.fullmatch(entry.name)
        if match and match.group(2) == _host() and not _running(int(match.group(1))):
            remove_tree(Path(entry.path))
            removed += 1
    return removed


def _host() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: running
        return True
    return True


def remove_tree(path: Path) -> list[str]:
    """Delete ``path`` and everything under it; never raises. The entries left, in words.

    Iterative and by file descriptor (:func:`aiforml.sandbox.tree.walk_tree`), so any depth
    works; symlinks are removed, never followed; folders the child made read-only or
    mode 000 are given back their owner's permissions first. What could not be removed is
    logged and returned.
    """
    left: list[str] = []
    try:
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode):
            os.unlink(path)
            return left
        _make_usable(path, info)
        left = walk_tree(path, _remove_entry, lambda parent_fd, name: os.rmdir(name, dir_fd=parent_fd))
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        left.append(f"{path}: {exc.strerror or exc}")
    if left:
        log.warning("could not remove all of %s: %s", path, "; ".join(left[:5]))
    return left


def _remove_entry(dir_fd: int, entry: os.DirEntry) -> bool:
    """Unlink a non-folder; make a folder usable and descend into it (removed on the way up)."""
    info = entry.stat(follow_symlinks=False)
    if stat.S_ISDIR(info.st_mode):
        _make_usable(entry.name, info, dir_fd)
        return True
    os.unlink(entry.name, dir_fd=dir_fd)
    return False


def _make_usable(name: str | Path, info: os.stat_result, dir_fd: int | None = None) -> None:
    """Give a folder (already lstat'd: not a link) back rwx for its owner."""
    if stat.S_IMODE(info.st_mode) & 0o700 != 0o700:
        os.chmod(name, 0o700, dir_fd=dir_fd)
