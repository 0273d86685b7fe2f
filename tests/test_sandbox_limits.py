"""Limits on a run's whole process tree (per-run cgroups), and many pools on one machine.

Each harmful case (memory, CPU or process floods) first proves the limit with a small harmless probe.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rewards import code
from rewards.sandbox import lease as sandbox_lease
from rewards.sandbox.pool import Pool, SandboxUnavailable, _config, slot_uids

ROOT = Path(__file__).resolve().parents[1]


def stdio(src: str, expect: str = "OK", **lim) -> code.RunResult:
    r = code.run_tests(textwrap.dedent(src), {"type": "stdio", "cases": [{"input": "", "output": expect}]}, **lim)
    assert r.status == "ok", r
    return r


@pytest.fixture(scope="module")
def cgroups():
    pool = code._get_pool()
    if pool.cgroup is None:
        pytest.skip(f"no per-run cgroups on this machine: {pool.cgroup_error}")
    return pool.cgroup


# ---- memory: the tree, and memory outside RLIMIT_AS -------------------------------------------------
FORKED_MEMORY = """
import os
pids = []
for _ in range({n}):
    pid = os.fork()
    if pid == 0:
        x = bytearray({mb} << 20)
        for i in range(0, len(x), 4096):
            x[i] = 1
        os._exit(0)
    pids.append(pid)
ok = all(os.waitpid(p, 0)[1] == 0 for p in pids)
print("OK" if ok else "child died")
"""


def test_forked_children_share_one_memory_limit(cgroups):
    # each child stays under the per-process address-space limit; together they do not fit
    assert stdio(FORKED_MEMORY.format(n=1, mb=64), memory_mb=256).verdicts == ["AC"]  # probe
    r = stdio(FORKED_MEMORY.format(n=4, mb=120), memory_mb=256, cpu_s=4)
    assert r.verdicts == ["MLE"], r


MEMFD = """
import os
fds = []
chunk = b"x" * (4 << 20)  # 4 MiB per memfd: RLIMIT_FSIZE (the output cap) bounds each file, not their sum
for _ in range({mb} // 4):
    fds.append(os.memfd_create("x"))
    os.write(fds[-1], chunk)
print("OK")
"""


def test_memory_in_memfds_counts(cgroups):
    # RLIMIT_AS never sees memfd pages (written, not mapped); the cgroup does
    assert stdio(MEMFD.format(mb=32), memory_mb=256).verdicts == ["AC"]  # probe
    assert stdio(MEMFD.format(mb=600), memory_mb=256, cpu_s=4).verdicts == ["MLE"]


def test_tmpfs_files_count_against_memory(cgroups):
    src = """
    for i in range({mb} // 4):  # files of 4 MiB each (RLIMIT_FSIZE caps one file, not the tmpfs)
        with open('/tmp/f%d' % i, 'wb') as f:
            f.write(b'x' * (4 << 20))
    print('OK')
    """
    assert stdio(src.format(mb=16), memory_mb=256, tmpfs_mb=512).verdicts == ["AC"]
    assert stdio(src.format(mb=400), memory_mb=256, tmpfs_mb=512, cpu_s=4).verdicts == ["MLE"]


# ---- CPU time: the tree, and fairness between slots -------------------------------------------------
SPINNERS = """
import os, time
pids = []
for _ in range({n}):
    pid = os.fork()
    if pid == 0:
        t = time.process_time()
        while time.process_time() - t < {each}:
            pass
        os._exit(0)
    pids.append(pid)
for p in pids:
    os.waitpid(p, 0)
print("OK")
"""


def test_cpu_time_of_all_children_counts(cgroups):
    assert stdio(SPINNERS.format(n=1, each=0.3), cpu_s=2).verdicts == ["AC"]  # probe
    t = time.monotonic()
    # four children each under the per-process limit, 3.2 s together against a limit of 1 s
    r = stdio(SPINNERS.format(n=4, each=0.8), cpu_s=1)
    assert r.verdicts == ["TLE"], r
    assert time.monotonic() - t < 4 and r.timings[0]["cpu_s"] < 2.0


def test_spinning_children_in_one_slot_do_not_starve_another(cgroups):
    """A program that starts two dozen spinning children in their own sessions gets one core for its whole
    tree; a correct program in the other slot keeps its own and passes in time."""
    pool = code._get_pool()
    if pool.slots < 2:
        pytest.skip("needs two slots")
    # The children also spread themselves over every core they may use (a process may widen its own
    # affinity): only the run's cgroup stands between them and the other slot.
    hog = """
    import os, time
    for _ in range(24):
        if os.fork() == 0:
            os.setsid()
            os.sched_setaffinity(0, CORES)
            while True:
                pass
    time.sleep(30)
    """.replace("CORES", repr(os.sched_getaffinity(0)))
    work = """
    import time
    t = time.process_time()
    while time.process_time() - t < 0.6:
        pass
    print("OK")
    """
    with ThreadPoolExecutor(2) as ex:
        fut = ex.submit(stdio, hog, cpu_s=6, wall_s=10)  # held to one core: killed at ~6 s
        time.sleep(0.5)  # the hog's children are spinning
        t = time.monotonic()
        r = stdio(work, cpu_s=2)
        took = time.monotonic() - t
        assert fut.result().verdicts == ["TLE"]
    assert r.verdicts == ["AC"], (r, took)
    assert took < 2, took  # 0.6 s of CPU; sharing 2 cores with 24 spinners, ~3 s until the hog is killed


# ---- consecutive runs in one slot: a recycled run cgroup starts from zero ------------------------------
def test_consecutive_runs_are_each_held_to_their_own_limits(cgroups):
    """A slot's run cgroup is reused when a run ends clean, with its CPU time zeroed; a run that hit the
    memory limit leaves its cgroup behind (the kernel's OOM count cannot be reset). Each slot runs an MLE
    program, then correct ones that together use more CPU than one run may."""
    pool = code._get_pool()
    burn = SPINNERS.format(n=1, each=0.6)
    hog = MEMFD.format(mb=600)
    verdicts = [stdio(src, memory_mb=256, cpu_s=1).verdicts[0] for src in [hog] * pool.slots + [burn] * 2 * pool.slots]
    assert verdicts == ["MLE"] * pool.slots + ["AC"] * 2 * pool.slots


# ---- process count ----------------------------------------------------------------------------------
def test_process_count_is_bounded_for_the_tree(cgroups):
    src = """
    import os, time
    n = 0
    for _ in range(60):
        try:
            if os.fork() == 0:
                time.sleep(20)
                os._exit(0)
            n += 1
        except OSError:
            break
    print("OK" if n < {nproc} else n)
    """
    assert stdio(src.format(nproc=16), nproc=16).verdicts == ["AC"]


def test_run_cgroups_are_removed(cgroups):
    pool = code._get_pool()
    for _ in range(5):
        stdio("import os\nif os.fork() == 0:\n    os.setsid()\n    import time; time.sleep(60)\nprint('OK')")
    slots = [_config(pool.tier, s.lease.index)["cgroup"] for s in pool._all]
    found = [d for base in Path("/sys/fs/cgroup").iterdir() for name in slots for d in base.rglob(name)]
    assert found, "the slots' cgroups were not found"
    for d in found:
        runs = [r.name for r in d.iterdir() if r.is_dir()]
        assert len(runs) <= 2, runs  # the last run (released after the reply) and the next one (made ahead or recycled)


# ---- many pools on one machine ----------------------------------------------------------------------
PROGRAMS = [
    ("kill_own_uid", "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('OK')", "stdio"),
    ("fork_then_sleep", "import os, time\nfor _ in range(30):\n    try:\n        os.fork()\n    except OSError:\n"
                        "        break\ntime.sleep(5)\nprint('OK')", "stdio"),
    ("memory_hog", "x = bytearray(1 << 30)\nfor i in range(0, len(x), 4096):\n    x[i] = 1\nprint('OK')", "stdio"),
    ("spin", "while True:\n    pass", "stdio"),
    ("daemon", "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nprint('OK')", "stdio"),
    ("sum", "import sys\nprint('OK' if sum(map(int, sys.stdin.read().split())) == 0 else 'no')", "stdio"),
    ("add", "def add(a, b):\n    return a + b", "assert"),
    ("add_wrong", "def add(a, b):\n    return a - b", "assert"),
    ("add_kills", "import os, signal\ndef add(a, b):\n    os.kill(-1, signal.SIGKILL)\n    return a + b", "assert"),
]
LIMITS = {"cpu_s": 1, "wall_s": 2, "memory_mb": 256}


def judge_all(rounds: int = 1, workers: int | None = None) -> dict:
    """Verdicts of every program, run concurrently on this process's pool (also run in the workers)."""
    tests = {"stdio": {"type": "stdio", "cases": [{"input": "", "output": "OK"}]},
             "assert": {"type": "assert", "entry_point": "add",
                        "code": "def check(candidate):\n    assert candidate(2, 3) == 5\n"}}
    jobs = [(name, src, kind) for _ in range(rounds) for name, src, kind in PROGRAMS]
    with ThreadPoolExecutor(workers or code._get_pool().slots) as ex:
        rs = list(ex.map(lambda j: (j[0], code.run_tests(j[1], tests[j[2]], **LIMITS)), jobs))
    out: dict = {}
    for name, r in rs:
        out.setdefault(name, set()).add((r.status, tuple(r.verdicts)))
    return json.loads(json.dumps({k: sorted(v) for k, v in out.items()}))


WORKER = """
import json, sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {tests!r})
import test_sandbox_limits as t
from rewards import code
from rewards.sandbox.pool import slot_uids
pool = code._get_pool()
uids = sorted(u for s in pool._all for u in slot_uids(s.lease.index))
print(json.dumps({{"uids": uids, "verdicts": t.judge_all(rounds=2)}}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("tier", ["namespaces", "rlimits"])
def test_four_pools_in_four_processes_match_a_serial_run(tier, monkeypatch, tmp_path):
    """One pool per rank: hostile programs (kill -1 of their own uid, fork floods, memory hogs, spinners,
    daemons) and correct ones, at once in four processes; every verdict equals the serial run's."""
    for k in ("RL_REASON_SANDBOX_MIN_TIER", "RL_REASON_SANDBOX_MAX_TIER"):
        monkeypatch.setenv(k, tier)
    code.shutdown()
    # harmless probe first: signal 0 (nothing is delivered) from a program to this test process must fail
    probe = f"import os\ntry:\n    os.kill({os.getpid()}, 0)\n    print('reached')\nexcept OSError:\n    print('OK')"
    assert stdio(probe).verdicts == ["AC"]
    code.shutdown()
    env = {**os.environ, "RL_REASON_SANDBOX_MIN_TIER": tier, "RL_REASON_SANDBOX_MAX_TIER": tier,
           "RL_REASON_SANDBOX_SLOTS": "2", "RL_REASON_SANDBOX_MAX_SERVERS": "32", "PYTHONPATH": str(ROOT)}
    worker = WORKER.format(root=str(ROOT), tests=str(ROOT / "tests"))
    procs = [subprocess.Popen([sys.executable, "-c", worker], env=env, cwd=str(ROOT),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    uids = [set(r["uids"]) for r in results]
    assert all(not (uids[i] & uids[j]) for i in range(4) for j in range(i + 1, 4)), uids  # own identities
    try:
        serial = judge_all(rounds=1, workers=1)  # one program at a time, nothing else running
    finally:
        code.shutdown()
    for r in results:
        assert r["verdicts"] == serial, (r["verdicts"], serial)
    assert serial["sum"] == serial["add"] == [["ok", ["AC"]]]
    if tier == "namespaces":  # kill(-1) finds no process at all in the run's pid namespace (ESRCH: RE)
        assert serial["kill_own_uid"] == serial["add_kills"] == [["ok", ["RE"]]]
    assert serial["spin"] == [["ok", ["TLE"]]] and serial["add_wrong"] == [["ok", ["WA"]]]
    assert serial["memory_hog"] == [["ok", ["MLE"]]]


def test_leases_bound_the_servers_of_all_pools(monkeypatch, tmp_path):
    """The machine-wide cap: pools take what is left (at least one), and wait, then fail clearly, when
    nothing is. Own lease directory and no cgroups: this test's servers never run a program."""
    monkeypatch.setenv("RL_REASON_SANDBOX_LEASE_DIR", str(tmp_path))
    monkeypatch.setenv("RL_REASON_SANDBOX_MAX_SERVERS", "3")
    monkeypatch.setenv("RL_REASON_SANDBOX_LEASE_TIMEOUT", "1")
    monkeypatch.setenv("RL_REASON_SANDBOX_CGROUPS", "0")
    a = Pool(slots=2)
    b = Pool(slots=2)
    try:
        assert (a.slots, b.slots) == (2, 1)
        assert len({s.lease.index for s in a._all + b._all}) == 3
        t = time.monotonic()
        with pytest.raises(SandboxUnavailable, match="RL_REASON_SANDBOX_MAX_SERVERS"):
            Pool(slots=1)
        assert time.monotonic() - t < 5
        a.close()
        c = Pool(slots=4)  # the leases a left
        assert c.slots == 2
        c.close()
    finally:
        a.close()
        b.close()
    # a server killed with its pool's process leaves no lease behind: the kernel drops the lock
    child = subprocess.run([sys.executable, "-c", "from rewards.sandbox.pool import Pool; import os; "
                            "p = Pool(slots=3); os._exit(0)"], cwd=str(ROOT), env={**os.environ}, timeout=120)
    assert child.returncode == 0
    deadline = time.monotonic() + 10
    while True:
        try:
            got = sandbox_lease.acquire(3, timeout=0)
        except TimeoutError:  # the killed pool's servers have not seen their EOF yet
            got = []
        n = len(got)
        for lease in got:
            lease.release()
        if n == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert n == 3


def test_each_server_has_its_own_uids():
    pool = code._get_pool()
    if os.geteuid() != 0:
        pytest.skip("slot uids are used only as root")
    uids = [u for s in pool._all for u in slot_uids(s.lease.index)]
    assert len(set(uids)) == 2 * pool.slots
