"""Worker processes for sympy work, with a hard, kill-based deadline per task.

Why not ``signal.alarm`` in the caller: it only works in the main thread, and a long big-int
multiply holds the GIL so thread-based timeouts cannot pre-empt it (notes/math_checkers.md §4).
Why not ``concurrent.futures``: a timed-out future leaves its worker running, so a pathological
input starves the pool. Here each worker owns a pipe; a task past its deadline gets its worker
SIGKILLed and replaced, and the task answers "unknown: timeout". Inside the worker a soft
``setitimer`` alarm (the worker is its own main thread) usually ends the task earlier, without
the cost of a respawn. Safe from any thread or event loop: callers only wait on pipes.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import threading
import time
from multiprocessing.connection import wait

WORKER_MEMORY_BYTES = 3 << 30  # RLIMIT_AS per worker: a huge integer fails with MemoryError instead
_SOFT_FRACTION = 0.8  # the in-worker alarm fires at this share of the deadline; the kill comes at 100%


class _SoftTimeout(BaseException):
    """BaseException so that sympy's own ``except Exception`` blocks cannot swallow it."""


def _worker_main(conn, task_fn_path: str) -> None:  # runs in the child
    import importlib
    import resource
    import signal

    try:
        resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, WORKER_MEMORY_BYTES))
    except (ValueError, OSError):  # some sandboxes forbid it; the hard kill still bounds time
        pass
    module, _, name = task_fn_path.partition(":")
    fn = getattr(importlib.import_module(module), name)

    def on_alarm(signum, frame):
        raise _SoftTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    conn.send(("ready", None))
    while True:
        try:
            msg = conn.recv()
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


class _Worker:
    def __init__(self, ctx, task_fn_path: str):
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, task_fn_path), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False
        self.task: tuple[int, float] | None = None  # (index in batch, deadline)

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.join(timeout=5)
        except Exception:
            pass
        self.conn.close()


class WorkerPool:
    """A fixed number of worker processes running ``task_fn_path`` ("module:function")."""

    def __init__(self, task_fn_path: str, workers: int = 2, preload: tuple[str, ...] = ()):
        self.task_fn_path = task_fn_path
        self.size = max(1, int(workers))
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        self.ctx = mp.get_context(method)
        if method == "forkserver" and preload:
            # sympy is imported once in the fork server, so a replacement worker starts in ~50 ms.
            self.ctx.set_forkserver_preload(list(preload))
        self.workers: list[_Worker] = []
        self.lock = threading.Lock()
        self.respawns = 0
        self.closed = False

    def _spawn(self) -> _Worker:
        return _Worker(self.ctx, self.task_fn_path)

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
            self._ensure(len(tasks))
            results: list[tuple | None] = [None] * len(tasks)
            queue = list(range(len(tasks)))[::-1]
            start = time.monotonic()
            while queue or any(w.task for w in self.workers):
                now = time.monotonic()
                for w in self.workers:
                    if w.ready and w.task is None and queue:
                        i = queue.pop()
                        try:
                            w.conn.send((i, tasks[i], timeout))
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
                if not any(w.ready for w in self.workers) and now > start + startup_timeout:
                    for i in queue:
                        results[i] = ("error", "workers failed to start")
                    queue.clear()
                    break
            return [r if r is not None else ("error", "lost") for r in results]

    def shutdown(self) -> None:
        with self.lock:
            self.closed = True
            for w in self.workers:
                try:
                    w.conn.send(None)
                except Exception:
                    pass
            for w in self.workers:
                w.proc.join(timeout=0.5)
                w.kill()
            self.workers = []


_POOLS: dict[tuple, WorkerPool] = {}
_POOLS_LOCK = threading.Lock()


def get_pool(task_fn_path: str, workers: int | None = None, preload: tuple[str, ...] = ()) -> WorkerPool:
    """The shared pool for ``task_fn_path``, created on first use and reused."""
    workers = workers or min(4, os.cpu_count() or 1)
    key = (task_fn_path, workers)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None or pool.closed:
            pool = _POOLS[key] = WorkerPool(task_fn_path, workers, preload)
        return pool


@atexit.register
def shutdown_all() -> None:
    with _POOLS_LOCK:
        for pool in _POOLS.values():
            pool.shutdown()
        _POOLS.clear()
