"""Code reward: run model-written programs against tests in a local sandbox.

Public API
----------
``run_tests(source, tests, language="python", **limits) -> RunResult``
    ``tests`` is ``{"type": "stdio", "cases": [{"input", "output"}]}``,
    ``{"type": "functional", "fn_name", "cases": [{"args", "kwargs", "expected"}]}`` or
    ``{"type": "assert", "code", "entry_point"}`` (HumanEval/MBPP: ``check(candidate)`` must return).
    Optional keys: ``float_tol`` (tolerance for float tokens; off by default).
    Limits (keywords): ``cpu_s`` (CPU seconds per test, integer granularity), ``wall_s`` (backstop),
    ``memory_mb`` (address space), ``stack_mb``, ``output_bytes``, ``nofile``, ``nproc``, ``tmpfs_mb``,
    ``stop_on_first_failure`` (default True).
``code_reward(prompts, completions, tests=None, **kwargs) -> list[float | None]``
    TRL reward: pass fraction of the last fenced code block; ``None`` for a row without tests or a
    sandbox failure. ``make_code_reward(all_or_nothing=True)`` gives 1.0/0.0 instead.

Isolation and speed: see docs/sandbox.md. The pool of fork servers starts on first use and stops
at interpreter exit. Tier floor: ``RL_REASON_SANDBOX_MIN_TIER`` (default ``namespaces``).
"""

from __future__ import annotations

import atexit
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

from rewards import sandbox_compare as cmp  # noqa: E402
from rewards.sandbox_pool import Pool, SandboxUnavailable, ServerDied, site_paths  # noqa: E402

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
    if not res.get("ack") or meta is None:
        raise ServerDied("sandbox setup failed: " + res.get("stderr", b"").decode("utf-8", "replace")[-500:])
    timing = {"cpu_s": round(meta["cpu"], 4), "wall_s": round(meta["wall"], 4), "maxrss_kb": meta["maxrss_kb"]}
    st = meta["status"]
    sig = os.WTERMSIG(st) if os.WIFSIGNALED(st) else 0
    code = os.WEXITSTATUS(st) if os.WIFEXITED(st) else None
    if meta["wall_timeout"] or (sig in (signal.SIGKILL, signal.SIGXCPU) and meta["cpu"] >= 0.9 * lim["cpu_s"]):
        return "TLE", timing
    if res["result"].startswith(b"\x00CE\x00"):
        return "CE", timing
    cap = lim["output_bytes"]
    if len(res["stdout"]) >= cap or len(res["result"]) >= cap or sig == signal.SIGXFSZ:
        return "OLE", timing
    if b"MemoryError" in res["stderr"]:
        return "MLE", timing
    if sig or code != 0:
        return "RE", timing
    return None, timing


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


def _requests(source: str, tests: dict, language: str):
    """Yield (request, checker) per test; expected values stay here, in the checker closure."""
    kind = tests.get("type")
    tol = tests.get("float_tol")
    if kind == "stdio":
        for case in tests["cases"]:
            exp = case["output"]
            yield {"mode": "stdio", "stdin": case["input"].encode()}, (
                lambda r, exp=exp: cmp.stdout_matches(r["stdout"], exp, tol))
    elif kind == "functional":
        if language != "python":
            raise ValueError("functional tests are Python-only")
        for case in tests["cases"]:
            exp = case["expected"]
            yield {"mode": "functional", "fn_name": tests["fn_name"], "args": list(case.get("args", [])),
                   "kwargs": dict(case.get("kwargs", {}))}, (
                lambda r, exp=exp: cmp.result_matches(r["result"], exp, tol))
    elif kind == "assert":
        if language != "python":
            raise ValueError("assert tests are Python-only")
        nonce = os.urandom(16).hex().encode()
        yield {"mode": "assert", "test_code": tests["code"], "entry_point": tests["entry_point"], "nonce": nonce}, (
            lambda r: r["result"] == nonce)
    else:
        raise ValueError(f"unknown tests type {kind!r}; expected 'stdio', 'functional' or 'assert'")


def _count(tests: dict) -> int:
    return 1 if tests.get("type") == "assert" else len(tests.get("cases", []))


def run_tests(source: str, tests: dict | str, language: str = "python", stop_on_first_failure: bool = True,
              **limits) -> RunResult:
    """Judge ``source`` on every test (see the module docstring). Never raises for a bad program."""
    if isinstance(tests, str):
        tests = json.loads(tests)
    t_call = _ns() if _trace is not None else 0
    lim = _limits(limits)
    total = _count(tests)
    try:
        pool = _get_pool()
    except SandboxUnavailable:
        raise
    except Exception as e:  # could not start the servers at all
        return RunResult(0, total, status="sandbox_error", error=f"{type(e).__name__}: {e}")
    result = RunResult(0, total, tier=pool.tier)
    if language not in ("python", "cpp", "c++"):
        raise ValueError(f"unsupported language {language!r}")
    try:
        base = {"lang": "python", "source": source, "limits": lim, "python_paths": site_paths()}
        if language in ("cpp", "c++"):
            exe, err = _compile_cpp(source, lim, pool)
            if exe is None:
                result.verdicts = ["CE"]
                result.stderr = err[-2000:]
                return result
            base = {"lang": "binary", "exe": exe, "limits": lim}
        for req, check in _requests(source, tests, language):
            if _trace is not None:
                t_req = _ns()
                req["trace"] = True
            res = pool.execute({**base, **req})
            verdict, timing = _verdict(res, lim)
            if verdict is None:
                verdict = "AC" if check(res) else "WA"
            if _trace is not None:
                _trace.append(res.get("trace", []) + [("p_call", t_call), ("p_req", t_req), ("p_judged", _ns())])
                t_call = _ns()
            result.verdicts.append(verdict)
            result.timings.append(timing)
            result.stderr = res["stderr"].decode("utf-8", "replace")
            if verdict == "AC":
                result.passed += 1
            elif stop_on_first_failure or verdict == "CE":
                break
    except (ServerDied, OSError, EOFError) as e:
        result.status, result.error = "sandbox_error", f"{type(e).__name__}: {e}"
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


def _completion_text(c) -> str:
    if isinstance(c, str):
        return c
    if isinstance(c, list):
        return "".join(m.get("content") or "" for m in c if isinstance(m, dict) and m.get("role") == "assistant")
    return str(c)


def make_code_reward(all_or_nothing: bool = False, **limits):
    """A TRL reward; ``all_or_nothing=True`` scores 1.0 only when every test passes."""
    _limits({k: v for k, v in limits.items() if k != "stop_on_first_failure"})  # fail early on a typo

    def code_reward(prompts, completions, tests=None, **kwargs) -> list[float | None]:
        n = len(completions)
        rows = tests if tests is not None else [None] * n
        log_metric = kwargs.get("log_metric")

        def judge(i: int):
            t = rows[i]
            if t is None:
                return None, None
            if isinstance(t, str):
                t = json.loads(t)
            code = extract_code(_completion_text(completions[i]))
            if code is None:
                return 0.0, "no_code"
            lang, src = code
            stop = limits.get("stop_on_first_failure", all_or_nothing)
            r = run_tests(src, t, language=lang, stop_on_first_failure=stop,
                          **{k: v for k, v in limits.items() if k != "stop_on_first_failure"})
            if r.status != "ok":
                return None, "sandbox_error"
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

    code_reward.__name__ = "code_reward"
    return code_reward


code_reward = make_code_reward()
