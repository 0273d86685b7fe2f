"""Landlock in the ``rlimits`` tier (no namespaces): the filesystem beyond the runtime, signals and
abstract UNIX sockets outside the sandbox's domain are out of reach, and normal programs still pass.

Every probe prints ``OK`` only when each attack failed with the expected error, so ``AC`` means
contained. Two pool configurations are forced:

* ``slot_uid``: the default when root, programs run as the slot uid (61000+slot); the targets are
  world-readable/-writable, so Landlock is what keeps them out;
* ``same_uid``: the slot uid is switched off, as for a non-root trainer whose programs run under its
  own uid; here the test runs as root, so Landlock is the *only* thing in the way (DAC allows all).

Probes whose failure would hurt the host (signals) are preceded by a harmless one (signal 0).
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from rewards import code
from rewards.sandbox import landlock as sandbox_landlock
from rewards.sandbox import pool as sandbox_pool
from rewards.sandbox.pool import Pool, SandboxUnavailable

REPO = Path(__file__).resolve().parents[1]
HUMANEVAL = REPO.parent / "shared" / "data" / "humaneval" / "HumanEval.jsonl.gz"

try:
    ABI = sandbox_landlock.abi_version()
except OSError:
    ABI = 0
needs_landlock = pytest.mark.skipif(ABI < 1, reason="kernel without Landlock: tier rlimits cannot start here")
needs_scoping = pytest.mark.skipif(ABI < 6, reason="signal/abstract-socket scoping needs Landlock ABI 6")


@pytest.fixture(scope="module", params=["slot_uid", "same_uid"])
def pool(request):
    if ABI < 1:
        pytest.skip("kernel without Landlock")
    with pytest.MonkeyPatch.context() as mp:
        if request.param == "same_uid":
            orig = sandbox_pool._config
            mp.setattr(sandbox_pool, "_config", lambda tier, slot: {**orig(tier, slot), "uid": None})
        p = Pool(slots=1, min_tier="rlimits", max_tier="rlimits")
        old = code._pool
        code._pool = p
        try:
            yield p
        finally:
            code._pool = old
            p.close()


def run(src: str, expect: str = "OK", stdin: str = "", **lim) -> code.RunResult:
    r = code.run_tests(textwrap.dedent(src), {"type": "stdio", "cases": [{"input": stdin, "output": expect}]}, **lim)
    assert r.status == "ok", r
    assert r.tier == "rlimits"
    return r


def explain(src: str) -> str:
    """The program's stdout (for assertion messages)."""
    lim = code._limits({})
    res = code._get_pool().execute({"lang": "python", "source": textwrap.dedent(src), "limits": lim, "stdin": b"",
                                    "python_paths": sandbox_pool.site_paths(), "mode": "stdio"})
    return (res["stdout"] + res["stderr"]).decode("utf-8", "replace")[-2000:]


@pytest.fixture
def outside(tmp_path_factory):
    """A world-readable secret and a world-writable dir outside the work dir (under /tmp), plus a
    canary in the home directory. World permissions: only Landlock can keep the slot uid out."""
    d = Path(tempfile.mkdtemp(prefix="rl-reason-landlock-test-", dir="/tmp"))
    d.chmod(0o777)
    secret = d / "secret.txt"
    secret.write_text("CANARY_SECRET")
    secret.chmod(0o666)
    fd, home_canary = tempfile.mkstemp(prefix=".rl_reason_landlock_canary_", dir=Path.home())
    os.write(fd, b"CANARY_HOME")
    os.close(fd)
    os.chmod(home_canary, 0o644)
    try:
        yield d, secret, Path(home_canary)
    finally:
        shutil.rmtree(d, ignore_errors=True)
        os.unlink(home_canary)


# ---- the tier and its rule set ----
@needs_landlock
def test_rlimits_tier_has_landlock(pool):
    assert pool.tier == "rlimits" and pool.landlock_abi == ABI >= 1
    ll = pool.landlock
    assert ll["handled_fs"] == sandbox_landlock.handled_fs(ABI)
    assert ll["signal_scoping"] == ll["abstract_unix_scoping"] == (ABI >= 6)
    allowed = {os.path.realpath(p) for p in sandbox_pool.runtime_paths()}
    allowed |= {f"/dev/{d}" for d in ("null", "zero", "full", "random", "urandom")}
    rules = {p for p, _ in ll["paths"]}
    assert rules <= allowed, rules - allowed
    for p in rules:  # no rule covers the project, the datasets, home, /tmp or /
        for private in (str(REPO), str(REPO / "rewards"), str(REPO.parent / "shared"), str(Path.home()), "/tmp", "/"):
            assert not (private == p or private.startswith(p.rstrip("/") + "/")), (p, private)
    # read/execute on the runtime, read/write on the devices; the work dir is added per execution
    for p, access in ll["paths"]:
        if p.startswith("/dev/"):
            assert access == sandbox_landlock.DEV & sandbox_landlock.FILE_RIGHTS & ll["handled_fs"], p
        else:
            assert access == sandbox_landlock.RO, p


# ---- reads ----
@needs_landlock
def test_cannot_read_outside_runtime(pool, outside):
    d, secret, home_canary = outside
    targets = [str(REPO / "pyproject.toml"), str(REPO / "rewards" / "code" / "__init__.py"), str(secret),
               str(home_canary), "/etc/passwd", "/proc/1/cmdline"]
    if HUMANEVAL.exists():
        targets.append(str(HUMANEVAL))
    dirs = [str(REPO), str(d), "/root", "/tmp", "/", "/etc", str(REPO.parent / "shared")]
    src = f"""
    import os
    bad = []
    # the runtime stays readable: the denials below are not a broken sandbox
    open('/usr/bin/env', 'rb').read(1)
    os.listdir('/usr/lib')
    open('mine.txt', 'w').write('x'); assert open('mine.txt').read() == 'x' and os.listdir('.') == ['mine.txt']
    for p in {targets!r}:
        try:
            open(p, 'rb').read(1); bad.append(p)
        except PermissionError:
            pass
    for p in {dirs!r}:
        try:
            os.listdir(p); bad.append(p)
        except PermissionError:
            pass
    print('OK' if not bad else bad)
    """
    assert run(src).verdicts == ["AC"], explain(src)


@needs_landlock
def test_children_and_exec_inherit_the_domain(pool, outside):
    """A forked child, a shell and an exec'd /bin/cat are as blind as the program, on a warm server
    that has already run other programs (the domain is per execution, never lifted)."""
    _, secret, _ = outside
    src = f"""
    import os, subprocess
    bad = []
    if os.fork() == 0:
        try:
            open({str(secret)!r}).read(); os._exit(1)
        except PermissionError:
            os._exit(0)
    _, st = os.wait()
    if st != 0: bad.append('fork')
    for cmd in (['/bin/cat', {str(secret)!r}], ['/bin/cat', {str(REPO / 'pyproject.toml')!r}],
                ['/bin/sh', '-c', 'ls /tmp >/dev/null 2>&1 || exit 3; exit 0']):
        r = subprocess.run(cmd, capture_output=True)
        if r.returncode == 0 or b'CANARY' in r.stdout: bad.append(cmd)
    print('OK' if not bad else bad)
    """
    for _ in range(3):
        assert run(src).verdicts == ["AC"], explain(src)
        assert run("print(sum(range(10)))", expect="45").verdicts == ["AC"]


# ---- writes ----
@needs_landlock
def test_cannot_write_outside_workdir(pool, outside):
    d, secret, home_canary = outside
    tag = "rlsbx-escape-" + os.urandom(4).hex()
    creates = [str(d / tag), f"/tmp/{tag}", f"/dev/shm/{tag}", str(REPO / tag), str(Path.home() / tag)]
    src = f"""
    import os, tempfile
    bad = []
    with tempfile.NamedTemporaryFile(dir=None) as f:  # TMPDIR is the work dir
        f.write(b'x')
        assert os.path.dirname(f.name) == os.getcwd(), f.name
    for p in {creates!r}:
        for attempt in (lambda: open(p, 'w').write('x'), lambda: os.mkdir(p), lambda: os.symlink('/etc', p),
                        lambda: os.mkfifo(p)):
            try:
                attempt(); bad.append(p)
            except PermissionError:
                pass
    open('mine', 'w').write('x')
    for attempt in (lambda: os.rename('mine', {creates[0]!r}), lambda: os.link('mine', {creates[0]!r})):
        try:
            attempt(); bad.append('rename/link')
        except OSError as e:  # EACCES, or EXDEV for a cross-directory move Landlock refuses
            if e.errno not in (13, 18): bad.append(repr(e))
    for attempt in (lambda: open({str(secret)!r}, 'a').write('x'), lambda: os.truncate({str(secret)!r}, 0),
                    lambda: os.unlink({str(secret)!r}), lambda: open({str(home_canary)!r}, 'r+').write('x'),
                    # metadata: not Landlock's (slot uid: ownership; same uid: the seccomp filter)
                    lambda: os.chmod({str(secret)!r}, 0o600), lambda: os.utime({str(home_canary)!r}, (0, 0)),
                    lambda: os.chown({str(secret)!r}, os.getuid(), os.getgid())):
        try:
            attempt(); bad.append('secret')
        except PermissionError:
            pass
    print('OK' if not bad else bad)
    """
    try:
        assert run(src).verdicts == ["AC"], explain(src)
        assert secret.read_text() == "CANARY_SECRET" and home_canary.read_bytes() == b"CANARY_HOME"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o666 and home_canary.stat().st_mtime > 0
        assert os.listdir(d) == ["secret.txt"]
    finally:
        for p in creates:
            if os.path.lexists(p):
                os.unlink(p) if not os.path.isdir(p) or os.path.islink(p) else os.rmdir(p)
    assert not any(os.path.lexists(p) for p in creates)


# ---- signals and abstract sockets (Landlock ABI 6 scoping) ----
@needs_landlock
@needs_scoping
def test_cannot_signal_processes_outside(pool):
    victim = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import signal, sys, time
        signal.signal(signal.SIGUSR1, lambda *a: (sys.stdout.write('USR1\\n'), sys.stdout.flush()))
        print('ready', flush=True)
        time.sleep(120)
        """)], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert victim.stdout.readline() == b"ready\n"
        me = os.getpid()
        # Harmless first: signal 0 (existence/permission check only) and a handled SIGUSR1.
        probe = f"""
        import os, signal
        bad = []
        for pid, sig in (({victim.pid}, 0), ({me}, 0), ({victim.pid}, signal.SIGUSR1), (-{victim.pid}, 0)):
            try:
                os.kill(pid, sig); bad.append((pid, sig))
            except PermissionError:
                pass
        print('OK' if not bad else bad)
        """
        assert run(probe).verdicts == ["AC"], explain(probe)
        os.kill(me, 0)  # we are alive
        assert victim.poll() is None
        os.kill(victim.pid, 0)
        assert select.select([victim.stdout], [], [], 0.2)[0] == [], "the victim received SIGUSR1"
        # The real thing, now that containment is proved: SIGKILL the victim and its process group.
        attack = f"""
        import os, signal
        bad = []
        for f in (lambda: os.kill({victim.pid}, signal.SIGKILL), lambda: os.killpg({victim.pid}, signal.SIGKILL),
                  lambda: os.kill({victim.pid}, signal.SIGTERM)):
            try:
                f(); bad.append(1)
            except PermissionError:
                pass
        print('OK' if not bad else bad)
        """
        assert run(attack).verdicts == ["AC"], explain(attack)
        time.sleep(0.1)
        assert victim.poll() is None
        os.kill(victim.pid, 0)
    finally:
        victim.kill()
        victim.wait()


@needs_landlock
@pytest.mark.parametrize("where", ["abstract", "path"])
def test_cannot_reach_unix_sockets_outside(pool, outside, where):
    """Host UNIX sockets, abstract (Landlock ABI 6 scoping, plus seccomp) or named in a world-writable
    dir (Landlock does not cover those: the tier's seccomp filter refuses ``socket()`` altogether)."""
    if where == "abstract" and ABI < 6:
        pytest.skip("abstract-socket scoping needs Landlock ABI 6")
    d = outside[0]
    name = (b"\0rl_reason_landlock_probe_" + os.urandom(4).hex().encode()) if where == "abstract" \
        else str(d / "probe.sock").encode()
    stream = socket.socket(socket.AF_UNIX)
    stream.bind(name)
    stream.listen(1)
    stream.setblocking(False)
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram.bind(name + b"_dgram")
    dgram.setblocking(False)
    if where == "path":
        for p in (name, name + b"_dgram"):
            os.chmod(p, 0o777)  # connect() needs write permission: grant it to the slot uid too
    src = f"""
    import socket
    bad = []
    for attempt in (lambda: socket.socket(socket.AF_UNIX).connect({name!r}),
                    lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).connect({name + b"_dgram"!r}),
                    lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'x', {name + b"_dgram"!r})):
        try:
            attempt(); bad.append(attempt)
        except PermissionError:
            pass
    a, b = socket.socketpair()  # within the sandbox, socket pairs still work (asyncio, multiprocessing pipes)
    a.sendall(b'x'); assert b.recv(1) == b'x'
    print('OK' if not bad else bad)
    """
    try:
        assert run(src).verdicts == ["AC"], explain(src)
        with pytest.raises(BlockingIOError):
            stream.accept()
        with pytest.raises(BlockingIOError):
            dgram.recv(10)
    finally:
        stream.close()
        dgram.close()


# ---- normal programs still pass ----
@needs_landlock
def test_normal_programs_pass(pool):
    r = code.run_tests("import sys\nprint(sum(map(int, sys.stdin.read().split())))",
                       {"type": "stdio", "cases": [{"input": "1 2", "output": "3"},
                                                   {"input": "40\n2\n", "output": "42"}]})
    assert (r.tier, r.verdicts) == ("rlimits", ["AC", "AC"]), r
    r = code.run_tests("class Solution:\n    def add(self, a, b):\n        return [a + b, {'k': (a, b)}]",
                       {"type": "functional", "fn_name": "add",
                        "cases": [{"args": [1, 2], "expected": [3, {"k": [1, 2]}]}]})
    assert r.verdicts == ["AC"], r
    r = code.run_tests("def inc(x):\n    return x + 1",
                       {"type": "assert", "code": "def check(f):\n    assert f(1) == 2\n    assert f(-1) == 0",
                        "entry_point": "inc"})
    assert r.verdicts == ["AC"], r
    r = code.run_tests("def inc(x):\n    return x + 2",
                       {"type": "assert", "code": "def check(f):\n    assert f(1) == 2", "entry_point": "inc"})
    assert r.verdicts == ["WA"], r  # a failed assert
    src = """
    import os, sys, json, random, tempfile, threading, subprocess, collections, heapq, re, fractions, decimal
    sys.setrecursionlimit(10**5)
    out = []
    t = threading.Thread(target=lambda: out.append(len(os.urandom(8)))); t.start(); t.join()
    with open('/dev/null', 'w') as f: f.write('x')
    with tempfile.TemporaryDirectory() as td:
        open(os.path.join(td, 'a'), 'w').write('1')
    r = subprocess.run(['sh', '-c', 'echo $((6*7))'], capture_output=True, text=True)
    print(out[0], r.stdout.strip(), sep=' ')
    """
    assert run(src, expect="8 42").verdicts == ["AC"], explain(src)


@needs_landlock
def test_cpp_compiles_and_runs(pool):
    src = "#include <bits/stdc++.h>\nint main(){long long a,b;std::cin>>a>>b;std::cout<<a+b<<\"\\n\";}"
    r = code.run_tests(src, {"type": "stdio", "cases": [{"input": "2 40", "output": "42"}]}, language="cpp")
    assert r.verdicts == ["AC"], r


@needs_landlock
@needs_scoping
def test_namespace_tier_has_the_landlock_layer_too():
    """Defence in depth: with the network namespace switched off (``netns=False``) the host's abstract
    UNIX sockets would be reachable from the namespace tier; Landlock scoping still refuses them."""
    name = b"\0rl_reason_landlock_ns_probe_" + os.urandom(4).hex().encode()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(name)
    listener.listen(1)
    listener.setblocking(False)
    p = Pool(slots=1, min_tier="namespaces", max_tier="namespaces")
    try:
        assert p.tier == "namespaces" and p.landlock_abi == ABI
        assert [path for path, _ in p.landlock["paths"]][0] == "/"  # the private root, all read-only
        src = (f"import socket\ntry:\n    socket.socket(socket.AF_UNIX).connect({name!r})\n"
               "except PermissionError:\n    print('OK')")
        res = p.execute({"lang": "python", "source": src, "limits": code._limits({"netns": False}), "stdin": b"",
                         "python_paths": [], "mode": "stdio"})
        assert res["stdout"] == b"OK\n", res
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        p.close()
        listener.close()


# ---- Landlock unavailable: the probe says so, the min-tier logic decides ----
def _deny_landlock_filter(err: int):
    """preexec_fn: a seccomp filter answering ``err`` to the landlock_* syscalls (a kernel without
    Landlock, or one that has it disabled), inherited by the fork server and its children."""
    from rewards.sandbox.seccomp import RET_ALLOW, RET_ERRNO, _SockFprog, _ins

    ld, jeq, ret = 0x20, 0x15, 0x06
    prog = b"".join([_ins(ld, 0)] + [_ins(jeq, nr, 0, 1) + _ins(ret, RET_ERRNO | err) for nr in (444, 445, 446)]
                    + [_ins(ret, RET_ALLOW)])
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = _SockFprog(len(prog) // 8, ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)

    def install():
        libc.prctl(38, 1, 0, 0, 0)
        if libc.syscall(317, 1, 0, ctypes.byref(fprog)) != 0:
            raise OSError(ctypes.get_errno(), "seccomp")

    return install, (buf, fprog)


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the test's seccomp filter is x86_64-only")
@pytest.mark.parametrize("err,words", [(errno.ENOSYS, "CONFIG_SECURITY_LANDLOCK"), (errno.EOPNOTSUPP, "lsm=")])
def test_without_landlock_rlimits_refuses_and_says_why(monkeypatch, err, words):
    install, keep = _deny_landlock_filter(err)
    real_popen = subprocess.Popen

    def popen(*a, **k):
        return real_popen(*a, preexec_fn=install, **k)

    monkeypatch.setattr(sandbox_pool.subprocess, "Popen", popen)
    with pytest.raises(SandboxUnavailable) as e:
        Pool(slots=1, min_tier="rlimits", max_tier="rlimits")
    msg = str(e.value)
    assert "tier rlimits needs Landlock" in msg and words in msg and "RL_REASON_SANDBOX_MIN_TIER" in msg, msg
    # Knowingly lowered to "none": the same sandbox without Landlock, reported as such.
    p = Pool(slots=1, min_tier="none", max_tier="rlimits")
    try:
        assert p.tier == "none" and p.landlock is None and p.landlock_abi == 0
        assert p.execute({"lang": "python", "source": "print(1)", "limits": code._limits({}), "stdin": b"",
                          "python_paths": [], "mode": "stdio"})["stdout"] == b"1\n"
    finally:
        p.close()
    # The namespace tier does not need it (Landlock is an extra layer there) and reports its absence.
    p = Pool(slots=1, min_tier="namespaces", max_tier="namespaces")
    try:
        assert p.tier == "namespaces" and p.landlock is None and words in p._all[0].landlock_error
    finally:
        p.close()


def test_abi_masks():
    h = sandbox_landlock.handled_fs
    assert [h(v) for v in (1, 2, 3, 4, 5, 6, 7, 8)] == [0x1FFF, 0x3FFF, 0x7FFF, 0x7FFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF]
    assert sandbox_landlock.RW & (sandbox_landlock.MAKE_CHAR | sandbox_landlock.MAKE_BLOCK) == 0
    assert sandbox_landlock.RO == sandbox_landlock.EXECUTE | sandbox_landlock.READ_FILE | sandbox_landlock.READ_DIR
    assert "lsm=" in sandbox_landlock.unavailable_reason(errno.EOPNOTSUPP)
    assert "CONFIG_SECURITY_LANDLOCK" in sandbox_landlock.unavailable_reason(errno.ENOSYS)
