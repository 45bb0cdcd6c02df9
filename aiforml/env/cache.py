"""The evaluation cache: a program evaluated before is not executed again.

Responsible for: results keyed by the program's normalized hash (``Program.hash``: two
programs that differ only in comments or blank lines share it) and a version string that
names the data, the era split and the environment settings the result was computed under;
least-recently-used eviction; hit and miss counts. Infrastructure failures are never
stored (they say nothing about the program). Results are copied in and out, so a caller
that edits one cannot change the cache. Not responsible for evaluating anything.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

from aiforml.program import EvalResult, Program

CacheKey = tuple[str, str]  # (normalized program hash, version)


class ResultCache:
    """An in-memory LRU map from (program hash, version) to EvalResult."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
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
        self._entries[key] = copy.deepcopy(result)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries
