"""Load the policy: a causal LM with LoRA adapters and a value head, in 4-bit or full precision.

Responsible for: choosing the policy (``auto``: the 7B QLoRA model when CUDA is available,
the tiny offline model otherwise, saying which, why, and how to force the other), filling
unset :class:`PolicyConfig` fields from the chosen preset, loading the base model (4-bit
NF4 with double quantization through bitsandbytes, or full precision), adding LoRA
adapters (peft) and a scalar value head, and the one forward pass the learner needs:
tempered logits and values of the response tokens. The reference policy for the KL term
is the same model with the adapter switched off (:meth:`PolicyModel.reference`), so no
second copy lives in memory. The 4-bit path also runs on CPU (bitsandbytes' CPU backend),
which is how the tests cover it.

Not responsible for: sampling (:mod:`aiforml.policy.sampling`), the RL maths
(:mod:`aiforml.algo`), building the tiny model (:mod:`aiforml.policy.tiny.build`), prompts.

Memory of the default ``mistral7b_qlora`` learner on a 24 GB card (RTX 3090)
---------------------------------------------------------------------------
Mistral-7B-v0.3: 32 layers, hidden 4096, MLP 14336, 8 KV heads of 128, vocab 32768;
7.25B parameters, of which 6.98B in the 224 linear layers and 0.27B in embed + lm_head.

* Frozen base weights. NF4 stores 4 bits a weight: 6.98B x 0.5 B = 3.49 GB. Quantization
  constants with double quantization (8-bit absmax per 64 weights, fp32 per 256 blocks):
  0.127 bit a weight = 0.11 GB. Embeddings + lm_head stay unquantized: 0.54 GB in bf16,
  which ``prepare_model_for_kbit_training`` upcasts to fp32 for stability (1.07 GB).
  Total about 3.6 + 0.5 = 4.1 GB (3.9 GiB) as loaded, 4.7 GB after the upcast.
* Trainable state. LoRA r=16 on q, k, v, o, gate, up, down: r x (in + out) per module =
  1.31M a layer, 41.9M in all. fp32 weights 0.17 GB + gradients 0.17 GB + AdamW's two
  moments 0.34 GB = 0.67 GB. The value head (4097 parameters) is negligible.
* Update activations, micro_batch_size 2 x (1024 prompt + 512 response) = 3072 tokens.
  Gradient checkpointing keeps only each layer's input: 32 x 3072 x 4096 x 4 B (fp32
  residual) = 1.6 GB; the one layer being recomputed holds about 0.5 GB (MLP intermediates
  3072 x 14336 x 2 B x ~4 tensors = 0.35 GB, attention with SDPA, no T^2 matrix). Logits
  only for the 512 response positions (the hidden states are sliced before lm_head):
  2 x 512 x 32768 x 4 B = 0.13 GB, about 0.5 GB with log-softmax and its gradient.
  About 2.6 GB.
* Generation KV cache, generation_batch_size 8 x 1536 tokens: 2 (K, V) x 8 heads x 128
  x 2 B x 32 layers = 128 KB a token, x 12288 tokens = 1.6 GB in bf16 (3.2 GB if the
  residual stream runs in fp32), plus per-step logits 8 x 32768 x 4 B, negligible.
* CUDA context and allocator slack: about 1-1.5 GB.

Peak: generation about 4.7 + 0.7 + 3.2 + 1.5 = 10 GB; update about 4.7 + 0.7 + 2.6 +
1.5 = 9.5 GB. That leaves over half of a 24 GB card free: room for micro_batch_size 4 or
longer responses. Without 4-bit the bf16 weights alone would be 14.5 GB.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from peft.utils import set_peft_model_state_dict
from safetensors.torch import load_file
from torch import Tensor, nn
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from aiforml.config import PolicyConfig

log = logging.getLogger(__name__)

MISTRAL_7B_ID = "mistralai/Mistral-7B-Instruct-v0.3"
_ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# Values for the PolicyConfig fields left None, per concrete policy.
PRESETS: dict[str, dict[str, Any]] = {
    "mistral7b_qlora": dict(
        model_path=MISTRAL_7B_ID, load_in_4bit=True, compute_dtype="bfloat16", lora_r=16,
        lora_alpha=32, lora_target_modules=_ALL_LINEAR, gradient_checkpointing=True,
        max_prompt_tokens=1024, max_new_tokens=512, generation_batch_size=8, micro_batch_size=2,
    ),
    "tiny": dict(
        model_path=None, load_in_4bit=False, compute_dtype="float32", lora_r=8, lora_alpha=16,
        lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], gradient_checkpointing=False,
        max_prompt_tokens=384, max_new_tokens=128, generation_batch_size=16, micro_batch_size=8,
    ),
}
# Default learning rate (algo.learning_rate: null) per policy: LoRA on a tiny model needs
# a large step (3e-3 with early_stop_kl learned within the 14 cycles of ppo_sharpe,
# benchmarks/README.md; 1e-3 was slower), a 7B model a small one (QLoRA paper: 1e-4 to 2e-5 for SFT).
PRESET_LEARNING_RATES = {"mistral7b_qlora": 1e-5, "tiny": 3e-3}
# GAE lambda (algo.lam: null) per policy. The score sits on the last token and the value head
# starts at zero, so the first token's share of it is lam ** (length - 1): 0.18 for the tiny
# policy's 34-token programs at 0.95 (which is why CPU runs learn), 7.7e-12 for a 7B's
# 500-token ones. At 1.0 every token gets the whole score minus its own value, as in RLOO
# or GRPO sequence advantages, and the learned value head is the only baseline.
PRESET_LAMBDAS = {"mistral7b_qlora": 1.0, "tiny": 0.95}
_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


# GPU memory the 7B preset needs: 11.7 GiB reserved at peak on an H200 (benchmarks/README.md,
# GPU check), plus the CUDA context and headroom for a run's longer prompts.
MIN_7B_GIB = 14.0


def choose_policy(cfg: PolicyConfig) -> tuple[str, str]:
    """The concrete policy name for ``cfg.name`` and a sentence saying why."""
    if cfg.name != "auto":
        return cfg.name, f"policy={cfg.name} was requested"
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
        gib = torch.cuda.get_device_properties(0).total_memory / 2**30
        if gib < MIN_7B_GIB:
            return "tiny", (
                f"policy=auto and the GPU ({gpu}) has {gib:.1f} GiB, under the {MIN_7B_GIB:g} GiB the "
                "7B QLoRA learner needs (11.7 GiB reserved at peak): the tiny policy. Force the 7B "
                "with policy=mistral7b_qlora"
            )
        return "mistral7b_qlora", (
            f"policy=auto and CUDA is available ({gpu}, {gib:.0f} GiB): Mistral-7B in 4-bit QLoRA. "
            "Force the small CPU policy with policy=tiny"
        )
    return "tiny", (
        "policy=auto and CUDA is not available: the tiny offline policy on CPU. "
        "The 7B QLoRA policy needs a GPU; force it with policy=mistral7b_qlora"
    )


def resolve_policy_config(cfg: PolicyConfig) -> tuple[PolicyConfig, str]:
    """A copy of ``cfg`` with a concrete name and every preset field filled; and the reason."""
    name, reason = choose_policy(cfg)
    preset = PRESETS[name]
    filled = {k: v for k, v in preset.items() if getattr(cfg, k) is None}
    return dataclasses.replace(cfg, name=name, **filled), reason


GET_WEIGHTS = ("download them once on a machine with network, for example `huggingface-cli download "
               f"{MISTRAL_7B_ID} --local-dir DIR`, copy DIR to this machine and set policy.model_path=DIR")


def check_model_folder(path: str | None) -> None:
    """Fail with the missing file when ``path`` is not a complete local model folder.

    Nothing is downloaded at run time: a hub id, a missing folder, or one without its config,
    tokenizer or every weight shard (as its safetensors index lists them) is refused here,
    before Ray, data or the environment pool start.
    """
    folder = Path(path or "").expanduser()
    if not path or not folder.is_dir():
        raise ValueError(f"policy.model_path={path!r} is not a local folder: the weights are not on this "
                         f"machine; {GET_WEIGHTS}")
    wanted = [("config.json",), ("tokenizer.json", "tokenizer.model")]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text()).get("weight_map", {}).values()))
        wanted += [(shard,) for shard in shards] or [("model-00001-of-0000N.safetensors",)]
    else:
        wanted.append(("model.safetensors", "consolidated.safetensors", "pytorch_model.bin"))
    for names in wanted:
        if not any((folder / name).is_file() for name in names):
            raise ValueError(f"policy.model_path={str(folder)!r} lacks {' or '.join(names)}: the folder is "
                             f"incomplete; {GET_WEIGHTS}")


def resolve_device(cfg: PolicyConfig) -> torch.device:
    """``cuda`` when asked or (auto) available, else ``cpu``."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("policy.device=cuda but CUDA is not available; use policy.device=auto or cpu")
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if use_cuda else "cpu")


class PolicyModel(nn.Module):
    """A peft-wrapped causal LM, its tokenizer and a value head on the last hidden state."""

    def __init__(self, model: PeftModel, tokenizer: Any, cfg: PolicyConfig, reason: str) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.reason = reason
        backbone = model.get_base_model()
        hidden = backbone.config.get_text_config().hidden_size
        self.device = backbone.get_input_embeddings().weight.device
        # Zero init: V = 0 at first, so early advantages are plain rewards-to-go. A random
        # head's values (std ~1) would drown a reward of a few tenths in noise.
        self.value_head = nn.Linear(hidden, 1).to(self.device)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """LoRA weights and the value head: everything the optimizer updates."""
        return [p for p in self.parameters() if p.requires_grad]

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, response_len: int
    ) -> tuple[Tensor, Tensor]:
        """Tempered logits ``[B, R, V]`` predicting each response token, and values ``[B, R]``.

        Inputs are ``prompt + response`` (prompts left-padded, responses right-padded). The
        value at a response token is V(state before it), read off the same hidden state.
        """
        backbone = self.model.get_base_model()
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        out = backbone.get_decoder()(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            use_cache=False,
        )
        hidden = out.last_hidden_state[:, -response_len - 1 : -1]
        lm_head = backbone.get_output_embeddings()
        logits = lm_head(hidden.to(lm_head.weight.dtype)).float() / self.cfg.temperature
        values = self.value_head(hidden.float()).squeeze(-1)
        return logits, values

    @contextmanager
    def reference(self) -> Iterator[None]:
        """Inside this block the model is the reference policy (adapter off)."""
        with self.model.disable_adapter():
            yield

    def save(self, path: str | Path) -> None:
        """Write the adapter (peft format) and the value head under ``path``."""
        path = Path(path)
        self.model.save_pretrained(path / "adapter")
        torch.save(self.value_head.state_dict(), path / "value_head.pt")

    def load(self, path: str | Path) -> None:
        """Restore what :meth:`save` wrote (same base model and LoRA shape)."""
        path = Path(path)
        weights = load_file(str(path / "adapter" / "adapter_model.safetensors"), device=str(self.device))
        result = set_peft_model_state_dict(self.model, weights)
        if result.unexpected_keys:
            raise ValueError(
                f"adapter at {path} does not match this model: {result.unexpected_keys[:3]}"
            )
        self.value_head.load_state_dict(torch.load(path / "value_head.pt", map_location=self.device))


def load_tokenizer(path: str | Path) -> Any:
    """The model's tokenizer, padding and truncating on the left (prompts end at the answer)."""
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    if tokenizer.pad_token is None:  # Mistral ships none; responses stop at the first EOS
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _load_base(path: str | Path, cfg: PolicyConfig, device: torch.device) -> nn.Module:
    dtype = _DTYPES[cfg.compute_dtype]
    if cfg.load_in_4bit:
        quant = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=cfg.bnb_4bit_quant_type,
            bnb_4bit_use_double_quant=cfg.bnb_4bit_use_double_quant, bnb_4bit_compute_dtype=dtype,
        )
        model = AutoModelForCausalLM.from_pretrained(
            str(path), quantization_config=quant, dtype=dtype, device_map={"": str(device)}
        )
        # freezes the base, upcasts norms/embeddings to fp32; checkpointing is set below
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        if device.type == "cpu":
            _keep_cpu_4bit_trainable(model)
    else:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).to(device)
    if cfg.gradient_checkpointing:
        enable_checkpointing(model)
    model.config.use_cache = True  # generation; the training forward passes use_cache=False
    return model


def enable_checkpointing(model: nn.Module) -> None:
    """Non-reentrant activation checkpointing, under either name transformers gives it.

    ``activation_checkpointing_enable`` exists from transformers 5.23; older releases (the
    project allows 4.46 and later) call it ``gradient_checkpointing_enable``.
    """
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _keep_cpu_4bit_trainable(model: nn.Module) -> None:
    """Stop bitsandbytes repacking 4-bit weights for CPU inference.

    On CPUs with AVX512-BF16, bitsandbytes 0.50 converts a ``Linear4bit``'s weights to an
    inference-only layout at its first eval-mode, no-grad forward (our generation), for
    good. Later training passes then run a kernel with no autograd formula: gradients stop
    flowing back through the frozen base, silently, apart from a one-line warning.
    """
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def _add_lora(model: nn.Module, cfg: PolicyConfig) -> PeftModel:
    lora = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_target_modules), bias="none", task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def _tiny_model_path(cfg: PolicyConfig) -> Path:
    try:
        from aiforml.policy.tiny.build import build_tiny_policy
    except ImportError as exc:
        raise ValueError(
            "policy.model_path is not set and the tiny policy builder (aiforml.policy.tiny.build) "
            "is unavailable; set policy.model_path to a local model directory"
        ) from exc
    return Path(build_tiny_policy(cfg.tiny))


def load_policy(cfg: PolicyConfig, model_path: str | Path | None = None) -> PolicyModel:
    """Load the policy ``cfg`` describes; ``model_path`` overrides ``cfg.model_path``.

    For ``tiny`` with no path anywhere, the cached tiny policy is built (or reused).
    """
    resolved, reason = resolve_policy_config(cfg)
    log.info("policy: %s (%s)", resolved.name, reason)
    path = model_path or resolved.model_path or _tiny_model_path(resolved)
    device = resolve_device(resolved)
    if resolved.name == "mistral7b_qlora" and device.type == "cpu":
        log.warning("policy: Mistral-7B on CPU runs, but at minutes per sample")
    try:
        tokenizer = load_tokenizer(path)
        base = _load_base(path, resolved, device)
    except OSError as exc:
        raise ValueError(
            f"cannot load the policy from policy.model_path={str(path)!r} ({exc}). Point "
            "policy.model_path at a local directory holding the model and tokenizer"
        ) from exc
    model = _add_lora(base, resolved)
    policy = PolicyModel(model, tokenizer, resolved, reason)
    n_train = sum(p.numel() for p in policy.trainable_parameters())
    log.info("policy loaded from %s on %s: %d trainable parameters (LoRA + value head)",
             path, device, n_train)
    return policy
