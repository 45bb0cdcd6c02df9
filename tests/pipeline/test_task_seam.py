"""A third task is one Task subclass registered by name, chosen with ``data.task``
(docs/extending.md's worked example: Numerai-style eras scored on an auxiliary target)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from aiforml.config import DataConfig, EnvConfig, PipelineConfig
from aiforml.data import load_dataset, split_dataset
from aiforml.metrics import score_split
from aiforml.pipeline.evaluator import Evaluator
from aiforml.program import Program, SplitMetrics
from aiforml.tasks import TASKS
from aiforml.tasks.numerai import NumeraiTask


class AuxTargetTask(NumeraiTask):
    """Numerai-style eras, scored on the first auxiliary target instead of ``target``."""

    name = "numerai_aux"

    def score(self, predictions: np.ndarray, rows: np.ndarray, baseline: np.ndarray | None) -> SplitMetrics:
        d = self.dataset
        return score_split(predictions, d.targets[rows, 1], d.eras[rows], baseline=baseline)


@pytest.fixture
def aux_task():
    TASKS[AuxTargetTask.name] = AuxTargetTask
    yield AuxTargetTask.name
    del TASKS[AuxTargetTask.name]


def test_a_registered_task_chosen_by_data_task_scores_the_programs(aux_task, data_cfg, work_root, tmp_path) -> None:
    cfg = dataclasses.replace(data_cfg, task=aux_task)
    dataset = load_dataset(cfg)
    split = split_dataset(dataset, cfg)
    evaluator = Evaluator(dataset, split, EnvConfig(pipeline=PipelineConfig(n_estimators=20)),
                          work_root=work_root, cache_dir=tmp_path)
    try:
        assert isinstance(evaluator.task, AuxTargetTask)
        result = evaluator.evaluate(Program(evaluator.task.default_program()))
        assert result.status == "ok", result.message
        rows = evaluator.task.validation_rows
        by_hand = score_split(evaluator.validation_predictions(result), dataset.targets[rows, 1], dataset.eras[rows])
        main = score_split(evaluator.validation_predictions(result), dataset.targets[rows, 0], dataset.eras[rows])
        assert result.validation.mean_corr == pytest.approx(by_hand.mean_corr, rel=1e-4)  # float32 predictions kept
        assert result.validation.mean_corr != pytest.approx(main.mean_corr, rel=1e-2), "scored on the auxiliary target"
    finally:
        evaluator.close()


def test_an_unregistered_task_fails_naming_the_key(data_cfg) -> None:
    dataset = load_dataset(dataclasses.replace(data_cfg, task="numerai_aux"))
    with pytest.raises(ValueError, match=r"data.task=numerai_aux: no such task"):
        Evaluator(dataset, split_dataset(dataset, data_cfg), EnvConfig())
    with pytest.raises(ValueError, match="data.task=trading does not fit"):
        DataConfig(task="trading").validate()


def test_feature_neutral_corr_stays_within_its_memory_budget(dataset, split, caplog):
    """Its per-era bases are the one per-actor store that grows with width times rows; above
    env.pipeline.fnc_basis_mb the score goes without it (None) and says which key to raise."""
    import logging

    from aiforml.tasks import build_task
    from aiforml.tasks.numerai import basis_mb

    rows = build_task(dataset, split, EnvConfig()).validation_rows
    need = {form: basis_mb(dataset.eras[rows], len(dataset.feature_names), form) for form in ("basis", "map")}
    between = int(np.ceil(need["map"]))  # room for the map form only
    assert need["basis"] > between >= need["map"] > 0
    predictions = np.random.default_rng(0).normal(size=len(rows))
    scored = {}
    for budget in (EnvConfig().pipeline.fnc_basis_mb, between, 0):
        cfg = EnvConfig()
        cfg = dataclasses.replace(cfg, pipeline=dataclasses.replace(cfg.pipeline, fnc_basis_mb=budget))
        task = build_task(dataset, split, cfg)
        with caplog.at_level(logging.WARNING, logger="aiforml.tasks.numerai"):
            scored[budget] = task.score(predictions, rows, None)
    full = scored[EnvConfig().pipeline.fnc_basis_mb].feature_neutral_corr
    assert full is not None and scored[between].feature_neutral_corr == pytest.approx(full, abs=1e-9)
    assert scored[0].feature_neutral_corr is None and scored[0].sharpe is not None
    assert "env.pipeline.fnc_basis_mb=0" in caplog.text
