"""``EnvActor``: one environment (an MCP server over an episode session) in a Ray actor.

Responsible for: building the session and its MCP server from the data set handed over
by the pool (through the Ray object store, or on one machine as small fields plus the
feature view's file, memory-mapped: the matrix is then held once per machine), warming the
default program's baseline predictions, and evaluating one program at a time by calling
its own server's ``evaluate_program`` tool through the in-process MCP client, with the
per-program deadline as the client's timeout (the server then kills the sandbox). The
episode state is reset before each program. Returns the tool's structured content read back
once into an :class:`~aiforml.program.EvalResult` (the tool's output schema is that record's
own), with, for a program that ran, its validation predictions beside it in
``result.predictions["validation"]`` (for the driver's uniqueness scores; never part of a
tool reply).

Not responsible for: parallelism, retries and caching (``pool.py``). The class is plain
Python with async methods; the pool wraps it with ``ray.remote`` (``max_concurrency=1``:
one program at a time) and its own resource options.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import ray
from mcp import Client, MCPError
from mcp.types import REQUEST_TIMEOUT

from aiforml.config import Config
from aiforml.data.dataset import Dataset, EraSplit
from aiforml.env.models import read_result
from aiforml.env.server import build_server
from aiforml.env.session import EnvSession
from aiforml.pipeline.handoff import open_shared_dataset
from aiforml.program import EvalResult, Program


class EnvActor:
    """Holds one MCP server and the data set; evaluates programs through the MCP client."""

    def __init__(self, cfg: Config, dataset: Dataset | dict[str, Any], split: EraSplit,
                 baseline_dir: str | None = None, work_root: str | None = None,
                 features_dir: str | None = None) -> None:
        """``features_dir``: ``dataset`` is :func:`~aiforml.pipeline.handoff.shared_dataset`'s
        fields, the matrix to memory-map from this hand-off view (the pool's single-node case)."""
        if features_dir is not None:
            dataset = open_shared_dataset(dataset, Path(features_dir))
        self.features_file = getattr(dataset.features, "filename", None)
        self.session = EnvSession(cfg, dataset, split, baseline_dir=Path(baseline_dir) if baseline_dir else None,
                                  work_root=Path(work_root) if work_root else None)
        self.server = build_server(self.session)
        self.evaluated = 0

    async def ready(self) -> dict[str, Any]:
        """Warm the baseline (cached on disk after the first actor) and say who we are."""
        await anyio.to_thread.run_sync(self.session.evaluator.baseline_predictions)
        return {"pid": os.getpid(), "data_version": self.session.evaluator.data_version,
                "features_file": str(self.features_file) if self.features_file else None,
                "isolation": self.session.evaluator.sandbox.isolation,
                "node_id": ray.get_runtime_context().get_node_id() if ray.is_initialized() else None}

    async def evaluate(self, source: str, deadline_s: float) -> EvalResult:
        """Evaluate one program: its status and scores, and its validation predictions when it ran."""
        self.session.reset()
        self.session.last_validation = None
        self.evaluated += 1
        result = await self._call(source, deadline_s)
        last = self.session.last_validation
        if result.ran and last is not None and last[0] == Program(source).hash and last[1] is not None:
            result.predictions["validation"] = last[1]
        return result

    def stats(self) -> dict[str, int]:
        return {"pid": os.getpid(), "evaluated": self.evaluated}

    async def _call(self, source: str, deadline_s: float) -> EvalResult:
        async with Client(self.server) as client:
            try:
                reply = await client.call_tool("evaluate_program", {"code": source}, read_timeout_seconds=deadline_s)
            except MCPError as exc:
                if exc.code == REQUEST_TIMEOUT:  # the server killed the sandbox; the program's time ran out
                    status, message = "timeout", f"no result within the pool's deadline of {deadline_s:.0f}s"
                else:
                    status, message = "infra_error", f"MCP error {exc.code}: {exc}"
                return self._failure(source, status, message)
        if reply.is_error or reply.structured_content is None:
            text = " ".join(getattr(block, "text", "") for block in reply.content)
            return self._failure(source, "infra_error", f"the server refused the call: {text[:500]}")
        return read_result(reply.structured_content)

    def _failure(self, source: str, status: str, message: str) -> EvalResult:
        return EvalResult(status=status, message=message, program_hash=Program(source).hash,  # type: ignore[arg-type]
                          data_version=self.session.evaluator.data_version)

