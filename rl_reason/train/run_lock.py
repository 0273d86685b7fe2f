"""One live run per OUTPUT_DIR: ``OUTPUT_DIR/rl_reason.lock``, naming the host and pid that hold it.

Two runs writing one directory lose data silently (a resume rewinds trace shards under a live
writer; checkpoints interleave), so the second one refuses, in one line.

How a holder is known to be alive:
- ``flock`` on the open lock file: the kernel drops it the moment the holder dies, however it
  dies, so on one host (and on shared filesystems whose locks span hosts, e.g. NFSv4, Lustre
  mounted with ``flock``) a dead holder's lock is free at once;
- for a filesystem whose ``flock`` does not span hosts, the holder also touches the file every
  ``HEARTBEAT_S`` seconds: a lock from another host counts as held until its heartbeat is
  ``STALE_S`` seconds old;
- on the holder's own host, its pid (and that pid's start time, against reuse) must be alive.

A lock whose holder is dead by these rules is taken over and the takeover is printed.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from pathlib import Path

from rl_reason.config import ConfigError

LOCK_NAME = "rl_reason.lock"
HEARTBEAT_S = 15.0
STALE_S = 90.0


class RunLocked(ConfigError):
    """OUTPUT_DIR is held by another live run."""


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None if it is gone.

    A zombie is gone too: in a container whose init does not reap, a dead holder stays one."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _me() -> dict:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "pid_start": _start_time(pid), "since": time.time()}


def _read(path: Path) -> dict | None:
    try:
        holder = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _alive(holder: dict, path: Path) -> bool:
    """Is the run named in the lock file still alive, as far as this host can tell?"""
    pid = holder.get("pid")
    if not isinstance(holder.get("host"), str) or not isinstance(pid, int):
        return False  # not a lock this module wrote
    if holder["host"] == socket.gethostname():
        return _start_time(pid) is not None and _start_time(pid) == holder.get("pid_start")
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False
    return age < STALE_S


def describe(holder: dict) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0)))
    return f"host {holder.get('host')} pid {holder.get('pid')} (since {since})"


def _live_holder(f, path: Path) -> dict | None:
    """Try to lock the open lock file ``f``: who else holds it, alive, or None (``f`` is then ours,
    or the filesystem has no flock and the file's contents said it is free)."""
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read(path) or {"host": "?", "pid": "?"}
    except OSError:
        pass  # a filesystem without flock: the contents and the heartbeat decide
    holder = _read(path)
    return holder if holder and holder.get("pid") != os.getpid() and _alive(holder, path) else None


def holder_of(output_dir: str | Path) -> dict | None:
    """Who holds ``output_dir`` now (None when free); takes nothing."""
    path = Path(output_dir) / LOCK_NAME
    if not path.exists():
        return None
    with open(path, "a+") as f:
        return _live_holder(f, path)


def refusal(output_dir: str | Path, holder: dict) -> str:
    return (f"output_dir: {output_dir} is in use by another run ({describe(holder)}); "
            f"stop it first, or train into another output_dir (lock: {Path(output_dir) / LOCK_NAME})")


class RunLock:
    """Hold ``output_dir`` for this process until ``release()`` (or death)."""

    def __init__(self, output_dir: str | Path):
        self.output_dir = Path(output_dir)
        self.path = self.output_dir / LOCK_NAME
        self._file = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self.took_over: dict | None = None

    def acquire(self) -> "RunLock":
        self.output_dir.mkdir(parents=True, exist_ok=True)
        while True:
            f = open(self.path, "a+")
            holder = _live_holder(f, self.path)
            if holder:
                f.close()
                raise RunLocked(refusal(self.output_dir, holder))
            # The holder we waited for may have released (unlinked) the file we opened: lock the current one.
            try:
                if os.fstat(f.fileno()).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            f.close()
        self.took_over = _read(self.path)
        f.seek(0)
        f.truncate()
        f.write(json.dumps(_me()))
        f.flush()
        os.fsync(f.fileno())
        self._file = f
        self._beat = threading.Thread(target=self._heartbeat, name="run-lock-heartbeat", daemon=True)
        self._beat.start()
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                pass

    def release(self) -> None:
        if self._file is None:
            return
        self._stop.set()
        try:
            self.path.unlink()
        except OSError:
            pass
        self._file.close()  # drops the flock
        self._file = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
