"""The training loop: a short list of named, timed phases per cycle.

    prompt -> rollout (learner.generate) -> parse -> evaluate (env pool) -> reward
           -> update (learner.update, optionally imitating the best) -> archive + log -> checkpoint

Responsible for: running cycles ``state.cycle + 1 .. cfg.loop.cycles`` with the pieces it is
handed, the per-cycle metrics (``env/compile_rate``, ``env/errors/<status>``,
``reward/mean|max``, ``val/best_sharpe``, the learner's ``ppo/*`` or ``grpo/*`` stats,
``time/<phase>``, and from ``aiforml.reference`` ``uniqueness/*`` and ``aiforml.diversity`` ``diversity/*``), the
progress bar, and when to checkpoint.
Not responsible for: building the learner, the pool, the archive or the logger, Ray, or
the run directory (``aiforml.run`` does all that), nor any maths (``aiforml.algo``,
``aiforml.reward``).

Two rules kept here:
- Sealed test scores may arrive in results (so the archive can store them), but they are
  stripped (:func:`without_test`) before anything reads a result for a reward, a metric
  that steers the run, or a selection; prompts never contain results.
- A sample whose evaluation failed for infrastructure reasons (``infra_error``, reward
  None) is archived with no reward and trained on with the batch's mean reward, which
  gives it about zero advantage; when no sample of a cycle has a reward, the update is
  skipped.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiforml.algo.imitation import imitation_mask
from aiforml.archive import ArchiveRecord
from aiforml.checkpoint import save_checkpoint
from aiforml.config import Config
from aiforml.descriptors import describe_program
from aiforml.diversity import batch_diversity, diversity_metrics
from aiforml.logger import ProgressDisplay
from aiforml.program import PROGRAM_FAILURES, EvalResult, Program, parse_completion
from aiforml.reference import ReferenceSet, UniquenessScore, feedback_prompt, uniqueness_metrics
from aiforml.reward import RewardBreakdown, compute_reward


class Learner(Protocol):
    """What the loop needs of the learner (``aiforml.run.RemoteLearner`` wraps the Ray actor)."""

    def generate(self, prompts: list[str], n: int) -> Any: ...
    def update(self, rollouts: Any, rewards: list[float], imitate: list[bool] | None = None
               ) -> dict[str, float]: ...
    def save(self, path: str) -> str: ...


class Pool(Protocol):
    def evaluate(self, programs: Sequence[Program]) -> list[EvalResult]: ...


class Archive(Protocol):
    def add_cycle(self, cycle: int, records: list[Any]) -> None: ...


class Logger(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...


@dataclass
class LoopState:
    """What the loop carries from cycle to cycle; saved in every checkpoint."""

    cycle: int = 0  # cycles completed (= policy updates attempted)
    best_val_sharpe: float | None = None  # best validation Sharpe of any program so far
    best_program_hash: str | None = None  # the program that scored it

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopState:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Cycle:
    """One cycle's samples, in the learner's row order."""

    completions: list[str]
    programs: list[Program | None]
    results: list[EvalResult] = field(default_factory=list)
    breakdowns: list[RewardBreakdown | None] = field(default_factory=list)  # None: infra_error
    uniqueness: list[UniquenessScore | None] = field(default_factory=list)  # None: did not run

    @property
    def rewards(self) -> list[float | None]:
        return [None if b is None else b.reward for b in self.breakdowns]


class PhaseTimer:
    """``with timer("rollout"): ...`` records ``time/rollout`` and shows the phase running."""

    def __init__(self, progress: ProgressDisplay) -> None:
        self.progress = progress
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.progress.phase(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.times[f"time/{name}"] = time.perf_counter() - start


OnCycle = Callable[[int, dict[str, Any], LoopState], None]  # (cycle, metrics, state), at the cycle's end


def train(cfg: Config, learner: Learner, pool: Pool, archive: Archive, logger: Logger, prompt: str,
          run_dir: Path, state: LoopState, config_dict: dict[str, Any],
          reference: ReferenceSet | None = None, on_cycle: OnCycle | None = None) -> LoopState:
    """Run the remaining cycles of ``cfg.loop``; returns the final state.

    ``reference`` (validation predictions of the programs so far, ``aiforml.reference``)
    gives uniqueness scores, diversity clusters and prompt feedback; without it the
    uniqueness term falls back to each result's baseline corr. ``on_cycle``, when given, is
    called at the end of every cycle (a sweep reports to Tune there).
    """
    loop = cfg.loop
    with ProgressDisplay(loop.cycles, state.cycle, loop.progress) as progress:
        for cycle in range(state.cycle + 1, loop.cycles + 1):
            timer = PhaseTimer(progress)
            with timer("prompt"):
                prompts = build_prompts(feedback_prompt(prompt, reference, cfg.diversity), loop.prompts_per_cycle)
            with timer("rollout"):
                rollouts = learner.generate(prompts, loop.samples_per_prompt)
            with timer("parse"):
                batch = parse_rollouts(rollouts.texts)
            with timer("evaluate"):
                batch.results = evaluate_programs(pool, batch.programs)
            with timer("reward"):
                score_rewards(batch, cfg, reference)
            with timer("update"):
                imitate = imitation_targets(batch) if cfg.algo.imitation_coef > 0 else None
                stats = update_policy(learner, rollouts, batch.rewards, imitate)
            with timer("archive"):
                archive.add_cycle(cycle, archive_records(cycle, state.cycle, batch))
                if reference is not None:
                    reference.add_cycle(batch.programs, batch.results)
            state = advance_state(state, batch)
            metrics = cycle_metrics(batch, state, stats, getattr(rollouts, "stats", {}), timer.times)
            metrics.update(_pool_metrics(pool))
            metrics.update(uniqueness_metrics(batch.uniqueness))
            metrics.update(diversity_metrics(batch_diversity(
                batch.programs, batch.results, reference.index if reference else None, cfg.diversity.cluster_corr)))
            logger.log(metrics, cycle)
            if cycle % loop.checkpoint_every == 0 or cycle == loop.cycles:
                with timer("checkpoint"):
                    save_checkpoint(run_dir, cycle, learner.save, state.to_dict(), config_dict,
                                    loop.keep_checkpoints)
                logger.log({"time/checkpoint": timer.times["time/checkpoint"]}, cycle)
            progress.cycle_done(cycle, {**metrics, **timer.times})
            if on_cycle is not None:
                on_cycle(cycle, metrics, state)
    return state


def build_prompts(prompt: str, count: int) -> list[str]:
    """The cycle's prompts: the one rendered prompt (rules + real schema), ``count`` times."""
    return [prompt] * count


def parse_rollouts(texts: Sequence[str]) -> Cycle:
    return Cycle(completions=list(texts), programs=[parse_completion(t) for t in texts])


def evaluate_programs(pool: Pool, programs: Sequence[Program | None]) -> list[EvalResult]:
    """Results in sample order: parsed programs through the pool, the rest ``parse_error``."""
    parsed = [p for p in programs if p is not None]
    evaluated = iter(pool.evaluate(parsed) if parsed else [])
    return [
        next(evaluated) if p is not None
        else EvalResult(status="parse_error", message="the completion holds no ```python code block")
        for p in programs
    ]


def without_test(result: EvalResult) -> EvalResult:
    """``result`` with its sealed-test scores removed: what rewards and selections may read."""
    clean = dataclasses.replace(result, test=None)
    clean.predictions = result.predictions  # not a field: replace() leaves it behind
    return clean


def score_rewards(batch: Cycle, cfg: Config, reference: ReferenceSet | None) -> None:
    """Uniqueness (against earlier cycles only) and reward of every sample, validation only."""
    results = [without_test(r) for r in batch.results]
    batch.uniqueness = [reference.score(r) if reference else None for r in results]
    batch.breakdowns = [compute_reward(r, cfg.reward, None if u is None else u.value)
                        for r, u in zip(results, batch.uniqueness, strict=True)]


def imitation_targets(batch: Cycle) -> list[bool]:
    """The samples to imitate after the update (``aiforml.algo.imitation``), validation only."""
    statuses = [r.status for r in batch.results]
    families = [describe_program(p.source)["model_family"] if p is not None and s == "ok" else ""
                for p, s in zip(batch.programs, statuses, strict=True)]
    return imitation_mask(statuses, batch.rewards, families)


def update_policy(learner: Learner, rollouts: Any, rewards: list[float | None],
                  imitate: list[bool] | None = None) -> dict[str, float]:
    """One learner update; infrastructure failures get the batch-mean reward (see module doc).

    ``imitate``: the samples for the learner's filtered imitation step (None: no step).
    """
    valid = [r for r in rewards if r is not None]
    if not valid:
        return {"update/skipped": 1.0}
    mean = sum(valid) / len(valid)
    stats = learner.update(rollouts, [mean if r is None else r for r in rewards], imitate)
    # The learner's own timings go under learner/: time/<phase> is the loop's phases only.
    renamed = {f"learner/{k[5:]}_s" if k.startswith("time/") else k: v for k, v in stats.items()}
    return {**renamed, "update/skipped": 0.0}


def archive_records(cycle: int, policy_version: int, batch: Cycle) -> list[Any]:
    """One ``ArchiveRecord`` per sample (full results, sealed test scores included)."""
    return [
        ArchiveRecord(cycle=cycle, sample_index=i, policy_version=policy_version,
                      program=program.source if program else "", completion=text, result=result,
                      reward=reward)
        for i, (text, program, result, reward) in enumerate(
            zip(batch.completions, batch.programs, batch.results, batch.breakdowns, strict=True))
    ]


def advance_state(state: LoopState, batch: Cycle) -> LoopState:
    """The state after this cycle: counter + 1, best validation Sharpe (validation only)."""
    best, best_hash = state.best_val_sharpe, state.best_program_hash
    for result in map(without_test, batch.results):
        sharpe = result.validation.sharpe if result.status == "ok" and result.validation else None
        if sharpe is not None and (best is None or sharpe > best):
            best, best_hash = sharpe, result.program_hash
    return LoopState(cycle=state.cycle + 1, best_val_sharpe=best, best_program_hash=best_hash)


def cycle_metrics(batch: Cycle, state: LoopState, update_stats: dict[str, float],
                  rollout_stats: dict[str, float], times: dict[str, float]) -> dict[str, float | None]:
    """The cycle's metrics, keyed ``group/name`` (None: not yet defined); test scores never enter."""
    statuses = [r.status for r in batch.results]
    n = len(statuses)
    charged = [s for s in statuses if s != "infra_error"]
    rewards = [r for r in batch.rewards if r is not None]
    sharpes = [r.validation.sharpe for r in batch.results
               if r.status == "ok" and r.validation and r.validation.sharpe is not None]
    metrics: dict[str, float | None] = {
        "env/compile_rate": charged.count("ok") / len(charged) if charged else None,
        "env/parse_rate": sum(p is not None for p in batch.programs) / n,
        "env/unique_programs": len({p.hash for p in batch.programs if p is not None}),
        "reward/mean": sum(rewards) / len(rewards) if rewards else None,
        "reward/max": max(rewards) if rewards else None,
        "reward/min": min(rewards) if rewards else None,
        "val/sharpe_mean": sum(sharpes) / len(sharpes) if sharpes else None,
        "val/best_sharpe": state.best_val_sharpe,
    }
    breakdowns = [b for b in batch.breakdowns if b is not None]
    for name in breakdowns[0].terms if breakdowns else ():  # every registered term, weighted or not
        metrics[f"reward/term/{name}"] = sum(b.terms[name] for b in breakdowns) / len(breakdowns)
    for status in sorted(PROGRAM_FAILURES | {"infra_error"}):
        metrics[f"env/errors/{status}"] = statuses.count(status) / n
    metrics.update({f"rollout/{k.replace('time/', '')}": v for k, v in rollout_stats.items()})
    metrics.update(update_stats)
    metrics.update(times)
    return metrics


def _pool_metrics(pool: Pool) -> dict[str, float]:
    stats = getattr(pool, "stats", None)
    return stats.metrics() if stats is not None else {}
