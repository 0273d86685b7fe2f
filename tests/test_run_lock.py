"""One live run per OUTPUT_DIR: a held directory is refused in one line; a dead holder's lock is taken over."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rl_reason.train import run_lock
from rl_reason.train.run_lock import LOCK_NAME, RunLock, RunLocked, holder_of

REPO = Path(__file__).resolve().parents[1]


def hold_in_another_process(directory: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", "import time\nfrom rl_reason.train.run_lock import RunLock\n"
                             f"RunLock({str(directory)!r}).acquire(); print('held', flush=True); time.sleep(120)"],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout.readline().strip() == "held"
    return proc


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(directory: Path, **holder) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    path.write_text(json.dumps({"since": time.time(), **holder}))
    return path


def test_acquire_release_and_the_file_names_host_and_pid(tmp_path):
    lock = RunLock(tmp_path / "run").acquire()
    holder = json.loads((tmp_path / "run" / LOCK_NAME).read_text())
    assert holder["host"] == socket.gethostname() and holder["pid"] == os.getpid()
    assert holder_of(tmp_path / "run")["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / "run" / LOCK_NAME).exists() and holder_of(tmp_path / "run") is None
    RunLock(tmp_path / "run").acquire().release()  # free again


def test_a_live_holder_in_another_process_is_refused(tmp_path):
    holder = hold_in_another_process(tmp_path / "run")
    try:
        with pytest.raises(RunLocked, match=rf"host {socket.gethostname()} pid {holder.pid}\b"):
            RunLock(tmp_path / "run").acquire()
        assert holder_of(tmp_path / "run")["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()
    # Killed with SIGKILL: no release ran, the file is still there, and the lock is free at once.
    assert (tmp_path / "run" / LOCK_NAME).exists()
    assert holder_of(tmp_path / "run") is None
    lock = RunLock(tmp_path / "run").acquire()
    assert lock.took_over["pid"] == holder.pid
    lock.release()


@pytest.mark.parametrize(
    "holder, taken_over",
    [
        (lambda: {"host": socket.gethostname(), "pid": dead_pid(), "pid_start": "1"}, True),  # dead pid on this host
        # the pid reused by another process
        (lambda: {"host": socket.gethostname(), "pid": os.getppid(), "pid_start": "0"}, True),
        (lambda: {"host": "elsewhere.cluster", "pid": 4242}, False),  # another host, fresh heartbeat
        (lambda: {"host": socket.gethostname(), "pid": os.getppid(),
                  "pid_start": run_lock._start_time(os.getppid())}, False),
    ],
)
def test_a_lock_file_without_a_flock_is_judged_by_its_holder(tmp_path, holder, taken_over):
    # As on a filesystem whose flock does not reach this host: only the file's contents and age speak.
    write_lock(tmp_path / "run", **holder())
    if taken_over:
        RunLock(tmp_path / "run").acquire().release()
    else:
        with pytest.raises(RunLocked, match="in use by another run"):
            RunLock(tmp_path / "run").acquire()


def test_another_hosts_lock_is_stale_once_its_heartbeat_stops(tmp_path):
    path = write_lock(tmp_path / "run", host="elsewhere.cluster", pid=4242)
    old = time.time() - run_lock.STALE_S - 1
    os.utime(path, (old, old))
    lock = RunLock(tmp_path / "run").acquire()
    assert lock.took_over["host"] == "elsewhere.cluster"
    lock.release()


@pytest.mark.parametrize("content", ["", "not json", "[1, 2]", '{"host": null}'])
def test_a_garbled_lock_file_is_taken_over(tmp_path, content):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK_NAME).write_text(content)
    RunLock(tmp_path / "run").acquire().release()


def test_the_holder_keeps_its_heartbeat(tmp_path, monkeypatch):
    monkeypatch.setattr(run_lock, "HEARTBEAT_S", 0.05)
    lock = RunLock(tmp_path / "run").acquire()
    path = tmp_path / "run" / LOCK_NAME
    old = time.time() - 1000
    os.utime(path, (old, old))
    time.sleep(0.3)
    assert time.time() - path.stat().st_mtime < 5
    lock.release()


def test_train_and_resume_on_a_held_output_dir_refuse_in_one_line(tmp_path, tiny_model_dir, write_recipe):
    from typer.testing import CliRunner

    from rl_reason.cli import app

    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, tmp_path / "run")
    shard = tmp_path / "run" / "traces" / "rank-00000.jsonl"
    shard.parent.mkdir(parents=True)
    shard.write_text('{"step": 5, "mode": "train", "run_id": "live"}\n')
    holder = hold_in_another_process(tmp_path / "run")
    try:
        for extra in ([], ["--resume"]):
            result = CliRunner().invoke(app, ["train", str(recipe), *extra])
            errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
            assert result.exit_code == 2 and len(errors) == 1, result.stderr
            assert f"pid {holder.pid}" in errors[0] and "in use by another run" in errors[0]
    finally:
        holder.kill()
        holder.wait()
    # The live run's files are as it left them: no rewind, no model built, no run id written.
    assert shard.read_text() == '{"step": 5, "mode": "train", "run_id": "live"}\n'
    assert not (tmp_path / "run" / "run_id").exists() and not (tmp_path / "run" / "base_model").exists()


def test_a_zombie_holder_is_dead(tmp_path):
    # Exited but not yet reaped (as under an init that never reaps): its /proc entry and start time remain.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    started = run_lock._start_time(proc.pid)
    write_lock(tmp_path / "run", host=socket.gethostname(), pid=proc.pid, pid_start=started)
    assert holder_of(tmp_path / "run")["pid"] == proc.pid
    stat = Path(f"/proc/{proc.pid}/stat")
    deadline = time.monotonic() + 30
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert holder_of(tmp_path / "run") is None
    proc.wait()
