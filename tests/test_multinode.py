"""Two 'nodes' on loopback through the launcher, and a dead rank ending the run with a clear error."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from conftest import write_recipe
from rl_reason.traces import read_traces

REPO = Path(__file__).resolve().parents[1]
RL_REASON = str(Path(sys.executable).parent / "rl-reason")
ENV = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}


def recipe(tmp_path, model_dir, **extra):
    return write_recipe(tmp_path / "recipe.yaml", model_dir, tmp_path / "run", run_name="nodes", **extra)


def node(recipe_path, rank, port, **kw):
    cmd = [RL_REASON, "launch", str(recipe_path), "--num-machines", "2", "--machine-rank", str(rank),
           "--processes-per-machine", "1", "--main-process-ip", "127.0.0.1", "--main-process-port", str(port),
           "--accelerate-config", "zero2", "--mixed-precision", "no"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=recipe_path.parent, **kw)


@pytest.mark.slow
def test_two_nodes_on_loopback(tmp_path, tiny_model_dir):
    path = recipe(tmp_path, tiny_model_dir)
    nodes = [node(path, rank, 29541) for rank in (0, 1)]
    outputs = [p.communicate(timeout=600) for p in nodes]
    for p, (out, err) in zip(nodes, outputs):
        assert p.returncode == 0, err[-3000:]
        assert "done: 3 steps" in out
    records = list(read_traces(tmp_path / "run" / "traces"))
    assert Counter(r["rank"] for r in records) == {0: 12, 1: 12}
    assert {r["run_id"] for r in records} == {"nodes"}


def _worker_with_rank(launcher: subprocess.Popen, rank: int):
    for child in psutil.Process(launcher.pid).children(recursive=True):
        try:
            if child.environ().get("RANK") == str(rank) and "rl_reason.cli" in " ".join(child.cmdline()):
                return child
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


@pytest.mark.slow
def test_a_dead_rank_ends_the_run_quickly_with_an_error(tmp_path, tiny_model_dir):
    path = recipe(tmp_path, tiny_model_dir, max_steps=10_000, ddp_timeout=60)
    launcher = subprocess.Popen(
        [str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file", str(REPO / "configs/accelerate/zero2.yaml"),
         "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", "29543", "-m", "rl_reason.cli", "train", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 300
        victim = None
        while time.monotonic() < deadline and launcher.poll() is None:
            traces = tmp_path / "run" / "traces"
            if traces.exists() and {r["rank"] for r in read_traces(traces)} == {0, 1}:
                victim = _worker_with_rank(launcher, 1)
                if victim:
                    break
            time.sleep(0.2)
        assert victim is not None, "training never got going on both ranks"
        # Our own child, found by its RANK: killing it harms nothing else.
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        out, err = launcher.communicate(timeout=120)
        elapsed = time.monotonic() - killed_at
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    assert elapsed < 60, f"the run took {elapsed:.0f} s to notice a dead rank"
    assert "rl_reason.cli" in err and ("Signal 9" in err or "SIGKILL" in err or "failed" in err.lower())
