"""Hostile programs (escapes, resource exhaustion, channels between runs) against the real sandbox.

Programs that probe containment print ``OK`` when every attack failed, so ``AC`` means contained.
Cases that would hurt the host if containment failed are preceded by a bounded, harmless probe.
"""

from __future__ import annotations

import os
import socket
import textwrap
import time
from pathlib import Path

import pytest

from rewards import code
from rewards.sandbox.pool import slot_uids

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64", reason="seccomp filter is x86_64-only")


def run(src: str, stdin: str = "", expect: str = "OK", **lim) -> code.RunResult:
    r = code.run_tests(textwrap.dedent(src), {"type": "stdio", "cases": [{"input": stdin, "output": expect}]}, **lim)
    assert r.status == "ok", r
    return r


def sandbox_procs() -> list[int]:
    """Host pids running as one of this pool's uids: its programs (other pools on the machine have their
    own uids); the slots' judges, long-lived children of the servers, are not leftovers."""
    pool = code._get_pool()
    uids = {u for s in pool._all for u in slot_uids(s.lease.index)}
    servers = {str(s.proc.pid) for s in pool._all}
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                uid = p.stat().st_uid
                ppid = (p / "stat").read_text().rsplit(")", 1)[1].split()[1]
            except (OSError, IndexError):
                continue
            if uid in uids and ppid not in servers:
                out.append(int(p.name))
    return out


@pytest.fixture(autouse=True)
def no_leftovers():
    yield
    deadline = time.time() + 3
    while sandbox_procs() and time.time() < deadline:
        time.sleep(0.05)
    assert sandbox_procs() == []


# ---- resource exhaustion and liveness (1–19) ----
def test_tier_is_namespaces():
    assert code.sandbox_tier() == "namespaces"


def test_spin_is_tle_by_cpu():
    t = time.time()
    r = run("while True: pass", cpu_s=1)
    assert r.verdicts == ["TLE"] and 0.8 <= r.timings[0]["cpu_s"] <= 2.5 and time.time() - t < 6


def test_sleep_is_tle_by_wall_backstop():
    r = run("import time; time.sleep(10**6)", cpu_s=1, wall_s=1)
    assert r.verdicts == ["TLE"] and r.timings[0]["wall_s"] < 3


def test_input_on_empty_stdin_is_re():
    assert run("input()").verdicts == ["RE"]


def test_ignored_alarm_and_swallowed_exceptions_still_tle():
    src = """
    import signal
    signal.signal(signal.SIGALRM, signal.SIG_IGN); signal.signal(signal.SIGXCPU, signal.SIG_IGN); signal.alarm(0)
    while True:
        try:
            while True: pass
        except BaseException:
            pass
    """
    assert run(src, cpu_s=1).verdicts == ["TLE"]


def test_uninterruptible_c_work_is_tle():
    assert run("import re; re.match('(a+)+$', 'a'*40+'b')", cpu_s=1).verdicts == ["TLE"]


def test_fork_limit_probe_then_fork_bomb():
    probe = """
    import os, time
    n = 0
    for _ in range(200):
        try:
            if os.fork() == 0:
                time.sleep(30); os._exit(0)
            n += 1
        except OSError:
            break
    print("OK" if n < 200 else n)
    """
    assert run(probe).verdicts == ["AC"]  # the process limit is in effect before we try a real bomb
    bomb = "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass"
    assert run(bomb, cpu_s=1).verdicts[0] in ("TLE", "RE")


def test_shell_fork_bomb_and_pool():
    src = """
    import subprocess, time, multiprocessing
    subprocess.Popen(['sh', '-c', ':(){ :|:& };:'])
    try:
        multiprocessing.Pool(1000)
    except Exception:
        pass
    time.sleep(100)
    """
    assert run(src, cpu_s=1, wall_s=2).verdicts[0] in ("TLE", "RE")


def test_thread_bomb_is_bounded():
    src = """
    import threading, time
    n = 0
    try:
        for _ in range(100000):
            threading.Thread(target=time.sleep, args=(100,), daemon=True).start(); n += 1
    except Exception:
        pass
    print("OK" if n < 100000 else n)
    import os, sys; sys.stdout.flush(); os._exit(0)
    """
    assert run(src).verdicts == ["AC"]


@pytest.mark.parametrize("src", [
    "x = bytearray(1 << 40)",
    "x = []\nwhile True: x.append(bytearray(10**7))",
])
def test_memory_bombs_are_mle(src):
    assert run(src, memory_mb=512).verdicts == ["MLE"]


def test_mmap_bomb_fails():
    src = "import mmap\nm = mmap.mmap(-1, 1 << 36)\nfor i in range(0, 1 << 36, 4096): m[i] = 1"
    assert run(src, memory_mb=512).verdicts[0] in ("MLE", "RE")


def test_deep_recursion_segfault_is_re():
    # Recursion through a C builtin (map) uses the C stack: the process overflows it and gets SIGSEGV.
    r = run("import sys\nsys.setrecursionlimit(10**9)\ndef f(n): return list(map(f, [n+1]))\nf(0)", cpu_s=4)
    assert r.verdicts == ["RE"]


def test_stdout_flood_is_ole():
    t = time.time()
    r = run("while True: print('x' * 10**6)", output_bytes=1 << 20)
    assert r.verdicts == ["OLE"] and time.time() - t < 5


def test_stderr_flood_is_capped():
    r = run("import sys\nwhile True: sys.stderr.write('x' * 10**6)", output_bytes=1 << 20)
    assert r.verdicts[0] in ("OLE", "RE")


def test_disk_and_inode_fill_hit_tmpfs_caps():
    src = """
    import os
    ok = 0
    for d in ('/tmp', '.', '/dev/shm'):
        try:
            with open(d + '/big', 'wb') as f:
                for _ in range(10**5): f.write(b'x' * 10**6)
        except OSError:
            ok += 1
        try:
            os.remove(d + '/big')
        except OSError:
            pass
    try:
        for i in range(10**7): open('/tmp/f%d' % i, 'w').close()
    except OSError:
        ok += 1
    print('OK' if ok == 4 else ok)
    """
    assert run(src, cpu_s=5).verdicts == ["AC"]


def test_fd_exhaustion_is_re():
    assert run("import os\nwhile True: os.pipe()").verdicts == ["RE"]


def test_orphan_daemon_is_killed_and_does_not_delay():
    src = """
    import os, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(10**6)
        os._exit(0)
    print('OK')
    """
    t = time.time()
    assert run(src).verdicts == ["AC"]
    assert time.time() - t < 2  # the autouse fixture checks nothing of it survives


def test_sigterm_ignored_spin_is_killed():
    spin = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: pass"
    assert run(spin, cpu_s=1).verdicts == ["TLE"]


# ---- escape, exfiltration, interference (20–37) ----
def test_network_loopback_and_abstract_sockets_unreachable():
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(1)
    tcp.setblocking(False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(b"\0rl_reason_sandbox_probe")
    abstract.listen(1)
    abstract.setblocking(False)
    src = f"""
    import socket
    fails = 0
    for attempt in (lambda: socket.socket(socket.AF_INET),
                    lambda: socket.create_connection(('127.0.0.1', {tcp.getsockname()[1]}), timeout=1),
                    lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(
                        b'x', ('127.0.0.1', {udp.getsockname()[1]})),
                    lambda: socket.socket(socket.AF_INET6),
                    lambda: socket.create_connection(('127.0.0.1', 8000), timeout=1),
                    lambda: socket.create_connection(('127.0.0.1', 29500), timeout=1)):
        try:
            attempt()
        except OSError:
            fails += 1
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(b'\\0rl_reason_sandbox_probe')
    except OSError:
        fails += 1
    print('OK' if fails == 7 else fails)
    """
    try:
        assert run(src).verdicts == ["AC"]
        for s in (tcp, abstract):
            with pytest.raises(BlockingIOError):
                s.accept()
        with pytest.raises(BlockingIOError):
            udp.recvfrom(10)
    finally:
        tcp.close(), udp.close(), abstract.close()


def test_secrets_and_host_files_invisible(tmp_path, monkeypatch):
    canary = Path(__file__).resolve().parent / "data" / "code" / "canary_secret.txt"
    assert canary.exists()
    monkeypatch.setenv("HF_TOKEN", "hf_canary")
    code.shutdown()  # restart the servers while the trainer's env holds the canary
    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "humaneval" / "HumanEval.jsonl.gz"
    src = f"""
    import os
    bad = [k for k in os.environ if 'TOKEN' in k or 'AWS' in k or 'WANDB' in k]
    for p in ({str(canary)!r}, {str(data)!r}, '/proc/self/environ', '/proc/1/environ', '/etc/shadow',
              '/root/.netrc', '/root/.cache/huggingface/token', {str(Path.cwd())!r} + '/pyproject.toml',
              '/dev/nvidia0', '/dev/infiniband/uverbs0', '/dev/mem', '/dev/tty'):
        try:
            open(p, 'rb').read(1); bad.append(p)
        except OSError:
            pass
    print('OK' if not bad else bad)
    """
    assert run(src).verdicts == ["AC"]


def test_expected_output_not_in_sandbox_memory():
    secret = "CANARY_" + os.urandom(8).hex()
    src = """
    import gc, sys, ctypes
    found = [o for o in gc.get_objects() if isinstance(o, str) and o.startswith('CANARY_')]
    f = sys._getframe()
    while f:
        found += [v for v in f.f_locals.values() if isinstance(v, str) and v.startswith('CANARY_')]
        f = f.f_back
    libc = ctypes.CDLL(None, use_errno=True)
    traced = libc.ptrace(16, 1, 0, 0)  # PTRACE_ATTACH to our parent
    print(found[0] if found else 'nothing', traced)
    """
    r = run(src, expect=secret)
    assert r.verdicts == ["WA"]


def test_writes_outside_sandbox_fail():
    site = os.path.dirname(os.path.dirname(pytest.__file__))
    src = f"""
    bad = []
    for p in ('/etc/passwd', '/usr/bin/rl_sbx', {site!r} + '/rl_sbx.py', '/bin/bash', '/rl_sbx',
              {os.getcwd()!r} + '/x'):
        try:
            open(p, 'a').write('x'); bad.append(p)
        except OSError:
            pass
    print('OK' if not bad else bad)
    """
    assert run(src).verdicts == ["AC"]
    assert not os.path.exists(os.path.join(site, "rl_sbx.py"))


def test_killing_parents_does_not_hurt_the_judge():
    pids_before = [s.proc.pid for s in code._get_pool()._all]
    for src in ("import os\nos.kill(os.getppid(), 9)", "import os\nos.kill(-1, 9)",
                "import os\nos.killpg(0, 9)", "import os\nos.kill(0, 9)",
                "import subprocess\nsubprocess.run(['sh', '-c', 'kill -9 -1'])"):
        run(src)
    assert all(s.proc.poll() is None for s in code._get_pool()._all)
    assert [s.proc.pid for s in code._get_pool()._all] == pids_before
    assert run("print('OK')").verdicts == ["AC"]


def test_no_cross_sample_channels():
    write = """
    import os
    for p in ('/tmp/ans', '/dev/shm/ans', 'ans'):
        open(p, 'w').write('42')
    print('OK')
    """
    read = """
    import os
    seen = [p for p in ('/tmp/ans', '/dev/shm/ans', 'ans') if os.path.exists(p)]
    print('OK' if not seen else seen)
    """
    assert run(write).verdicts == ["AC"]
    assert run(read).verdicts == ["AC"]


def test_kernel_surface_denied():
    src = """
    import ctypes, os, fcntl
    libc = ctypes.CDLL(None, use_errno=True)
    sc = libc.syscall
    calls = {
        'unshare': sc(272, 0x10000000), 'mount': sc(165, b'none', b'/tmp', b'tmpfs', 0, None),
        'setns': sc(308, 0, 0), 'chroot': sc(161, b'/tmp'), 'io_uring_setup': sc(425, 1, None),
        'bpf': sc(321, 0, None, 0), 'userfaultfd': sc(323, 0), 'perf_event_open': sc(298, None, 0, -1, -1, 0),
        'keyctl': sc(250, 0, 0), 'ptrace': sc(101, 16, 1, 0, 0), 'clone_newuser': sc(56, 0x10000000 | 17, 0, 0, 0, 0),
        'ioctl_tiocsti': sc(16, 0, 0x5412, b'x'), 'shmget': sc(29, 0, 4096, 0o1000),
    }
    ok = [k for k, v in calls.items() if v != -1]
    try:
        fcntl.flock(os.open('/usr/bin/env', os.O_RDONLY), fcntl.LOCK_EX); ok.append('flock')
    except OSError:
        pass
    print('OK' if not ok else ok)
    """
    assert run(src).verdicts == ["AC"]


def test_guard_bypasses_still_contained():
    src = """
    import os, posix, importlib, resource
    importlib.reload(os)
    ok = os.getuid() != 0 and os.geteuid() != 0 and resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)
    try:
        os.setuid(0); ok = False
    except OSError:
        pass
    pid = posix.fork()
    if pid == 0:
        os.execv('/bin/sh', ['sh', '-c', 'sudo -n id >/dev/null 2>&1 || su -c id >/dev/null 2>&1 || exit 7'])
    _, st = os.waitpid(pid, 0)
    print('OK' if ok and os.WEXITSTATUS(st) == 7 else (ok, st))
    """
    assert run(src).verdicts == ["AC"]


def test_abort_is_re_without_core():
    assert run("import os\nos.abort()").verdicts == ["RE"]


def test_runs_stay_clean_of_host_mounts():
    """Nothing of the sandbox shows up in the host's mount table."""
    before = Path("/proc/self/mountinfo").read_text()
    run("print('OK')")
    assert Path("/proc/self/mountinfo").read_text() == before


# ---- the fallback tier and the refusal ----
def test_refuses_below_min_tier():
    from rewards.sandbox.pool import Pool, SandboxUnavailable

    with pytest.raises(SandboxUnavailable, match="RL_REASON_SANDBOX_MIN_TIER"):
        Pool(slots=1, min_tier="namespaces", max_tier="rlimits")


def test_rlimits_tier_contains_the_basics(monkeypatch):
    """Without namespaces: CPU limit, seccomp (no AF_INET), and cleanup of a setsid'd orphan by uid."""
    from rewards.sandbox.pool import Pool

    pool = Pool(slots=1, min_tier="rlimits", max_tier="rlimits")
    monkeypatch.setattr(code, "_pool", pool)
    try:
        assert pool.tier == "rlimits"
        assert run("print('OK')").verdicts == ["AC"]
        assert run("while True: pass", cpu_s=1).verdicts == ["TLE"]
        assert run("import socket\ntry:\n    socket.socket()\nexcept OSError:\n    print('OK')").verdicts == ["AC"]
        daemon = "import os, time\nif os.fork() == 0:\n    os.setsid(); time.sleep(1000)\nprint('OK')"
        assert run(daemon).verdicts == ["AC"]
    finally:
        pool.close()


# ---- nothing of a run stays where the next program starts from ------------------------------------
def _process_memory(pid: int) -> bytes:
    """Every readable private mapping of a process (as root, from the host)."""
    chunks = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            addr, perms, _, _, inode, *rest = line.split()
            if not perms.startswith("r") or inode != "0" or (rest and rest[0] in ("[vvar]", "[vsyscall]")):
                continue
            lo, hi = (int(x, 16) for x in addr.split("-"))
            try:
                mem.seek(lo)
                chunks.append(mem.read(hi - lo))
            except OSError:
                pass
    return b"".join(chunks)


@pytest.mark.skipif(os.geteuid() != 0, reason="reads the fork servers' memory through /proc (root)")
def test_fork_servers_hold_no_program_tests_input_or_output():
    """Every sandboxed program starts as a copy of its fork server: a program could scan its inherited
    memory, freed parts included, for what earlier runs brought (the tests of its own problem, judged a
    moment ago for a sibling sample; a sibling's source or output). The servers never read any of it."""
    marks = {k: f"{k}-{os.urandom(8).hex()}" for k in ("source", "tests", "stdin", "stdout", "stderr")}
    src = (f"import sys\n# {marks['source']}\ndef add(a, b):\n    return a + b\n"
           f"if __name__ == '__main__':\n"
           f"    sys.stdin.read(); print({marks['stdout']!r}); print({marks['stderr']!r}, file=sys.stderr)\n")
    tests = {"type": "assert", "entry_point": "add",
             "code": f"def check(candidate):\n    assert candidate(2, 3) == 5, {marks['tests']!r}\n"}
    stdio_tests = {"type": "stdio", "cases": [{"input": marks["stdin"], "output": marks["stdout"]}]}
    for _ in range(2 * code._get_pool().slots):
        assert code.run_tests(src, tests).passed == 1
        assert code.run_tests(src, stdio_tests).passed == 1
    for server in code._get_pool()._all:
        memory = _process_memory(server.proc.pid)
        assert len(memory) > 1 << 20  # the probe reads real memory
        assert b"def add(a, b)" not in memory
        found = [k for k, m in marks.items() if m.encode() in memory]
        assert found == [], f"the fork server's memory holds {found}"
