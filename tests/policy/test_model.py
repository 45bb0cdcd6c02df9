"""Policy loading: the auto choice, presets, the LoRA + value head forward, the reference
policy (adapter off), the 4-bit QLoRA path on CPU with one update, and conf/ mirrors."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from aiforml.compose import load_config
from aiforml.config import AlgoConfig, PolicyConfig, TinyPolicyConfig, from_dict
from aiforml.learner import LearnerActor
from aiforml.policy.model import (
    PRESETS,
    check_model_folder,
    choose_policy,
    enable_checkpointing,
    load_policy,
    resolve_policy_config,
)
from aiforml.policy.sampling import generate_rollouts
from aiforml.policy.scratch import build_scratch_policy


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_scratch_policy(tmp_path_factory.mktemp("tiny_policy"))


def test_auto_chooses_by_cuda_and_says_how_to_force(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    name, reason = choose_policy(PolicyConfig())
    assert name == "tiny" and "CUDA is not available" in reason and "policy=mistral7b_qlora" in reason
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "RTX 3090")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i=0: SimpleNamespace(total_memory=24 * 2**30))
    name, reason = choose_policy(PolicyConfig())
    assert name == "mistral7b_qlora" and "RTX 3090" in reason and "policy=tiny" in reason
    assert choose_policy(PolicyConfig(name="tiny"))[0] == "tiny"


def test_auto_takes_the_7b_only_where_the_gpu_has_room(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "RTX 3060")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i=0: SimpleNamespace(total_memory=12 * 2**30))
    name, reason = choose_policy(PolicyConfig())
    assert name == "tiny" and "12.0 GiB" in reason and "policy=mistral7b_qlora" in reason
    assert choose_policy(PolicyConfig(name="mistral7b_qlora"))[0] == "mistral7b_qlora"  # forced: taken


def test_checkpointing_falls_back_to_the_older_transformers_name() -> None:
    calls = []

    class Older:  # transformers < 5.23: no activation_checkpointing_enable
        def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None):
            calls.append(gradient_checkpointing_kwargs)

    class Newer:
        def activation_checkpointing_enable(self, kwargs=None):
            calls.append(("new", kwargs))

    enable_checkpointing(Older())
    enable_checkpointing(Newer())
    assert calls == [{"use_reentrant": False}, ("new", {"use_reentrant": False})]


def test_presets_fill_only_unset_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    resolved, _ = resolve_policy_config(PolicyConfig(lora_r=4))
    assert resolved.name == "tiny" and resolved.lora_r == 4
    assert resolved.load_in_4bit is False and resolved.max_new_tokens == PRESETS["tiny"]["max_new_tokens"]
    qlora, _ = resolve_policy_config(PolicyConfig(name="mistral7b_qlora"))
    assert qlora.load_in_4bit and qlora.compute_dtype == "bfloat16" and qlora.gradient_checkpointing


def test_bad_policy_value_names_key() -> None:
    with pytest.raises(ValueError, match=r"policy\.top_p must be in \(0, 1\], got 1.5"):
        from_dict(PolicyConfig, {"top_p": 1.5}, prefix="policy.")
    with pytest.raises(ValueError, match=r"algo\.clip_range must be in \(0, 1\), got 1.5"):
        from_dict(AlgoConfig, {"clip_range": 1.5}, prefix="algo.")


def test_the_7b_group_resolves_to_its_preset() -> None:
    cfg, _ = resolve_policy_config(load_config(["policy=mistral7b_qlora"]).policy)
    assert {k: getattr(cfg, k) for k in PRESETS["mistral7b_qlora"]} == PRESETS["mistral7b_qlora"]
    assert load_config(["algo=ppo"]).algo == AlgoConfig(), "ppo is AlgoConfig's defaults"


def test_reference_is_the_model_with_adapter_off(tiny_model_dir: Path) -> None:
    policy = load_policy(PolicyConfig(name="tiny"), tiny_model_dir)
    ids = torch.tensor([[0, 1, 50, 60, 70, 80], [1, 40, 41, 42, 43, 44]])
    mask = torch.tensor([[0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        for name, param in policy.model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
        logits, values = policy(ids, mask, 3)
        with policy.reference():
            ref_logits, _ = policy(ids, mask, 3)
        base = policy.model.get_base_model()
        with policy.model.disable_adapter():
            plain = base(input_ids=ids, attention_mask=mask,
                         position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits[:, -4:-1]
    assert logits.shape == (2, 3, len(policy.tokenizer)) and values.shape == (2, 3)
    assert not torch.allclose(logits, ref_logits)
    assert torch.allclose(ref_logits, plain, atol=1e-5)
    assert torch.allclose(policy(ids, mask, 3)[0], logits)  # adapter back on after the block
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("value_head") for n in trainable)


def test_qlora_4bit_path_on_cpu_runs_one_update(tiny_model_dir: Path) -> None:
    import bitsandbytes as bnb

    cfg = PolicyConfig(name="tiny", load_in_4bit=True, device="cpu", max_new_tokens=8,
                       gradient_checkpointing=True)
    learner = LearnerActor(cfg, AlgoConfig(epochs=1, minibatch_size=4, learning_rate=1e-2),
                           str(tiny_model_dir))
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in learner.policy.modules())
    before = learner.trainable_state()
    rollouts = learner.generate(["def define_model():", "import lightgbm"], n=2)
    stats = learner.update(rollouts, [1.0, 0.0, 0.5, -1.0])
    after = learner.trainable_state()
    lora_changed = [n for n in before if "lora_" in n and not torch.equal(before[n], after[n])]
    assert lora_changed, "an update on the 4-bit base moved the LoRA weights"
    assert not torch.equal(before["value_head.weight"], after["value_head.weight"])
    assert torch.isfinite(torch.tensor(stats["ppo/policy_loss"]))


def test_cpu_4bit_gradients_survive_an_eval_pass(tiny_model_dir: Path) -> None:
    """Generation (eval, no grad) must not change how gradients flow in a later update."""
    policy = load_policy(PolicyConfig(name="tiny", load_in_4bit=True, device="cpu"), tiny_model_dir)
    ids = torch.tensor([[1, 40, 41, 42, 43, 44]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        for name, param in policy.model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.1)

    def grads() -> dict[str, torch.Tensor]:
        policy.zero_grad()
        policy.train()
        logits, values = policy(ids, mask, 3)
        (logits.logsumexp(-1).sum() + values.sum()).backward()
        return {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}

    before = grads()
    policy.eval()
    with torch.no_grad():
        policy(ids, mask, 3)
    after = grads()
    assert before.keys() == after.keys()
    for name in before:
        assert torch.allclose(before[name], after[name], atol=1e-6), name


@pytest.mark.parametrize("overrides", [[], ["policy=mistral7b_qlora", "algo=grpo"], ["policy=tiny"]])
def test_policy_and_algo_groups_compose(overrides: list[str]) -> None:
    cfg = load_config(overrides)
    assert cfg.policy.name == (overrides[0].split("=")[1] if overrides else "auto")
    assert cfg.algo.name == ("grpo" if "algo=grpo" in overrides else "ppo")


def test_tiny_builder_plugs_into_load_policy(tmp_path: Path) -> None:
    """With no model path, ``tiny`` builds (or reuses) the warm-started policy and loads it."""
    tiny = TinyPolicyConfig(
        n_programs=96, epochs=2.0, vocab_size=512, hidden_size=32, num_layers=1, num_heads=2,
        num_kv_heads=1, intermediate_size=64, batch_size=16, cache_dir=str(tmp_path),
        progress=False,
    )
    policy = load_policy(PolicyConfig(name="tiny", tiny=tiny, max_new_tokens=4))
    assert Path(policy.model.get_base_model().name_or_path).is_relative_to(tmp_path)
    rollouts = generate_rollouts(policy, ["def define_model():\n"], n=2)
    assert len(rollouts) == 2 and rollouts.response_mask.sum() > 0


def test_missing_model_path_fails_with_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="policy.model_path"):
        load_policy(PolicyConfig(name="tiny"), tmp_path / "nowhere")


def test_an_incomplete_weights_folder_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a local folder.*huggingface-cli download"):
        check_model_folder("mistralai/Mistral-7B-Instruct-v0.3")  # a hub id: nothing downloads here
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="lacks tokenizer.json or tokenizer.model"):
        check_model_folder(str(tmp_path))
    (tmp_path / "tokenizer.model").write_bytes(b"x")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"x")
    with pytest.raises(ValueError, match="lacks model-00002-of-00002.safetensors"):
        check_model_folder(str(tmp_path))
    (tmp_path / "model-00002-of-00002.safetensors").write_bytes(b"x")
    check_model_folder(str(tmp_path))  # complete

