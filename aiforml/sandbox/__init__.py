"""Isolated execution of untrusted generated code: :class:`Sandbox` runs one command in a
bubblewrap sandbox (or a loudly reported weaker fallback) under memory, process, CPU,
wall-clock and output limits, and returns a :class:`SandboxResult` of text and exit facts.

It knows nothing of pipelines or scores. See :mod:`aiforml.sandbox.sandbox`.
"""

from aiforml.sandbox.result import Outcome, SandboxResult
from aiforml.sandbox.sandbox import Sandbox

__all__ = ["Outcome", "Sandbox", "SandboxResult"]
