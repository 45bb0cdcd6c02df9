"""Build a Mistral-architecture policy with random weights, entirely offline.

Responsible for: a byte-level BPE tokenizer trained in a fraction of a second on a small
built-in text, a ``MistralConfig`` model initialised at random (``tiny`` for tests and
benchmarks, ``7b`` for the full-size memory check on a GPU), both saved to one directory
that ``AutoModelForCausalLM`` / ``AutoTokenizer`` load with no hub access.

Not responsible for: anything a policy should *know*. These models are untrained; the
warm-started tiny policy (corpus, SFT, cache) is built by :mod:`aiforml.policy.tiny.build`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>"]

# A few lines of the kind of text the policy writes, so the tokenizer has real merges.
_SEED_TEXT = """\
def create_features(df):
    df = df.copy()
    df["feature_mean"] = df.filter(like="feature_").mean(axis=1)
    return df

def define_model():
    import lightgbm as lgb
    return lgb.LGBMRegressor(n_estimators=200, learning_rate=0.05, max_depth=5)

def define_cv(eras):
    from sklearn.model_selection import GroupKFold
    return GroupKFold(n_splits=3)

def create_target(df):
    return df["target"].rank(pct=True)
"""

SIZES: dict[str, dict[str, int]] = {
    # about 0.2M parameters: generates and trains in well under a second on CPU
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2),
    # Mistral-7B-v0.3's shapes (7.25B parameters)
    "7b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
               num_attention_heads=32, num_key_value_heads=8),
}


def train_tokenizer(vocab_size: int = 512, text: str = _SEED_TEXT) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with <pad>, <s> and </s>, trained on ``text``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([text] * 4, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        padding_side="left",
    )


def build_scratch_policy(
    out_dir: str | Path,
    size: Literal["tiny", "7b"] = "tiny",
    seed: int = 0,
    vocab_size: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    init_std: float | None = None,
    shape: dict[str, int] | None = None,
) -> Path:
    """Save a random-weight Mistral model and its tokenizer to ``out_dir``; return the path.

    ``vocab_size`` sets the model's embedding rows (default: the tokenizer's size for
    ``tiny``, 32768 as in Mistral-7B-v0.3 for ``7b``); rows past the tokenizer are unused.
    ``init_std`` is the weights' initial standard deviation (default 0.1 for ``tiny``, 0.02
    for ``7b``); ``shape`` overrides ``SIZES[size]`` entries (``hidden_size``, ...). At 0.02 a 64-wide model's logits stay within about +-1.3, too flat for a
    policy to become confident, so RL tests would crawl.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer()
    vocab = vocab_size or (len(tokenizer) if size == "tiny" else 32768)
    config = MistralConfig(
        vocab_size=vocab,
        max_position_embeddings=4096,
        sliding_window=None,
        initializer_range=init_std or (0.1 if size == "tiny" else 0.02),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **{**SIZES[size], **(shape or {})},
    )
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build in the target dtype: 7B in fp32 would need 29 GB
    try:
        with torch.device(device):
            model = MistralForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
