"""How many torch CPU threads the tiny policy's warm start runs on, chosen while it runs.

Responsible for: ``most_threads`` (the ceiling), ``choose_threads`` (the threads the load of
other processes leaves free on the usable cores) and ``ThreadGovernor``, which times every
SFT step and moves between one thread and more so that the build is never slower than
single-threaded.
Not responsible for: calling ``torch.set_num_threads`` (the caller does, see
``aiforml.policy.tiny.build``), nor the threads of sandboxed programs (``aiforml.sandbox``).

Why: torch's intra-op threads meet at a barrier after every operation. When another
process takes one of the cores, the thread that shares it makes all the others wait (and
spin) for it. On the 2-core VM one SFT step of the default model took 0.17 s on 2 threads
and 0.30 s on one; with one CPU-bound process beside it, 0.64 s on 2 threads and still
0.30 s on one (a fresh ``make demo`` saw 4.7 s against 0.25 s). Load comes and goes during
a build, so a count chosen once at the start cannot be trusted; measured step times can.

The rule:
1. Ceiling: the least of ``policy.tiny.threads``, ``torch.get_num_threads()`` (which
   follows ``OMP_NUM_THREADS``; Ray sets that to an actor's ``num_cpus``) and the cores
   this process may run on (``os.sched_getaffinity``).
2. Start on one thread. A wrong guess of one costs at most the gap between the settings
   (0.13 s a step above); a wrong guess of several, up to 19 times a quiet step.
3. Every step is timed per padded token; the first step (allocations) is not counted.
   Two steps after the start, and then every ``probe_every`` steps, the setting not in use
   is tried for up to ``probe_steps`` steps and the faster (median per token) is kept; a
   probe ends at its first step slower than the setting it is compared with. Several
   threads are tried only when the 1-minute load average, less this process's own
   threads, leaves more than one core free (``choose_threads``), and then as many as it
   leaves free, up to the ceiling.
4. When the median of the last three steps on several threads is slower than that of the
   last single-thread steps, the SFT drops to one thread at once (a median, so that one
   step slowed by a passing process does not). Each time several threads lose (a probe,
   or this rule) the wait before the next probe of them doubles, up to ``max_wait``
   steps, so a busy machine pays for few probes; each time they win it falls back to
   ``probe_every``.
"""

from __future__ import annotations

import logging
import os
import statistics
from collections import Counter, defaultdict, deque

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def most_threads(configured: int, torch_threads: int, cores: int) -> int:
    """Rule 1: the most threads worth trying, at least one."""
    return max(1, min(configured, torch_threads, cores))


def choose_threads(cores: int, load: float, ceiling: int) -> int:
    """The threads worth trying, given ``cores`` usable and other processes' ``load`` (rule 3)."""
    free = cores - int(load + 0.5)
    return max(1, min(ceiling, free))


class ThreadGovernor:
    """Rules 2-4: call ``record`` after each step; it returns the threads for the next.

    Pure bookkeeping on the seconds and load it is given (no clock, no torch), so it is
    tested on made-up timings. ``steps_at`` counts steps by thread count.
    """

    def __init__(self, ceiling: int, cores: int, probe_every: int = 30, probe_steps: int = 2,
                 max_wait: int = 120) -> None:
        assert ceiling >= 1, ceiling
        self.ceiling, self.cores, self.threads = ceiling, cores, 1
        self.probe_every, self.probe_steps, self.max_wait = probe_every, probe_steps, max_wait
        self.steps_at: Counter[int] = Counter()
        self.switches = 0
        self._recent: defaultdict[int, deque[float]] = defaultdict(lambda: deque(maxlen=3))
        self._warm = False
        self._wait = probe_every
        self._countdown = probe_steps  # the first probe comes early: starting on one is a guess
        self._probe_left = 0  # steps left in the current probe (0: not probing)
        self._home = 1  # the setting a probe is compared with

    def record(self, seconds: float, tokens: int, load: float) -> int:
        """Note the step just run on ``self.threads`` threads; return the count for the next.

        ``load``: the 1-minute load average now (this process's threads included).
        """
        self.steps_at[self.threads] += 1
        if self.ceiling == 1 or not self._warm:
            self._warm = True
            return self.threads
        cost = seconds / max(1, tokens)
        self._recent[self.threads].append(cost)
        if self._probe_left:
            return self._continue_probe(cost)
        single, mine = self._recent[1], self._recent[self.threads]
        if self.threads > 1 and single and statistics.median(mine) > statistics.median(single):
            return self._decide(1, f"steps on {self.threads} threads were slower than on one")
        self._countdown -= 1
        if self._countdown > 0:
            return self.threads
        probe = 1 if self.threads > 1 else choose_threads(self.cores, load - self.threads, self.ceiling)
        if probe == self.threads:  # busy: no core free to try
            self._countdown = self._wait
            return self.threads
        self._home, self._probe_left = self.threads, self.probe_steps
        self._recent[probe].clear()
        return self._set(probe)

    def _continue_probe(self, cost: float) -> int:
        home = statistics.median(self._recent[self._home])
        self._probe_left -= 1
        if cost > home:
            return self._decide(self._home, f"probe of {self.threads} threads lost")
        if self._probe_left:
            return self.threads
        if statistics.median(self._recent[self.threads]) < home:
            return self._decide(self.threads, f"probe of {self.threads} threads won")
        return self._decide(self._home, f"probe of {self.threads} threads lost")

    def _decide(self, threads: int, why: str) -> int:
        self._probe_left = 0
        self._wait = self.probe_every if threads > 1 else min(2 * self._wait, self.max_wait)
        self._countdown = self._wait
        if threads != self._home:
            log.info("tiny policy SFT: %d thread(s) from step %d (%s; per token %s)", threads,
                     sum(self.steps_at.values()), why, self._figures())
        self._home = threads
        return self._set(threads)

    def _set(self, threads: int) -> int:
        self.switches += threads != self.threads
        self.threads = threads
        return threads

    def _figures(self) -> str:
        return ", ".join(f"{n} thread(s) {statistics.median(c) * 1e6:.0f} us"
                         for n, c in sorted(self._recent.items()) if c)
