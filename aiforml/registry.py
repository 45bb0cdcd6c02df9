"""Named registries: a table of name -> function that a decorator fills (reward terms,
generation backends), so that a new one is one decorated function in its own module."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def registrar(table: dict[str, T], what: str) -> Callable[[str], Callable[[T], T]]:
    """A decorator factory: ``@named("x")`` puts the function into ``table`` under ``x``; a name
    registered twice fails (``what`` names the kind in the message)."""

    def named(name: str) -> Callable[[T], T]:
        def register(fn: T) -> T:
            if name in table:
                raise ValueError(f"{what} {name!r} is registered twice")
            table[name] = fn
            return fn

        return register

    return named
