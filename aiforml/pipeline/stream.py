"""Feed the model stage one era (or period) at a time, in time order.

The parent's side of the model stage's protocol (``harness.run_model``): block k's
features go into the run's read-only inbox as ``x_k.npy``, announced by one byte on a pipe,
only after the child's predictions of block k-1 came back as ``p_{k-1}.npy`` (announced on
a second pipe) and passed the checks, so the model never holds a row later than the one it
predicts (a ``predict`` that reads the next rows of its input has none). Runs in a thread
beside the blocking sandbox run; :meth:`stop` when the run has ended. A missing, unreadable
or wrong block is the program's failure, and the child is told to stop at once.

Nothing the child sends on its pipe is believed: a byte only wakes the parent, which then
looks for the file itself. Hand-written: two pipes and a few lines; the sandbox's own limits
(wall and CPU time) end a child that never answers.
"""

from __future__ import annotations

import os
import select
import threading
from pathlib import Path

import numpy as np

from aiforml.pipeline import checks
from aiforml.pipeline.childio import READ_ERRORS, load_array, output_finding

NEXT, STOP = b"n", b"s"  # parent -> child: block k is in the inbox / no more blocks
WAKE_S = 0.05  # how often a waiting parent looks whether the run has ended


class BlockStreamer:
    """Writes ``inbox/x_k.npy`` block by block; collects and checks ``out/p_k.npy``."""

    def __init__(self, features: np.ndarray, blocks: list[np.ndarray], inbox: Path, out: Path) -> None:
        self.features, self.blocks, self.inbox, self.out = features, blocks, inbox, out
        self.predictions: list[np.ndarray] = []
        self.finding: checks.Finding | None = None
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._feed, name="block-streamer", daemon=True)
        self._child_in, self._notify = os.pipe()  # parent -> child
        self._ready, self._child_out = os.pipe()  # child -> parent
        self._open = {self._child_in, self._notify, self._ready, self._child_out}
        self._lock = threading.Lock()

    @property
    def child_fds(self) -> list[int]:
        """The pipe ends the child inherits: [read the parent's signals, write its own]."""
        return [self._child_in, self._child_out]

    def started(self) -> None:
        """Once the child holds its ends: close the parent's copies (so its death reads as EOF)."""
        self._close(*self.child_fds)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Call once the child's run has ended: the feeder takes its last block and returns."""
        self._ended.set()
        self._thread.join()
        self._close(self._notify, self._ready, *self.child_fds)

    def _close(self, *fds: int) -> None:
        """Close each of our descriptors once: a second close could hit a number another
        thread's sandbox run has been given since."""
        with self._lock:
            for fd in fds:
                if fd in self._open:
                    self._open.discard(fd)
                    os.close(fd)

    @property
    def complete(self) -> bool:
        return len(self.predictions) == len(self.blocks)

    def result(self) -> np.ndarray:
        return np.concatenate(self.predictions) if self.predictions else np.zeros(0)

    def _feed(self) -> None:
        for k, positions in enumerate(self.blocks):
            write_array(self.inbox, f"x_{k}.npy", self.features[positions])
            answer = self.out / f"p_{k}.npy"
            if not (self._signal(NEXT) and self._wait(answer)):
                return
            try:
                predictions = load_array(answer, (len(positions),))
            except READ_ERRORS as exc:
                finding = output_finding(exc)
            else:
                finding = checks.check_predictions(predictions, len(positions))
            if finding:
                self.finding = finding[0], f"predictions of block {k}: {finding[1]}"
                self._signal(STOP)  # an honest child stops waiting
                return
            self.predictions.append(predictions.astype(np.float64))
            (self.inbox / f"x_{k}.npy").unlink()  # the child has read it (it answered): one block at a time on disk

    def _signal(self, byte: bytes) -> bool:
        try:
            os.write(self._notify, byte)
            return True
        except OSError:  # the child is gone (or closed its end)
            return False

    def _wait(self, path: Path) -> bool:
        """Until ``path`` exists (True) or the run is over without it (False)."""
        while not os.path.lexists(path):
            if self._ended.is_set():
                return os.path.lexists(path)
            readable, _, _ = select.select([self._ready], [], [], WAKE_S)
            if readable and not os.read(self._ready, 4096):  # EOF: every child end is closed
                self._ended.wait()
        return True


def write_array(folder: Path, name: str, array: np.ndarray) -> None:
    """Write ``folder/name`` whole or not at all: a reader never sees half a file."""
    staging = folder / f".{name}"
    with open(staging, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
    os.rename(staging, folder / name)

