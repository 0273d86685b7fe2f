"""GPU tests: GRPO in bf16 on CUDA (plain and DeepSpeed ZeRO-2 on one process), and with vLLM
colocated. All skipped without a CUDA GPU (the CPU CI machine); the vLLM one also needs vLLM.
benchmarks/gpu_check.sh runs these on a lent GPU machine."""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = str(Path(sys.executable).parent / "accelerate")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs the vllm extra")


def _losses(log_history):
    return [h["loss"] for h in log_history if "loss" in h and "time/step" in h]


def test_bf16_grpo_steps_on_cuda(tmp_path, tiny_model_dir, write_recipe):
    """Two GRPO steps with HF generation on the GPU in bf16: the model really sits on CUDA in
    bf16, traces are written for every completion, and the loss and step timings are finite."""
    from rl_reason.traces.reader import read_traces
    from rl_reason.train.run import load_train_recipe, train

    path = write_recipe(tmp_path / "recipe.yaml", tiny_model_dir, tmp_path / "run", max_steps=2, bf16=True,
                        per_device_train_batch_size=8, max_completion_length=16)
    recipe = load_train_recipe(path)
    assert recipe.args.bf16 and not recipe.args.use_cpu
    torch.cuda.reset_peak_memory_stats()
    result = train(recipe)
    assert result.global_step == 2
    assert torch.cuda.max_memory_allocated() > 0  # the run used the GPU
    traces = list(read_traces(result.traces_dir))
    assert len(traces) == 2 * 8
    assert all(0 < t["completion_tokens"] <= 16 for t in traces)
    losses = _losses(result.log_history)
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    steps = [h for h in result.log_history if "time/step" in h]
    assert all(h["time/step"] > 0 and h["throughput/tokens_per_s"] > 0 for h in steps)
    # The saved policy loads back onto the GPU with finite weights.
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(result.output_dir).cuda()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_deepspeed_zero2_one_gpu_process(tmp_path, tiny_model_dir, write_recipe):
    """DeepSpeed ZeRO-2 through accelerate on one GPU process, bf16 from the recipe and the
    launcher alike: the run finishes, writes its traces and logs finite losses."""
    from rl_reason.traces.reader import read_traces

    path = write_recipe(tmp_path / "recipe.yaml", tiny_model_dir, tmp_path / "run", max_steps=2, bf16=True,
                        per_device_train_batch_size=8, max_completion_length=16, run_name="zero2-gpu")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]}
    proc = subprocess.run(
        [ACCELERATE, "launch", "--config_file", str(REPO / "configs" / "accelerate" / "zero2.yaml"),
         "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "bf16", "--main_process_port", "29571",
         "-m", "rl_reason.cli", "train", str(path)],
        capture_output=True, text=True, check=False, timeout=300, env=env, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "done: 2 steps" in proc.stdout
    assert len(list(read_traces(tmp_path / "run" / "traces"))) == 2 * 8
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    losses = _losses(state["log_history"])
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert (tmp_path / "run" / "model.safetensors").exists()


@needs_vllm
def test_grpo_with_vllm_colocate(tmp_path, tiny_model_dir, write_recipe):
    from rl_reason.traces.reader import read_traces
    from rl_reason.train.run import load_train_recipe, train

    path = write_recipe(
        tmp_path / "recipe.yaml", tiny_model_dir, tmp_path / "run", use_vllm=True, vllm_mode="colocate",
        vllm_gpu_memory_utilization=0.2, per_device_train_batch_size=8, max_completion_length=16, max_steps=2,
        bf16=True,
    )
    result = train(load_train_recipe(path))
    assert result.global_step == 2
    assert len(list(read_traces(result.traces_dir))) == 16


@needs_vllm
def test_dynamic_sampling_with_vllm_colocate(tmp_path, tiny_model_dir, write_recipe):
    """Extra rounds generate through vLLM like the first; the vLLM importance-sampling tensors are regrouped."""
    from rl_reason.traces.reader import read_traces
    from rl_reason.train.run import load_train_recipe, train

    path = write_recipe(
        tmp_path / "recipe.yaml", tiny_model_dir, tmp_path / "run", use_vllm=True, vllm_mode="colocate",
        vllm_gpu_memory_utilization=0.2, per_device_train_batch_size=16, max_completion_length=16, max_steps=2,
        bf16=True, rewards=[{"name": "tests.sampling_rewards:easy_even"}],
        dynamic_sampling={"enabled": True, "max_rounds": 4},
    )
    result = train(load_train_recipe(path))
    assert result.global_step == 2
    records = list(read_traces(result.traces_dir))
    for step in range(2):
        assert sum(1 for r in records if r["step"] == step and r["dropped"] is None) == 16
    assert any(r["dropped"] for r in records)
    rounds = [h["dynamic_sampling/extra_rounds"] for h in result.log_history if "dynamic_sampling/extra_rounds" in h]
    assert rounds and all(r >= 1 for r in rounds)
