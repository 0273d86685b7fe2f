"""Worker processes for sympy work, with a hard, kill-based deadline per task.

Why not ``signal.alarm`` in the caller: Python runs signal handlers in the main thread only (see the
``signal`` module's documentation), and a long big-int multiply holds the GIL so thread-based timeouts
cannot pre-empt it.
Why not ``concurrent.futures``: a timed-out future leaves its worker running, so a pathological
input starves the pool. Here each worker owns a pipe; a task past its deadline gets its worker
SIGKILLed and replaced, and the task answers "unknown: timeout". Inside the worker a soft
``setitimer`` alarm (the worker is its own main thread) usually ends the task earlier, without
the cost of a respawn. Safe from any thread or event loop: callers only wait on pipes.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection, wait

from rewards.machine import share

WORKER_MEMORY_BYTES = 3 << 30  # RLIMIT_AS per worker: a huge integer fails with MemoryError instead
_SOFT_FRACTION = 0.8  # the in-worker alarm fires at this share of the deadline; the kill comes at 100%


class _SoftTimeout(BaseException):
    """BaseException so that sympy's own ``except Exception`` blocks cannot swallow it."""


def _serve(fd_in: int, fd_out: int, task_fn_path: str) -> None:  # runs in the child
    import importlib
    import resource
    import signal

    conn_in = Connection(fd_in, writable=False)
    conn = Connection(fd_out, readable=False)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, WORKER_MEMORY_BYTES))
    except (ValueError, OSError):  # some sandboxes forbid it; the hard kill still bounds time
        pass
    module, _, name = task_fn_path.partition(":")
    fn = getattr(importlib.import_module(module), name)

    def on_alarm(signum, frame):
        raise _SoftTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the trainer is the parent's business
    conn.send(("ready", None))
    while True:
        try:
            msg = conn_in.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        task_id, args, timeout = msg
        try:
            signal.setitimer(signal.ITIMER_REAL, max(timeout * _SOFT_FRACTION, 0.01))
            try:
                out = ("ok", fn(*args))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _SoftTimeout:
            out = ("timeout", None)
        except MemoryError:
            out = ("error", "memory limit")
        except RecursionError:
            out = ("error", "nesting too deep")
        except Exception as exc:  # a checker bug must not kill the worker; report it as unknown
            out = ("error", f"{type(exc).__name__}: {str(exc)[:200]}")
        try:
            conn.send((task_id, out))
        except _SoftTimeout:
            conn.send((task_id, ("timeout", None)))


_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # holds rewards/


class _Worker:
    """A child interpreter started with subprocess (not multiprocessing: spawn/forkserver would
    re-import the caller's ``__main__``, and fork is unsafe in a process with CUDA/threads)."""

    def __init__(self, task_fn_path: str):
        r1, w1 = os.pipe()  # parent -> child
        r2, w2 = os.pipe()  # child -> parent
        code = (
            f"import sys; sys.path.insert(0, {_ROOT!r}); from rewards.math.pool import _serve; "
            f"_serve({r1}, {w2}, {task_fn_path!r})"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], pass_fds=(r1, w2), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        os.close(r1)
        os.close(w2)
        self.out = Connection(w1, readable=False)
        self.conn = Connection(r2, writable=False)
        self.ready = False
        self.task: tuple[int, float] | None = None  # (index in batch, deadline)

    def send(self, msg) -> None:
        self.out.send(msg)

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except Exception:
            pass
        for c in (self.conn, self.out):
            try:
                c.close()
            except OSError:
                pass


class WorkerPool:
    """A fixed number of worker processes running ``task_fn_path`` ("module:function")."""

    def __init__(self, task_fn_path: str, workers: int = 2):
        self.task_fn_path = task_fn_path
        self.size = max(1, int(workers))
        self.workers: list[_Worker] = []
        self.lock = threading.Lock()
        self.respawns = 0
        self.start_failures = 0  # workers that died before saying "ready"
        self.closed = False

    def _spawn(self) -> _Worker:
        return _Worker(self.task_fn_path)

    def _ensure(self, n: int) -> None:
        while len(self.workers) < min(n, self.size):
            self.workers.append(self._spawn())

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self.workers[self.workers.index(w)] = self._spawn()
        self.respawns += 1

    def run(self, tasks: list[tuple], timeout: float, startup_timeout: float = 60.0) -> list[tuple]:
        """Run ``fn(*args)`` for every args tuple; each answer is ("ok", value), ("timeout", None)
        or ("error", reason). A task's deadline starts when a warm worker receives it."""
        if not tasks:
            return []
        with self.lock:
            if self.closed:
                raise RuntimeError("the math checker pool was shut down")
            if self.start_failures >= 3 * self.size and not any(w.ready for w in self.workers):
                # workers cannot start here (a broken environment): answer at once, do not stall
                return [("error", "workers failed to start")] * len(tasks)
            self._ensure(self.size)  # the whole pool at once: a late worker would import sympy mid-batch
            results: list[tuple | None] = [None] * len(tasks)
            queue = list(range(len(tasks)))[::-1]
            start = time.monotonic()
            while queue or any(w.task for w in self.workers):
                now = time.monotonic()
                for w in self.workers:
                    if w.ready and w.task is None and queue:
                        i = queue.pop()
                        try:
                            w.send((i, tasks[i], timeout))
                            w.task = (i, now + timeout)
                        except (OSError, BrokenPipeError):
                            queue.append(i)
                            self._replace(w)
                waits = [w.task[1] for w in self.workers if w.task]
                if not any(w.ready for w in self.workers):
                    waits.append(start + startup_timeout)
                wait_s = max(0.0, min(waits) - time.monotonic()) if waits else 0.05
                ready = wait([w.conn for w in self.workers], timeout=wait_s)
                for w in list(self.workers):
                    if w.conn not in ready:
                        continue
                    try:
                        tag, out = w.conn.recv()
                    except (EOFError, OSError):  # the worker died (e.g. killed by the OS)
                        if w.task:
                            results[w.task[0]] = ("error", "worker died")
                        if not w.ready:
                            self.start_failures += 1
                        if self.start_failures >= 3 * self.size:
                            w.kill()
                            self.workers.remove(w)
                            continue
                        self._replace(w)
                        continue
                    if tag == "ready":
                        w.ready = True
                    elif w.task and tag == w.task[0]:
                        results[tag] = out
                        w.task = None
                now = time.monotonic()
                for w in list(self.workers):
                    if w.task and now >= w.task[1]:
                        results[w.task[0]] = ("timeout", None)
                        self._replace(w)
                broken = self.start_failures >= 3 * self.size and not any(w.ready for w in self.workers)
                if broken or (not any(w.ready for w in self.workers) and now > start + startup_timeout):
                    for i in queue:
                        results[i] = ("error", "workers failed to start")
                    queue.clear()
                    break
            return [r if r is not None else ("error", "lost") for r in results]

    def warm(self, timeout: float = 60.0) -> bool:
        """Start every worker and wait until each has imported its task module."""
        with self.lock:
            self._ensure(self.size)
            end = time.monotonic() + timeout
            while not all(w.ready for w in self.workers) and time.monotonic() < end:
                for w in self.workers:
                    if not w.ready and w.conn.poll(max(0.0, min(0.05, end - time.monotonic()))):
                        try:
                            tag, _ = w.conn.recv()
                            w.ready = tag == "ready"
                        except (EOFError, OSError):
                            self._replace(w)
            return all(w.ready for w in self.workers)

    def shutdown(self) -> None:
        with self.lock:
            self.closed = True
            for w in self.workers:
                try:
                    w.send(None)
                except Exception:
                    pass
            for w in self.workers:
                try:
                    w.proc.wait(timeout=0.5)
                except Exception:
                    pass
                w.kill()
            self.workers = []


_POOLS: dict[tuple, WorkerPool] = {}
_POOLS_LOCK = threading.Lock()


def get_pool(task_fn_path: str, workers: int | None = None) -> WorkerPool:
    """The shared pool for ``task_fn_path``, created on first use and reused."""
    workers = workers or share(4)  # this rank's share of the node's cores, at most 4
    # keyed by pid too: a forked child must not share (or, at exit, kill) its parent's workers
    key = (task_fn_path, workers, os.getpid())
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None or pool.closed:
            pool = _POOLS[key] = WorkerPool(task_fn_path, workers)
        return pool


@atexit.register
def shutdown_all() -> None:
    with _POOLS_LOCK:
        for key, pool in list(_POOLS.items()):
            if key[2] == os.getpid():
                pool.shutdown()
            del _POOLS[key]
