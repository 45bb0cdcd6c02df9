"""The LearnerActor under real Ray on CPU: updates move LoRA (and, for PPO, the value head),
a few dozen updates on a toy reward raise the mean reward, filtered imitation raises the
likelihood of the chosen responses (and off changes nothing), and save/load round-trips."""

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
import torch

from aiforml.config import AlgoConfig, PolicyConfig
from aiforml.learner import LearnerActor, create_learner, wants_gpu
from aiforml.policy.sampling import score_responses
from aiforml.policy.scratch import build_scratch_policy

TIMEOUT = 120  # seconds for any one ray.get
POLICY = PolicyConfig(name="tiny", device="cpu", max_new_tokens=16, generation_batch_size=32,
                      micro_batch_size=32)
PROMPTS = ["def define_model():", "def create_features(df):", "import numpy as np\n", "x = "]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_scratch_policy(tmp_path_factory.mktemp("tiny_policy")))


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def toy_reward(text: str) -> float:
    """Dense and learnable from a random model: the share of 'e' characters, capped."""
    return min(1.0, text.count("e") / 8)


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], key: str) -> list[str]:
    return [n for n in before if key in n and not torch.equal(before[n], after[n])]


@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_one_update_moves_the_right_weights(algo: str, tiny_model_dir: str, ray_local: None) -> None:
    assert not wants_gpu(POLICY)
    learner = create_learner(POLICY, AlgoConfig(name=algo, epochs=1, minibatch_size=8),
                             tiny_model_dir, seed=0)
    try:
        info = ray.get(learner.info.remote(), timeout=TIMEOUT)
        assert info["device"] == "cpu" and info["policy"] == "tiny"
        before = ray.get(learner.trainable_state.remote(), timeout=TIMEOUT)
        rollouts = ray.get(learner.generate.remote(PROMPTS[:2], 4), timeout=TIMEOUT)
        assert len(rollouts) == 8 and rollouts.group.tolist() == [0] * 4 + [1] * 4
        rewards = [float(i % 3) for i in range(8)]
        stats = ray.get(learner.update.remote(rollouts, rewards), timeout=TIMEOUT)
        after = ray.get(learner.trainable_state.remote(), timeout=TIMEOUT)
    finally:
        ray.kill(learner)
    assert changed(before, after, "lora_"), "LoRA weights moved"
    value_head_moved = bool(changed(before, after, "value_head"))
    assert value_head_moved == (algo == "ppo"), "only PPO trains the value head"
    for key in ("policy_loss", "clip_frac", "approx_kl", "kl_ref", "entropy", "grad_norm"):
        assert f"{algo}/{key}" in stats
    if algo == "ppo":
        assert "ppo/value_loss" in stats


@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_updates_raise_the_mean_reward(algo: str, tiny_model_dir: str, ray_local: None) -> None:
    algo_cfg = AlgoConfig(name=algo, epochs=2, minibatch_size=32, learning_rate=1e-2,
                          kl_coef=0.01 if algo == "ppo" else 0.04)
    learner = create_learner(POLICY, algo_cfg, tiny_model_dir, seed=0)
    means = []
    try:
        for _ in range(30):
            rollouts = ray.get(learner.generate.remote(PROMPTS, 8), timeout=TIMEOUT)
            rewards = [toy_reward(t) for t in rollouts.texts]
            means.append(sum(rewards) / len(rewards))
            ray.get(learner.update.remote(rollouts, rewards), timeout=TIMEOUT)
    finally:
        ray.kill(learner)
    first, last = sum(means[:5]) / 5, sum(means[-5:]) / 5
    print(f"{algo}: mean reward over the first 5 cycles {first:.2f}, last 5 {last:.2f}")
    # 32 samples a cycle: the standard error of a 5-cycle mean is about 0.02
    assert last > first + 0.15, f"{algo}: mean reward {first:.2f} -> {last:.2f}"


def test_save_load_round_trip(tiny_model_dir: str, ray_local: None, tmp_path: Path) -> None:
    algo = AlgoConfig(epochs=1, minibatch_size=8, learning_rate=1e-2)
    learner = create_learner(POLICY, algo, tiny_model_dir, seed=0)
    try:
        for _ in range(2):
            rollouts = ray.get(learner.generate.remote(PROMPTS[:2], 4), timeout=TIMEOUT)
            ray.get(learner.update.remote(rollouts, [float(i) for i in range(8)]), timeout=TIMEOUT)
        path = ray.get(learner.save.remote(str(tmp_path / "ckpt")), timeout=TIMEOUT)
        saved = ray.get(learner.trainable_state.remote(), timeout=TIMEOUT)
        saved_opt = ray.get(learner.optimizer_state.remote(), timeout=TIMEOUT)
        next_texts = ray.get(learner.generate.remote(PROMPTS[:2], 4), timeout=TIMEOUT).texts
    finally:
        ray.kill(learner)
    fresh = LearnerActor(POLICY, algo, tiny_model_dir, seed=1)
    assert changed(saved, fresh.trainable_state(), "lora_")
    fresh.load(path)
    restored = fresh.trainable_state()
    assert saved.keys() == restored.keys()
    assert all(torch.equal(saved[n], restored[n]) for n in saved), "adapters and value head"
    opt = fresh.optimizer_state()
    assert opt["state"].keys() == saved_opt["state"].keys() and len(opt["state"]) > 0
    for index, state in saved_opt["state"].items():
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(state[name], opt["state"][index][name])
    assert fresh.updates == 2
    assert fresh.generate(PROMPTS[:2], 4).texts == next_texts, "a resumed learner samples the same"


def test_gpu_request_follows_device_and_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 8.0})
    assert not wants_gpu(PolicyConfig())
    assert wants_gpu(PolicyConfig(device="cuda"))
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 8.0, "GPU": 1.0})
    assert wants_gpu(PolicyConfig()) and not wants_gpu(PolicyConfig(device="cpu"))


def test_update_rejects_bad_rewards(tiny_model_dir: str) -> None:
    learner = LearnerActor(POLICY, AlgoConfig(), tiny_model_dir)
    rollouts = learner.generate(PROMPTS[:1], 2)
    with pytest.raises(ValueError, match="expected 2 rewards"):
        learner.update(rollouts, [1.0])
    with pytest.raises(ValueError, match="finite"):
        learner.update(rollouts, [1.0, float("nan")])


def imitated_logprob(learner: LearnerActor, rollouts, rows: list[int]) -> float:  # noqa: ANN001
    """Mean log-prob per response token of ``rows`` under the learner's current policy."""
    logprobs, _ = score_responses(learner.policy, rollouts.input_ids, rollouts.attention_mask,
                                  rollouts.response_ids, POLICY.micro_batch_size)
    mask = rollouts.response_mask
    return float((logprobs[rows] * mask[rows]).sum() / mask[rows].sum())


def test_imitation_raises_the_likelihood_of_the_chosen_responses(tiny_model_dir: str) -> None:
    algo = AlgoConfig(epochs=1, minibatch_size=8, learning_rate=1e-2)
    plain = LearnerActor(POLICY, algo, tiny_model_dir, seed=0)
    imitating = LearnerActor(POLICY, dataclasses.replace(algo, imitation_coef=1.0, imitation_epochs=2),
                             tiny_model_dir, seed=0)
    rollouts = plain.generate(PROMPTS[:2], 4)
    rewards = [float(i % 3) for i in range(8)]
    imitate = [r == 2.0 for r in rewards]
    rows = [i for i, chosen in enumerate(imitate) if chosen]
    before = imitated_logprob(plain, rollouts, rows)
    assert imitated_logprob(imitating, rollouts, rows) == pytest.approx(before), "same start"
    plain_stats = plain.update(rollouts, rewards, imitate)
    stats = imitating.update(rollouts, rewards, imitate)
    rl_only, imitated = imitated_logprob(plain, rollouts, rows), imitated_logprob(imitating, rollouts, rows)
    print(f"log-prob per token of the imitated responses: {before:.3f} -> RL only {rl_only:.3f}, "
          f"with imitation {imitated:.3f}")
    assert imitated > before and imitated > rl_only + 0.05
    assert stats["imitation/samples"] == len(rows) and stats["imitation/loss"] > 0
    assert not any(k.startswith("imitation/") for k in plain_stats), "imitation_coef 0: no step"
    with pytest.raises(ValueError, match="imitation flags"):
        imitating.update(rollouts, rewards, imitate[:3])


def test_imitation_off_changes_nothing(tiny_model_dir: str) -> None:
    algo = AlgoConfig(epochs=1, minibatch_size=8, learning_rate=1e-2)
    learners = [LearnerActor(POLICY, algo, tiny_model_dir, seed=0) for _ in range(2)]
    rollouts = learners[0].generate(PROMPTS[:2], 4)
    rewards = [float(i % 3) for i in range(8)]
    with_flags = learners[0].update(rollouts, rewards, [True] * 8)
    without = learners[1].update(rollouts, rewards)
    assert with_flags.keys() == without.keys()
    first, second = (learner.trainable_state() for learner in learners)
    assert all(torch.equal(first[n], second[n]) for n in first)
