"""The fork server ("zygote"): one per slot, started with an empty environment as
``python -I -S sandbox_server.py``. It builds a read-only minimal root once, then forks one
sandboxed child per test. Speaks length-prefixed pickles on stdin/stdout with the trusted parent.

Per execution (tier ``namespaces``), as real root ("direct", one fork)::

    server: unshare(NEWPID) ─fork─► B (pid 1), setns(own pid ns) back; pidfd poll (wall) + wait4(B)
    B: in the fresh net/IPC/UTS namespaces the server made (and left) after the previous reply →
       unshare(NEWNS) → fresh tmpfs ...

and in a user namespace (no setns back into our pid namespace; two forks)::

    server ─fork─► A: unshare(NEWNS|NEWPID|NEWIPC|NEWUTS|NEWNET), wall timer, wait4 ─fork─► B (pid 1)

then, both ways::

    B: fresh tmpfs /sandbox (cwd, /tmp and /dev/shm point into it) → setsid → stdio memfds →
       Landlock (if the kernel has it) → close other fds → rlimits → drop to the slot uid →
       no-new-privs + seccomp → ack → user code.   B exits ⇒ the pid namespace dies.

Tier ``rlimits`` (no namespaces): same minus namespaces/new root; Landlock is required there (read/
execute on the runtime only, read/write on a per-exec 0700 dir, signal and abstract-socket scoping);
afterwards a kill of every process of the slot uid (root) or of B's process group. Tier ``none`` is
``rlimits`` without Landlock (a kernel without it; only with ``RL_REASON_SANDBOX_MIN_TIER=none``).
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import sys
import time

import importlib.util  # noqa: E402
import resource  # noqa: E402


def _load(name: str):
    """Load a sibling by path. The rewards/ dir is never put on sys.path: its math.py and code.py
    would shadow the standard library's modules."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                      name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


L = _load("sandbox_linux")
sandbox_seccomp = _load("sandbox_seccomp")
sandbox_harness = _load("sandbox_harness")
sandbox_landlock = _load("sandbox_landlock")

# Pre-import what user programs commonly import, so they pay nothing after the fork and
# lazy stdlib imports never need files the dropped uid might not read.
import array, bisect, collections, copy, dataclasses, datetime, decimal, fractions, functools, heapq  # noqa: E401,E402,F401
import itertools, json, math, operator, queue, re, statistics, string, traceback, typing, unittest  # noqa: E401,E402,F401
import subprocess, threading, hashlib, textwrap, io, cmath, enum, abc, contextlib, numbers  # noqa: E401,E402,F401
import socket, select, ctypes, mmap, multiprocessing, multiprocessing.pool, concurrent.futures, csv  # noqa: E401,E402,F401
import pickle as _pickle, struct as _struct, zlib, base64, time as _time, fcntl, importlib, unittest.mock  # noqa: E401,E402,F401

ACK = b"READY"
SETUP_FAILED = 125
DEVICES = ("null", "zero", "full", "random", "urandom")


def _read_frame(f):
    head = f.read(4)
    if len(head) < 4:
        return None
    (n,) = struct.unpack("!I", head)
    return pickle.loads(f.read(n))


def _write_frame(f, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(struct.pack("!I", len(data)) + data)
    f.flush()


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


class Server:
    def __init__(self, cfg: dict) -> None:
        self.tier = cfg["tier"]
        self.uid = cfg.get("uid")  # None: keep our uid (non-root, or userns with one mapping)
        # Without a mount namespace: no socket() at all (the host's named UNIX sockets are reachable and
        # Landlock does not cover them), and without a slot uid either, no chmod & co. on the owner's files.
        private_root = self.tier == "namespaces"
        self.seccomp = sandbox_seccomp.Filter(deny_metadata=not private_root and self.uid is None,
                                              unix_sockets=private_root) if cfg.get("seccomp") else None
        # Direct mode (real root, tier namespaces): one fork per execution instead of two. The server
        # unshares only CLONE_NEWPID (which affects its children, not itself), forks B as pid 1 of the new
        # pid namespace, and setns()es its pid_for_children back; B unshares the other namespaces itself and
        # the server waits for B (pidfd + wait4). Needs setns into our own pid namespace, hence real root
        # (in a userns the pid namespace belongs to the init userns) and pidfd_open (Linux >= 5.3).
        self.direct = False
        self._fresh = False  # direct mode: our net/IPC/UTS namespaces are new and no child was forked into them
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
    def execute(self, req: dict) -> dict:
        tr = [("srv_start", _ns())] if req.get("trace") else None
        lim = req["limits"]
        fds = {name: os.memfd_create(name, 0) for name in ("stdin", "stdout", "stderr", "result", "ack", "meta")}
        try:
            data = req.get("stdin", b"")
            if data:
                os.write(fds["stdin"], data)
                os.lseek(fds["stdin"], 0, os.SEEK_SET)
            if req["lang"] == "binary":
                fds["exe"] = os.memfd_create("exe", os.MFD_CLOEXEC)  # executed via execveat, never a path
                os.write(fds["exe"], req["exe"])
            if tr is not None:
                tr.append(("srv_memfds", _ns()))
            if self.direct:
                return self._execute_direct(req, lim, fds, tr)
            t0 = time.perf_counter()
            done_r, done_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(done_r)
                    self._child_a(req, lim, fds, done_w)
                finally:
                    os._exit(SETUP_FAILED)
            if tr is not None:
                tr.append(("srv_forked", _ns()))
            os.close(done_w)
            # A signals completion by closing its end after writing the result: we go on while the
            # kernel tears its namespaces down (SIGCHLD is ignored, so A is reaped automatically).
            with open(done_r, "rb") as done:
                done.read()
            wall = time.perf_counter() - t0
            if tr is not None:
                tr.append(("srv_done", _ns()))
            meta = _read_all(fds["meta"], 4096)
            return self._collect(fds, lim, pickle.loads(meta) if meta else None, wall, tr)
        finally:
            for fd in fds.values():
                os.close(fd)

    def prepare(self) -> None:
        """Direct mode: move the server into new, empty net/IPC/UTS namespaces for the next execution's B to
        inherit. Called after each reply is written, so creating them (a netns is the costly part) overlaps
        the trainer's turn-around; new namespaces, not copies: nothing of an earlier run is in them. The
        server itself uses no network, IPC objects or hostname."""
        if self.direct and not self._fresh:
            try:
                L.unshare(L.CLONE_NEWNET | L.CLONE_NEWIPC | L.CLONE_NEWUTS)
            except OSError:  # cannot give the next run its own namespaces: die, the pool restarts us
                os._exit(SETUP_FAILED)
            self._fresh = True

    def _execute_direct(self, req, lim, fds, tr) -> dict:
        t0 = time.perf_counter()
        self.prepare()  # normally done already, right after the previous reply
        L.unshare(L.CLONE_NEWPID)  # our next child is pid 1 of a fresh pid namespace; we stay where we are
        try:
            b = os.fork()
        except BaseException:
            self._restore_pidns(None)
            raise
        if b == 0:
            self._run_b(req, lim, fds, None)
        self._fresh = False  # B has our net/IPC/UTS namespaces now: never fork another child into them
        self._restore_pidns(b)
        if tr is not None:
            tr.append(("srv_forked", _ns()))
        try:
            pidfd = os.pidfd_open(b)
        except OSError:  # cannot time it: no run, and no zombie left behind
            os.kill(b, signal.SIGKILL)
            os.waitpid(b, 0)
            raise
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            timed_out = not poller.poll(max(1, int(lim["wall_s"] * 1000)))  # readable once B has exited
            if timed_out:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)  # B is pid 1: its whole namespace dies
            _, status, ru = os.wait4(b, 0)
        finally:
            os.close(pidfd)
        wall = time.perf_counter() - t0
        if tr is not None:
            tr.append(("a_waited", _ns()))
        meta = {"status": status, "cpu": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss,
                "wall": wall, "wall_timeout": timed_out}
        return self._collect(fds, lim, meta, wall, tr)

    @staticmethod
    def _collect(fds, lim, meta, wall, tr) -> dict:
        """The reply: B's ack, its outputs (capped) and the run's meta, plus the trace when asked."""
        out_cap = lim["output_bytes"]
        ack = _read_all(fds["ack"], 16 if tr is None else 4096)
        if tr is not None and ack.startswith(ACK) and len(ack) > len(ACK):
            tr += pickle.loads(ack[len(ACK):])
            ack = ACK
        res = {
            "ack": ack == ACK,
            "meta": meta,
            "wall": wall,
            "stdout": _read_all(fds["stdout"], out_cap + 1),
            "stderr": _tail(fds["stderr"], 4096),
            "result": _read_all(fds["result"], out_cap + 1),
        }
        if tr is not None:
            tr += meta.pop("trace", []) if meta else []
            tr.append(("srv_read", _ns()))
            res["trace"] = tr
        return res

    def _run_b(self, req, lim, fds, workdir) -> None:
        """In the forked child: set up the sandbox and run the program; never returns."""
        try:
            self._child_b(req, lim, fds, workdir)
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

    def _child_a(self, req, lim, fds, done_w) -> None:
        tr = [("a_start", _ns())] if req.get("trace") else None
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
            if self.uid is not None:
                os.chown(workdir, self.uid, self.uid)
        b = os.fork()
        if b == 0:
            os.close(done_w)
            self._run_b(req, lim, fds, workdir)
        if tr is not None:
            tr.append(("a_forked", _ns()))
        timed_out = []

        def on_alarm(signum, frame):
            timed_out.append(1)
            os.kill(b, signal.SIGKILL)

        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, lim["wall_s"])
        t0 = time.perf_counter()
        _, status, ru = os.wait4(b, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        wall = time.perf_counter() - t0
        if tr is not None:
            tr.append(("a_waited", _ns()))
        if self.tier != "namespaces":
            _kill_leftovers(b, self.uid)
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
        meta = {"status": status, "cpu": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss,
                "wall": wall, "wall_timeout": bool(timed_out)}
        if tr is not None:
            tr.append(("a_cleaned", _ns()))
            meta["trace"] = tr
        os.write(fds["meta"], pickle.dumps(meta))
        os.close(done_w)
        os._exit(0)

    def _child_b(self, req, lim, fds, workdir) -> None:
        tr = [("b_start", _ns())] if req.get("trace") else None
        L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)  # our parent (A, or the server) dies → we die
        if self.direct:  # pid 1 of a fresh pid namespace, in fresh net/IPC/UTS namespaces made for us
            os.close(0)  # the server's request pipe (dup2 below replaces it anyway)
            if not lim.get("netns", True):  # the caller asked for the host network namespace
                L.setns(self._host_net, L.CLONE_NEWNET)
            L.unshare(L.CLONE_NEWNS)
            if tr is not None:
                tr.append(("b_unshare", _ns()))
        uid = self.uid
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
        for fd, target in ((fds["stdin"], 0), (fds["stdout"], 1), (fds["stderr"], 2), (fds["result"], 3)):
            os.dup2(fd, target)
        os.dup2(fds["ack"], 4)
        if "exe" in fds:
            os.dup2(fds["exe"], 5, inheritable=False)
        if tr is not None:
            tr.append(("b_stdio", _ns()))
        if self.landlock is not None:  # before closerange: the rule fds are among those it closes
            self.landlock.apply(["/sandbox"] if self.tier == "namespaces" else [workdir])
        if tr is not None:
            tr.append(("b_landlock", _ns()))
        os.closerange(6 if "exe" in fds else 5, 1 << 16)
        if tr is not None:
            tr.append(("b_closerange", _ns()))
        ack = 4
        cpu = max(1, int(round(lim["cpu_s"])))
        mem = lim["memory_mb"] << 20
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


def _compile(req: dict) -> None:
    """Inside the sandbox: g++ the source, put the binary on fd 3 (capped by RLIMIT_FSIZE)."""
    with open("main.cpp", "w") as f:
        f.write(req["source"])
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
    """Tier rlimits: no pid namespace, so kill B's process group and, as root, every process of the slot uid."""
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


def _sandbox_env(home: str, tmp: str) -> dict:
    """The whole environment user programs see."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": home, "TMPDIR": tmp,
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONIOENCODING": "utf-8"}


_ns = time.perf_counter_ns  # CLOCK_MONOTONIC: comparable across the server, A, B and the parent


def _read_all(fd: int, cap: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks, n = [], 0
    while n < cap:
        b = os.read(fd, min(1 << 20, cap - n))
        if not b:
            break
        chunks.append(b)
        n += len(b)
    return b"".join(chunks)


def _tail(fd: int, n: int) -> bytes:
    size = os.fstat(fd).st_size
    os.lseek(fd, max(0, size - n), os.SEEK_SET)
    return os.read(fd, n)


def main() -> None:
    # No PDEATHSIG here (it follows the spawning *thread*): the server exits on EOF of its request
    # pipe, which the kernel closes when the trainer dies; an exec in flight ends at its wall limit.
    fin, fout = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(os.open("/dev/null", os.O_WRONLY), 1)  # stray prints must not corrupt the protocol
    cfg = _read_frame(fin)
    try:
        server = Server(cfg)
    except Exception as e:
        _write_frame(fout, {"ok": False, "error": f"{type(e).__name__}: {e}"})
        return
    import gc

    gc.freeze()  # keep the collector from touching (and so copying) the server's pages in every child
    if not server.direct:  # direct mode reaps B itself with wait4
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # exec children (A) are reaped by the kernel
    _write_frame(fout, {"ok": True, "pid": os.getpid(),
                        "landlock": server.landlock.describe() if server.landlock is not None else None,
                        "landlock_error": server.landlock_error, "direct": server.direct})
    while True:
        req = _read_frame(fin)
        if req is None:
            return
        try:
            res = server.execute(req)
            if "trace" in res:
                res["trace"].append(("srv_send", _ns()))
            _write_frame(fout, res)
            server.prepare()
        except Exception as e:
            _write_frame(fout, {"error": f"{type(e).__name__}: {e}"})


if __name__ == "__main__":
    main()
