"""Capped capture of a child's stdout and stderr, read with a deadline.

Responsible for: reading several pipes at once without ever blocking past a deadline
(``selectors`` over the raw file descriptors), and keeping at most a fixed number of bytes
per stream however much the child writes: the head and the tail, with a
``[... N bytes truncated]`` marker between them (the tail holds the traceback).

Not responsible for: killing anything or deciding when to stop; the caller passes a
``stop`` callback and a deadline. Hand-written because ``subprocess.communicate`` buffers
without bound and blocks until every writer has closed the pipe, which a daemonized
grandchild may never do.
"""

from __future__ import annotations

import os
import selectors
import time
from collections.abc import Callable

CHUNK = 1 << 16


class CappedBuffer:
    """Keeps the first and the last ``cap // 2`` bytes of everything fed to it."""

    def __init__(self, cap: int) -> None:
        self.cap = max(cap, 0)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        head_room = self.cap - self.cap // 2 - len(self.head)
        if head_room > 0:
            self.head += data[:head_room]
            data = data[head_room:]
        if data:
            self.tail += data
            keep = self.cap // 2
            if len(self.tail) > keep:
                del self.tail[: len(self.tail) - keep]

    def text(self) -> str:
        dropped = self.total - len(self.head) - len(self.tail)
        middle = f"\n[... {dropped} bytes truncated]\n".encode() if dropped else b""
        return bytes(self.head + middle + self.tail).decode("utf-8", errors="replace")


def pump(
    buffers: dict[int, CappedBuffer],
    *,
    deadline: float,
    stop: Callable[[], bool] = lambda: False,
    poll_s: float = 0.05,
) -> set[int]:
    """Read every fd in ``buffers`` until all reach EOF, ``stop()`` is true, or ``deadline``.

    The fds must be non-blocking or selected ready; returns the fds still open (the caller
    closes them). ``stop`` is checked at least every ``poll_s`` seconds.
    """
    open_fds = set(buffers)
    with selectors.DefaultSelector() as selector:
        for fd in open_fds:
            selector.register(fd, selectors.EVENT_READ)
        while open_fds:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or stop():
                break
            for key, _ in selector.select(timeout=min(poll_s, remaining)):
                fd = key.fd
                try:
                    data = os.read(fd, CHUNK)
                except BlockingIOError:
                    continue
                if data:
                    buffers[fd].feed(data)
                else:
                    selector.unregister(fd)
                    open_fds.discard(fd)
    return open_fds
