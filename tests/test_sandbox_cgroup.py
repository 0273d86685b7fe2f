"""Per-run cgroups (rewards/sandbox/cgroup.py) against the machine's real cgroup hierarchies, with real
forked processes: limits land in the files, the memory limit covers memfds and the sum of forked children,
pids.max stops forks, the CPU quota holds three spinners to one core, kill_all() empties a forking run,
a clean run's cgroup is recycled with zeroed counters (and no other is), a killed server's leftovers are
cleaned, and all of it works after pivot_root() has hidden /proc and /sys.

Skipped where cgroups are not writable (not root, no memory/pids/cpu/cpuacct hierarchy). Every test
removes what it made and leaks no fd. Tests that would hurt the host if a limit failed (a memory hog, a
fork flood) first prove that limit with a harmless probe, and every child runs under a deadline.

The v2 code path runs against a stand-in directory tree (this machine's cgroup2 mount has no controllers).
"""

from __future__ import annotations

import errno
import os
import pickle
import resource
import select
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from rewards.sandbox import cgroup as cg
from rewards.sandbox import linux as L

REPO = Path(__file__).resolve().parents[1]
MiB = 1 << 20
PR_SET_CHILD_SUBREAPER = 36




def _name() -> str:
    return f"rlsbx-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _why_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "not root: the cgroup hierarchies are not writable"
    try:
        cg.SlotCgroups.create(_name()).close()
    except cg.CgroupUnavailable as e:
        return f"no per-run cgroups here: {e}"
    return None


UNAVAILABLE = _why_unavailable()
needs_cgroups = pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or "")


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def slot():
    fds = _fds()
    s = cg.SlotCgroups.create(_name())
    paths = list(s.paths)
    try:
        yield s
    finally:
        s.close()
        assert [p for p in paths if os.path.exists(p)] == []
        assert _fds() == fds, "fd leak"


# ---- forked children ---------------------------------------------------------------------


def _fork(fn, *args, setup=None) -> tuple[int, int]:
    """Fork a child that runs ``setup()`` then sends back fn(*args), pickled (or the error)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            if setup is not None:
                setup()
            os.write(w, pickle.dumps(fn(*args)))
        except BaseException as e:  # noqa: BLE001 - reported to the test
            os.write(w, pickle.dumps(f"child error: {e!r}"))
            code = 1
        os._exit(code)
    os.close(w)
    return pid, r


def _spawn(run, fn, *args) -> tuple[int, int]:
    """Fork a child that joins ``run`` and sends back fn(*args), pickled."""
    pid, r = _fork(fn, *args, setup=run.join)
    run.close_fds()
    return pid, r


def _result(pid: int, r: int, timeout: float = 30.0):
    """(wait status, what the child sent or None). EOF comes once the child and its descendants are gone."""
    data, deadline = b"", time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"child {pid} still running after {timeout} s")
            b = os.read(r, 1 << 16)
            if not b:
                break
            data += b
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    return status, pickle.loads(data) if data else None


def _killed(status: int) -> bool:
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def _wait_until(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def _alloc(n: int) -> int:
    x = b"x" * n  # touches every page (bytes(n) could stay lazily zero-mapped)
    return len(x)


def _fill_memfd(total: int) -> tuple[str, int, int]:
    fd = os.memfd_create("fill")
    buf, n = b"x" * MiB, 0
    try:
        while n < total:
            n += os.write(fd, buf)
    except OSError as e:
        return "error", n, e.errno
    return "ok", n, 0


def _children_alloc(k: int, n: int, hold: float) -> list[int]:
    pids = []
    for _ in range(k):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                x = b"x" * n  # noqa: F841
                time.sleep(hold)
            except BaseException:  # noqa: BLE001
                code = 3
            os._exit(code)
        pids.append(pid)
    return [os.waitpid(p, 0)[1] for p in pids]


def _fork_n(n: int) -> tuple[int, int]:
    """Try n forks (children wait for a release): (forks that worked, forks refused with EAGAIN)."""
    rel_r, rel_w = os.pipe()
    ok, refused = [], 0
    for _ in range(n):
        try:
            pid = os.fork()
        except BlockingIOError:
            refused += 1
            continue
        if pid == 0:
            os.close(rel_w)
            os.read(rel_r, 1)
            os._exit(0)
        ok.append(pid)
    os.close(rel_w)
    for p in ok:
        os.waitpid(p, 0)
    os.close(rel_r)
    return len(ok), refused


def _spin_children(k: int, seconds: float) -> float:
    """k children spin until a common deadline; returns their CPU time (rusage of the waited children)."""
    end = time.monotonic() + seconds
    pids = []
    for _ in range(k):
        pid = os.fork()
        if pid == 0:
            while time.monotonic() < end:
                pass
            os._exit(0)
        pids.append(pid)
    for p in pids:
        os.waitpid(p, 0)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _bomb(deadline: float) -> None:
    while time.monotonic() < deadline:  # parent and child both go on forking, as fast as pids.max allows
        try:
            os.fork()
        except OSError:
            time.sleep(0.001)
    os._exit(0)


def _prove_memory_limit(slot) -> None:
    """60 MiB under a 50 MiB limit must die before a test asks for more."""
    run = slot.new_run(50 * MiB, 8)
    try:
        status, _ = _result(*_spawn(run, _alloc, 60 * MiB))
        assert _killed(status) and run.oom_killed(), "the memory limit does not bite: not running the bigger test"
    finally:
        run.kill_all()
        run.remove()


def _prove_pids_limit(slot) -> None:
    """Three forks under pids.max=2 (the child itself is one): refused before a test floods."""
    run = slot.new_run(64 * MiB, 2)
    try:
        status, res = _result(*_spawn(run, _fork_n, 3))
        assert status == 0 and res[0] <= 1 and res[1] >= 2, f"pids.max does not bite ({res}): not flooding"
    finally:
        run.kill_all()
        run.remove()


def _slot_runs(slot) -> list[str]:
    return sorted({e.name for p in slot.paths for e in os.scandir(p) if e.is_dir()})


# ---- real cgroups ------------------------------------------------------------------------


@needs_cgroups
def test_limits_written_and_read_back(slot):
    run = slot.new_run(48 * MiB, 7, 0.5)
    free = slot.new_run(48 * MiB, 7, None)

    def read(ctrl, r, f):
        return Path(slot.dirs[ctrl], r.name, f).read_text().strip()

    if slot.version == 1:
        assert read("memory", run, "memory.limit_in_bytes") == str(48 * MiB)
        if slot.describe()["swap_limited"]:
            assert read("memory", run, "memory.memsw.limit_in_bytes") == str(48 * MiB)
        assert read("cpu", run, "cpu.cfs_quota_us") == "50000"
        assert read("cpu", run, "cpu.cfs_period_us") == "100000"
        assert read("cpu", free, "cpu.cfs_quota_us") == "-1"
    else:
        assert read("memory", run, "memory.max") == str(48 * MiB)
        assert read("cpu", run, "cpu.max") == "50000 100000"
        assert read("cpu", free, "cpu.max") == "max 100000"
    assert read("pids", run, "pids.max") == "7"
    fresh = (run.cpu_ns(), run.memory_peak(), run.oom_killed(), run.pids_limited(), run.pids())
    assert fresh == (0, 0, False, False, set())
    assert _slot_runs(slot) == sorted([run.name, free.name])
    assert run.remove() and free.remove()
    assert _slot_runs(slot) == []


@needs_cgroups
def test_oom_kill_over_the_limit_not_under(slot):
    _prove_memory_limit(slot)  # 60 MiB under 50 MiB: SIGKILL, oom_killed()
    run = slot.new_run(50 * MiB, 8)
    status, res = _result(*_spawn(run, _alloc, 10 * MiB))
    assert status == 0 and res == 10 * MiB
    assert not run.oom_killed()
    assert 10 * MiB <= run.memory_peak() <= 50 * MiB
    assert run.cpu_ns() > 0
    assert run.remove()


@needs_cgroups
def test_memfd_pages_count(slot):
    """200 MiB written into a memfd: not address space (RLIMIT_AS lets it through), but charged to the cgroup."""
    _prove_memory_limit(slot)
    run = slot.new_run(100 * MiB, 8)
    status, res = _result(*_spawn(run, _fill_memfd, 200 * MiB))
    if _killed(status):
        assert run.oom_killed()
    else:  # the charge may fail the write instead of killing the writer
        assert status == 0 and res[0] == "error" and res[1] < 200 * MiB, res
    assert run.memory_peak() <= 100 * MiB
    run.remove()

    def under_rlimit_as():
        with open("/proc/self/status") as f:
            vm = next(int(ln.split()[1]) << 10 for ln in f if ln.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + 100 * MiB, vm + 100 * MiB))
        return _fill_memfd(200 * MiB)

    control = slot.new_run(400 * MiB, 8)  # a bound all the same
    status, res = _result(*_spawn(control, under_rlimit_as))
    assert status == 0 and res == ("ok", 200 * MiB, 0), res
    assert control.memory_peak() >= 200 * MiB  # the cgroup sees what RLIMIT_AS does not
    control.remove()


@needs_cgroups
def test_children_each_under_the_limit_together_over_it(slot):
    _prove_memory_limit(slot)
    run = slot.new_run(100 * MiB, 16)
    status, res = _result(*_spawn(run, _children_alloc, 4, 40 * MiB, 1.0))
    assert run.oom_killed()
    if res is None:  # the OOM killer chose the parent: stopped all the same
        assert _killed(status)
    else:
        assert status == 0 and any(_killed(s) for s in res), res
        assert sum(s == 0 for s in res) <= 2, res
    assert run.memory_peak() <= 100 * MiB
    assert run.kill_all()
    assert run.remove()


@needs_cgroups
def test_pids_max_refuses_forks(slot):
    run = slot.new_run(128 * MiB, 5)  # the child + 4
    status, res = _result(*_spawn(run, _fork_n, 10))
    assert status == 0 and res[0] <= 4 and res[1] >= 6 - (4 - res[0]), res
    assert run.pids_limited()
    assert run.remove()
    run = slot.new_run(128 * MiB, 5)
    status, res = _result(*_spawn(run, _fork_n, 2))
    assert status == 0 and res == (2, 0)
    assert not run.pids_limited()
    assert run.remove()


@needs_cgroups
@pytest.mark.parametrize("cores", [1.0, 0.5])
def test_cpu_of_the_tree_summed_and_held_to_the_quota(slot, cores):
    """Three spinners for ~1.5 s: ~1.5 s of CPU under a one-core quota, not ~3 s. On a shared VM whose other
    core is busy, unlimited spinners get ~1.5 s too, so half a core (~0.75 s) is what proves the quota bites."""
    run = slot.new_run(256 * MiB, 16, cores)
    t0 = time.monotonic()
    status, children = _result(*_spawn(run, _spin_children, 3, 1.5))
    wall = time.monotonic() - t0
    cpu = run.cpu_ns() / 1e9
    assert status == 0, children
    # every spinner's time is in the run's counter (plus the parent's own, a little)
    assert 0.8 * children <= cpu <= children + 0.5, (cpu, children)
    assert 0.1 < cpu < cores * wall + 0.35, (cpu, wall)  # generous slack: the machine is shared and noisy
    assert run.remove()


@needs_cgroups
def test_kill_all_empties_a_forking_run(slot):
    _prove_pids_limit(slot)
    run = slot.new_run(256 * MiB, 20)
    c = os.fork()
    if c == 0:  # outside the run: the subreaper that reaps the flood's orphans
        code = 0
        try:
            L.prctl(PR_SET_CHILD_SUBREAPER, 1)
            d = os.fork()
            if d == 0:
                run.join()
                _bomb(time.monotonic() + 20)
            run.close_fds()
            end = time.monotonic() + 30
            while True:
                try:
                    pid, _ = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if time.monotonic() > end:
                    code = 2
                    break
                if pid == 0:
                    time.sleep(0.01)
        except BaseException:  # noqa: BLE001
            code = 3
        os._exit(code)
    run.close_fds()
    try:
        assert _wait_until(lambda: run.pids_limited() and len(run.pids()) >= 15), run.pids()
        t = time.perf_counter()
        assert run.kill_all()
        took = time.perf_counter() - t
        assert run.pids() == set()
        assert run.remove(), "rmdir right after kill_all() failed"
        assert took < 2.0
    finally:
        run.kill_all()
        assert _wait_until(lambda: os.waitpid(c, os.WNOHANG)[0] == c, 30)


@needs_cgroups
def test_busy_run_is_killed_and_removed_later(slot):
    run = slot.new_run(64 * MiB, 4)
    pid, r = _spawn(run, time.sleep, 60)
    assert _wait_until(lambda: run.pids() == {pid})
    assert not run.remove()  # populated: EBUSY; its task is sent SIGKILL and the run kept for a retry
    status, _ = _result(pid, r)
    assert _killed(status)
    assert _slot_runs(slot) == [run.name]
    nxt = slot.new_run(64 * MiB, 4)  # retries the pending removal
    assert _slot_runs(slot) == [nxt.name]
    nxt.close_fds()  # left for close() to remove


@needs_cgroups
def test_runs_leak_no_fds_or_directories(slot, monkeypatch):
    busy = []
    real_rmdir = cg._rmdir

    def counting(parent_fd, name, tries=1):
        ok = real_rmdir(parent_fd, name)
        if not ok:
            busy.append(name)
        return ok or real_rmdir(parent_fd, name, tries)

    monkeypatch.setattr(cg, "_rmdir", counting)
    fds = _fds()
    for i in range(50):
        if i % 2:
            slot.prepare(64 * MiB, 8)  # the next run's cgroup made ahead, as after a reply
            spare = _slot_runs(slot)
        if i % 4 == 3:  # made ahead for other limits: replaced
            slot.prepare(64 * MiB, 8)
            run = slot.new_run(32 * MiB, 8)
            assert spare != [run.name] and _slot_runs(slot) == [run.name]
        else:
            run = slot.new_run(64 * MiB, 8)
        if i % 4 == 1:
            assert spare == [run.name]
        status, _ = _result(*_spawn(run, int))
        assert status == 0
        run.cpu_ns(), run.memory_peak(), run.oom_killed(), run.pids_limited()
        run.remove()
    assert _fds() == fds
    assert _slot_runs(slot) == []
    assert busy == [], f"rmdir right after the run's last task was reaped failed for {busy}"
    slot.prepare(64 * MiB, 8)  # a spare left over: close() removes it


def _burn(seconds: float) -> float:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return seconds


@needs_cgroups
def test_a_clean_run_is_recycled_with_its_counters_zeroed(slot):
    run = slot.new_run(64 * MiB, 8)
    status, _ = _result(*_spawn(run, lambda: (_alloc(20 * MiB), _burn(0.2))))
    assert status == 0 and run.cpu_ns() >= 150_000_000 and run.memory_peak() >= 20 * MiB
    slot.release(run)
    nxt = slot.new_run(64 * MiB, 8)
    assert nxt is run and run.uses == 1 and _slot_runs(slot) == [run.name]
    assert run.cpu_ns() == 0 and run.memory_peak() < 8 * MiB  # peak reset to what is still charged
    status, res = _result(*_spawn(nxt, _alloc, 10 * MiB))  # still a run: joined, counted, limited
    assert status == 0 and res == 10 * MiB and 10 * MiB <= run.memory_peak() <= 64 * MiB and run.cpu_ns() > 0
    slot.release(run)
    slot.prepare(64 * MiB, 8)  # the recycled run is the one made ahead: nothing new
    assert slot.new_run(64 * MiB, 8) is run and _slot_runs(slot) == [run.name]
    assert run.remove() and _slot_runs(slot) == []


def _spill_page_cache(path: str, n: int) -> int:
    with open(path, "wb") as f:  # page cache, charged to the writer's cgroup, outlives the writer
        f.write(b"x" * n)
    return n


@needs_cgroups
@pytest.mark.parametrize("how", ["oom", "pids_max", "task_left", "other_limits", "page_cache", "worn_out"])
def test_a_run_that_did_not_end_clean_is_not_recycled(slot, how, tmp_path, monkeypatch):
    """The kernel's event counters (oom_kill, pids max) cannot be reset, a task left behind would count
    against the next run, and so would page cache charged to the cgroup: such a run is removed."""
    limits = (50 * MiB, 2) if how in ("oom", "pids_max") else (64 * MiB, 8)
    run = slot.new_run(*limits)
    pending = None
    if how == "oom":
        status, _ = _result(*_spawn(run, _alloc, 60 * MiB))
        assert _killed(status) and run.oom_killed()
    elif how == "pids_max":
        status, res = _result(*_spawn(run, _fork_n, 3))
        assert status == 0 and res[1] >= 2 and run.pids_limited()
    elif how == "task_left":
        pending = _spawn(run, time.sleep, 60)
        assert _wait_until(lambda: run.pids() == {pending[0]})
    elif how == "page_cache":
        status, _ = _result(*_spawn(run, _spill_page_cache, str(tmp_path / "cache"), 24 * MiB))
        assert status == 0
    elif how == "worn_out":
        monkeypatch.setattr(cg, "RECYCLE_RUNS", 1)
        assert _result(*_spawn(run, int))[0] == 0
        slot.release(run)
        assert slot.new_run(*limits) is run  # once
        assert _result(*_spawn(run, int))[0] == 0
    else:
        assert _result(*_spawn(run, int))[0] == 0
    slot.release(run)
    if pending is not None:  # removal was refused (EBUSY): the task was sent SIGKILL, retried by new_run()
        assert _killed(_result(*pending)[0])
    nxt = slot.new_run(*((32 * MiB, 8) if how == "other_limits" else limits))
    assert nxt is not run and _slot_runs(slot) == [nxt.name]
    assert (nxt.cpu_ns(), nxt.oom_killed(), nxt.pids_limited(), nxt.pids()) == (0, False, False, set())
    assert nxt.remove()


@needs_cgroups
def test_stale_runs_of_a_killed_server_are_cleaned():
    name = _name()
    r, w = os.pipe()
    t = os.fork()
    if t == 0:  # T plays the pool: it starts server S, kills it, starts the next; it reaps S's orphans
        out = {}
        try:
            os.close(r)
            L.prctl(PR_SET_CHILD_SUBREAPER, 1)
            sr, sw = os.pipe()
            s = os.fork()
            if s == 0:  # S: a run with a sleeping task, a second empty run; then S is SIGKILLed
                os.close(w)
                try:
                    slot = cg.SlotCgroups.create(name)
                    run, empty = slot.new_run(64 * MiB, 8), slot.new_run(64 * MiB, 8)
                    d = os.fork()
                    if d == 0:
                        run.join()
                        time.sleep(60)
                        os._exit(0)
                    os.write(sw, pickle.dumps((d, slot.paths, [run.name, empty.name])))
                except BaseException as e:  # noqa: BLE001
                    os.write(sw, pickle.dumps(repr(e)))
                time.sleep(60)
                os._exit(0)
            os.close(sw)
            try:
                got = pickle.loads(os.read(sr, 1 << 16))
                d, paths, runs = got
                assert _wait_until(lambda: str(d) in Path(paths[0], runs[0], "cgroup.procs").read_text().split())
            finally:
                os.close(sr)
                os.kill(s, signal.SIGKILL)
                os.waitpid(s, 0)
            slot = cg.SlotCgroups.create(name)
            out["d_killed"] = _wait_until(lambda: os.waitpid(d, os.WNOHANG)[0] == d, 5)
            out["stale_left"] = [f"{p}/{n}" for p in paths for n in runs if os.path.exists(f"{p}/{n}")]
            out["reused"] = slot.paths == paths and all(os.path.isdir(p) for p in paths)
            slot.close()
            out["left"] = [p for p in paths if os.path.exists(p)]
        except BaseException as e:  # noqa: BLE001
            out["error"] = repr(e)
        os.write(w, pickle.dumps(out))
        os._exit(0)
    os.close(w)
    try:
        _, out = _result(t, r, 60)
        assert out == {"d_killed": True, "stale_left": [], "reused": True, "left": []}, out
    finally:
        cg.SlotCgroups.create(name).close()  # whatever a failure left behind


@needs_cgroups
def test_works_after_pivot_root_hid_proc_and_sys(slot):
    """As in the server: the slot is made first, then the process loses /proc and /sys for good."""
    new_root = tempfile.mkdtemp(prefix="rlsbx-cgtest-root-")

    def hidden():
        out = {}
        L.unshare(L.CLONE_NEWNS)
        L.mount(None, "/", None, L.MS_REC | L.MS_PRIVATE)
        L.mount("tmpfs", new_root, "tmpfs", L.MS_NOSUID, "size=1m")
        os.mkdir(f"{new_root}/old")
        L.pivot_root(new_root, f"{new_root}/old")
        os.chdir("/")
        L.umount2("/old", L.MNT_DETACH)
        out["hidden"] = not os.path.exists("/proc/self") and not os.path.exists("/sys/fs/cgroup")
        run = slot.new_run(50 * MiB, 8)
        status, _ = _result(*_spawn(run, _alloc, 60 * MiB))
        out["oom"] = (_killed(status), run.oom_killed(), 0 < run.memory_peak() <= 50 * MiB)
        out["removed"] = [run.remove()]
        run = slot.new_run(64 * MiB, 8, 1.0)
        status, _ = _result(*_spawn(run, _spin_children, 2, 0.3))
        out["cpu"] = (status, run.cpu_ns() > 0.1e9, run.pids_limited())
        out["removed"].append(run.remove())
        run = slot.new_run(64 * MiB, 8)
        pid, rr = _spawn(run, time.sleep, 60)
        _wait_until(lambda: run.pids() == {pid})
        out["kill_all"] = run.kill_all()
        status, _ = _result(pid, rr)
        out["killed"] = _killed(status)
        out["removed"].append(run.remove())
        return out

    try:
        status, out = _result(*_fork(hidden), 60)
    finally:
        os.rmdir(new_root)
    assert out == {"hidden": True, "oom": (True, True, True), "removed": [True, True, True], "cpu": (0, True, False),
                   "kill_all": True, "killed": True}, out
    assert _slot_runs(slot) == []


@needs_cgroups
def test_unavailable_when_not_root():
    def create_as_nobody():
        os.setgid(65534)
        os.setuid(65534)
        try:
            cg.SlotCgroups.create(_name()).close()
            return "created"
        except cg.CgroupUnavailable as e:
            return f"unavailable: {e}"

    _, msg = _result(*_fork(create_as_nobody))
    assert msg.startswith("unavailable: ") and "not root" in msg, msg


# ---- discovery and the v2 path, on stand-ins --------------------------------------------------


def test_discover_v1_layouts(tmp_path):
    for d in ("cpu,cpuacct/a/b", "mem ory/b", "pids/a/b", "unified/a/b"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "unified/a/b/cgroup.controllers").write_text("")
    m = str(tmp_path).replace(" ", "\\040")
    proc = "12:pids:/a/b\n5:cpu,cpuacct:/a/b\n4:memory:/a/b\n1:name=systemd:/a/b\n0::/a/b\n"
    mountinfo = "\n".join([
        f"30 23 0:27 / {m}/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct",
        f"31 23 0:28 /a {m}/mem\\040ory rw - cgroup cgroup rw,memory",  # a container's view: root /a
        f"32 23 0:29 / {m}/pids rw - cgroup cgroup rw,pids",
        f"33 23 0:30 / {m}/unified rw - cgroup2 cgroup2 rw",
        "34 23 0:31 / /proc rw - proc proc rw",
    ])
    version, hier = cg.discover(proc, mountinfo)
    assert version == 1
    assert sorted(hier) == sorted([(f"{tmp_path}/pids/a/b", frozenset({"pids"})),
                                   (f"{tmp_path}/cpu,cpuacct/a/b", frozenset({"cpu", "cpuacct"})),
                                   (f"{tmp_path}/mem ory/b", frozenset({"memory"}))])
    with pytest.raises(cg.CgroupUnavailable, match="pids"):
        cg.discover(proc.replace("12:pids:/a/b\n", ""), mountinfo)
    with pytest.raises(cg.CgroupUnavailable, match="memory"):  # the mount does not hold our cgroup
        cg.discover(proc.replace("4:memory:/a/b", "4:memory:/x/b"), mountinfo)


@pytest.fixture
def stand_in(monkeypatch):
    """Plain directories in place of cgroupfs: mkdir also creates the interface files (``files``), rmdir
    removes them; a directory holding a subdirectory stays (cgroupfs: EBUSY)."""
    files = ["cgroup.procs", "cgroup.controllers", "cgroup.subtree_control", "cgroup.events", "cgroup.kill",
             "memory.max", "memory.swap.max", "memory.peak", "memory.current", "memory.events", "pids.max",
             "pids.events", "cpu.max", "cpu.stat"]

    def mkdir(parent_fd, name):
        os.mkdir(name, dir_fd=parent_fd)
        for f in files:
            os.close(os.open(f"{name}/{f}", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=parent_fd))

    def rmdir(parent_fd, name, tries=1):
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=parent_fd)
        except FileNotFoundError:
            return True
        try:
            with os.scandir(fd) as it:
                entries = list(it)
            if any(e.is_dir() for e in entries):
                return False
            for e in entries:
                os.unlink(e.name, dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=parent_fd)
        return True

    monkeypatch.setattr(cg, "_mkdir", mkdir)
    monkeypatch.setattr(cg, "_rmdir", rmdir)
    return files


def _v2_tree(tmp_path, enabled=""):
    own = tmp_path / "cg" / "trainer.scope"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    (own / "cgroup.subtree_control").write_text(enabled)
    mountinfo = f"41 23 0:38 / {tmp_path}/cg rw,nosuid,nodev - cgroup2 cgroup2 rw,nsdelegate\n"
    return own, cg.discover("0::/trainer.scope\n", mountinfo)


def test_v2_path_on_a_stand_in_tree(tmp_path, stand_in):
    """A stand-in: this machine's cgroup2 mount has no controllers, so plain files take cgroupfs's place and
    nothing is enforced; checked is which files get which values."""
    fds = _fds()
    own, (version, hier) = _v2_tree(tmp_path)
    assert version == 2 and hier == [(str(own), frozenset({"memory", "pids", "cpu"}))]
    slot = cg.SlotCgroups("slot0", version, hier)
    assert slot.dirs == {c: str(own / "slot0") for c in ("memory", "pids", "cpu", "cpuacct")}
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (own / "slot0" / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    run = slot.new_run(64 * MiB, 12, 1.5)
    d = own / "slot0" / run.name
    assert {f: (d / f).read_text() for f in ("memory.max", "memory.swap.max", "pids.max", "cpu.max")} == {
        "memory.max": str(64 * MiB), "memory.swap.max": "0", "pids.max": "12", "cpu.max": "150000 100000"}
    run.join()  # a plain file: "0" is written, nothing moves
    assert (d / "cgroup.procs").read_text() == "0"
    (d / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    (d / "memory.peak").write_text("123456\n")
    (d / "memory.current").write_text("4096\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n")
    (d / "pids.events").write_text("max 2\n")
    assert (run.cpu_ns(), run.memory_peak(), run.oom_killed(), run.pids_limited()) == (1_500_000, 123456, True, True)
    assert run.kill_all() and (d / "cgroup.kill").read_text() == "1"
    slot.release(run)  # v2: never recycled (memory.peak and the event counters cannot be reset)
    assert not d.exists() and slot._ready is None
    free = slot.new_run(64 * MiB, 12, None)
    assert (own / "slot0" / free.name / "cpu.max").read_text() == ""  # nothing written: the default, no quota
    free.close_fds()
    slot.close()  # removes the run left behind
    assert not (own / "slot0").exists()
    assert _fds() == fds


def test_v2_older_kernel_and_ebusy_on_a_stand_in_tree(tmp_path, stand_in, monkeypatch):
    """Stand-in as above. No memory.peak / memory.swap.max / cgroup.kill: memory.current is read, no swap
    limit written, tasks killed one by one. Then the usual v2 case: our cgroup holds processes and the
    kernel refuses controllers below it (EBUSY): unavailable, nothing left behind."""
    for f in ("memory.peak", "memory.swap.max", "cgroup.kill"):
        stand_in.remove(f)
    own, (version, hier) = _v2_tree(tmp_path, enabled="cpu memory pids\n")  # as in a root cgroup: already on
    slot = cg.SlotCgroups("slot0", version, hier)
    assert (own / "cgroup.subtree_control").read_text() == "cpu memory pids\n"  # not written again
    run = slot.new_run(32 * MiB, 4)
    d = own / "slot0" / run.name
    assert not (d / "memory.swap.max").exists()
    (d / "memory.current").write_text("4096\n")
    assert run.memory_peak() == 4096 and run.kill_all()
    run.remove()
    slot.close()

    own2 = tmp_path / "two"
    own2.mkdir()
    (own2 / "cgroup.subtree_control").write_text("")
    real_write = cg._write

    def busy(dir_fd, path, value):
        if path == "cgroup.subtree_control":
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        real_write(dir_fd, path, value)

    monkeypatch.setattr(cg, "_write", busy)
    with pytest.raises(cg.CgroupUnavailable, match="EBUSY") as e:
        cg.SlotCgroups("slot0", 2, [(str(own2), frozenset(cg.V2))])
    assert e.value.errno == errno.EBUSY
    assert not (own2 / "slot0").exists()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
