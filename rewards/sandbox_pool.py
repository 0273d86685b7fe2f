"""Trusted side of the fork servers: spawn them with an empty environment, probe the isolation
tier, hand out one server per execution (concurrency = slots), restart a server that died."""

from __future__ import annotations

import functools
import os
import pickle
import queue
import struct
import subprocess
import sys
import sysconfig
import threading
import time

# weakest → strongest. "none": rlimits + seccomp without Landlock (filesystem readable), tried only when
# min_tier is "none"; "rlimits": no namespaces, Landlock required; "namespaces": + Landlock if the kernel has it.
TIERS = ("none", "rlimits", "namespaces")
_SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_server.py")
BASE_UID = 61000  # slot i runs user code as uid BASE_UID + i (root only)


class SandboxUnavailable(RuntimeError):
    """The machine cannot provide the configured minimum isolation tier."""


class ServerDied(RuntimeError):
    pass


def site_paths() -> list[str]:
    """The caller's site-packages, importable (read-only) inside the sandbox: numpy and friends."""
    return list(_site_paths())


@functools.lru_cache(maxsize=1)
def _site_paths() -> tuple[str, ...]:  # sysconfig + realpath cost ~0.4 ms; called once per run_tests
    out = []
    for key in ("purelib", "platlib"):
        p = os.path.realpath(sysconfig.get_paths()[key])
        if p not in out:
            out.append(p)
    return tuple(out)


def runtime_paths() -> list[str]:
    """Read-only paths the sandbox sees: the system runtime, the interpreter and its site-packages."""
    paths = ["/usr", "/lib", "/lib64", "/bin", "/sbin", os.path.realpath(sys.base_prefix)]
    return paths + [p for p in site_paths() if p not in paths]


class Server:
    def __init__(self, cfg: dict) -> None:
        # Empty environment: secrets of the trainer never reach the server's environ block.
        self.proc = subprocess.Popen([os.path.realpath(sys.executable), "-I", "-S", _SERVER], env={},
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
                                     start_new_session=True, cwd="/")
        self._send(cfg)
        hello = self._recv()
        if not hello.get("ok"):
            self.close()
            raise SandboxUnavailable(hello.get("error", "server failed to start"))
        self.landlock = hello.get("landlock")  # None, or {"abi", "handled_fs", "scoped", ...}
        self.landlock_error = hello.get("landlock_error")
        self.direct = hello.get("direct", False)  # one fork per execution (root, tier namespaces)

    def _send(self, obj) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.proc.stdin.write(struct.pack("!I", len(data)) + data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as e:
            raise ServerDied(str(e)) from e

    def _recv(self):
        head = self.proc.stdout.read(4)
        if len(head) < 4:
            raise ServerDied("fork server closed its pipe")
        (n,) = struct.unpack("!I", head)
        return pickle.loads(self.proc.stdout.read(n))  # the server is trusted code (root, no user input runs in it)

    def execute(self, req: dict) -> dict:
        if not req.get("trace"):
            self._send(req)
            return self._recv()
        t0 = time.perf_counter_ns()
        self._send(req)
        t1 = time.perf_counter_ns()
        res = self._recv()
        res.setdefault("trace", []).extend([("p_send", t0), ("p_sent", t1), ("p_recvd", time.perf_counter_ns())])
        return res

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _config(tier: str, slot: int) -> dict:
    root = os.geteuid() == 0
    return {"tier": tier, "seccomp": os.uname().machine == "x86_64", "uid": BASE_UID + slot if root else None,
            "ro_paths": runtime_paths(), "landlock": tier != "none"}


class Pool:
    """``slots`` fork servers at the strongest tier that works here; ``execute`` blocks until one is free."""

    def __init__(self, slots: int | None = None, min_tier: str = "namespaces", max_tier: str = "namespaces") -> None:
        if min_tier not in TIERS or max_tier not in TIERS:
            raise ValueError(f"min_tier must be one of {TIERS}, got {min_tier!r}")
        self.slots = max(1, slots or _cores())
        self.tier = None
        errors = []
        first = None
        for tier in reversed(TIERS):
            if TIERS.index(tier) > TIERS.index(max_tier):
                continue
            if TIERS.index(tier) < TIERS.index(min_tier):
                break
            try:
                first = Server(_config(tier, 0))
                self.tier = tier
                break
            except (SandboxUnavailable, ServerDied) as e:
                errors.append(f"{tier}: {e}")
        if first is None:
            raise SandboxUnavailable(
                f"no sandbox tier >= {min_tier!r} works on this machine ({'; '.join(errors) or 'nothing tried'}); "
                "run as root or enable unprivileged user namespaces (kernel.unprivileged_userns_clone=1), "
                "or lower min_tier knowingly: RL_REASON_SANDBOX_MIN_TIER=rlimits (no namespaces; needs Landlock), "
                "=none (not even Landlock: the whole filesystem is readable by the programs)")
        self.landlock = first.landlock
        self.landlock_abi = first.landlock["abi"] if first.landlock else 0
        if self.tier == "rlimits" and not (first.landlock or {}).get("signal_scoping") and os.geteuid() != 0:
            import warnings

            warnings.warn(f"sandbox tier rlimits with Landlock ABI {self.landlock_abi} < 6: sandboxed programs run "
                          "as your uid and can signal your processes (signal scoping needs Linux >= 6.12)",
                          RuntimeWarning, stacklevel=2)
        self._free: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._all = [first] + [Server(_config(self.tier, i)) for i in range(1, self.slots)]
        for i, s in enumerate(self._all):
            s.slot = i
            self._free.put(s)
        self._closed = False

    def execute(self, req: dict) -> dict:
        """Run one request on a free server; a dead server is replaced and the error re-raised."""
        if self._closed:
            raise ServerDied("sandbox pool is shut down")
        t_q = time.perf_counter_ns() if req.get("trace") else 0
        server = self._free.get()
        try:
            res = server.execute(req)
            if t_q:
                res.setdefault("trace", []).append(("p_queue", t_q))
            return res
        except (ServerDied, OSError, EOFError, pickle.UnpicklingError):
            server.close()
            try:
                fresh = Server(_config(self.tier, server.slot))
                fresh.slot = server.slot
                server = fresh
            except Exception:
                pass
            raise ServerDied("fork server died during an execution")
        finally:
            self._free.put(server)

    def close(self) -> None:
        self._closed = True
        for s in self._all:
            s.close()
        while not self._free.empty():
            self._free.get_nowait().close()
def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
