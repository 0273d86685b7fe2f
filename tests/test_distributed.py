"""Real multi-process GRPO: DeepSpeed ZeRO-2 and ZeRO-3 over gloo with 2 CPU processes."""

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from rl_reason.traces.reader import read_traces

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = str(Path(sys.executable).parent / "accelerate")


@pytest.fixture
def recipe(tmp_path, tiny_model_dir, write_recipe):
    return write_recipe(tmp_path / "recipe.yaml", tiny_model_dir, tmp_path / "run", run_name="dist")


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_two_process_deepspeed(tmp_path, recipe, stage):
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [ACCELERATE, "launch", "--config_file", str(REPO / "configs" / "accelerate" / f"{stage}.yaml"),
         "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--main_process_port", "29533" if stage == "zero2" else "29534",
         "-m", "rl_reason.cli", "train", str(recipe)],
        capture_output=True, text=True, timeout=600, env=env, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("done: 3 steps") == 2  # both ranks finished at the same step
    by_rank = defaultdict(list)
    for r in read_traces(tmp_path / "run" / "traces"):
        by_rank[r["rank"]].append(r)
    assert sorted(by_rank) == [0, 1]
    for rank, records in by_rank.items():
        assert len(records) == 3 * 4  # each rank scores its 4 completions per step
        assert max(r["step"] for r in records) == 2
    # Group ids are global: a prompt's 4 completions rejoin across ranks, advantages centred.
    groups = defaultdict(list)
    for records in by_rank.values():
        for r in records:
            groups[r["group"]].append(r["advantage"])
    assert len(groups) == 6 and all(len(v) == 4 for v in groups.values())
    assert all(abs(sum(v)) < 1e-3 for v in groups.values())
    saved = tmp_path / "run" / "model.safetensors"
    assert saved.exists() and saved.stat().st_size > 100_000
