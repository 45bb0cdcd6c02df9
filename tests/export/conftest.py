"""Fixtures of the export tests: a tiny synthetic run directory and the same data as a v5 folder."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from aiforml.archive import Archive, ArchiveRecord
from aiforml.compose import load_config
from aiforml.config import Config
from aiforml.data import load_dataset
from aiforml.data.numerai_writer import write_numerai_folder
from aiforml.program import EvalResult, Program, SplitMetrics

TINY = ["data.synthetic.n_eras=40", "data.synthetic.rows_per_era=150", "data.synthetic.n_features=20",
        "env.pipeline.n_estimators=30"]


def write_run(run_dir: Path, cfg: Config) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
    return run_dir


@pytest.fixture(scope="session")
def tiny_cfg(tmp_path_factory: pytest.TempPathFactory) -> Config:
    cache = tmp_path_factory.mktemp("export-cache")
    return load_config([*TINY, f"data.cache_dir={cache}"])


@pytest.fixture(scope="session")
def v5_dir(tiny_cfg: Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_numerai_folder(load_dataset(tiny_cfg.data), tmp_path_factory.mktemp("v5"), validation_eras=6)


@pytest.fixture
def run_dir(tiny_cfg: Config, tmp_path: Path) -> Path:
    return write_run(tmp_path / "run", tiny_cfg)


def archive_programs(run_dir: Path, programs: list[tuple[str, str, float | None]]) -> list[str]:
    """Archive ``(source, status, val_sharpe)`` as cycle 0 of a run; their hashes."""
    records = [ArchiveRecord(cycle=0, sample_index=k, policy_version=0, program=src, completion=src,
                             result=EvalResult(status=status, message="" if status == "ok" else "it failed",
                                               validation=SplitMetrics(sharpe=sharpe, mean_corr=0.01)),
                             reward=None)
               for k, (src, status, sharpe) in enumerate(programs)]
    with Archive(run_dir / "archive.sqlite") as archive:
        archive.add_cycle(0, records)
    return [Program(src).hash for src, _, _ in programs]


@pytest.fixture
def trading_run(tmp_path: Path) -> Path:
    """A trading run's directory (synthetic prices, the clip position rule)."""
    return write_run(tmp_path / "run", load_config(["data=synthetic_prices", "env.pipeline.n_estimators=20",
                                                    "env.trading.position_rule=clip"]))


@pytest.fixture
def add_programs() -> Callable[[Path, list[tuple[str, str, float | None]]], list[str]]:
    return archive_programs
