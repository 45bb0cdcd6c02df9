"""The main job, from a typed config: ``launch.py`` calls :func:`run`.

For now the main job evaluates the default program end to end (data, sandboxed
pipeline, trusted scores, reward) and writes the result to the run directory; the RL loop
plugs in here when it exists.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from rich.console import Console

from aiforml.config import Config
from aiforml.program import Program

log = logging.getLogger(__name__)


def run(cfg: Config) -> int:
    from aiforml.evaluate import evaluate, render
    from aiforml.pipeline.defaults import default_program_source

    console = Console()
    run_dir = Path(cfg.run_dir or ".").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    result = evaluate(Program(default_program_source(cfg.env.pipeline)), cfg, console)
    render(result, cfg, console)
    out = run_dir / "baseline_result.json"
    out.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    console.print(f"result written to {out}")
    return 0 if result.status == "ok" else 1
