"""Typed configuration: dataclasses that mirror ``conf/`` group by group.

Hydra composes the YAML; :func:`from_dict` converts the composed mapping into these
dataclasses once, at the entry point, and every module below receives a typed sub-config.
Each field is documented once, beside it. Types and bounds are checked by pydantic from
the field annotations (strictly: an integer is not a boolean, a string is not a number, an
unknown key is refused); what involves several keys is a section's ``check``. A bad key or
value fails at start with a ``ValueError`` that names the full key and the fix. Nothing
here builds objects.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

T = TypeVar("T")

# Bounds, as field types (pydantic checks them; the message names the key).
AtLeast1 = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]
Share = Annotated[float, Field(gt=0, le=1)]  # (0, 1]
Unit = Annotated[float, Field(ge=0, le=1)]  # [0, 1]
OpenUnit = Annotated[float, Field(gt=0, lt=1)]  # (0, 1)
Dropout = Annotated[float, Field(ge=0, lt=1)]  # [0, 1)
Resources = dict[str, NonNeg] | None  # Ray custom resources: names other than CPU/GPU/memory


class Section:
    """Base of every config section: unknown keys are refused; ``check`` holds cross-key rules."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    def check(self) -> None:
        """Rules that involve several keys of this section (single-key bounds live in the types)."""

    def validate(self, prefix: str = "") -> None:
        """Check this section as :func:`from_dict` would (types, bounds, cross-key rules)."""
        from_dict(type(self), dataclasses.asdict(self), prefix)


# --- data ---------------------------------------------------------------------------------
AtLeast10 = Annotated[int, Field(ge=10)]


@dataclass
class SyntheticConfig(Section):
    """Sizes and seed of the synthetic Numerai-like generator (see aiforml.data.synthetic)."""

    preset: Literal["fast", "realistic"] = "fast"  # named size/strength preset; fields below override it when set
    seed: int = 0  # generator seed: same seed and data secret (aiforml/data/secret.py), same data, bit for bit
    n_eras: AtLeast10 | None = None  # total eras generated (train + validation + test + embargoes)
    rows_per_era: AtLeast10 | None = None  # mean rows per era (varies +-20 % per era)
    n_features: AtLeast10 | None = None  # number of feature_* columns
    signal_scale: NonNeg | None = None  # strength of the planted signal (1.0 = the preset's)


@dataclass
class SyntheticPricesConfig(Section):
    """The synthetic multi-asset price generator (aiforml.data.price_synthetic)."""

    seed: int = 0  # generator seed: same seed and data secret, same prices
    n_assets: AtLeast1 = 3  # assets traded side by side
    n_days: Annotated[int, Field(ge=100)] = 2000  # trading days per asset
    signal: NonNeg = 0.05  # strength of the planted momentum (share of a day's vol carried by the last 5 days' return)


PRICE_SOURCES = ("sp500", "prices", "synthetic_prices")
MAIN_TARGET_ERAS = 4  # eras the main tournament target spans (20 days; aiforml.data.targets)


@dataclass
class DataConfig(Section):
    """Which data set, which features, and how eras are split."""

    source: str = "synthetic"  # data set (aiforml.data.SOURCES): synthetic, numerai, or price series sp500, prices, synthetic_prices (task trading)
    path: str | None = None  # numerai: directory with train.parquet, ...; prices: an OHLCV CSV/parquet file or a folder of them
    task: str = "auto"  # what is scored (aiforml.tasks.TASKS); auto: trading for price sources, else numerai
    horizon: AtLeast1 = 5  # trading: the target is the forward return over this many periods (embargo_eras must be >= it)
    prices: SyntheticPricesConfig = field(default_factory=SyntheticPricesConfig)
    feature_set: str = "all"  # a feature set name from features.json (small, medium, all) or "all"
    # numerai: keep every k-th era (1 keeps every era), counted from the first era of the first
    # file (eras first, first+k, ...; validation.parquet continues the count); embargo_eras then counts kept eras
    era_stride: AtLeast1 = 1
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    validation_eras: AtLeast1 | None = None  # eras in the validation block (None: the preset's)
    test_eras: AtLeast1 | None = None  # eras in the sealed test block (None: the preset's)
    embargo_eras: NonNegInt = 4  # eras dropped between train/validation and validation/test
    cache_dir: str | None = None  # where generated data is cached (None: $AIFORML_CACHE or ~/.cache/aiforml)

    def check(self) -> None:
        check(self.source != "numerai" or bool(self.path),
              "data.path is required when data.source is numerai: a directory with train.parquet "
              "(and validation.parquet, features.json) or one parquet file")
        check(self.era_stride == 1 or self.source == "numerai",
              f"data.era_stride={self.era_stride} applies to data.source=numerai only (it thins the parquet "
              f"scan); set data.era_stride=1 for data.source={self.source}")
        check(self.source != "prices" or bool(self.path),
              "data.path is required when data.source is prices: an OHLCV CSV/parquet file or a folder of them")
        trading = self.source in PRICE_SOURCES
        check(self.task in ("auto", "trading") if trading else self.task != "trading",
              f"data.task={self.task} does not fit data.source={self.source}: price sources "
              f"({', '.join(PRICE_SOURCES)}) are task trading, the others a task on tournament eras")
        check(not trading or self.embargo_eras >= self.horizon,
              f"data.embargo_eras ({self.embargo_eras}) must be >= data.horizon ({self.horizon}) for "
              "price data, or training targets overlap validation: raise data.embargo_eras")
        check(trading or self.embargo_eras >= MAIN_TARGET_ERAS,
              f"data.embargo_eras ({self.embargo_eras}) must be >= {MAIN_TARGET_ERAS}, the main target's "
              f"horizon in eras, or training targets overlap validation: set data.embargo_eras to "
              f"at least {MAIN_TARGET_ERAS}")

    @property
    def resolved_task(self) -> str:
        """The task this data is scored as: ``task`` unless auto, then by the source."""
        if self.task != "auto":
            return self.task
        return "trading" if self.source in PRICE_SOURCES else "numerai"


# --- the environment: sandbox, locked pipeline, trading rules, server, pool ----------------
@dataclass
class SandboxConfig(Section):
    """Limits and isolation of the child process that runs generated code."""

    isolation: Literal["auto", "bwrap", "none"] = "auto"  # auto: bwrap when it works, else weaker
    require_isolation: bool = False  # refuse to run when bwrap is unavailable
    wall_s: Positive = 120.0  # wall-clock limit of one evaluation, enforced from outside
    cpu_s: AtLeast1 = 240  # CPU-seconds limit (RLIMIT_CPU, hard = soft + 1)
    memory_mb: Annotated[int, Field(ge=64)] = 4096  # memory cap of the child in MB (cgroup when writable, else RLIMIT_DATA)
    max_procs: AtLeast1 = 64  # processes+threads the child may hold (pids cgroup; without one: no cap)
    output_bytes: NonNegInt = 20_000  # captured stdout/stderr kept per stream
    threads: AtLeast1 = 1  # OMP/BLAS threads inside the child
    file_mb: AtLeast1 = 2048  # largest single file the child may write (RLIMIT_FSIZE)
    # zygote: fork each Python child from one interpreter per sandbox that imported `preload`
    # once (same namespaces, mounts, seccomp, rlimits and cgroup); spawn: a fresh one per run
    mode: Literal["zygote", "spawn"] = "zygote"
    preload: list[str] = field(default_factory=lambda: [
        "numpy", "pandas", "scipy.stats", "sklearn.linear_model", "sklearn.ensemble",
        "sklearn.preprocessing", "sklearn.decomposition", "lightgbm"])


@dataclass
class PipelineConfig(Section):
    """The locked steps: default model, CV, and trusted checks."""

    n_estimators: AtLeast1 = 200  # default LightGBM: trees (the Numerai example uses 2000)
    learning_rate: Share = 0.05  # default LightGBM: learning rate (example: 0.01)
    max_depth: int = 5  # default LightGBM: depth
    num_leaves: int = 31  # default LightGBM: leaves
    colsample_bytree: Share = 0.1  # default LightGBM: column subsample
    cv_folds: AtLeast1 = 3  # default CV: forward-chaining folds over training eras
    leakage_band: Share = 0.25  # validation mean per-era corr above this is suspected leakage
    leakage_sharpe: Positive = 4.5  # validation Sharpe (mean / std of per-era corr) above this is suspected leakage
    leakage_era_corr: Share = 0.3  # any one validation era's corr above this is suspected leakage
    static_checks: bool = True  # refuse disallowed imports/builtins before running (isolation stays on)
    max_cv_folds: int = 10  # a program's define_cv may return at most this many folds
    # a LightGBM model the locked step fits builds its bins from at most this many rows, unless the
    # program sets subsample_for_bin or bin_construct_sample_cnt: LightGBM holds the sample as doubles
    # (its default 200,000 rows are 1.7 GB at 705 features); int8 features get the same bins from 5,000
    bin_sample_rows: AtLeast1 = 20_000
    # ... and from at most this many MB of those doubles (rows x columns x 8 bytes), with 1,000 rows at
    # least: 5,516 rows at Numerai's 2,376 features, all 20,000 up to 655 columns
    bin_sample_mb: AtLeast1 = 100
    # the feature-neutral correlation keeps, per validation and test era, a basis of rows x min(rows, features + 1)
    # doubles, once per machine in /dev/shm (Numerai's 5,000 rows per era at 2,376 features: 95 MB an era); past this many MB in
    # all, the smaller map form (features + 1 squared, and the int8 rows); past that not computed (None), and
    # the run says so; 0: never computed
    fnc_basis_mb: NonNegInt = 2048
    guard_cuts: AtLeast1 = 2  # look-ahead guard (always on): sandboxes per evaluation, each with the data cut at a secret random era
    # past this many MB of feature matrix, a program's look-ahead guards run after its model stage instead of
    # beside it: less memory at once, more time (at Numerai's full width, stride 4, own features: 3700 against
    # 4206 MB, 43 against 34 s); 0: always beside
    guards_after_mb: NonNegInt = 0
    seed: int = 0  # NumPy's and random's global generators at the start of every stage's sandbox run: a program that draws unseeded random numbers (scikit-learn's random_state=None) scores the same every time


@dataclass
class TradingConfig(Section):
    """Locked scoring of the trading task: predictions -> positions -> returns net of costs."""

    position_rule: Literal["sign", "clip", "long_only"] = "sign"  # sign: -1/0/+1; clip: clip(scale * pred, -1, 1); long_only: 1 when pred > 0
    position_scale: Positive = 100.0  # clip rule: position per unit of prediction (100: a predicted 1 % return is fully invested)
    cost_bps: NonNeg = 1.0  # transaction cost per unit of position traded, in basis points
    periods_per_year: AtLeast1 = 252  # annualizes the Sharpe ratio (252 trading days)
    leakage_sharpe: Positive = 6.0  # validation annualized Sharpe above this is suspected leakage


@dataclass
class ServerConfig(Section):
    """The environment's MCP server (aiforml.env.server)."""

    show_test: bool = False  # return sealed-test scores too (a person, or a run's archive; never the policy)
    output_chars: NonNegInt = 4000  # captured stdout / traceback characters returned per evaluation
    host: str = "127.0.0.1"  # HTTP transport: bind address (loopback only unless changed on purpose)
    port: Annotated[int, Field(ge=1, le=65535)] = 8765  # HTTP transport: port


@dataclass
class PoolConfig(Section):
    """The Ray pool of environment actors that evaluates programs in parallel (aiforml.env.pool)."""

    num_actors: AtLeast1 = 2  # EnvActors, each evaluating one program at a time
    cpus_per_actor: Positive = 1.0  # Ray CPU request per actor; actors x this must fit beside the learner
    deadline_s: Positive | None = None  # per-program deadline through the pool (None: env.sandbox.wall_s + 30)
    grace_s: Positive = 30.0  # past the deadline, an actor that has not answered is declared hung
    max_restarts: NonNegInt = 3  # Ray restarts a dead actor this many times
    retries: NonNegInt = 1  # re-runs of a program whose actor died; then the result is infra_error
    start_timeout_s: Positive = 300.0  # actor start-up, data hand-off and baseline warm-up
    cache_size: NonNegInt = 10_000  # results kept by (program hash, data version), least recently used out; 0: off
    cache_mb: Positive = 1024.0  # and at most this many MB of the validation predictions results carry
    actor_resources: Resources = None  # Ray custom resources per actor (e.g. {env_node: 1}: CPU nodes only)

    def check(self) -> None:
        check_resources_map(self.actor_resources, "env.pool.actor_resources")


@dataclass
class EnvConfig(Section):
    """The environment: how programs are run and checked."""

    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    trading: TradingConfig = field(default_factory=TradingConfig)


# --- policy, algorithm and reward ---------------------------------------------------------
@dataclass
class TinyPolicyConfig(Section):
    """The tiny offline policy: tokenizer, model size, warm-start corpus and SFT (aiforml.policy.tiny.build)."""

    seed: int = 0  # seed of the corpus generator, tokenizer and model init
    n_programs: AtLeast1 = 3000  # programs in the warm-start corpus
    mistake_rate: Unit = 0.2  # share of corpus programs with one injected, labelled mistake
    tokenizer_split: Literal["line", "identifier"] = "line"  # BPE pre-token: whole lines or identifiers
    vocab_size: Annotated[int, Field(ge=300)] = 4096  # BPE vocabulary cap, special tokens included (256 bytes + specials at least; the line corpus saturates near 2.4k)
    hidden_size: AtLeast1 = 128  # model width (a multiple of num_heads)
    num_layers: AtLeast1 = 4  # transformer blocks
    num_heads: AtLeast1 = 4  # attention heads (a multiple of num_kv_heads)
    num_kv_heads: AtLeast1 = 2  # key/value heads (grouped-query attention)
    intermediate_size: AtLeast1 = 512  # MLP width
    max_length: AtLeast1 = 512  # longest prompt + completion, in tokens (positions and SFT truncation)
    epochs: Positive = 3.0  # SFT passes over the corpus
    batch_size: AtLeast1 = 32  # SFT sequences per step
    learning_rate: Positive = 3e-3  # SFT peak learning rate (cosine decay to a tenth after warmup)
    warmup_ratio: Dropout = 0.05  # share of SFT steps spent warming up
    threads: AtLeast1 = 2  # most torch CPU threads of the build's SFT (fewer while others keep cores busy: aiforml.policy.tiny.threads)
    cache_dir: str | None = None  # where built policies are cached (None: ~/.cache/aiforml/tiny)
    progress: bool = True  # show a progress bar during SFT

    def check(self) -> None:
        check(self.hidden_size % self.num_heads == 0,
              f"policy.tiny.hidden_size ({self.hidden_size}) must be a multiple of num_heads ({self.num_heads})")
        check(self.num_heads % self.num_kv_heads == 0,
              f"policy.tiny.num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})")


@dataclass
class PolicyConfig(Section):
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
    lora_r: AtLeast1 | None = None  # LoRA rank
    lora_alpha: AtLeast1 | None = None  # LoRA scale numerator (scale = alpha / r)
    lora_dropout: Dropout = 0.0  # dropout on the LoRA input; > 0 makes the first PPO ratio differ from 1
    lora_target_modules: Annotated[list[str], Field(min_length=1)] | None = None  # module names that get adapters (q_proj, v_proj, ...)
    gradient_checkpointing: bool | None = None  # recompute activations in backward: memory for time
    max_prompt_tokens: AtLeast1 | None = None  # prompts longer than this keep their last tokens
    max_new_tokens: AtLeast1 | None = None  # response length cap per sample
    sampler: str = "hf"  # generation backend (aiforml.policy.sampling.SAMPLERS): hf = transformers' generate
    temperature: Positive = 1.0  # sampling temperature; log-probs are of the tempered distribution
    top_p: Share = 1.0  # nucleus sampling mass (1.0: off)
    generation_batch_size: AtLeast1 | None = None  # sequences per generate() call
    micro_batch_size: AtLeast1 | None = None  # sequences per forward/backward pass (gradient accumulation unit)


@dataclass
class AlgoConfig(Section):
    """The RL algorithm and its hyperparameters (aiforml.algo).

    The defaults are PPO's (conf/algo/ppo.yaml); conf/algo/grpo.yaml holds GRPO's (1 epoch,
    k3 KL in the loss, fixed coefficient), so ``AlgoConfig(name="grpo")`` alone is not them.
    """

    name: Literal["ppo", "grpo"] = "ppo"  # ppo: value head + GAE; grpo: group-relative, no critic
    learning_rate: Positive | None = None  # AdamW lr of LoRA + value head (None: policy preset, tiny 3e-3, 7B 1e-5)
    epochs: AtLeast1 = 4  # passes over each rollout batch
    minibatch_size: AtLeast1 = 8  # sequences per optimizer step (accumulated over policy.micro_batch_size)
    max_grad_norm: Positive = 1.0  # gradient clipping by global norm
    early_stop_kl: Positive | None = None  # end an update's epochs once their approx KL to the rollout policy passes this (null: never)
    clip_range: OpenUnit = 0.2  # surrogate clip: ratio kept in [1 - c, 1 + c]
    clip_range_value: OpenUnit = 0.2  # PPO value clip around the rollout values
    vf_coef: NonNeg = 0.1  # PPO weight of the value loss (0 turns it off, as for every coefficient below)
    entropy_coef: NonNeg = 0.0  # bonus on mean token entropy (0: off)
    gamma: Unit = 1.0  # PPO discount per token
    lam: Unit | None = None  # PPO GAE lambda (None: policy preset, tiny 0.95, 7B 1.0: credit reaches a 500-token program's first token)
    kl_coef: NonNeg = 0.05  # initial KL coefficient (PPO: penalty in the reward; GRPO: beta in the loss)
    kl_estimator: Literal["k1", "k2", "k3"] = "k1"  # per-token KL to the reference (k3: unbiased, >= 0)
    adaptive_kl: bool = True  # adapt kl_coef towards kl_target (Ziegler et al.); false: fixed
    kl_target: Positive = 6.0  # adaptive KL: target KL per sequence (nats summed over tokens)
    kl_horizon: AtLeast1 = 64  # adaptive KL: samples over which the coefficient moves by at most ~20 % (64: four 16-sample cycles, so a 14-cycle run can move it 2x; RLHF's 10,000 moved it 0.45 %)
    whiten_rewards: bool = False  # standardize sequence rewards over the batch before use
    whiten_advantages: bool = True  # PPO: standardize advantages over the batch's response tokens
    group_scale_std: bool = True  # GRPO: divide group-centred rewards by the group std (false: Dr. GRPO)
    imitation_coef: NonNeg = 0.0  # after the RL update, weight of an NLL pass over the cycle's best ok samples (0: off; expert iteration)
    imitation_epochs: AtLeast1 = 1  # imitation: passes over the chosen samples per update


@dataclass
class RewardConfig(Section):
    """reward = sum of weights[name] * term (aiforml.reward.TERMS: compile, performance, uniqueness)."""

    # weight per reward term; a term the mapping leaves out weighs 0. compile: -1 failed, 0 ran;
    # performance: tanh(validation statistic / scale); uniqueness: see `uniqueness` below
    weights: dict[str, NonNeg] = field(default_factory=lambda: {"compile": 0.3, "performance": 0.7, "uniqueness": 0.0})
    performance: Literal["sharpe", "mean_corr", "total_return"] = "sharpe"  # validation statistic used (total_return: trading only)
    scale: Positive | None = None  # performance = tanh(statistic / scale); None: 1.0 for sharpe, 0.02 for mean_corr, 0.2 for total_return
    # uniqueness score, paid only for being right differently: baseline = tanh(mean per-era
    # contribution beyond the default LightGBM (BMC) / contribution_scale); contribution =
    # tanh(mean per-era MMC over the meta model / contribution_scale); both = their mean.
    # Validation predictions only (aiforml.reference); noise earns about 0, being wrong differently < 0.
    uniqueness: Literal["baseline", "contribution", "both"] = "baseline"
    contribution_scale: Positive = 0.02  # BMC/MMC squashing scale: 0.02 maps to tanh(1) (both use the target x 4)
    meta_model_size: NonNegInt = 5  # best archived programs (by validation Sharpe) in the meta model, plus the baseline
    duplicate_corr: Share = 0.99  # corr with an archived program (or the baseline) above this: no uniqueness credit
    compile_shaping: bool = False  # a failed program's compile score rises with the stage it reached


# --- the RL loop, its trackers, its Ray cluster, sweeps and diversity ---------------------
@dataclass
class LoopConfig(Section):
    """The training loop's budget and rhythm (aiforml.loop)."""

    cycles: AtLeast1 = 12  # cycles of prompt -> generate -> evaluate -> reward -> update
    prompts_per_cycle: AtLeast1 = 4  # prompts per cycle (GRPO groups)
    samples_per_prompt: AtLeast1 = 4  # completions sampled per prompt
    checkpoint_every: AtLeast1 = 1  # save a checkpoint every k cycles (and always after the last)
    keep_checkpoints: AtLeast1 = 2  # complete checkpoints kept; older ones are deleted
    timeout_s: Positive = 1800.0  # limit of one learner call (generate, update, save, load)
    progress: bool = True  # show the rich progress bar
    report: bool = True  # write the report (aiforml.report) at the end of the run


@dataclass
class WandbConfig(Section):
    """Weights & Biases tracking: optional, off by default (needs ``pip install wandb``)."""

    enabled: bool = False  # log every metric to W&B too
    project: str = "aiforml"  # W&B project
    entity: str | None = None  # W&B team or user (None: the default of the logged-in account)
    mode: Literal["online", "offline", "disabled"] = "offline"  # offline: write locally, sync later


@dataclass
class MlflowConfig(Section):
    """MLflow tracking: optional, off by default (needs ``pip install mlflow``)."""

    enabled: bool = False  # log every metric to MLflow too
    tracking_uri: str | None = None  # None: ./mlruns under the run directory
    experiment: str = "aiforml"  # MLflow experiment name


@dataclass
class LoggerConfig(Section):
    """Where metrics go: TensorBoard always (run_dir/tensorboard), W&B and MLflow optionally."""

    wandb: WandbConfig = field(default_factory=WandbConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    flush_every: AtLeast1 = 1  # flush the TensorBoard writer every k cycles


@dataclass
class RayConfig(Section):
    """The Ray cluster the run uses: local by default, or an existing one."""

    address: str | None = None  # None: start a local Ray of its own, even beside another cluster; "auto" or host:port joins one
    num_cpus: AtLeast1 | None = None  # local Ray only: CPUs it may use (None: all of the machine's)
    learner_cpus: NonNeg = 0.0  # CPU request of the learner actor; 0: it works in turns with the env actors, which get the cores
    include_dashboard: bool = False  # start Ray's dashboard (local Ray only)
    learner_resources: Resources = None  # Ray custom resources of the learner (e.g. {gpu_node: 1})
    shutdown_timeout_s: Positive = 30.0  # past this, a Ray shutdown that hangs is abandoned (a local Ray's processes killed)

    def check(self) -> None:
        check(self.address is None or self.num_cpus is None,
              "ray.num_cpus applies to a local Ray only: set ray.num_cpus=null with ray.address")
        check_resources_map(self.learner_resources, "ray.learner_resources")


@dataclass
class SweepConfig(Section):
    """A Ray Tune sweep over whole runs (aiforml.sweep); an empty ``space`` means a single run.

    Trial ``k`` (0-based: the ``num_samples`` draws, then the ``seed_repeats``) runs with seed
    ``seed + k``, so no two trials share a seed and ``launch.py seed=...`` with a trial's values
    reruns it. The repeats run trial 0's values again at their own seeds: ``trials.md`` sets
    the spread of the objective between those seeds beside the spread between the sampled
    trials, the noise a winner has to beat.
    """

    space: dict[str, str] = field(default_factory=dict)  # dotted config key -> distribution, e.g. "uniform(0.1, 0.5)" (aiforml.tune_space)
    num_samples: AtLeast1 = 4  # trials drawn from the space
    seed_repeats: NonNegInt = 2  # extra trials of trial 0's values, each at its own seed (0: no between-seed spread)
    # mean_val_sharpe / mean_reward: the mean over the last last_k cycles of val/sharpe_mean / reward/mean
    # (reward scales with the weights: not for reward sweeps); best_val_sharpe: best validation Sharpe so
    # far, which a short trial's first cycle, before any update, often sets for good
    objective: Literal["best_val_sharpe", "mean_val_sharpe", "mean_reward"] = "mean_val_sharpe"
    last_k: AtLeast1 = 2  # objectives mean_*: cycles averaged (2: a 3-cycle trial's cycles after its updates)
    scheduler: Literal["asha", "fifo"] = "asha"  # asha: stop weak trials early; fifo: run every trial to the end
    grace_period: AtLeast1 = 1  # ASHA: cycles every trial runs before it may be stopped
    reduction_factor: Annotated[int, Field(ge=2)] = 2  # ASHA: keep about 1 / reduction_factor of the trials at each rung
    max_concurrent: AtLeast1 | None = None  # trials at once (None: as many as the cluster's resources fit)
    trial_cpus: NonNeg = 1.0  # CPUs of the trial driver's bundle (also hosts the learner when it asks for nothing)
    search_seed: int | None = 0  # seed of the random search (None: different values each sweep; trials' seeds follow `seed`)


@dataclass
class DiversityConfig(Section):
    """Diversity figures and in-context feedback (aiforml.diversity, aiforml.policy.prompt)."""

    cluster_corr: Share = 0.9  # programs whose mean per-era rank corr is above this share a behavioural cluster
    feedback: bool = False  # put a few of the best, mutually different programs so far before the prompt
    feedback_programs: AtLeast1 = 3  # at most this many (best per model family, behaviourally distinct)
    # Characters of feedback at most. Whole programs only; what does not fit is named in one
    # line without code. The feedback comes first, so the tokenizer's left truncation
    # (policy.max_prompt_tokens) can only cut feedback, never the task; see policy/prompt.py.
    feedback_chars: NonNegInt = 1200


@dataclass
class Config(Section):
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
_EXPECTED = {"int_type": "an integer", "float_type": "a number", "bool_type": "true or false",
             "string_type": "a string", "dict_type": "a mapping", "list_type": "a list",
             "dataclass_type": "a mapping of its fields", "none_required": "null"}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def from_dict(cls: type[T], data: dict[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a plain mapping, with errors that name the key.

    pydantic reads it as JSON in strict mode (so a mapping fills a nested section and
    nothing is coerced), then every section's ``check`` runs, innermost first."""
    try:
        obj = TypeAdapter(cls).validate_json(json.dumps(data or {}, default=_plain), strict=True)
    except ValidationError as exc:
        raise ValueError(_explain(exc.errors()[0], cls, data or {}, prefix)) from None
    _check(obj)
    return obj


def _plain(value: Any) -> Any:
    """A NumPy scalar (a sweep's sampled value) as the Python number it holds; anything else as text."""
    return value.item() if hasattr(value, "item") else str(value)


def _check(section: Any) -> None:
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, Section):
            _check(value)
    section.check()


def _explain(error: Any, cls: type, data: Any, prefix: str) -> str:
    """One pydantic error as a sentence: the full key, what it must be, what it was."""
    path, node = [], data
    for part in error["loc"]:  # the key: the parts of loc that index the data (not union tags)
        if isinstance(node, dict) and part in node or isinstance(node, list) and isinstance(part, int):
            path.append(part)
            node = node[part]
    key = prefix + ".".join(str(p) for p in path)
    got, kind, ctx = error.get("input"), error["type"], error.get("ctx") or {}
    if kind == "unexpected_keyword_argument":
        section = cls()
        for part in path[:-1]:
            section = getattr(section, part)
        parent = key.rpartition(".")[0] or "<root>"
        return (f"unknown config key '{key}'; valid keys under '{parent}' are "
                f"{sorted(f.name for f in dataclasses.fields(section))}. Fix the spelling or remove it.")
    if kind in _BOUNDS:
        return f"{key} must be {_interval(cls, path) or f'{_BOUNDS[kind]} {next(iter(ctx.values())):g}'}, got {got!r}"
    if kind == "too_short":
        return f"{key} must not be empty (null takes the preset), got {got!r}"
    if kind == "literal_error":
        return f"{key} must be one of {ctx.get('expected')}, got {got!r}"
    if kind in _EXPECTED:
        return f"{key} must be {_EXPECTED[kind]}, got {got!r}"
    return f"{key}: {error['msg']}, got {got!r}"


def _interval(cls: type, path: list) -> str | None:
    """``in (0, 1]`` for a field bounded on both sides (from its type), else None."""
    section: Any = cls()
    for part in path[:-1]:
        section = getattr(section, str(part), None)
    if not isinstance(section, Section) or not path:
        return None
    hint = typing.get_type_hints(type(section), include_extras=True).get(str(path[-1]))
    for arg in (hint, *typing.get_args(hint)):  # the field's type, or its non-null member
        found = [c for info in getattr(arg, "__metadata__", ()) for c in getattr(info, "metadata", ())]
        bounds = {k: getattr(c, k) for c in found for k in ("gt", "ge", "lt", "le") if hasattr(c, k)}
        if len(bounds) == 2:
            lo, hi = ("gt" in bounds, bounds.get("gt", bounds.get("ge"))), ("lt" in bounds, bounds.get("lt", bounds.get("le")))
            return f"in {'(' if lo[0] else '['}{lo[1]:g}, {hi[1]:g}{')' if hi[0] else ']'}"
    return None


def check_resources_map(resources: dict[str, float] | None, key: str) -> None:
    """Custom Ray resources: names other than CPU/GPU/memory (amounts >= 0 are in the type)."""
    for name in resources or {}:
        check(name not in ("CPU", "GPU", "memory"),
              f"{key}.{name}: CPU/GPU are set elsewhere (env.pool.cpus_per_actor, ray.learner_cpus); "
              "name only custom resources here")


def check(condition: bool, message: str) -> None:
    """Raise ValueError(message) unless condition holds: for a section's ``check``."""
    if not condition:
        raise ValueError(message)
