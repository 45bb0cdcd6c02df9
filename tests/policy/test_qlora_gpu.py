"""Full-size Mistral-7B architecture through the QLoRA learner on a GPU (skipped without CUDA).

Builds Mistral-7B-v0.3's shapes with random weights (no hub), saves them, loads them in
4-bit NF4 through the default ``mistral7b_qlora`` preset inside a Ray ``LearnerActor``
(which must be pinned to the GPU), generates at the default batch with a prompt of the
default maximum length, runs one PPO update with the default ``conf/algo/ppo.yaml``
settings, and reports peak GPU memory and generation tokens/s. Random weights never emit
EOS early, so every sample runs to ``max_new_tokens``: the worst case for memory.
Figures are printed and written to ``$AIFORML_BENCH_OUT`` (a JSON file) when set.
Run: ``python -m pytest -m gpu tests/policy/test_qlora_gpu.py -s`` (about 15 GB of disk).
"""

import json
import math
import os
from pathlib import Path

import pytest
import ray
import torch

from aiforml.config import AlgoConfig, PolicyConfig
from aiforml.learner import create_learner
from aiforml.policy.scratch import build_scratch_policy

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
TIMEOUT = 1800
CARD_GIB = 24 * 10**9 / 2**30  # an RTX 3090's 24 GB


def test_mistral7b_qlora_default_settings_fit_a_24gb_card(tmp_path_factory: pytest.TempPathFactory) -> None:
    path = build_scratch_policy(tmp_path_factory.mktemp("mistral7b_random"), size="7b",
                                dtype=torch.bfloat16, device="cuda")
    torch.cuda.empty_cache()
    policy = PolicyConfig(name="mistral7b_qlora")  # every preset default
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=4, num_gpus=1, include_dashboard=False)
    learner = create_learner(policy, AlgoConfig(), str(path))
    try:
        info = ray.get(learner.info.remote(), timeout=TIMEOUT)
        assert info["device"].startswith("cuda") and info["policy"] == "mistral7b_qlora"
        load_gib = info["peak_memory_gib"]
        # 2 prompts x n=4 = generation_batch_size 8, each prompt about max_prompt_tokens long
        prompt = "def create_features(df):\n    return df\n" * 200
        rollouts = ray.get(learner.generate.remote([prompt, prompt[::-1]], 4), timeout=TIMEOUT)
        gen_gib = ray.get(learner.info.remote(), timeout=TIMEOUT)["peak_memory_gib"]
        before = ray.get(learner.trainable_state.remote(), timeout=TIMEOUT)
        stats = ray.get(learner.update.remote(rollouts, torch.randn(len(rollouts)).tolist()),
                        timeout=TIMEOUT)
        after = ray.get(learner.trainable_state.remote(), timeout=TIMEOUT)
        final = ray.get(learner.info.remote(), timeout=TIMEOUT)
        peak_gib, reserved_gib = final["peak_memory_gib"], final["peak_reserved_gib"]
    finally:
        ray.kill(learner)
        if started:
            ray.shutdown()
    figures = {
        "device": torch.cuda.get_device_name(0), "peak_after_load_gib": load_gib,
        "peak_after_generate_gib": gen_gib, "peak_after_update_gib": peak_gib,
        "peak_reserved_gib": reserved_gib,
        "prompt_tokens": int(rollouts.prompt_mask.sum(1).max()),
        "response_tokens": rollouts.stats["response_tokens"], "samples": len(rollouts),
        "generate_s": rollouts.stats["time/generate"], "tokens_per_s": rollouts.stats["tokens_per_s"],
        "update_s": stats["time/update"], "trainable_parameters": info["trainable_parameters"],
    }
    print(json.dumps(figures, indent=1))
    if os.environ.get("AIFORML_BENCH_OUT"):
        Path(os.environ["AIFORML_BENCH_OUT"]).write_text(json.dumps(figures, indent=1))
    # a NaN loss or weight would pass every check below: losses and weights must be finite
    assert torch.isfinite(rollouts.logprobs).all() and (rollouts.logprobs <= 0).all()
    assert all(math.isfinite(v) for v in stats.values()), stats
    assert all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(before[n], after[n]) for n in before if "lora_" in n)
    assert not torch.equal(before["value_head.weight"], after["value_head.weight"])
    # reserved (allocator cache included) plus ~0.5 GiB of CUDA context must fit the card
    assert reserved_gib + 0.5 < CARD_GIB - 1.0, f"reserved {reserved_gib:.1f} GiB: too close to 24 GB"
