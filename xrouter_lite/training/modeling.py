r"""The router LM: device choice, a tiny local Qwen2 model built offline, and Hub models with 4-bit + LoRA.

The tiny model has Qwen2's architecture, Qwen2's tokenizer pipeline and Qwen2.5's chat template, so the
notebooks and TRL treat it exactly like `Qwen/Qwen2.5-0.5B-Instruct`: only the name passed to
`load_router` changes between the CPU and the GPU profile.

    >>> import tempfile
    >>> from xrouter_lite.training.modeling import build_tiny_router, load_router
    >>> out = tempfile.mkdtemp()
    >>> texts = ["Route each query to the cheapest model that answers it correctly."] * 20
    >>> _ = build_tiny_router(texts, out, vocab_size=300, hidden_size=32, layers=1, heads=2)
    >>> model, tok = load_router(out, lora={"r": 4}, device="cpu")  # GPU: load_router(DEFAULT_HUB_ROUTER, True, {})
    >>> tools = [{"type": "function", "function": {"name": "call_gpt_4o_mini", "description": "Ask gpt-4o-mini.",
    ...           "parameters": {"type": "object", "properties": {}}}}]
    >>> prompt = tok.apply_chat_template([{"role": "user", "content": "2+2?"}], tools=tools, tokenize=False,
    ...                                  add_generation_prompt=True)
    >>> "<tools>" in prompt and prompt.endswith("<|im_start|>assistant\n")
    True
    >>> all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    True
"""

from __future__ import annotations

import importlib.resources
import json
import os
import platform
from collections.abc import Iterable
from pathlib import Path

import torch

# Qwen2.5-Instruct's chat roles and tool-call wrapping. Order fixes the ids (after the learned BPE vocab,
# as in Qwen2.5): changing it changes every saved checkpoint's ids.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Added as single non-special tokens (as Qwen2.5 does for <tool_call>): one id each, so the tiny model
# cannot half-write a tag, and `decode(skip_special_tokens=True)` keeps them for the tool-call parser.
TOOL_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
# Qwen2 attention + MLP projections: LoRA on all seven is the QLoRA paper's recipe and what TRL examples use.
QWEN2_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
DEFAULT_HUB_ROUTER = "Qwen/Qwen2.5-1.5B-Instruct"  # use "Qwen/Qwen2.5-0.5B-Instruct" on GPUs under ~12 GB
# Longest prompt + completion the tiny model accepts. RoPE has no weights, so this costs nothing until used;
# a 3-tool prompt is ~1.1k tokens and each tool response adds up to ~1.5k more.
TINY_MAX_POSITIONS = 4096

_announced = False  # pick_device prints its choice once per process, not once per call


def pick_device(verbose: bool = True) -> tuple[str, torch.dtype]:
    """The best local device (cuda -> mps -> cpu) and its training dtype; printed once per process."""
    global _announced
    if torch.cuda.is_available():
        # bf16 needs Ampere or newer (A100, L4); a T4 falls back to fp16, which TRL trains with loss scaling.
        # including_emulation=False: by default torch says "supported" on a T4 too, where bf16 is emulated (slow).
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        device, dtype = "cuda", torch.bfloat16 if bf16 else torch.float16
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device, dtype = "mps", torch.float32  # half precision training on MPS is still unreliable
    else:
        device, dtype = "cpu", torch.float32  # CPU autocast/bf16 is slower than fp32 on most laptops
    if verbose and not _announced:
        print(f"device: {device}, dtype: {str(dtype).removeprefix('torch.')}")
        _announced = True
    return device, dtype


def describe_device() -> str:
    """One line for the notebooks' versions cell: device, memory and the library versions that matter."""
    import peft
    import transformers
    import trl

    device, dtype = pick_device(verbose=False)
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        where = f"cuda ({props.name}, {props.total_memory / 2**30:.1f} GiB)"
    else:
        try:
            import psutil

            ram = f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM"
        except ImportError:  # psutil is in requirements.txt, but the line should never fail a notebook
            ram = "RAM unknown"
        where = f"{device} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {ram})"
    libs = {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
            "peft": peft.__version__}
    try:
        import bitsandbytes

        libs["bitsandbytes"] = bitsandbytes.__version__
    except ImportError:  # only the 4-bit path needs it
        libs["bitsandbytes"] = "absent"
    return f"{where}, dtype {str(dtype).removeprefix('torch.')}; " + ", ".join(f"{k} {v}" for k, v in libs.items())


def qwen25_chat_template() -> str:
    """Qwen2.5-Instruct's chat template, byte-identical to the copy TRL recognises (read from TRL's package)."""
    # Identity matters: TRL picks its assistant-masked training variant (SFT) and its tool-call parser
    # (GRPO) by comparing the template string, so an edited copy would silently lose both.
    return (importlib.resources.files("trl") / "chat_templates" / "qwen2_5.jinja").read_text(encoding="utf-8")


def training_chat_template(tokenizer) -> str:
    """The variant of the tokenizer's template with `{% generation %}` marks around assistant turns."""
    from trl.chat_template_utils import get_training_chat_template

    # None means the tokenizer's own template is already marked and prefix-preserving.
    return get_training_chat_template(tokenizer) or tokenizer.chat_template


def assistant_mask(tokenizer, messages: list[dict], tools: list[dict] | None = None) -> tuple[list[int], list[int]]:
    """Token ids of a conversation and a 0/1 mask of the tokens the assistant wrote (what SFT learns)."""
    out = tokenizer.apply_chat_template(messages, tools=tools, chat_template=training_chat_template(tokenizer),
                                        tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    return list(out["input_ids"]), list(out["assistant_masks"])


def _template_sample() -> str:
    """One rendered tool-use conversation, so the tokenizer learns the template's fixed text as few tokens."""
    from transformers.utils.chat_template_utils import render_jinja_template

    tool = {"type": "function", "function": {
        "name": "call_model", "description": "A model.",
        "parameters": {"type": "object", "properties": {"temperature": {"type": "number"}}, "required": []}}}
    messages = [
        {"role": "user", "content": "Question?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "call_model", "arguments": {"temperature": 1.0}}}]},
        {"role": "tool", "name": "call_model", "content": "Answer."},
        {"role": "assistant", "content": "Answer."},
    ]
    rendered, _ = render_jinja_template([messages], tools=[tool], chat_template=qwen25_chat_template())
    return rendered[0]


def build_tokenizer(texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2):
    """A byte-level BPE tokenizer trained on `texts`, with Qwen2's exact pipeline and Qwen2.5's chat template."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    if vocab_size < 300:
        raise ValueError(f"vocab_size={vocab_size} is too small: the 256 byte symbols and 7 added tokens come first")
    # The same normalizer and pre-tokenizer as transformers' Qwen2 tokenizer class: on reload, transformers
    # rebuilds the pipeline from that class, so any other pipeline would give different ids after a save.
    bpe = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS) - len(TOOL_TOKENS),  # room for the added tokens
        min_frequency=min_frequency,  # merges seen fewer times are noise; lower it for a very small corpus
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: any text stays encodable
        special_tokens=[], show_progress=False)
    bpe.train_from_iterator(_with_template_text(texts), trainer)
    learned = json.loads(bpe.to_str())["model"]
    vocab = dict(learned["vocab"])
    for token in SPECIAL_TOKENS + TOOL_TOKENS:  # appended after the BPE vocab, as Qwen2.5 numbers them
        vocab[token] = len(vocab)
    tok = Qwen2TokenizerFast(
        vocab=vocab, merges=[tuple(m) for m in learned["merges"]],
        unk_token=None, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",  # as Qwen2.5-Instruct
        extra_special_tokens=["<|im_start|>", "<|im_end|>"], errors="replace")
    tok.add_tokens(TOOL_TOKENS)  # already in the vocab: this only makes them match as whole, non-special tokens
    tok.chat_template = qwen25_chat_template()
    return tok


def _with_template_text(texts: Iterable[str]) -> Iterable[str]:
    """The caller's texts followed by one rendered template sample (repeated so its merges clear min_frequency)."""
    yield from texts
    sample = _template_sample()
    for _ in range(8):
        yield sample


def tiny_config(tokenizer, hidden_size: int = 192, layers: int = 3, heads: int = 4,
                max_positions: int = TINY_MAX_POSITIONS):
    """A small Qwen2Config for `tokenizer`: tied embeddings, 2 KV heads (GQA like Qwen2.5), MLP 4x wide."""
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=-(-len(tokenizer) // 64) * 64,  # rounded up to a multiple of 64, as Qwen pads its embeddings
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=max_positions,  # longest prompt+completion; raise it for long tool responses
        rope_theta=10000.0,
        tie_word_embeddings=True,  # halves the parameters of a model whose embedding table dominates its size
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )


def build_tiny_router(
    texts: Iterable[str],  # queries, tool schemas (json.dumps), model answers: what the router will read
    out_dir: str | os.PathLike,
    vocab_size: int = 4096,  # more merges = shorter prompts but a bigger embedding; ~3.5 chars/token at 4096
    hidden_size: int = 192,  # width; 128 trains ~1.5x faster but copies tool names from the prompt less reliably
    layers: int = 3,  # >= 2 so attention can copy a tool name from the tool list; 2 for the smoke profile
    heads: int = 4,  # must divide hidden_size; KV heads are half of it (grouped-query attention, as Qwen2.5)
    seed: int = 0,
):
    """Train a tokenizer on `texts`, initialise a tiny Qwen2 LM with random weights, save both to `out_dir`."""
    from transformers import Qwen2ForCausalLM

    tokenizer = build_tokenizer(texts, vocab_size=vocab_size)
    tokenizer.model_max_length = TINY_MAX_POSITIONS
    config = tiny_config(tokenizer, hidden_size=hidden_size, layers=layers, heads=heads)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    _set_generation_ids(model, tokenizer)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return model, tokenizer


def _set_generation_ids(model, tokenizer) -> None:
    """Stop generation at <|im_end|> (end of turn) or <|endoftext|>, as Qwen2.5-Instruct's generation_config does."""
    stops = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    model.generation_config.eos_token_id = stops
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = None


def lora_config(r: int = 16, alpha: int = 32, dropout: float = 0.05, target_modules: list[str] | None = None):
    """A PEFT LoraConfig for a causal LM; defaults cover Qwen2's attention and MLP projections."""
    from peft import LoraConfig

    return LoraConfig(
        r=r,  # adapter rank: capacity of the update; raise it if the loss plateaus high, lower it to save memory
        lora_alpha=alpha,  # update scale is alpha/r; keep alpha = 2r when you change r
        lora_dropout=dropout,  # regularises small SFT sets; 0 for GRPO if the reward is noisy enough already
        target_modules=target_modules or QWEN2_LORA_TARGETS,
        bias="none",
        task_type="CAUSAL_LM",
    )


def load_router(name_or_path: str | os.PathLike = DEFAULT_HUB_ROUTER, load_in_4bit: bool = False,
                lora: dict | None = None, device: str | None = None):
    """Load a router LM (local checkpoint dir or Hub id), optionally 4-bit NF4 and wrapped with LoRA adapters."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if str(name_or_path) == "tiny":
        raise ValueError("'tiny' is built, not downloaded: call build_tiny_router(texts, out_dir) first, "
                         "then load_router(out_dir)")
    device = device or pick_device()[0]
    if load_in_4bit and device not in ("cuda", "cpu"):
        raise ValueError(f"4-bit loading (bitsandbytes) runs on cuda or cpu, not {device}; pass load_in_4bit=False")
    # Frozen base weights (LoRA, 4-bit) use the device's fast dtype; weights trained directly stay fp32,
    # because AdamW updates below bf16's precision would be lost (mixed precision still runs the matmuls fast).
    frozen = load_in_4bit or lora is not None
    dtype = pick_device(verbose=False)[1] if frozen and device == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    kwargs = {"dtype": dtype}
    if load_in_4bit:
        kwargs["quantization_config"] = _nf4_config(dtype)
        kwargs["device_map"] = {"": _local_gpu() if device == "cuda" else "cpu"}  # bitsandbytes quantises while loading
    model = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
    if not load_in_4bit:
        model.to(device)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if load_in_4bit:
        from peft import prepare_model_for_kbit_training

        # Casts norms/embeddings to fp32 and lets gradients reach the adapters through frozen 4-bit layers.
        # Gradient checkpointing saves VRAM on a GPU but makes a CPU step ~4x slower, so only CUDA gets it.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=device == "cuda")
    if lora is not None:
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(**lora))
        for p in model.parameters():  # adapters train in fp32: a T4's fp16 loss scaler refuses fp16 gradients,
            if p.requires_grad and p.dtype != torch.float32:  # and bf16 Adam updates lose small steps
                p.data = p.data.float()
    return model, tokenizer


def _local_gpu() -> int:
    """This process's GPU: 0 alone, its local rank under `accelerate launch` (each process loads onto its own GPU)."""
    try:
        from accelerate import PartialState

        return PartialState().local_process_index
    except Exception:  # noqa: BLE001 - no accelerate state (a plain notebook): the first GPU
        return 0


def load_saved_router(path: str | os.PathLike, load_in_4bit: bool | None = None, device: str | None = None,
                      trainable: bool = False):
    """A router checkpoint written by `sft.save_router` (notebooks 02-03): (model, tokenizer).

    A whole model loads as it is. An adapter-only checkpoint (a 4-bit Hub base cannot take merged weights)
    loads the base its router.json names, in 4-bit when router.json says so (or `load_in_4bit`), plus the
    saved LoRA adapter, trainable when `trainable` (to continue training it).
    """
    path = Path(path)
    info_path = path / "router.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    if not (info.get("adapter") or info.get("adapter_only")):
        return load_router(path, device=device)
    from peft import PeftModel

    four_bit = info.get("load_in_4bit", False) if load_in_4bit is None else load_in_4bit
    base, tokenizer = load_router(info["base"], load_in_4bit=four_bit, device=device)
    return PeftModel.from_pretrained(base, path, is_trainable=trainable), tokenizer


def _nf4_config(compute_dtype: torch.dtype):
    """The QLoRA quantisation: NF4 weights, double-quantised constants, matmuls in `compute_dtype`."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",  # normal-float 4-bit: the QLoRA paper's best 4-bit type for weights
        bnb_4bit_use_double_quant=True,  # quantises the scales too: ~0.4 bits/param saved, no quality cost
        bnb_4bit_compute_dtype=compute_dtype,  # bf16 on A100/L4, fp16 on a T4, fp32 on CPU
    )
