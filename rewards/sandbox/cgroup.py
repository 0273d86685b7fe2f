"""Per-run cgroups: memory, process count and CPU time limited for a run's whole process tree.

Standard library only: loaded by path by the fork server, which runs under ``python -I -S``.

Rlimits are per process: forked children each get the full RLIMIT_AS, memfd pages are outside it, and
RLIMIT_CPU is per process too. A cgroup counts the whole tree, and group scheduling with a CPU quota keeps
one run's spinning children from starving the runs of other slots.

The server calls :meth:`SlotCgroups.create` once, as root and before pivot_root: it finds the cgroup it
runs in (``/proc/self/cgroup``) in each hierarchy it needs, makes ``<own cgroup>/<name>`` there and keeps
directory fds, so that everything afterwards works without /proc and /sys. Per execution::

    run = slot.new_run(mem, pids, cores)   # mkdir <name>/run.<n> in each hierarchy (unless prepare() did), limits
    fork ─► child: run.join()              # moves itself down into run.<n>; its descendants follow
    wait; run.cpu_ns(), run.memory_peak(), run.oom_killed(), run.pids_limited(); run.kill_all()
    slot.release(run)                      # v1: kept for the next run if it ended clean; else run.remove()

Nothing is moved out of the cgroup it is in: a run's cgroup lies beneath the server's, so every limit on
the server's cgroup (or above it) still holds for the run.

cgroup v2 when the unified hierarchy offers memory, pids and cpu where we run, v1 otherwise (memory, pids,
cpu and cpuacct in whichever hierarchies they are mounted; ``cpu,cpuacct`` co-mounted is one directory).
v2 needs the controllers enabled in our own cgroup's ``cgroup.subtree_control``, which the kernel refuses
(EBUSY) for a non-root cgroup that holds processes, as ours does: then :class:`CgroupUnavailable`.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import time

V1 = ("memory", "pids", "cpu", "cpuacct")
V2 = ("memory", "pids", "cpu")
PERIOD_US = 100_000  # the CFS period of a new cgroup (v1 cpu.cfs_period_us, v2 cpu.max); quota is per period
_RD = os.O_RDONLY | os.O_CLOEXEC
_WR = os.O_WRONLY | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_KILL_ROUNDS = 200  # kill passes before giving up (~2 s with the back-off below)
RECYCLE_RUNS = 1000  # runs in one recycled cgroup before it is replaced
RECYCLE_RESIDUE = 16 << 20  # memory still charged to a run's cgroup after its tasks are gone (page cache)


class CgroupUnavailable(OSError):
    """No per-run cgroups here; the message says why."""


def discover(proc_cgroup: str, mountinfo: str) -> tuple[int, list[tuple[str, frozenset]]]:
    """From the texts of ``/proc/self/cgroup`` and ``/proc/self/mountinfo``: the version and, per
    hierarchy, the directory of our own cgroup and the controllers (of :data:`V1`/:data:`V2`) it serves."""
    own = {}  # controllers of a hierarchy (empty: the unified one) → our cgroup's path in it
    for line in proc_cgroup.splitlines():
        if line.count(":") >= 2:
            _, ctrls, path = line.split(":", 2)
            own[frozenset(ctrls.split(",")) - {""}] = path
    mounts = []
    for line in mountinfo.splitlines():
        f = line.split()
        if "-" not in f:
            continue
        tail = f[f.index("-") + 1:]
        if tail and tail[0] in ("cgroup", "cgroup2") and len(tail) >= 3:
            mounts.append((tail[0], set(tail[2].split(",")), _unescape(f[3]), _unescape(f[4])))

    def locate(fstype: str, ctrls: frozenset, path: str) -> str | None:
        for fs, opts, root, mnt in mounts:
            r = root.rstrip("/")
            if fs == fstype and ctrls <= opts and (path == root or path.startswith(r + "/")):
                d = os.path.normpath(mnt + path[len(r):])
                if os.path.isdir(d):  # a mount of a subtree that does not hold our cgroup cannot reach it
                    return d
        return None

    unified, v2_has = None, set()
    if frozenset() in own:
        unified = locate("cgroup2", frozenset(), own[frozenset()])
        if unified is not None:
            try:
                with open(os.path.join(unified, "cgroup.controllers")) as fh:
                    v2_has = set(fh.read().split())
            except OSError:
                pass
    if set(V2) <= v2_has:
        return 2, [(unified, frozenset(V2))]
    found = []
    for ctrls, path in own.items():
        mine = ctrls & set(V1)
        d = locate("cgroup", ctrls, path) if mine else None
        if d is not None:
            found.append((d, mine))
    missing = set(V1) - set().union(*(c for _, c in found))
    if missing:
        why = f"no cgroup v1 hierarchy with {', '.join(sorted(missing))} mounted where this process runs"
        if unified is not None:
            has = " ".join(sorted(v2_has & set(V2))) or "none"
            why += f"; cgroup v2 at {unified} offers only {has} of {' '.join(V2)}"
        raise CgroupUnavailable(errno.ENOENT, why)
    return 1, found


def _unescape(s: str) -> str:  # mountinfo writes space, tab, newline and backslash as \ooo
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def _read(dir_fd: int, path: str) -> str:
    fd = os.open(path, _RD, dir_fd=dir_fd)
    try:
        chunks = []
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                return b"".join(chunks).decode()
            chunks.append(b)
    finally:
        os.close(fd)


def _write(dir_fd: int, path: str, value: str) -> None:
    fd = os.open(path, _WR, dir_fd=dir_fd)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _field(text: str, key: str) -> int:
    """``key N`` lines (memory.oom_control, memory.events, pids.events, cpu.stat)."""
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k == key:
            return int(v)
    return 0


def _exists(dir_fd: int, path: str) -> bool:
    try:
        os.stat(path, dir_fd=dir_fd)
        return True
    except FileNotFoundError:
        return False


def _pids(dir_fds: list[int], sub: str) -> set[int]:
    """The processes in ``sub`` of each directory. Pids are in the reader's pid namespace (the server
    stays in the host's); 0 stands for a process outside it and must never reach os.kill."""
    out = set()
    for fd in dir_fds:
        try:
            out.update(int(p) for p in _read(fd, f"{sub}/cgroup.procs").split())
        except FileNotFoundError:
            pass
    out.discard(0)
    out.discard(os.getpid())
    return out


def _kill_pass(dir_fds: list[int], sub: str) -> bool:
    """SIGKILL every process in ``sub``; False if there was none."""
    pids = _pids(dir_fds, sub)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return bool(pids)


def _kill_until_empty(dir_fds: list[int], sub: str) -> bool:
    # Fork races the kill: a task that forks before its SIGKILL lands adds a child, which the next pass
    # kills (a task with a fatal signal pending cannot finish a fork, so this converges; pids.max bounds it).
    for i in range(_KILL_ROUNDS):
        if not _kill_pass(dir_fds, sub):
            return True
        if i:  # killed tasks leave the cgroup only once they have run their exit path
            time.sleep(min(0.01, 0.0002 * i))
    return False


def _purge(parent_fd: int, name: str) -> bool:
    """Kill every task beneath ``name`` and remove it, innermost first."""
    try:
        fd = os.open(name, _DIR, dir_fd=parent_fd)
    except FileNotFoundError:
        return True
    try:
        with os.scandir(fd) as it:
            subs = [e.name for e in it if e.is_dir(follow_symlinks=False)]
        for s in subs:
            _purge(fd, s)
        _kill_until_empty([fd], ".")
    finally:
        os.close(fd)
    return _rmdir(parent_fd, name, tries=50)


def _mkdir(parent_fd: int, name: str) -> None:  # (with _rmdir, what a test's stand-in for cgroupfs replaces)
    os.mkdir(name, 0o755, dir_fd=parent_fd)


def _rmdir(parent_fd: int, name: str, tries: int = 1) -> bool:
    for i in range(tries):
        try:
            os.rmdir(name, dir_fd=parent_fd)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if i + 1 < tries:
                time.sleep(0.002)
    return False


class SlotCgroups:
    """``<own cgroup>/<name>`` in each hierarchy: one per fork server; runs are made beneath it."""

    version: int

    @classmethod
    def create(cls, name: str) -> "SlotCgroups":
        """Called once, as root, while /proc and /sys are still visible (before pivot_root)."""
        try:
            with open("/proc/self/cgroup") as f:
                proc_cgroup = f.read()
            with open("/proc/self/mountinfo") as f:
                mountinfo = f.read()
        except OSError as e:
            raise CgroupUnavailable(e.errno, f"cannot read /proc/self: {e.strerror}") from None
        return cls(name, *discover(proc_cgroup, mountinfo))

    def __init__(self, name: str, version: int, hierarchies: list[tuple[str, frozenset]]) -> None:
        """:meth:`create` without the discovery: ``hierarchies`` is [(own cgroup dir, controllers)]."""
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"bad cgroup name {name!r}")
        self.name, self.version = name, version
        self.paths: list[str] = []  # the slot's directory per hierarchy, for messages and tests
        self.dirs: dict[str, str] = {}  # controller → the slot's directory serving it
        self._parents: list[int] = []  # our own cgroup, per hierarchy
        self._fds: list[int] = []  # the slot's directory, per hierarchy (same order)
        self._fd: dict[str, int] = {}  # controller → slot directory fd
        self._seq = 0
        self._ready: tuple | None = None  # (limits, Run) made ahead by prepare()
        self._ctrls: list[frozenset] = []  # the controllers of each hierarchy (same order as _fds)
        self._pending: list[Run] = []  # runs whose rmdir failed: retried by new_run() and close()
        where = ""
        try:
            for own, ctrls in hierarchies:
                where = own
                pfd = os.open(own, _DIR)
                self._parents.append(pfd)
                if version == 2:
                    self._enable(pfd, own)
                try:
                    _mkdir(pfd, name)
                    stale = False
                except FileExistsError:  # left by a killed server of the same name: ours to reuse
                    stale = True
                sfd = os.open(name, _DIR, dir_fd=pfd)
                self._fds.append(sfd)
                self._ctrls.append(ctrls)
                self.paths.append(os.path.join(own, name))
                if stale:
                    with os.scandir(sfd) as it:
                        subs = [e.name for e in it if e.is_dir(follow_symlinks=False)]
                    for s in subs:
                        if not _purge(sfd, s):
                            raise OSError(errno.EBUSY, f"stale cgroup {own}/{name}/{s} cannot be removed")
                if version == 2:
                    self._enable(sfd, os.path.join(own, name))
                for c in ctrls:
                    self._fd[c] = sfd
                    self.dirs[c] = self.paths[-1]
            if version == 2:
                self._fd["cpuacct"], self.dirs["cpuacct"] = self._fd["cpu"], self.dirs["cpu"]
            mem = self._fd["memory"]
            # v1 without swap accounting (swapaccount=0) has no memsw: the limit then bounds RAM only
            self._swap = _exists(mem, "memory.memsw.limit_in_bytes" if version == 1 else "memory.swap.max")
            self._peak = version == 2 and _exists(mem, "memory.peak")  # Linux >= 5.19
            self._kill = version == 2 and _exists(mem, "cgroup.kill")  # Linux >= 5.14
        except BaseException as e:
            self.close()
            if isinstance(e, CgroupUnavailable) or not isinstance(e, OSError):
                raise
            if e.errno in (errno.EACCES, errno.EPERM):
                why = "not root, or no write access to the cgroup"
            elif e.errno == errno.EROFS:
                why = "the cgroup filesystem is mounted read-only (a container without cgroup delegation?)"
            else:
                why = e.strerror or str(e)
            raise CgroupUnavailable(e.errno, f"cgroup v{version} at {where}: {why}") from None

    def _enable(self, dir_fd: int, path: str) -> None:
        """v2: make memory, pids and cpu available to the children of ``path``."""
        have = set(_read(dir_fd, "cgroup.subtree_control").split())
        need = [c for c in V2 if c not in have]
        if not need:
            return
        try:
            _write(dir_fd, "cgroup.subtree_control", " ".join("+" + c for c in need))
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            raise CgroupUnavailable(errno.EBUSY, (
                f"cgroup v2: cannot enable {' '.join(need)} in {path}/cgroup.subtree_control (EBUSY): a non-root "
                "cgroup that holds processes, as ours does, cannot pass controllers to its children, and no process "
                "may be moved out of it; only in the root cgroup, or with cgroup v1, can runs get their own")) from None

    def describe(self) -> dict:
        return {"version": self.version, "dirs": dict(self.dirs), "swap_limited": self._swap}

    def new_run(self, memory_bytes: int, pids_max: int, cpu_cores: float | None = 1.0) -> "Run":
        """A fresh cgroup for one execution, limits set (``cpu_cores`` None: no CPU quota); the one
        :meth:`prepare` made, when it was made for the same limits."""
        key = (memory_bytes, pids_max, cpu_cores)
        ready, self._ready = self._ready, None
        if ready is not None:
            if ready[0] == key:
                return ready[1]
            ready[1].remove()
        if self._pending:
            self._retry()
        quota = None if cpu_cores is None else max(1000, int(cpu_cores * PERIOD_US))
        if self.version == 1:
            limits = [("memory", "memory.limit_in_bytes", memory_bytes)]  # before memsw, which must be >= it
            if self._swap:
                limits.append(("memory", "memory.memsw.limit_in_bytes", memory_bytes))  # RAM + swap: no swap
            limits.append(("pids", "pids.max", pids_max))
            if quota is not None:
                limits.append(("cpu", "cpu.cfs_quota_us", quota))  # over the default period, PERIOD_US
        else:
            limits = [("memory", "memory.max", memory_bytes)]
            if self._swap:
                limits.append(("memory", "memory.swap.max", 0))
            limits.append(("pids", "pids.max", pids_max))
            if quota is not None:
                limits.append(("cpu", "cpu.max", f"{quota} {PERIOD_US}"))
        name = self._mkdirs()
        procs = []
        try:
            for ctrl, file, value in limits:
                _write(self._fd[ctrl], f"{name}/{file}", str(value))
            for fd in self._fds:
                procs.append(os.open(f"{name}/cgroup.procs", _WR, dir_fd=fd))
        except BaseException:
            for fd in procs:
                os.close(fd)
            for fd in self._fds:
                _rmdir(fd, name)
            raise
        return Run(self, name, procs, key)

    def prepare(self, memory_bytes: int, pids_max: int, cpu_cores: float | None = 1.0) -> None:
        """Make the next run's cgroup ahead, limits written (the server: after writing a reply, as it does
        for its namespaces, with the last request's limits), so that new_run() costs nothing when the
        next request asks for the same ones."""
        if self._ready is None:
            self._ready = ((memory_bytes, pids_max, cpu_cores), self.new_run(memory_bytes, pids_max, cpu_cores))

    def release(self, run: "Run") -> None:
        """After a run, its tasks reaped: v1 keeps its cgroup as the next run's (counters zeroed, limits as
        they were) when it ended clean; otherwise it is removed. Making and removing a memory cgroup per run
        cost ~15% of HumanEval's wall time here (mkdir, rmdir and the kernel's offlining work afterwards).
        v2 always removes: its event counters and memory.peak cannot be reset (before Linux 6.12)."""
        if self.version == 1 and self._ready is None and run.uses < RECYCLE_RUNS and run._recycle():
            self._ready = (run.key, run)
        else:
            run.remove()

    def _mkdirs(self) -> str:
        for _ in range(100):
            self._seq += 1
            name = f"run.{self._seq}"
            made = []
            try:
                for fd in self._fds:
                    _mkdir(fd, name)
                    made.append(fd)
            except FileExistsError:  # a run dir still pending removal, or made by a forked copy of us
                for fd in made:
                    _rmdir(fd, name)
                continue
            except BaseException:
                for fd in made:
                    _rmdir(fd, name)
                raise
            return name
        raise OSError(errno.EEXIST, f"no free run cgroup name in {self.paths}")

    def _retry(self) -> None:  # one kill pass each, no waiting: new_run() is on the execution's path
        for run in list(self._pending):
            _kill_pass(self._fds, run.name)
            if run._rmdir():
                self._pending.remove(run)

    def close(self) -> None:
        """Kill what is left in any run, remove every directory made, close the fds. Idempotent."""
        if self._ready is not None:
            self._ready[1].close_fds()
            self._ready = None
        for sfd in self._fds:
            try:
                with os.scandir(sfd) as it:
                    subs = [e.name for e in it if e.is_dir(follow_symlinks=False)]
                for s in subs:
                    _purge(sfd, s)
            except OSError:
                pass
        self._pending.clear()
        for pfd in self._parents[:len(self._fds)]:
            _rmdir(pfd, self.name, tries=3)
        for fd in self._fds + self._parents:
            os.close(fd)
        self._fds, self._parents, self._fd = [], [], {}


class Run:
    """One execution's cgroup (``<slot>/run.<n>`` in each hierarchy)."""

    def __init__(self, slot: SlotCgroups, name: str, procs: list[int], key: tuple = ()) -> None:
        self.slot, self.name, self._procs, self.key = slot, name, procs, key
        self.uses = 0  # runs done in this cgroup (SlotCgroups.release recycles it)

    def join(self, cpu_quota: bool = True) -> None:
        """In the forked child (still root, before closing fds and dropping privileges): move the calling
        process into this run's cgroup in every hierarchy; what it forks afterwards starts there.
        ``cpu_quota=False`` stays out of the hierarchy of the ``cpu`` controller (the run's quota is then
        left whole to the other processes of the run)."""
        try:
            for fd, ctrls in zip(self._procs, self.slot._ctrls):
                if cpu_quota or "cpu" not in ctrls:
                    os.write(fd, b"0")  # "0": the writer itself, whatever pid namespace it is in
        finally:
            self.close_fds()

    def close_fds(self) -> None:
        """The cgroup.procs fds from :meth:`new_run` (the parent calls this after the fork; join and
        remove do it too)."""
        procs, self._procs = self._procs, []
        for fd in procs:
            os.close(fd)

    def _get(self, ctrl: str, file: str) -> str:
        return _read(self.slot._fd[ctrl], f"{self.name}/{file}")

    def cpu_ns(self) -> int:
        """CPU time used by every task while in the run, nanoseconds."""
        if self.slot.version == 1:
            return int(self._get("cpuacct", "cpuacct.usage"))
        return _field(self._get("cpu", "cpu.stat"), "usage_usec") * 1000

    def memory_peak(self) -> int:
        if self.slot.version == 1:
            return int(self._get("memory", "memory.max_usage_in_bytes"))
        return int(self._get("memory", "memory.peak" if self.slot._peak else "memory.current"))

    def oom_killed(self) -> bool:
        """The kernel's OOM killer killed a task of this run (the memory limit was hit)."""
        if self.slot.version == 1:
            return _field(self._get("memory", "memory.oom_control"), "oom_kill") > 0
        return _field(self._get("memory", "memory.events"), "oom_kill") > 0

    def pids_limited(self) -> bool:
        """A fork or clone (a thread too) was refused because of pids.max."""
        return _field(self._get("pids", "pids.events"), "max") > 0

    def pids(self) -> set[int]:
        """The processes in the run now (pids of the server's pid namespace)."""
        return _pids(self.slot._fds, self.name)

    def kill_all(self) -> bool:
        """SIGKILL every task until the run is empty; False if it is not after ~2 s."""
        if self.slot._kill:
            try:
                _write(self.slot._fd["memory"], f"{self.name}/cgroup.kill", "1")
            except OSError:
                pass
        return _kill_until_empty(self.slot._fds, self.name)

    def _recycle(self) -> bool:
        """Make this cgroup the next run's: only if no task is left in it, no limit was hit (the kernel's
        event counters cannot be reset) and little memory is still charged to it (page cache the run read
        in, which would count against the next run's limit); CPU time and peak memory are zeroed. False:
        remove it instead."""
        try:
            if self.pids() or self.oom_killed() or self.pids_limited():
                return False
            if int(self._get("memory", "memory.usage_in_bytes")) > RECYCLE_RESIDUE:  # still charged to it: cache
                return False
            _write(self.slot._fd["cpuacct"], f"{self.name}/cpuacct.usage", "0")
            _write(self.slot._fd["memory"], f"{self.name}/memory.max_usage_in_bytes", "0")
            self.close_fds()
            self._procs = [os.open(f"{self.name}/cgroup.procs", _WR, dir_fd=fd) for fd in self.slot._fds]
        except OSError:
            return False
        self.uses += 1
        return True

    def _rmdir(self) -> bool:
        ok = True
        for fd in self.slot._fds:
            ok &= _rmdir(fd, self.name)  # FileNotFoundError counts as done: a retry skips what is gone
        return ok

    def remove(self) -> bool:
        """Remove the run's cgroup; never raises. If a directory is still busy (a task left in it), its
        tasks are sent SIGKILL and the removal is retried by the slot's next new_run() and by close()."""
        try:
            self.close_fds()
            if self._rmdir():
                return True
            _kill_pass(self.slot._fds, self.name)
            if self not in self.slot._pending:
                self.slot._pending.append(self)
        except Exception:  # noqa: BLE001 - cleanup must not fail the execution it follows
            pass
        return False
