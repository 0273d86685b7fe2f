"""Side-by-side speed of three ways to run untrusted Python against tests, on the same cores:

* ``sandbox``: rewards.code (fork servers, namespaces, seccomp, per-run tmpfs; full isolation);
* ``subprocess``: a fresh ``python -I`` per run, no isolation at all;
* ``humaneval``: human-eval's harness design, reimplemented here: a thread pool, and per program a
  ``multiprocessing.Manager`` list plus a forked ``Process`` that calls a reliability guard
  (rlimits, dangerous ``os``/``shutil``/``subprocess`` functions set to None) and execs the program
  with an in-process timer. No isolation.

Workloads: the 164 HumanEval canonical solutions with their tests, and a trivial program.
Usage: ``python benchmarks/sandbox.py [--workers N] [--trivial N] [--problems N] [--json out.json]``; the tier follows
``RL_REASON_SANDBOX_MIN_TIER``/``RL_REASON_SANDBOX_MAX_TIER``. ``--landlock-ab rlimits|namespaces`` only
measures Landlock's per-execution cost (one slot with it, one without, interleaved). ``--breakdown [N]`` only
prints the median time of each stage of N serial trivial runs (trainer, server and sandboxed children stamp
``perf_counter_ns``), for the one-fork (root) and the two-fork (user namespace) paths, interleaved.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import gzip
import json
import multiprocessing
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rewards import code  # noqa: E402

HUMANEVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "humaneval" / "HumanEval.jsonl.gz"
TRIVIAL = "print(1)"


# ---- human-eval's design, reimplemented ----------------------------------------------------
class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float):
    def handler(signum, frame):
        raise _Timeout()

    signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.signal(signal.SIGALRM, handler)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _guard(max_bytes: int = 2 << 30) -> None:
    """Best-effort in-process guard: rlimits and disabled functions. Not a security boundary."""
    import builtins
    import shutil

    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))
    resource.setrlimit(resource.RLIMIT_DATA, (max_bytes, max_bytes))
    faulthandler.disable()
    builtins.exit = builtins.quit = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork",
                 "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod",
                 "fchown", "chmod", "chown", "chroot", "lchown", "getcwd", "chdir"):
        setattr(os, name, None)
    shutil.rmtree = shutil.move = shutil.chown = None
    subprocess.Popen = None


def _unsafe_execute(program: str, result, timeout: float) -> None:
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        rmtree, rmdir, chdir = __import__("shutil").rmtree, os.rmdir, os.chdir
        _guard()
        try:
            with _time_limit(timeout), contextlib.redirect_stdout(open(os.devnull, "w")):
                exec(program, {})
            result.append("passed")
        except _Timeout:
            result.append("timed out")
        except BaseException as e:
            result.append(f"failed: {e}")
        __import__("shutil").rmtree, os.rmdir, os.chdir = rmtree, rmdir, chdir


def humaneval_check(program: str, timeout: float = 3.0) -> bool:
    manager = multiprocessing.Manager()
    try:
        result = manager.list()
        p = multiprocessing.Process(target=_unsafe_execute, args=(program, result, timeout))
        p.start()
        p.join(timeout=timeout + 1)
        if p.is_alive():
            p.kill()
        return len(result) > 0 and result[0] == "passed"
    finally:
        manager.shutdown()


# ---- the three runners: each returns True on pass ----------------------------------------------
def subprocess_check(program: str, timeout: float = 3.0) -> bool:
    try:
        return subprocess.run([sys.executable, "-I", "-c", program], capture_output=True, timeout=timeout,
                              env={}).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def bench(name: str, fn, jobs: list, workers: int) -> dict:
    lat = []

    def timed(job):
        t = time.perf_counter()
        ok = fn(job)
        lat.append(time.perf_counter() - t)
        return ok

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        oks = list(ex.map(timed, jobs))
    wall = time.perf_counter() - t0
    lat.sort()
    return {"runner": name, "n": len(jobs), "passed": sum(oks), "wall_s": round(wall, 3),
            "exec_per_s": round(len(jobs) / wall, 1), "p50_ms": round(1000 * statistics.median(lat), 2),
            "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 2)}


def landlock_ab(tier: str, rounds: int = 60, batch: int = 10) -> None:
    """Per-execution cost of Landlock: one slot with it and one without, trivial program, interleaved in
    batches (load drifts); prints the sandboxed child's CPU time and the client's latency."""
    from rewards.sandbox import pool as sandbox_pool

    orig = sandbox_pool._config
    pools = {}
    for on in (True, False):
        sandbox_pool._config = lambda t, s, on=on: {**orig(t, s), "landlock": on}
        try:
            pools[on] = sandbox_pool.Pool(slots=1, min_tier=tier, max_tier=tier)
        finally:
            sandbox_pool._config = orig
    req = {"lang": "python", "source": TRIVIAL, "limits": code._limits({}), "python_paths": sandbox_pool.site_paths(),
           "mode": "stdio", "stdin": b""}
    cpu, lat = {True: [], False: []}, {True: [], False: []}
    for _ in range(rounds):
        for on, pool in pools.items():
            for _ in range(batch):
                t = time.perf_counter()
                res = pool.execute(req)
                lat[on].append(time.perf_counter() - t)
                assert res["stdout"] == b"1\n", res
                cpu[on].append(res["meta"]["cpu"])
    print(f"# tier={tier}, Landlock ABI {pools[True].landlock_abi}, load={os.getloadavg()[0]:.2f}, "
          f"{rounds * batch} runs each")
    for on in (True, False):
        print(f"landlock={'on ' if on else 'off'}  child cpu mean {1e3 * statistics.mean(cpu[on]):.3f} ms  "
              f"latency p50 {1e3 * statistics.median(lat[on]):.3f} ms  mean {1e3 * statistics.mean(lat[on]):.3f} ms")
    for pool in pools.values():
        pool.close()


# (label, from stage, to stage): consecutive stamps of one trivial test, in time order
STAGES = (
    ("parent: run_tests prep (limits, pool, site_paths, request)", "p_call", "p_req"),
    ("parent: request dict merge", "p_req", "p_queue"),
    ("parent: wait for a free slot", "p_queue", "p_send"),
    ("parent: pickle + write request", "p_send", "p_sent"),
    ("pipe wake-up + server read/unpickle", "p_sent", "srv_start"),
    ("server: memfds, request blobs spliced in", "srv_start", "srv_memfds"),
    ("fork server -> A (child side)", "srv_memfds", "a_start"),
    ("A: unshare(NS|PID|IPC|UTS|NET)", "a_start", "a_unshare"),
    ("fork -> B (pid 1; direct mode: server -> B)", "a_unshare", "b_start"),
    ("B: unshare(NS) (direct; NET|IPC|UTS made after prev. reply)", "b_start", "b_unshare"),
    ("B: tmpfs mount + mkdir/chown", "b_unshare", "b_tmpfs"),
    ("B: chdir, setsid, dup2 stdio", "b_tmpfs", "b_stdio"),
    ("B: Landlock ruleset + restrict", "b_stdio", "b_landlock"),
    ("B: closerange", "b_landlock", "b_closerange"),
    ("B: rlimits", "b_closerange", "b_rlimits"),
    ("B: setgroups/setgid/setuid", "b_rlimits", "b_setuid"),
    ("B: no-new-privs + seccomp load", "b_setuid", "b_seccomp"),
    ("B: environ + ack", "b_seccomp", "b_env"),
    ("B: harness + user code + exit, wait4 returns", "b_env", "a_waited"),
    ("A: after wait4 (rlimits tier: kill + rmtree)", "a_waited", "a_cleaned"),
    ("A: meta write + exit signal, server wakes", "a_cleaned", "srv_done"),
    ("server: read meta/stdout/stderr/result", "srv_done", "srv_read"),
    ("server: pickle + write reply, parent read/unpickle", "srv_read", "p_recvd"),
    ("parent: verdict + compare", "p_recvd", "p_judged"),
)


def _fill(r: dict) -> dict:
    """Direct mode (one fork) has no A: its stages get zero length."""
    r.setdefault("a_start", r["srv_memfds"])
    r.setdefault("a_unshare", r["a_start"])
    r.setdefault("b_unshare", r["b_start"])
    r.setdefault("a_cleaned", r["a_waited"])
    r.setdefault("srv_done", r["a_cleaned"])
    return r


def breakdown(n: int, batch: int = 10) -> None:
    """Median time of each stage of a serial trivial run (stamps from the parent, server, A and B), for
    the one-fork path ("direct": root, tier namespaces) and the two-fork path (server -> A -> B, used in a
    user namespace), one slot each, interleaved in batches (load drifts)."""
    from rewards.sandbox import pool as sandbox_pool

    triv_tests = {"type": "stdio", "cases": [{"input": "", "output": "1"}]}
    orig = sandbox_pool._config
    pools = {}
    for direct in (False, True):
        sandbox_pool._config = lambda t, s, d=direct: {**orig(t, s), "direct": d}
        try:
            pools[direct] = sandbox_pool.Pool(slots=1)
        finally:
            sandbox_pool._config = orig
    rows = {False: [], True: []}
    load0 = os.getloadavg()[0]
    try:
        for rnd in range(-2, -(-n // batch)):  # two warm-up rounds
            for direct, pool in pools.items():
                code._pool, code._trace = pool, []
                for _ in range(batch):
                    assert code.run_tests(TRIVIAL, triv_tests).passed == 1
                if rnd >= 0:
                    rows[direct] += [_fill(dict(t)) for t in code._trace]
    finally:
        code._pool, code._trace = None, None
        for pool in pools.values():
            pool.close()
    print(f"# breakdown, serial trivial runs ({len(rows[True])} per path, interleaved in batches of {batch}), "
          f"tier={pools[True].tier}, direct={pools[True]._all[0].direct}, load {load0:.2f}->{os.getloadavg()[0]:.2f}")
    print(f"{'stage':56} {'2-fork p50':>10} {'direct p50':>10} {'2-fork mean':>11} {'direct mean':>11}")
    for label, a, b in STAGES + (("total (run_tests call -> verdict)", "p_call", "p_judged"),):
        d = {k: [(r[b] - r[a]) / 1e6 for r in v] for k, v in rows.items()}
        print(f"{label:56} {statistics.median(d[False]):10.3f} {statistics.median(d[True]):10.3f} "
              f"{statistics.mean(d[False]):11.3f} {statistics.mean(d[True]):11.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="client threads (default: cores)")
    ap.add_argument("--trivial", type=int, default=300, help="trivial runs per runner (default 300)")
    ap.add_argument("--problems", type=int, default=None, help="only the first N HumanEval problems (default all 164)")
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--landlock-ab", metavar="TIER", choices=("rlimits", "namespaces"),
                    help="only compare one slot with and without Landlock in TIER")
    ap.add_argument("--breakdown", type=int, metavar="N", nargs="?", const=300,
                    help="only time each stage of N serial trivial runs (default 300)")
    args = ap.parse_args()
    if args.breakdown:
        return breakdown(args.breakdown)
    if args.landlock_ab:
        return landlock_ab(args.landlock_ab)
    with gzip.open(HUMANEVAL, "rt") as f:
        probs = [json.loads(line) for line in f][:args.problems]

    he_sandbox = [(p["prompt"] + p["canonical_solution"],
                   {"type": "assert", "code": p["test"], "entry_point": p["entry_point"]}) for p in probs]
    he_plain = [p["prompt"] + p["canonical_solution"] + "\n" + p["test"] + f"\ncheck({p['entry_point']})\n"
                for p in probs]
    triv_tests = {"type": "stdio", "cases": [{"input": "", "output": "1"}]}
    # Start the pool outside the timings, as a trainer does once: servers, and each slot's judge (the process
    # that runs assert tests, started by the slot's first assert run).
    with ThreadPoolExecutor(args.workers) as ex:
        list(ex.map(lambda _: code.run_tests("def f():\n    return 1", {"type": "assert", "code": "assert f() == 1",
                                                                         "entry_point": "f"}), range(4 * args.workers)))

    sandbox_fn = lambda j: code.run_tests(j[0], j[1]).passed == 1  # noqa: E731
    rows = []
    trivial_jobs = [(TRIVIAL, triv_tests)] * args.trivial
    for workload, sb_jobs, plain_jobs in (("humaneval", he_sandbox, he_plain),
                                           ("trivial", trivial_jobs, [TRIVIAL] * args.trivial)):
        rows.append({"workload": workload, **bench("sandbox", sandbox_fn, sb_jobs, args.workers)})
        rows.append({"workload": workload, **bench("subprocess", subprocess_check, plain_jobs, args.workers)})
        rows.append({"workload": workload, **bench("humaneval_harness", humaneval_check, plain_jobs, args.workers)})
    # Single-stream latency of a trivial run: the per-run overhead with full isolation.
    rows.append({"workload": "trivial_serial", **bench("sandbox", sandbox_fn, trivial_jobs, 1)})
    rows.append({"workload": "trivial_serial",
                 **bench("subprocess", subprocess_check, [TRIVIAL] * min(100, args.trivial), 1)})

    print(f"# {platform.node()} {platform.machine()}, {len(os.sched_getaffinity(0))} cores, workers={args.workers}, "
          f"tier={code.sandbox_tier()}, load={os.getloadavg()[0]:.2f}")
    print(f"{'workload':16} {'runner':18} {'n':>5} {'passed':>6} {'wall_s':>8} {'exec/s':>8} {'p50_ms':>8} "
          f"{'p99_ms':>8}")
    for r in rows:
        print(f"{r['workload']:16} {r['runner']:18} {r['n']:5d} {r['passed']:6d} {r['wall_s']:8.3f} "
              f"{r['exec_per_s']:8.1f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}")
    for workload in ("humaneval", "trivial"):
        sb = next(r for r in rows if r["workload"] == workload and r["runner"] == "sandbox")
        for other in ("subprocess", "humaneval_harness"):
            o = next(r for r in rows if r["workload"] == workload and r["runner"] == other)
            print(f"{workload}: sandbox throughput = {sb['exec_per_s'] / o['exec_per_s']:.2f}x {other}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    code.shutdown()


if __name__ == "__main__":
    main()
