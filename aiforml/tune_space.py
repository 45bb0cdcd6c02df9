"""Search spaces of sweeps: dotted config keys mapped to distribution strings.

``conf/tune/*.yaml`` holds ``space: {reward.weights.compile: "uniform(0.1, 0.5)", ...}``. This
module turns each string into one of Ray Tune's sampling domains (``tune.uniform`` and
friends), checks at start that every key names a field of the typed config and that the
ends of every range give a valid config (so ``algo.clip_range: uniform(0.1, 1.5)`` fails
before any trial starts, naming the key), and writes a trial's sampled values back into
a config mapping. It also draws every trial's values up front (:func:`trial_points`), each
with its own seed, so a sweep's trials are reproducible from ``seed`` and
``tune.search_seed`` and never share a seed.

Distributions: ``uniform(lo, hi)``, ``quniform(lo, hi, q)``, ``loguniform(lo, hi)``,
``randint(lo, hi)`` (hi excluded, as in Tune), ``choice([a, b, ...])``.

Written by hand: Tune reads no such strings, and the grammar is one regular expression
plus ``ast.literal_eval`` for the arguments. Not responsible for: running trials
(``aiforml.sweep``).
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from ray import tune

from aiforml.config import Config, from_dict

_CALL = re.compile(r"^\s*([a-z_]+)\s*\((.*)\)\s*$", re.DOTALL)
ARITY = {"uniform": 2, "quniform": 3, "loguniform": 2, "randint": 2, "choice": 1}
SEED = "seed"  # the config key every trial's own seed is written to (Config.seed)
NO_SCORE = -10.0  # objective reported before any program scored (below any real Sharpe or reward)


@dataclass(frozen=True)
class Distribution:
    """One parsed distribution: its name and literal arguments."""

    name: str
    args: tuple[Any, ...]

    def domain(self) -> Any:
        """The Tune sampling domain."""
        return getattr(tune, self.name)(*self.args)

    def ends(self) -> list[Any]:
        """The values a trial can take at the edges (every option for ``choice``)."""
        if self.name == "choice":
            return list(self.args[0])
        if self.name == "randint":
            return [self.args[0], self.args[1] - 1]
        return [self.args[0], self.args[1]]

    @property
    def log_scale(self) -> bool:
        return self.name == "loguniform"


def parse_distribution(key: str, text: str) -> Distribution:
    """``"uniform(0.1, 0.5)"`` -> Distribution; a ValueError naming ``tune.space.<key>`` otherwise."""
    where = f"tune.space.{key}"
    match = _CALL.match(str(text))
    if match is None or match.group(1) not in ARITY:
        raise ValueError(f"{where}: cannot read {text!r}; write one of "
                         f"{', '.join(f'{n}(...)' for n in ARITY)}, e.g. uniform(0.1, 0.5)")
    name, body = match.groups()
    try:
        args = ast.literal_eval(f"({body},)") if body.strip() else ()
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"{where}: the arguments of {text!r} must be numbers or a list ({exc})") from exc
    if len(args) != ARITY[name]:
        raise ValueError(f"{where}: {name} takes {ARITY[name]} argument(s), got {len(args)} in {text!r}")
    _check_args(where, name, args, text)
    return Distribution(name, tuple(args))


def _check_args(where: str, name: str, args: tuple[Any, ...], text: str) -> None:
    if name == "choice":
        if not isinstance(args[0], list | tuple) or not args[0]:
            raise ValueError(f"{where}: choice takes one non-empty list, e.g. choice([0.7, 1.0]); got {text!r}")
        return
    if not all(isinstance(a, int | float) and not isinstance(a, bool) for a in args):
        raise ValueError(f"{where}: the arguments of {text!r} must be numbers")
    lo, hi = args[0], args[1]
    if not lo < hi:
        raise ValueError(f"{where}: the low end must be below the high end in {text!r}")
    if name == "loguniform" and lo <= 0:
        raise ValueError(f"{where}: loguniform needs a low end > 0, got {text!r}")
    if name == "randint" and not (isinstance(lo, int) and isinstance(hi, int)):
        raise ValueError(f"{where}: randint takes integers, got {text!r}")
    if name == "quniform" and args[2] <= 0:
        raise ValueError(f"{where}: the step q must be > 0 in {text!r}")


def apply_params(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of the config mapping ``base`` with each dotted key of ``params`` set."""
    out = copy.deepcopy(base)
    for key, value in params.items():
        *parents, leaf = key.split(".")
        node = out
        for i, part in enumerate(parents):
            child = node.get(part) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                raise ValueError(f"tune.space.{key}: '{'.'.join(parents[:i + 1])}' is not a config group; "
                                 "name a field of the config (see aiforml/config.py)")
            node = child
        if leaf not in node:
            raise ValueError(f"tune.space.{key}: no such config key; valid keys under "
                             f"'{'.'.join(parents) or '<root>'}' are {sorted(node)}")
        node[leaf] = value
    return out


def parse_space(space: dict[str, str], base: dict[str, Any]) -> dict[str, Distribution]:
    """Parse every entry and check that each range's ends give a valid :class:`Config`."""
    parsed = {key: parse_distribution(key, text) for key, text in space.items()}
    for key, dist in parsed.items():
        if key.split(".")[0] in ("tune", "run_dir", "resume"):
            raise ValueError(f"tune.space.{key}: a sweep cannot vary {key}; sweep run settings only")
        if key == SEED:
            raise ValueError("tune.space.seed: every trial already runs with its own seed (seed + its "
                             "number); set the first with seed=..., repeat seeds with tune.seed_repeats")
        for value in dist.ends():
            try:
                from_dict(Config, apply_params(base, {key: value}))
            except ValueError as exc:
                raise ValueError(f"tune.space.{key}: {space[key]!r} reaches {value!r}, which is invalid: "
                                 f"{exc}") from exc
    return parsed


def param_space(parsed: dict[str, Distribution], seeds: list[int] | None = None) -> dict[str, Any]:
    """Tune's ``param_space``: flat dotted keys -> sampling domains (and ``seed``: one of ``seeds``)."""
    space = {key: dist.domain() for key, dist in parsed.items()}
    return {**space, SEED: tune.choice(seeds)} if seeds else space


def trial_points(parsed: dict[str, Distribution], num_samples: int, seed_repeats: int, base_seed: int,
                 search_seed: int | None) -> list[dict[str, Any]]:
    """Every trial's values, in the order Tune runs them, each with its own ``seed``.

    ``num_samples`` draws from the space (random generator seeded by ``search_seed``), then
    ``seed_repeats`` copies of the first draw; trial ``k`` (0-based, in this order) runs with
    seed ``base_seed + k``. So the sampled trials are trials ``0 .. num_samples - 1`` whatever
    ``seed_repeats`` is, and trial 0 with the repeats is one configuration over several seeds.
    """
    rng = np.random.default_rng(search_seed)
    draws = [{key: dist.domain().sample(random_state=rng) for key, dist in parsed.items()}
             for _ in range(num_samples)]
    draws += [dict(draws[0]) for _ in range(seed_repeats)]
    return [{**values, SEED: base_seed + k} for k, values in enumerate(draws)]
