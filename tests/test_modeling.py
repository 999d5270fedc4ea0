"""The router LM: tiny local model (tokenizer, chat template, save/load) and `load_router` (LoRA, 4-bit)."""

from __future__ import annotations

import json
import os
import unicodedata

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is built locally; a download attempt is a bug

from xrouter_lite.training import modeling  # noqa: E402
from xrouter_lite.training.modeling import (SPECIAL_TOKENS, TOOL_TOKENS, assistant_mask,  # noqa: E402
                                            build_tiny_router, load_router, pick_device, qwen25_chat_template)

TRICKY = [
    "Ünïcödé café, naïve façade; 東京タワー, Ελληνικά, emoji 😀👍🏽, and a combining e\u0301 (NFC folds it).",
    "Digits 1234567890, 3.14159, -42, $0.15 / 1M tokens, 128000, 1e-3 and 2**10.",
    '{"name": "call_gpt_4o_mini", "arguments": {"optimized_system_prompt": "Be brief.", "temperature": 0.7}}',
    "<tool_call>\n{\"name\": \"select_response\", \"arguments\": {}}\n</tool_call><|im_end|>\n",
    "<|im_start|>user\n<tool_response>\n42\n</tool_response><|im_end|>\t\r\n  trailing spaces   ",
    "def f(x):\n    return x  # code\n\n\n",
]
TOOLS = [
    {"type": "function", "function": {
        "name": "call_gpt_4o_mini", "description": "Ask gpt-4o-mini (budget tier). Price: $0.15 / $0.60 per 1M tokens.",
        "parameters": {"type": "object", "properties": {"optimized_system_prompt": {"type": "string"}},
                       "required": ["optimized_system_prompt"]}}},
    {"type": "function", "function": {
        "name": "select_response", "description": "Return a called model's answer.",
        "parameters": {"type": "object", "properties": {"model_call_name": {"type": "string"}},
                       "required": ["model_call_name"]}}},
]
CALL = {"type": "function", "function": {"name": "call_gpt_4o_mini",
                                         "arguments": {"optimized_system_prompt": "Solve it."}}}
SELECT = {"type": "function", "function": {"name": "select_response",
                                           "arguments": {"model_call_name": "call_gpt_4o_mini"}}}
MESSAGES = [
    {"role": "system", "content": "You are a cost-aware router."},
    {"role": "user", "content": "What is 17 * 3?"},
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "name": "call_gpt_4o_mini", "content": "51"},
    {"role": "assistant", "content": "", "tool_calls": [SELECT]},
]
# What the assistant wrote, as the Qwen2.5 training template marks it (its newline after `assistant` included)
ASSISTANT_TEXT = ('\n<tool_call>\n{"name": "call_gpt_4o_mini", "arguments": {"optimized_system_prompt": "Solve it."}}'
                  '\n</tool_call><|im_end|>\n'
                  '\n<tool_call>\n{"name": "select_response", "arguments": {"model_call_name": "call_gpt_4o_mini"}}'
                  '\n</tool_call><|im_end|>\n')

CORPUS = TRICKY * 10 + [json.dumps(TOOLS)] * 10 + ["What is 17 * 3? The answer is 51."] * 10


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny router checkpoint saved to disk (seconds to build): (dir, model, tokenizer)."""
    out = tmp_path_factory.mktemp("tiny")
    model, tok = build_tiny_router(CORPUS, out, vocab_size=600, hidden_size=64, layers=2, heads=4, seed=0)
    return out, model, tok


def test_tokenizer_reloads_with_identical_ids(tiny):
    from transformers import AutoTokenizer

    out, _, tok = tiny
    again = AutoTokenizer.from_pretrained(out)
    for text in TRICKY:
        ids = tok(text)["input_ids"]
        assert again(text)["input_ids"] == ids, text
        assert again.decode(ids) == unicodedata.normalize("NFC", text)  # byte-level: lossless up to NFC


def test_tokenizer_training_is_deterministic(tiny):
    _, _, tok = tiny
    again = modeling.build_tokenizer(CORPUS, vocab_size=600)
    assert again.get_vocab() == tok.get_vocab()


def test_special_and_tool_tokens_are_single_ids_after_the_bpe_vocab(tiny):
    out, _, tok = tiny
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in SPECIAL_TOKENS + TOOL_TOKENS]
    assert ids == [[i] for i in range(len(tok) - 7, len(tok))]
    assert (tok.eos_token, tok.pad_token, tok.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    # tool-call tags survive skip_special_tokens (the parser needs them); chat markers do not
    text = tok.decode(tok("<|im_start|><tool_call>x</tool_call><|im_end|>")["input_ids"], skip_special_tokens=True)
    assert text == "<tool_call>x</tool_call>"


def test_tokenizer_uses_qwen2_normalizer_and_pretokenizer(tiny):
    from transformers import Qwen2TokenizerFast

    _, _, tok = tiny
    ours = json.loads(tok.backend_tokenizer.to_str())
    qwen2 = json.loads(Qwen2TokenizerFast().backend_tokenizer.to_str())
    assert ours["normalizer"] == qwen2["normalizer"] == {"type": "NFC"}
    assert ours["pre_tokenizer"] == qwen2["pre_tokenizer"]
    assert [p["type"] for p in ours["pre_tokenizer"]["pretokenizers"]] == ["Split", "ByteLevel"]
    assert ours["decoder"]["type"] == "ByteLevel"


def test_chat_template_is_qwen25_and_renders_tools_calls_and_responses(tiny):
    _, _, tok = tiny
    assert tok.chat_template == qwen25_chat_template()  # byte-identical: TRL recognises it (SFT masks, GRPO parser)
    text = tok.apply_chat_template(MESSAGES, tools=TOOLS, tokenize=False)
    assert text.startswith("<|im_start|>system\nYou are a cost-aware router.\n\n# Tools\n")
    assert "<tools>\n" + "\n".join(json.dumps(t, ensure_ascii=False) for t in TOOLS) + "\n</tools>" in text
    assert ('<|im_start|>assistant\n<tool_call>\n{"name": "call_gpt_4o_mini", "arguments": '
            '{"optimized_system_prompt": "Solve it."}}\n</tool_call><|im_end|>\n') in text
    assert "<|im_start|>user\n<tool_response>\n51\n</tool_response><|im_end|>\n" in text
    prompt = tok.apply_chat_template(MESSAGES[:2], tools=TOOLS, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>user\nWhat is 17 * 3?<|im_end|>\n<|im_start|>assistant\n")


def test_assistant_mask_marks_exactly_the_assistant_tokens(tiny):
    _, _, tok = tiny
    ids, mask = assistant_mask(tok, MESSAGES, TOOLS)
    assert ids == tok.apply_chat_template(MESSAGES, tools=TOOLS, tokenize=True, return_dict=True)["input_ids"]
    assert tok.decode([i for i, m in zip(ids, mask) if m]) == ASSISTANT_TEXT
    assert tok.decode([i for i, m in zip(ids, mask) if not m]).endswith("<|im_start|>assistant")


def test_trl_sft_assistant_only_loss_trains_on_assistant_tokens_only(tiny, tmp_path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    out, _, tok = tiny
    model, tok = load_router(out, device="cpu")
    # tools as a JSON string and use_json: Arrow would otherwise merge the two calls' argument keys and fill
    # the missing ones with null, which the template then renders into the training text
    rows = [{"messages": MESSAGES, "tools": json.dumps(TOOLS)}] * 4
    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, activation_checkpointing=False,
                     assistant_only_loss=True, max_length=1024, per_device_train_batch_size=2, max_steps=2,
                     learning_rate=1e-3, report_to="none", save_strategy="no", disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=args, processing_class=tok,
                         train_dataset=Dataset.from_list(rows, on_mixed_types="use_json"))
    example = trainer.train_dataset[0]
    assert tok.decode([i for i, y in zip(example["input_ids"], example["labels"]) if y != -100]) == ASSISTANT_TEXT
    assert trainer.train().training_loss > 0


def test_trl_parses_tool_calls_with_the_tiny_tokenizer_as_grpo_does(tiny):
    from transformers import AutoTokenizer
    from trl.chat_template_utils import add_response_schema, is_chat_template_prefix_preserving

    out, _, _ = tiny
    tok = add_response_schema(AutoTokenizer.from_pretrained(out))  # raises for a template TRL does not know
    assert is_chat_template_prefix_preserving(tok)  # GRPO's multi-turn tool loop needs it
    prompt = tok.apply_chat_template(MESSAGES[:2], tools=TOOLS, tokenize=False, add_generation_prompt=True)
    text = '<tool_call>\n{"name": "call_gpt_4o_mini", "arguments": {"optimized_system_prompt": "Solve it."}}\n</tool_call>'
    assert tok.parse_response(text + "<|im_end|>", prefix=prompt)["tool_calls"] == [CALL]


def test_model_save_load_gives_identical_logits(tiny):
    from transformers import AutoModelForCausalLM

    out, model, tok = tiny
    again = AutoModelForCausalLM.from_pretrained(out)
    x = torch.tensor([tok(TRICKY[0])["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model.eval()(x).logits, again.eval()(x).logits)
    assert again.config.tie_word_embeddings and again.lm_head.weight is again.model.embed_tokens.weight
    assert again.generation_config.eos_token_id == tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])


def test_generation_from_a_tool_prompt_stops_at_the_token_budget(tiny):
    out, _, _ = tiny
    model, tok = load_router(out, device="cpu")
    enc = tok.apply_chat_template(MESSAGES[:2], tools=TOOLS, add_generation_prompt=True,
                                  return_dict=True, return_tensors="pt")
    new = model.generate(**enc, max_new_tokens=8, do_sample=False)[0, enc["input_ids"].shape[1]:]
    assert 1 <= len(new) <= 8 and isinstance(tok.decode(new, skip_special_tokens=True), str)


def test_load_router_with_lora_trains_only_the_adapters(tiny):
    out, _, _ = tiny
    model, _ = load_router(out, lora={"r": 4, "alpha": 8}, device="cpu")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    targets = {n.split(".")[-4] for n in trainable}  # ...<module>.lora_A.default.weight
    assert targets == set(modeling.QWEN2_LORA_TARGETS)


def test_load_router_without_lora_trains_every_parameter(tiny):
    out, _, _ = tiny
    model, _ = load_router(out, device="cpu")
    assert all(p.requires_grad for p in model.parameters())


def test_load_router_4bit_on_cpu_quantises_the_linear_layers(tiny):
    bnb = pytest.importorskip("bitsandbytes")
    out, _, tok = tiny
    model, _ = load_router(out, load_in_4bit=True, lora={"r": 4}, device="cpu")
    quantised = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantised) == 2 * len(modeling.QWEN2_LORA_TARGETS)  # 2 layers x 7 projections
    assert quantised[0].weight.quant_state.quant_type == "nf4"
    x = tok("What is 17 * 3?", return_tensors="pt")
    loss = model(**x, labels=x["input_ids"]).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="4-bit QLoRA on a GPU needs CUDA")
def test_load_router_4bit_on_cuda(tiny):
    out, _, tok = tiny
    model, _ = load_router(out, load_in_4bit=True, lora={"r": 4}, device="cuda")
    x = tok("What is 17 * 3?", return_tensors="pt").to("cuda")
    assert torch.isfinite(model(**x, labels=x["input_ids"]).loss)
    assert model.get_base_model().model.layers[0].mlp.up_proj.base_layer.weight.device.type == "cuda"


def test_pick_device_falls_back_to_cpu_fp32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device(verbose=False) == ("cpu", torch.float32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pick_device_prefers_cuda_with_bf16_where_supported():
    device, dtype = pick_device(verbose=False)
    native_bf16 = torch.cuda.get_device_capability()[0] >= 8  # a T4 (7.5) only emulates bf16
    assert device == "cuda" and dtype == (torch.bfloat16 if native_bf16 else torch.float16)


def test_pick_device_prints_once(capsys, monkeypatch):
    monkeypatch.setattr(modeling, "_announced", False)
    pick_device()
    pick_device()
    assert capsys.readouterr().out.count("device:") == 1


def test_describe_device_names_device_and_versions():
    line = modeling.describe_device()
    assert pick_device(verbose=False)[0] in line
    for lib in ("torch", "transformers", "trl", "peft", "bitsandbytes"):
        assert lib in line


def test_tiny_is_built_not_loaded():
    with pytest.raises(ValueError, match="build_tiny_router"):
        load_router("tiny")
