"""From a run to the tournament: export a program as files that run without aiforml.

    python -m aiforml.export RUN_DIR --rank 1 --out DIR       # the best program by validation Sharpe
    python -m aiforml.export RUN_DIR --program 3fa2 --out DIR # by (a prefix of) its hash
    python -m aiforml.export RUN_DIR --default --out DIR      # the run's default program

Numerai-style runs get ``pipeline.py`` (a standalone script: the program's steps verbatim
and the locked steps; ``python pipeline.py --data V5_DIR --out predictions.csv`` trains on
the labelled rows and predicts ``live.parquet``) and ``predict.pkl`` (Numerai's model
upload: a cloudpickled ``predict(live_features, live_benchmark_models)`` fitted on every
labelled row of the run's data, or of ``--data``). Trading runs get ``positions.py``
(``python positions.py prices.csv --out positions.csv``). Both get ``program.py``.

Export runs the program's code in this process, outside the sandbox: only because the user
asks for it. Responsible for: writing those files and checking the pickle in a fresh
interpreter. Not responsible for: choosing the program (``choose``), the scripts' text
(``script``, ``templates/``), pickling (``upload``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from aiforml.config import Config
from aiforml.data import load_dataset
from aiforml.export.choose import ChosenProgram
from aiforml.export.script import assemble, load_script
from aiforml.export.upload import (
    build_upload,
    dataset_frame,
    live_stand_in,
    run_in_fresh_interpreter,
)
from aiforml.pipeline.defaults import default_sources
from aiforml.program import Program

Progress = Callable[[str], None]


@dataclass
class ExportResult:
    files: list[Path]
    warnings: list[str] = field(default_factory=list)
    check_output: str = ""  # the fresh interpreter's report on predict.pkl (Numerai task)
    model_kind: str = ""


def docstring(program: ChosenProgram, cfg: Config, usage: str) -> str:
    about = (f"{program.label[:1].upper()}{program.label[1:]}, exported by aiforml from a {cfg.data.resolved_task} run ({cfg.data.source} data). "
             "The program is verbatim below the default steps it does not define; the locked steps "
             "follow. Needs numpy, pandas, pyarrow and what the program imports.")
    return f"{textwrap.fill(about, 92)}\n\n{usage}"


def missing_defaults(program: ChosenProgram, cfg: Config, task: str) -> dict[str, str]:
    """Default sources of the steps the program does not define with a ``def``."""
    defined = set(Program(program.source).defined_steps())
    return {name: src for name, src in default_sources(cfg.env.pipeline, task).items() if name not in defined}


def export_program(program: ChosenProgram, cfg: Config, out: Path, data_dir: Path | None = None,
                   progress: Progress = print) -> ExportResult:
    """Write the export of ``program`` for the run's task into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "program.py").write_text(program.source)
    task = cfg.data.resolved_task
    result = export_trading(program, cfg, out) if task == "trading" else \
        export_numerai(program, cfg, out, data_dir, progress)
    result.files.insert(0, out / "program.py")
    return result


def export_trading(program: ChosenProgram, cfg: Config, out: Path) -> ExportResult:
    settings = {"horizon": cfg.data.horizon, "position_rule": cfg.env.trading.position_rule,
                "position_scale": cfg.env.trading.position_scale}
    usage = "Run: python positions.py prices.csv --out positions.csv [--train-end YYYY-MM-DD]"
    path = out / "positions.py"
    text = write_script(path, "trading", program, cfg, settings, usage)
    compile(text, str(path), "exec")  # a program that does not parse fails here, not at the user's
    return ExportResult(files=[path])


def write_script(path: Path, template: str, program: ChosenProgram, cfg: Config, settings: dict[str, Any],
                 usage: str) -> str:
    """The standalone script of ``program`` on ``template``, written to ``path``; its text."""
    text = assemble(template, program.source, missing_defaults(program, cfg, template), settings,
                    docstring(program, cfg, usage))
    path.write_text(text)
    return text


def export_numerai(program: ChosenProgram, cfg: Config, out: Path, data_dir: Path | None,
                   progress: Progress) -> ExportResult:
    """``pipeline.py``, then ``predict.pkl`` fitted through that same text, then its check."""
    settings = {"feature_set": cfg.data.feature_set, "data": str(data_dir or cfg.data.path or "v5.0"),
                "bin_sample_rows": cfg.env.pipeline.bin_sample_rows, "bin_sample_mb": cfg.env.pipeline.bin_sample_mb}
    usage = "Run: python pipeline.py --data V5_DIR --out predictions.csv [--feature-set NAME]"
    script_path = out / "pipeline.py"
    text = write_script(script_path, "numerai", program, cfg, settings, usage)
    progress("running the program's definitions (outside the sandbox)")
    namespace = load_script(text, str(script_path))
    frame, features, targets, live = training_data(namespace, cfg, data_dir, progress)
    upload = build_upload(namespace, frame, features, targets, progress)
    pickle_path = out / "predict.pkl"
    pickle_path.write_bytes(upload.blob)
    progress("checking predict.pkl in a fresh interpreter without aiforml")
    check = run_in_fresh_interpreter(pickle_path, live if live is not None else live_stand_in(frame, features))
    result = ExportResult(files=[script_path, pickle_path], warnings=upload.warnings,
                          check_output=check.output, model_kind=upload.model_kind)
    if not check.ok:
        raise RuntimeError(f"predict.pkl failed the runner's checks in a fresh interpreter:\n{check.output}")
    return result


def training_data(namespace: dict, cfg: Config, data_dir: Path | None, progress: Progress
                  ) -> tuple[pd.DataFrame, list[str], list[str], pd.DataFrame | None]:
    """The labelled rows to fit on and, when the data has one, its live frame.

    A Numerai v5 folder (``--data``, or the run's ``data.path``) is read by the script's own
    reader; other data (synthetic) through ``aiforml.data.load_dataset``."""
    folder = data_dir or (Path(cfg.data.path).expanduser() if cfg.data.source == "numerai" and cfg.data.path else None)
    if folder is not None and folder.is_dir():
        progress(f"reading {folder}")
        frame, features, targets = namespace["locked_read_labelled"](folder, cfg.data.feature_set)
        live_path = folder / "live.parquet"
        live = pd.read_parquet(live_path, columns=["era", *features]) if live_path.is_file() else None
        return frame, features, targets, live
    if data_dir is not None:
        raise ValueError(f"--data {data_dir}: no such folder (give a Numerai v5 folder)")
    progress(f"loading the run's data ({cfg.data.source})")
    frame, features, targets = dataset_frame(load_dataset(cfg.data))
    return frame, features, targets, None
