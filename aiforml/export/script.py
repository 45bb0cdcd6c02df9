"""Standalone scripts from a program: the program's steps verbatim plus the locked steps.

A generated script reads top to bottom: a docstring saying what it is and how to run it,
the imports the locked steps need, ``SETTINGS`` (plain values from the run's config), the
default source of each step the program does not define, the program verbatim (whatever it
binds replaces a default, as in the sandbox harness), then the locked steps pasted from a
template in ``templates/`` (``numerai.py``: ``pipeline.py``; ``trading.py``:
``positions.py``) and a ``__main__`` guard. It imports nothing of aiforml.

Responsible for: assembling that text, and running it into a fresh namespace whose module
name is not importable, so that cloudpickle pickles its functions by value.
Not responsible for: choosing the program, fitting, or writing files (``aiforml.export``).
"""

from __future__ import annotations

import ast
import builtins
import linecache
import pprint
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).with_name("templates")
MARKER = "# --- LOCKED STEPS ---"
NAMESPACE = "aiforml_exported_pipeline"  # a module name no interpreter can import


def template_parts(name: str) -> tuple[str, str]:
    """The import lines of ``templates/<name>.py`` and its text after the locked-steps marker."""
    text = (TEMPLATES / f"{name}.py").read_text()
    head, marker, body = text.partition(MARKER)
    assert marker, f"templates/{name}.py lacks the line {MARKER!r}"
    imports = [ast.get_source_segment(head, node) for node in ast.parse(head).body
               if isinstance(node, ast.Import | ast.ImportFrom)]
    return "\n".join(s for s in imports if s), body.strip() + "\n"


def assemble(template: str, program: str, defaults: dict[str, str], settings: dict[str, Any],
             docstring: str) -> str:
    """The whole script: docstring, imports, SETTINGS, defaults, the program, the locked steps."""
    imports, body = template_parts(template)
    default_text = "\n\n".join(src.strip() + "\n" for src in defaults.values()) or "# (none: the program defines every step)\n"
    return (f'#!/usr/bin/env python\n"""{docstring.strip()}\n"""\n{imports}\n\n'
            f"SETTINGS = {pprint.pformat(settings, sort_dicts=False)}\n\n"
            "# --- default steps the program does not define (it may still replace them) ---\n"
            f"{default_text}\n\n"
            "# --- the program, verbatim ---\n"
            f"{program.strip()}\n\n\n"
            "# --- locked steps (as the sandbox runs them) ---\n"
            f"{body}\n\n"
            'if __name__ == "__main__":\n'
            "    sys.exit(locked_main(sys.argv[1:]))\n")


def load_script(text: str, filename: str) -> dict[str, Any]:
    """Run a generated script's definitions into a fresh namespace (its ``__main__`` guard stays
    shut). This runs the program's code in this process: only at the user's request."""
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": NAMESPACE, "__builtins__": builtins}
    exec(compile(text, filename, "exec"), namespace)  # noqa: S102 - export runs the program by request
    return namespace
