"""SFT warm-up of the router LM (notebook 02): the base model, hindsight-oracle traces, TRL's SFTTrainer, the saved router.

    >>> from xrouter_lite.profiles import get_profile                                   # doctest: +SKIP
    >>> from xrouter_lite.training.sft import run_sft                                            # doctest: +SKIP
    >>> result = run_sft(get_profile("smoke"), artifacts, pool, pool.queries("train", "zeroeval"))  # doctest: +SKIP
    >>> model, tok = load_router(result.path)   # artifacts/router_sft: a plain checkpoint + router.json  # doctest: +SKIP

The pieces, as notebook 02 runs them one cell at a time:
- `build_or_load_base(profile, artifacts, pool, queries)`: the tiny router is built once into
  `artifacts/tiny_base/` (tokenizer trained on `tiny_router_texts`, random weights) and reused by every stage,
  so SFT and GRPO share one tokenizer; a Hub id is loaded with `modeling.load_router` (4-bit + LoRA on a GPU).
- `traces.build_traces`: one conversation per train query, labelled with the sub-pool's hindsight oracle.
- `train_sft(model, tok, traces, out_dir, settings, lora=None)`: one SFT stage with TRL's `SFTTrainer`,
  loss on the assistant turns only; returns the loss log.
- `save_router(model, tok, path, info)`: the checkpoint `modeling.load_saved_router(path)` loads, plus `router.json`.

Why two stages for the tiny model: its weights start random, and LoRA only learns a low-rank change of
frozen weights, which cannot turn noise into a language model. So a full-parameter stage teaches the protocol
first; a short LoRA stage then continues from it, because LoRA (QLoRA on 4-bit weights) is how a 1.5B Hub model
is trained on a GPU, and running it here on the warmed tiny model proves that path on a CPU. The LoRA update is
merged into the weights before saving, so `load_router(path)` loads a plain checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from xrouter_lite.pool.core import Query, ReplayPool
from xrouter_lite.profiles import Profile, SFTSettings
from xrouter_lite.routing.agreement import DIFFERENT, SAME
from xrouter_lite.routing.protocol import SCHEMA_DESCRIPTION, SCHEMA_OPENING, SELECT, describe_parts, tool_schemas
from xrouter_lite.routing.protocol import fixed_texts as protocol_fixed_texts
from xrouter_lite.training.modeling import (build_tiny_router, load_router, lora_config, pick_device,
                                            qwen25_chat_template)
from xrouter_lite.training.subsets import spread
from xrouter_lite.training.traces import DEFAULT_TASK_PROMPT, TASK_PROMPTS, _check_no_test, build_traces

TINY_BASE = "tiny_base"  # artifacts/tiny_base: tokenizer + random-init tiny model, shared by SFT and GRPO
ROUTER_SFT = "router_sft"  # artifacts/router_sft: the SFT router (checkpoint + router.json)
TOKENIZER_TRACES = 400  # rendered traces in the tokenizer's corpus: enough to see every tool schema many times
LOG_COLUMNS = ["stage", "step", "loss", "mean_token_accuracy", "learning_rate", "grad_norm", "num_tokens"]


# ---------------------------------------------------------------- queries and traces
def render_trace(trace: dict, max_chars: int = 240) -> str:
    """A readable SFT trace for notebooks: each message clipped to `max_chars`, then the label."""
    lines = [f"trace {trace['query_id']} · {trace['mode']} · pool: {', '.join(trace['allowed'])}"]
    turn = 0
    for m in trace["messages"]:
        if m["role"] == "system":
            continue
        if m["role"] == "assistant":
            turn += 1
        label = f"router {turn}" if m["role"] == "assistant" else m.get("name") or m["role"]
        text = " ⏎ ".join(m["content"].strip().splitlines())
        lines.append(f"[{label}] {text if len(text) <= max_chars else text[:max_chars] + f' … (+{len(text) - max_chars} chars)'}")
    lines.append(f"=> label: {trace['label']} (loss on the router turns only)")
    return "\n".join(lines)


# ---------------------------------------------------------------- the base model
def models_of(pool: ReplayPool, queries: Sequence[Query]) -> list[str]:
    """Every model of the queries' sources, once each, in pool order."""
    return list(dict.fromkeys(m for source in dict.fromkeys(q.source for q in queries) for m in pool.models_for(source)))


def trace_kwargs(s: SFTSettings) -> dict:
    """`traces.build_traces` keyword arguments for these settings (teacher, sub-pools, what the router reads)."""
    return {"agent_share": s.agent_share, "min_pool": s.min_pool, "max_pool": s.max_pool,
            "tool_result_chars": s.tool_result_chars, "labels": s.labels, "lam": s.lam,
            "label_temperature": s.label_temperature, "full_pool_share": s.full_pool_share, "agreement": s.agreement,
            "price_jitter": s.price_jitter, "jitter_share": s.jitter_share, "answer_notes": s.answer_notes,
            "held_out": s.held_out, "lambda_grid": s.lambda_grid}


def tiny_router_texts(pool: ReplayPool, queries: Sequence[Query], n_traces: int = TOKENIZER_TRACES, seed: int = 0,
                      settings: SFTSettings | None = None) -> list[str]:
    """The tiny tokenizer's corpus: train queries, the pool's tool schemas and rendered traces; never a test query."""
    from transformers.utils.chat_template_utils import render_jinja_template

    _check_no_test(queries)  # raises: a tokenizer fitted on test questions would already have seen them
    specs = [pool.spec(m) for m in models_of(pool, queries)]
    texts = [q.text for q in queries] + [json.dumps(t, ensure_ascii=False) for t in tool_schemas(specs, "agent")]
    template = qwen25_chat_template()
    kwargs = trace_kwargs(settings or SFTSettings())
    for trace in build_traces(pool, spread(queries, n_traces), seed=seed, **kwargs):
        rendered, _ = render_jinja_template([trace["messages"]], tools=trace["tools"], chat_template=template)
        texts.append(rendered[0])
    return texts


def _tiny_spec(s: SFTSettings, seed: int) -> dict:
    return {"vocab_size": s.vocab_size, "hidden_size": s.hidden_size, "layers": s.layers, "heads": s.heads, "seed": seed,
            "tool_result_chars": s.tool_result_chars, "answer_notes": s.answer_notes,
            "lambda_grid": list(s.lambda_grid),
            "protocol": protocol_hash(lambdas=s.lambda_grid)}  # other protocol texts: the base is rebuilt


def build_or_load_base(profile: Profile, artifacts: str | os.PathLike, pool: ReplayPool | None = None,
                       queries: Sequence[Query] | None = None, device: str | None = None):
    """(model, tokenizer) to start SFT from: the tiny router (built once into artifacts/tiny_base) or a Hub model.

    The tiny base is rebuilt only when missing or built with other sizes or protocol texts (`tiny_base/tiny.json`
    records both, the texts as `protocol_hash`); building it needs `pool` and train `queries` for the tokenizer. A Hub model comes back 4-bit (if the profile says so)
    with fresh LoRA adapters, ready for `train_sft`.
    """
    s = profile.sft
    if profile.router_model != "tiny":
        return load_router(profile.router_model, load_in_4bit=profile.load_in_4bit, lora=lora_settings(s),
                           device=device)
    base = Path(artifacts) / TINY_BASE
    spec = _tiny_spec(s, profile.seed)
    marker = base / "tiny.json"
    if not (marker.exists() and json.loads(marker.read_text()) == spec):
        if pool is None or queries is None:
            raise ValueError(f"no tiny base with {spec} in {base}: pass the pool and train queries to build one")
        start = time.perf_counter()
        texts = tiny_router_texts(pool, queries, seed=profile.seed, settings=s)
        model, tok = build_tiny_router(texts, base, vocab_size=s.vocab_size, hidden_size=s.hidden_size,
                                       layers=s.layers, heads=s.heads, seed=profile.seed)
        add_protocol_tokens(model, tok, protocol_texts(pool, queries, lambdas=s.lambda_grid), seed=profile.seed)
        model.save_pretrained(base)
        tok.save_pretrained(base)
        marker.write_text(json.dumps(spec) + "\n")
        print(f"built the tiny base in {base} ({time.perf_counter() - start:.0f} s)")
    return load_router(base, device=device)


def tool_names(pool: ReplayPool, queries: Sequence[Query]) -> list[str]:
    """The tool names the router can call for these queries' sources, plus `select_response`."""
    return [pool.spec(m).tool for m in models_of(pool, queries)] + [SELECT]


def template_texts() -> tuple[str, str]:
    """The chat template's fixed text around the tool list: (before the first tool, after the last one)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    marker = {"type": "function", "function": {"name": "MARKER", "description": "", "parameters": {}}}
    (text,), _ = render_jinja_template([[{"role": "system", "content": "SYSTEM"}, {"role": "user", "content": "Q"}]],
                                       tools=[marker], chat_template=qwen25_chat_template())
    line = json.dumps(marker, ensure_ascii=False)
    header = text[text.index("SYSTEM") + len("SYSTEM"): text.index(line) - 1]  # "\n\n# Tools ... <tools>"
    footer = text[text.index(line) + len(line) + 1: text.index("<|im_end|>")]  # "</tools> ... </tool_call>"
    return header, footer


def protocol_texts(pool: ReplayPool, queries: Sequence[Query], max_turns: int = 3,
                   lambdas: Sequence[float] = ()) -> dict[str, list[str]]:
    """The texts every router prompt repeats verbatim, as the chat template renders them.

    "names": each tool name; "fixed": the two system prompts, the template's text around the tool list, the
    opening of every tool schema up to its name, each tier ("budget tier; "), the argument schema every call
    tool shares, the answer check's lines, the cost-weight line, the router's call/select fragments and the task
    prompts; "identities": per model, the text between its name and its tier (who it is, its context). A tool's
    **price stays ordinary text** (digits), so a router can read it and a changed price changes what it reads.
    Each cost line of `lambdas` (a λ-conditioned router's grid: "\\nCost weight: 10 reward points per USD.") is one
    token too: the λ it trained on is then one token to read, like the task; another λ is spelled in digits.
    """
    models = models_of(pool, queries)
    identities = []
    for m in models:
        spec = pool.spec(m)
        line = json.dumps(tool_schemas([spec], "simple")[0], ensure_ascii=False)
        who, _, _ = describe_parts(spec)
        head = SCHEMA_OPENING + spec.tool + SCHEMA_DESCRIPTION
        assert line.startswith(head + who), (line, head)  # the layout `protocol` declares (SCHEMA_OPENING, ...)
        identities.append(SCHEMA_DESCRIPTION + who)  # between the tool's name and its tier
    return {"names": tool_names(pool, queries), "fixed": all_fixed_texts(max_turns, lambdas), "identities": identities}


def all_fixed_texts(max_turns: int = 3, lambdas: Sequence[float] = ()) -> list[str]:
    """`protocol_texts`' "fixed" list: the same for every pool, in the order the tiny tokenizer adds them."""
    fixed = protocol_fixed_texts(max_turns, lambdas)
    header, footer = template_texts()
    prompts = list(dict.fromkeys([*TASK_PROMPTS.values(), DEFAULT_TASK_PROMPT]))
    return [*fixed["prompts"], header, footer, *fixed["schema"], *SAME.split("{tool}"), DIFFERENT, *fixed["cost"],
            *fixed["calls"], *prompts]


def protocol_hash(max_turns: int = 3, lambdas: Sequence[float] = ()) -> str:
    """A fingerprint of the protocol texts the tiny tokenizer holds as tokens (`tiny_base/tiny.json` records it):
    any changed prompt, fragment or schema layout changes it, so a base built with other texts is rebuilt."""
    blob = json.dumps([all_fixed_texts(max_turns, lambdas), SCHEMA_DESCRIPTION], ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def add_protocol_tokens(model, tokenizer, texts: dict[str, list[str]], seed: int = 0) -> int:
    """Make every text of `protocol_texts` one (non-special) token of the tiny tokenizer; the number added.

    Why: a router prompt is ~200 tokens of JSON per tool (prices, context, argument schema) around a query of
    ~80, so a 12-model prompt is ~2,700 BPE tokens, and every training step and routing decision reads all of
    it. With the system prompts, the template's fixed text, each tool's identity and tier and the shared argument
    schema as single tokens, a tool costs ~20 tokens (`{"type": ... "name": "` + `call_gemini_1_5_flash` +
    `", "description": "Gemini 1.5 Flash by Google, 1M context; ` + `budget tier; ` + the price in ordinary
    text + `", "parameters": ...}}}`): SFT and GRPO run several times faster on a CPU. Tool names are single
    tokens, both where the prompt lists them and where the router writes them: spelled in BPE pieces (`call`,
    `_gemini`, `_`, `1`, `_`, `5`, `_flash`) a tiny model mixes them up (`call_gemini_2_2_2...`); as one token,
    calling a listed model means copying one token of the prompt.

    What it costs: a tool's identity is one token, so the tiny router can learn what each known model is worth
    from training alone; its price is left as digits, so it can also learn to read prices, which it only does
    if training shows it prices that change (GRPO's price jitter). A model whose identity text the base has
    never seen is spelled in BPE pieces. The text itself is unchanged: the tokens decode to it exactly and stay
    non-special, so `decode(skip_special_tokens=True)` keeps them.
    """
    names = texts["names"]
    new = [t for t in names + texts["fixed"] + texts["identities"] if t not in tokenizer.get_vocab()]
    if not new:
        return 0
    tokenizer.add_tokens(new)
    torch.manual_seed(seed)
    model.resize_token_embeddings(-(-len(tokenizer) // 64) * 64, mean_resizing=False)
    emb = model.get_input_embeddings().weight
    std = float(emb.detach()[: len(tokenizer) - len(new)].std())
    name_ids = tokenizer.convert_tokens_to_ids(names)
    with torch.no_grad():
        # Names: a component all names share (a ready-made "this is a tool name" feature) + their own part;
        # the other new tokens keep their fresh random rows at the usual scale.
        shared = torch.randn(emb.shape[1])
        emb[name_ids] = std * (shared + torch.randn(len(name_ids), emb.shape[1])) / 2 ** 0.5
    return len(new)


def lora_settings(s: SFTSettings) -> dict:
    """The `lora=` argument of `load_router`/`train_sft` for these settings (alpha = 2r, QLoRA's choice)."""
    return {"r": s.lora_r, "alpha": 2 * s.lora_r}


def parameter_count(model) -> tuple[int, int]:
    """(trainable, total) parameters; 4-bit layers count their packed storage, as PEFT reports it."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- training
def sft_dataset(traces: Sequence[dict]):
    """A conversational `datasets.Dataset` (messages + tools) as TRL's SFTTrainer reads it."""
    from datasets import Dataset

    # Tools as a JSON string (TRL decodes it): Arrow would otherwise merge the different schemas' keys and
    # fill the missing ones with nulls, which the chat template would then print into the prompt.
    return Dataset.from_list([{"messages": t["messages"], "tools": json.dumps(t["tools"], ensure_ascii=False)}
                              for t in traces])


def sft_config(out_dir: str | os.PathLike, settings: SFTSettings, steps: int, lr: float, seed: int = 0,
               progress: bool = True, assistant_only: bool = True):
    """TRL's SFTConfig for one stage: assistant-only loss; fp32 on CPU, bf16/fp16 mixed precision on CUDA."""
    from trl import SFTConfig

    device, dtype = pick_device(verbose=False)
    cuda = device == "cuda"
    return SFTConfig(
        output_dir=str(out_dir), report_to="none", seed=seed, data_seed=seed,
        assistant_only_loss=assistant_only,  # learn the router's turns only, never the prompt or the tool results
        max_length=None,  # no truncation (it would cut the answer off): too-long traces are dropped instead
        per_device_train_batch_size=settings.batch_size, gradient_accumulation_steps=settings.grad_accum,
        max_steps=steps, learning_rate=lr, lr_scheduler_type="cosine", warmup_steps=max(1, steps // 20),
        weight_decay=0.0, max_grad_norm=1.0,
        use_cpu=device == "cpu",
        bf16=cuda and dtype == torch.bfloat16, fp16=cuda and dtype == torch.float16,  # CPU: fp32 (faster there)
        # Checkpointing trades compute for memory: worth it for a 1.5B model on a GPU, ~4x slower on a CPU.
        activation_checkpointing=cuda,  # transformers' name; `gradient_checkpointing` is its deprecated alias
        logging_steps=max(1, steps // 40), disable_tqdm=not progress,
        save_strategy="steps" if settings.save_steps else "no", save_steps=settings.save_steps or 500,
        dataloader_num_workers=0,
    )


def train_sft(model, tokenizer, traces: Sequence[dict], out_dir: str | os.PathLike, settings: SFTSettings,
              lora: dict | None = None, progress: bool = True, seed: int = 0, stage: str | None = None,
              steps: int | None = None, assistant_only: bool = True) -> pd.DataFrame:
    """One SFT stage on `traces` with TRL's SFTTrainer; the loss log (one row per logging step).

    - `model` without adapters and `lora=None`: full-parameter training (`settings.full_steps`, `full_lr`).
    - `model` without adapters and `lora={...}`: LoRA adapters are added, trained (`lora_steps`, `lora_lr`)
      and merged back, so `model` comes out a plain model with updated weights.
    - `model` that already has adapters (a Hub model from `load_router(..., lora=...)`): trains them in place.
    """
    import datasets
    from peft import PeftModel, get_peft_model
    from transformers import set_seed
    from trl import SFTTrainer

    wrapped, merge = model, False
    if not isinstance(model, PeftModel) and lora is not None:
        set_seed(seed)  # adapter initialisation is random
        wrapped, merge = get_peft_model(model, lora_config(**lora)), True  # wraps in place: `model` sees the update
    adapters = isinstance(wrapped, PeftModel)
    default_steps, lr = (settings.lora_steps, settings.lora_lr) if adapters else (settings.full_steps, settings.full_lr)
    steps = steps or default_steps
    stage = stage or ("lora" if adapters else "full")
    args = sft_config(Path(out_dir) / f"{stage}_checkpoints", settings, steps, lr, seed, progress, assistant_only)
    # Tokenizing a trace (template + masks) takes ~30 ms: tokenize only the ones this stage's steps will read.
    used = spread(traces, steps * settings.batch_size * settings.grad_accum)
    datasets.disable_progress_bars()  # TRL's own training bar is the one worth watching
    trainer = SFTTrainer(model=wrapped, args=args, processing_class=tokenizer, train_dataset=sft_dataset(used))
    n = len(trainer.train_dataset)
    trainer.train_dataset = trainer.train_dataset.filter(lambda ex: len(ex["input_ids"]) <= settings.max_length)
    if len(trainer.train_dataset) < n:
        print(f"dropped {n - len(trainer.train_dataset)} of {n} traces longer than {settings.max_length} tokens")
    metrics = trainer.train().metrics
    if merge:
        wrapped.merge_and_unload()  # folds B@A into the base weights of `model`, in place
    log = loss_log(trainer.state.log_history, stage)
    log.attrs.update(train_runtime=metrics["train_runtime"], steps=steps, traces=len(trainer.train_dataset),
                     tokens=int(sum(len(x) for x in trainer.train_dataset["input_ids"])))
    return log


def loss_log(history: list[dict], stage: str) -> pd.DataFrame:
    """The trainer's log history as a table (training rows only), tagged with the stage."""
    rows = [{"stage": stage, **h} for h in history if "loss" in h]
    log = pd.DataFrame(rows)
    return log[[c for c in LOG_COLUMNS if c in log.columns] + [c for c in log.columns if c not in LOG_COLUMNS]]


# ---------------------------------------------------------------- saving, and the whole warm-up in one call
def router_info(profile: Profile, source: str = "zeroeval", stage: str = "sft") -> dict:
    """The router.json contract of notebooks 02-05 (mode, max_turns, base, stage, lambda, source, seed, ...)."""
    s = profile.sft
    return {"mode": s.mode, "max_turns": 3, "base": profile.router_model, "load_in_4bit": profile.load_in_4bit,
            "stage": stage, "lambda": s.lam, "source": source, "seed": profile.seed,
            "tool_result_chars": s.tool_result_chars, "answer_notes": s.answer_notes, "held_out": list(s.held_out),
            "lambda_in_prompt": bool(s.lambda_grid), "lambda_grid": list(s.lambda_grid)}


def save_router(model, tokenizer, path: str | os.PathLike, info: dict) -> Path:
    """Save a router checkpoint `modeling.load_saved_router(path)` loads, with its router.json.

    A plain (or merged) model is saved whole; a model that still has adapters (a 4-bit Hub base, which
    cannot take merged weights) saves the adapters, and router.json names the base they apply to.
    """
    from peft import PeftModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if isinstance(model, PeftModel):  # load_saved_router loads base + adapter when it sees these keys
        info = {**info, "adapter": True, "adapter_only": True}
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / "router.json").write_text(json.dumps(info, indent=2) + "\n")
    return path


@dataclass
class SFTResult:
    """What `run_sft` made: the saved router and what it took."""

    path: Path
    log: pd.DataFrame
    traces: list[dict]
    seconds: float
    model: object = None
    tokenizer: object = None


def run_sft(profile: Profile, artifacts: str | os.PathLike, pool: ReplayPool, queries: Sequence[Query],
            source: str = "zeroeval", progress: bool = True, settings: SFTSettings | None = None) -> SFTResult:
    """The whole warm-up: base, traces from train `queries`, the stages, `artifacts/router_sft` + router.json.

    Notebook 03 calls it when notebook 02 has not run (pass smaller `settings` for a quick one).
    """
    start = time.perf_counter()
    if settings is not None:
        from dataclasses import replace

        profile = replace(profile, sft=settings)
    s = profile.sft
    queries = spread(queries, s.train_queries)
    model, tok = build_or_load_base(profile, artifacts, pool, queries)
    traces = build_traces(pool, queries, seed=profile.seed, **trace_kwargs(s))
    out = Path(artifacts) / ROUTER_SFT
    logs = []
    if profile.router_model == "tiny" and s.full_steps:
        logs.append(train_sft(model, tok, traces, out, s, lora=None, progress=progress, seed=profile.seed))
    if s.lora_steps:
        logs.append(train_sft(model, tok, traces, out, s, lora=lora_settings(s), progress=progress, seed=profile.seed))
    log = stage_steps(pd.concat(logs, ignore_index=True)) if logs else pd.DataFrame(columns=LOG_COLUMNS)
    save_router(model, tok, out, router_info(profile, source) | {"sft": asdict(s)})
    return SFTResult(out, log, traces, time.perf_counter() - start, model, tok)


def stage_steps(log: pd.DataFrame) -> pd.DataFrame:
    """The stages' logs with one running `step` (the LoRA stage continues where the full stage stopped)."""
    log = log.copy()
    offset = 0
    for stage in pd.unique(log["stage"]):
        rows = log["stage"] == stage
        log.loc[rows, "step"] += offset
        offset = int(log.loc[rows, "step"].max())
    return log
