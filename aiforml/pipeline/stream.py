"""Feed the model stage one era (or period) at a time, in time order.

The parent's side of the model stage's protocol (``harness.run_model``): block k's
features go into the run's read-only inbox as ``x_k.npy`` only after the child's
predictions of block k-1 came back as ``p_{k-1}.npy`` and passed the checks, so the model
never holds a row later than the one it predicts (a ``predict`` that reads the next rows
of its input has none). Runs in a thread beside the blocking sandbox run; :meth:`stop`
when the run has ended. A missing, unreadable or wrong block is the program's failure.

Hand-written: a few lines of polling on two folders; the sandbox's own limits (wall and
CPU time) end a child that never answers.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np

from aiforml.pipeline import checks
from aiforml.pipeline.childio import READ_ERRORS, load_array, output_finding

POLL_S = 0.0005
STOP = "stop.npy"  # written to the inbox when the stream ends early


class BlockStreamer:
    """Writes ``inbox/x_k.npy`` block by block; collects and checks ``out/p_k.npy``."""

    def __init__(self, features: np.ndarray, blocks: list[np.ndarray], inbox: Path, out: Path) -> None:
        self.features, self.blocks, self.inbox, self.out = features, blocks, inbox, out
        self.predictions: list[np.ndarray] = []
        self.finding: checks.Finding | None = None
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._feed, name="block-streamer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Call once the child's run has ended: the feeder takes its last block and returns."""
        self._ended.set()
        self._thread.join()

    @property
    def complete(self) -> bool:
        return len(self.predictions) == len(self.blocks)

    def result(self) -> np.ndarray:
        return np.concatenate(self.predictions) if self.predictions else np.zeros(0)

    def _feed(self) -> None:
        for k, positions in enumerate(self.blocks):
            write_array(self.inbox, f"x_{k}.npy", self.features[positions])
            answer = self.out / f"p_{k}.npy"
            if not self._wait(answer):
                return
            try:
                predictions = load_array(answer, (len(positions),))
            except READ_ERRORS as exc:
                finding = output_finding(exc)
            else:
                finding = checks.check_predictions(predictions, len(positions))
            if finding:
                self.finding = finding[0], f"predictions of block {k}: {finding[1]}"
                write_array(self.inbox, STOP, np.zeros(0))  # an honest child stops waiting
                return
            self.predictions.append(predictions.astype(np.float64))

    def _wait(self, path: Path) -> bool:
        while not os.path.lexists(path):
            if self._ended.is_set():
                return os.path.lexists(path)
            time.sleep(POLL_S)
        return True


def write_array(folder: Path, name: str, array: np.ndarray) -> None:
    """Write ``folder/name`` whole or not at all: a reader never sees half a file."""
    staging = folder / f".{name}"
    with open(staging, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
    os.rename(staging, folder / name)
