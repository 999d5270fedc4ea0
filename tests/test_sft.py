"""The SFT warm-up: tokenizer corpus, traces (no test queries), assistant-only masks, a loss that falls, saving,
the 4-bit + LoRA path, and the LM-router evaluation row. Everything runs on a small synthetic replay pool."""

from __future__ import annotations

import json
import os
import unicodedata
from dataclasses import replace

import pandas as pd
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is built locally; a download attempt is a bug

from synthetic import texts_in_split  # noqa: E402
from xrouter_lite.pool.core import ModelSpec, Query, ReplayPool  # noqa: E402
from xrouter_lite.pool.splits import split_of  # noqa: E402
from xrouter_lite.profiles import SFTSettings, get_profile  # noqa: E402
from xrouter_lite.routing.episode import run_episode, run_episodes  # noqa: E402
from xrouter_lite.routing.protocol import parse_turn  # noqa: E402
from xrouter_lite.training import sft as S  # noqa: E402
from xrouter_lite.training.evaluation import episode_row, format_stats, sampled_subpools  # noqa: E402
from xrouter_lite.training.modeling import load_router  # noqa: E402
from xrouter_lite.training.traces import build_traces, make_trace  # noqa: E402

SPECS = {m.id: m for m in [
    ModelSpec("tiny-llm", 0.05, 0.10, tier="budget", context=8192, description="A small open model."),
    ModelSpec("mid-llm.2", 0.50, 1.50, tier="standard", context=32768),
    ModelSpec("big-llm", 3.00, 15.00, tier="premium", context=128000, description="A frontier model."),
]}
# A few tiny model sizes: seconds to build and to train, big enough for the loss to fall.
TINY = SFTSettings(vocab_size=400, hidden_size=32, layers=1, heads=2, full_steps=30, full_lr=3e-3, lora_steps=6,
                   lora_lr=3e-3, lora_r=4, batch_size=4, tool_result_chars=80, max_length=2048)


def _questions(split: str, n: int) -> list[str]:
    """n arithmetic questions whose text hashes to `split`."""
    return texts_in_split(split, n, lambda i: f"Tom has {i} apples and buys {i % 7 + 2} more. "
                                              "How many apples does he have now?")


@pytest.fixture(scope="module")
def pool() -> ReplayPool:
    """12 train, 4 validation and 2 test GSM-style queries answered by three priced models."""
    rows = []
    for split, n in (("train", 12), ("validation", 4), ("test", 2)):
        for j, text in enumerate(_questions(split, n)):
            qid = f"synthetic/gsm/{split}-{j}"
            gold = str(int(text.split()[2]) + int(text.split()[6]))
            for k, (model, spec) in enumerate(SPECS.items()):
                right = (j + k) % 3 != 0 or model == "big-llm"  # the big model is always right
                value = gold if right else int(gold) + 1  # a ZeroEval-style answer: reasoning, then the final answer
                answer = f'```json\n{{"reasoning": "Adding the apples step by step.", "answer": "{value}"}}\n```'
                rows.append({"query_id": qid, "source": "synthetic", "task": "gsm", "category": "", "question": text,
                             "gold": gold, "model": model, "response": answer * (3 if k == 1 else 1),
                             "correct": float(right), "in_tokens": 60, "out_tokens": 40,
                             "usd": (60 * spec.price_in + 40 * spec.price_out) / 1e6})
    return ReplayPool(pd.DataFrame(rows), SPECS)


@pytest.fixture(scope="module")
def base(pool, tmp_path_factory):
    """A tiny base built the way notebook 02 builds it: (artifacts dir, profile, model, tokenizer)."""
    artifacts = tmp_path_factory.mktemp("artifacts")
    profile = replace(get_profile("smoke"), sft=TINY)
    model, tok = S.build_or_load_base(profile, artifacts, pool, pool.queries("train"), device="cpu")
    return artifacts, profile, model, tok


@pytest.fixture(scope="module")
def traces(pool):
    return build_traces(pool, pool.queries("train"), seed=0, agent_share=0.5, tool_result_chars=TINY.tool_result_chars)


def test_tokenizer_round_trips_our_text(pool, base):
    _, _, _, tok = base
    texts = S.tiny_router_texts(pool, pool.queries("train"), settings=TINY)
    assert any("<tools>" in t and "call_mid_llm_2" in t for t in texts)  # rendered traces with the tool schemas
    for text in texts[:3] + texts[-3:] + [pool.queries("validation")[0].text]:
        assert tok.decode(tok(text)["input_ids"]) == unicodedata.normalize("NFC", text)


def test_tool_names_are_single_tokens_that_decode_back(pool, base):
    _, _, model, tok = base
    names = S.tool_names(pool, pool.queries("train"))
    assert names[-1] == "select_response" and len(names) == len(SPECS) + 1
    text = '<tool_call>\n{"name": "call_mid_llm_2", "arguments": {"model_call_name": "call_big_llm"}}\n</tool_call>'
    ids = tok(text)["input_ids"]
    assert {"call_mid_llm_2", "call_big_llm"} <= set(tok.convert_ids_to_tokens(ids))
    assert tok.decode(ids, skip_special_tokens=True) == text  # non-special: the parser still sees them
    assert model.config.vocab_size >= len(tok) and model.config.vocab_size % 64 == 0


def test_prompts_read_each_tool_as_a_few_tokens_with_its_price_as_text(pool, base, traces):
    _, _, _, tok = base
    texts = S.protocol_texts(pool, pool.queries("train"))
    assert len(texts["identities"]) == len(SPECS) and len(texts["names"]) == len(SPECS) + 1  # + select_response
    for t in traces[:4]:
        text = tok.apply_chat_template(t["messages"], tools=t["tools"], tokenize=False)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text  # the tokens are a shortcut, never a change of the text
        tokens = tok.convert_ids_to_tokens(ids)
        for tool in t["tools"]:
            name = tool["function"]["name"]
            if name == "select_response":  # its enum varies with the sub-pool: BPE pieces
                continue
            at = tokens.index(name)  # opening, name, identity, tier: one token each; then the price in BPE pieces
            spec = next(s for s in SPECS.values() if s.tool == name)
            assert tokens[at + 2] == f"{spec.tier} tier; " and tokens[at + 1] in texts["identities"]
            price = tokens[at + 3: tokens.index(next(x for x in tokens[at + 3:] if x.startswith('", "parameters"')), at)]
            assert len(price) >= 6 and any(ch.isdigit() for ch in "".join(price))  # digits the router can read
            assert tok.decode(ids[at - 1: at + 3 + len(price) + 1]) == json.dumps(tool, ensure_ascii=False)
        assert t["messages"][0]["content"] in tokens  # the system prompt is one token
    bpe_only = len(json.dumps(traces[0]["tools"])) // 4  # what the schemas alone would cost in BPE pieces
    assert len(tok.apply_chat_template(traces[0]["messages"], tools=traces[0]["tools"], tokenize=True,
                                       return_dict=False)) < bpe_only


def test_tokenizer_corpus_refuses_test_queries(pool):
    with pytest.raises(ValueError, match="test-split"):
        S.tiny_router_texts(pool, pool.queries("train") + pool.queries("test"))


def test_traces_never_include_test_queries(pool, traces):
    test_ids = {q.id for q in pool.queries("test")}
    assert traces and not {t["query_id"] for t in traces} & test_ids
    assert all(split_of(t["messages"][1]["content"]) == "train" for t in traces)
    with pytest.raises(ValueError, match="test-split"):
        build_traces(pool, pool.queries("train")[:3] + pool.queries("test")[:1])


def test_hindsight_traces_label_the_cheapest_correct_model_of_the_subpool(pool):
    for t in build_traces(pool, pool.queries("train"), seed=0, labels="hindsight"):
        correct, usd = pool.outcomes([t["query_id"]] * len(t["allowed"]), t["allowed"])
        right = [(u, m) for c, u, m in zip(correct, usd, t["allowed"]) if c]
        assert t["label"] in t["allowed"]
        if right:
            assert t["label"] == min(right)[1]


def test_expected_reward_traces_follow_the_best_plan_of_the_subpool(pool):
    from xrouter_lite.routing.reward import RewardConfig
    from xrouter_lite.training.traces import PlanValues

    queries = pool.queries("train")
    values = PlanValues(pool, queries, RewardConfig(lam=30.0))
    traces = build_traces(pool, queries, seed=0, lam=30.0, label_temperature=0.0, full_pool_share=0.5)
    assert sum(len(t["allowed"]) == len(SPECS) for t in traces) >= 3  # the full pool is offered often
    for t in traces:
        plan, _ = values.best(t["task"], t["allowed"], t["mode"])
        assert t["plan"] == plan.to_dict()
        assert t["mode"] == "agent" or len(plan.first) == 1  # simple mode makes one call


def test_chat_template_renders_tool_schemas_and_calls(base, traces):
    _, _, _, tok = base
    trace = next(t for t in traces if t["mode"] == "agent" and len(t["plan"]["first"]) == 1)
    text = tok.apply_chat_template(trace["messages"], tools=trace["tools"], tokenize=False)
    for tool in trace["tools"]:
        assert json.dumps(tool, ensure_ascii=False) in text
    label_tool = "call_" + trace["plan"]["first"][0].replace("-", "_").replace(".", "_")
    assert f'<|im_start|>assistant\n<tool_call>\n{{"name": "{label_tool}"' in text
    assert '{"name": "select_response", "arguments": {"model_call_name": "' + label_tool in text
    assert "<|im_start|>user\n<tool_response>\n" + label_tool + " answered:\n" in text


def test_dataset_rows_render_exactly_like_the_traces(base, traces):
    """Arrow fills missing keys with nulls; the rendered training text must not change because of it."""
    _, _, _, tok = base
    ds = S.sft_dataset(traces)
    for t, row in zip(traces, ds):
        assert (tok.apply_chat_template(row["messages"], tools=json.loads(row["tools"]), tokenize=False)
                == tok.apply_chat_template(t["messages"], tools=t["tools"], tokenize=False))


def test_traces_are_what_the_episode_runner_shows_the_router(pool, traces):
    """Replaying a trace's assistant turns through `run_episode` (same clip) gives the trace's conversation."""
    for t in traces[:6]:
        turns = iter([m["content"] for m in t["messages"] if m["role"] == "assistant"])
        q = next(q for q in pool.queries("train") if q.id == t["query_id"])
        ep = run_episode(lambda messages, tools: next(turns), q, pool, t["allowed"], mode=t["mode"],
                         max_tool_chars=TINY.tool_result_chars)
        assert ep.messages[:len(t["messages"])] == t["messages"] and ep.tools == t["tools"]  # simple: + the answer
        assert ep.ending == ("selected" if t["mode"] == "agent" else "called")


def test_agreement_traces_escalate_exactly_when_the_two_answers_differ(pool):
    from xrouter_lite.routing.agreement import agree, final_answer
    from xrouter_lite.training.traces import Plan

    plan = Plan(("tiny-llm", "mid-llm.2"), "big-llm")
    seen = set()
    for q in pool.queries("train"):
        t = make_trace(pool, q, list(SPECS), plan, "agent", tool_result_chars=40, answer_notes=True)
        turns = [m["content"] for m in t["messages"] if m["role"] == "assistant"]
        same = agree(*(final_answer("gsm", pool.call(m, q).text) for m in plan.first))
        seen.add(same)
        assert turns[0].count("<tool_call>") == 2 and len(turns) == (2 if same else 3)
        assert '"model_call_name": "' + ("call_tiny_llm" if same else "call_big_llm") in turns[-1]
        note = t["messages"][4]["content"].splitlines()[-1]  # the second answer's last line: the runtime's check
        assert note == ("Same final answer as call_tiny_llm." if same else "No earlier call gave this final answer.")
    assert seen == {True, False}
    with pytest.raises(ValueError, match="agent mode"):
        make_trace(pool, pool.queries("train")[0], list(SPECS), plan, "simple")


def test_a_conditioned_trace_restates_lambda_at_a_disagreement_as_the_runtime_does(pool):
    """λ-conditioned agreement traces: the disagreement note restates the trace's λ (where the router picks whom to
    escalate to), and replaying the trace through the runtime told the same λ gives the same conversation."""
    from xrouter_lite.routing.agreement import DIFFERENT
    from xrouter_lite.routing.protocol import cost_line
    from xrouter_lite.routing.reward import RewardConfig
    from xrouter_lite.training.traces import Plan

    plan, seen = Plan(("tiny-llm", "mid-llm.2"), "big-llm"), set()
    for q in pool.queries("train"):
        t = make_trace(pool, q, list(SPECS), plan, "agent", tool_result_chars=40, answer_notes=True, lam=100.0)
        second = t["messages"][4]["content"]
        differ = second.endswith(DIFFERENT + cost_line(100.0))
        seen.add(differ)
        assert differ or second.endswith("Same final answer as call_tiny_llm.")
        turns = iter([m["content"] for m in t["messages"] if m["role"] == "assistant"])
        ep = run_episode(lambda messages, tools: next(turns), q, pool, t["allowed"], mode="agent",
                         reward_cfg=RewardConfig(lam=100.0), max_tool_chars=40, answer_notes=True, state_lambda=True)
        assert ep.messages == t["messages"]
    assert seen == {True, False}


def test_tool_results_keep_the_end_of_the_answer_in_traces(pool):
    q = pool.queries("train")[0]
    long = make_trace(pool, q, list(SPECS), "mid-llm.2", "agent", tool_result_chars=20)["messages"][3]["content"]
    answer = pool.call("mid-llm.2", q).text
    kept = answer.rstrip().removesuffix("```").rstrip()[-20:]  # the last 20 characters, closing fence dropped
    assert long == "call_mid_llm_2 answered:\n[...]" + kept and kept.endswith('"answer": "2"}')


def test_assistant_only_mask_covers_exactly_the_assistant_turns(base, traces, tmp_path):
    from trl import SFTTrainer

    _, _, _, tok = base
    model, tok = load_router(base[0] / S.TINY_BASE, device="cpu")
    args = S.sft_config(tmp_path, TINY, steps=1, lr=1e-3, progress=False)
    trainer = SFTTrainer(model=model, args=args, processing_class=tok, train_dataset=S.sft_dataset(traces[:4]))
    for t, ex in zip(traces, trainer.train_dataset):
        learned = tok.decode([i for i, y in zip(ex["input_ids"], ex["labels"]) if y != -100])
        turns = [m["content"] for m in t["messages"] if m["role"] == "assistant"]
        # TRL's training template marks each assistant turn from the newline after `<|im_start|>assistant`
        assert learned == "".join(f"\n{c}<|im_end|>\n" for c in turns)
        assert sum(y != -100 for y in ex["labels"]) < len(ex["labels"]) / 3  # the prompt is most of the text


def test_full_then_lora_sft_lowers_the_loss_and_saves_a_plain_router(pool, base, traces, tmp_path):
    artifacts, profile, _, _ = base
    model, tok = load_router(artifacts / S.TINY_BASE, device="cpu")
    full = S.train_sft(model, tok, traces, tmp_path, TINY, progress=False)
    first, last = full["loss"].iloc[:3].mean(), full["loss"].iloc[-3:].mean()
    assert last < 0.8 * first, full[["step", "loss"]]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    lora = S.train_sft(model, tok, traces, tmp_path, TINY, lora=S.lora_settings(TINY), progress=False)
    assert set(lora["stage"]) == {"lora"} and type(model).__name__ == "Qwen2ForCausalLM"  # merged, unwrapped
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())  # the merge changed weights
    log = S.stage_steps(pd.concat([full, lora], ignore_index=True))
    assert log["step"].is_monotonic_increasing
    path = S.save_router(model, tok, tmp_path / S.ROUTER_SFT, S.router_info(profile))
    info = json.loads((path / "router.json").read_text())
    assert {"mode", "max_turns", "base", "stage", "lambda", "source", "seed"} <= set(info) and info["stage"] == "sft"
    again, _ = load_router(path, device="cpu")
    x = tok("Tom has 3 apples.", return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(model.eval()(**x).logits, again.eval()(**x).logits, atol=1e-5)


def test_base_is_built_once_and_rebuilt_when_sizes_change(pool, base):
    artifacts, profile, _, _ = base
    stamp = (artifacts / S.TINY_BASE / "model.safetensors").stat().st_mtime_ns
    S.build_or_load_base(profile, artifacts, device="cpu")  # present: no pool needed, nothing rebuilt
    assert (artifacts / S.TINY_BASE / "model.safetensors").stat().st_mtime_ns == stamp
    bigger = replace(profile, sft=replace(TINY, hidden_size=48))
    with pytest.raises(ValueError, match="pass the pool"):
        S.build_or_load_base(bigger, artifacts, device="cpu")


def test_hub_path_4bit_lora_trains_adapters_on_a_local_checkpoint(pool, base, traces, tmp_path):
    """The gpu profile's path (load_router(id, load_in_4bit, lora) -> train_sft -> adapter save), on CPU."""
    bnb = pytest.importorskip("bitsandbytes")
    artifacts, profile, _, _ = base
    hub_like = replace(profile, router_model=str(artifacts / S.TINY_BASE), load_in_4bit=True,
                       sft=replace(TINY, lora_steps=2))
    model, tok = S.build_or_load_base(hub_like, artifacts, device="cpu")
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    adapters = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert adapters and all("lora_" in n for n in adapters)
    log = S.train_sft(model, tok, traces[:4], tmp_path, hub_like.sft, progress=False)
    assert set(log["stage"]) == {"lora"} and log["loss"].notna().all()
    assert any(not torch.equal(adapters[n], p.float()) for n, p in model.named_parameters() if n in adapters)
    path = S.save_router(model, tok, tmp_path / "router", S.router_info(hub_like))
    assert (path / "adapter_config.json").exists() and json.loads((path / "router.json").read_text())["adapter"]


def _scripted(kind: str):
    """A router that calls the first tool ("call"), a model outside the pool ("unknown") or answers ("direct")."""
    def router(messages, tools):
        name = tools[0]["function"]["name"] if kind == "call" else "call_not_in_pool"
        if kind == "direct":
            return "12"
        return f'<tool_call>\n{{"name": "{name}", "arguments": {{"optimized_system_prompt": "Add."}}}}\n</tool_call>'
    return router


def test_evaluation_row_has_the_baseline_fields_and_format_stats(pool):
    queries = pool.queries("validation")
    sub = sampled_subpools(pool, queries, seed=0)
    assert sub == sampled_subpools(pool, queries, seed=0) and all(len(s) >= 2 for s in sub.values())
    rows = {}
    for kind in ("call", "unknown", "direct"):
        eps = run_episodes(_scripted(kind), queries, pool, allowed=lambda q: sub[q.id], mode="simple", progress=False)
        rows[kind] = episode_row(eps, kind, lam=30.0, models=list(SPECS)) | format_stats(eps)
    for key in ("router", "n", "accuracy", "usd_per_query", "mean_reward", "calls_per_query", "model_share",
                "valid_rate", "well_formed_call_rate", "direct_rate", "invalid_reasons"):
        assert key in rows["call"]
    assert rows["call"]["well_formed_call_rate"] == 1.0 and rows["call"]["valid_rate"] == 1.0
    assert rows["call"]["calls_per_query"] == 1.0 and rows["call"]["usd_per_query"] > 0
    assert rows["unknown"]["well_formed_call_rate"] == 0.0 and rows["unknown"]["valid_rate"] == 0.0
    assert rows["unknown"]["invalid_reasons"] == {"unknown tool '…'": len(queries)}
    assert rows["direct"]["direct_rate"] == 1.0 and rows["direct"]["usd_per_query"] == 0.0
    json.dumps(rows)  # rows go to eval_sft.json as they are


def test_evaluate_lm_router_runs_the_tiny_model_through_episodes(pool, base):
    from xrouter_lite.training.evaluation import evaluate_lm_router

    _, _, model, tok = base
    queries = pool.queries("validation")
    eps, row = evaluate_lm_router(model, tok, pool, queries, mode="agent", lam=30.0, workers=4,
                                  tool_result_chars=TINY.tool_result_chars, max_new_tokens=8, progress=False)
    assert len(eps) == row["n"] == len(queries) and row["mode"] == "agent"
    assert all(ep.allowed == list(SPECS) for ep in eps)  # default: the source's full pool
    assert 0.0 <= row["well_formed_call_rate"] <= 1.0 and sum(row["endings"].values()) == len(queries)
    assert all(parse_turn(ep.messages[2]["content"], ep.allowed).kind in row["first_turn"] for ep in eps)


def test_sft_settings_exist_for_every_profile():
    for name in ("smoke", "cpu", "gpu"):
        s = get_profile(name).sft
        assert s.mode in ("simple", "agent") and s.tool_result_chars > 0 and s.batch_size >= 1
    assert get_profile("gpu").sft.lora_steps > 0  # a Hub model trains adapters only


def test_spread_keeps_every_task_where_a_prefix_would_not():  # the notebooks import subsets.spread from xrouter_lite.training
    from xrouter_lite.training.subsets import spread

    tasks = ["gsm"] * 6 + ["crux"] * 3 + ["math-l5"] * 3
    queries = [Query(f"q{i}", "zeroeval", task, "text") for i, task in enumerate(tasks)]
    picked = spread(queries, 4)
    assert len(picked) == 4 and {q.task for q in picked} == {"gsm", "crux", "math-l5"}
    assert spread(queries, None) == queries and spread(queries, 50) == queries


def test_lambda_conditioned_traces_state_the_cost_weight_and_follow_it(pool):
    traces = build_traces(pool, pool.queries("train"), seed=0, lambda_grid=(1.0, 1000.0), label_temperature=0.0,
                          full_pool_share=1.0, agent_share=0.0)
    for t in traces:
        assert t["messages"][1]["content"].endswith(f"\nCost weight: {t['lambda']:g} reward points per USD.")
    by_lam = {lam: {t["label"] for t in traces if t["lambda"] == lam} for lam in (1.0, 1000.0)}
    assert by_lam[1.0] == {"big-llm"}  # always right: worth its price when a dollar costs 1 point
    assert "big-llm" not in by_lam[1000.0]  # at 1000 points per dollar a cheaper model earns more
    plain = build_traces(pool, pool.queries("train")[:2], seed=0)
    assert not any("Cost weight" in m["content"] for m in plain[0]["messages"][:2])  # a fixed-λ router is not told
    assert "Cost weight" not in traces[0]["messages"][0]["content"]  # the system prompt is the same for every λ


def test_guided_decoding_writes_the_fixed_fragments_of_a_call_with_the_tiny_tokenizer(pool, base):
    from xrouter_lite.routing.protocol import Action, render_calls
    from xrouter_lite.training.guided import GuidedIds, allowed_next
    from xrouter_lite.training.traces import task_prompt

    _, _, _, tok = base
    ids = GuidedIds.of(tok)
    assert None not in (ids.args, ids.close, ids.end) and len(ids.prompts) >= 7
    listed = tok.convert_tokens_to_ids(S.tool_names(pool, pool.queries("train")))
    call = tok.encode(render_calls([Action("call", model="mid-llm.2",
                                           args={"optimized_system_prompt": task_prompt("gsm")})]),
                      add_special_tokens=False)
    assert len(call) == 5  # opener, name, arguments opener, the task prompt, close: one token each
    assert allowed_next(call[:1], listed, ids) == listed  # which tool: the model's choice among the listed ones
    assert allowed_next(call[:2], listed, ids) == [ids.args] and allowed_next(call[:4], listed, ids) == [ids.close]
    assert allowed_next(call[:3], listed, ids) is None  # which system prompt: the model's choice
    select = tok.encode(render_calls([Action("select", model="mid-llm.2", args={"model_call_name": "call_mid_llm_2"})]),
                        add_special_tokens=False)
    seq = call + select  # a select after the call: only the called tool, then close, then the end of the turn
    assert allowed_next(seq[:len(call) + 3], listed, ids) == [tok.convert_tokens_to_ids("call_mid_llm_2")]
    assert allowed_next(seq, listed, ids) == [ids.end]
    assert allowed_next(call, listed, ids) is None  # after a call block: another call, or the end of the turn


def test_the_tiny_tokenizer_holds_every_fixed_protocol_text_as_one_token_that_decodes_back(base):
    from xrouter_lite.routing.protocol import CALL_ARGS, CALL_CLOSE, CALL_OPENER, SELECT_ARGS

    _, _, _, tok = base
    for text in S.all_fixed_texts(lambdas=TINY.lambda_grid):
        ids = tok.encode(text, add_special_tokens=False)
        assert len(ids) == 1 and tok.decode(ids) == text, text
    assert {CALL_OPENER, CALL_ARGS, SELECT_ARGS, CALL_CLOSE} <= set(tok.get_vocab())


def test_guided_decoding_is_on_for_a_tiny_router_built_from_the_real_protocol_texts(pool, base):
    """If a protocol text changed without the tokenizer following, guided decoding would silently turn off."""
    from xrouter_lite.routing.protocol import tool_schemas
    from xrouter_lite.training.guided import GuidedIds, name_constraint

    _, _, _, tok = base
    ids = GuidedIds.of(tok)
    assert ids is not None and None not in (ids.args, ids.close, ids.end, ids.select_name)
    assert len(ids.names) == len(SPECS) + 1  # every call_* tool and select_response
    tools = tool_schemas([SPECS["tiny-llm"], SPECS["big-llm"]], "agent")
    constraint = name_constraint(tok, [tools, tools[:1]])
    assert constraint is not None and [len(row) for row in constraint.listed] == [3, 1]


def test_a_base_built_with_other_protocol_texts_is_not_reused(pool, base, monkeypatch):
    from xrouter_lite.routing import protocol

    artifacts, profile, _, _ = base
    marker = json.loads((artifacts / S.TINY_BASE / "tiny.json").read_text())
    assert marker["protocol"] == S.protocol_hash(lambdas=TINY.lambda_grid)
    monkeypatch.setattr(protocol, "SIMPLE_PROMPT", protocol.SIMPLE_PROMPT.replace("Decide once", "Decide  once"))
    assert S.protocol_hash(lambdas=TINY.lambda_grid) != marker["protocol"]  # one space more: another protocol
    with pytest.raises(ValueError, match="pass the pool"):  # not silently reused: it must be rebuilt
        S.build_or_load_base(profile, artifacts, device="cpu")
    monkeypatch.undo()
    assert S.protocol_hash(lambdas=TINY.lambda_grid) == marker["protocol"]
