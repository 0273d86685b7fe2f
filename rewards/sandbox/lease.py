"""Machine-wide leases for sandbox fork servers.

A training node runs one pool per GPU rank, in separate processes that know nothing of each other. Each
fork server holds one lease, an ``flock`` on ``<dir>/slot-<k>.lock``, for its whole life (the server
inherits the locked descriptor, so the lease outlives neither the server nor a crash: the kernel drops the
lock when the last holder exits). The index ``k`` is unique on the machine at any moment, so it names
the server's uids and cgroups: no pool can kill, signal or limit another pool's programs. The number of
lock files bounds the servers on the machine (``RL_REASON_SANDBOX_MAX_SERVERS``).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time


def max_servers() -> int:
    """Fork servers allowed on this machine at once (all pools together)."""
    env = os.environ.get("RL_REASON_SANDBOX_MAX_SERVERS")
    if env:
        return max(1, int(env))
    return max(8, 2 * (os.cpu_count() or 1))


def lease_dir() -> str:
    env = os.environ.get("RL_REASON_SANDBOX_LEASE_DIR")
    if env:
        os.makedirs(env, mode=0o700, exist_ok=True)
        return env
    # One per user (leases name uids only as root; another user's pools never use them). /run/lock and
    # /dev/shm are machine-local tmpfs that nothing cleans behind a running pool's back, unlike /tmp.
    for base in ("/run/lock", "/dev/shm", tempfile.gettempdir()):
        d = os.path.join(base, f"rl_reason-sandbox-{os.geteuid()}")
        try:
            os.makedirs(d, mode=0o700, exist_ok=True)
        except OSError:
            continue
        if os.access(d, os.W_OK):
            return d
    raise OSError("no writable directory for sandbox leases; set RL_REASON_SANDBOX_LEASE_DIR")


class Lease:
    def __init__(self, index: int, fd: int) -> None:
        self.index, self.fd = index, fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _try(directory: str, k: int) -> Lease | None:
    fd = os.open(os.path.join(directory, f"slot-{k}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return Lease(k, fd)


def acquire(n: int, timeout: float = 300.0) -> list[Lease]:
    """Up to ``n`` free leases, at least one: waits up to ``timeout`` seconds while every lease is taken."""
    directory, cap = lease_dir(), max_servers()
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        got = []
        for k in range(cap):
            lease = _try(directory, k)
            if lease is not None:
                got.append(lease)
                if len(got) == n:
                    break
        if got:
            return got
        if time.monotonic() >= deadline:
            raise TimeoutError(f"all {cap} sandbox server slots of this machine are taken (waited {timeout:.0f} s); "
                               "raise RL_REASON_SANDBOX_MAX_SERVERS or give each pool fewer slots "
                               "(RL_REASON_SANDBOX_SLOTS)")
        time.sleep(delay)
        delay = min(0.5, delay * 2)
