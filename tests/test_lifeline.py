"""Workers die with their launcher (rl_reason.train.lifeline), and only launched workers do."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]

# A stand-in launcher that starts its worker in a session of its own, as torchrun does, and prints its pid.
LAUNCHER = textwrap.dedent("""
    import os, subprocess, sys, time
    worker = subprocess.Popen([sys.executable, "-c", sys.argv[1]], start_new_session=True, env=os.environ)
    print(worker.pid, flush=True)
    time.sleep(300)
""")
WORKER = textwrap.dedent("""
    import subprocess, sys, time
    from rl_reason.train.lifeline import follow_launcher
    follow_launcher(poll_s=0.05)
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])  # a reward pool, say
    time.sleep(300)
""")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _start(env: dict) -> tuple[subprocess.Popen, psutil.Process, list[psutil.Process]]:
    base = {k: v for k, v in os.environ.items() if k != "LOCAL_RANK"}
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, WORKER], stdout=subprocess.PIPE, text=True,
                                cwd=REPO, env={**base, **env}, start_new_session=True)
    worker = psutil.Process(int(launcher.stdout.readline()))
    deadline = time.monotonic() + 30
    while not worker.children() and time.monotonic() < deadline:
        time.sleep(0.05)
    # Containment probe: every process here is ours, in groups that are not pytest's.
    assert os.getpgid(launcher.pid) != os.getpgrp() and os.getpgid(worker.pid) == worker.pid
    return launcher, worker, worker.children()


@pytest.mark.parametrize("launched, follows", [({"LOCAL_RANK": "0"}, True), ({}, False)])
def test_a_worker_follows_its_killed_launcher_with_its_children(launched, follows):
    launcher, worker, children = _start(launched)
    try:
        assert children, "the worker's helper did not start"
        launcher.kill()
        launcher.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not _gone(worker.pid):
            time.sleep(0.05)
        assert _gone(worker.pid) is follows
        assert all(_gone(c.pid) for c in children) is follows
    finally:
        for proc in [worker, *children]:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
