"""The pure parts: how an exit is classified, and how output is capped."""

from __future__ import annotations

import dataclasses

import pytest

from aiforml.sandbox.capture import CappedBuffer
from aiforml.sandbox.result import ExitFacts, classify, exit_info

EXIT_0 = 0
EXIT_1 = 1 << 8


def facts(**changes: object) -> ExitFacts:
    base = ExitFacts(
        waitstatus=EXIT_0, started=True, killed=False, timed_out=False, exit_is_shell_coded=True,
        oom_kills=0, hit_memory_limit=False, cpu_s=0.5, stderr_tail="",
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "outcome", "code", "sig"),
    [
        ({}, "exited", 0, None),
        ({"waitstatus": EXIT_1}, "exited", 1, None),
        ({"waitstatus": (128 + 9) << 8}, "exited", None, 9),  # bwrap: killed by SIGKILL
        ({"waitstatus": (128 + 24) << 8}, "timeout", None, 24),  # SIGXCPU: CPU limit
        ({"waitstatus": (128 + 9) << 8, "cpu_s": 10.0}, "timeout", None, 9),  # hard CPU limit
        ({"waitstatus": (128 + 9) << 8, "oom_kills": 1}, "memory", None, 9),
        ({"waitstatus": (128 + 9) << 8, "hit_memory_limit": True}, "memory", None, 9),
        ({"waitstatus": EXIT_1, "stderr_tail": "...\nMemoryError\n"}, "memory", 1, None),
        ({"waitstatus": EXIT_0, "stderr_tail": "MemoryError"}, "exited", 0, None),
        ({"timed_out": True, "waitstatus": 9}, "timeout", None, 9),
        ({"killed": True, "timed_out": True, "waitstatus": 9}, "killed", None, 9),
        ({"started": False, "waitstatus": EXIT_1, "stderr_tail": "bwrap: no such dir"}, "spawn_error", 1, None),
        ({"exit_is_shell_coded": False, "waitstatus": 137 << 8}, "exited", 137, None),
    ],
)
def test_classify(changes: dict[str, object], outcome: str, code: int | None, sig: int | None) -> None:
    given = facts(**changes)
    got, message = classify(given, wall_s=2.0, cpu_limit_s=5, memory_mb=512)
    assert (got, *exit_info(given)) == (outcome, code, sig), message


def test_capped_buffer_keeps_head_and_tail() -> None:
    buffer = CappedBuffer(10)
    for chunk in (b"0123", b"456789", b"abcdef", b"XYZ"):
        buffer.feed(chunk)
    assert buffer.text() == "01234\n[... 9 bytes truncated]\nefXYZ"
    small = CappedBuffer(100)
    small.feed(b"short")
    assert small.text() == "short"
    assert CappedBuffer(0).text() == ""
