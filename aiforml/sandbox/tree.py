"""Walking a folder tree that a sandboxed child built, with no recursion and no long paths.

Responsible for: visiting every entry under a folder depth-first, however deep (a child can
nest folders thousands deep, past both Python's recursion limit and PATH_MAX), never
following a symlink and holding at most two file descriptors: a folder is entered by
``openat`` from its parent and left by ``openat(..)``, checked to be the parent it came from.
The caller's callbacks decide what to do with each entry (clear bits, unlink, descend).

Not responsible for: what the callbacks do, or for trees that change while walked (the
child's processes are all dead by then; a parent that does not match stops the walk).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# on_entry(dir_fd, entry) -> True to descend into the entry (a folder); may raise OSError
OnEntry = Callable[[int, os.DirEntry], bool]
# on_leave(parent_fd, name): called once the folder ``name`` has been walked; may raise OSError
OnLeave = Callable[[int, str], None]


@dataclass
class _Level:
    name: str  # the folder's name in its parent ("" for the top)
    identity: tuple[int, int]  # (st_dev, st_ino) of the folder
    todo: list[str] = field(default_factory=list)  # sub-folders still to enter


def walk_tree(top: str | os.PathLike, on_entry: OnEntry, on_leave: OnLeave | None = None) -> list[str]:
    """Walk the folder ``top`` (opened without following a symlink); the problems met, in words.

    An ``OSError`` from a callback or from opening a sub-folder is recorded and skips that
    entry; the walk goes on with the rest.
    """
    problems: list[str] = []
    fd = os.open(top, DIR_FLAGS)
    stack = [_Level("", _identity(fd))]
    try:
        stack[0].todo = _scan(fd, on_entry, problems, stack)
        while stack:
            level = stack[-1]
            if level.todo:
                name = level.todo.pop()
                try:
                    sub = os.open(name, DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    problems.append(_problem(stack, name, exc))
                    continue
                os.close(fd)
                fd = sub
                stack.append(_Level(name, _identity(fd)))
                stack[-1].todo = _scan(fd, on_entry, problems, stack)
                continue
            stack.pop()
            if not stack:
                break
            up = os.open("..", DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = up
            if _identity(fd) != stack[-1].identity:
                problems.append(_problem(stack, level.name, OSError(0, "its parent moved during the walk")))
                break
            if on_leave is not None:
                try:
                    on_leave(fd, level.name)
                except OSError as exc:
                    problems.append(_problem(stack, level.name, exc))
    finally:
        os.close(fd)
    return problems


def _scan(fd: int, on_entry: OnEntry, problems: list[str], stack: list[_Level]) -> list[str]:
    """Call ``on_entry`` on each entry of the open folder ``fd``; the sub-folders to enter."""
    todo = []
    with os.scandir(fd) as entries:
        for entry in entries:
            try:
                if on_entry(fd, entry):
                    todo.append(entry.name)
            except OSError as exc:
                problems.append(_problem(stack, entry.name, exc))
    return todo


def _identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


def _problem(stack: list[_Level], name: str, exc: OSError) -> str:
    where = "/".join([*(level.name for level in stack[1:]), name])
    if len(where) > 200:
        where = "..." + where[-200:]
    return f"{where}: {exc.strerror or exc}"
