"""GRPO: rows, the token-level rollout (reward, tool-token masking), group statistics, and short TRL runs
(full-parameter, LoRA, QLoRA on CPU, resume from a checkpoint) on a tiny model and a 3-model replay pool."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is built locally
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from synthetic import texts_in_split  # noqa: E402
from xrouter_lite.pool.core import Query, ReplayPool, load_prices, tool_name  # noqa: E402
from xrouter_lite.profiles import GRPOSettings  # noqa: E402
from xrouter_lite.routing.protocol import Action, format_tool_result, render_calls, tool_message  # noqa: E402
from xrouter_lite.routing.reward import RewardConfig  # noqa: E402
from xrouter_lite.training.grpo import (GRPORow, episode_metrics, group_stats, play_episodes,  # noqa: E402
                                        rollout_output, save_grpo_router, settings_for_sft, tool_suffix_ids, train_grpo,
                                        training_rows)
from xrouter_lite.training.modeling import build_tiny_router, load_router, load_saved_router  # noqa: E402

MINI, FLASH, O1 = "gpt-4o-mini-2024-07-18", "gemini-1.5-flash", "o1-mini-2024-09-12"
MODELS = [MINI, FLASH, O1]
LONG = "Working: " + "x" * 900 + " The answer is 12."  # longer than max_tool_chars: the router sees its end


def _texts(split: str, n: int) -> list[str]:
    """`n` GSM-like question texts that the hash split puts in `split`."""
    return texts_in_split(split, n, lambda i: f"A farmer has {i} hens and buys 12 more. How many hens now, minus {i}?")


def _table() -> pd.DataFrame:
    """Train queries q0..q5 and one validation query; MINI and O1 answer 12 (gold), FLASH answers 7, except
    q5 where nobody is right (a row whose reward cannot vary)."""
    rows = []
    texts = [(t, "train") for t in _texts("train", 6)] + [(t, "validation") for t in _texts("validation", 1)]
    for i, (text, split) in enumerate(texts):
        qid = f"zeroeval/gsm/{i}"
        for m, usd in ((MINI, 2e-4), (FLASH, 1e-4), (O1, 1e-2)):
            right = m != FLASH and i != 5
            response = (LONG if m == MINI else "12") if right else "7"
            rows.append(dict(query_id=qid, source="zeroeval", task="gsm", category="", question=text, gold="12",
                             model=m, response=response, correct=float(right), in_tokens=50, out_tokens=20,
                             usd=usd, split=split))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def pool() -> ReplayPool:
    return ReplayPool(_table(), load_prices())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, pool):
    """A tiny random router saved to disk (seconds), its tokenizer fitted to our prompts: (dir, tokenizer)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    from xrouter_lite.routing.protocol import router_messages, tool_schemas
    from xrouter_lite.training.modeling import qwen25_chat_template

    out = tmp_path_factory.mktemp("tiny")
    convs, tools = [], []
    for q in pool.queries(split="train"):
        for mode in ("simple", "agent"):
            convs.append(router_messages(q.text, mode) + [{"role": "assistant", "content": _call(MINI)}])
            tools.append(tool_schemas([pool.spec(m) for m in MODELS], mode))
    corpus = [render_jinja_template([c], tools=t, chat_template=qwen25_chat_template())[0][0]
              for c, t in zip(convs, tools)]
    _, tok = build_tiny_router(corpus * 4, out, vocab_size=800, hidden_size=32, layers=1, heads=2, seed=0)
    return out, tok


@pytest.fixture(scope="module")
def chatty(tmp_path_factory, tiny):
    """The tiny random router with every token an end of turn: each turn is one token, a direct answer."""
    path, tok = tiny
    model, _ = load_router(path, device="cpu")
    model.generation_config.eos_token_id = list(range(len(tok)))
    out = tmp_path_factory.mktemp("chatty")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "router.json").write_text(json.dumps({"mode": "simple", "max_turns": 3, "base": "tiny", "stage": "sft",
                                                 "lambda": 1.0, "source": "zeroeval", "seed": 0}))
    return out


def _call(model: str) -> str:
    return render_calls([Action("call", model=model, args={"optimized_system_prompt": "Solve it."})])


def _select(model: str) -> str:
    return render_calls([Action("select", model=model, args={"model_call_name": tool_name(model)})])


class ScriptedLM:
    """Stands in for a causal LM in `play_episodes`: each row's turns are fixed texts, returned as token ids."""

    def __init__(self, tokenizer, scripts: list[list[str]]):
        self.tok, self.scripts, self.turn = tokenizer, scripts, [0] * len(scripts)
        self.generation_config = type("G", (), {"eos_token_id": [tokenizer.convert_tokens_to_ids("<|im_end|>")]})()
        self.live_rows: list[list[int]] = []  # which rows each generate call served (rows whose episode goes on)
        self.seen: list[list[list[int]]] = []  # the unpadded input ids of each call

    def parameters(self):
        yield torch.zeros(1)

    def generate(self, input_ids, attention_mask, generation_config, logits_processor=None):  # scripted: no processors
        end = self.tok.convert_tokens_to_ids("<|im_end|>")
        live = [i for i, s in enumerate(self.scripts) if self.turn[i] < len(s)
                and (not self.live_rows or i in self._continuing())]
        live = live[:len(input_ids)]
        self.live_rows.append(live)
        self.seen.append([row[mask.bool()].tolist() for row, mask in zip(input_ids, attention_mask)])
        outs = []
        for i in live:
            ids = self.tok.encode(self.scripts[i][self.turn[i]], add_special_tokens=False) + [end]
            outs.append(ids[:generation_config.max_new_tokens])  # a turn too long for the budget is cut
            self.turn[i] += 1
        width = max(map(len, outs))
        pad = self.tok.pad_token_id
        new = torch.tensor([o + [pad] * (width - len(o)) for o in outs])
        return torch.cat([input_ids, new], dim=1)

    def _continuing(self):
        return [i for i, s in enumerate(self.scripts) if 0 < self.turn[i] < len(s)]


SETTINGS = GRPOSettings(steps=2, prompts_per_step=2, num_generations=4, learning_rate=1e-2, lam=30.0,
                        max_completion_length=400, turn_tokens=64, max_tool_chars=60, save_steps=1)
# Training runs: 2 prompts x 4 completions. The random model (`chatty`) ends its turn after any token and a
# stand-in grader scores its one-token answers (even length = right), so rewards vary within groups.
RUN = replace(SETTINGS, turn_tokens=4, max_completion_length=8)


def even_length(query, text):
    return float(len(text) % 2 == 0)


def _rows(pool, specs):
    train = {q.id: q for q in pool.queries(split="train")}
    return [GRPORow(f"r{i}", train[qid], tuple(allowed), mode) for i, (qid, allowed, mode) in enumerate(specs)]


# ---------------------------------------------------------------- rows
def test_rows_come_from_train_only_and_constant_rows_are_dropped(pool):
    train = pool.queries(split="train")
    settings = replace(SETTINGS, pools_per_query=3, min_pool=3, agent_share=0.5)
    rows, stats = training_rows(pool, train, settings, seed=0)
    assert {r.query.id for r in rows} == {q.id for q in train if q.id != "zeroeval/gsm/5"}  # nobody right on q5
    assert stats["candidates"] == 18 and stats["constant"] == 3 and stats["dropped"] == 3 and len(rows) == 15
    assert stats["constant_share"] == pytest.approx(3 / 18)
    assert {r.mode for r in rows} == {"simple", "agent"} and len({r.key for r in rows}) == len(rows)
    kept, stats = training_rows(pool, train, settings, seed=0, drop_constant=False)
    assert len(kept) == 18 and stats["dropped"] == 0 and stats["constant"] == 3  # logged, not dropped
    assert [r.key for r in training_rows(pool, train, settings, seed=0)[0]] == [r.key for r in rows]  # seeded
    with pytest.raises(ValueError, match="non-train"):
        training_rows(pool, pool.queries(split="validation"), settings)


# ---------------------------------------------------------------- the rollout: reward and masks
def test_reward_depends_on_the_call_the_router_made(pool, tiny):
    _, tok = tiny
    rows = _rows(pool, [("zeroeval/gsm/0", MODELS, "simple")] * 5 + [("zeroeval/gsm/0", (MINI, FLASH), "simple")])
    scripts = [[_call(MINI)], [_call(O1)], [_call(FLASH)], ["I think it is 7."], ["<tool_call>{garbage"],
               [_call(O1)]]  # the last row's sub-pool has no O1
    cfg = RewardConfig(lam=30.0)
    out = play_episodes(ScriptedLM(tok, [list(s) for s in scripts]), tok, rows, pool, SETTINGS, cfg)
    eps = [r.episode for r in out]
    mini_usd, o1_usd = eps[0].usd, eps[1].usd
    assert eps[0].reward == pytest.approx(1 - 30 * mini_usd) and eps[0].ending == "called"
    assert eps[1].reward == pytest.approx(1 - 30 * o1_usd) and eps[1].reward < eps[0].reward  # right, 50x dearer
    assert eps[2].reward == 0 and eps[2].score == 0 and eps[2].usd > 0  # a wrong model's answer: 0, still paid
    assert (eps[3].ending, eps[3].reward) == ("direct", 0.0)  # no call: its own (wrong) answer
    assert (eps[4].ending, eps[4].reward) == ("invalid", 0.0)  # no well-formed call
    assert eps[5].ending == "invalid" and "unknown tool" in eps[5].invalid_reason and eps[5].calls == []
    payload = rollout_output(out)
    assert payload["episode_reward"] == [e.reward for e in eps] and payload["logprobs"] is None
    assert payload["episode_calls"][:3] == [[MINI], [O1], [FLASH]]


def test_tool_result_tokens_are_masked_exactly(pool, tiny):
    _, tok = tiny
    rows = _rows(pool, [("zeroeval/gsm/0", MODELS, "agent"), ("zeroeval/gsm/1", MODELS, "simple")])
    lm = ScriptedLM(tok, [[_call(MINI), _select(MINI)], [_call(O1)]])
    agent, simple = play_episodes(lm, tok, rows, pool, SETTINGS, RewardConfig(lam=30.0))
    end = tok.convert_tokens_to_ids("<|im_end|>")
    turn1 = tok.encode(_call(MINI), add_special_tokens=False) + [end]
    turn2 = tok.encode(_select(MINI), add_special_tokens=False) + [end]
    answer = pool.call(MINI, rows[0].query, "Solve it.")
    shown = format_tool_result(MINI, answer, SETTINGS.max_tool_chars)  # clipped to max_tool_chars
    suffix = tool_suffix_ids(tok, [tool_message(MINI, shown)])
    assert agent.completion_ids == turn1 + suffix + turn2  # ids concatenated, never re-tokenized
    assert agent.env_mask == [1] * len(turn1) + [0] * len(suffix) + [1] * len(turn2)
    masked = tok.decode([t for t, m in zip(agent.completion_ids, agent.env_mask) if m == 0])
    assert masked.startswith("\n<|im_start|>user\n<tool_response>\n") and masked.endswith("<|im_start|>assistant\n")
    assert "[...]" in masked and "x" * 200 not in masked  # the router read the clipped answer: its end
    assert "The answer is 12.\n</tool_response>" in masked
    assert agent.episode.ending == "selected" and agent.episode.final == LONG  # select returns it whole
    assert agent.episode.reward == pytest.approx(1 - 30 * agent.episode.usd)
    assert simple.env_mask == [1] * len(simple.completion_ids) and simple.episode.ending == "called"
    # the second turn continued from exactly prompt + first turn + tool tokens; the simple row was done by then
    assert lm.live_rows == [[0, 1], [0]] and lm.seen[1][0] == agent.prompt_ids + turn1 + suffix


def test_a_runaway_turn_is_cut_and_earns_nothing(pool, tiny):
    _, tok = tiny
    rows = _rows(pool, [("zeroeval/gsm/0", MODELS, "simple")])
    settings = replace(SETTINGS, turn_tokens=8)
    out = play_episodes(ScriptedLM(tok, [[_call(MINI)]]), tok, rows, pool, settings, RewardConfig())
    ep = out[0].episode
    assert ep.ending == "invalid" and "turn cut" in ep.invalid_reason and ep.reward == 0
    assert len(out[0].completion_ids) == 8 and out[0].env_mask == [1] * 8


def test_the_rollout_survives_garbage_from_a_real_model(pool, tiny):
    path, tok = tiny
    model, _ = load_router(path, device="cpu")
    rows = _rows(pool, [("zeroeval/gsm/0", MODELS, "agent"), ("zeroeval/gsm/1", (MINI, O1), "simple")]) * 3
    torch.manual_seed(0)
    out = play_episodes(model, tok, rows, pool, SETTINGS, RewardConfig())
    assert len(out) == 6 and all(r.episode.reward == 0 for r in out)  # random weights: nothing valid, no crash
    assert all(len(r.completion_ids) == len(r.env_mask) <= SETTINGS.max_completion_length for r in out)


# ---------------------------------------------------------------- group statistics
def test_group_stats_count_zero_variance_groups():
    rewards = [0, 0, 0, 0, 1, 0.9, 0, 0, 0.5, 0.5, 0.5, 0.5]
    stats = group_stats(rewards, num_generations=4)
    assert stats["frac_reward_zero_std"] == pytest.approx(2 / 3)  # the all-0 and the all-0.5 group
    assert stats["reward"] == pytest.approx(np.mean(rewards))
    assert group_stats([1, 0, 1, 0], 2)["frac_reward_zero_std"] == 0.0


def test_episode_metrics_per_batch():
    m = episode_metrics(scores=[1, 0, 1, 0], usd=[0.1, 0.2, 0.0, 0.1], calls=[[MINI], [O1, MINI], [], [O1]],
                        endings=["called", "selected", "direct", "invalid"], allowed=[MODELS] * 4)
    assert m["accuracy"] == 0.5 and m["usd_per_query"] == pytest.approx(0.1) and m["calls_per_query"] == 1.0
    assert m["valid_rate"] == 0.75 and m["direct_rate"] == 0.25
    assert (m[f"share/{MINI}"], m[f"share/{O1}"], m[f"share/{FLASH}"]) == (0.5, 0.5, 0.0)


def test_our_zero_variance_share_is_per_group_whatever_the_reward_scaling():
    from xrouter_lite.training.grpo import episode_reward, group_zero_std

    flags = group_zero_std(["a", "a", "b", "b", "c", "c"], [1.0, 1.0, 0.0, 0.9, 0.0, 0.0])
    assert flags == [True, True, False, False, True, True]
    logged = {}
    episode_reward(None, None, [1.0] * 6, log_metric=logged.__setitem__, episode_group_zero_std=flags)
    assert logged["episode/frac_zero_std"] == pytest.approx(4 / 6)


def test_rows_offer_the_full_pool_and_repriced_models_as_configured(pool):
    train = pool.queries(split="train")
    full, stats = training_rows(pool, train, replace(SETTINGS, full_pool_share=1.0), seed=0)
    assert all(r.allowed == tuple(MODELS) for r in full) and stats["full_pool_rows"] == len(full)
    jittered, stats = training_rows(pool, train, replace(SETTINGS, price_jitter=4.0, jitter_share=1.0), seed=0)
    assert stats["repriced_rows"] > 0 and all(0.25 <= f <= 4 for r in jittered for _, f in r.prices)
    assert not any(r.prices for r in training_rows(pool, train, SETTINGS, seed=0)[0])  # off by default


def test_a_repriced_row_shows_and_charges_its_prices(pool, tiny):
    _, tok = tiny
    q = pool.queries(split="train")[0]
    row = GRPORow("r0", q, tuple(MODELS), "simple", ((O1, 0.01),))
    lm = ScriptedLM(tok, [[_call(O1)]])
    (out,) = play_episodes(lm, tok, [row], pool, SETTINGS, RewardConfig(lam=30.0))
    assert out.episode.usd == pytest.approx(pool.call(O1, q, "Solve it.").usd * 0.01, rel=0.05)
    o1_tool = next(t for t in out.episode.tools if t["function"]["name"] == tool_name(O1))
    assert "$0.03 in / $0.12 out" in o1_tool["function"]["description"]  # what the router read


def test_rollout_exceptions_are_counted_and_stop_the_run_above_the_limit(pool, tiny):
    from xrouter_lite.training.grpo import RolloutError, RolloutErrors

    _, tok = tiny
    rows = _rows(pool, [(q.id, MODELS, "simple") for q in pool.queries(split="train")[:4]])

    def broken_on_q0(query, text):
        if query.id == "zeroeval/gsm/0":
            raise ZeroDivisionError("a grader bug")
        return 1.0

    errors = RolloutErrors(max_rate=0.5)
    outs = play_episodes(ScriptedLM(tok, [[_call(MINI)]] * 4), tok, rows, pool, SETTINGS, RewardConfig(lam=30.0),
                         grader=broken_on_q0, errors=errors)
    assert errors.errors == 1 and errors.episodes == 4 and "ZeroDivisionError: a grader bug" in errors.first
    assert outs[0].episode.invalid and "rollout error" in outs[0].episode.invalid_reason
    errors.max_rate = 0.01  # one error is always tolerated; a second one, at 2 of 8 episodes, is not
    with pytest.raises(RolloutError, match="2 of 8 rollouts raised"):
        play_episodes(ScriptedLM(tok, [[_call(MINI)]] * 4), tok, rows, pool, SETTINGS, RewardConfig(lam=30.0),
                      grader=broken_on_q0, errors=errors)


# ---------------------------------------------------------------- short TRL runs
def _simple_rows(pool):
    return _rows(pool, [(q.id, MODELS, "simple") for q in pool.queries(split="train")[:4]])


def _weights(path):
    model, _ = load_router(path, device="cpu")
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _max_change(a: dict, b: dict) -> float:
    return max((a[n] - b[n]).abs().max().item() for n in a)


def test_full_parameter_grpo_steps_run_log_and_save(pool, chatty, tmp_path):
    path = chatty
    log = train_grpo(path, None, _simple_rows(pool), pool, tmp_path / "out", RUN, device="cpu", grader=even_length,
                     info={"mode": "simple"}, progress=False)
    assert log["step"].tolist() == [1, 2]
    for col in ("reward", "reward_std", "frac_reward_zero_std", "episode/accuracy", "episode/usd_per_query",
                "episode/calls_per_query", "episode/valid_rate", f"episode/share/{MINI}", "step_time"):
        assert col in log and log[col].notna().all(), col
    assert log["frac_reward_zero_std"].between(0, 1).all() and (log["frac_reward_zero_std"] < 1).any()
    assert _max_change(_weights(tmp_path / "out"), _weights(path)) > 0  # a plain checkpoint, and it moved
    meta = (tmp_path / "out" / "router.json").read_text()
    assert '"stage": "grpo"' in meta and '"lambda": 30.0' in meta and (tmp_path / "out" / "grpo_log.csv").exists()
    assert '"base": "tiny"' in meta  # kept from the starting checkpoint's router.json
    assert (tmp_path / "out" / "checkpoints" / "checkpoint-2").is_dir()


def test_lora_grpo_moves_only_the_adapters_and_merges_on_save(pool, chatty, tmp_path):
    path = chatty
    log = train_grpo(path, None, _simple_rows(pool), pool, tmp_path / "lora", replace(RUN, lora_r=4),
                     device="cpu", grader=even_length, progress=False)
    assert len(log) == 2
    before, after = _weights(path), _weights(tmp_path / "lora")  # merged on save: a plain model again
    assert set(after) == set(before) and _max_change(after, before) > 0
    assert _max_change({n: after[n] for n in after if "embed" in n or "norm" in n},
                       {n: before[n] for n in before if "embed" in n or "norm" in n}) == 0  # frozen: untouched


def test_qlora_grpo_steps_run_on_cpu(pool, chatty, tmp_path):
    pytest.importorskip("bitsandbytes")
    path = chatty
    log = train_grpo(path, None, _simple_rows(pool), pool, tmp_path / "qlora", replace(RUN, lora_r=4, steps=1),
                     load_in_4bit=True, device="cpu", grader=even_length, progress=False)
    assert log["step"].tolist() == [1]
    assert (tmp_path / "qlora" / "adapter_config.json").exists()  # 4-bit base: the adapter is saved, not merged
    assert '"adapter_only": true' in (tmp_path / "qlora" / "router.json").read_text()


def test_a_run_without_the_router_contract_is_refused_before_it_starts(pool, tiny, tmp_path):
    path, _ = tiny  # a bare checkpoint: no router.json to inherit mode, base and source from
    with pytest.raises(ValueError, match="router info lacks"):
        train_grpo(path, None, _simple_rows(pool), pool, tmp_path / "out", RUN, device="cpu")
    assert not (tmp_path / "out").exists()


def test_4bit_without_lora_is_refused(pool, chatty, tmp_path):
    with pytest.raises(ValueError, match="QLoRA needs LoRA"):
        train_grpo(chatty, None, _simple_rows(pool), pool, tmp_path, RUN, load_in_4bit=True, device="cpu")


def test_resume_from_a_checkpoint_continues_the_same_run(pool, chatty, tmp_path, monkeypatch):
    import shutil

    import xrouter_lite.training.grpo as grpo

    sampled = []  # the completion ids of every rollout batch, in order

    def spy(*args, **kwargs):
        out = play_episodes(*args, **kwargs)
        sampled.append([r.completion_ids for r in out])
        return out

    monkeypatch.setattr(grpo, "play_episodes", spy)
    path, rows, settings = chatty, _simple_rows(pool), replace(RUN, steps=3, save_steps=1)
    kw = dict(device="cpu", grader=even_length, progress=False, seed=1)
    full = train_grpo(path, None, rows, pool, tmp_path / "a", settings, **kw)
    uninterrupted, sampled[:] = list(sampled), []
    # an interrupted run: only its checkpoint after step 2 survived; resume from it to the end
    shutil.copytree(tmp_path / "a" / "checkpoints" / "checkpoint-2", tmp_path / "b" / "checkpoints" / "checkpoint-2")
    resumed = train_grpo(path, None, rows, pool, tmp_path / "b", settings, **kw,
                         resume_from_checkpoint=str(tmp_path / "b" / "checkpoints" / "checkpoint-2"))
    assert resumed["step"].tolist() == [1, 2, 3]  # the checkpoint's history, then the resumed step
    assert sampled == uninterrupted[2:]  # step 3 sampled exactly what the uninterrupted run sampled
    assert resumed["reward"].tolist() == full["reward"].tolist()
    # same data, same weights going in: the update agrees up to float summation order
    assert resumed["grad_norm"].iloc[-1] == pytest.approx(full["grad_norm"].iloc[-1], rel=1e-3)


def test_save_router_writes_the_artifact_contract(tiny, tmp_path):
    path, tok = tiny
    model, _ = load_router(path, device="cpu")
    info = {"mode": "agent", "max_turns": 3, "base": "tiny", "source": "zeroeval", "lambda": 3.0, "seed": 2}
    with pytest.raises(ValueError, match="lacks \\['base', 'max_turns'\\]"):
        save_grpo_router(model, tok, tmp_path / "bad", {"mode": "agent", "source": "zeroeval"})
    assert not (tmp_path / "bad" / "router.json").exists()
    save_grpo_router(model, tok, tmp_path, info)

    meta = json.loads((tmp_path / "router.json").read_text())
    assert {k: meta[k] for k in ("mode", "max_turns", "base", "stage", "lambda", "source", "seed")} == {
        "stage": "grpo", **info}
    reloaded, _ = load_saved_router(tmp_path, device="cpu")
    assert sum(p.numel() for p in reloaded.parameters()) == sum(p.numel() for p in model.parameters())


def test_grpo_settings_follow_the_sft_routers_contract():
    """GRPO rollouts must look like the SFT traces: answer clipping, answer check, held-out models, stated λ."""
    base = GRPOSettings(max_tool_chars=999, answer_notes=False, lambda_grid=(1.0, 10.0, 1000.0))
    reads = settings_for_sft(base, {"tool_result_chars": 64, "answer_notes": True, "held_out": ["m-new"],
                                    "lambda_in_prompt": True})
    assert (reads.max_tool_chars, reads.answer_notes, reads.held_out) == (64, True, ("m-new",))
    assert reads.state_lambda and reads.lambda_grid == (1.0, 10.0, 1000.0)
    blind = settings_for_sft(base, {})  # an old router.json: defaults, and no λ a router cannot read
    assert (blind.max_tool_chars, blind.answer_notes, blind.held_out) == (999, False, ())
    assert not blind.state_lambda and blind.lambda_grid == ()
