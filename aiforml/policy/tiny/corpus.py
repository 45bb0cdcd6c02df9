"""The warm-start corpus: many varied pipeline programs, some with labelled mistakes.

Responsible for: drawing programs from the grammar (``grammar.py``) for a data schema,
deterministically from a seed; injecting mistakes at a configured rate (``mistakes.py``),
each program labelled with its model, feature ideas, target, CV scheme and mistake; and
the completion text a policy is trained to write (one fenced ``python`` block, parseable by
``aiforml.program.parse_completion``). ``CORPUS_VERSION`` goes into every cache key: bump
it whenever a change here or in the grammar changes the programs a seed produces.
Not responsible for: tokenizing or training (``tokenizer.py``, ``build.py``).
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from dataclasses import dataclass, field

from aiforml.policy.schema import ColumnSchema
from aiforml.policy.tiny import grammar
from aiforml.policy.tiny.mistakes import inject_mistake

CORPUS_VERSION = "2"

# How often each optional step is written. create_features and define_model are nearly
# always there: the policy should own them, and the reward requires create_features.
STEP_RATES: dict[str, float] = {
    "create_target": 0.5,
    "create_features": 0.96,
    "define_model": 0.97,
    "define_cv": 0.45,
}


@dataclass(frozen=True)
class CorpusProgram:
    """One program of the corpus and its labels."""

    source: str  # the Python source (what a Program holds)
    steps: tuple[str, ...]  # the steps it defines, in pipeline order
    model: str  # a key of grammar.MODEL_GROUPS, or "default" when it defines no model
    features: tuple[str, ...] = ()  # selection, base transform, extra ideas
    target: str = "default"  # official, rank, blend, mean, or default
    cv: str = "default"  # forward, grouped, sliding, or default
    mistake: str | None = None  # a kind of mistakes.MISTAKE_KINDS, None when clean

    @property
    def family(self) -> str:
        return grammar.MODEL_GROUPS.get(self.model, self.model)

    @property
    def completion(self) -> str:
        return completion_text(self.source)


def completion_text(source: str) -> str:
    """The text a policy writes for ``source``: one fenced python block."""
    return "```python\n" + source.strip() + "\n```"


def _clean_program(rng: random.Random, schema: ColumnSchema) -> CorpusProgram:
    steps = [s for s, rate in STEP_RATES.items() if rng.random() < rate]
    if not steps:
        steps = ["define_model"]
    sources: dict[str, str] = {}
    labels: dict[str, object] = {"model": "default", "features": (), "target": "default", "cv": "default"}
    if "create_target" in steps:
        sources["create_target"], labels["target"] = grammar.create_target_source(rng, schema)
    if "create_features" in steps:
        src, ideas = grammar.create_features_source(rng, schema)
        sources["create_features"], labels["features"] = src, tuple(ideas)
    if "define_model" in steps:
        labels["model"] = grammar.sample_model_key(rng)
        sources["define_model"] = grammar.define_model_source(rng, str(labels["model"]))
    if "define_cv" in steps:
        sources["define_cv"], labels["cv"] = grammar.define_cv_source(rng)
    source = "\n\n".join(src.strip() + "\n" for src in sources.values())
    return CorpusProgram(source=source, steps=tuple(sources), **labels)  # type: ignore[arg-type]


def generate_corpus(
    schema: ColumnSchema, n: int, seed: int = 0, mistake_rate: float = 0.2
) -> list[CorpusProgram]:
    """``n`` programs for ``schema``; a fraction ``mistake_rate`` of them carry one mistake.

    The same (schema, n, seed, mistake_rate) gives the same list. The number of broken
    programs is exactly ``round(n * mistake_rate)``, spread at random positions.
    """
    if not 0.0 <= mistake_rate <= 1.0:
        raise ValueError(f"mistake_rate must be in [0, 1], got {mistake_rate}")
    rng = random.Random(f"aiforml-corpus-{CORPUS_VERSION}-{seed}")
    broken = set(rng.sample(range(n), round(n * mistake_rate)))
    programs = []
    for i in range(n):
        program = _clean_program(rng, schema)
        while i in broken:
            mutated = inject_mistake(program.source, rng)
            if mutated is not None:
                program = dataclasses.replace(program, source=mutated[0], mistake=mutated[1])
                break
            program = _clean_program(rng, schema)  # nothing to break here: draw another
        programs.append(program)
    return programs


@dataclass
class CorpusStats:
    """Shares of labels over a corpus, for tests and the benchmark."""

    n: int
    mistake_rate: float
    family_shares: dict[str, float] = field(default_factory=dict)
    model_shares: dict[str, float] = field(default_factory=dict)
    mistake_shares: dict[str, float] = field(default_factory=dict)
    step_shares: dict[str, float] = field(default_factory=dict)


def corpus_stats(programs: list[CorpusProgram]) -> CorpusStats:
    n = max(len(programs), 1)

    def shares(values: list[str]) -> dict[str, float]:
        return {k: v / n for k, v in Counter(values).most_common()}

    return CorpusStats(
        n=len(programs),
        mistake_rate=sum(p.mistake is not None for p in programs) / n,
        family_shares=shares([p.family for p in programs]),
        model_shares=shares([p.model for p in programs]),
        mistake_shares=shares([p.mistake for p in programs if p.mistake]),
        step_shares=shares([s for p in programs for s in p.steps]),
    )
