"""The loop's phases with in-process stand-ins for the learner and the env pool (no Ray),
the real archive and checkpoints: hand-computed metrics and rewards, sealed test scores kept
out of rewards and selection, infrastructure failures not charged, atomic checkpoints."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from aiforml.archive import Archive
from aiforml.checkpoint import latest_checkpoint, list_checkpoints, save_checkpoint
from aiforml.compose import load_config
from aiforml.config import Config
from aiforml.loop import LoopState, train
from aiforml.program import EvalResult, Program, SplitMetrics, parse_completion
from aiforml.reference import ReferenceSet

GOOD = "```python\ndef define_model():\n    return 1\n```"
BAD = "```python\ndef define_model():\n    return 2\n```"
INFRA = "```python\ndef define_model():\n    return 3\n```"
JUNK = "no code at all"
SAMPLES = [GOOD, BAD, INFRA, JUNK]  # one cycle: prompts_per_cycle 2 x samples_per_prompt 2
VAL_SHARPE = 1.0


@dataclass
class FakeRollouts:
    texts: list[str]
    stats: dict[str, float] = field(default_factory=lambda: {"time/generate": 0.01, "tokens_per_s": 5.0})


class FakeLearner:
    def __init__(self, samples: list[str] = SAMPLES) -> None:
        self.samples, self.updates, self.generated, self.imitated = samples, [], 0, []

    def generate(self, prompts: list[str], n: int) -> FakeRollouts:
        assert len(prompts) * n == len(self.samples)
        self.generated += 1
        return FakeRollouts(list(self.samples))

    def update(self, rollouts: FakeRollouts, rewards: list[float],
               imitate: list[bool] | None = None) -> dict[str, float]:
        self.updates.append(list(rewards))
        self.imitated.append(imitate)
        return {"ppo/policy_loss": 0.5, "time/update": 0.01}

    def save(self, path: str) -> str:
        Path(path).mkdir(parents=True)
        (Path(path) / "weights.txt").write_text(str(len(self.updates)))
        return path


class FakePool:
    """ok (val Sharpe 1, a far better sealed-test Sharpe), runtime_error, or infra_error."""

    def __init__(self, test_sharpe: float = 5.0) -> None:
        self.test_sharpe, self.seen = test_sharpe, []

    def evaluate(self, programs: list[Program]) -> list[EvalResult]:
        self.seen.append([p.source for p in programs])
        return [self._result(p) for p in programs]

    def _result(self, program: Program) -> EvalResult:
        if "return 1" in program.source:
            split = SplitMetrics(mean_corr=0.02, sharpe=VAL_SHARPE, n_eras=3, per_era_corr=[0.01, 0.02, 0.03])
            test = SplitMetrics(mean_corr=0.09, sharpe=self.test_sharpe, n_eras=3, per_era_corr=[0.1, 0.1, 0.07])
            return EvalResult(status="ok", program_hash=program.hash, validation=split, test=test)
        status = "runtime_error" if "return 2" in program.source else "infra_error"
        return EvalResult(status=status, program_hash=program.hash, message="boom")


class FakeLogger:
    def __init__(self) -> None:
        self.logged: dict[int, dict[str, float]] = {}

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.logged.setdefault(step, {}).update(metrics)


@pytest.fixture
def cfg() -> Config:
    return load_config(["+experiment=smoke", "loop.cycles=3", "loop.progress=false"])


def run_loop(cfg: Config, run_dir: Path, learner=None, pool=None, state=None):
    learner, pool, logger = learner or FakeLearner(), pool or FakePool(), FakeLogger()
    with Archive(run_dir / "archive.sqlite") as archive:
        final = train(cfg, learner, pool, archive, logger, "PROMPT\n", run_dir, state or LoopState(), {"k": 1})
        rows = archive.rows(("cycle", "sample_index", "policy_version", "status", "reward", "val_sharpe",
                             "test_sharpe"))
    return final, learner, pool, logger, rows


def test_three_cycles_metrics_rewards_archive_and_checkpoints(cfg: Config, tmp_path: Path) -> None:
    state, learner, pool, logger, rows = run_loop(cfg, tmp_path)
    good = 0.7 * math.tanh(VAL_SHARPE)  # 0.3 * compile (0) + 0.7 * tanh(Sharpe / 1)
    mean = (good - 0.3 - 0.3) / 3  # infra_error is not charged: the batch mean of the other three
    assert learner.updates == [pytest.approx([good, -0.3, mean, -0.3])] * 3
    assert pool.seen[0] == [parse_completion(t).source for t in (GOOD, BAD, INFRA)], "junk never reaches the pool"
    m = logger.logged[2]
    assert m["env/compile_rate"] == pytest.approx(1 / 3)  # 1 ran of 3 charged samples
    assert m["env/errors/parse_error"] == m["env/errors/runtime_error"] == m["env/errors/infra_error"] == 0.25
    assert m["env/errors/timeout"] == 0.0 and m["env/parse_rate"] == 0.75
    assert m["reward/mean"] == pytest.approx(mean) and m["reward/max"] == pytest.approx(good)
    assert m["reward/term/compile"] == pytest.approx(-2 / 3), "each term's mean over the charged samples"
    assert m["reward/term/performance"] == pytest.approx(math.tanh(VAL_SHARPE) / 3)
    assert m["val/best_sharpe"] == VAL_SHARPE, "best Sharpe is validation's, never the sealed test's"
    assert m["ppo/policy_loss"] == 0.5 and "learner/update_s" in m and "rollout/generate" in m
    for phase in ("prompt", "rollout", "parse", "evaluate", "reward", "update", "archive", "checkpoint"):
        assert m[f"time/{phase}"] >= 0.0
    assert state == LoopState(cycle=3, best_val_sharpe=VAL_SHARPE, best_program_hash=parse_completion(GOOD).hash)
    assert [(r["cycle"], r["sample_index"]) for r in rows] == [(c, i) for c in (1, 2, 3) for i in range(4)]
    assert [r["policy_version"] for r in rows[::4]] == [0, 1, 2]
    assert rows[0]["test_sharpe"] == 5.0 and rows[0]["val_sharpe"] == VAL_SHARPE, "test scores go to the archive"
    assert rows[2]["status"] == "infra_error" and rows[2]["reward"] is None
    assert [p.name for p in list_checkpoints(tmp_path)] == ["cycle-000002", "cycle-000003"], "the last 2 kept"
    last = latest_checkpoint(tmp_path)
    assert last.cycle == 3 and last.state["best_val_sharpe"] == VAL_SHARPE
    assert (last.learner_dir / "weights.txt").read_text() == "3"


def test_sealed_test_scores_change_no_reward_and_no_selection(cfg: Config, tmp_path: Path) -> None:
    runs = [run_loop(cfg, tmp_path / str(t), pool=FakePool(test_sharpe=t)) for t in (-3.0, 5.0)]
    (state_a, learner_a, *_), (state_b, learner_b, *_) = runs
    assert learner_a.updates == learner_b.updates and state_a == state_b


def test_imitation_targets_reach_the_learner_only_when_on(cfg: Config, tmp_path: Path) -> None:
    samples = [GOOD, BAD, GOOD, JUNK]  # two ok samples, same reward and model family
    _, off, *_ = run_loop(cfg, tmp_path / "off", learner=FakeLearner(samples))
    assert off.imitated == [None] * 3
    cfg.algo.imitation_coef = 0.5
    _, on, *_ = run_loop(cfg, tmp_path / "on", learner=FakeLearner(samples))
    assert on.imitated == [[True, False, False, False]] * 3, "the family keeps half of the candidates"


def test_a_cycle_with_no_reward_skips_the_update(cfg: Config, tmp_path: Path) -> None:
    state, learner, _, logger, rows = run_loop(cfg, tmp_path, learner=FakeLearner([INFRA] * 4))
    assert learner.updates == [] and logger.logged[1]["update/skipped"] == 1.0
    assert logger.logged[1]["reward/mean"] is None and logger.logged[1]["env/compile_rate"] is None, \
        "no sample was charged: undefined, not 0"
    assert state.cycle == 3 and state.best_val_sharpe is None and logger.logged[1]["val/best_sharpe"] is None
    assert all(r["reward"] is None for r in rows)


def test_checkpoint_every_k_and_always_the_last(cfg: Config, tmp_path: Path) -> None:
    cfg.loop.checkpoint_every, cfg.loop.keep_checkpoints = 2, 5
    run_loop(cfg, tmp_path)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["cycle-000002", "cycle-000003"]


def test_loop_continues_after_the_state_it_is_given(cfg: Config, tmp_path: Path) -> None:
    state, learner, _, logger, rows = run_loop(cfg, tmp_path, state=LoopState(cycle=2, best_val_sharpe=3.0))
    assert learner.generated == 1 and sorted(logger.logged) == [3]
    assert state.cycle == 3 and state.best_val_sharpe == 3.0, "a better earlier best is kept"
    assert {r["cycle"] for r in rows} == {3} and rows[0]["policy_version"] == 2


def test_a_checkpoint_is_complete_or_absent(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 1, FakeLearner().save, {"best_val_sharpe": None}, {"k": 1})

    def dies(path: str) -> str:
        Path(path).mkdir(parents=True)
        raise RuntimeError("killed while saving")

    with pytest.raises(RuntimeError):
        save_checkpoint(tmp_path, 2, dies, {}, {"k": 1})
    stale = tmp_path / "checkpoints" / ".tmp-cycle-000003-abc"  # what a SIGKILL mid-save leaves
    stale.mkdir()
    (stale / "state.json").write_text("{\"cycle\": 3}")
    assert latest_checkpoint(tmp_path).cycle == 1
    save_checkpoint(tmp_path, 2, FakeLearner().save, {}, {"k": 1})
    assert latest_checkpoint(tmp_path).cycle == 2 and not stale.exists()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["cycle-000001", "cycle-000002"]


class PredictingPool(FakePool):
    """FakePool whose program that runs also returns validation predictions."""

    def _result(self, program: Program) -> EvalResult:
        result = super()._result(program)
        if result.status == "ok":
            result.predictions = {"validation": np.array([0.1, 0.3, 0.2, 0.2, 0.3, 0.1])}
        return result


def test_uniqueness_is_judged_against_earlier_cycles_and_logged(tmp_path: Path) -> None:
    cfg = load_config(["+experiment=smoke", "loop.cycles=2", "loop.progress=false", "reward.weights.uniqueness=0.5",
                       "reward.contribution_scale=1.0"])
    eras, baseline = np.array([1, 1, 1, 2, 2, 2]), np.array([0.1, 0.2, 0.3, 0.1, 0.2, 0.3])
    reference = ReferenceSet(eras, np.array([0, 1, 0.5, 0, 1, 0.5]), baseline, cfg.reward, tmp_path / "preds")
    learner, logger = FakeLearner(), FakeLogger()
    with Archive(tmp_path / "archive.sqlite") as archive:
        train(cfg, learner, PredictingPool(), archive, logger, "PROMPT\n", tmp_path, LoopState(), {},
              reference=reference)
    # cycle 1: per era, gaussian ranks (-q, q, 0) and (0, q, -q) orthogonalized to the
    # baseline's (-q, 0, q) are (-q/2, q, -q/2); dotted with the target x 4 centred, (-2, 2, 0),
    # over 3 rows: q = ppf(5/6) in both eras, uniqueness tanh(q / 1.0)
    good = 0.7 * math.tanh(VAL_SHARPE)
    assert learner.updates[0][0] == pytest.approx(good + 0.5 * math.tanh(norm.ppf(5 / 6)))
    # cycle 2: the same program is now archived: a duplicate, no uniqueness credit
    assert learner.updates[1][0] == pytest.approx(good)
    first, second = logger.logged[1], logger.logged[2]
    assert first["uniqueness/duplicate_rate"] == 0.0 and second["uniqueness/duplicate_rate"] == 1.0
    assert first["diversity/family/other"] == 1.0  # GOOD and BAD: a define_model of no known family
    assert first["diversity/clusters"] == 1
    assert (tmp_path / "preds" / f"{parse_completion(GOOD).hash}.npy").is_file()
