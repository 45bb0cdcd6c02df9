"""Tests of the warm start's thread rule: ceiling, starting count, and the governor on made-up timings."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aiforml.policy.tiny.threads import ThreadGovernor, choose_threads, most_threads

STEPS = 282  # the default build's SFT steps
TOKENS = 32 * 53  # one default batch, padded


@pytest.mark.parametrize(
    ("cores", "load", "ceiling", "expected"),
    [
        (2, 0.0, 2, 2),  # quiet 2-core machine: both cores
        (2, 0.4, 2, 2),  # a little background noise rounds away
        (2, 0.6, 2, 1),  # one busy process (or most of one): leave its core to it
        (2, 1.0, 2, 1),
        (2, 6.0, 2, 1),  # overloaded: still one, never zero
        (1, 0.0, 4, 1),  # one usable core
        (16, 3.2, 8, 8),  # plenty free: the ceiling caps it
        (16, 10.0, 8, 6),  # 6 cores left free
    ],
)
def test_choose_threads_leaves_the_busy_cores_to_others(cores, load, ceiling, expected):
    assert choose_threads(cores, load, ceiling) == expected


def test_most_threads_respects_config_torch_and_affinity():
    assert most_threads(configured=2, torch_threads=8, cores=8) == 2
    assert most_threads(configured=8, torch_threads=1, cores=8) == 1  # Ray actor: OMP_NUM_THREADS=1
    assert most_threads(configured=8, torch_threads=8, cores=3) == 3  # taskset to 3 cores
    assert most_threads(configured=2, torch_threads=0, cores=2) == 1


def simulate(gov: ThreadGovernor, cost: Callable[[int, int], float], load: Callable[[int], float]) -> float:
    """Run ``STEPS`` steps whose seconds are ``cost(step, threads)``; total seconds."""
    total = 0.0
    for step in range(STEPS):
        seconds = cost(step, gov.threads)
        total += seconds
        gov.record(seconds, TOKENS, load(step))
    return total


# Measured on the 2-core VM: 0.17 s/step on 2 threads, 0.30 on one; the demo saw
# 2 threads 19x slower than quiet beside one CPU-bound process.
QUIET = {1: 0.30, 2: 0.17}
HOGGED = {1: 0.30, 2: 4.8}
SINGLE = STEPS * QUIET[1]


def busy_while(hogged: Callable[[int], bool]) -> tuple[Callable[[int, int], float], Callable[[int], float]]:
    """(cost, load) of a 2-core machine with a hog during the steps where ``hogged``; the
    load counts this process's thread and the hog's, and follows at once (kinder than the
    real 1-minute average, which lags: see the unseen-hog test)."""
    return (lambda s, t: (HOGGED if hogged(s) else QUIET)[t]), (lambda s: 2.0 if hogged(s) else 1.0)


def test_quiet_machine_runs_on_both_cores_after_a_few_steps():
    gov = ThreadGovernor(ceiling=2, cores=2)
    total = simulate(gov, *busy_while(lambda s: False))
    assert gov.steps_at[1] < 3 + STEPS // 30  # the start, then one-step probes of one thread that lose
    assert total < 0.65 * SINGLE


def test_hog_unseen_by_the_load_is_never_much_slower_than_one_thread():
    # The load average has not caught up with the hog: it says a core is free.
    gov = ThreadGovernor(ceiling=2, cores=2)
    total = simulate(gov, lambda s, t: HOGGED[t], lambda s: 1.0)
    assert gov.steps_at[2] <= 4  # one-step probes, spaced 30, 60, 120 steps apart
    assert total < 1.2 * SINGLE  # 1.16: three one-step probes at 19x


def test_hog_seen_by_the_load_costs_no_probe_at_all():
    gov = ThreadGovernor(ceiling=2, cores=2)
    total = simulate(gov, *busy_while(lambda s: True))
    assert gov.steps_at[2] == 0 and total == pytest.approx(SINGLE)


def test_hog_arriving_mid_build_drops_to_one_thread_within_a_few_steps():
    gov = ThreadGovernor(ceiling=2, cores=2)
    simulate(gov, *busy_while(lambda s: s >= 100))
    # On 2 threads from step 3 to 99, then the two slow steps the median needs.
    assert 90 <= gov.steps_at[2] <= 97 + 2


def test_hog_leaving_mid_build_returns_to_two_threads():
    gov = ThreadGovernor(ceiling=2, cores=2)
    simulate(gov, *busy_while(lambda s: s < 100))
    assert gov.steps_at[2] > STEPS - 100 - 40


def test_one_slow_step_alone_does_not_drop_threads():
    gov = ThreadGovernor(ceiling=2, cores=2)
    simulate(gov, lambda s, t: 5.0 if s == 120 else QUIET[t], lambda s: 1.0)
    assert gov.steps_at[2] > 0.9 * STEPS


def test_many_cores_probe_only_the_free_ones():
    gov = ThreadGovernor(ceiling=8, cores=16)
    simulate(gov, lambda s, t: 1.0 / t, lambda s: 11.0)  # 10 busy besides this process: 6 free
    assert set(gov.steps_at) == {1, 6}


def test_one_thread_ceiling_never_changes():
    gov = ThreadGovernor(ceiling=1, cores=2)
    simulate(gov, *busy_while(lambda s: False))
    assert gov.steps_at == {1: STEPS} and gov.switches == 0
