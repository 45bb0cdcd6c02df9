"""The tiny offline policy: corpus -> tokenizer -> small Mistral -> SFT warm start, cached.

Responsible for: ``build_tiny_policy(cfg, schema)``, which returns a directory that
``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained`` load with
no hub access: a byte-level BPE tokenizer trained on the program corpus and a
Mistral-architecture model of a few million parameters, warm-started by supervised
fine-tuning on prompt -> completion pairs, loss on the completion only (a plain torch
loop: ``_warm_start`` says why not TRL's SFTTrainer) on a thread count that follows the
machine's load (``aiforml.policy.tiny.threads`` gives the rule). The result is cached under a key
made of ``CORPUS_VERSION``, ``BUILD_VERSION``, the schema and every config field that
changes the weights, so a second call returns in well under a second; a build is written
to a temporary directory and renamed into place, so a killed build never leaves a
half-written cache entry.
Not responsible for: LoRA, value heads, quantization or RL (``aiforml.policy.model``,
``aiforml.learner``), nor the prompt and corpus themselves (``prompt.py``, ``corpus.py``).

Run by hand (prints the directory): ``python -m aiforml.policy.tiny.build``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast

from aiforml.config import TinyPolicyConfig
from aiforml.policy.prompt import render_prompt
from aiforml.policy.schema import ColumnSchema, default_schema
from aiforml.policy.tiny.corpus import CORPUS_VERSION, CorpusProgram, corpus_stats, generate_corpus
from aiforml.policy.tiny.threads import ThreadGovernor, most_threads, usable_cores
from aiforml.policy.tiny.tokenizer import train_tokenizer

log = logging.getLogger(__name__)

BUILD_VERSION = "1"  # bump when the build recipe (tokenizer, model, SFT) changes
READY_FILE = "build_info.json"  # written last: its presence marks a complete build
# Fields that do not change the built weights, left out of the cache key.
_NOT_IN_KEY = frozenset({"cache_dir", "threads", "progress"})


def cache_key(cfg: TinyPolicyConfig, schema: ColumnSchema) -> str:
    """A short hash of everything that determines the built tokenizer and weights."""
    fields = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_IN_KEY}
    payload = json.dumps(
        {"corpus": CORPUS_VERSION, "build": BUILD_VERSION, "schema": schema.digest(), "cfg": fields},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def cache_root(cfg: TinyPolicyConfig) -> Path:
    return Path(cfg.cache_dir).expanduser() if cfg.cache_dir else Path.home() / ".cache" / "aiforml" / "tiny"


def build_tiny_policy(cfg: TinyPolicyConfig, schema: ColumnSchema | None = None) -> Path:
    """The directory of the warm-started tiny policy for ``schema``, built on first use.

    ``schema`` should be the schema of the data set the policy will write programs for
    (``ColumnSchema.from_dataset(dataset)``); None takes the default synthetic data set's.
    """
    schema = schema or default_schema()
    path = cache_root(cfg) / f"tiny-{cache_key(cfg, schema)}"
    if (path / READY_FILE).exists():
        log.info("tiny policy: cached at %s", path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        _build(cfg, schema, tmp)
        try:
            tmp.rename(path)
        except OSError:  # another process finished the same build first: keep theirs
            if not (path / READY_FILE).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _build(cfg: TinyPolicyConfig, schema: ColumnSchema, out: Path) -> None:
    """Generate the corpus, train the tokenizer, build and warm-start the model, save."""
    started = time.perf_counter()
    threads = torch.get_num_threads()
    governor = _new_governor(cfg, threads)
    try:
        programs = generate_corpus(schema, cfg.n_programs, cfg.seed, cfg.mistake_rate)
        prompt = render_prompt(schema)
        tokenizer = train_tokenizer([prompt + p.completion for p in programs], cfg.vocab_size, cfg.tokenizer_split)
        log.info("tiny policy: corpus of %d programs, vocabulary %d", len(programs), len(tokenizer))
        model = new_model(cfg, tokenizer)
        sft_stats = _warm_start(model, tokenizer, prompt, programs, cfg, governor)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    finally:
        torch.set_num_threads(threads)
    info = {
        "key": out.name,
        "corpus_version": CORPUS_VERSION,
        "build_version": BUILD_VERSION,
        "config": dataclasses.asdict(cfg),
        "schema_digest": schema.digest(),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "corpus": dataclasses.asdict(corpus_stats(programs)),
        "sft": sft_stats,
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    (out / READY_FILE).write_text(json.dumps(info, indent=2))


def _new_governor(cfg: TinyPolicyConfig, torch_threads: int) -> ThreadGovernor:
    """The governor of the SFT's thread count: one thread first, more while they are faster."""
    cores = usable_cores()
    ceiling = most_threads(cfg.threads, torch_threads, cores)
    log.info("tiny policy: SFT on 1 to %d torch threads as the load allows (%d usable cores, load %.1f)",
             ceiling, cores, os.getloadavg()[0])
    return ThreadGovernor(ceiling, cores)


def new_model(cfg: TinyPolicyConfig, tokenizer: PreTrainedTokenizerFast) -> MistralForCausalLM:
    """A randomly initialised Mistral-architecture model sized by ``cfg``."""
    torch.manual_seed(cfg.seed)
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.hidden_size // cfg.num_heads,
        max_position_embeddings=cfg.max_length,
        sliding_window=None,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = MistralForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def encode_pairs(
    tokenizer: PreTrainedTokenizerFast, prompt: str, completions: list[str]
) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per completion: bos + prompt + completion + eos, prompt masked.

    The prompt and the completion are encoded apart and joined, exactly as the policy sees
    them when it samples (prompt encoded, completion generated token by token).
    """
    prompt_ids = tokenizer(prompt).input_ids
    pairs = []
    for text in completions:
        ids = tokenizer(text, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        pairs.append((prompt_ids + ids, [-100] * len(prompt_ids) + ids))
    return pairs


def _batches(
    pairs: list[tuple[list[int], list[int]]], batch_size: int, pad_id: int, gen: torch.Generator
) -> list[dict[str, torch.Tensor]]:
    order = torch.randperm(len(pairs), generator=gen).tolist()
    batches = []
    for start in range(0, len(order), batch_size):
        chunk = [pairs[i] for i in order[start : start + batch_size]]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad_id)
        labels = torch.full((len(chunk), width), -100)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (x, y) in enumerate(chunk):
            ids[row, : len(x)], labels[row, : len(y)], mask[row, : len(x)] = torch.tensor(x), torch.tensor(y), 1
        batches.append({"input_ids": ids, "labels": labels, "attention_mask": mask})
    return batches


def _warm_start(
    model: MistralForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    prompt: str,
    programs: list[CorpusProgram],
    cfg: TinyPolicyConfig,
    governor: ThreadGovernor,
) -> dict[str, Any]:
    """Supervised fine-tuning on prompt -> completion pairs, loss on the completion only.

    A plain loop rather than TRL's SFTTrainer: SFTTrainer 1.16 patches a chunked "fused LM
    head" into the model (per-token log-probs, entropy and top-1 for its metrics) and turns
    activation checkpointing on by default; on the 2-core CPU here one step of the default
    model (32 sequences of about 53 tokens) took 5-7 s through it against 1.3-1.4 s in this
    loop, which would stretch the warm start from minutes to most of an hour.
    ``governor`` sets the thread count before every step from the steps timed so far.
    """
    from tqdm.auto import tqdm

    pairs = [p for p in encode_pairs(tokenizer, prompt, [p.completion for p in programs]) if len(p[0]) <= cfg.max_length]
    gen = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = -(-len(pairs) // cfg.batch_size)
    total = max(1, round(cfg.epochs * steps_per_epoch))
    warmup = max(1, round(cfg.warmup_ratio * total))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.95), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, warmup, total))
    model.train()
    losses: list[float] = []
    started = time.perf_counter()
    bar = tqdm(total=total, desc="tiny policy SFT", disable=not cfg.progress, unit="step")
    batches: list[dict[str, torch.Tensor]] = []
    torch.set_num_threads(governor.threads)
    for _ in range(total):
        if not batches:
            batches = _batches(pairs, cfg.batch_size, tokenizer.pad_token_id, gen)
        batch = batches.pop()
        step_started = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        seconds = time.perf_counter() - step_started
        torch.set_num_threads(governor.record(seconds, batch["input_ids"].numel(), os.getloadavg()[0]))
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    tail = losses[-max(1, len(losses) // 10) :]
    return {
        "steps": total,
        "sequences": len(pairs),
        "mean_completion_tokens": round(sum(sum(t != -100 for t in y) for _, y in pairs) / max(1, len(pairs)), 1),
        "prompt_tokens": len(pairs[0][0]) - sum(t != -100 for t in pairs[0][1]) if pairs else 0,
        "train_seconds": round(time.perf_counter() - started, 1),
        "threads": {"most": governor.ceiling, "steps_at": dict(sorted(governor.steps_at.items())),
                    "switches": governor.switches},
        "first_loss": round(losses[0], 4),
        "final_loss": round(sum(tail) / len(tail), 4),
    }


def _cosine(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(build_tiny_policy(TinyPolicyConfig()))
