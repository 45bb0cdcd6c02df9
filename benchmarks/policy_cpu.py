"""Benchmark of the tiny policy's learner on CPU: generation tokens/s and update time.

Responsible for: timing, in process (no Ray, to measure the compute alone), the learner's
``generate`` (sampling plus the scoring forward pass) and one PPO and one GRPO ``update``
with the default ``conf/algo`` settings, on the tiny policy's shapes, full precision or
through the 4-bit QLoRA path (``--4bit``). Prints one line per measurement and a JSON
summary. Not responsible for: asserting anything, or sample quality (benchmarks/tiny_build.py).

Which model: ``--model-path DIR`` (e.g. a built tiny policy), ``--built`` (build or reuse
the cached warm-started tiny policy, minutes the first time), or by default a random-weight
model with the shapes of ``TinyPolicyConfig`` (built in a second; a random model never
stops early, so every sample runs to ``--max-new-tokens``).

Run: ``python benchmarks/policy_cpu.py [--4bit] [--samples 16] [--max-new-tokens 128]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiforml.compose import CONF_DIR  # noqa: E402
from aiforml.config import AlgoConfig, PolicyConfig, TinyPolicyConfig, from_dict  # noqa: E402
from aiforml.learner import LearnerActor  # noqa: E402
from aiforml.policy.scratch import build_scratch_policy  # noqa: E402

PROMPT = "# Write define_model() for the Numerai-style data.\ndef define_model():\n"


def model_path(args: argparse.Namespace, tmp: Path) -> str:
    if args.model_path:
        return args.model_path
    tiny = TinyPolicyConfig()
    if args.built:
        from aiforml.policy.tiny.build import build_tiny_policy

        return str(build_tiny_policy(tiny))
    shape = dict(hidden_size=tiny.hidden_size, intermediate_size=tiny.intermediate_size,
                 num_hidden_layers=tiny.num_layers, num_attention_heads=tiny.num_heads,
                 num_key_value_heads=tiny.num_kv_heads)
    return str(build_scratch_policy(tmp, vocab_size=tiny.vocab_size, init_std=0.02, shape=shape))


def measure(algo: str, path: str, args: argparse.Namespace) -> dict[str, float]:
    policy = PolicyConfig(name="tiny", device="cpu", load_in_4bit=args.four_bit,
                          max_new_tokens=args.max_new_tokens)
    algo_cfg = from_dict(AlgoConfig, OmegaConf.to_container(OmegaConf.load(CONF_DIR / "algo" / f"{algo}.yaml")))
    learner = LearnerActor(policy, algo_cfg, path, seed=0)
    prompts, n = [PROMPT] * (args.samples // 4), 4
    learner.generate(prompts[:1], 2)  # warm-up
    gen_rates, gen_times, update_times = [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        rollouts = learner.generate(prompts, n)
        gen_times.append(time.perf_counter() - start)
        gen_rates.append(rollouts.stats["response_tokens"] / gen_times[-1])
        rewards = torch.randn(len(rollouts)).tolist()
        start = time.perf_counter()
        learner.update(rollouts, rewards)
        update_times.append(time.perf_counter() - start)
    n_params = sum(p.numel() for p in learner.policy.parameters())
    return {
        "epochs": float(algo_cfg.epochs),
        "tokens_per_s": statistics.median(gen_rates), "generate_s": statistics.median(gen_times),
        "update_s": statistics.median(update_times), "samples": float(len(rollouts)),
        "response_tokens": float(rollouts.stats["response_tokens"]), "parameters": float(n_params),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", default=None)
    parser.add_argument("--built", action="store_true", help="use the warm-started tiny policy")
    parser.add_argument("--4bit", dest="four_bit", action="store_true", help="4-bit QLoRA path")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = model_path(args, Path(tmp))
        for algo in ("ppo", "grpo"):
            r = results[algo] = measure(algo, path, args)
            print(f"{algo}: generate {r['samples']:.0f} x <= {args.max_new_tokens} tokens "
                  f"({r['response_tokens']:.0f}) in {r['generate_s']:.2f} s = "
                  f"{r['tokens_per_s']:.0f} tokens/s; update ({r['epochs']:.0f} epochs) {r['update_s']:.2f} s "
                  f"({r['parameters'] / 1e6:.1f}M parameters, 4-bit={args.four_bit})")
    print(json.dumps({"threads": args.threads, "four_bit": args.four_bit, **results}))


if __name__ == "__main__":
    main()
