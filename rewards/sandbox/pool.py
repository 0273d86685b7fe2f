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
import time

from rewards.sandbox import lease as sandbox_lease
from rewards.sandbox import seccomp as sandbox_seccomp
from rewards.machine import share

# weakest → strongest. "none": rlimits + seccomp without Landlock (filesystem readable), tried only when
# min_tier is "none"; "rlimits": no namespaces, Landlock required; "namespaces": + Landlock if the kernel has it.
TIERS = ("none", "rlimits", "namespaces")
_SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "server.py")
BLOBS = ("source", "test_code", "stdin", "exe")  # request fields that travel raw, never through the server's heap
BASE_UID = 61000  # the server with machine lease k runs programs as uid BASE_UID + 2k, their tests as + 2k + 1 (root)


def slot_uids(lease: int) -> tuple[int, int]:
    return BASE_UID + 2 * lease, BASE_UID + 2 * lease + 1


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
    def __init__(self, cfg: dict, lease_fd: int | None = None) -> None:
        # Empty environment: secrets of the trainer never reach the server's environ block. The server
        # inherits the lease's locked fd: the lease is held until the server itself is gone.
        self.proc = subprocess.Popen([os.path.realpath(sys.executable), "-I", "-S", _SERVER], env={},
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
                                     pass_fds=() if lease_fd is None else (lease_fd,),
                                     start_new_session=True, cwd="/")
        self._send(cfg)
        hello = self._recv()
        if not hello.get("ok"):
            self.close()
            raise SandboxUnavailable(hello.get("error", "server failed to start"))
        self.landlock = hello.get("landlock")  # None, or {"abi", "handled_fs", "scoped", ...}
        self.landlock_error = hello.get("landlock_error")
        self.direct = hello.get("direct", False)  # one fork per execution (root, tier namespaces)
        self.cgroup = hello.get("cgroup")  # None, or the cgroup version in force for every run
        self.cgroup_error = hello.get("cgroup_error")

    def _send(self, obj: dict) -> None:
        """A pickled header, then the blobs (program, tests, stdin, binary) raw: the server splices them
        into memfds and never holds them in its memory (see ``server``)."""
        blobs = []
        for name in BLOBS:
            v = obj.get(name)
            if v is not None:
                blobs.append((name, v.encode("utf-8", "surrogatepass") if isinstance(v, str) else bytes(v)))
        head = {k: v for k, v in obj.items() if k not in BLOBS}
        head["blobs"] = [(name, len(data)) for name, data in blobs]
        data = pickle.dumps(head, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.proc.stdin.write(b"".join([struct.pack("!I", len(data)), data, *(d for _, d in blobs)]))
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as e:
            raise ServerDied(str(e)) from e

    def _read(self, n: int) -> bytes:
        data = self.proc.stdout.read(n)
        if len(data) < n:
            raise ServerDied("fork server closed its pipe")
        return data

    def _recv(self) -> dict:
        (n,) = struct.unpack("!I", self._read(4))
        head = pickle.loads(self._read(n))  # the server is trusted code (root, no user input runs in it)
        sizes = head.pop("blobs", [])
        names = head.pop("names", []) + (head["peer"].pop("names", []) if "peer" in head else [])
        for name, size in zip(names, sizes):
            data = self._read(size)
            if name.startswith("peer_"):
                head["peer"][name[5:]] = data
            else:
                head[name] = data
        return head

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


def _config(tier: str, lease: int) -> dict:
    root = os.geteuid() == 0
    return {"tier": tier, "seccomp": sandbox_seccomp.supported(), "uid": slot_uids(lease)[0] if root else None,
            "ro_paths": runtime_paths(), "landlock": tier != "none",
            "cgroup": f"rl_reason-sandbox.{_lease_domain()}.{lease}"
            if root and os.environ.get("RL_REASON_SANDBOX_CGROUPS") != "0" else None}


def _server(tier: str, lease: sandbox_lease.Lease) -> Server:
    """A fork server for ``lease``: named by its index, holding its locked fd for as long as it lives."""
    s = Server(_config(tier, lease.index), lease.fd)
    s.lease = lease
    return s


@functools.lru_cache(maxsize=1)
def _lease_domain() -> str:
    """Leases are unique within one lease directory; so are cgroup names made from them (a server purges
    stale runs under its name at start, which must never be another live pool's)."""
    import zlib

    return f"{zlib.crc32(os.path.realpath(sandbox_lease.lease_dir()).encode()):08x}"


class Pool:
    """``slots`` fork servers at the strongest tier that works here; ``execute`` blocks until one is free.

    Each server holds a machine-wide lease (``lease``): its index names the server's uids and
    cgroups, so pools in other processes on this machine never touch its programs, and the number of
    leases bounds the servers of all pools together (a pool gets fewer slots, at least one, when they
    are short)."""

    def __init__(self, slots: int | None = None, min_tier: str = "namespaces", max_tier: str = "namespaces") -> None:
        if min_tier not in TIERS or max_tier not in TIERS:
            raise ValueError(f"min_tier must be one of {TIERS}, got {min_tier!r}")
        self._all: list[Server] = []
        self._closed = True
        try:
            self.leases = sandbox_lease.acquire(max(1, slots or share()),
                                                float(os.environ.get("RL_REASON_SANDBOX_LEASE_TIMEOUT", "300")))
        except (OSError, TimeoutError) as e:
            raise SandboxUnavailable(str(e)) from None
        self.slots = len(self.leases)
        try:
            self._start(min_tier, max_tier)
        except BaseException:
            self.close()
            raise

    def _start(self, min_tier: str, max_tier: str) -> None:
        self.tier = None
        errors = []
        first = None
        lease0 = self.leases[0]
        for tier in reversed(TIERS):
            if TIERS.index(tier) > TIERS.index(max_tier):
                continue
            if TIERS.index(tier) < TIERS.index(min_tier):
                break
            try:
                first = _server(tier, lease0)
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
        self.cgroup = first.cgroup
        self.cgroup_error = first.cgroup_error
        if self.tier == "rlimits" and not (first.landlock or {}).get("signal_scoping") and os.geteuid() != 0:
            import warnings

            warnings.warn(f"sandbox tier rlimits with Landlock ABI {self.landlock_abi} < 6: sandboxed programs run "
                          "as your uid and can signal your processes (signal scoping needs Linux >= 6.12)",
                          RuntimeWarning, stacklevel=3)
        self._free: queue.Queue = queue.Queue()
        self._all = [first] + [_server(self.tier, lease) for lease in self.leases[1:]]
        for s in self._all:
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
                fresh = _server(self.tier, server.lease)
                self._all[self._all.index(server)] = fresh
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
        for lease in getattr(self, "leases", []):
            lease.release()
