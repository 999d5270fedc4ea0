"""Device check for the QLoRA path: build the tiny router, load it in 4-bit, time a few SFT steps, report peak memory.

    python -m xrouter_lite gpu-check                                 # any CUDA machine (Colab T4/L4, A100)
    python -m xrouter_lite gpu-check --device cpu --steps 3          # dry run on CPU (bitsandbytes' slow CPU kernels)
    python -m xrouter_lite gpu-check --model Qwen/Qwen2.5-0.5B-Instruct   # a Hub model instead (needs network)

Shipped inside the package, so it runs wherever the package is installed (Colab included).

It prints one line per section and, with --json PATH, writes them as one JSON object.
Sections run in order on one loaded model: `sft`, then `grpo` (a few steps of the gpu profile's GRPO settings:
batched multi-turn tool rollouts against a small synthetic replay pool, DAPO loss, LoRA on the 4-bit base).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import time
from pathlib import Path

import torch

from xrouter_lite.pool.core import ModelSpec
from xrouter_lite.routing.protocol import router_messages, tool_schemas
from xrouter_lite.training.modeling import build_tiny_router, load_router, pick_device

# A small priced pool: realistic tool lists (the router's prompt is mostly these schemas) without any data files.
POOL = [ModelSpec("gpt-4o-mini-2024-07-18", 0.15, 0.60, tier="budget"),
        ModelSpec("claude-3-5-haiku-20241022", 1.0, 5.0, tier="standard"),
        ModelSpec("gpt-4o-2024-08-06", 2.5, 10.0, tier="premium")]


def traces(n: int, seed: int = 0) -> list[dict]:
    """`n` synthetic router traces in TRL's conversational format: call the cheapest model, then select it."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(10, 999), rng.randint(10, 999)
        pool = rng.sample(POOL, 2)
        cheap = min(pool, key=lambda s: s.price_in + s.price_out).tool
        messages = router_messages(f"What is {a} * {b}? Give the number only.") + [
            {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
                "name": cheap, "arguments": {"optimized_system_prompt": "Compute exactly; reply with the number."}}}]},
            {"role": "tool", "name": cheap, "content": str(a * b)},
            {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
                "name": "select_response", "arguments": {"model_call_name": cheap}}}]},
        ]
        # tools as a JSON string: Arrow would merge different tools' keys and fill the gaps with null
        rows.append({"messages": messages, "tools": json.dumps(tool_schemas(pool))})
    return rows


def peak_memory_mb(device: str) -> float:
    """Peak memory so far: allocated VRAM on CUDA, the process's max RSS elsewhere."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def sft_steps(model, tokenizer, device: str, dtype: torch.dtype, steps: int, batch: int, max_length: int,
              workdir: Path) -> dict:
    """Run `steps` SFT steps (assistant-only loss) and time them; the first step (warm-up) is not timed."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.t0 = [], 0.0

        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if device == "cuda":
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.t0)

    cpu = device == "cpu"
    args = SFTConfig(
        output_dir=str(workdir / "sft"), max_steps=steps, per_device_train_batch_size=batch,
        learning_rate=2e-4, max_length=max_length, assistant_only_loss=True,
        use_cpu=cpu, bf16=dtype == torch.bfloat16, fp16=dtype == torch.float16,  # fp32 on CPU
        activation_checkpointing=not cpu,  # saves VRAM on a GPU; ~4x slower steps on a CPU
        logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, seed=0)
    timer = StepTimer()
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer, callbacks=[timer],
                         train_dataset=Dataset.from_list(traces(batch * steps), on_mixed_types="use_json"))
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    timed = timer.times[1:] or timer.times
    tokens = sum(len(x) for x in trainer.train_dataset["input_ids"]) / len(trainer.train_dataset)
    return {"steps": len(timer.times), "step_s": round(sum(timed) / len(timed), 3), "batch": batch,
            "tokens_per_example": round(tokens), "loss_first": losses[0], "loss_last": losses[-1],
            "peak_mb": round(peak_memory_mb(device))}


def grpo_pool(n: int = 32, seed: int = 0):
    """A replay pool over POOL answering `n` multiplication queries: dearer models are right more often."""
    import pandas as pd

    from xrouter_lite.pool.core import ReplayPool

    rng = random.Random(seed)
    right_rate = {POOL[0].id: 0.5, POOL[1].id: 0.75, POOL[2].id: 1.0}  # cheapest to dearest
    rows = []
    for i in range(n):
        a, b = rng.randint(10, 999), rng.randint(10, 999)
        for spec in POOL:
            right = rng.random() < right_rate[spec.id]
            usd = (300 * spec.price_in + 60 * spec.price_out) / 1e6
            rows.append(dict(query_id=f"check/gsm/{i}", source="check", task="gsm", category="",
                             question=f"What is {a} * {b}? Give the number only.", gold=str(a * b), model=spec.id,
                             response=f"The answer is {a * b + (0 if right else 1)}.", correct=float(right),
                             in_tokens=300, out_tokens=60, usd=usd))
    return ReplayPool(pd.DataFrame(rows), {s.id: s for s in POOL})


def grpo_steps(model, tokenizer, device: str, dtype: torch.dtype, steps: int, workdir: Path,
               profile: str = "gpu") -> dict:
    """Run `steps` GRPO steps of the profile's settings (tool rollouts, 4-bit + LoRA as loaded) and time them."""
    from dataclasses import replace

    from xrouter_lite.profiles import get_profile
    from xrouter_lite.training.grpo import GRPORow, train_grpo

    pool = grpo_pool()
    rng = random.Random(1)
    rows = [GRPORow(f"r{i}", q, tuple(s.id for s in rng.sample(POOL, 2)), "agent" if i % 2 else "simple")
            for i, q in enumerate(pool.queries())]
    settings = replace(get_profile(profile).grpo, steps=steps, save_steps=10**6)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    log = train_grpo(model, tokenizer, rows, pool, workdir / "grpo", settings, lora=None, device=device,
                     save=False, progress=False)
    wall = time.perf_counter() - t
    step_s = log["step_time"].tolist() if "step_time" in log else [wall / max(len(log), 1)]
    timed = step_s[1:] or step_s  # the first step (warm-up: kernels, caches) is not timed
    completions = settings.prompts_per_step * settings.num_generations
    return {"steps": len(log), "step_s": round(sum(timed) / len(timed), 3), "completions_per_step": completions,
            "completions_per_s": round(completions * len(timed) / sum(timed), 2),
            "reward_first": float(log["reward"].iloc[0]), "reward_last": float(log["reward"].iloc[-1]),
            "completion_tokens": float(log["completions/mean_length"].mean()), "peak_mb": round(peak_memory_mb(device))}


def main(argv: list[str] | None = None) -> dict:
    """Parse the flags, load the router in 4-bit (unless --no-4bit), run each section and print its result."""
    p = argparse.ArgumentParser(prog="python -m xrouter_lite gpu-check", description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--model", default="tiny", help="'tiny' (built here, offline) or a Hub id / local checkpoint dir")
    p.add_argument("--steps", type=int, default=6, help="SFT steps; the first is warm-up and not timed")
    p.add_argument("--grpo-steps", type=int, default=4, help="GRPO steps (gpu profile settings); the first is not timed")
    p.add_argument("--batch", type=int, default=4, help="examples per step; lower it if you run out of memory")
    p.add_argument("--max-length", type=int, default=2048, help="tokens per example (longer ones are cut)")
    p.add_argument("--no-4bit", action="store_true", help="load full precision (the CPU profile's path)")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # tokenizers' threads fight the trainer's on 2 cores

    device, dtype = pick_device() if args.device == "auto" else (args.device, pick_device(verbose=False)[1])
    if device == "cpu":
        dtype = torch.float32
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no CUDA GPU; use --device cpu for a dry run")
    workdir = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    model_path = args.model
    if args.model == "tiny":
        corpus = [json.dumps(r["messages"]) + r["tools"] for r in traces(200, seed=1)]
        build_tiny_router(corpus, workdir / "tiny")
        model_path = str(workdir / "tiny")
    t = time.perf_counter()
    model, tokenizer = load_router(model_path, load_in_4bit=not args.no_4bit, lora={}, device=device)
    results = {"device": device, "dtype": str(dtype).removeprefix("torch."), "model": args.model,
               "load_in_4bit": not args.no_4bit, "load_s": round(time.perf_counter() - t, 1),
               "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    print(json.dumps(results))

    results["sft"] = sft_steps(model, tokenizer, device, dtype, args.steps, args.batch, args.max_length, workdir)
    print("sft", json.dumps(results["sft"]))
    if args.grpo_steps:  # the gpu profile's GRPO settings (group size, lengths) on the same 4-bit + LoRA model
        results["grpo"] = grpo_steps(model, tokenizer, device, dtype, args.grpo_steps, workdir)
        print("grpo", json.dumps(results["grpo"]))

    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


def gpu_check_command(args) -> int:
    """CLI entry (`python -m xrouter_lite gpu-check [flags]`; __main__ hands the flags to `main`)."""
    main([])
    return 0


if __name__ == "__main__":
    main()
