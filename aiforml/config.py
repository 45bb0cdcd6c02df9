"""Typed configuration: dataclasses that mirror ``conf/`` group by group.

Hydra composes the YAML; :func:`from_dict` converts the composed mapping into these
dataclasses once, at the entry point, and every module below receives a typed sub-config.
Each field is documented once, beside it. A bad key or value fails at start with a
``ValueError`` that names the full key and the fix. Nothing here builds objects.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

T = TypeVar("T")


# --- data ---------------------------------------------------------------------------------
@dataclass
class SyntheticConfig:
    """Sizes and seed of the synthetic Numerai-like generator (see aiforml.data.synthetic)."""

    preset: Literal["fast", "realistic"] = "fast"  # named size/strength preset; fields below override it when set
    seed: int = 0  # generator seed: same seed, same data, bit for bit
    n_eras: int | None = None  # total eras generated (train + validation + test + embargoes)
    rows_per_era: int | None = None  # mean rows per era (varies +-20 % per era)
    n_features: int | None = None  # number of feature_* columns
    signal_scale: float | None = None  # strength of the planted signal (1.0 = the preset's)


@dataclass
class DataConfig:
    """Which data set, which features, and how eras are split."""

    source: Literal["synthetic", "numerai"] = "synthetic"  # synthetic generator or Numerai parquet
    path: str | None = None  # numerai: directory with train.parquet, validation.parquet, features.json
    feature_set: str = "all"  # a feature set name from features.json (small, medium, all) or "all"
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    validation_eras: int | None = None  # eras in the validation block (None: the preset's)
    test_eras: int | None = None  # eras in the sealed test block (None: the preset's)
    embargo_eras: int = 4  # eras dropped between train/validation and validation/test
    cache_dir: str | None = None  # where generated data is cached (None: ~/.cache/aiforml)


# --- sandbox and pipeline -----------------------------------------------------------------
@dataclass
class SandboxConfig:
    """Limits and isolation of the child process that runs generated code."""

    isolation: Literal["auto", "bwrap", "none"] = "auto"  # auto: bwrap when it works, else weaker
    require_isolation: bool = False  # refuse to run when bwrap is unavailable
    wall_s: float = 120.0  # wall-clock limit of one evaluation, enforced from outside
    cpu_s: int = 240  # CPU-seconds limit (RLIMIT_CPU, hard = soft + 1)
    memory_mb: int = 4096  # memory cap of the child (cgroup when writable, else RLIMIT_DATA)
    max_procs: int = 64  # processes/threads the child may hold (pids cgroup or RLIMIT_NPROC)
    output_bytes: int = 20_000  # captured stdout/stderr kept per stream
    threads: int = 1  # OMP/BLAS threads inside the child


@dataclass
class PipelineConfig:
    """The locked steps: default model, CV, and trusted checks."""

    n_estimators: int = 200  # default LightGBM: trees (the Numerai example uses 2000)
    learning_rate: float = 0.05  # default LightGBM: learning rate (example: 0.01)
    max_depth: int = 5  # default LightGBM: depth
    num_leaves: int = 31  # default LightGBM: leaves
    colsample_bytree: float = 0.1  # default LightGBM: column subsample
    cv_folds: int = 3  # default CV: forward-chaining folds over training eras
    leakage_band: float = 0.25  # mean per-era corr above this (CV or validation) is suspected leakage
    max_train_rows: int | None = None  # subsample training rows handed to the child (None: all)


@dataclass
class RewardConfig:
    """reward = w_compile * compile + w_perf * performance (+ w_unique * uniqueness)."""

    w_compile: float = 0.3  # weight of the compile score (-1 failed, 0 ran)
    w_perf: float = 0.7  # weight of the performance score
    w_unique: float = 0.0  # weight of the uniqueness score (1 - |corr with baseline|)
    performance: Literal["sharpe", "mean_corr"] = "sharpe"  # validation statistic used
    scale: float = 1.0  # performance = tanh(statistic / scale): bounded in (-1, 1)


# --- policy and algo ----------------------------------------------------------------------
@dataclass
class TinyPolicyConfig:
    """The tiny offline policy: tokenizer, model size, warm-start corpus and SFT (aiforml.policy.tiny)."""

    seed: int = 0  # seed of the corpus generator, tokenizer and model init


@dataclass
class PolicyConfig:
    """Which policy model, how it is loaded and how it samples (aiforml.policy)."""

    name: Literal["auto", "mistral7b_qlora", "tiny"] = "auto"  # auto: 7B QLoRA with CUDA, tiny without
    tiny: TinyPolicyConfig = field(default_factory=TinyPolicyConfig)


@dataclass
class AlgoConfig:
    """The RL algorithm and its hyperparameters (aiforml.algo)."""

    name: Literal["ppo", "grpo"] = "ppo"


@dataclass
class EnvConfig:
    """The environment: how programs are run and checked."""

    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)


@dataclass
class Config:
    """The whole run."""

    data: DataConfig = field(default_factory=DataConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    seed: int = 0  # global seed
    run_dir: str | None = None  # output directory (None: Hydra's)


# --- conversion and validation ------------------------------------------------------------
def from_dict(cls: type[T], data: dict[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a plain mapping, recursively, with named errors."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}{unknown[0]}"
        raise ValueError(
            f"unknown config key '{key}'; valid keys under '{prefix.rstrip('.') or '<root>'}' are "
            f"{sorted(fields)}. Fix the spelling or remove it."
        )
    kwargs = {name: _convert(hints[name], value, f"{prefix}{name}") for name, value in data.items()}
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate()
    return obj


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{key} must be a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, key)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0])
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{key} must be one of {list(args)}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ValueError(f"{key} must be a list, got {value!r}")
        return [_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key} must be a mapping, got {value!r}")
        return {k: _convert(args[1], v, f"{key}.{k}") for k, v in value.items()} if args else dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string, got {value!r}")
        return value
    return value


def check(condition: bool, message: str) -> None:
    """Raise ValueError(message) unless condition holds: for ``validate()`` methods."""
    if not condition:
        raise ValueError(message)
