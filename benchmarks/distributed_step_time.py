"""GRPO step time on the tiny model: 1 process vs 2 processes under DeepSpeed ZeRO-2 and ZeRO-3.

Runs the real CLI under `accelerate launch` (CPU, gloo) with the same per-process batch, reads
each run's mean `step_time` from trainer_state.json, and prints a table with ratios. A benchmark,
not a test: on 2 cores, 2 processes compete for the same cores, so expect ratios above 1.

    python benchmarks/distributed_step_time.py [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = str(Path(sys.executable).parent / "accelerate")


def run(tmp: Path, name: str, nproc: int, config: str | None, steps: int) -> dict:
    recipe = tmp / f"{name}.yaml"
    recipe.write_text(yaml.safe_dump({
        "output_dir": str(tmp / name), "model": {"name_or_path": str(tmp / "model")},
        "data": {"num_train": 512, "min_digits": 1, "max_digits": 3},
        "rewards": [{"name": "math"}, {"name": "format", "weight": 0.1}],
        "num_generations": 8, "per_device_train_batch_size": 16, "max_completion_length": 48,
        "max_steps": steps, "logging_steps": 1, "save_strategy": "no", "report_to": "none",
    }))
    env = {**os.environ, "DS_ACCELERATOR": "cpu"}
    if config is None:
        cmd = [sys.executable, "-m", "rl_reason.cli", "train", str(recipe)]
    else:
        cmd = [ACCELERATE, "launch", "--config_file", str(REPO / "configs/accelerate" / f"{config}.yaml"),
               "--num_processes", str(nproc), "--mixed_precision", "no", "-m", "rl_reason.cli", "train", str(recipe)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    history = json.loads((tmp / name / "trainer_state.json").read_text())["log_history"]
    step_times = [h["step_time"] for h in history if "step_time" in h][2:]  # skip warm-up steps
    return {"name": name, "processes": nproc, "step_s": statistics.median(step_times), "wall_s": wall,
            "completions_per_step": 16 * nproc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    from rl_reason.data.tiny import build_tiny

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        build_tiny(tmp / "model")
        rows = [
            run(tmp, "1proc", 1, None, args.steps),
            run(tmp, "2proc_zero2", 2, "zero2", args.steps),
            run(tmp, "2proc_zero3", 2, "zero3", args.steps),
        ]
    base = rows[0]
    print(f"{'run':<14}{'procs':>6}{'step s (median)':>17}{'completions/step':>18}{'completions/s':>15}"
          f"{'step ratio':>12}")
    for r in rows:
        rate = r["completions_per_step"] / r["step_s"]
        print(f"{r['name']:<14}{r['processes']:>6}{r['step_s']:>17.3f}{r['completions_per_step']:>18}{rate:>15.1f}"
              f"{r['step_s'] / base['step_s']:>12.2f}")


if __name__ == "__main__":
    main()
