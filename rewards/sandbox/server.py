"""The fork server ("zygote"): one per slot, started with an empty environment as
``python -I -S rewards/sandbox/server.py``. It builds a read-only minimal root once, then forks one
sandboxed child per test. With the trusted parent it speaks a pickled header followed by raw blobs
(program, tests, stdin, outputs) that it splices between its pipe and memfds without reading them: the
server is the image every program starts from, so no run's data may ever be in its memory.

Per execution (tier ``namespaces``), as real root ("direct", one fork)::

    server: unshare(NEWPID) ─fork─► B (pid 1), setns(own pid ns) back; pidfd poll (wall) + wait4(B)
    B: in the fresh net/IPC/UTS namespaces the server made (and left) after the previous reply →
       unshare(NEWNS) → fresh tmpfs ...

and in a user namespace (no setns back into our pid namespace; two forks)::

    server ─fork─► A: unshare(NEWNS|NEWPID|NEWIPC|NEWUTS|NEWNET), wall timer, wait4 ─fork─► B (pid 1)

then, both ways::

    B: joins the run's cgroups → fresh tmpfs /sandbox (cwd, /tmp and /dev/shm point into it) → setsid →
       stdio memfds → Landlock (if the kernel has it) → close other fds → rlimits → drop to the lease's
       uid → no-new-privs + seccomp → ack → user code.   B exits ⇒ the pid namespace dies.

Assert tests: B runs the program and serves calls; the tests run in the slot's ``Judge`` (a process
forked once and sandboxed for good), which gets each run's test code and pipe ends over a socketpair.

Tier ``rlimits`` (no namespaces): same minus namespaces/new root; Landlock is required there (read/
execute on the runtime only, read/write on a per-exec 0700 dir, signal and abstract-socket scoping);
afterwards a kill of every process of the lease's uid (root) or of B's process group, and of the run's
cgroup. Tier ``none`` is ``rlimits`` without Landlock (a kernel without it; only with
``RL_REASON_SANDBOX_MIN_TIER=none``).
"""

from __future__ import annotations

import builtins
import os
import pickle
import resource
import select
import signal
import socket
import struct
import sys
import time


# Started as a script with -I -S, so the package root is not on sys.path: put it there for our own
# imports only, and take it off again before any program runs.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, _ROOT)
from rewards.sandbox import cgroup as sandbox_cgroup  # noqa: E402
from rewards.sandbox import harness as sandbox_harness  # noqa: E402
from rewards.sandbox import landlock as sandbox_landlock  # noqa: E402
from rewards.sandbox import linux as L  # noqa: E402
from rewards.sandbox import seccomp as sandbox_seccomp  # noqa: E402

sys.path.remove(_ROOT)

# Pre-import what user programs commonly import, so they pay nothing for it after the fork. Not more:
# every fork and exit pays for the server's size and for the at-fork handlers modules register
# (measured on a 2-vCPU VM: fork + exit + wait 0.75 ms for a bare interpreter, 2.0 ms with the former list
# that had unittest.mock, multiprocessing, concurrent.futures, subprocess, hashlib, dataclasses...;
# threading alone, through its at-fork handler, costs 0.55 ms per fork).
# Other modules are imported by the program itself, from the read-only runtime (in the namespace tier
# its path is world-traversable in the private root); tier rlimits keeps the long list (see main()).
import array, bisect, collections, copy, decimal, fractions, functools, heapq, itertools  # noqa: E401,E402,F401
import json, math, operator, random, re, string, traceback, typing, io, enum, abc, contextlib  # noqa: E401,E402,F401
import numbers, ctypes, fcntl, importlib, ast, symtable, linecache, cmath  # noqa: E401,E402,F401
import pickle as _pickle, struct as _struct, time as _time  # noqa: E401,E402,F401
RLIMITS_TIER_EXTRA = ("threading", "dataclasses", "datetime", "queue", "statistics", "unittest", "subprocess",
                      "hashlib", "textwrap", "socket", "mmap", "multiprocessing", "multiprocessing.pool",
                      "concurrent.futures", "csv", "zlib", "base64", "unittest.mock", "tempfile", "shutil")

ACK = b"READY"
SETUP_FAILED = 125
DEVICES = ("null", "zero", "full", "random", "urandom")


# ---- the wire: a pickled header, then raw blobs that never enter this process's memory ----------
# Programs, test code, stdin and outputs are spliced between the trainer's pipe and memfds by the kernel.
# The fork server is the image every sandboxed child starts from, so nothing of any run (another
# completion's source, the tests of the same problem judged a moment ago, a sibling's output) may ever
# be in its heap, freed or not: a program could scan its inherited memory for it.
def _read_exact(fd: int, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        b = os.read(fd, n - got)
        if not b:
            raise EOFError("request pipe closed")
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def _read_request(fd: int):
    """The next request (None at EOF), its blobs as memfds under ``req["blobs"]``: {name: fd}."""
    head = os.read(fd, 4)
    if not head:
        return None
    if len(head) < 4:
        head += _read_exact(fd, 4 - len(head))
    (n,) = struct.unpack("!I", head)
    req = pickle.loads(_read_exact(fd, n))
    blobs = {}
    try:
        for name, size in req.get("blobs", ()):
            blobs[name] = os.memfd_create(name, os.MFD_CLOEXEC)
            left = size
            while left:
                moved = os.splice(fd, blobs[name], left)
                if not moved:
                    raise EOFError("request pipe closed")
                left -= moved
    except BaseException:
        for mfd in blobs.values():
            os.close(mfd)
        raise
    req["blobs"] = blobs
    return req


def _write_reply(fd: int, head: dict, blobs=()) -> None:
    """``head`` pickled, then each ``(memfd, offset, length)`` spliced out without reading it here."""
    head["blobs"] = [n for _, _, n in blobs]
    data = pickle.dumps(head, protocol=pickle.HIGHEST_PROTOCOL)
    data = struct.pack("!I", len(data)) + data
    while data:
        data = data[os.write(fd, data):]
    for mfd, off, left in blobs:
        while left:
            moved = os.splice(mfd, fd, left, offset_src=off)
            if not moved:
                raise OSError("short splice")
            off += moved
            left -= moved


def build_root(ro_paths: list[str]) -> None:
    """Private mount namespace whose root is a read-only tmpfs holding only the runtime."""
    L.unshare(L.CLONE_NEWNS)
    L.mount(None, "/", None, L.MS_REC | L.MS_PRIVATE)
    stage = "/tmp"  # shadowed in our namespace only; nothing is written to the host
    L.mount("tmpfs", stage, "tmpfs", L.MS_NOSUID, "size=1m,mode=0755")
    os.umask(0o022)
    for top in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        if os.path.islink("/" + top):
            os.symlink(os.readlink("/" + top), f"{stage}/{top}")
    ro = L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | L.MS_NOSUID
    for path in ro_paths:
        if os.path.islink(path) or not os.path.isdir(path):
            continue
        os.makedirs(stage + path, exist_ok=True)
        L.mount(path, stage + path, None, L.MS_BIND | L.MS_REC)
        L.mount(None, stage + path, None, ro | L.MS_NODEV)
    os.makedirs(f"{stage}/dev")
    for dev in DEVICES:
        open(f"{stage}/dev/{dev}", "w").close()
        L.mount(f"/dev/{dev}", f"{stage}/dev/{dev}", None, L.MS_BIND)
        L.mount(None, f"{stage}/dev/{dev}", None, ro)
    os.symlink("/sandbox/shm", f"{stage}/dev/shm")
    os.symlink("/proc/self/fd", f"{stage}/dev/fd")
    os.symlink("/sandbox/tmp", f"{stage}/tmp")
    os.mkdir(f"{stage}/sandbox")
    os.mkdir(f"{stage}/.old")
    L.pivot_root(stage, f"{stage}/.old")
    os.chdir("/")
    L.umount2("/.old", L.MNT_DETACH)
    os.rmdir("/.old")
    L.mount(None, "/", None, ro | L.MS_NODEV)


class Child:
    """One sandboxed process of an execution: its request, its fds (target number -> ours), its uid.
    While it runs: ``fd`` becomes readable when it is over, ``finish()`` collects its meta, ``stop()``
    kills it."""

    def __init__(self, req: dict, fdmap: dict, uid, fds: dict) -> None:
        self.req, self.fdmap, self.uid, self.fds = req, fdmap, uid, fds
        self.pipes = ()  # assert tests: every pipe fd of the execution (the candidate needs two of them)
        self.blobs = {}  # name -> memfd, read into this child's request before user code
        self.pid = self.fd = -1
        self.direct = True  # we wait for it ourselves (pidfd); False: its parent A reports through a pipe
        self.meta = None  # {"status", "cpu", "maxrss_kb", "wall", "wall_timeout"} once it is over
        self.done = False

    def finish(self, timed_out: bool) -> None:
        self.done = True
        if self.direct:
            _, status, ru = os.wait4(self.pid, 0)
            self.meta = {"status": status, "cpu": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss,
                         "wall": time.perf_counter() - self.t0, "wall_timeout": timed_out}
        else:  # A closed its end after writing B's meta (or died)
            while os.read(self.fd, 4096):
                pass
            meta = _read_all(self.fds["meta"], 4096)
            self.meta = pickle.loads(meta) if meta else None  # None: A died before reporting
            if self.meta and timed_out:  # we stopped it at our deadline (SIGTERM), before A's own timer
                self.meta["wall_timeout"] = True
        os.close(self.fd)
        self.fd = -1

    def stop(self) -> None:
        if self.direct:
            try:
                signal.pidfd_send_signal(self.fd, signal.SIGKILL)  # pid 1: its whole namespace dies
            except OSError:
                pass
        else:
            _signal(self.pid, signal.SIGTERM)  # A kills its B, then reports


class TestsJob:
    """Assert tests handed to the slot's judge process (see ``Judge``); waited for like a Child."""

    def __init__(self, judge: "Judge", fds: dict, head: dict, job_fds: list) -> None:
        self.judge, self.fds, self.fd, self.meta, self.done = judge, fds, judge.sock.fileno(), None, False
        self.head, self.job_fds = head, job_fds

    def submit(self) -> None:
        self.judge.submit(self.head, self.job_fds)

    def finish(self, timed_out: bool) -> None:
        self.done = True
        self.meta = self.judge.reply()  # None: the judge broke (the call then reports a sandbox error)

    def stop(self) -> None:
        pass  # once the program is killed, the tests see EOF and end; the judge enforces the wall limit too


class Judge:
    """The slot's tests process. Assert tests must run where the program cannot reach them, but a fresh
    fully isolated process per run (fork of the server, namespaces, Landlock, seccomp, uid) doubled the
    cost of an execution. So the server forks this process once and sandboxes it for good: its own uid
    (the slot uid + 1), no writable path, seccomp, no-new-privs, not dumpable, fresh net/IPC/UTS
    namespaces; it has never seen a program and only ever gets plain data from one. It runs each run's
    tests itself, in a fresh namespace, with the interpreter's state put back after each (builtins, path,
    recursion limit, tracing, stdio, random reseeded): a fork per run cost as much as the fresh process.
    Replaced after ``JOBS`` runs, after any failure, and when the server dies."""

    JOBS = 256

    def __init__(self, server: "Server") -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                _judge_main(server, theirs)
            finally:
                os._exit(SETUP_FAILED)
        theirs.close()
        self.pid, self.sock, self.jobs = pid, ours, 0

    def submit(self, head: dict, fds: list) -> None:
        self.jobs += 1
        socket.send_fds(self.sock, [pickle.dumps(head)], fds)

    def reply(self):
        try:
            data = self.sock.recv(1 << 16)
        except OSError:
            data = b""
        return pickle.loads(data) if data else None

    def close(self) -> None:
        _signal(self.pid, signal.SIGKILL)
        self.sock.close()
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:  # SIGCHLD ignored (two-fork mode): the kernel reaped it
            pass


def _judge_main(server: "Server", sock) -> None:
    """In the judge: sandbox ourselves once, then fork a child per job and report how it ended."""
    L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    if server.tier == "namespaces":
        L.unshare(L.CLONE_NEWNET | L.CLONE_NEWIPC | L.CLONE_NEWUTS)  # none of a program's, ever
    os.setsid()
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    keep = sock.fileno()
    if keep < 3:
        keep = os.dup(keep)
    if server.landlock is not None:  # before closerange: the rule fds are among those it closes
        server.landlock.apply([])
    os.closerange(3, keep)
    os.closerange(keep + 1, 1 << 16)
    sock = socket.socket(fileno=keep)
    for res, val in ((resource.RLIMIT_CORE, (0, 0)), (resource.RLIMIT_MEMLOCK, (0, 0)),
                     (resource.RLIMIT_MSGQUEUE, (0, 0)), (resource.RLIMIT_NOFILE, (_HIGH_FD + 64,) * 2)):
        resource.setrlimit(res, val)
    uid = None if server.uid is None else server.uid + 1
    if uid is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (16, 16))
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    if server.seccomp is not None:
        server.seccomp.install()
    else:
        L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
    L.prctl(L.PR_SET_DUMPABLE, 0)  # not even a process of our uid may read or trace us
    os.chdir("/")
    os.environ.clear()
    os.environ.update(_sandbox_env("/", "/"))
    sys.set_int_max_str_digits(0)
    sys.argv = ["tests.py"]
    clean = {"stdout": open(1, "w", encoding="utf-8", closefd=False),
             "stderr": open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False), "null": 0,
             "builtins": dict(builtins.__dict__), "path": list(sys.path), "recursion": sys.getrecursionlimit()}
    sys.stdout, sys.stderr = clean["stdout"], clean["stderr"]
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 16)
        except OSError:
            os._exit(0)
        if not data:  # the server is gone
            os._exit(0)
        head = pickle.loads(data)
        sys.path[:0] = head.get("python_paths", [])
        try:
            meta = _judge_one(head, fds, clean)
        except BaseException as e:  # noqa: BLE001 - reported as a sandbox error, never as a verdict
            meta = {"error": f"{type(e).__name__}: {e}"}
        finally:
            for fd in fds:
                os.close(fd)
        sock.send(pickle.dumps(meta))


class _JobTimeout(BaseException):
    """Raised in the tests by the wall timer (BaseException: a test's ``except Exception`` does not stop it)."""


def _judge_one(head: dict, fds: list, clean: dict) -> dict:
    """One run's tests, in this process: a fresh namespace, stdio on the run's memfds, fresh random state,
    builtins and interpreter settings as they were before the first job; the wall limit by a timer."""
    test_code, source, c2t_r, t2c_w, out, err, result = fds
    lim = head["limits"]
    req = {"limits": lim, "entry_point": head.get("entry_point"),
           "test_code": _read_all(test_code, 1 << 62, pread=True).decode("utf-8", "replace"),
           "source": _read_all(source, 1 << 62, pread=True).decode("utf-8", "replace")}
    limits = (lim["output_bytes"], 2 * (lim["memory_mb"] << 20))
    if clean.get("limits") != limits:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits[0], resource.RLIM_INFINITY))
        resource.setrlimit(resource.RLIMIT_AS, (limits[1], resource.RLIM_INFINITY))
        clean["limits"] = limits
    random.seed()
    os.dup2(out, 1)  # under the judge's own stdio objects, which stay (and are flushed after)
    os.dup2(err, 2)
    timed_out = []

    def on_alarm(signum, frame):
        timed_out.append(1)
        raise _JobTimeout()

    t0, ru0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, lim["wall_s"])
    try:
        outcome = sandbox_harness.judge(req, c2t_r, t2c_w, result)
    except _JobTimeout:
        outcome = "timeout"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for fd in (c2t_r, t2c_w):  # the program sees EOF and exits now
            os.close(fd)
            fds.remove(fd)
        sys.stdout, sys.stderr = clean["stdout"], clean["stderr"]
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except BaseException:  # past the output cap
                pass
        os.dup2(clean["null"], 1)
        os.dup2(clean["null"], 2)
        builtins.__dict__.clear()
        builtins.__dict__.update(clean["builtins"])
        sys.path[:] = clean["path"]
        sys.setrecursionlimit(clean["recursion"])
        sys.settrace(None)
        sys.setprofile(None)
        os.chdir("/")
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"status": 0 if outcome == "pass" else 1 << 8,
            "cpu": ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime, "maxrss_kb": ru.ru_maxrss,
            "wall": time.perf_counter() - t0, "wall_timeout": bool(timed_out)}


class Server:
    def __init__(self, cfg: dict) -> None:
        self.tier = cfg["tier"]
        self.uid = cfg.get("uid")  # None: keep our uid (non-root, or userns with one mapping)
        # Without a mount namespace: no socket() at all (the host's named UNIX sockets are reachable and
        # Landlock does not cover them), and without a slot uid either, no chmod & co. on the owner's files.
        private_root = self.tier == "namespaces"
        self.seccomp = sandbox_seccomp.Filter(deny_metadata=not private_root and self.uid is None,
                                              unix_sockets=private_root) if cfg.get("seccomp") else None
        # Per-run cgroups (whole-tree memory, pids and CPU time, one core of CPU per run), made beneath the
        # cgroups we were started in, before /sys goes away; None where the machine does not allow them.
        self.cg, self.cg_error = None, None
        if cfg.get("cgroup"):
            try:
                self.cg = sandbox_cgroup.SlotCgroups.create(cfg["cgroup"])
            except OSError as e:
                self.cg_error = str(e)
        self._cg_done: list = []  # runs to release after the reply (recycled or removed)
        self._cg_limits = None  # the last run's cgroup limits: the next run's cgroup is made ahead with them
        self._reap_later: list = []  # killed candidates whose exit we collect after the reply
        self.judge = None  # the process that runs assert tests, started on the first assert request
        self._null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)  # stdin of a program given none
        # Direct mode (real root, tier namespaces): one fork per execution instead of two. The server
        # unshares only CLONE_NEWPID (which affects its children, not itself), forks B as pid 1 of the new
        # pid namespace, and setns()es its pid_for_children back; B unshares the other namespaces itself and
        # the server waits for B (pidfd + wait4). Needs setns into our own pid namespace, hence real root
        # (in a userns the pid namespace belongs to the init userns) and pidfd_open (Linux >= 5.3).
        self.direct = False
        self._fresh = False  # direct mode: our net/IPC/UTS namespaces are new and no execution was forked into them
        self._pidns = -1
        if self.tier == "namespaces":
            if os.geteuid() != 0:
                _enter_userns()
            elif cfg.get("direct", True) and hasattr(os, "pidfd_open"):
                # before /proc goes away
                self._pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
                self._host_net = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)  # for netns=False
            build_root(cfg["ro_paths"])
            if self._pidns >= 0:
                try:  # probe (a no-op): may we setns into our own pid namespace?
                    L.setns(self._pidns, L.CLONE_NEWPID)
                except OSError:  # no: the two-fork path
                    os.close(self._pidns)
                    os.close(self._host_net)
                    self._pidns = -1
                else:  # the per-execution unshare + restore; an error here fails the start-up
                    L.unshare(L.CLONE_NEWPID)
                    L.setns(self._pidns, L.CLONE_NEWPID)
                    self.direct = True
                    self.prepare()  # the first execution's fresh net/IPC/UTS namespaces
        self.landlock = None
        self.landlock_error = None
        if cfg.get("landlock") and self.tier != "none":
            try:
                self.landlock = _landlock(self.tier, cfg["ro_paths"])
            except OSError as e:
                if self.tier == "rlimits":  # the only filesystem boundary of this tier: fail closed
                    raise sandbox_landlock.LandlockUnavailable(e.errno, f"tier rlimits needs Landlock: {e.strerror}") \
                        from None
                self.landlock_error = str(e)  # namespaces: an extra layer only

        if self.tier == "namespaces":
            # Constant here (/sandbox is the same path in every run): set once, inherited by every B,
            # instead of rebuilt in each child (~0.25 ms of copy-on-write faults there). The server never
            # execs and reads no variable; its original environ block was empty (started with env={}).
            os.environ.clear()
            os.environ.update(_sandbox_env("/sandbox/work", "/sandbox/tmp"))

    # ---- per execution -------------------------------------------------------------
    def execute(self, req: dict, send) -> None:
        """Run one request; ``send(head, blobs)`` writes the reply (while the memfds are still open)."""
        tr = [("srv_start", _ns())] if req.get("trace") else None
        lim = req["limits"]
        kids, fds = self._children(req)
        self._pipes = list(kids[0].pipes)
        run = None
        try:
            if tr is not None:
                tr.append(("srv_memfds", _ns()))
            if self.cg is not None:
                self._cg_limits = (lim["memory_mb"] << 20, lim["nproc"], 1.0)
                run = self.cg.new_run(*self._cg_limits)
            t0 = time.perf_counter()
            self._start(kids, lim, run, req)
            if tr is not None:
                tr.append(("srv_forked", _ns()))
            cpu_out = self._wait(kids, lim, run)
            if tr is not None:
                tr.append(("a_waited", _ns()))
            wall = time.perf_counter() - t0
            tree = None
            if run is not None:
                if self.tier != "namespaces":  # daemons of the run (namespaces: its pid namespaces took them)
                    run.kill_all()
                tree = {"cpu": run.cpu_ns() / 1e9, "oom": run.oom_killed()}
            head, blobs = self._collect(kids, lim, wall, cpu_out, tree, tr)
            send(head, blobs)
        finally:
            self._close_pipes()
            for fd in fds:
                os.close(fd)
            if run is not None:
                run.close_fds()
                self._cg_done.append(run)  # released after the reply, by prepare()

    def _close_pipes(self) -> None:
        """Once the processes have their ends: a side must see EOF as soon as the other one is gone."""
        while self._pipes:
            os.close(self._pipes.pop())

    def _children(self, req: dict):
        """The processes of one execution: the program alone, or (assert tests) the candidate program and
        a job for the judge (the tests), joined by two pipes; each its own stdio memfds. Returns (them,
        the memfds we made). Blobs (``req["blobs"]``, closed by the caller) reach a process only as fds
        it reads before user code: the candidate is never given the test code."""
        mine = []
        blobs = req["blobs"]

        def memfd(name, flags=0):
            mine.append(os.memfd_create(name, flags))
            return mine[-1]

        def stdio(stdin=None):
            d = {n: memfd(n) for n in ("stdout", "stderr", "ack")}
            if not self.direct:
                d["meta"] = memfd("meta")  # where A reports B's end
            d["stdin"] = stdin if stdin is not None else self._null
            return d

        if "stdin" in blobs:
            os.lseek(blobs["stdin"], 0, os.SEEK_SET)  # spliced in: the offset is at the end
        if req["mode"] != "assert":
            f = stdio(blobs.get("stdin"))
            f["result"] = memfd("result")
            fdmap = {0: f["stdin"], 1: f["stdout"], 2: f["stderr"], 3: f["result"], 4: f["ack"]}
            if "exe" in blobs:
                fdmap[5] = blobs["exe"]  # executed via execveat, never a path
            kid = Child(req, fdmap, self.uid, f)
            kid.blobs = {k: v for k, v in blobs.items() if k == "source"}
            return [kid], mine
        if self.judge is not None and self.judge.jobs >= Judge.JOBS:
            self._drop_judge()
        if self.judge is None:
            self.judge = Judge(self)
        t2c, c2t = os.pipe2(os.O_CLOEXEC), os.pipe2(os.O_CLOEXEC)
        c = stdio()
        cand = Child({**req, "mode": "candidate"}, {0: c["stdin"], 1: c["stdout"], 2: c["stderr"], 3: t2c[0],
                                                     4: c["ack"], 5: c2t[1]}, self.uid, c)
        cand.blobs = {"source": blobs["source"]}
        cand.pipes = (*t2c, *c2t)  # closed by _close_pipes once the judge has its ends too
        t = {n: memfd(n) for n in ("stdout", "stderr", "result")}
        head = {"limits": req["limits"], "entry_point": req.get("entry_point"),
                "python_paths": req.get("python_paths", [])}
        tests = TestsJob(self.judge, t, head, [blobs["test_code"], blobs["source"], c2t[0], t2c[1], t["stdout"],
                                               t["stderr"], t["result"]])
        return [cand, tests], mine

    def prepare(self) -> None:
        """Between executions: remove the last runs' cgroups and, in direct mode, move the server into new,
        empty net/IPC/UTS namespaces for the next execution to inherit. Called after each reply is written,
        so this overlaps the trainer's turn-around; new namespaces, not copies: nothing of an earlier run is
        in them. The server itself uses no network, IPC objects or hostname."""
        while self._reap_later:  # before the cgroups: a run's cgroup is removed once its tasks are gone
            kid = self._reap_later.pop()
            os.wait4(kid.pid, 0)
            os.close(kid.fd)
        while self._cg_done:
            self.cg.release(self._cg_done.pop())
        if self.cg is not None and self._cg_limits is not None:
            try:
                self.cg.prepare(*self._cg_limits)  # the next run's cgroup, for the same limits as the last
            except OSError:
                pass
        self._new_namespaces()

    def _new_namespaces(self) -> None:
        if self.direct and not self._fresh:
            try:
                L.unshare(L.CLONE_NEWNET | L.CLONE_NEWIPC | L.CLONE_NEWUTS)
            except OSError:  # cannot give the next run its own namespaces: die, the pool restarts us
                os._exit(SETUP_FAILED)
            self._fresh = True

    def _start(self, kids, lim, run, req) -> None:
        """Start every process of the execution: a sandboxed child per program (as pid 1 of its own pid
        namespace: one fork as real root; else through A, see _child_a), the job of the judge for tests."""
        self._new_namespaces()  # normally made already, right after the previous reply
        started = []
        try:
            for kid in kids:
                if isinstance(kid, TestsJob):
                    kid.submit()
                elif self.direct:
                    L.unshare(L.CLONE_NEWPID)  # our next child is pid 1 of a fresh pid namespace; we stay put
                    try:
                        kid.pid = os.fork()
                    except BaseException:
                        self._restore_pidns(None)
                        raise
                    if kid.pid == 0:
                        self._run_b(kid, lim, run, None)
                    self._restore_pidns(kid.pid)
                    kid.t0 = time.perf_counter()
                    started.append(kid)
                    kid.fd = os.pidfd_open(kid.pid)
                else:
                    done_r, done_w = os.pipe2(os.O_CLOEXEC)
                    kid.pid = os.fork()
                    if kid.pid == 0:
                        try:
                            os.close(done_r)
                            self._child_a(kid, lim, run, done_w)
                        finally:
                            os._exit(SETUP_FAILED)
                    os.close(done_w)
                    kid.direct, kid.fd = False, done_r
                    started.append(kid)
        except BaseException:  # no run, and no process or zombie left behind
            if any(isinstance(kid, TestsJob) for kid in kids):
                self._drop_judge()
            for kid in started:
                _signal(kid.pid, signal.SIGKILL)
                if kid.direct:
                    os.waitpid(kid.pid, 0)
            raise
        finally:
            if self.direct:
                self._fresh = False  # our net/IPC/UTS namespaces are taken: never fork another execution into them
            self._close_pipes()
            if run is not None:
                run.close_fds()

    def _drop_judge(self) -> None:
        if self.judge is not None:
            self.judge.close()
            self.judge = None

    def _wait(self, kids, lim, run) -> bool:
        """Wait until the last process (the program, or the tests) is over; the others are stopped then.
        Returns whether the run's whole tree was stopped for using more CPU time than the limit."""
        poller = select.poll()
        for kid in kids:
            poller.register(kid.fd, select.POLLIN)
        by_fd = {kid.fd: kid for kid in kids}
        main = kids[-1]
        start = time.perf_counter()
        deadline = start + lim["wall_s"]
        # With a quota of one core, the tree cannot reach the CPU limit before cpu_s of wall time.
        cpu_check = start + lim["cpu_s"] if run is not None else float("inf")
        timed_out = cpu_out = False
        try:
            while not main.done:
                wait_s = min(deadline, cpu_check) - time.perf_counter()
                for fd, _ in poller.poll(None if wait_s == float("inf") else max(0, int(wait_s * 1000) + 1)):
                    poller.unregister(fd)
                    by_fd[fd].finish(timed_out)
                now = time.perf_counter()
                if main.done:
                    break
                if now >= deadline and not timed_out:
                    timed_out = True
                    deadline = now + 5  # for the exits (the judge kills its tests at the wall limit itself)
                elif now >= deadline:
                    raise RuntimeError("the sandboxed processes did not end after being killed")
                elif now >= cpu_check:
                    cpu_out = run.cpu_ns() >= lim["cpu_s"] * 1_000_000_000
                    cpu_check = float("inf") if cpu_out else now + 0.1
                if timed_out or cpu_out:  # killed: now just wait for the ends
                    for kid in kids:
                        if not kid.done:
                            kid.stop()
        finally:
            for kid in kids:  # the candidate still serving calls, or everything after an error
                if not kid.done:
                    kid.stop()
            for kid in kids:
                if not kid.done and isinstance(kid, TestsJob):  # a reply may still come: no next job for it
                    self._drop_judge()
                elif not kid.done and kid.direct and main.done and isinstance(main, TestsJob):
                    # The tests are over and the candidate was alive until now: its status says nothing
                    # more, so reap it after the reply (its teardown then overlaps our turn-around).
                    kid.done, kid.meta = True, {"status": 0, "cpu": 0.0, "maxrss_kb": 0, "wall": 0.0,
                                                "wall_timeout": False}
                    self._reap_later.append(kid)
                elif not kid.done:
                    kid.finish(timed_out)
        if isinstance(main, TestsJob) and (main.meta is None or "error" in main.meta):
            self._drop_judge()  # broken: the next assert run starts a fresh one
            raise RuntimeError("the tests process failed: " + str((main.meta or {}).get("error", "no reply")))
        return cpu_out

    def _collect(self, kids, lim, wall, cpu_out, tree, tr):
        """The reply: the last process's (program or tests) ack and meta, its outputs (capped) as blobs; in
        assert mode the candidate's under ``peer``; the run's tree counters; the trace when asked."""
        main = kids[-1]
        head = {"wall": wall, "cpu_out": cpu_out, "tree": tree}
        blobs = []
        if isinstance(main, TestsJob):
            head.update(self._outputs(main, lim, None, blobs, ""))
            status = main.meta["status"]
            head["ack"] = not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == SETUP_FAILED)
            head["peer"] = self._outputs(kids[0], lim, tr, blobs, "peer_")
        else:
            head.update(self._outputs(main, lim, tr, blobs, ""))
        if tr is not None:
            tr += (kids[0].meta or {}).pop("trace", [])
            tr.append(("srv_read", _ns()))
            head["trace"] = tr
        return head, blobs

    @staticmethod
    def _outputs(kid, lim, tr, blobs, prefix) -> dict:
        f = kid.fds
        out = {"meta": kid.meta, "names": []}
        if "ack" in f:
            ack = _read_all(f["ack"], 16 if tr is None else 4096)
            if tr is not None and ack.startswith(ACK) and len(ack) > len(ACK):
                tr += pickle.loads(ack[len(ACK):])
                ack = ACK
            out["ack"] = ack == ACK
        cap = lim["output_bytes"]
        for name, keep in (("stdout", cap + 1), ("stderr", -4096), ("result", cap + 1)):
            if name in f:
                size = os.fstat(f[name]).st_size
                off, n = (max(0, size + keep), min(size, -keep)) if keep < 0 else (0, min(size, keep))
                blobs.append((f[name], off, n))
                out["names"].append(prefix + name)
        return out

    def _run_b(self, kid, lim, run, workdir) -> None:
        """In the forked child: set up the sandbox and run the program; never returns."""
        try:
            self._child_b(kid, lim, run, workdir)
        except BaseException as e:  # setup failed: no ack, so the parent reports a sandbox error
            try:
                os.write(2, f"sandbox setup failed: {e!r}\n".encode())
            except OSError:
                pass
        os._exit(SETUP_FAILED)

    def _restore_pidns(self, child) -> None:
        try:
            L.setns(self._pidns, L.CLONE_NEWPID)
        except OSError:  # every later fork would land in a dead namespace: die, the pool restarts us
            if child:
                os.kill(child, signal.SIGKILL)
            os._exit(SETUP_FAILED)

    def _child_a(self, kid, lim, run, done_w) -> None:
        tr = [("a_start", _ns())] if kid.req.get("trace") else None
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the server ignores it; we must wait for B
        os.close(0)  # our request pipe: the sandbox must never see it
        if self.tier == "namespaces":
            L.unshare(L.CLONE_NEWNS | L.CLONE_NEWPID | L.CLONE_NEWIPC | L.CLONE_NEWUTS |
                      (L.CLONE_NEWNET if lim.get("netns", True) else 0))
            workdir = None
            if tr is not None:
                tr.append(("a_unshare", _ns()))
        else:
            import tempfile

            workdir = tempfile.mkdtemp(prefix="rlsbx-", dir="/tmp")
            os.chmod(workdir, 0o700)
            if kid.uid is not None:
                os.chown(workdir, kid.uid, kid.uid)
        timed_out = []
        state = [0, False]  # B's pid, a stop asked before we knew it

        def stop(signum, frame):
            if signum == signal.SIGALRM:
                timed_out.append(1)
            state[1] = True
            if state[0]:
                _signal(state[0], signal.SIGKILL)

        if self.tier != "namespaces":  # orphans of the run come to us (no pid namespace to hold them)
            L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
        # Installed before the fork: the server's SIGTERM (the tests are over, or the tree's CPU time is
        # up) may come at any moment, and must never kill A before it has reported.
        signal.signal(signal.SIGALRM, stop)
        signal.signal(signal.SIGTERM, stop)
        b = os.fork()
        if b == 0:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.close(done_w)
            self._run_b(kid, lim, run, workdir)
        state[0] = b
        if state[1]:
            os.kill(b, signal.SIGKILL)
        for fd in kid.pipes:  # our copies: a pipe must see EOF when the B at its other end is gone
            os.close(fd)
        if tr is not None:
            tr.append(("a_forked", _ns()))
        signal.setitimer(signal.ITIMER_REAL, lim["wall_s"])
        t0 = time.perf_counter()
        _, status, ru = os.wait4(b, 0)
        state[0] = 0  # reaped: its pid may be reused, never signal it again
        signal.setitimer(signal.ITIMER_REAL, 0)
        wall = time.perf_counter() - t0
        if tr is not None:
            tr.append(("a_waited", _ns()))
        if self.tier != "namespaces":
            _kill_leftovers(b, kid.uid)
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
        meta = {"status": status, "cpu": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss,
                "wall": wall, "wall_timeout": bool(timed_out)}
        if tr is not None:
            tr.append(("a_cleaned", _ns()))
            meta["trace"] = tr
        os.write(kid.fds["meta"], pickle.dumps(meta))
        os.close(done_w)
        os._exit(0)

    def _child_b(self, kid, lim, run, workdir) -> None:
        req = kid.req
        tr = [("b_start", _ns())] if req.get("trace") else None
        L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)  # our parent (A, or the server) dies → we die
        for name, fd in kid.blobs.items():  # into this child's memory only (closerange closes the fds)
            req[name] = _read_all(fd, 1 << 62, pread=True).decode("utf-8", "replace")
        if run is not None:
            run.join()  # still root; the whole tree of this run is counted and limited from here on
        if self.direct:  # pid 1 of a fresh pid namespace, in fresh net/IPC/UTS namespaces made for us
            os.close(0)  # the server's request pipe (dup2 below replaces it anyway)
            if not lim.get("netns", True):  # the caller asked for the host network namespace
                L.setns(self._host_net, L.CLONE_NEWNET)
            L.unshare(L.CLONE_NEWNS)
            if tr is not None:
                tr.append(("b_unshare", _ns()))
        uid = kid.uid
        if self.tier == "namespaces":
            owner = f",uid={uid},gid={uid}" if uid is not None else ""
            L.mount("tmpfs", "/sandbox", "tmpfs", L.MS_NOSUID | L.MS_NODEV,
                    f"size={lim['tmpfs_mb']}m,nr_inodes={lim['tmpfs_inodes']},mode=0755{owner}")
            for d, mode in (("work", 0o700), ("tmp", 0o1777), ("shm", 0o1777)):
                os.mkdir(f"/sandbox/{d}", mode)
                os.chmod(f"/sandbox/{d}", mode)
                if uid is not None:
                    os.chown(f"/sandbox/{d}", uid, uid)
            workdir = "/sandbox/work"
        if tr is not None:
            tr.append(("b_tmpfs", _ns()))
        os.chdir(workdir)
        os.setsid()
        # Out of the way first (a source may have the number of another's target), then into place.
        high = {t: fcntl.fcntl(src, fcntl.F_DUPFD_CLOEXEC, _HIGH_FD) for t, src in kid.fdmap.items()}
        for target, fd in sorted(high.items()):
            os.dup2(fd, target, inheritable=target != 5 or req["lang"] != "binary")
        if tr is not None:
            tr.append(("b_stdio", _ns()))
        if self.landlock is not None:  # before closerange: the rule fds are among those it closes
            self.landlock.apply(["/sandbox"] if self.tier == "namespaces" else [workdir])
        if tr is not None:
            tr.append(("b_landlock", _ns()))
        os.closerange(max(kid.fdmap) + 1, 1 << 16)
        if tr is not None:
            tr.append(("b_closerange", _ns()))
        ack = 4
        cpu = max(1, int(round(lim["cpu_s"])))
        mem = lim["memory_mb"] << 20
        if run is not None:  # the run's cgroup limits the whole tree: AS is only a generous backstop
            mem *= 2
        for res, val in (
            (resource.RLIMIT_CPU, (cpu, cpu)),  # soft == hard: the kernel SIGKILLs (pid 1 ignores SIGXCPU)
            (resource.RLIMIT_AS, (mem, mem)),
            (resource.RLIMIT_STACK, (lim["stack_mb"] << 20, lim["stack_mb"] << 20)),
            (resource.RLIMIT_FSIZE, (lim["output_bytes"], lim["output_bytes"])),
            (resource.RLIMIT_NOFILE, (lim["nofile"], lim["nofile"])),
            (resource.RLIMIT_CORE, (0, 0)),
            (resource.RLIMIT_MEMLOCK, (0, 0)),
            (resource.RLIMIT_MSGQUEUE, (0, 0)),
        ):
            resource.setrlimit(res, val)
        if tr is not None:
            tr.append(("b_rlimits", _ns()))
        if uid is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (lim["nproc"], lim["nproc"]))
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        if tr is not None:
            tr.append(("b_setuid", _ns()))
        if self.seccomp is not None:
            self.seccomp.install()
        else:
            L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
        if tr is not None:
            tr.append(("b_seccomp", _ns()))
        if self.tier != "namespaces":  # per-exec work dir: HOME and TMPDIR change every run
            os.environ.clear()
            os.environ.update(_sandbox_env(workdir, workdir))
        # (namespaces: the server set the same environment on itself once; B inherits it untouched)
        tf = sys.modules.get("tempfile")
        if tf is not None and tf.tempdir is not None:  # A's mkdtemp cached the server's temp dir: use TMPDIR
            tf.tempdir = None
        if tr is not None:
            tr.append(("b_env", _ns()))
            os.write(ack, ACK + pickle.dumps(tr))
        else:
            os.write(ack, ACK)
        os.close(ack)
        if req["lang"] == "binary":
            os.execve(5, ["main"], dict(os.environ))
        if req["lang"] == "compile":
            _compile(req)
        sys.path[:0] = req.get("python_paths", [])
        sandbox_harness.run(req)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


_HIGH_FD = 512  # above the Landlock rule fds (100+) and anything the server holds


def _compile(req: dict) -> None:
    """Inside the sandbox: g++ the source, put the binary on fd 3 (capped by RLIMIT_FSIZE)."""
    with open("main.cpp", "w") as f:
        f.write(req["source"])
    import subprocess

    rc = subprocess.run(["g++", *req["flags"], "main.cpp", "-o", "main"], stdin=subprocess.DEVNULL,
                        stdout=2, stderr=2).returncode
    if rc == 0:
        with open("main", "rb") as f:
            os.write(3, f.read())
    os._exit(rc & 0xFF)


def _landlock(tier: str, ro_paths: list[str]):
    """Build the Landlock policy and prove it bites in a throw-away child (raises if it does not)."""
    if tier == "namespaces":  # the private root holds only the runtime and the devices: all of it read-only
        ll = sandbox_landlock.Landlock(["/"], [f"/dev/{d}" for d in DEVICES])
        ll.self_test(None, os.__file__)
        return ll
    ll = sandbox_landlock.Landlock(ro_paths, [f"/dev/{d}" for d in DEVICES])
    import shutil
    import tempfile

    probe = tempfile.mkdtemp(prefix="rlsbx-probe-", dir="/tmp")
    try:
        ll.self_test(probe, os.__file__)
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    return ll


def _enter_userns() -> None:
    """Tier namespaces without root: map our uid to 0 in a fresh user namespace."""
    uid, gid = os.geteuid(), os.getegid()
    L.unshare(L.CLONE_NEWUSER)
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")


def _kill_leftovers(pgid: int, uid) -> None:
    """Tier rlimits, in A: no pid namespace, so kill B's process group and, as root, every process of the
    slot uid; then, A being the child subreaper of the run, kill and reap every orphan that reached us.
    Reaping matters: a zombie still counts against the slot uid's RLIMIT_NPROC, and the next run on this
    slot would fail to fork (seen under load, with the host's init slow to reap)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    if uid is not None:
        pid = os.fork()
        if pid == 0:
            try:
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)  # all processes of this uid, not us
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    me = f"/proc/self/task/{os.getpid()}/children"
    for _ in range(10_000):  # bounded: the run's pids cgroup or RLIMIT_NPROC bounds what there is to kill
        try:
            if os.waitpid(-1, os.WNOHANG)[0]:
                continue
        except ChildProcessError:
            return
        try:
            with open(me) as f:
                orphans = [int(p) for p in f.read().split()]
        except OSError:
            orphans = []
        for p in orphans:
            _signal(p, signal.SIGKILL)
        time.sleep(0.0005)


def _sandbox_env(home: str, tmp: str) -> dict:
    """The whole environment user programs see."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": home, "TMPDIR": tmp,
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONIOENCODING": "utf-8"}


_ns = time.perf_counter_ns  # CLOCK_MONOTONIC: comparable across the server, A, B and the parent


def _read_all(fd: int, cap: int, pread: bool = False) -> bytes:
    """Up to ``cap`` bytes from the start of a memfd (``pread``: without moving its shared offset)."""
    if not pread:
        os.lseek(fd, 0, os.SEEK_SET)
    chunks, n = [], 0
    while n < cap:
        b = os.pread(fd, min(1 << 20, cap - n), n) if pread else os.read(fd, min(1 << 20, cap - n))
        if not b:
            break
        chunks.append(b)
        n += len(b)
    return b"".join(chunks)


def main() -> None:
    # No PDEATHSIG here (it follows the spawning *thread*): the server exits on EOF of its request
    # pipe, which the kernel closes when the trainer dies; an exec in flight ends at its wall limit.
    fin, fout = 0, os.dup(1)
    os.dup2(os.open("/dev/null", os.O_WRONLY), 1)  # stray prints must not corrupt the protocol
    cfg = _read_request(fin)
    if cfg.get("tier") != "namespaces":  # there the slot uid may be unable to read the runtime lazily
        for name in RLIMITS_TIER_EXTRA:
            importlib.import_module(name)
    try:
        server = Server(cfg)
    except Exception as e:
        _write_reply(fout, {"ok": False, "error": f"{type(e).__name__}: {e}"})
        return
    import gc

    gc.freeze()  # keep the collector from touching (and so copying) the server's pages in every child
    if not server.direct:  # direct mode reaps B itself with wait4
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # exec children (A) are reaped by the kernel
    _write_reply(fout, {"ok": True, "pid": os.getpid(),
                        "landlock": server.landlock.describe() if server.landlock is not None else None,
                        "landlock_error": server.landlock_error, "direct": server.direct,
                        "cgroup": server.cg.version if server.cg is not None else None,
                        "cgroup_error": server.cg_error})
    while True:
        req = _read_request(fin)
        if req is None:
            if server.cg is not None:
                server.cg.close()  # every run's cgroup and the slot's own
            return
        try:
            server.execute(req, lambda head, blobs: _write_reply(fout, head, blobs))
            server.prepare()
        except Exception as e:
            _write_reply(fout, {"error": f"{type(e).__name__}: {e}"})
        finally:
            for mfd in req["blobs"].values():
                os.close(mfd)


if __name__ == "__main__":
    main()
