"""The evaluation cache: a program evaluated before is not executed again.

Responsible for: results keyed by the program's normalized hash (``Program.hash``: two
programs that differ only in comments or blank lines share it) and a version string that
names the data, the era split and the environment settings the result was computed under;
least-recently-used eviction, by count and by the bytes of the prediction arrays results
carry (validation predictions for the uniqueness reward: a few KB each on the synthetic
data, megabytes on real Numerai data); hit and miss counts. Infrastructure failures are never
stored (they say nothing about the program). Results are copied in and out, so a caller
that edits one cannot change the cache. Not responsible for evaluating anything.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np

from aiforml.program import EvalResult, Program

CacheKey = tuple[str, str]  # (normalized program hash, version)


class ResultCache:
    """An in-memory LRU map from (program hash, version) to EvalResult."""

    def __init__(self, max_entries: int, max_bytes: int | None = None) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes  # bytes of prediction arrays kept at most (None: no limit)
        self.bytes = 0
        self._entries: OrderedDict[CacheKey, EvalResult] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(program: Program, version: str) -> CacheKey:
        return (program.hash, version)

    def get(self, key: CacheKey) -> EvalResult | None:
        result = self._entries.get(key)
        if result is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return copy.deepcopy(result)

    def put(self, key: CacheKey, result: EvalResult) -> bool:
        """Store ``result`` unless it is an infrastructure failure or the cache is off."""
        if self.max_entries <= 0 or result.status == "infra_error":
            return False
        if self.max_bytes is not None and prediction_bytes(result) > self.max_bytes:
            return False
        if key in self._entries:
            self.bytes -= prediction_bytes(self._entries.pop(key))
        self._entries[key] = copy.deepcopy(result)
        self.bytes += prediction_bytes(result)
        while len(self._entries) > self.max_entries or (
                self.max_bytes is not None and self.bytes > self.max_bytes):
            self.bytes -= prediction_bytes(self._entries.popitem(last=False)[1])
        return True

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries


def prediction_bytes(result: EvalResult) -> int:
    """Bytes of the prediction arrays ``result`` carries."""
    return sum(v.nbytes for v in result.predictions.values() if isinstance(v, np.ndarray))
