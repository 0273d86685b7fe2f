"""Exact resume: SIGKILL a run after a checkpoint, --resume it, compare with an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import torch
from safetensors.torch import load_file

from rl_reason.traces.reader import read_traces


@pytest.fixture
def recipe(tmp_path, tiny_model_dir, write_recipe):
    """``recipe(name)``: a 6-step run that checkpoints every 2 steps, in ``tmp_path/name``."""
    return lambda name: write_recipe(
        tmp_path / f"{name}.yaml", tiny_model_dir, tmp_path / name, run_name=name, seed=3,
        per_device_train_batch_size=8, max_steps=6, save_strategy="steps", save_steps=2,
    )


def cli(*args):
    return [sys.executable, "-m", "rl_reason.cli", *map(str, args)]


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, recipe):
    straight = subprocess.run(cli("train", recipe("straight")), capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]

    run = tmp_path / "killed"
    killed_recipe = recipe("killed")
    proc = subprocess.Popen(cli("train", killed_recipe), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    # Kill once checkpoint-2 is complete and the run has moved on to later steps.
    while time.monotonic() < deadline and proc.poll() is None:
        steps = {r["step"] for r in read_traces(run / "traces")} if (run / "traces").exists() else set()
        if (run / "checkpoint-2" / "trainer_state.json").exists() and max(steps, default=0) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "checkpoint-6").exists()

    resumed = subprocess.run(cli("train", killed_recipe, "--resume"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # Steps the killed run wrote after its last complete checkpoint were rewound (see "dropped" in stdout).

    state = json.loads((run / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    records = list(read_traces(run / "traces"))
    assert Counter(r["step"] for r in records) == {s: 8 for s in range(6)}  # no step twice, none missing
    assert {r["run_id"] for r in records} == {"killed"}

    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(run / "model.safetensors")
    assert a.keys() == b.keys()
    # Same data order, optimizer, scheduler and RNG state: the same weights, bit for bit on CPU.
    assert all(torch.equal(a[k], b[k]) for k in a)
    # The same traces, ids and counters included (group = step-batch-group: the batch counter continues).
    fields = ("step", "mode", "group", "prompt", "completion", "rewards", "advantage", "completion_ids")
    straight_records = list(read_traces(tmp_path / "straight" / "traces"))

    def rows(records):
        return sorted(json.dumps([r[f] for f in fields]) for r in records)

    assert rows(straight_records) == rows(records)
    assert len({r["group"] for r in records}) == 6 * 2  # 8 completions per step, 4 per group

    # The same metrics at every step, but for wall-clock ones.
    def metrics(run):
        history = json.loads((tmp_path / run / "trainer_state.json").read_text())["log_history"]
        clock = ("time/", "throughput/", "reward_pool/", "step_time", "train_runtime", "train_samples_per_second",
                 "train_steps_per_second")
        return [{k: v for k, v in h.items() if not k.startswith(clock)} for h in history]

    straight_metrics, resumed_metrics = metrics("straight"), metrics("killed")
    assert [h["traces/written"] for h in resumed_metrics if "traces/written" in h] == [8 * s for s in range(1, 7)]
    assert straight_metrics == resumed_metrics
