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

from rl_reason.train.run_lock import holder_of
from rl_reason.traces.reader import read_traces

REPO = Path(__file__).resolve().parents[1]
RL_REASON = str(Path(sys.executable).parent / "rl-reason")
ENV = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}


@pytest.fixture
def recipe(tmp_path, tiny_model_dir, write_recipe):
    """``recipe(**overrides)``: the nodes' recipe."""
    return lambda **extra: write_recipe(tmp_path / "recipe.yaml", tiny_model_dir, tmp_path / "run", run_name="nodes",
                                        **extra)


def node(recipe_path, rank, port, **kw):
    cmd = [RL_REASON, "launch", str(recipe_path), "--num-machines", "2", "--machine-rank", str(rank),
           "--processes-per-machine", "1", "--main-process-ip", "127.0.0.1", "--main-process-port", str(port),
           "--accelerate-config", "zero2", "--mixed-precision", "no"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            cwd=recipe_path.parent, **kw)


@pytest.mark.slow
def test_two_nodes_on_loopback(tmp_path, recipe):
    path = recipe()
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
def test_a_dead_rank_ends_the_run_quickly_with_an_error(tmp_path, recipe):
    path = recipe(max_steps=10_000, ddp_timeout=60)
    launcher = subprocess.Popen(
        [str(Path(sys.executable).parent / "accelerate"), "launch",
         "--config_file", str(REPO / "configs/accelerate/zero2.yaml"), "--num_processes", "2",
         "--mixed_precision", "no", "--main_process_port", "29543", "-m", "rl_reason.cli", "train", str(path)],
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


def _workers(launcher: subprocess.Popen) -> list[psutil.Process]:
    out = []
    for child in psutil.Process(launcher.pid).children(recursive=True):
        try:
            if "rl_reason.cli" in " ".join(child.cmdline()) and "LOCAL_RANK" in child.environ():
                out.append(child)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def _kill_group(leader: subprocess.Popen) -> None:
    """End a process group this test started (its leader was started with start_new_session)."""
    try:
        os.killpg(leader.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    leader.communicate()


def _gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_the_documented_cpu_command_dies_with_its_launcher_and_resumes(tmp_path):
    """docs/distributed.md's `launch/single_node.sh configs/grpo_tiny.yaml 2 zero2` on this CPU; its
    launcher's process group killed with SIGKILL; the workers must go with it, the live run's directory
    must refuse a second run meanwhile, and --resume must then take over the dead run's lock."""
    from typer.testing import CliRunner

    from rl_reason.cli import app

    run = tmp_path / "run"
    env = {**ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    small = [f"output_dir={run}", "per_device_train_batch_size=8", "max_completion_length=16", "data.num_train=400",
             "save_steps=2", "logging_steps=1"]
    documented = [str(REPO / "launch/single_node.sh"), "configs/grpo_tiny.yaml", "2", "zero2"]
    launcher = subprocess.Popen([*documented, *small, "max_steps=1000"], cwd=REPO, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Containment probe: the launcher leads a group of its own, so killing that group spares pytest's.
    assert os.getpgid(launcher.pid) == launcher.pid != os.getpgrp()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and launcher.poll() is None:
            started = list((run / "traces").glob("rank-*.jsonl"))
            if (run / "checkpoint-2" / "trainer_state.json").exists() and len(started) == 2:
                break
            time.sleep(0.2)
        assert launcher.poll() is None, launcher.stderr.read()[-3000:]
        workers = _workers(launcher)
        assert len(workers) == 2

        # A second run on the live run's directory refuses, and touches nothing.
        shards = {p: p.stat().st_size for p in (run / "traces").glob("rank-*.jsonl")}
        result = CliRunner().invoke(app, ["train", str(REPO / "configs/grpo_tiny.yaml"), *small, "--resume"])
        assert result.exit_code == 2 and "in use by another run" in result.stderr, result.stderr
        assert all(p.stat().st_size >= size for p, size in shards.items())  # not rewound under the live writer

        os.killpg(launcher.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < 30 and not all(_gone(w) for w in workers):
            time.sleep(0.1)
        assert all(_gone(w) for w in workers), "workers outlived their launcher"
        elapsed = time.monotonic() - killed_at
        sizes = {p: p.stat().st_size for p in (run / "traces").glob("rank-*.jsonl")}
        time.sleep(2)
        assert sizes == {p: p.stat().st_size for p in (run / "traces").glob("rank-*.jsonl")}, "traces still growing"
    finally:
        _kill_group(launcher)
    assert elapsed < 5, f"workers took {elapsed:.1f} s to follow their launcher"

    # The dead run's lock is free: left behind by a SIGKILLed rank 0 (taken over below), or released by
    # a rank 0 that saw its peer vanish in a collective and unwound first (a race either way is fine).
    assert holder_of(run) is None
    left_behind = (run / "rl_reason.lock").exists()
    last = max(int(p.name.split("-")[1]) for p in run.glob("checkpoint-*") if (p / "trainer_state.json").exists())
    resumed = subprocess.run([*documented, *small, f"max_steps={last + 2}", "--resume"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert ("took over the lock of a run that is gone" in resumed.stdout) is left_behind
    records = list(read_traces(run / "traces"))
    expected = {(rank, s): 8 for rank in (0, 1) for s in range(last + 2)}
    assert Counter((r["rank"], r["step"]) for r in records) == expected
    assert not (run / "rl_reason.lock").exists()


@pytest.mark.slow
def test_killing_one_nodes_launcher_ends_every_node(tmp_path, recipe):
    """Across nodes: node 0's launcher group SIGKILLed; its worker follows it, node 1's worker loses its
    peer in the next collective, and node 1's launcher exits non-zero: nothing of the run is left."""
    path = recipe(max_steps=10_000, ddp_timeout=120)
    nodes = [node(path, rank, 29545, start_new_session=True) for rank in (0, 1)]
    assert all(os.getpgid(p.pid) == p.pid != os.getpgrp() for p in nodes)  # containment probe
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not all(_workers(p) for p in nodes):
            time.sleep(0.2)
        while time.monotonic() < deadline and not (tmp_path / "run" / "traces" / "rank-00001.jsonl").exists():
            time.sleep(0.2)
        workers = [w for p in nodes for w in _workers(p)]
        assert len(workers) == 2, [p.poll() for p in nodes]
        os.killpg(nodes[0].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < 120 and not (
                all(_gone(w) for w in workers) and nodes[1].poll() is not None):
            time.sleep(0.2)
        elapsed = time.monotonic() - killed_at
        assert all(_gone(w) for w in workers) and nodes[1].poll() not in (None, 0)
    finally:
        for p in nodes:
            _kill_group(p)
    assert elapsed < 60, f"the run took {elapsed:.0f} s to end everywhere"
