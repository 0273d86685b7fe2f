"""Code reward: run model-written programs against tests in a local sandbox.

Public API
----------
``run_tests(source, tests, language="python", **limits) -> RunResult``
    ``tests`` is ``{"type": "stdio", "cases": [{"input", "output"}]}``,
    ``{"type": "functional", "fn_name", "cases": [{"args", "kwargs", "expected"}]}`` or
    ``{"type": "assert", "code", "entry_point"?}`` (HumanEval ``check(candidate)`` or MBPP-style plain
    asserts; the tests run in a judge process the program cannot reach, see docs/sandbox.md).
    Optional keys: ``float_tol`` (tolerance for float tokens; off by default).
    Limits (keywords): ``cpu_s`` (CPU seconds, integer granularity; the whole process tree's with cgroups),
    ``wall_s`` (backstop), ``memory_mb`` (the tree's memory), ``stack_mb``, ``output_bytes``, ``nofile``,
    ``nproc``, ``tmpfs_mb``, ``stop_on_first_failure`` (default True). Never raises for anything a program
    does; ``status`` is "ok", "invalid_tests" (the spec is unusable: ``error`` names the field) or
    "sandbox_error" (ours, not the program's).
``code_reward(prompts, completions, tests=None, **kwargs) -> list[float | None]``
    TRL reward: pass fraction of the last fenced code block; ``None`` for a row without tests, with unusable
    tests, or on a sandbox failure. ``make_code_reward(all_or_nothing=True)`` gives 1.0/0.0 instead.

Isolation and speed: see docs/sandbox.md. The pool of fork servers starts on first use and stops
at interpreter exit. Tier floor: ``RL_REASON_SANDBOX_MIN_TIER`` (default ``namespaces``).
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import re
import signal
import threading
import time
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from rewards.code import compare as cmp
from rewards.text import completion_text
from rewards.sandbox import rpc as sandbox_rpc
from rewards.sandbox.pool import Pool, SandboxUnavailable, ServerDied, site_paths

VERDICTS = ("AC", "WA", "TLE", "MLE", "OLE", "RE", "CE")
DEFAULT_LIMITS = {
    "cpu_s": 2, "wall_s": None, "memory_mb": 2048, "stack_mb": 256, "output_bytes": 8 << 20,
    "nofile": 256, "nproc": 64, "tmpfs_mb": 64, "tmpfs_inodes": 4096, "netns": True,
}
CPP_FLAGS = ["-O2", "-std=gnu++17", "-pipe", "-DONLINE_JUDGE"]
__all__ = ["run_tests", "code_reward", "make_code_reward", "extract_code", "RunResult", "SandboxUnavailable",
           "shutdown", "sandbox_tier"]


@dataclass
class RunResult:
    passed: int
    total: int
    verdicts: list[str] = field(default_factory=list)  # one per test run; tests after a stop are absent
    timings: list[dict] = field(default_factory=list)  # per test: cpu_s, wall_s, maxrss_kb
    status: str = "ok"  # "ok": the program was judged; "sandbox_error": we failed, not the program
    error: str | None = None
    tier: str | None = None
    stderr: str = ""  # tail of the last test's stderr, for debugging

    @property
    def fraction(self) -> float:
        return self.passed / self.total if self.total else 0.0


# ---- the lazily created pool ---------------------------------------------------------------
_pool: Pool | None = None
_pool_lock = threading.Lock()


def _get_pool() -> Pool:
    global _pool
    with _pool_lock:
        if _pool is None:
            slots = int(os.environ.get("RL_REASON_SANDBOX_SLOTS", "0")) or None
            _pool = Pool(slots=slots, min_tier=os.environ.get("RL_REASON_SANDBOX_MIN_TIER", "namespaces"),
                         max_tier=os.environ.get("RL_REASON_SANDBOX_MAX_TIER", "namespaces"))
        return _pool


def shutdown() -> None:
    """Stop the fork servers (also registered at exit); the next call starts a fresh pool."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.close()
            _pool = None


atexit.register(shutdown)


def sandbox_tier() -> str:
    return _get_pool().tier


# ---- judging ---------------------------------------------------------------------------------
# Per-stage timestamps (time.perf_counter_ns, CLOCK_MONOTONIC in every process) of each test, when a
# list is put here (benchmarks/sandbox.py --breakdown); None: no tracing, nothing recorded.
_trace: list | None = None
_ns = time.perf_counter_ns


def _limits(overrides: dict) -> dict:
    unknown = set(overrides) - set(DEFAULT_LIMITS)
    if unknown:
        raise TypeError(f"unknown sandbox limits {sorted(unknown)}; known: {sorted(DEFAULT_LIMITS)}")
    lim = {**DEFAULT_LIMITS, **{k: v for k, v in overrides.items() if v is not None}}
    lim["cpu_s"] = max(1, int(-(-float(lim["cpu_s"]) // 1)))  # RLIMIT_CPU counts whole seconds
    if lim["wall_s"] is None:
        lim["wall_s"] = 3 * lim["cpu_s"] + 2  # generous: CPU time is the real limit, wall only a backstop
    return lim


def _verdict(res: dict, lim: dict) -> tuple[str | None, dict]:
    """(verdict or None when the output must still be compared, timing); raises on sandbox failure."""
    if "error" in res:
        raise ServerDied(res["error"])
    meta = res.get("meta")
    peer = res.get("peer")  # assert tests: the candidate program's process (``res`` is the tests')
    for r in (res, peer) if peer else (res,):
        if not r.get("ack") or r.get("meta") is None:
            raise ServerDied("sandbox setup failed: " + r.get("stderr", b"").decode("utf-8", "replace")[-500:])
    tree = res.get("tree")  # the run's cgroup: the whole process tree's CPU time, memory and pids
    cpu = tree["cpu"] if tree else meta["cpu"] + (peer["meta"]["cpu"] if peer else 0.0)
    timing = {"cpu_s": round(cpu, 4), "wall_s": round(meta["wall"], 4),
              "maxrss_kb": (peer or res)["meta"]["maxrss_kb"]}
    procs = [meta, peer["meta"]] if peer else [meta]
    if res.get("cpu_out") or any(m["wall_timeout"] for m in procs) or (tree and tree["cpu"] >= lim["cpu_s"]):
        return "TLE", timing
    for m in procs:
        # RLIMIT_CPU's SIGKILL (our own kills are flagged above). Under heavy load it was seen at 0.85x the
        # limit by wait4's rusage: no other SIGKILL reaches a pid-1 program, so half the budget suffices.
        st = m["status"]
        killed = os.WIFSIGNALED(st) and os.WTERMSIG(st) in (signal.SIGKILL, signal.SIGXCPU)
        if killed and m["cpu"] >= 0.5 * lim["cpu_s"]:
            return "TLE", timing
    if res["result"].startswith(b"\x00CE\x00"):
        return "CE", timing
    cap = lim["output_bytes"]
    outs = [res] + ([peer] if peer else [])
    if any(len(r["stdout"]) >= cap for r in outs) or len(res["result"]) >= cap or \
            any(os.WIFSIGNALED(m["status"]) and os.WTERMSIG(m["status"]) == signal.SIGXFSZ for m in procs):
        return "OLE", timing
    if (tree and tree["oom"]) or any(b"MemoryError" in r["stderr"] for r in outs):
        return "MLE", timing
    if peer:  # the tests decide; their outcome is read by the caller
        return None, timing
    st = meta["status"]
    if os.WIFSIGNALED(st) or os.WEXITSTATUS(st) != 0:
        return "RE", timing
    return None, timing


def _assert_verdict(outcome: str, timing: dict, lim: dict) -> str:
    """The tests' outcome, except that a program that vanished mid-test after using (nearly) its
    whole CPU budget was stopped for time: under heavy load the kill was once seen without its
    signal in the program's status, and the tests only saw the program hang up (RE)."""
    return "TLE" if outcome == "RE" and timing["cpu_s"] >= 0.95 * lim["cpu_s"] else outcome


def _assert_outcome(res: dict) -> tuple[str, str]:
    """(verdict, detail) from what the tests' process wrote on fd 3; only a clean "pass" with exit 0 is AC."""
    try:
        out = json.loads(res["result"].decode("utf-8"))
        outcome, detail = out["outcome"], str(out.get("detail", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return "RE", "the tests ended without an outcome"
    st = res["meta"]["status"]
    if outcome == "pass":
        return ("AC", "") if os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0 else ("RE", "the tests did not exit cleanly")
    return {"assert": "WA", "compile_error": "CE", "bad_test": "invalid_tests"}.get(outcome, "RE"), detail


def _compile_cpp(source: str, lim: dict, pool: Pool) -> tuple[bytes | None, str]:
    key = hashlib.sha256(source.encode()).hexdigest()
    with _cache_lock:
        if key in _cpp_cache:
            _cpp_cache.move_to_end(key)
            return _cpp_cache[key]
    clim = {**lim, "cpu_s": 10, "wall_s": 30, "output_bytes": 64 << 20, "memory_mb": max(lim["memory_mb"], 4096)}
    res = pool.execute({"lang": "compile", "source": source, "flags": CPP_FLAGS, "limits": clim, "mode": "compile"})
    verdict, _ = _verdict(res, clim)
    out = (res["result"], "") if verdict is None else (None, res["stderr"].decode("utf-8", "replace"))
    with _cache_lock:
        _cpp_cache[key] = out
        while len(_cpp_cache) > 256:
            _cpp_cache.popitem(last=False)
    return out


_cpp_cache: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()


class InvalidTests(ValueError):
    """The test spec itself is unusable (a dataset problem, not the program's); names the field."""


def _check_spec(tests, language: str) -> dict:
    """The spec, or InvalidTests naming the field at fault."""
    if isinstance(tests, (str, bytes)):
        try:
            tests = json.loads(tests)
        except ValueError as e:
            raise InvalidTests(f"tests: not JSON ({e})") from None
    if not isinstance(tests, dict):
        raise InvalidTests(f"tests: expected a dict, got {type(tests).__name__}")
    kind = tests.get("type")
    if kind not in ("stdio", "functional", "assert"):
        raise InvalidTests(f"tests['type']: unknown {kind!r}; expected 'stdio', 'functional' or 'assert'")
    if kind in ("functional", "assert") and language != "python":
        raise InvalidTests(f"tests['type']: {kind} tests are Python-only, the program is {language}")
    tol = tests.get("float_tol")
    if tol is not None and (not isinstance(tol, (int, float)) or isinstance(tol, bool) or not tol >= 0):
        raise InvalidTests(f"tests['float_tol']: expected a number >= 0, got {tol!r}")
    if kind == "assert":
        if not isinstance(tests.get("code"), str) or not tests["code"].strip():
            raise InvalidTests("tests['code']: the assert test code is missing or empty (nothing would be checked)")
        entry = tests.get("entry_point")
        if entry is not None and (not isinstance(entry, str) or not sandbox_rpc.ENTRY_POINT.match(entry)):
            raise InvalidTests(f"tests['entry_point']: {entry!r} is not a name like 'f' or 'Solution().f'")
        return tests
    cases = tests.get("cases")
    if not isinstance(cases, list):
        raise InvalidTests(f"tests['cases']: expected a list of cases, got {type(cases).__name__}")
    need = ("input", "output") if kind == "stdio" else ("expected",)
    for i, case in enumerate(cases):
        if not isinstance(case, dict) or any(k not in case for k in need):
            raise InvalidTests(f"tests['cases'][{i}]: needs the keys {list(need)}")
        if kind == "stdio" and not (isinstance(case["input"], str) and isinstance(case["output"], str)):
            raise InvalidTests(f"tests['cases'][{i}]: 'input' and 'output' must be strings")
        if kind == "functional" and (not isinstance(case.get("args", []), list) or
                                     not isinstance(case.get("kwargs", {}), dict)):
            raise InvalidTests(f"tests['cases'][{i}]: 'args' must be a list and 'kwargs' a dict")
    if kind == "functional" and not (isinstance(tests.get("fn_name"), str) and tests["fn_name"].isidentifier()):
        raise InvalidTests(f"tests['fn_name']: expected a function name, got {tests.get('fn_name')!r}")
    return tests


def _requests(tests: dict):
    """Yield (request, checker) per test; expected values stay here, in the checker closure."""
    kind = tests["type"]
    tol = tests.get("float_tol")
    if kind == "stdio":
        for case in tests["cases"]:
            exp = case["output"]
            yield {"mode": "stdio", "stdin": case["input"].encode()}, (
                lambda r, exp=exp: cmp.stdout_matches(r["stdout"], exp, tol))
    elif kind == "functional":
        for case in tests["cases"]:
            exp = case["expected"]
            yield {"mode": "functional", "fn_name": tests["fn_name"], "args": list(case.get("args", [])),
                   "kwargs": dict(case.get("kwargs", {}))}, (
                lambda r, exp=exp: cmp.result_matches(r["result"], exp, tol))
    else:  # the expected values are inside the test code, which runs in its own process
        yield {"mode": "assert", "test_code": tests["code"], "entry_point": tests.get("entry_point")}, None


def _count(tests) -> int:
    """Tests in a spec (1 for assert tests, and for a spec too broken to count)."""
    cases = tests.get("cases") if isinstance(tests, dict) and tests.get("type") != "assert" else None
    return len(cases) if isinstance(cases, list) else 1


@functools.lru_cache(maxsize=1)
def _host_paths() -> tuple[tuple[str, str], ...]:
    """Paths of this machine that a program's tracebacks must not show, longest first."""
    import sys
    import sysconfig

    paths = {os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))): "<project>"}
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, *site_paths(), *sysconfig.get_paths().values()):
        for q in {p, os.path.realpath(p)}:
            if q and q != "/" and len(q) > 4:
                paths.setdefault(q, "<python>")
    home = os.path.expanduser("~")
    if home not in ("/", "~"):
        paths.setdefault(home, "~")
    return tuple(sorted(paths.items(), key=lambda kv: -len(kv[0])))


def _scrub(text: str) -> str:
    for path, name in _host_paths():
        if path in text:
            text = text.replace(path, name)
    return text


def run_tests(source: str, tests: dict | str, language: str = "python", stop_on_first_failure: bool = True,
              **limits) -> RunResult:
    """Judge ``source`` on every test (see the module docstring). Never raises for anything a program
    does; an unusable spec gives ``status == "invalid_tests"`` with the field in ``error``."""
    t_call = _ns() if _trace is not None else 0
    lim = _limits(limits)
    if language not in ("python", "cpp", "c++"):
        raise ValueError(f"unsupported language {language!r}")
    try:
        tests = _check_spec(tests, "python" if language == "python" else "cpp")
    except InvalidTests as e:
        return RunResult(0, _count(tests), status="invalid_tests", error=str(e))
    total = _count(tests)
    try:
        pool = _get_pool()
    except SandboxUnavailable:
        raise
    except Exception as e:  # could not start the servers at all
        return RunResult(0, total, status="sandbox_error", error=f"{type(e).__name__}: {e}")
    result = RunResult(0, total, tier=pool.tier)
    try:
        base = {"lang": "python", "source": source, "limits": lim, "python_paths": site_paths()}
        if language in ("cpp", "c++"):
            exe, err = _compile_cpp(source, lim, pool)
            if exe is None:
                result.verdicts = ["CE"]
                result.stderr = _scrub(err[-2000:])
                return result
            base = {"lang": "binary", "exe": exe, "limits": lim}
        for req, check in _requests(tests):
            if _trace is not None:
                t_req = _ns()
                req["trace"] = True
            res = pool.execute({**base, **req})
            outcome = _assert_outcome(res) if check is None and res.get("ack") else None
            if outcome and outcome[0] == "invalid_tests":
                # the tests do not compile: decided before the program mattered (it may not have started)
                return RunResult(0, total, status="invalid_tests", error=outcome[1], tier=pool.tier)
            verdict, timing = _verdict(res, lim)
            stderr = res["stderr"].decode("utf-8", "replace")
            if check is None:  # assert tests
                if verdict is None:
                    verdict = _assert_verdict(outcome[0], timing, lim)
                peer_err = res["peer"]["stderr"].decode("utf-8", "replace").strip()
                if peer_err and verdict != "AC":
                    stderr = f"{stderr.rstrip()}\n--- stderr of the program ---\n{peer_err}\n"
            elif verdict is None:
                try:
                    verdict = "AC" if check(res) else "WA"
                except Exception:  # any comparison failure is a verdict, never a crash of the reward
                    verdict = "WA"
            if _trace is not None:
                _trace.append(res.get("trace", []) + [("p_call", t_call), ("p_req", t_req), ("p_judged", _ns())])
                t_call = _ns()
            result.verdicts.append(verdict)
            result.timings.append(timing)
            result.stderr = _scrub(stderr[-4000:])
            if verdict == "AC":
                result.passed += 1
            elif stop_on_first_failure or verdict == "CE":
                break
    except (ServerDied, OSError, EOFError) as e:
        result.status, result.error = "sandbox_error", f"{type(e).__name__}: {e}"
    except Exception as e:  # a bug of ours: never the program's fault, never an exception out of a reward
        result.status, result.error = "sandbox_error", f"internal error: {type(e).__name__}: {e}"
    return result


# ---- the TRL reward --------------------------------------------------------------------------
_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)```", re.DOTALL)
_LANGS = {"python": "python", "py": "python", "python3": "python", "": "python",
          "cpp": "cpp", "c++": "cpp", "cc": "cpp", "cxx": "cpp"}


def extract_code(text: str) -> tuple[str, str] | None:
    """(language, source) of the last fenced code block, or None."""
    blocks = _FENCE.findall(text or "")
    if not blocks:
        return None
    tag, body = blocks[-1]
    return _LANGS.get(tag.lower(), "python"), body


_warned: set = set()


def _warn_once(msg: str) -> None:
    """One line per distinct problem (a broken dataset would otherwise repeat it every step)."""
    key = msg.split(":", 2)[-1]
    if key not in _warned:
        _warned.add(key)
        import warnings

        warnings.warn(msg, RuntimeWarning, stacklevel=3)


@dataclass(frozen=True)
class _Options:
    """What ``make_code_reward`` binds: a plain value, so the reward pickles as a partial."""

    all_or_nothing: bool = False
    limits: tuple = ()  # (name, value) pairs of run_tests' keywords


def make_code_reward(all_or_nothing: bool = False, **limits):
    """A TRL reward; ``all_or_nothing=True`` scores 1.0 only when every test passes."""
    _limits({k: v for k, v in limits.items() if k != "stop_on_first_failure"})  # fail early on a typo
    return functools.partial(code_reward, _options=_Options(all_or_nothing, tuple(limits.items())))


# The options travel as one underscored keyword: TRL passes every dataset column as a keyword too,
# and a column named like an option must not reach it.
def code_reward(prompts, completions, tests=None, *, _options: _Options = _Options(), **kwargs) -> list[float | None]:
    """The TRL reward with the default options (see ``make_code_reward``)."""
    all_or_nothing, limits = _options.all_or_nothing, dict(_options.limits)
    n = len(completions)
    rows = tests if tests is not None else [None] * n
    log_metric = kwargs.get("log_metric")

    def judge(i: int):
        t = rows[i]
        if t is None:
            return None, None
        try:
            code = extract_code(completion_text(completions[i]))
            if code is None:
                return 0.0, "no_code"
            lang, src = code
            stop = limits.get("stop_on_first_failure", all_or_nothing)
            r = run_tests(src, t, language=lang, stop_on_first_failure=stop,
                          **{k: v for k, v in limits.items() if k != "stop_on_first_failure"})
        except Exception as e:  # one bad row must not end the reward call (and the training step)
            _warn_once(f"code reward: row {i} cannot be judged: {type(e).__name__}: {e}")
            return None, "sandbox_error"
        if r.status != "ok":  # "invalid_tests" (the dataset's fault) or "sandbox_error" (ours): no score
            if r.status == "invalid_tests":
                _warn_once(f"code reward: row {i}: {r.error}")
            return None, r.status
        score = float(r.passed == r.total) if all_or_nothing else r.fraction
        return score, (r.verdicts[-1] if r.verdicts else "none")

    slots = _get_pool().slots if any(r is not None for r in rows) else 1
    with ThreadPoolExecutor(max_workers=slots) as ex:
        out = list(ex.map(judge, range(n)))
    if callable(log_metric):
        counts = Counter(tag for _, tag in out if tag is not None)
        for tag, c in counts.items():
            try:
                log_metric(f"code/{tag}", c)
            except Exception:
                pass
    return [score for score, _ in out]
