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
    seed: int = 0  # generator seed: same seed and data secret (aiforml/data/secret.py), same data, bit for bit
    n_eras: int | None = None  # total eras generated (train + validation + test + embargoes)
    rows_per_era: int | None = None  # mean rows per era (varies +-20 % per era)
    n_features: int | None = None  # number of feature_* columns
    signal_scale: float | None = None  # strength of the planted signal (1.0 = the preset's)

    def validate(self) -> None:
        for name in ("n_eras", "rows_per_era", "n_features"):
            value = getattr(self, name)
            check(value is None or value >= 10, f"data.synthetic.{name} must be >= 10 or null, got {value}")
        check(
            self.signal_scale is None or self.signal_scale >= 0,
            f"data.synthetic.signal_scale must be >= 0 or null, got {self.signal_scale}",
        )


@dataclass
class SyntheticPricesConfig:
    """The synthetic multi-asset price generator (aiforml.data.price_synthetic)."""

    seed: int = 0  # generator seed: same seed and data secret, same prices
    n_assets: int = 3  # assets traded side by side
    n_days: int = 2000  # trading days per asset
    signal: float = 0.05  # strength of the planted momentum (share of a day's vol carried by the last 5 days' return)

    def validate(self) -> None:
        check(self.n_assets >= 1, f"data.prices.n_assets must be >= 1, got {self.n_assets}")
        check(self.n_days >= 100, f"data.prices.n_days must be >= 100, got {self.n_days}")
        check(self.signal >= 0, f"data.prices.signal must be >= 0, got {self.signal}")


PRICE_SOURCES = ("sp500", "prices", "synthetic_prices")
MAIN_TARGET_ERAS = 4  # eras the main tournament target spans (20 days; aiforml.data.targets)


@dataclass
class DataConfig:
    """Which data set, which features, and how eras are split."""

    source: str = "synthetic"  # data set (aiforml.data.SOURCES): synthetic, numerai, or price series sp500, prices, synthetic_prices (task trading)
    path: str | None = None  # numerai: directory with train.parquet, ...; prices: an OHLCV CSV/parquet file or a folder of them
    task: str = "auto"  # what is scored (aiforml.tasks.TASKS); auto: trading for price sources, else numerai
    horizon: int = 5  # trading: the target is the forward return over this many periods (embargo_eras must be >= it)
    prices: SyntheticPricesConfig = field(default_factory=SyntheticPricesConfig)
    feature_set: str = "all"  # a feature set name from features.json (small, medium, all) or "all"
    # numerai: keep every k-th era, counted from the first era of the first file (eras first,
    # first+k, ...; validation.parquet continues the count); embargo_eras then counts kept eras
    era_stride: int = 1
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    validation_eras: int | None = None  # eras in the validation block (None: the preset's)
    test_eras: int | None = None  # eras in the sealed test block (None: the preset's)
    embargo_eras: int = 4  # eras dropped between train/validation and validation/test
    cache_dir: str | None = None  # where generated data is cached (None: $AIFORML_CACHE or ~/.cache/aiforml)

    def validate(self) -> None:
        check(
            self.source != "numerai" or bool(self.path),
            "data.path is required when data.source is numerai: a directory with train.parquet "
            "(and validation.parquet, features.json) or one parquet file",
        )
        check(self.embargo_eras >= 0, f"data.embargo_eras must be >= 0, got {self.embargo_eras}")
        check(self.era_stride >= 1, f"data.era_stride must be >= 1 (1 keeps every era), got {self.era_stride}")
        check(self.era_stride == 1 or self.source == "numerai",
              f"data.era_stride={self.era_stride} applies to data.source=numerai only (it thins the parquet "
              f"scan); set data.era_stride=1 for data.source={self.source}")
        check(self.source != "prices" or bool(self.path),
              "data.path is required when data.source is prices: an OHLCV CSV/parquet file or a folder of them")
        trading = self.source in PRICE_SOURCES
        check(self.task in ("auto", "trading") if trading else self.task != "trading",
              f"data.task={self.task} does not fit data.source={self.source}: price sources "
              f"({', '.join(PRICE_SOURCES)}) are task trading, the others a task on tournament eras")
        check(self.horizon >= 1, f"data.horizon must be >= 1, got {self.horizon}")
        check(not trading or self.embargo_eras >= self.horizon,
              f"data.embargo_eras ({self.embargo_eras}) must be >= data.horizon ({self.horizon}) for "
              "price data, or training targets overlap validation: raise data.embargo_eras")
        check(trading or self.embargo_eras >= MAIN_TARGET_ERAS,
              f"data.embargo_eras ({self.embargo_eras}) must be >= {MAIN_TARGET_ERAS}, the main target's "
              f"horizon in eras, or training targets overlap validation: set data.embargo_eras to "
              f"at least {MAIN_TARGET_ERAS}")
        for name in ("validation_eras", "test_eras"):
            value = getattr(self, name)
            check(value is None or value >= 1, f"data.{name} must be >= 1 or null, got {value}")

    @property
    def resolved_task(self) -> str:
        """The task this data is scored as: ``task`` unless auto, then by the source."""
        if self.task != "auto":
            return self.task
        return "trading" if self.source in PRICE_SOURCES else "numerai"


# --- sandbox and pipeline -----------------------------------------------------------------
@dataclass
class SandboxConfig:
    """Limits and isolation of the child process that runs generated code."""

    isolation: Literal["auto", "bwrap", "none"] = "auto"  # auto: bwrap when it works, else weaker
    require_isolation: bool = False  # refuse to run when bwrap is unavailable
    wall_s: float = 120.0  # wall-clock limit of one evaluation, enforced from outside
    cpu_s: int = 240  # CPU-seconds limit (RLIMIT_CPU, hard = soft + 1)
    memory_mb: int = 4096  # memory cap of the child (cgroup when writable, else RLIMIT_DATA)
    max_procs: int = 64  # processes+threads the child may hold (pids cgroup; without one: no cap)
    output_bytes: int = 20_000  # captured stdout/stderr kept per stream
    threads: int = 1  # OMP/BLAS threads inside the child
    file_mb: int = 2048  # largest single file the child may write (RLIMIT_FSIZE)
    # zygote: fork each Python child from one interpreter per sandbox that imported `preload`
    # once (same namespaces, mounts, seccomp, rlimits and cgroup); spawn: a fresh one per run
    mode: Literal["zygote", "spawn"] = "zygote"
    preload: list[str] = field(default_factory=lambda: [
        "numpy", "pandas", "scipy.stats", "sklearn.linear_model", "sklearn.ensemble",
        "sklearn.preprocessing", "sklearn.decomposition", "lightgbm"])

    def validate(self) -> None:
        for key in ("cpu_s", "max_procs", "threads", "file_mb"):
            check(getattr(self, key) >= 1, f"env.sandbox.{key} must be >= 1, got {getattr(self, key)}")
        check(self.wall_s > 0, f"env.sandbox.wall_s must be > 0, got {self.wall_s}")
        check(self.memory_mb >= 64, f"env.sandbox.memory_mb must be >= 64 (MB), got {self.memory_mb}")
        check(self.output_bytes >= 0, f"env.sandbox.output_bytes must be >= 0, got {self.output_bytes}")
        check(self.mode in ("zygote", "spawn"), f"env.sandbox.mode must be zygote or spawn, got {self.mode!r}")


@dataclass
class PipelineConfig:
    """The locked steps: default model, CV, and trusted checks."""

    n_estimators: int = 200  # default LightGBM: trees (the Numerai example uses 2000)
    learning_rate: float = 0.05  # default LightGBM: learning rate (example: 0.01)
    max_depth: int = 5  # default LightGBM: depth
    num_leaves: int = 31  # default LightGBM: leaves
    colsample_bytree: float = 0.1  # default LightGBM: column subsample
    cv_folds: int = 3  # default CV: forward-chaining folds over training eras
    leakage_band: float = 0.25  # validation mean per-era corr above this is suspected leakage
    leakage_sharpe: float = 4.5  # validation Sharpe (mean / std of per-era corr) above this is suspected leakage
    leakage_era_corr: float = 0.3  # any one validation era's corr above this is suspected leakage
    static_checks: bool = True  # refuse disallowed imports/builtins before running (isolation stays on)
    max_cv_folds: int = 10  # a program's define_cv may return at most this many folds
    guard_cuts: int = 2  # look-ahead guard: sandboxes per evaluation, each with the data cut at a secret random era
    seed: int = 0  # NumPy's and random's global generators at the start of every stage's sandbox run: a program that draws unseeded random numbers (scikit-learn's random_state=None) scores the same every time

    def validate(self) -> None:
        check(self.n_estimators >= 1, f"env.pipeline.n_estimators must be >= 1, got {self.n_estimators}")
        check(0 < self.learning_rate <= 1, f"env.pipeline.learning_rate must be in (0, 1], got {self.learning_rate}")
        check(0 < self.colsample_bytree <= 1, f"env.pipeline.colsample_bytree must be in (0, 1], got {self.colsample_bytree}")
        check(self.cv_folds >= 1, f"env.pipeline.cv_folds must be >= 1, got {self.cv_folds}")
        check(0 < self.leakage_band <= 1, f"env.pipeline.leakage_band must be in (0, 1], got {self.leakage_band}")
        check(self.guard_cuts >= 1, f"env.pipeline.guard_cuts must be >= 1 (the look-ahead guard stays on), got {self.guard_cuts}")
        check(self.leakage_sharpe > 0, f"env.pipeline.leakage_sharpe must be > 0, got {self.leakage_sharpe}")
        check(0 < self.leakage_era_corr <= 1,
              f"env.pipeline.leakage_era_corr must be in (0, 1], got {self.leakage_era_corr}")


@dataclass
class TradingConfig:
    """Locked scoring of the trading task: predictions -> positions -> returns net of costs."""

    position_rule: Literal["sign", "clip", "long_only"] = "sign"  # sign: -1/0/+1; clip: clip(scale * pred, -1, 1); long_only: 1 when pred > 0
    position_scale: float = 100.0  # clip rule: position per unit of prediction (100: a predicted 1 % return is fully invested)
    cost_bps: float = 1.0  # transaction cost per unit of position traded, in basis points
    periods_per_year: int = 252  # annualizes the Sharpe ratio (252 trading days)
    leakage_sharpe: float = 6.0  # validation annualized Sharpe above this is suspected leakage

    def validate(self) -> None:
        check(self.position_scale > 0, f"env.trading.position_scale must be > 0, got {self.position_scale}")
        check(self.cost_bps >= 0, f"env.trading.cost_bps must be >= 0, got {self.cost_bps}")
        check(self.periods_per_year >= 1, f"env.trading.periods_per_year must be >= 1, got {self.periods_per_year}")
        check(self.leakage_sharpe > 0, f"env.trading.leakage_sharpe must be > 0, got {self.leakage_sharpe}")


@dataclass
class RewardConfig:
    """reward = sum of weights[name] * term (aiforml.reward.TERMS: compile, performance, uniqueness)."""

    # weight per reward term; a term the mapping leaves out weighs 0. compile: -1 failed, 0 ran;
    # performance: tanh(validation statistic / scale); uniqueness: see `uniqueness` below
    weights: dict[str, float] = field(default_factory=lambda: {"compile": 0.3, "performance": 0.7, "uniqueness": 0.0})
    performance: Literal["sharpe", "mean_corr", "total_return"] = "sharpe"  # validation statistic used (total_return: trading only)
    scale: float | None = None  # performance = tanh(statistic / scale); None: 1.0 for sharpe, 0.02 for mean_corr, 0.2 for total_return
    # uniqueness score, paid only for being right differently: baseline = tanh(mean per-era
    # contribution beyond the default LightGBM (BMC) / contribution_scale); contribution =
    # tanh(mean per-era MMC over the meta model / contribution_scale); both = their mean.
    # Validation predictions only (aiforml.reference); noise earns about 0, being wrong differently < 0.
    uniqueness: Literal["baseline", "contribution", "both"] = "baseline"
    contribution_scale: float = 0.02  # BMC/MMC squashing scale: 0.02 maps to tanh(1) (both use the target x 4)
    meta_model_size: int = 5  # best archived programs (by validation Sharpe) in the meta model, plus the baseline
    duplicate_corr: float = 0.99  # corr with an archived program (or the baseline) above this: no uniqueness credit
    compile_shaping: bool = False  # a failed program's compile score rises with the stage it reached

    def validate(self) -> None:
        for name, value in self.weights.items():
            check(value >= 0, f"reward.weights.{name} must be >= 0, got {value}")
        check(self.scale is None or self.scale > 0, f"reward.scale must be > 0 or null, got {self.scale}")
        check(self.contribution_scale > 0, f"reward.contribution_scale must be > 0, got {self.contribution_scale}")
        check(self.meta_model_size >= 0, f"reward.meta_model_size must be >= 0, got {self.meta_model_size}")
        check(0 < self.duplicate_corr <= 1, f"reward.duplicate_corr must be in (0, 1], got {self.duplicate_corr}")


# --- policy and algo ----------------------------------------------------------------------
@dataclass
class TinyPolicyConfig:
    """The tiny offline policy: tokenizer, model size, warm-start corpus and SFT (aiforml.policy.tiny.build)."""

    seed: int = 0  # seed of the corpus generator, tokenizer and model init
    n_programs: int = 3000  # programs in the warm-start corpus
    mistake_rate: float = 0.2  # share of corpus programs with one injected, labelled mistake
    tokenizer_split: Literal["line", "identifier"] = "line"  # BPE pre-token: whole lines or identifiers
    vocab_size: int = 4096  # BPE vocabulary cap, special tokens included (the line corpus saturates near 2.4k)
    hidden_size: int = 128  # model width
    num_layers: int = 4  # transformer blocks
    num_heads: int = 4  # attention heads
    num_kv_heads: int = 2  # key/value heads (grouped-query attention)
    intermediate_size: int = 512  # MLP width
    max_length: int = 512  # longest prompt + completion, in tokens (positions and SFT truncation)
    epochs: float = 3.0  # SFT passes over the corpus
    batch_size: int = 32  # SFT sequences per step
    learning_rate: float = 3e-3  # SFT peak learning rate (cosine decay to a tenth after warmup)
    warmup_ratio: float = 0.05  # share of SFT steps spent warming up
    threads: int = 2  # most torch CPU threads of the build's SFT (fewer while others keep cores busy: aiforml.policy.tiny.threads)
    cache_dir: str | None = None  # where built policies are cached (None: ~/.cache/aiforml/tiny)
    progress: bool = True  # show a progress bar during SFT

    def validate(self) -> None:
        for key in ("n_programs", "vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads",
                    "intermediate_size", "max_length", "batch_size", "threads"):
            value = getattr(self, key)
            check(value >= 1, f"policy.tiny.{key} must be >= 1, got {value}")
        check(0.0 <= self.mistake_rate <= 1.0, f"policy.tiny.mistake_rate must be in [0, 1], got {self.mistake_rate}")
        check(self.vocab_size >= 300, f"policy.tiny.vocab_size must be >= 300 (256 bytes + specials), got {self.vocab_size}")
        check(self.hidden_size % self.num_heads == 0,
              f"policy.tiny.hidden_size ({self.hidden_size}) must be a multiple of num_heads ({self.num_heads})")
        check(self.num_heads % self.num_kv_heads == 0,
              f"policy.tiny.num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})")
        check(self.epochs > 0, f"policy.tiny.epochs must be > 0, got {self.epochs}")
        check(self.learning_rate > 0, f"policy.tiny.learning_rate must be > 0, got {self.learning_rate}")
        check(0.0 <= self.warmup_ratio < 1.0, f"policy.tiny.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")


@dataclass
class PolicyConfig:
    """Which policy model, how it is loaded and how it samples (aiforml.policy)."""

    name: Literal["auto", "mistral7b_qlora", "tiny"] = "auto"  # auto: 7B QLoRA with CUDA, tiny without
    tiny: TinyPolicyConfig = field(default_factory=TinyPolicyConfig)
    # Fields left None take the chosen model's preset (aiforml.policy.model.PRESETS).
    model_path: str | None = None  # local dir or hub id (7B: mistralai/Mistral-7B-Instruct-v0.3; tiny: built)
    device: Literal["auto", "cuda", "cpu"] = "auto"  # auto: cuda when available
    load_in_4bit: bool | None = None  # QLoRA: frozen base in 4-bit (bitsandbytes; CPU backend works too)
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"  # 4-bit data type; NF4 suits normal weights
    bnb_4bit_use_double_quant: bool = True  # quantize the quantization constants too (~0.4 GB saved on 7B)
    compute_dtype: Literal["bfloat16", "float16", "float32"] | None = None  # matmul dtype (4-bit) / weights dtype
    lora_r: int | None = None  # LoRA rank
    lora_alpha: int | None = None  # LoRA scale numerator (scale = alpha / r)
    lora_dropout: float = 0.0  # dropout on the LoRA input; > 0 makes the first PPO ratio differ from 1
    lora_target_modules: list[str] | None = None  # module names that get adapters (q_proj, v_proj, ...)
    gradient_checkpointing: bool | None = None  # recompute activations in backward: memory for time
    max_prompt_tokens: int | None = None  # prompts longer than this keep their last tokens
    max_new_tokens: int | None = None  # response length cap per sample
    sampler: str = "hf"  # generation backend (aiforml.policy.sampling.SAMPLERS): hf = transformers' generate
    temperature: float = 1.0  # sampling temperature; log-probs are of the tempered distribution
    top_p: float = 1.0  # nucleus sampling mass (1.0: off)
    generation_batch_size: int | None = None  # sequences per generate() call
    micro_batch_size: int | None = None  # sequences per forward/backward pass (gradient accumulation unit)

    def validate(self) -> None:
        for key in ("lora_r", "lora_alpha", "max_prompt_tokens", "max_new_tokens",
                    "generation_batch_size", "micro_batch_size"):
            value = getattr(self, key)
            check(value is None or value >= 1, f"policy.{key} must be >= 1 (or null for the preset), got {value}")
        check(0.0 <= self.lora_dropout < 1.0, f"policy.lora_dropout must be in [0, 1), got {self.lora_dropout}")
        check(self.temperature > 0.0, f"policy.temperature must be > 0, got {self.temperature}")
        check(0.0 < self.top_p <= 1.0, f"policy.top_p must be in (0, 1], got {self.top_p}")
        check(self.lora_target_modules is None or len(self.lora_target_modules) > 0,
              "policy.lora_target_modules must name at least one module (or be null for the preset)")


@dataclass
class AlgoConfig:
    """The RL algorithm and its hyperparameters (aiforml.algo).

    The defaults are PPO's (conf/algo/ppo.yaml); conf/algo/grpo.yaml holds GRPO's (1 epoch,
    k3 KL in the loss, fixed coefficient), so ``AlgoConfig(name="grpo")`` alone is not them.
    """

    name: Literal["ppo", "grpo"] = "ppo"  # ppo: value head + GAE; grpo: group-relative, no critic
    learning_rate: float | None = None  # AdamW lr of LoRA + value head (None: policy preset, tiny 3e-3, 7B 1e-5)
    epochs: int = 4  # passes over each rollout batch
    minibatch_size: int = 8  # sequences per optimizer step (accumulated over policy.micro_batch_size)
    max_grad_norm: float = 1.0  # gradient clipping by global norm
    early_stop_kl: float | None = None  # end an update's epochs once their approx KL to the rollout policy passes this (null: never)
    clip_range: float = 0.2  # surrogate clip: ratio kept in [1 - c, 1 + c]
    clip_range_value: float = 0.2  # PPO value clip around the rollout values
    vf_coef: float = 0.1  # PPO weight of the value loss
    entropy_coef: float = 0.0  # bonus on mean token entropy (0: off)
    gamma: float = 1.0  # PPO discount per token
    lam: float | None = None  # PPO GAE lambda (None: policy preset, tiny 0.95, 7B 1.0: credit reaches a 500-token program's first token)
    kl_coef: float = 0.05  # initial KL coefficient (PPO: penalty in the reward; GRPO: beta in the loss)
    kl_estimator: Literal["k1", "k2", "k3"] = "k1"  # per-token KL to the reference (k3: unbiased, >= 0)
    adaptive_kl: bool = True  # adapt kl_coef towards kl_target (Ziegler et al.); false: fixed
    kl_target: float = 6.0  # adaptive KL: target KL per sequence (nats summed over tokens)
    kl_horizon: int = 64  # adaptive KL: samples over which the coefficient moves by at most ~20 % (64: four 16-sample cycles, so a 14-cycle run can move it 2x; RLHF's 10,000 moved it 0.45 %)
    whiten_rewards: bool = False  # standardize sequence rewards over the batch before use
    whiten_advantages: bool = True  # PPO: standardize advantages over the batch's response tokens
    group_scale_std: bool = True  # GRPO: divide group-centred rewards by the group std (false: Dr. GRPO)
    imitation_coef: float = 0.0  # after the RL update, weight of an NLL pass over the cycle's best ok samples (0: off; expert iteration)
    imitation_epochs: int = 1  # imitation: passes over the chosen samples per update

    def validate(self) -> None:
        lr = self.learning_rate
        check(lr is None or lr > 0, f"algo.learning_rate must be > 0 (or null for the preset), got {lr}")
        for key in ("epochs", "minibatch_size", "kl_horizon", "imitation_epochs"):
            value = getattr(self, key)
            check(value >= 1, f"algo.{key} must be >= 1, got {value}")
        for key in ("clip_range", "clip_range_value"):
            value = getattr(self, key)
            check(0.0 < value < 1.0, f"algo.{key} must be in (0, 1), got {value}")
        for key in ("gamma", "lam"):
            value = getattr(self, key)
            check(value is None and key == "lam" or value is not None and 0.0 <= value <= 1.0,
                  f"algo.{key} must be in [0, 1], got {value}")
        for key in ("max_grad_norm", "kl_target"):
            value = getattr(self, key)
            check(value > 0.0, f"algo.{key} must be > 0, got {value}")
        stop = self.early_stop_kl
        check(stop is None or stop > 0, f"algo.early_stop_kl must be > 0 (or null: never stop early), got {stop}")
        for key in ("vf_coef", "entropy_coef", "kl_coef", "imitation_coef"):
            value = getattr(self, key)
            check(value >= 0.0, f"algo.{key} must be >= 0 (0 turns it off), got {value}")


@dataclass
class ServerConfig:
    """The environment's MCP server (aiforml.env.server)."""

    show_test: bool = False  # return sealed-test scores too (a person, or a run's archive; never the policy)
    output_chars: int = 4000  # captured stdout / traceback characters returned per evaluation
    host: str = "127.0.0.1"  # HTTP transport: bind address (loopback only unless changed on purpose)
    port: int = 8765  # HTTP transport: port

    def validate(self) -> None:
        check(self.output_chars >= 0, f"env.server.output_chars must be >= 0, got {self.output_chars}")
        check(0 < self.port < 65536, f"env.server.port must be in 1..65535, got {self.port}")


@dataclass
class PoolConfig:
    """The Ray pool of environment actors that evaluates programs in parallel (aiforml.env.pool)."""

    num_actors: int = 2  # EnvActors, each evaluating one program at a time
    cpus_per_actor: float = 1.0  # Ray CPU request per actor; actors x this must fit beside the learner
    deadline_s: float | None = None  # per-program deadline through the pool (None: env.sandbox.wall_s + 30)
    grace_s: float = 30.0  # past the deadline, an actor that has not answered is declared hung
    max_restarts: int = 3  # Ray restarts a dead actor this many times
    retries: int = 1  # re-runs of a program whose actor died; then the result is infra_error
    start_timeout_s: float = 300.0  # actor start-up, data hand-off and baseline warm-up
    cache_size: int = 10_000  # results kept by (program hash, data version), least recently used out; 0: off
    cache_mb: float = 1024.0  # and at most this many MB of the validation predictions results carry
    actor_resources: dict[str, float] | None = None  # Ray custom resources per actor (e.g. {env_node: 1}: CPU nodes only)

    def validate(self) -> None:
        check(self.num_actors >= 1, f"env.pool.num_actors must be >= 1, got {self.num_actors}")
        check(self.cpus_per_actor > 0, f"env.pool.cpus_per_actor must be > 0, got {self.cpus_per_actor}")
        check(self.deadline_s is None or self.deadline_s > 0,
              f"env.pool.deadline_s must be > 0 (or null for env.sandbox.wall_s + 30), got {self.deadline_s}")
        for key in ("grace_s", "start_timeout_s"):
            check(getattr(self, key) > 0, f"env.pool.{key} must be > 0, got {getattr(self, key)}")
        check(self.cache_mb > 0, f"env.pool.cache_mb must be > 0, got {self.cache_mb}")
        for key in ("max_restarts", "retries", "cache_size"):
            check(getattr(self, key) >= 0, f"env.pool.{key} must be >= 0, got {getattr(self, key)}")
        check_resources_map(self.actor_resources, "env.pool.actor_resources")


@dataclass
class EnvConfig:
    """The environment: how programs are run and checked."""

    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    trading: TradingConfig = field(default_factory=TradingConfig)


# --- the RL loop, its trackers and its Ray cluster ----------------------------------------
@dataclass
class LoopConfig:
    """The training loop's budget and rhythm (aiforml.loop)."""

    cycles: int = 12  # cycles of prompt -> generate -> evaluate -> reward -> update
    prompts_per_cycle: int = 4  # prompts per cycle (GRPO groups)
    samples_per_prompt: int = 4  # completions sampled per prompt
    checkpoint_every: int = 1  # save a checkpoint every k cycles (and always after the last)
    keep_checkpoints: int = 2  # complete checkpoints kept; older ones are deleted
    timeout_s: float = 1800.0  # limit of one learner call (generate, update, save, load)
    progress: bool = True  # show the rich progress bar
    report: bool = True  # write the report (aiforml.report) at the end of the run

    def validate(self) -> None:
        for key in ("cycles", "prompts_per_cycle", "samples_per_prompt", "checkpoint_every", "keep_checkpoints"):
            check(getattr(self, key) >= 1, f"loop.{key} must be >= 1, got {getattr(self, key)}")
        check(self.timeout_s > 0, f"loop.timeout_s must be > 0, got {self.timeout_s}")


@dataclass
class WandbConfig:
    """Weights & Biases tracking: optional, off by default (needs ``pip install wandb``)."""

    enabled: bool = False  # log every metric to W&B too
    project: str = "aiforml"  # W&B project
    entity: str | None = None  # W&B team or user (None: the default of the logged-in account)
    mode: Literal["online", "offline", "disabled"] = "offline"  # offline: write locally, sync later


@dataclass
class MlflowConfig:
    """MLflow tracking: optional, off by default (needs ``pip install mlflow``)."""

    enabled: bool = False  # log every metric to MLflow too
    tracking_uri: str | None = None  # None: ./mlruns under the run directory
    experiment: str = "aiforml"  # MLflow experiment name


@dataclass
class LoggerConfig:
    """Where metrics go: TensorBoard always (run_dir/tensorboard), W&B and MLflow optionally."""

    wandb: WandbConfig = field(default_factory=WandbConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    flush_every: int = 1  # flush the TensorBoard writer every k cycles

    def validate(self) -> None:
        check(self.flush_every >= 1, f"logger.flush_every must be >= 1, got {self.flush_every}")


@dataclass
class RayConfig:
    """The Ray cluster the run uses: local by default, or an existing one."""

    address: str | None = None  # None: start a local Ray of its own, even beside another cluster; "auto" or host:port joins one
    num_cpus: int | None = None  # local Ray only: CPUs it may use (None: all of the machine's)
    learner_cpus: float = 0.0  # CPU request of the learner actor; 0: it works in turns with the env actors, which get the cores
    include_dashboard: bool = False  # start Ray's dashboard (local Ray only)
    learner_resources: dict[str, float] | None = None  # Ray custom resources of the learner (e.g. {gpu_node: 1})

    def validate(self) -> None:
        check(self.num_cpus is None or self.num_cpus >= 1, f"ray.num_cpus must be >= 1 or null, got {self.num_cpus}")
        check(self.learner_cpus >= 0, f"ray.learner_cpus must be >= 0, got {self.learner_cpus}")
        check(self.address is None or self.num_cpus is None,
              "ray.num_cpus applies to a local Ray only: set ray.num_cpus=null with ray.address")
        check_resources_map(self.learner_resources, "ray.learner_resources")


@dataclass
class SweepConfig:
    """A Ray Tune sweep over whole runs (aiforml.sweep); an empty ``space`` means a single run.

    Trial ``k`` (0-based: the ``num_samples`` draws, then the ``seed_repeats``) runs with seed
    ``seed + k``, so no two trials share a seed and ``launch.py seed=...`` with a trial's values
    reruns it. The repeats run trial 0's values again at their own seeds: ``trials.md`` sets
    the spread of the objective between those seeds beside the spread between the sampled
    trials, the noise a winner has to beat.
    """

    space: dict[str, str] = field(default_factory=dict)  # dotted config key -> distribution, e.g. "uniform(0.1, 0.5)" (aiforml.tune_space)
    num_samples: int = 4  # trials drawn from the space
    seed_repeats: int = 2  # extra trials of trial 0's values, each at its own seed (0: no between-seed spread)
    # mean_val_sharpe / mean_reward: the mean over the last last_k cycles of val/sharpe_mean / reward/mean
    # (reward scales with the weights: not for reward sweeps); best_val_sharpe: best validation Sharpe so
    # far, which a short trial's first cycle, before any update, often sets for good
    objective: Literal["best_val_sharpe", "mean_val_sharpe", "mean_reward"] = "mean_val_sharpe"
    last_k: int = 2  # objectives mean_*: cycles averaged (2: a 3-cycle trial's cycles after its updates)
    scheduler: Literal["asha", "fifo"] = "asha"  # asha: stop weak trials early; fifo: run every trial to the end
    grace_period: int = 1  # ASHA: cycles every trial runs before it may be stopped
    reduction_factor: int = 2  # ASHA: keep about 1 / reduction_factor of the trials at each rung
    max_concurrent: int | None = None  # trials at once (None: as many as the cluster's resources fit)
    trial_cpus: float = 1.0  # CPUs of the trial driver's bundle (also hosts the learner when it asks for nothing)
    search_seed: int | None = 0  # seed of the random search (None: different values each sweep; trials' seeds follow `seed`)

    def validate(self) -> None:
        for key in ("num_samples", "last_k", "grace_period"):
            check(getattr(self, key) >= 1, f"tune.{key} must be >= 1, got {getattr(self, key)}")
        check(self.seed_repeats >= 0, f"tune.seed_repeats must be >= 0, got {self.seed_repeats}")
        check(self.reduction_factor >= 2, f"tune.reduction_factor must be >= 2, got {self.reduction_factor}")
        check(self.max_concurrent is None or self.max_concurrent >= 1,
              f"tune.max_concurrent must be >= 1 or null, got {self.max_concurrent}")
        check(self.trial_cpus >= 0, f"tune.trial_cpus must be >= 0, got {self.trial_cpus}")


@dataclass
class DiversityConfig:
    """Diversity figures and in-context feedback (aiforml.diversity, aiforml.policy.prompt)."""

    cluster_corr: float = 0.9  # programs whose mean per-era rank corr is above this share a behavioural cluster
    feedback: bool = False  # put a few of the best, mutually different programs so far before the prompt
    feedback_programs: int = 3  # at most this many (best per model family, behaviourally distinct)
    # Characters of feedback at most. Whole programs only; what does not fit is named in one
    # line without code. The feedback comes first, so the tokenizer's left truncation
    # (policy.max_prompt_tokens) can only cut feedback, never the task; see policy/prompt.py.
    feedback_chars: int = 1200

    def validate(self) -> None:
        check(0 < self.cluster_corr <= 1, f"diversity.cluster_corr must be in (0, 1], got {self.cluster_corr}")
        check(self.feedback_programs >= 1, f"diversity.feedback_programs must be >= 1, got {self.feedback_programs}")
        check(self.feedback_chars >= 0, f"diversity.feedback_chars must be >= 0, got {self.feedback_chars}")


@dataclass
class Config:
    """The whole run."""

    data: DataConfig = field(default_factory=DataConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    diversity: DiversityConfig = field(default_factory=DiversityConfig)
    tune: SweepConfig = field(default_factory=SweepConfig)
    seed: int = 0  # global seed
    run_dir: str | None = None  # output directory (None: Hydra's)
    resume: str | None = None  # a run directory to continue from its last complete checkpoint (its archive too)


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


def check_resources_map(resources: dict[str, float] | None, key: str) -> None:
    """Custom Ray resources: names other than CPU/GPU/memory, amounts >= 0."""
    for name, amount in (resources or {}).items():
        check(name not in ("CPU", "GPU", "memory"),
              f"{key}.{name}: CPU/GPU are set elsewhere (env.pool.cpus_per_actor, ray.learner_cpus); "
              "name only custom resources here")
        check(amount >= 0, f"{key}.{name} must be >= 0, got {amount}")


def check(condition: bool, message: str) -> None:
    """Raise ValueError(message) unless condition holds: for ``validate()`` methods."""
    if not condition:
        raise ValueError(message)
