"""Run profiles (`smoke` for CI, `cpu` for a laptop, `gpu` for Colab) in one place.

Notebooks and scripts read every size from here, so a profile is changed in one file:

    >>> from xrouter_lite.profiles import get_profile
    >>> p = get_profile("smoke")
    >>> p.router_model
    'tiny'
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from xrouter_lite.pool import upstream
from xrouter_lite.pool.upstream import PARTIAL  # a half-done download's marker, owned by `upstream`

DATA_ENV = "XROUTER_LITE_DATA"  # where the recorded upstream files live (CI: ../shared/data)
RUNS_ENV = "XROUTER_LITE_RUN_DIR"  # set by the notebook runner: where a notebook writes its artifacts
RUNS_ROOT_ENV = "XROUTER_LITE_RUNS"  # the folder of run series (default <checkout>/runs; Colab: a Drive folder)
CACHE_ENV = "XROUTER_LITE_CACHE"  # the tidy table's parquet cache and the baselines' embeddings
OFFLINE_ENV = "XROUTER_LITE_OFFLINE"  # 1: never download the data (what the offline tests set)
LATEST = "latest"  # runs/latest: the newest series (a symlink; a one-line pointer file where links fail)
SOURCE_DIRS = ("zeroeval", "mmlu-pro", "routerbench")  # one folder per recorded source in a data directory


@dataclass(frozen=True)
class GRPOSettings:
    """GRPO (notebook 03, `xrouter_lite.training.grpo`): every knob says what it does and what to change when it fails."""

    steps: int = 60  # optimizer steps; reward still rising at the end? raise it (time grows linearly)
    prompts_per_step: int = 4  # distinct (query, sub-pool) rows per step; completions/step = this x num_generations
    num_generations: int = 8  # group size G: completions per prompt compared against each other; lower it if
    #                           memory is short, raise it if frac_reward_zero_std stays high (more chances to differ)
    micro_batch: int | None = None  # completions per forward/backward (None = all at once); lower it on a small GPU
    learning_rate: float = 1e-3  # full-parameter tiny model: 5e-4..1e-3 (1e-3 with 4 prompts/step broke some episodes); Hub QLoRA: ~1e-5
    lam: float = 10.0  # reward's cost weight (per USD). Costs are $3e-5..$2e-2 per query: at 10, o1-mini's accuracy
    #                    pays for its price on MATH and CRUX but not on GSM8K; at 30 gpt-4o-mini wins every task
    K: float = 1.0  # reward of a correct free answer; keep it > cost_max so a correct answer always beats a wrong one
    cost_max: float = 0.8  # cap on the cost penalty (the paper's default)
    temperature: float = 1.0  # sampling temperature of rollouts; lower it if episodes are mostly invalid garbage
    max_completion_length: int = 320  # tokens per episode: router turns + (masked) tool results (~150 for 300
    #                                   chars); an episode that runs out of room here ends invalid and earns 0
    turn_tokens: int = 72  # tokens per router turn (a call is ~40-50); a turn cut here is invalid (reward 0)
    guided_names: bool = True  # rollouts name only the prompt's tools (guided.py; single-token names only)
    answer_notes: bool = True  # tool messages say whether an earlier call gave the same final answer (agreement.py);
    #                            must match the SFT router's (router.json), like max_tool_chars
    max_tool_chars: int = 64  # the router reads the *last* this many characters of each model answer (where its
    #                           final answer is), in SFT, GRPO and evaluation alike; raise it for a Hub router
    lora_r: int = 0  # 0 = train every weight (a tiny model needs it); > 0 = LoRA rank (QLoRA with a 4-bit base)
    gradient_checkpointing: bool = True  # GPU only (saves VRAM); a CPU run never uses it (~4x slower steps)
    loss_type: str = "dapo"  # DAPO's token-mean loss over the whole batch ("grpo", "dr_grpo", ... in TRL 1.16)
    epsilon: float = 0.2  # PPO clip, lower side
    epsilon_high: float = 0.28  # DAPO clip-higher; only bites with num_iterations > 1 (on-policy ratios are 1)
    beta: float = 0.0  # KL weight to a reference model; 0 = none (DAPO), which also saves the reference's memory
    scale_rewards: str = "batch"  # advantages divided by the batch's std, NOT each group's ("group"): in a group where
    #   every rollout is correct, "group" divides sub-cent cost gaps by their own tiny std, so "a bit cheaper" gets
    #   the same push as "right instead of wrong", whatever lambda is (measured: o1-mini's share fell 11% -> 4%
    #   and a lambda sweep went flat). "batch" keeps lambda a real knob; "none" keeps raw reward gaps.
    num_iterations: int = 1  # updates per generated batch; 2 reuses rollouts at some off-policy risk. Measured (cpu,
    #   2e-4, validation, one SFT router): 2 lost reward vs SFT on all 3 seeds (-2.1, -2.9, -0.6 points; 1 gave -0.1
    #   on seed 0); conditioned sweep AIQ 0.810 vs MLP 0.863 in its window (1: 0.822 vs 0.863): keep 1
    # No dynamic sampling in TRL 1.16: rows whose reward cannot vary are dropped up front (drop_constant) and
    # every step logs episode/frac_zero_std, the share of groups that taught nothing (TRL's own
    # frac_reward_zero_std compares the *batch* std under scale_rewards="batch", so it reads 0 there).
    drop_constant: bool = True  # drop rows where no model of the sub-pool is correct (every completion earns 0)
    agent_share: float = 0.5  # share of rows in agent mode (call, read, select); the rest are simple mode
    pools_per_query: int = 1  # random sub-pools drawn per train query
    full_pool_share: float = 0.5  # rows offering the whole pool (what evaluation and serving offer); the rest draw
    #                               a sub-pool, so the router learns to read which tools it has
    #   Measured with agent_share 0.8 too (cpu, validation, one SFT router): main router +0.7, +0.2, +0.4 reward points
    #   over SFT on 3 seeds (0.5/0.5: -0.1 on seed 0), none beyond the noise; conditioned sweep AIQ 0.809 vs MLP 0.854
    #   in its window (0.5/0.5: 0.822 vs 0.863), and told λ = 10 it fell to 0.836 accuracy at $0.0041: kept at 0.5
    min_pool: int = 2  # smallest sub-pool; sub-pools make the router read the prices instead of memorising one pool
    max_pool: int | None = None  # largest sub-pool (None = the whole pool)
    lambda_grid: tuple = ()  # non-empty: each row draws its cost weight from these and the prompt states it (one
    #                          router for every budget); empty: every row uses `lam`
    state_lambda: bool = False  # state the fixed `lam` in the prompt (set from router.json for a λ-conditioned router)
    held_out: tuple = ()  # models no training row offers: evaluation offers them as *unseen* models (set by notebook 03
    #                       from the SFT router's router.json, so both stages hold out the same ones)
    price_jitter: float = 0.0  # > 1: some rows reprice some models by up to this factor either way, in the prompt
    #                           AND the charge (repricing.py), so the router has to read prices; 0 = real prices
    jitter_share: float = 0.5  # share of rows with repriced models (when price_jitter > 1)
    max_rollout_error_rate: float = 0.01  # stop the run when more rollouts than this raised an exception (a bug)
    max_train_queries: int | None = None  # cap on train queries turned into rows (None = all)
    save_steps: int = 20  # checkpoint every this many steps (resume with resume_from_checkpoint)
    sweep_lambdas: tuple = (1.0, 10.0, 1000.0)  # notebook 03's lambda section: spans 3 orders of magnitude
    sweep_steps: int = 30  # steps per lambda in that section (each starts from the SFT router)
    per_lambda_routers: bool = True  # also train one router per sweep lambda (the equal-compute comparison with the
    #                                  λ-conditioned router); off in cpu, where those 3 x sweep_steps steps are ~9 min
    conditioned_lr: float = 1e-4  # the λ-conditioned router of that section (rows draw λ from the SFT router's grid):
    #                              measured, 5e-4 collapsed it onto one cheap model at every λ, 1e-4 did not
    #                              (benchmarks/grpo_variants.py); cpu uses 2e-4 (GRPO_CPU says why)
    eval_queries: int | None = None  # validation queries the routers are evaluated on (None = all); full pool
    sweep_eval_queries: int | None = None  # of those, the ones each lambda's router is evaluated on (None = all)


# The cost weights a λ-conditioned router trains on (log-uniform: equal steps in log λ over three orders of
# magnitude); each one's cost line is a single token of the tiny tokenizer (sft.protocol_texts).
LAMBDA_GRID = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)

# GRPO per profile. smoke proves the code path in seconds; cpu must show learning in minutes on 2 cores (tiny
# model, full-parameter, short prompts: sub-pools of 2-4 models); gpu is QLoRA on a Hub model (estimated sizes).
GRPO_SMOKE = GRPOSettings(steps=4, prompts_per_step=2, num_generations=4, max_pool=3, max_train_queries=40,
                          max_completion_length=320, save_steps=2, sweep_steps=2, eval_queries=24,
                          sweep_eval_queries=12)
# Validation is for choosing, so cpu evaluates on at most this many validation queries (spread over tasks): all of
# ZeroEval's 281, 400 of MMLU-Pro's 1,197 (all 1,197 cost ~4 of the series' 30 minutes). Test stays whole.
CPU_VALIDATION_QUERIES = 400
# cpu learning rates, chosen on validation (281 queries, from the SFT router trained at full_lr 1e-3; commands in
# benchmarks/grpo_variants.py). Main router (λ = 10): 5e-4 moved seed 0 (+2.5 reward points over SFT) but collapsed seeds
# 1 and 2 onto cheap models (-7 points, test); 1e-4 kept both (-0.1, +0.4); 2e-4 kept seed 1 and gained (+1.6: 0.834 vs
# 0.818). Conditioned router (60 steps over the grid): AIQ over the 7 λ, one window for all, 0.848 (SFT) -> 0.850 at
# 1e-4, 0.855 at 2e-4, which stops it escalating to o1-mini at λ = 100 ($0.0048 -> $0.0001 per query; MLP's AIQ 0.871).
# Since the disagreement note restates λ (agreement.note), from that SFT router at 2e-4: 0.839 vs the MLP's 0.854 (one
# window); a KL anchor (beta 0.1) at 5e-4: main router +0.2/+0.8/+0.3 over SFT on 3 seeds, conditioned 0.832 vs 0.866.
GRPO_CPU = GRPOSettings(steps=60, prompts_per_step=8, num_generations=8, learning_rate=2e-4, max_pool=4,
                        max_completion_length=320, save_steps=20, sweep_steps=20, eval_queries=CPU_VALIDATION_QUERIES,
                        sweep_eval_queries=120, per_lambda_routers=False, conditioned_lr=2e-4)
GRPO_GPU = GRPOSettings(steps=150, prompts_per_step=4, num_generations=8, micro_batch=8, learning_rate=5e-5,
                        lora_r=16, max_pool=None, max_completion_length=768, turn_tokens=192, max_tool_chars=256,
                        save_steps=25, sweep_steps=60)
# gpu: a two-call turn is ~120 Hub tokens and each answer's last 256 characters ~80, so an agreement check that
# escalates (call two, read, call one, read, select) fits 768 tokens; LoRA needs a larger step than full
# fine-tuning to move a policy SFT made peaked, and 5e-5 is the usual range for LoRA GRPO (not measured here: no
# GPU was available); tool descriptions are terse (protocol._call_schema): ~1.6k prompt tokens for 12 tools.


@dataclass(frozen=True)
class SFTSettings:
    """SFT warm-up (notebook 02, `xrouter_lite.training.sft`): every knob says what it does and what to change when it fails."""

    # The tiny router (router_model == "tiny"); a Hub model ignores these four. Prompts are long (~200 tokens
    # per tool schema, ~2.5k for the 12-model ZeroEval pool), so width/depth cost time on every prompt token.
    vocab_size: int = 2048  # BPE vocab; the prompt is mostly punctuation and digits, so more vocab barely shortens it
    hidden_size: int = 128  # width; raise it if the loss plateaus high, lower it if a step is too slow
    layers: int = 2  # depth; 2 layers already copy a tool name from the prompt (an induction head needs 2)
    heads: int = 4  # attention heads (2 KV heads, GQA like Qwen2.5)
    # Traces: one per train query, hindsight-oracle label of a random sub-pool
    train_queries: int | None = None  # train queries turned into traces (None = all after the profile's cap)
    agent_share: float = 0.5  # share of agent-mode traces (call, read, select); the rest are simple mode
    min_pool: int = 2  # smallest sampled sub-pool; the router must read its tools, not memorise one pool
    max_pool: int | None = None  # largest sub-pool (None = the whole pool); prompts grow ~200 tokens per model
    tool_result_chars: int = 64  # the router reads the last this many characters of each model answer (its final
    #                              answer), in SFT, GRPO and evaluation alike; raise it for a Hub router
    # The teacher (traces.py): "expected" = the plan with the best expected reward at `lam` on the query's task
    # (train split), sampled from a softmax over plans; "hindsight" = the cheapest model that happened to be right
    labels: str = "expected"
    label_temperature: float = 0.005  # softmax temperature over plans' expected rewards; 0 = always the best plan,
    #                                  higher = more variety for GRPO to compare (rewards differ by ~0.001-0.2)
    full_pool_share: float = 0.5  # traces offering the whole pool (as evaluation does); the rest draw a sub-pool
    agreement: bool = True  # agent-mode plans may call two models and ask a third only when their answers differ
    answer_notes: bool = True  # tool messages carry the runtime's final-answer check (agreement.py): what makes the
    #                            agreement plans learnable for a tiny router; recorded in router.json
    lambda_grid: tuple = ()  # non-empty: each trace draws its cost weight from these, states it in the system prompt,
    #                          and its label is the best plan at that λ (a λ-conditioned router); empty: `lam` only
    held_out: tuple = ()  # models no trace offers: evaluation offers them as *unseen* models (router.json records them)
    price_jitter: float = 0.0  # > 1: some traces reprice models by up to this factor (shown and valued); see GRPO's
    jitter_share: float = 0.5  # share of traces with repriced models (when price_jitter > 1)
    # Training: a full-parameter stage (tiny model only), then a LoRA stage (the path a Hub model takes)
    full_steps: int = 400  # full-parameter optimizer steps; raise them if calls are still malformed
    full_lr: float = 2e-3  # a random tiny model needs a large rate; lower it if the loss spikes
    lora_steps: int = 60  # LoRA steps after the full stage (tiny) or the whole SFT (Hub model)
    lora_lr: float = 2e-3  # LoRA on the tiny model: 1e-3..5e-3; a Hub model (QLoRA): ~2e-4
    lora_r: int = 16  # adapter rank; alpha = 2r
    batch_size: int = 2  # traces per optimizer step; small batches = more updates per second of CPU
    grad_accum: int = 1  # raise it (not batch_size) to average more traces per step without more memory
    max_length: int = 4096  # tokens per trace; longer traces are dropped, never cut (cutting loses the answer)
    save_steps: int = 0  # 0 = save only the final router; > 0 also keeps trainer checkpoints (GPU runs)
    # Evaluation on the validation split
    format_queries: int | None = 128  # queries per mode for the sub-pool format check (None = all)
    eval_queries: int | None = None  # queries for the full-pool comparison with baselines (None = all)
    lam: float = 10.0  # reward's cost weight for the evaluation rows (GRPO's, so notebooks 02-04 compare)
    mode: str = "agent"  # the mode router.json records (the checkpoint handles both; serving uses this one)


# SFT per profile. smoke proves the code path in about a minute; cpu learns the format and a prior in ~3 minutes
# on 2 cores (each tool schema is one token there, so prompts are ~200 tokens); gpu trains LoRA adapters only.
SFT_SMOKE = SFTSettings(full_steps=300, lora_steps=20, format_queries=48, eval_queries=100, lambda_grid=LAMBDA_GRID)
# cpu: claude-3-haiku never appears in training (a model dominated by gpt-4o-mini on ZeroEval, so holding it out
# costs the router nothing); notebook 04 offers it at evaluation as an *unseen* model and reports what happens.
# cpu: the SFT router is λ-conditioned (each trace draws λ from LAMBDA_GRID and states it after the query, where the
# tiny router reads it: protocol.cost_line); GRPO's main router trains at λ = 10 (told 10) and notebook 03's λ section
# trains a conditioned GRPO router over the grid, which notebook 04 sweeps. Set GRPO_CPU's lambda_grid to make the
# main router the conditioned one (measured on validation at λ = 10: reward 0.814 at lr 1e-4, vs 0.828 trained at 10).
# cpu full_lr 1e-3 (not 2e-3): measured on validation (281, one checkpoint swept over λ), 1e-3 imitates the teacher's
# cheap end (λ = 1000: single deepseek/flash calls, 0.726 at $0.00015, reward 0.672; 2e-3 kept pairing flash with
# deepseek there, $0.0025, reward 0.602) and λ = 10 (reward 0.817 vs 0.785); λ = 100 is worse (0.668 vs 0.696).
SFT_CPU = SFTSettings(full_steps=2000, full_lr=1e-3, lora_steps=60, lambda_grid=LAMBDA_GRID,
                      held_out=("claude-3-haiku-20240307",), eval_queries=CPU_VALIDATION_QUERIES)
SFT_GPU = SFTSettings(full_steps=0, lora_steps=300, lora_lr=2e-4, batch_size=4, save_steps=100, tool_result_chars=256)

# cpu on MMLU-Pro: its questions (ten options each) are 2.7x longer in router tokens than ZeroEval's (263 vs 99), so a
# GRPO step takes ~2x as long (11.7-13.8 s vs 6.4 s) and an SFT step ~1.3x; with ZeroEval's step counts the series
# took 34.4 min (run cpu-20261207-112547). Training is sized by tokens instead: about the same training tokens (so
# about the same minutes) as the ZeroEval series, i.e. 36 GRPO steps and 1,400 full-parameter SFT steps.
# Its GRPO keeps the rate its reported run (cpu-20261207-163208) was measured at: 2e-4 was chosen on ZeroEval only.
CPU_MMLU_PRO = {"sft": {"full_steps": 1400}, "grpo": {"steps": 36, "learning_rate": 5e-4, "conditioned_lr": 1e-4}}


@dataclass(frozen=True)
class Profile:
    """Every size knob of the tutorial; fields say what to change when a run is too slow or too big."""

    name: str
    router_model: str  # "tiny" = local Qwen2-architecture LM built here; else a Hugging Face Hub id
    load_in_4bit: bool  # QLoRA (bitsandbytes NF4) base; only worth it on a CUDA GPU
    max_queries_per_task: int | None  # cap on queries per (source, task) after splitting; None = all
    seed: int = 0
    time_budget_min: int = 30  # the whole series should finish within this on the profile's machine
    grpo: GRPOSettings = GRPOSettings()  # notebook 03's RL stage
    sft: SFTSettings = SFTSettings()  # notebook 02's SFT warm-up
    # {source: {"sft": {field: value}, "grpo": {...}}}: what this profile changes for a source whose prompts cost
    # more per step (applied by `for_source`; notebooks 02-04 and the runner ask for their SOURCE's profile)
    per_source: dict = field(default_factory=dict)

    def for_source(self, source: str | None) -> "Profile":
        """This profile as it trains on `source`: `per_source[source]`'s SFT and GRPO fields applied (idempotent)."""
        changes = self.per_source.get(source or "", {})
        unknown = set(changes) - {"sft", "grpo"}
        if unknown:
            raise ValueError(f"profile {self.name!r}: per_source[{source!r}] may change 'sft' and 'grpo', "
                             f"not {sorted(unknown)}")
        return replace(self, sft=replace(self.sft, **changes.get("sft", {})),
                       grpo=replace(self.grpo, **changes.get("grpo", {}))) if changes else self

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    # CI on every push: 2 CPU cores, the whole series in <= 10 minutes. Proves the code path, not learning.
    "smoke": Profile(name="smoke", router_model="tiny", load_in_4bit=False,
                     max_queries_per_task=40, time_budget_min=10, grpo=GRPO_SMOKE,
                     sft=SFT_SMOKE),
    # A laptop CPU, the default: a few thousand queries, <= 30 minutes, and it must show learning.
    "cpu": Profile(name="cpu", router_model="tiny", load_in_4bit=False,
                   max_queries_per_task=None, time_budget_min=30, grpo=GRPO_CPU, sft=SFT_CPU,
                   per_source={"mmlu-pro": CPU_MMLU_PRO}),
    # Colab T4/L4 or A100: a real Hub model in 4-bit with LoRA (QLoRA). Runtimes are estimates until measured.
    "gpu": Profile(name="gpu", router_model="Qwen/Qwen2.5-1.5B-Instruct", load_in_4bit=True,
                   max_queries_per_task=None, time_budget_min=60, grpo=GRPO_GPU, sft=SFT_GPU),
}


def get_profile(name: str, source: str | None = None, **overrides) -> Profile:
    """The named profile as it trains on `source` (`Profile.for_source`), optionally with some fields overridden;
    a clear error for an unknown name."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
    prof = PROFILES[name].for_source(source)
    return replace(prof, **overrides) if overrides else prof


# A number in exponent form without a dot ("5e-4"): YAML 1.1, which PyYAML reads, calls it a string
_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_settings(pairs: list[str] | None) -> dict:
    """--set NAME=VALUE pairs as {NAME: value}, each value read as YAML (False, 120, [1, 10], text), like papermill -p,
    except that "5e-4" is the number a Python user means, not the string YAML 1.1 reads."""
    import yaml

    from xrouter_lite.errors import UsageError

    out = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set {pair!r}: expected NAME=VALUE, e.g. --set LAMBDA_SWEEP=false")
        value = value.strip()
        out[name.strip()] = float(value) if _EXPONENT_NUMBER.fullmatch(value) else yaml.safe_load(value)
    return out


def with_settings(settings, pairs: list[str] | tuple = ()):
    """`settings` (a GRPOSettings or SFTSettings) with `--set KEY=VALUE` pairs applied, each value read as YAML like
    the notebooks runner's `--set` ("agent_share=0.8", "lambda_grid=[1, 10]", "max_pool=null"); a clear error names
    an unknown field or a value of the wrong type."""
    from dataclasses import fields

    defaults = {f.name: getattr(settings, f.name) for f in fields(settings)}
    changes = parse_settings(list(pairs))
    for key, value in changes.items():
        if key not in defaults:
            raise ValueError(f"--set {key}: not a field of {type(settings).__name__}; its fields are "
                             + ", ".join(sorted(defaults)))
        default = defaults[key]
        if isinstance(default, tuple) and isinstance(value, list):
            changes[key] = value = tuple(value)  # YAML has lists; the settings keep tuples (frozen, hashable)
        numeric = isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)
        if default is not None and value is not None and not numeric and type(value) is not type(default):
            raise ValueError(f"--set {key}={value!r}: expected a {type(default).__name__} like the default {default!r}")
    return replace(settings, **changes) if changes else settings


def checkout_root() -> Path | None:
    """The repository checkout we run in (the nearest folder up from here with pyproject.toml), else the
    checkout this package is installed from (an editable install run from elsewhere, e.g. a temporary
    folder that papermill executes a notebook in), if any."""
    here = Path.cwd().resolve()
    found = next((p for p in (here, *here.parents) if (p / "pyproject.toml").is_file()), None)
    source = Path(__file__).resolve().parents[1]
    return found or (source if (source / "pyproject.toml").is_file() else None)


def resolve_cache_dir(path: str | os.PathLike | None = None) -> Path:
    """Where the tidy table's cache lives: `path`, else $XROUTER_LITE_CACHE, else `<checkout>/.cache`, so a
    notebook running in notebooks/ shares the cache of the command line run from the checkout."""
    chosen = path if path not in (None, "") else os.environ.get(CACHE_ENV)
    return Path(chosen).expanduser().resolve() if chosen else (checkout_root() or Path.cwd()) / ".cache"




# ---------------------------------------------------------------- the recorded data
class DataNotFound(FileNotFoundError):
    """No recorded data anywhere we looked; the message (at most 3 lines) says where and the command to run."""

    def _render_traceback_(self) -> list[str]:
        """What IPython (a notebook) shows instead of a traceback: the message alone; the frames add nothing."""
        return [f"DataNotFound: {self}"]


def _holds_data(p: Path) -> bool:
    """A folder with at least one source's folder in it, and no download left half-done."""
    return p.is_dir() and any((p / s).is_dir() for s in SOURCE_DIRS) and not (p / PARTIAL).exists()


def default_data_dir() -> Path:
    """Where a download goes: `<checkout>/data/upstream`, or ~/.cache/xrouter_lite/data outside a checkout."""
    root = checkout_root()
    return root / "data" / "upstream" if root else Path.home() / ".cache" / "xrouter_lite" / "data"


def data_candidates() -> list[Path]:
    """Where the data is looked for when neither an argument nor $XROUTER_LITE_DATA names it, in order."""
    root = checkout_root()
    return [root.parent / "shared" / "data", default_data_dir()] if root else [default_data_dir()]


def resolve_data_dir(path: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The recorded-data directory: `path` → $XROUTER_LITE_DATA → ../shared/data beside the checkout →
    data/upstream in the checkout → a download there (when `download` and the network allow).

    Raises `DataNotFound` with a short message (where it looked, the one command to run) and no chained
    traceback. A directory named by the argument or the variable must exist: it is never silently replaced.
    """
    for value, origin in ((path, "the argument"), (os.environ.get(DATA_ENV), f"${DATA_ENV}")):
        if value not in (None, ""):
            p = Path(value).expanduser().resolve()
            if not p.is_dir():
                raise DataNotFound(f"data directory {p} (from {origin}) does not exist; fetch it with "
                                   f"`python -m xrouter_lite download --data {p}`")
            return p
    looked = [p.resolve() for p in data_candidates()]
    found = next((p for p in looked if _holds_data(p)), None)
    if found:
        return found
    target = default_data_dir().resolve()
    if not download:
        why = "download not attempted"
    elif os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        why = f"download skipped (${OFFLINE_ENV} is set)"
    else:
        try:
            upstream.download(target)
            return target
        except Exception as exc:  # no network, a proxy, a moved file: one line, not urllib's traceback
            why = f"download failed ({' '.join(str(exc).split())[:200]})"
    raise DataNotFound(
        f"no recorded data: ${DATA_ENV} is unset and none in {', '.join(map(str, looked))}; {why}.\n"
        f"Run `python -m xrouter_lite download --data {target}` where there is network, "
        f"or set {DATA_ENV} to a copy of the data.") from None


# ---------------------------------------------------------------- run directories
def runs_root() -> Path:
    """The folder that holds the run series: $XROUTER_LITE_RUNS, else `<checkout>/runs`, else ./runs."""
    chosen = os.environ.get(RUNS_ROOT_ENV)
    return Path(chosen).expanduser().resolve() if chosen else (checkout_root() or Path.cwd()).resolve() / "runs"


def latest_run(root: str | os.PathLike | None = None) -> Path | None:
    """The run `<root>/latest` points at (symlink or pointer file), if it still exists."""
    link = Path(root) if root else runs_root()
    link = link / LATEST
    if link.is_symlink() or link.is_dir():
        target = link.resolve()
    elif link.is_file():
        target = link.parent / link.read_text().strip()
    else:
        return None
    return target.resolve() if target.is_dir() else None


def set_latest(run_dir: str | os.PathLike) -> Path:
    """Point `<its parent>/latest` at `run_dir`: a relative symlink, replaced atomically; where the file system
    refuses links (Windows without developer mode, some network and Drive mounts) a text file naming the folder."""
    run_dir = Path(run_dir).resolve()
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        os.symlink(run_dir.name, tmp, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)
        tmp.write_text(run_dir.name + "\n")
        os.replace(tmp, link)
    return link


def new_run_dir(root: str | os.PathLike, profile: str, latest: bool = True) -> Path:
    """A fresh `<root>/<profile>-<timestamp>` directory (never an existing one); `latest` then points at it."""
    from datetime import datetime

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{profile}-{stamp}"
    run_dir, n = base, 1
    while True:
        try:
            run_dir.mkdir(parents=True, exist_ok=False)
            break
        except FileExistsError:  # two runs in the same second: suffix rather than overwrite
            n += 1
            run_dir = base.with_name(f"{base.name}-{n}")
    if latest:
        set_latest(run_dir)
    return run_dir


def resolve_run_dir(run_dir: str | os.PathLike | None = None, profile: str = "cpu") -> Path:
    """The run a notebook reads and writes: `run_dir` → $XROUTER_LITE_RUN_DIR (set by the runner) → the newest
    series (`runs/latest`, shared by `./run_tutorial.sh` and JupyterLab) → a new series that becomes the newest."""
    chosen = run_dir or os.environ.get(RUNS_ENV)
    if chosen:
        return Path(chosen).expanduser().resolve()
    return latest_run() or new_run_dir(runs_root(), profile).resolve()


def artifacts_dir(run_dir: str | os.PathLike | None = None, profile: str = "cpu") -> Path:
    """Where a notebook writes what the next one reads: `<run dir>/artifacts` (see `resolve_run_dir`), created.

    The runner passes RUN_DIR; a notebook opened in JupyterLab (empty RUN_DIR) uses the newest series, so after
    `./run_tutorial.sh` notebook 04 finds the routers that notebooks 02-03 trained.
    """
    p = resolve_run_dir(run_dir, profile) / "artifacts"
    p.mkdir(parents=True, exist_ok=True)
    return p


def example_pool_config() -> Path:
    """The example live-pool YAML shipped inside the package (copy it, keep the models you have keys for)."""
    from importlib.resources import files

    return Path(str(files("xrouter_lite") / "examples" / "pool.example.yaml"))
