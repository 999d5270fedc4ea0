"""GRPO on the cost-aware reward: multi-turn tool rollouts against the replay pool, trained with TRL 1.16.

Each training row is a train-split query with a seeded random sub-pool and a mode (simple or agent). The
dataset's `prompt` is the row's key; TRL hands the keys (each repeated `num_generations` times) to our
`rollout_func`, which plays every episode token by token: one batched `generate` per router turn, the
episode rules of `episode.EpisodeStepper` (the same code evaluation runs), tool results appended as template
tokens and masked out of the loss (`env_mask`), the reward computed by the stepper. No text is re-tokenized,
so the ids TRL trains on are exactly the ids the router sampled.

    >>> from xrouter_lite.training.grpo import training_rows, train_grpo              # doctest: +SKIP
    >>> from xrouter_lite.profiles import get_profile                         # doctest: +SKIP
    >>> settings = get_profile("cpu").grpo                                    # doctest: +SKIP
    >>> rows, stats = training_rows(pool, pool.queries(split="train", source="zeroeval"), settings)  # doctest: +SKIP
    >>> log = train_grpo("artifacts/router_sft", None, rows, pool, "artifacts/router_grpo", settings)  # doctest: +SKIP
    >>> log[["step", "reward", "episode/usd_per_query"]].tail()              # doctest: +SKIP

DAPO in TRL 1.16: `loss_type="dapo"` (token-mean), clip-higher (`epsilon` 0.2 / `epsilon_high` 0.28) and no KL
(`beta=0`) are config options; dynamic sampling (dropping groups whose rewards are all equal) is not. Such
groups get advantage 0 and still dilute the token mean, so `training_rows` drops the rows whose reward cannot
vary (no model of the sub-pool answers correctly) and every step logs the share of zero-variance groups
(`frac_reward_zero_std`).

Why one module: rows, rollout, reward hook, trainer and saving are one training loop, read top to bottom in the
order notebook 03 runs it.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from xrouter_lite.pool.core import Query, ReplayPool, sample_subpool
from xrouter_lite.pool.splits import split_of
from xrouter_lite.profiles import GRPOSettings
from xrouter_lite.routing.episode import Episode, EpisodeStepper
from xrouter_lite.routing.reward import RewardConfig

END_OF_TURN = "<|im_end|>"  # Qwen2.5's end of a chat turn: the router's turns end here, tool results follow
LOG_PREFIX = "episode/"  # our per-step curves in TRL's log_history: episode/accuracy, episode/usd_per_query, ...


# ---------------------------------------------------------------- training rows
@dataclass(frozen=True)
class GRPORow:
    """One training prompt: a train-split query, the sub-pool the router may call, and the episode mode."""

    key: str  # the dataset's `prompt` value: how TRL names this row to the rollout
    query: Query
    allowed: tuple[str, ...]
    mode: str  # "simple" (one decision) or "agent" (call, read, select/answer)
    prices: tuple[tuple[str, float], ...] = ()  # price jitter: (model, factor) pairs shown and charged (repricing.py)
    lam: float | None = None  # this row's cost weight (a λ-conditioned run draws one per row); None: the settings'


def _check_train_only(queries: Sequence[Query]) -> None:
    """RL rows come from the train split only: validation tunes, test reports."""
    bad = [q.id for q in queries if split_of(q.text) != "train"]
    if bad:
        raise ValueError(f"{len(bad)} non-train queries passed to GRPO rows (e.g. {bad[0]}); "
                         "use pool.queries(split='train')")


def training_rows(pool: ReplayPool, queries: Sequence[Query], settings: GRPOSettings, seed: int = 0,
                  drop_constant: bool | None = None) -> tuple[list[GRPORow], dict]:
    """Rows = train queries x `pools_per_query` seeded sub-pools, each simple or agent; and what was dropped.

    A row whose reward cannot vary (no model of its sub-pool is correct: every completion earns 0, since a
    tiny router's own direct answers are never right) teaches nothing and dilutes the DAPO token mean, so it
    is dropped when `drop_constant` (default: `settings.drop_constant`); its share is reported either way.
    """
    from xrouter_lite.pool.repricing import draw_factors

    _check_train_only(queries)
    drop = settings.drop_constant if drop_constant is None else drop_constant
    rng = np.random.default_rng(seed)
    if settings.max_train_queries is not None and len(queries) > settings.max_train_queries:
        keep = np.sort(rng.choice(len(queries), settings.max_train_queries, replace=False))
        queries = [queries[i] for i in keep]
    candidates = []
    for q in queries:
        models = [m for m in pool.models_for(q.source) if m not in settings.held_out]  # unseen at evaluation
        for j in range(settings.pools_per_query):
            if rng.random() < settings.full_pool_share:  # the setting evaluation and serving use
                allowed = list(models)
            else:
                allowed = sample_subpool(models, rng, min_size=min(settings.min_pool, len(models)),
                                         max_size=settings.max_pool)
            mode = "agent" if rng.random() < settings.agent_share else "simple"
            factors = draw_factors(allowed, rng, settings.price_jitter) if rng.random() < settings.jitter_share else {}
            lam = float(rng.choice(settings.lambda_grid)) if settings.lambda_grid else None
            candidates.append(GRPORow(f"{q.id}#{j}", q, tuple(allowed), mode, tuple(sorted(factors.items())), lam))
    outcomes = pool.subpool_outcomes([r.query.id for r in candidates], [r.allowed for r in candidates])
    can_vary = [bool((correct > 0).any()) for correct, _ in outcomes]
    rows = [r for r, ok in zip(candidates, can_vary) if ok or not drop]
    modes = Counter(r.mode for r in rows)
    stats = {"queries": len(queries), "candidates": len(candidates), "constant": len(candidates) - sum(can_vary),
             "constant_share": 1 - sum(can_vary) / max(len(candidates), 1), "dropped": len(candidates) - len(rows),
             "rows": len(rows), "agent_rows": modes["agent"], "simple_rows": modes["simple"],
             "mean_pool_size": float(np.mean([len(r.allowed) for r in rows])) if rows else 0.0,
             "full_pool_rows": sum(len(r.allowed) == len(pool.models_for(r.query.source)) - len(settings.held_out)
                                   for r in rows),
             "repriced_rows": sum(bool(r.prices) for r in rows)}
    return rows, stats


# ---------------------------------------------------------------- grading and reward
def replay_grader(pool: ReplayPool) -> Callable[[Query, str], float]:
    """`grading.grade_final`, with a fast path: a final answer that repeats a recorded response scores its record.

    Recorded scores come from the same graders, so the fast path changes no score; it only skips re-grading
    the same model answer thousands of times during training.
    """
    from xrouter_lite.pool.grading import grade_final

    cache: dict[str, dict[str, float]] = {}

    def grade(query: Query, text: str) -> float:
        scores = cache.get(query.id)
        if scores is None:
            scores = cache[query.id] = pool.response_scores(query.id)
        if text in scores:
            return scores[text]
        return grade_final(query, text, scores)

    return grade


def reward_config(settings: GRPOSettings, lam: float | None = None) -> RewardConfig:
    """The reward's knobs from the settings (`lam` overrides the settings' lambda, for a sweep)."""
    return RewardConfig(K=settings.K, lam=settings.lam if lam is None else lam, cost_max=settings.cost_max)


def episode_reward(prompts, completions, episode_reward, log_metric=None, **kw) -> list[float]:
    """TRL reward function: the reward the rollout's episodes earned; logs accuracy, USD, calls, shares per step."""
    if log_metric is not None:
        for name, value in episode_metrics(kw.get("episode_score", []), kw.get("episode_usd", []),
                                           kw.get("episode_calls", []), kw.get("episode_ending", []),
                                           kw.get("episode_allowed", [])).items():
            log_metric(LOG_PREFIX + name, value)
        zero_std = kw.get("episode_group_zero_std", [])
        if zero_std:  # ours, per group of G rollouts: TRL's frac_reward_zero_std reads 0 under scale_rewards="batch"
            log_metric(LOG_PREFIX + "frac_zero_std", float(np.mean(zero_std)))
    return [float(r) for r in episode_reward]


def episode_metrics(scores, usd, calls, endings, allowed=()) -> dict[str, float]:
    """Per-batch means: accuracy, USD and calls per query, valid and direct-answer rates, share of calls per model."""
    n = len(scores)
    if n == 0:
        return {}
    out = {"accuracy": float(np.mean(scores)), "usd_per_query": float(np.mean(usd)),
           "calls_per_query": float(np.mean([len(c) for c in calls])) if calls else 0.0,
           "valid_rate": float(np.mean([e != "invalid" for e in endings])) if endings else float("nan"),
           "direct_rate": float(np.mean([e == "direct" for e in endings])) if endings else float("nan")}
    counts = Counter(m for c in calls for m in c)
    total = sum(counts.values())
    for m in sorted({m for a in allowed for m in a} | set(counts)):
        out[f"share/{m}"] = counts[m] / total if total else 0.0
    return out


def group_stats(rewards, num_generations: int) -> dict[str, float]:
    """Mean, std and the share of zero-variance groups (TRL's `frac_reward_zero_std`) of consecutive groups."""
    r = np.asarray(rewards, dtype=float).reshape(-1, num_generations)
    std = r.std(axis=1, ddof=1) if num_generations > 1 else np.zeros(len(r))
    return {"reward": float(r.mean()), "reward_std": float(r.std(ddof=1)) if r.size > 1 else 0.0,
            "frac_reward_zero_std": float(np.mean(np.isclose(std, 0.0)))}


# ---------------------------------------------------------------- the token-level rollout
def tool_suffix_ids(tokenizer, tool_messages: list[dict]) -> list[int]:
    """The template tokens between the router's end of turn and its next turn: tool results + the next header."""
    base = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    before = tokenizer.apply_chat_template(base, tokenize=False)
    after = tokenizer.apply_chat_template(base + list(tool_messages), add_generation_prompt=True, tokenize=False)
    cut = before.rindex(END_OF_TURN) + len(END_OF_TURN)
    if after[:cut] != before[:cut]:
        raise ValueError("the chat template renders earlier turns differently once tool messages follow; "
                         "token-level rollouts need a prefix-preserving template (Qwen2.5's is)")
    return tokenizer.encode(after[cut:], add_special_tokens=False)


@dataclass
class Rollout:
    """One episode as tokens: prompt ids, completion ids, the 0/1 mask of router-written tokens, and its record."""

    prompt_ids: list[int]
    completion_ids: list[int]
    env_mask: list[int]  # 1 = the router wrote it (trained); 0 = tool results and template text (masked)
    episode: Episode


def play_episodes(model, tokenizer, rows: Sequence[GRPORow], pool: ReplayPool, settings: GRPOSettings,
                  reward_cfg: RewardConfig, grader=None, generation_config=None, max_completion_length=None,
                  max_turns: int = 3, errors: "RolloutErrors | None" = None) -> list[Rollout]:
    """Play one episode per row, all rows' turns batched: one left-padded `generate` per router turn.

    Never raises on what the model writes: unparsable output, unknown tools and runaway turns end the
    episode as invalid (reward 0), like in evaluation. An *exception* while playing a turn (a grader, pool or
    parser bug, not the model's doing) also ends its episode, but is counted in `errors`, which prints the
    first traceback and stops the run once more than `max_rate` of the episodes failed that way.
    """
    errors = errors if errors is not None else RolloutErrors(settings.max_rollout_error_rate)
    from transformers import GenerationConfig, LogitsProcessorList

    from xrouter_lite.training.guided import name_constraint

    budget = max_completion_length or settings.max_completion_length
    grader = grader or replay_grader(pool)
    end_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    eos = set(_eos_ids(model, tokenizer))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_id
    base_cfg = generation_config.to_dict() if generation_config is not None else {
        "do_sample": True, "temperature": settings.temperature, "top_p": 1.0, "top_k": 0}
    base_cfg.update(eos_token_id=sorted(eos), pad_token_id=pad)
    from xrouter_lite.pool.repricing import RepricedPool

    stated = bool(settings.lambda_grid) or settings.state_lambda  # a λ-conditioned router reads λ in its prompt
    steppers = [EpisodeStepper(r.query, RepricedPool(pool, dict(r.prices)) if r.prices else pool, r.allowed, r.mode,
                               max_turns, reward_cfg if r.lam is None else replace(reward_cfg, lam=r.lam), grader,
                               max_tool_chars=settings.max_tool_chars, answer_notes=settings.answer_notes,
                               state_lambda=stated) for r in rows]
    prompt_cache: dict[str, list[int]] = {}
    prompts = []
    for r, s in zip(rows, steppers):
        if r.key not in prompt_cache:  # a group shares one prompt: render it once
            prompt_cache[r.key] = list(tokenizer.apply_chat_template(
                s.messages, tools=s.tools, add_generation_prompt=True, tokenize=True, return_dict=False))
        prompts.append(prompt_cache[r.key])
    completions: list[list[int]] = [[] for _ in rows]
    masks: list[list[int]] = [[] for _ in rows]
    device = next(model.parameters()).device
    while live := [i for i, s in enumerate(steppers) if not s.done]:
        room = min(budget - len(completions[i]) for i in live)
        new_tokens = max(1, min(settings.turn_tokens, room))
        cfg = GenerationConfig(**{**base_cfg, "max_new_tokens": new_tokens})
        seqs = [prompts[i] + completions[i] for i in live]
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        att = torch.zeros_like(ids)
        for j, seq in enumerate(seqs):  # left padding: every row continues from the right edge
            ids[j, width - len(seq):] = torch.tensor(seq)
            att[j, width - len(seq):] = 1
        constraint = name_constraint(tokenizer, [steppers[i].tools for i in live]) if settings.guided_names else None
        with torch.no_grad():
            out = model.generate(input_ids=ids.to(device), attention_mask=att.to(device), generation_config=cfg,
                                 logits_processor=LogitsProcessorList([constraint] if constraint else []))
        for j, i in enumerate(live):
            _advance(steppers[i], out[j, width:].tolist(), completions[i], masks[i], budget, eos, end_id,
                     tokenizer, settings.turn_tokens, errors)
    errors.count(len(rows))
    return [Rollout(p, c, m, s.episode) for p, c, m, s in zip(prompts, completions, masks, steppers)]


class RolloutError(RuntimeError):
    """Too many rollouts raised (a bug in the grader, the pool or the parser, not the router's doing)."""


class RolloutErrors:
    """Exceptions raised while playing rollouts: counted, the first traceback printed, a run stopped above a rate.

    Folding them silently into invalid episodes (reward 0) would train the router on a bug.
    """

    def __init__(self, max_rate: float = 0.01):
        self.max_rate = max_rate  # stop once more than this share of the episodes so far raised
        self.errors, self.episodes, self.first = 0, 0, ""

    def record(self, exc: BaseException, query_id: str) -> None:
        import traceback
        import warnings

        self.errors += 1
        if not self.first:
            self.first = f"rollout of {query_id} raised:\n" + "".join(traceback.format_exception(exc))
            warnings.warn(self.first, RuntimeWarning, stacklevel=2)

    def count(self, episodes: int) -> None:
        """Add a batch's episodes; raise RolloutError when the errors exceed max(1, max_rate x episodes)."""
        self.episodes += episodes
        if self.errors > max(1.0, self.max_rate * self.episodes):
            raise RolloutError(f"{self.errors} of {self.episodes} rollouts raised an exception (limit "
                               f"{self.max_rate:.0%}); the first one:\n{self.first}")


def _eos_ids(model, tokenizer) -> list[int]:
    """Every id that ends a router turn: the generation config's eos ids and the tokenizer's."""
    ids = model.generation_config.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    return sorted({*ids, tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)} - {None})


def _advance(stepper: EpisodeStepper, new: list[int], completion: list[int], mask: list[int], budget: int,
             eos: set, end_id: int, tokenizer, turn_tokens: int, errors: "RolloutErrors") -> None:
    """Append one generated turn, play it, and append the tool results (masked) if the episode goes on."""
    cut = next((k for k, t in enumerate(new) if t in eos), None)
    turn = (new[:cut + 1] if cut is not None else new)[:max(budget - len(completion), 0)]
    completion += turn
    mask += [1] * len(turn)  # the router's tokens, its end-of-turn token included: trained
    if not turn or turn[-1] not in eos:
        stepper.stop(f"turn cut after {len(turn)} tokens (no end of turn within the token budget)")
        return
    try:
        tool_messages = stepper.step(tokenizer.decode(turn, skip_special_tokens=True).strip())
    except Exception as exc:  # noqa: BLE001 - one episode's bug is counted; too many stop the run (errors.count)
        errors.record(exc, stepper.query.id)
        stepper.stop(f"rollout error: {type(exc).__name__}: {exc}"[:200])
        return
    if stepper.done:
        return
    suffix = tool_suffix_ids(tokenizer, tool_messages)
    if turn[-1] != end_id:  # the turn ended on another stop id: close it as the template would
        suffix = [end_id] + suffix
    if len(completion) + len(suffix) + min(turn_tokens, 8) > budget:
        stepper.stop(f"completion budget of {budget} tokens spent before the next turn")
        return
    completion += suffix
    mask += [0] * len(suffix)  # tool results and template text: not the router's doing, masked


def group_zero_std(keys: Sequence[str], rewards: Sequence[float]) -> list[bool]:
    """Per rollout: whether every rollout of its group (same row key) earned the same reward (taught nothing)."""
    by_key: dict[str, list[float]] = {}
    for k, r in zip(keys, rewards):
        by_key.setdefault(k, []).append(r)
    flat = {k: bool(np.ptp(v) < 1e-9) for k, v in by_key.items()}
    return [flat[k] for k in keys]


def rollout_output(rollouts: Sequence[Rollout], keys: Sequence[str] | None = None) -> dict:
    """The dict TRL's `rollout_func` returns: ids, `env_mask`, and the episode fields the reward reads."""
    eps = [r.episode for r in rollouts]
    keys = list(keys) if keys is not None else [e.query_id for e in eps]
    return {"episode_group_zero_std": group_zero_std(keys, [e.reward for e in eps]),
            "prompt_ids": [r.prompt_ids for r in rollouts], "completion_ids": [r.completion_ids for r in rollouts],
            "logprobs": None, "env_mask": [r.env_mask for r in rollouts],
            "episode_reward": [e.reward for e in eps], "episode_score": [e.score for e in eps],
            "episode_usd": [e.usd for e in eps], "episode_calls": [[c.model for c in e.calls] for e in eps],
            "episode_ending": [e.ending for e in eps], "episode_allowed": [list(e.allowed) for e in eps]}


def make_rollout_func(rows: Sequence[GRPORow], pool: ReplayPool, settings: GRPOSettings,
                      reward_cfg: RewardConfig | None = None, grader=None,
                      errors: "RolloutErrors | None" = None) -> Callable:
    """TRL's `rollout_func(prompts, trainer) -> dict` over our rows (prompts are row keys, each repeated G times)."""
    from trl.models import unwrap_model_for_generation

    by_key = {r.key: r for r in rows}
    errors = errors if errors is not None else RolloutErrors(settings.max_rollout_error_rate)
    reward_cfg = reward_cfg or reward_config(settings)
    grader = grader or replay_grader(pool)

    def rollout_func(prompts: list, trainer) -> dict:
        batch = [by_key[p] for p in prompts]
        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                         generation_kwargs=trainer.generation_kwargs,
                                         gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs
                                         ) as model:
            rollouts = play_episodes(model, trainer.processing_class, batch, pool, settings, reward_cfg, grader,
                                     trainer.generation_config, trainer.max_completion_length, errors=errors)
        return rollout_output(rollouts, prompts)

    return rollout_func


# ---------------------------------------------------------------- on-policy guided decoding
def guided_log_probs(model, input_ids, attention_mask, logits_to_keep: int, temperature: float, ids,
                     batch_size: int | None = None, compute_entropy: bool = False):
    """Per-token log-probs (and entropies) of the completions under the *guided* distribution the rollouts sampled.

    Rollouts restrict the tool-name token to the prompt's tools (`guided.ToolNameConstraint`); TRL's loss would
    score that token under the unrestricted model, so its policy gradient would follow a distribution nobody
    sampled from (off-policy, uncorrected). Here the same restriction is applied to the logits before the
    softmax, at exactly the positions where the sampler applied it (`guided.guided_positions`).
    """
    from xrouter_lite.training.guided import guided_positions

    batch_size = batch_size or input_ids.size(0)
    logps, entropies = [], []
    for start in range(0, input_ids.size(0), batch_size):
        chunk, att = input_ids[start:start + batch_size], attention_mask[start:start + batch_size]
        logits = model(input_ids=chunk, attention_mask=att, logits_to_keep=logits_to_keep + 1).logits[:, :-1]
        logits = logits.float() / temperature
        targets = chunk[:, -logits_to_keep:]
        positions = guided_positions(chunk, logits_to_keep, ids)
        if positions:
            keep = torch.ones(logits.shape, dtype=torch.bool, device=logits.device)
            for row, t, allowed in positions:
                keep[row, t] = False
                keep[row, t, allowed] = True
                keep[row, t, targets[row, t]] = True  # never -inf: a mismatch would be a bug, not a sample
            logits = logits.masked_fill(~keep, float("-inf"))
        logp = logits.log_softmax(-1)
        logps.append(logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1))
        if compute_entropy:
            entropies.append(-(logp.exp() * logp.nan_to_num(neginf=0.0)).sum(-1))
    return torch.cat(logps), (torch.cat(entropies) if compute_entropy else None)


def guided_trainer_class():
    """TRL's GRPOTrainer whose loss scores tool names under the guided distribution (see `guided_log_probs`)."""
    from trl import GRPOTrainer

    class GuidedGRPOTrainer(GRPOTrainer):
        guided_ids = None  # guided.GuidedIds, set by train_grpo when names are single tokens (the tiny router)

        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                               batch_size=None, compute_entropy=False, compute_aux_loss=False,
                                               **extra):
            if self.guided_ids is None or compute_aux_loss or any(v is not None for v in extra.values()):
                return super()._get_per_token_logps_and_entropies(
                    model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy,
                    compute_aux_loss, **extra)
            with self.accelerator.autocast():
                logps, entropies = guided_log_probs(model, input_ids, attention_mask, logits_to_keep,
                                                    self.temperature, self.guided_ids, batch_size, compute_entropy)
            return logps, entropies, None

    return GuidedGRPOTrainer


# ---------------------------------------------------------------- training
def grpo_config(settings: GRPOSettings, out_dir: str | os.PathLike, device: str = "cpu",
                dtype: torch.dtype = torch.float32, seed: int = 0, progress: bool = True):
    """The GRPOConfig for the settings on this device (CPU: fp32, no gradient checkpointing)."""
    from trl import GRPOConfig

    completions = settings.prompts_per_step * settings.num_generations
    micro = min(settings.micro_batch or completions, completions)
    if completions % micro:
        raise ValueError(f"micro_batch={micro} must divide the {completions} completions per step")
    cpu = device == "cpu"
    return GRPOConfig(
        output_dir=str(out_dir), report_to="none", logging_steps=1, seed=seed, disable_tqdm=not progress,
        use_cpu=cpu, bf16=not cpu and dtype == torch.bfloat16, fp16=not cpu and dtype == torch.float16,
        activation_checkpointing=not cpu and settings.gradient_checkpointing,  # saves VRAM; ~4x slower on a CPU
        max_steps=settings.steps, learning_rate=settings.learning_rate, lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        per_device_train_batch_size=micro, gradient_accumulation_steps=completions // micro,
        num_generations=settings.num_generations, max_completion_length=settings.max_completion_length,
        temperature=settings.temperature, top_p=1.0, top_k=0,
        loss_type=settings.loss_type, epsilon=settings.epsilon, epsilon_high=settings.epsilon_high,
        beta=settings.beta, scale_rewards=settings.scale_rewards, num_iterations=settings.num_iterations,
        mask_truncated_completions=False,  # a rambling episode must earn its 0, not vanish from the loss
        disable_dropout=True, save_strategy="steps", save_steps=settings.save_steps, save_total_limit=2,
        dataloader_num_workers=0)


def load_policy(model_or_path, tokenizer=None, lora: dict | None = None, load_in_4bit: bool = False,
                device: str | None = None):
    """(model, tokenizer) ready for GRPO: a path is loaded (4-bit NF4 if asked), LoRA wraps it if `lora` is given."""
    from xrouter_lite.training.modeling import load_router, pick_device

    device = device or pick_device()[0]
    if isinstance(model_or_path, (str, os.PathLike)):
        model, tok = load_router(model_or_path, load_in_4bit=load_in_4bit, lora=lora, device=device)
        return model, tokenizer or tok
    if tokenizer is None:
        raise ValueError("pass the tokenizer along with a loaded model")
    model = model_or_path
    if lora is not None and not hasattr(model, "peft_config"):
        from peft import get_peft_model

        from xrouter_lite.training.modeling import lora_config

        model = get_peft_model(model, lora_config(**lora))
    return model, tokenizer


def lora_of(settings: GRPOSettings) -> dict | None:
    """The LoRA arguments of the settings (None = train every weight: the tiny model's choice)."""
    if not settings.lora_r:
        return None
    return {"r": settings.lora_r, "alpha": 2 * settings.lora_r, "dropout": 0.0}  # no dropout: RL noise is enough


def train_grpo(model_or_path, tokenizer, rows: Sequence[GRPORow], pool: ReplayPool, out_dir: str | os.PathLike,
               settings: GRPOSettings, lora: dict | None | str = "settings", load_in_4bit: bool = False,
               resume_from_checkpoint: str | bool | None = None, lam: float | None = None, seed: int = 0,
               info: dict | None = None, progress: bool = True, device: str | None = None,
               checkpoint_dir: str | os.PathLike | None = None, save: bool = True, grader=None,
               callbacks: Sequence | None = None, config_overrides: dict | None = None) -> pd.DataFrame:
    """GRPO on `rows`; saves the router (LoRA merged when the base is not 4-bit) + router.json; the per-step log.

    `lora="settings"` takes the rank from `settings.lora_r` (0: full-parameter); `load_in_4bit` loads the base
    in NF4 (QLoRA; meant for a GPU, it also runs on CPU). Checkpoints go to `checkpoint_dir` (default
    `out_dir/checkpoints`) every `settings.save_steps`; `resume_from_checkpoint` (a checkpoint dir, or True for
    the latest) continues an interrupted run from there. `grader(query, text) -> score` defaults to the replay
    pool's (`replay_grader`). `callbacks` are TRL/transformers callbacks (`progress.ProgressPrinter`);
    `config_overrides` replaces fields of the GRPOConfig `grpo_config` builds (multi-GPU, vLLM: README). The saved router.json keeps the starting checkpoint's (mode, max_turns, base,
    source, ...), updated by `info`; without those keys the run is refused before it starts.
    """
    from datasets import Dataset

    from xrouter_lite.training.guided import GuidedIds
    from xrouter_lite.training.modeling import pick_device

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is "experimental" in TRL 1.16
    meta = {**inherited_info(model_or_path), **(info or {})}
    if save:  # checked before training, so a missing key costs no run
        check_router_info(meta)
    device = device or pick_device()[0]
    dtype = pick_device(verbose=False)[1] if device == "cuda" else torch.float32
    lora = lora_of(settings) if lora == "settings" else lora
    if load_in_4bit and lora is None and not hasattr(model_or_path, "peft_config"):
        raise ValueError("4-bit weights cannot be trained directly: QLoRA needs LoRA adapters (set lora_r > 0)")
    model, tokenizer = load_policy(model_or_path, tokenizer, lora, load_in_4bit, device)
    out_dir = Path(out_dir)
    ckpt = Path(checkpoint_dir) if checkpoint_dir else out_dir / "checkpoints"
    reward_cfg = reward_config(settings, lam)
    args = grpo_config(settings, ckpt, device, dtype, seed, progress)
    if config_overrides:  # e.g. {"use_vllm": True, "vllm_mode": "colocate", ...}: TRL's GRPOConfig fields, re-validated
        from dataclasses import replace as replace_config

        args = replace_config(args, **config_overrides)
    torch.manual_seed(seed)
    trainer = guided_trainer_class()(
        model=model, reward_funcs=[episode_reward], args=args, processing_class=tokenizer,
        train_dataset=Dataset.from_list([{"prompt": r.key} for r in rows]), callbacks=list(callbacks or []),
        rollout_func=make_rollout_func(rows, pool, settings, reward_cfg, grader))
    trainer.guided_ids = GuidedIds.of(tokenizer) if settings.guided_names else None
    if not progress:  # without a progress bar the trainer prints every step's log dict instead: keep quiet
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    log = log_frame(trainer.state.log_history, settings)
    log.attrs["wall_s"] = time.perf_counter() - start
    if save:
        meta = {**meta, "stage": "grpo", "lambda": reward_cfg.lam, "seed": seed,
                "lambda_grid": list(settings.lambda_grid),
                "lambda_in_prompt": bool(settings.lambda_grid) or bool(settings.state_lambda)}
        save_grpo_router(trainer.model, tokenizer, out_dir, meta, quantized=load_in_4bit)
        log.to_csv(out_dir / "grpo_log.csv", index=False)
    return log


def log_frame(log_history: list[dict], settings: GRPOSettings | None = None) -> pd.DataFrame:
    """TRL's log_history as one row per step (training steps only), with completions/s when step_time is logged."""
    rows = [h for h in log_history if "reward" in h and "step" in h]
    log = pd.DataFrame(rows).drop_duplicates("step", keep="last").reset_index(drop=True)
    if settings is not None and "step_time" in log:
        log["completions_per_s"] = settings.prompts_per_step * settings.num_generations / log["step_time"]
    summary = next((h for h in reversed(log_history) if "train_runtime" in h), None)
    if summary:
        log.attrs.update({k: summary[k] for k in ("train_runtime", "train_steps_per_second") if k in summary})
    return log


ROUTER_INFO_KEYS = {"mode", "max_turns", "base", "source"}  # what loading and serving a router need
# about the SFT run, not GRPO's: GRPO writes its own λ settings (a per-λ router started from a conditioned SFT
# router is told one λ, not the grid)
NOT_INHERITED = ("stage", "lambda", "lambda_grid", "lambda_in_prompt", "seed", "sft", "adapter", "adapter_only")


def inherited_info(model_or_path) -> dict:
    """What a GRPO router keeps of the router.json of the checkpoint it starts from (mode, base, source, ...)."""
    path = Path(model_or_path) / "router.json" if isinstance(model_or_path, (str, os.PathLike)) else None
    if path is None or not path.is_file():
        return {}
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in NOT_INHERITED}


def settings_for_sft(settings: GRPOSettings, sft_info: dict) -> GRPOSettings:
    """GRPO settings that follow the SFT router's router.json, so rollouts look like the traces it learned from.

    The router reads each model answer clipped as it was trained to (and with the answer check if it had one),
    never sees the held-out models, and is told its cost weight only if it learned to read one: a λ grid is kept
    only for such a router (a router that cannot read λ would get rewards it cannot tell apart).
    """
    reads_lambda = bool(sft_info.get("lambda_in_prompt", False))
    return replace(settings, max_tool_chars=sft_info.get("tool_result_chars", settings.max_tool_chars),
                   answer_notes=bool(sft_info.get("answer_notes", False)),
                   held_out=tuple(sft_info.get("held_out", ())), state_lambda=reads_lambda,
                   lambda_grid=settings.lambda_grid if reads_lambda else ())


def grpo_router_info(sft_info: dict, settings: GRPOSettings, source: str, start: str = "router_sft") -> dict:
    """The `info` a GRPO run passes to `train_grpo` for its router.json: the SFT router's contract (mode,
    max_turns, base, 4-bit), how the router reads the pool (answer clipping, answer check, held-out models, as
    `settings_for_sft` set them), the source, what it started from and its steps. One place, so notebook 03 and
    the benchmarks write the same router.json."""
    contract = {k: sft_info[k] for k in ("mode", "max_turns", "base", "load_in_4bit") if k in sft_info}
    return contract | {"source": source, "tool_result_chars": settings.max_tool_chars,
                       "answer_notes": settings.answer_notes, "held_out": list(settings.held_out), "start": start,
                       "steps": settings.steps}


def check_router_info(info: dict) -> None:
    """Refuse a router.json that loading and serving could not use (wrong mode, unknown base)."""
    missing = sorted(ROUTER_INFO_KEYS - set(info))
    if missing:
        raise ValueError(f"router info lacks {missing}: pass them in `info`, or start from a checkpoint whose "
                         "router.json has them (the SFT router's, written by sft.router_info)")


def save_grpo_router(model, tokenizer, out_dir: str | os.PathLike, info: dict, quantized: bool = False) -> Path:
    """Save a loadable router: merged weights (LoRA folded in) unless the base is 4-bit, plus tokenizer and router.json.

    A 4-bit base cannot take merged weights without dequantising it, so then only the adapter is saved and
    router.json names its base (`modeling.load_router(base)` + `PeftModel.from_pretrained(model, out_dir)`).
    """
    from xrouter_lite.training.sft import save_router as save_checkpoint

    check_router_info(info)
    if hasattr(model, "peft_config") and not quantized:
        model = model.merge_and_unload()
    meta = {"stage": "grpo", **{k: v for k, v in info.items() if k not in ("adapter", "adapter_only")}}
    return save_checkpoint(model, tokenizer, out_dir, meta)  # adapters only (flagged) when the base is 4-bit


def zero_variance_share(log: pd.DataFrame) -> float:
    """Mean share of groups whose rewards were all equal over a run (the steps that taught nothing).

    Ours (`episode/frac_zero_std`, per group of rollouts) when logged: TRL's `frac_reward_zero_std` compares the
    batch's std under `scale_rewards="batch"` and reads 0 there.
    """
    for col in (LOG_PREFIX + "frac_zero_std", "frac_reward_zero_std"):
        if col in log:
            return float(log[col].mean())
    return math.nan


def gains_over_sft(grpo, sft, singles, n_boot: int | None = None, seed: int = 0) -> dict:
    """Whether a GRPO router shows the gains RL should bring, each a 95% interval verdict (notebook 03, the seeds
    benchmark): "beats", "below" or "not shown" (`xrouter_lite.routing.verdicts`).

    `grpo`, `sft`: `verdicts.Outcomes` on the same queries; `singles`: `verdicts.Singles` on those queries.
    - reward_vs_sft: its mean reward minus the SFT router's (points, paired over queries);
    - above_zero_hull: its accuracy above the zero router's hull (single models and answering nothing) at its cost;
    - cheaper_than_most_accurate: the share of the most accurate single model's cost it saves (%).
    """
    from xrouter_lite.routing import verdicts as V

    n_boot = n_boot or V.N_BOOT
    best = singles.outcomes(singles.most_accurate(), lam=0.0)
    return {"reward_vs_sft": V.verdict(V.paired_difference(grpo.reward, sft.reward, n_boot, seed)),
            "above_zero_hull": V.margin_verdict(grpo, singles, n_boot, seed),
            "cheaper_than_most_accurate": V.verdict(V.ratio_saved(grpo.usd, best.usd, n_boot, seed), unit="%",
                                                    digits=0)}
