"""GPU smoke test: GRPO with vLLM colocated, two steps on the tiny model. Runs only where CUDA
and vLLM are present (skipped on the CPU CI machine, which cannot run vLLM)."""

import importlib.util

import pytest
import torch
from conftest import write_recipe

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs the vllm extra"),
]


def test_grpo_with_vllm_colocate(tmp_path, tiny_model_dir):
    from rl_reason.traces import read_traces
    from rl_reason.train import load_train_recipe, train

    path = write_recipe(
        tmp_path / "recipe.yaml", tiny_model_dir, tmp_path / "run", use_vllm=True, vllm_mode="colocate",
        vllm_gpu_memory_utilization=0.2, per_device_train_batch_size=8, max_completion_length=16, max_steps=2, bf16=True,
    )
    result = train(load_train_recipe(path))
    assert result.global_step == 2
    assert len(list(read_traces(result.traces_dir))) == 16
