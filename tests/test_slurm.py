"""The sbatch script on a real SLURM cluster started on localhost: a tiny 2-node GRPO job to the end."""

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from rl_reason.traces.reader import read_traces

sys.path.insert(0, str(Path(__file__).parent))
from slurm_local import local_cluster, missing  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def wait_for_job(job_id: str, env: dict, timeout: float) -> tuple[str, str]:
    """(JobState, ExitCode) once the job ends; polled often (sbatch --wait sleeps up to 32 s)."""
    import re
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["scontrol", "show", "job", job_id, "-o"], capture_output=True, text=True, env=env).stdout
        state = re.search(r"JobState=(\S+)", out)
        if state and state.group(1) not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
            return state.group(1), re.search(r"ExitCode=(\S+)", out).group(1)
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} still running after {timeout} s")


@pytest.mark.slow
def test_sbatch_two_node_job_runs_to_completion(tmp_path, tiny_model_dir, write_recipe):
    reason = missing()
    if reason:
        pytest.skip(reason)
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_model_dir, tmp_path / "run", run_name="slurm")
    with local_cluster(tmp_path / "slurm") as env:
        env = {**env, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1", "ACCEL": "zero2",
               "RL_REASON": str(Path(sys.executable).parent / "rl-reason"), "MASTER_PORT": "29571"}
        submit = subprocess.run(
            ["sbatch", "--parsable", "--nodes=2", f"--chdir={tmp_path}", str(REPO / "launch/slurm/train.sbatch"),
             str(recipe), "--mixed-precision", "no"],
            capture_output=True, text=True, env=env, timeout=60, check=True,
        )
        state = wait_for_job(submit.stdout.strip().split(";")[0], env, timeout=600)
        logs = {p.name: p.read_text() for p in [*tmp_path.glob("*.out"), *tmp_path.glob("logs/*")]}
        assert state == ("COMPLETED", "0:0"), f"{state}\n" + "\n".join(f"== {k}\n{v[-2000:]}" for k, v in logs.items())
    # One log per node, both nodes finished, every rank's traces are there.
    node_logs = sorted(k for k in logs if k.endswith(".log"))
    assert len(node_logs) == 2, logs.keys()
    assert all("done: 3 steps" in logs[k] for k in node_logs)
    main_log = next(v for k, v in logs.items() if k.endswith(".out"))
    assert "[n1] accelerate launch" in main_log and "--main_process_ip 127.0.0.1" in main_log
    records = list(read_traces(tmp_path / "run" / "traces"))
    assert Counter(r["rank"] for r in records) == {0: 12, 1: 12}
