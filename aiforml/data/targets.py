"""How far each target looks ahead, and which training targets a sandboxed child may see.

    horizons = target_horizons(dataset)        # eras each target's window spans, one per column
    y = training_targets(dataset, split)       # training rows, all targets, NaN where a window runs late

Responsible for: the horizon (in eras) of every target column, from the synthetic
generator's own definitions, from Numerai's ``_20`` / ``_60`` day suffixes (5 trading days
an era), or from the price data's ``horizon``; and the training targets with every value
masked (NaN) whose window ends too close to the validation block. The embargo between
train and validation is sized for the main target (4 eras); an auxiliary 8- or 12-era
target of the last training eras reaches into validation, and a program that linked
validation rows to the same stock in the last training era read it (validation mean corr
0.079 against an honest 0.062).

The convention, checked against the generator (``synthetic.build_targets``): era ``e``'s
target of horizon ``h`` sums the weekly returns of weeks ``w_e + 1 .. w_e + h`` (one week
an era), and the first validation era ``v`` scores returns from week ``w_v + 1`` on. A
window ending at era ``e + h <= v`` therefore shares no return with any validation
target; we keep one era more, ``e + h <= v - 1`` (the window ends by the last embargoed
era), because real Numerai targets start a day or two after the era's date. With this
rule the main target stays fully usable exactly when its horizon is at most the embargo
(``split_dataset`` refuses a shorter embargo).
Not responsible for: writing the hand-off (``aiforml.pipeline.handoff``), splitting eras.
"""

from __future__ import annotations

import re

import numpy as np

from aiforml.config import MAIN_TARGET_ERAS
from aiforml.data.dataset import Dataset, EraSplit
from aiforml.data.prices import PriceData
from aiforml.data.synthetic import TARGETS as SYNTHETIC_TARGETS

DAYS_PER_ERA = 5  # Numerai: weekly eras of five trading days
LONGEST_KNOWN_DAYS = 60  # the longest Numerai target; names without a day suffix get it
_DAYS = re.compile(r"_(\d+)$")


def numerai_horizon(name: str) -> int:
    """Eras spanned by a Numerai target: ``_20`` -> 4, ``_60`` -> 12; "target" is the 20-day
    main target; any other name without a day suffix gets the longest known (12), to be safe."""
    if name == "target":
        return MAIN_TARGET_ERAS
    match = _DAYS.search(name)
    days = int(match.group(1)) if match else LONGEST_KNOWN_DAYS
    return max(1, -(-days // DAYS_PER_ERA))  # ceil: a partial era still reaches into it


def target_horizons(dataset: Dataset | PriceData) -> np.ndarray:
    """(t,) int64: eras each target column's window spans, in ``dataset.target_names`` order."""
    if isinstance(dataset, PriceData):
        return np.full(len(dataset.target_names), dataset.horizon, dtype=np.int64)
    if dataset.name.startswith("synthetic"):
        # the generator's own definitions
        return np.array([SYNTHETIC_TARGETS[name][0] for name in dataset.target_names], dtype=np.int64)
    return np.array([numerai_horizon(name) for name in dataset.target_names], dtype=np.int64)


def usable_targets(eras: np.ndarray, horizons: np.ndarray, first_validation_era: int) -> np.ndarray:
    """(n, t) bool: target k of a row of era e is usable iff e + horizons[k] <= first_validation_era - 1."""
    return eras[:, None].astype(np.int64) + horizons[None, :] <= first_validation_era - 1


def check_main_target(dataset: Dataset | PriceData, embargo: int) -> None:
    """ValueError when the main target's horizon is longer than the embargo: it would be masked."""
    main = int(target_horizons(dataset)[0])
    if main > embargo:
        raise ValueError(
            f"data.embargo_eras ({embargo}) is shorter than the main target's horizon ({main} eras) "
            f"of {dataset.name}: training targets would reach into validation; set "
            f"data.embargo_eras to at least {main}"
        )


def training_targets(dataset: Dataset | PriceData, split: EraSplit) -> np.ndarray:
    """Every target column of the training rows (dataset order), NaN where the window runs late.

    Same dtype as ``dataset.targets`` (float32 for tournament data, float64 for prices). The
    main target (column 0) is never masked: ``check_main_target`` fails first.
    """
    check_main_target(dataset, split.embargo)
    rows = np.flatnonzero(dataset.rows(split.train))
    out = dataset.targets[rows].copy()
    if len(split.validation) == 0:
        return out
    late = ~usable_targets(dataset.eras[rows], target_horizons(dataset), int(split.validation[0]))
    out[late] = np.nan
    return out
