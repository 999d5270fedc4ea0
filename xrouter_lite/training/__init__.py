"""Training the router LM (notebooks 02-03): the model, SFT traces, SFT, guided decoding, GRPO, evaluation.

    modeling     the router LM: device choice, the tiny offline Qwen2 model, Hub models in 4-bit with LoRA
    traces       SFT traces: chat-format routing examples from the train split only
    sft          the SFT warm-up: the tiny base and its protocol tokens, TRL's SFTTrainer, the saved router
    guided       guided decoding of tool calls
    grpo         GRPO on the cost-aware reward: multi-turn rollouts against the replay pool (TRL)
    lm_router    a causal LM behind the episode runner's `router(messages, tools) -> text`
    evaluation   an LM router evaluated through episodes: the baselines' row plus format stats, λ sweeps
    subsets      cutting queries, traces or training rows to a budget without losing a task
    progress     one readable line every N training steps
    gpu_check    the device check of the QLoRA path (`python -m xrouter_lite gpu-check`)
"""

from xrouter_lite import _lazy_exports

# name -> its module here: the names the notebooks import from this package, loaded on first use
_EXPORTS = {
    "assistant_mask": "modeling", "describe_device": "modeling", "load_saved_router": "modeling",
    "pick_device": "modeling",
    "build_traces": "traces", "PlanValues": "traces",
    "build_or_load_base": "sft", "lora_settings": "sft", "parameter_count": "sft", "render_trace": "sft",
    "router_info": "sft", "ROUTER_SFT": "sft", "run_sft": "sft", "save_router": "sft", "stage_steps": "sft",
    "trace_kwargs": "sft", "train_sft": "sft",
    "gains_over_sft": "grpo", "grpo_config": "grpo", "lora_of": "grpo", "play_episodes": "grpo",
    "reward_config": "grpo", "settings_for_sft": "grpo", "grpo_router_info": "grpo", "train_grpo": "grpo", "training_rows": "grpo",
    "zero_variance_share": "grpo",
    "LMRouter": "lm_router",
    "cost_falls": "evaluation", "episode_row": "evaluation", "evaluate_lm_router": "evaluation",
    "format_stats": "evaluation", "lambda_sweep": "evaluation", "query_frame": "evaluation",
    "sampled_subpools": "evaluation", "sweep_lambdas": "evaluation", "unseen_report": "evaluation",
    "limit_per_task": "subsets", "spread": "subsets",
    "ProgressPrinter": "progress",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
