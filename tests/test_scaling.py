"""The README's "Beyond one GPU" settings load into TRL 1.16's GRPOConfig as grpo.grpo_config builds it.

What needs several GPUs, CUDA or vLLM itself is not run here (no GPU on CI): the CUDA config is marked `cuda`.
"""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
import torch

from xrouter_lite.profiles import get_profile
from xrouter_lite.training.grpo import grpo_config


def _with(args, **fields):
    """GRPOConfig with more fields, as the README shows: TRL re-derives the generation batch from the rest."""
    return dataclasses.replace(args, generation_batch_size=None, steps_per_generation=None, **fields)


@pytest.fixture()
def gpu_args(tmp_path):
    return grpo_config(get_profile("gpu").grpo, tmp_path, "cpu", torch.float32)  # the gpu profile's sizes


def test_vllm_colocate_settings_load(gpu_args):
    args = _with(gpu_args, use_vllm=True, vllm_mode="colocate", vllm_gpu_memory_utilization=0.3,
                 vllm_tensor_parallel_size=1, vllm_max_model_length=4096)
    assert (args.use_vllm, args.vllm_mode, args.vllm_gpu_memory_utilization) == (True, "colocate", 0.3)
    assert args.vllm_tensor_parallel_size == 1 and args.vllm_max_model_length == 4096
    # everything else is the profile's: the same GRPO, generated elsewhere
    assert (args.num_generations, args.loss_type, args.beta, args.max_steps) == (8, "dapo", 0.0, 150)
    assert args.generation_batch_size == gpu_args.generation_batch_size


def test_vllm_server_settings_load(gpu_args):
    args = _with(gpu_args, use_vllm=True, vllm_mode="server", vllm_server_base_url="http://127.0.0.1:8000",
                 vllm_server_timeout=600.0)
    assert (args.vllm_mode, args.vllm_server_base_url, args.vllm_server_timeout) == (
        "server", "http://127.0.0.1:8000", 600.0)


def test_the_batch_per_step_stays_a_whole_number_of_groups(gpu_args):
    s = get_profile("gpu").grpo
    completions = s.prompts_per_step * s.num_generations
    assert gpu_args.per_device_train_batch_size * gpu_args.gradient_accumulation_steps == completions
    assert gpu_args.generation_batch_size % s.num_generations == 0
    for n_gpus in (2, 4):  # the README's rule: divide prompts_per_step by the GPU count to keep one step's size
        per_gpu = dataclasses.replace(s, prompts_per_step=s.prompts_per_step // n_gpus)
        assert per_gpu.prompts_per_step * per_gpu.num_generations * n_gpus == completions


@pytest.mark.cuda
def test_bf16_cuda_config_with_vllm(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    args = _with(grpo_config(get_profile("gpu").grpo, tmp_path, "cuda", torch.bfloat16), use_vllm=True,
                 vllm_mode="colocate")
    assert args.bf16 and args.use_vllm
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not installed (pip install vllm on the GPU machine)")


def test_gpu_check_and_the_example_pool_are_package_commands(tmp_path, capsys):
    from xrouter_lite.__main__ import main

    with pytest.raises(SystemExit) as done:
        main(["gpu-check", "--help"])
    assert done.value.code == 0 and "python -m xrouter_lite gpu-check" in capsys.readouterr().out
    assert main(["example-pool", "--out", str(tmp_path / "pool.yaml")]) == 0
    from xrouter_lite.pool.config import load_pool_config

    assert len(load_pool_config(tmp_path / "pool.yaml")) >= 4
