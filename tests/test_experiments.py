"""Every experiment in conf/experiment composes through the real Hydra config, holds only
what it changes, and the design's experiments carry the design's settings. Every group file
holds only what its choice changes: each default lives once, in aiforml/config.py."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

from aiforml.compose import CONF_DIR, load_config
from aiforml.config import Config, from_dict

GROUP_FILES = sorted(p for p in CONF_DIR.glob("*/*.yaml") if p.parent.name != "experiment")


def _leaves(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("path", GROUP_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_group_file_holds_only_what_its_choice_changes(path) -> None:
    data = OmegaConf.to_container(OmegaConf.load(path))
    data.pop("defaults", None)
    defaults = _leaves(dataclasses.asdict(Config()))
    section = path.parent.name
    repeated = [f"{section}.{k}" for k, v in _leaves(data).items()
                if f"{section}.{k}" in defaults and defaults[f"{section}.{k}"] == v and k not in ("source", "name", "path", "space", "performance")]
    unknown = [f"{section}.{k}" for k in _leaves(data) if f"{section}.{k}" not in defaults and not k.startswith("space.")]
    assert not unknown, f"{path.name}: keys that are no config field: {unknown}"
    assert not repeated, f"{path.name} repeats defaults of aiforml/config.py: {repeated}"


def test_every_key_can_be_overridden_though_no_group_file_lists_it() -> None:
    cfg = load_config(["env.pool.num_actors=3", "reward.contribution_scale=0.05", "loop.cycles=2",
                       "ray.num_cpus=2", "policy.tiny.epochs=1.5"])
    assert (cfg.env.pool.num_actors, cfg.reward.contribution_scale, cfg.loop.cycles, cfg.ray.num_cpus,
            cfg.policy.tiny.epochs) == (3, 0.05, 2, 2, 1.5)

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def test_the_issue_experiments_exist() -> None:
    assert {"ppo_sharpe", "grpo_sharpe", "smoke", "ppo_trading", "ppo_unique", "ppo_unique_feedback",
            "sweep_ppo", "sweep_reward_weights"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes(name: str) -> None:
    text = (CONF_DIR / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_"), "experiments are deltas at the global package"
    cfg = load_config([f"+experiment={name}"])
    assert cfg.loop.cycles >= 1 and cfg.loop.samples_per_prompt >= 1


def test_defaults_list_does_not_null_the_experiment_group() -> None:
    assert "experiment: null" not in (CONF_DIR / "config.yaml").read_text()


def test_ppo_sharpe_is_the_designs_experiment() -> None:
    cfg = load_config(["+experiment=ppo_sharpe"])
    assert cfg.algo.name == "ppo" and cfg.algo.vf_coef > 0
    assert (cfg.reward.weights["compile"], cfg.reward.weights["performance"], cfg.reward.performance) == (0.3, 0.7, "sharpe")
    assert cfg.policy.name == "auto" and cfg.data.source == "synthetic" and cfg.ray.address is None


def test_grpo_sharpe_uses_groups() -> None:
    cfg = load_config(["+experiment=grpo_sharpe"])
    assert cfg.algo.name == "grpo" and cfg.reward.performance == "sharpe"
    assert cfg.loop.samples_per_prompt >= 2, "GRPO needs several samples per prompt"


def test_smoke_is_two_tiny_cycles() -> None:
    cfg = load_config(["+experiment=smoke"])
    assert cfg.loop.cycles == 2 and cfg.policy.name == "tiny"
    assert cfg.loop.prompts_per_cycle * cfg.loop.samples_per_prompt <= 8
    assert cfg.env.pipeline.n_estimators <= 20 and cfg.ray.num_cpus == 2


def test_command_line_overrides_win_over_the_experiment() -> None:
    cfg = load_config(["+experiment=smoke", "loop.cycles=5", "algo=grpo"])
    assert cfg.loop.cycles == 5 and cfg.algo.name == "grpo"


@pytest.mark.parametrize("override, key", [
    ("+loop.cyclez=3", "loop.cyclez"),  # a new key: the typed config names it
    ("loop.cyclez=3", "loop.cyclez"),  # a key Hydra does not know
    ("loop.cycles=0", "loop.cycles"),
    ("ray.learner_cpus=-1", "ray.learner_cpus"),
    ("logger.wandb.mode=sometimes", "logger.wandb.mode"),
    ("algo.imitation_coef=-0.5", "algo.imitation_coef"),
    ("algo.imitation_epochs=0", "algo.imitation_epochs"),
    ("loop.cycles=true", r"loop\.cycles must be an integer, got True"),  # nothing is coerced
    ("env.pipeline.learning_rate='0.1'", r"env\.pipeline\.learning_rate must be a number, got '0\.1'"),
    ("policy.top_p=1.5", r"policy\.top_p must be in \(0, 1\], got 1\.5"),
])
def test_a_bad_config_key_or_value_fails_naming_it(override: str, key: str) -> None:
    with pytest.raises(ValueError, match=key if "\\" in key else key.replace(".", r"\.")):
        load_config(["+experiment=smoke", override])



def test_ppo_trading_trades_the_sp500() -> None:
    cfg = load_config(["+experiment=ppo_trading"])
    assert cfg.data.source == "sp500" and cfg.data.resolved_task == "trading"
    assert cfg.data.embargo_eras >= cfg.data.horizon
    assert cfg.algo.name == "ppo" and cfg.reward.performance == "sharpe"
    assert load_config(["+experiment=ppo_trading", "reward=total_return"]).reward.performance == "total_return"


def test_ppo_unique_is_ppo_sharpe_with_the_uniqueness_term_on() -> None:
    sharpe, unique = load_config(["+experiment=ppo_sharpe"]), load_config(["+experiment=ppo_unique"])
    assert sharpe.reward.weights["uniqueness"] == 0.0 and not sharpe.diversity.feedback and not sharpe.reward.compile_shaping
    assert unique.reward.weights["uniqueness"] > 0 and unique.reward.uniqueness == "both"
    same = ("loop", "data", "env", "algo", "policy", "ray", "diversity", "seed")
    assert all(getattr(sharpe, k) == getattr(unique, k) for k in same), "same budget: only the reward differs"
    feedback = load_config(["+experiment=ppo_unique_feedback"])
    assert feedback.diversity.feedback and feedback.reward == unique.reward


@pytest.mark.parametrize("name, swept", [
    ("sweep_ppo", {"algo.learning_rate", "algo.clip_range", "algo.kl_coef", "policy.temperature"}),
    ("sweep_reward_weights", {"reward.weights.compile", "reward.weights.performance", "reward.weights.uniqueness"}),
])
def test_sweep_experiments_are_sweeps_with_a_cpu_budget(name: str, swept: set[str]) -> None:
    cfg = load_config([f"+experiment={name}"])
    assert set(cfg.tune.space) == swept and cfg.tune.scheduler == "asha"
    assert (cfg.tune.num_samples, cfg.tune.seed_repeats, cfg.loop.cycles, cfg.env.pool.num_actors) == (4, 2, 3, 1)
    assert (cfg.tune.objective, cfg.tune.last_k) == ("mean_val_sharpe", 2), "one that cycles 2-3 move"
    assert cfg.loop.prompts_per_cycle * cfg.loop.samples_per_prompt == 8
    assert not load_config(["+experiment=ppo_sharpe"]).tune.space, "a plain experiment is one run"


def test_a_sampled_numpy_value_is_read_as_the_number_it_holds() -> None:
    """A sweep's search hands NumPy scalars; strict typing takes them as the numbers they are."""
    cfg = from_dict(Config, {"loop": {"cycles": np.int64(3)}, "algo": {"clip_range": np.float32(0.25)}})
    assert cfg.loop.cycles == 3 and type(cfg.loop.cycles) is int and cfg.algo.clip_range == 0.25
    with pytest.raises(ValueError, match=r"loop\.cycles must be an integer"):
        from_dict(Config, {"loop": {"cycles": np.float64(2.5)}})
