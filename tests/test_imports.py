"""The package's import graph has no cycles, function-local imports included.

grimp (the graph library behind import-linter) reads every import statement of every
module, also those inside functions; a cycle is a direct import ``a -> b`` with a chain
back ``b -> ... -> a``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp
import pytest


def import_cycles(package: str) -> list[tuple[str, ...]]:
    """Each cycle once, as the chain of modules that closes it (shortest chain back)."""
    graph = grimp.build_graph(package, cache_dir=None)
    seen: set[frozenset[str]] = set()
    cycles = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back and frozenset(back) not in seen:
                seen.add(frozenset(back))
                cycles.append((module, *back))
    return cycles


def test_the_check_finds_a_cycle_through_a_function_local_import(tmp_path: Path) -> None:
    pkg = tmp_path / "cyclepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyclepkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from cyclepkg.c import g\n    return g\n")
    (pkg / "c.py").write_text("import cyclepkg.a\n\ndef g():\n    return 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        cycles = import_cycles("cyclepkg")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == "cyclepkg"]:
            del sys.modules[name]
    assert len(cycles) == 1
    assert set(cycles[0]) == {"cyclepkg.a", "cyclepkg.b", "cyclepkg.c"}


@pytest.mark.parametrize("package", ["aiforml"])
def test_no_import_cycles(package: str) -> None:
    cycles = import_cycles(package)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
