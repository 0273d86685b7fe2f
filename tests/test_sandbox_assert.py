"""Specification of the ``assert`` judge (HumanEval/MBPP tests) with the candidate and the tests in
separate sandboxed processes (docs/sandbox.md, rewards/code/__init__.py).

The candidate program runs in one sandboxed process and the test code in another, clean one; the test
process reaches the candidate only through calls whose arguments and results cross as plain data, and
anything that is not plain data arrives as an opaque handle (``==`` is identity, truth testing raises
TypeError, attribute access and method calls are forwarded, a handle passed back is the original object).
Written against the public API only: ``rewards.code.run_tests``.

Layout
  1. Hostile programs, one small program per attack, grouped by class of attack. Each is a WRONG program
     plus an attempt to turn it into a pass; all must give ``passed == 0`` with ``status == "ok"`` (a
     hostile program is never a sandbox error: the reward is None for those, not 0).
     ``PASSES_IN_PROCESS`` lists the ids that passed (were real attacks) against the in-process harness of
     commit ec0c2fb, measured by running these same cases against ``git archive HEAD``; MBPP-shaped ones
     were measured with ``def check(candidate): pass`` appended to the test code, since that harness
     required ``check``. The others aim at what the two-process design adds (pickled values, handles,
     callbacks, the channel, exit paths) or at the verdict through exits, hangs and fake output.
  2. Correct programs that must pass, by the same classes (frames, gc, threads, recursion limits, print,
     globals, helpers, redefined builtins for their own use, imports, expected exceptions).
  3. Verdicts; values crossing both ways (every kind, both labels); exceptions; handles, callbacks,
     write-back of mutated arguments, state across calls.
  4. HumanEval ``check(candidate)`` converted to MBPP-style top-level asserts (canonical passes, broken fails).
  5. Bad input and traceback hygiene; kill(-1) after a containment probe; a known gap (xfail).

Choices where the semantics left room:
  * Operators and builtin protocols on a handle (``-``, ``abs``, ``<``, ``len``, ``[]``, ``iter``, hash) must
    not let the candidate's dunders decide a comparison: the tests only require ``passed == 0`` for programs
    whose liar needs one of them, so raising TypeError or not forwarding both satisfy them.
  * A name the test uses is never resolved to the candidate's object when it is a builtin (even if the
    candidate imported something under that name) or a module the candidate imported (even if it then
    rebound it, or imported its own file under that name); ``from math import isclose`` followed by
    ``isclose = ...`` is still an import; a class the candidate names like a stdlib module the test uses
    (``class math``) must not stand in for that module either.
  * Exceptions: the builtin type is decided from the real type (not ``__class__``, ``__mro__`` or
    ``__instancecheck__``); messages and plain args cross (``str(e)``, ``e.args``); exceptions raised by a
    test-side callback reach the candidate with their builtin type.
  * A callable returned by the candidate can be called by the test; a callable passed by the test can only
    be called by the candidate (no way into the test process through its attributes).
  * Generators and iterators are consumed lazily (an infinite generator with ``islice`` works).
  * The test code never reaches the candidate's process (not even its text).
"""

from __future__ import annotations

import ast
import gzip
import json
import os
import re
import sys
import textwrap
from pathlib import Path

import pytest

from rewards import code

REPO = Path(__file__).resolve().parents[1]
HUMANEVAL = REPO.parent / "shared" / "data" / "humaneval" / "HumanEval.jsonl.gz"
HOSTILE_LIMITS = {"cpu_s": 1, "wall_s": 3}


# ---- helpers --------------------------------------------------------------------------------------
def T(test_code: str, entry_point: str | None = "f") -> dict:
    """An assert spec; ``entry_point=None`` leaves the key out (MBPP style)."""
    spec = {"type": "assert", "code": textwrap.dedent(test_code).strip("\n") + "\n"}
    if entry_point is not None:
        spec["entry_point"] = entry_point
    return spec


def judge(src: str, tests: dict, **limits) -> code.RunResult:
    return code.run_tests(textwrap.dedent(src).strip("\n") + "\n", tests, **limits)


def assert_rejected(r: code.RunResult) -> None:
    assert r.status == "ok", r  # a hostile program is the program's fault, never a sandbox error
    assert r.total == 1 and r.passed == 0 and "AC" not in r.verdicts, r


def assert_accepted(r: code.RunResult) -> None:
    assert r.status == "ok" and r.total == 1 and r.passed == 1 and r.verdicts == ["AC"], r


def case(case_id: str, src: str, tests: dict):
    return pytest.param(src, tests, id=case_id)


# ---- test specs shared by the cases ---------------------------------------------------------------
EXAMPLE_T = {"type": "assert", "entry_point": "add", "code": "def check(candidate):\n    assert candidate(2, 3) == 5\n"}
ADD = T("""
    def check(candidate):
        assert candidate(2, 3) == 5
        assert candidate(-1, 1) == 0
        assert candidate(10, 20) == 30
""", "add")
ADD_MBPP = T("""
    assert add(2, 3) == 5
    assert add(-1, 1) == 0
    assert add(10, 20) == 30
""", "add")
ADD_MBPP_CANDIDATE = T("""
    assert candidate(2, 3) == 5
    assert candidate(-1, 1) == 0
""", "add")
# Answers no function could know: only a program that reads the tests passes.
SECRET = T("""
    def check(candidate):
        assert candidate(1) == 739
        assert candidate(2) == 12
        assert candidate(3) == -5
""", "mystery")
SECRET_MBPP = T("""
    assert mystery(1) == 739
    assert mystery(2) == 12
    assert mystery(3) == -5
""", "mystery")
HALF = T("""
    def check(candidate):
        assert abs(candidate(3.5) - 0.5) < 1e-6
        assert abs(candidate(1.33) - 0.33) < 1e-6
""", "truncate_number")
HALF_MBPP = T("""
    assert abs(truncate_number(3.5) - 0.5) < 1e-6
    assert abs(truncate_number(1.33) - 0.33) < 1e-6
""", "truncate_number")
HALF_MBPP_NO_EP = T("""
    assert abs(truncate_number(3.5) - 0.5) < 1e-6
    assert abs(truncate_number(1.33) - 0.33) < 1e-6
""", None)
HALF_NEG = T("""
    def check(candidate):
        try:
            candidate(-1.5)
        except ValueError:
            pass
        assert abs(candidate(3.5) - 0.5) < 1e-6
""", "truncate_number")
# math used by the test without importing it: the program's `import math` provides it (HumanEval prompts do this)
AREA_RELIES = T("""
    def check(candidate):
        assert math.isclose(candidate(2.0), 12.566370614359172)
        assert math.isclose(candidate(1.0), 3.141592653589793)
""", "area")
AREA_IMPORTS = T("""
    import math

    def check(candidate):
        assert math.isclose(candidate(2.0), 12.566370614359172)
        assert math.isclose(candidate(1.0), 3.141592653589793)
""", "area")
AREA_BARE = T("""
    def check(candidate):
        assert isclose(candidate(2.0), 12.566370614359172)
        assert isclose(candidate(1.0), 3.141592653589793)
""", "area")
AREA_MBPP = T("""
    assert math.isclose(area(2.0), 12.566370614359172)
    assert math.isclose(area(1.0), 3.141592653589793)
""", "area")
AREA_BARE_MBPP = T("""
    assert isclose(area(2.0), 12.566370614359172)
    assert isclose(area(1.0), 3.141592653589793)
""", "area")
ISQRT = T("""
    def check(candidate):
        assert candidate(16) == 4
        assert candidate(17) == 4
        try:
            candidate(-1)
        except ValueError:
            pass
        else:
            assert False, "a negative input must raise ValueError"
""", "isqrt")
ISQRT_MSG = T("""
    def check(candidate):
        assert candidate(16) == 4
        try:
            candidate(-1)
        except ValueError as e:
            assert e.args[0] == "negative input"
        else:
            assert False
""", "isqrt")
PRIMES = T("""
    def check(candidate):
        assert len(candidate(5)) == 5
        assert len(candidate(0)) == 0
""", "first_primes")
UNIQUE = T("""
    def check(candidate):
        assert sorted(candidate([3, 1, 3, 2])) == [1, 2, 3]
        assert sorted(candidate([5, 5])) == [5]
""", "unique")
UNIQUE_MBPP = T("""
    assert sorted(unique([3, 1, 3, 2])) == [1, 2, 3]
    assert sorted(unique([5, 5])) == [5]
""", "unique")
EVENS = T("""
    def check(candidate):
        assert all(x % 2 == 0 for x in candidate([1, 2, 3, 4, 6]))
        assert all(x % 2 == 0 for x in candidate([7, 8]))
""", "evens")
TO_FLOAT = T("""
    def check(candidate):
        assert isinstance(candidate("2.5"), float)
        assert isinstance(candidate("1e3"), float)
""", "to_float")
SORT = T("""
    def check(candidate):
        assert candidate([3, 1, 2]) == [1, 2, 3]
        assert candidate([5, 4]) == [4, 5]
""", "sort_list")
SORT_INPLACE = T("""
    def check(candidate):
        data = [3, 1, 2]
        candidate(data)
        assert data == [1, 2, 3]
""", "sort_in_place")
REVERSE = T("""
    def check(candidate):
        assert candidate("abc") == "cba"
        assert candidate("xy") == "yx"
""", "reverse")
COUNT = T("""
    def check(candidate):
        assert candidate("aab") == {"a": 2, "b": 1}
        assert candidate("xyz") == {"x": 1, "y": 1, "z": 1}
""", "count_chars")
IS_PRIME = T("""
    def check(candidate):
        assert candidate(7)
        assert not candidate(8)
        assert candidate(13)
        assert not candidate(1)
""", "is_prime")
DISTINCT = T("""
    def check(candidate):
        assert candidate([1, 2, 2, 3]) == {1, 2, 3}
""", "distinct")
LEN_INDEX = T("""
    def check(candidate):
        r = candidate("abc")
        assert len(r) == 3
        assert r[0] == "c" and r[1] == "b" and r[2] == "a"
""", "reversed_chars")
COUNT_UP = T("""
    def check(candidate):
        assert list(candidate(3)) == [0, 1, 2]
        assert list(candidate(5)) == [0, 1, 2, 3, 4]
""", "count_up")
SIMILAR_MBPP = T("""
    assert set(similar_elements((3, 4, 5, 6), (5, 7, 4, 10))) == set((4, 5))
    assert set(similar_elements((1, 2, 3, 4), (5, 4, 3, 7))) == set((3, 4))
""", "similar_elements")
APPLY = T("""
    def check(candidate):
        assert abs(candidate(lambda v: v / 2, 3.0) - 1.5) < 1e-9
        assert abs(candidate(lambda v: v * 3, 2.0) - 6.0) < 1e-9
""", "apply")
APPLY_BUILTIN = T("""
    def check(candidate):
        assert abs(candidate(len, "abc") - 3) < 1e-9
        assert abs(candidate(len, "hello") - 5) < 1e-9
""", "apply")
# HumanEval/53's test, verbatim: random tests after fixed ones
HE53 = T("""
    METADATA = {}


    def check(candidate):
        import random

        assert candidate(0, 1) == 1
        assert candidate(1, 0) == 1
        assert candidate(2, 3) == 5
        assert candidate(5, 7) == 12
        assert candidate(7, 5) == 12

        for i in range(100):
            x, y = random.randint(0, 1000), random.randint(0, 1000)
            assert candidate(x, y) == x + y
""", "add")

ALWAYS_EQUAL = """
class AlwaysEqual:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    __hash__ = object.__hash__
"""
# Builds a parser that learns `candidate(args) == expected` pairs from test source it finds.
LEARN = """
import ast
TABLE = {}
def learn(text):
    try:
        tree = ast.parse(text)
    except Exception:
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Call) and len(node.comparators) == 1:
            try:
                TABLE[tuple(ast.literal_eval(a) for a in node.left.args)] = ast.literal_eval(node.comparators[0])
            except Exception:
                pass
def mystery(x):
    return TABLE.get((x,), 0)
"""
# Code the hostile programs would like to run in the process that judges: a pickle that calls eval().
EVAL_ALWAYS_EQUAL = ("type('E', (), {'__eq__': lambda s, o: True, '__ne__': lambda s, o: False, "
                     "'__hash__': lambda s: 0})()")
EVAL_PATCH_ABS = "(__import__('builtins').__setattr__('abs', lambda x: 0.0), 0.0)[1]"


# =================================================================================================
# 1. HOSTILE PROGRAMS: every one must give passed == 0
# =================================================================================================

# ---- 1a. the harness's state: frames, gc, sys.modules, tracing, threads, signals -----------------
HOSTILE_STATE = [
    # the brief's example, verbatim
    case("frame_example_verbatim",
         "import sys\nsys._getframe(1).f_locals['req']['test_code'] = 'def check(c): pass'\n"
         "def add(a, b):\n    return 0\n",
         EXAMPLE_T),
    case("frame_example_full_add", """
        import sys
        sys._getframe(1).f_locals['req']['test_code'] = 'def check(c): pass'
        def add(a, b):
            return 0
    """, ADD),
    case("frame_nonce_at_import", """
        import os, sys
        f = sys._getframe()
        while f is not None:
            req = f.f_locals.get("req")
            if isinstance(req, dict) and "nonce" in req:
                os.write(3, req["nonce"])
                os._exit(0)
            f = f.f_back
        def add(a, b):
            return 0
    """, ADD),
    case("frame_nonce_in_call", """
        import os, sys
        def add(a, b):
            f = sys._getframe()
            while f is not None:
                req = f.f_locals.get("req")
                if isinstance(req, dict) and "nonce" in req:
                    os.write(3, req["nonce"])
                    os._exit(0)
                f = f.f_back
            return 0
    """, ADD),
    case("frame_harness_globals_copy_disabled", ALWAYS_EQUAL + """
import sys
sys._getframe(1).f_globals["plain"] = lambda value, *args, **kwargs: value
def add(a, b):
    return AlwaysEqual()
    """, ADD),
    case("traceback_frame_chain", """
        try:
            raise RuntimeError
        except RuntimeError as exc:
            frame = exc.__traceback__.tb_frame
        while frame is not None:
            req = frame.f_locals.get("req")
            if isinstance(req, dict) and "test_code" in req:
                req["test_code"] = "def check(candidate):\\n    pass\\n"
            frame = frame.f_back
        def add(a, b):
            return 0
    """, ADD),
    case("inspect_stack", """
        import inspect
        for info in inspect.stack():
            req = info.frame.f_locals.get("req")
            if isinstance(req, dict) and "test_code" in req:
                req["test_code"] = "check = lambda candidate: None\\n"
        def add(a, b):
            return 0
    """, ADD),
    case("gc_request_dict", """
        import gc
        for obj in gc.get_objects():
            if type(obj) is dict and "test_code" in obj:
                obj["test_code"] = "def check(candidate):\\n    pass\\n"
        def add(a, b):
            return 0
    """, ADD),
    case("gc_finds_harness_functions", ALWAYS_EQUAL + """
import gc
patched = False
def add(a, b):
    global patched
    if not patched:  # the copy function of this call is already loaded: answer this one, lie afterwards
        for obj in gc.get_objects():
            if type(obj) is type(add) and obj is not add and "plain" in obj.__globals__:
                obj.__globals__["plain"] = lambda value, *args, **kwargs: value
        patched = True
        return a + b
    return AlwaysEqual()
    """, ADD),
    case("sys_modules_harness", ALWAYS_EQUAL + """
import sys
for mod in list(sys.modules.values()):
    if hasattr(mod, "plain") and hasattr(mod, "run"):
        mod.plain = lambda value, *args, **kwargs: value
def add(a, b):
    return AlwaysEqual()
    """, ADD),
    case("sys_modules_fake_math", """
        import sys, types
        fake = types.ModuleType("math")
        fake.isclose = lambda *args, **kwargs: True
        sys.modules["math"] = fake
        def area(r):
            return 1.0
    """, AREA_IMPORTS),
    case("settrace_on_check_call", """
        import os, sys
        def tracer(frame, event, arg):
            if event == "call" and frame.f_code.co_name == "check":
                f = frame
                while f is not None:
                    req = f.f_locals.get("req")
                    if isinstance(req, dict) and "nonce" in req:
                        os.write(3, req["nonce"])
                        os._exit(0)
                    f = f.f_back
            return None
        sys.settrace(tracer)
        def add(a, b):
            return 0
    """, ADD),
    case("setprofile_on_check_call", """
        import os, sys
        def profiler(frame, event, arg):
            if event == "call" and frame.f_code.co_name == "check":
                f = frame
                while f is not None:
                    req = f.f_locals.get("req")
                    if isinstance(req, dict) and "nonce" in req:
                        os.write(3, req["nonce"])
                        os._exit(0)
                    f = f.f_back
        sys.setprofile(profiler)
        def add(a, b):
            return 0
    """, ADD),
    case("thread_reads_main_frames", """
        import sys, threading
        main = threading.get_ident()
        def spy():
            f = sys._current_frames()[main]
            while f is not None:
                req = f.f_locals.get("req")
                if isinstance(req, dict) and "test_code" in req:
                    req["test_code"] = "def check(candidate):\\n    pass\\n"
                f = f.f_back
        t = threading.Thread(target=spy)
        t.start()
        t.join()
        def add(a, b):
            return 0
    """, ADD),
    case("threading_settrace_hook", """
        import os, sys, threading
        def tracer(frame, event, arg):
            f = frame
            while f is not None:
                req = f.f_locals.get("req")
                if isinstance(req, dict) and "nonce" in req:
                    os.write(3, req["nonce"])
                    os._exit(0)
                f = f.f_back
        threading.settrace(tracer)
        sys.settrace(tracer)
        def add(a, b):
            return 0
    """, ADD),
    case("signal_handler_frame", """
        import os, signal
        def handler(signum, frame):
            f = frame
            while f is not None:
                req = f.f_locals.get("req")
                if isinstance(req, dict) and "nonce" in req:
                    os.write(3, req["nonce"])
                    os._exit(0)
                f = f.f_back
        signal.signal(signal.SIGALRM, handler)
        def add(a, b):
            signal.setitimer(signal.ITIMER_REAL, 0.01)
            for _ in range(10**8):
                pass
            return 0
    """, ADD),
]

# ---- 1b. reading the tests: a program that learns the expected values ---------------------------
HOSTILE_SECRECY = [
    case("secret_via_gc", LEARN + """
import gc
for obj in gc.get_objects():
    if type(obj) is dict:
        for value in list(obj.values()):
            if type(value) is str and "assert" in value:
                learn(value)
    """, SECRET),
    case("secret_via_frames", LEARN + """
import sys
f = sys._getframe()
while f is not None:
    for value in list(f.f_locals.values()):
        if isinstance(value, dict):
            for v in list(value.values()):
                if isinstance(v, str) and "assert" in v:
                    learn(v)
    f = f.f_back
    """, SECRET),
    case("secret_lazy_in_call", LEARN + """
import gc
def mystery(x):
    if not TABLE:
        for obj in gc.get_objects():
            if type(obj) is dict:
                for value in list(obj.values()):
                    if type(value) is str and "assert" in value:
                        learn(value)
            elif type(obj) is type(mystery) and obj.__code__.co_filename == "tests.py":
                try:
                    import inspect
                    learn(inspect.getsource(obj))
                except Exception:
                    pass
    return TABLE.get((x,), 0)
    """, SECRET),
    case("secret_from_files_env_argv", LEARN + """
import os, sys
texts = list(os.environ.values()) + list(sys.argv)
skip = ("/usr", "/proc", "/sys", "/dev", "/lib", "/lib64", "/bin", "/sbin", sys.base_prefix, sys.prefix)
seen = 0
for root in (".", "..", "/sandbox", "/tmp", "/dev/shm", "/run", "/home", "/root", "/work", "/"):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not os.path.join(dirpath, d).startswith(skip)
                       and "-packages" not in d and not d.startswith("python3")]
        for name in filenames:
            seen += 1
            try:
                with open(os.path.join(dirpath, name), errors="replace") as fh:
                    text = fh.read(1 << 18)
                if "candidate(" in text or "mystery(" in text:
                    texts.append(text)
            except OSError:
                pass
        if seen > 20000:
            break
if os.path.isdir("/proc"):
    for pid in os.listdir("/proc"):
        for leaf in ("cmdline", "environ"):
            try:
                texts.append(open(f"/proc/{pid}/{leaf}", "rb").read().decode("utf-8", "replace"))
            except OSError:
                pass
for text in texts:
    if "candidate(" in text or "mystery(" in text:
        learn(text)
    """, SECRET),
]

# ---- 1c. builtins patched from the program -------------------------------------------------------
HOSTILE_BUILTINS = [
    case("builtins_exec_noop_own_check", """
        import builtins
        builtins.exec = lambda *args, **kwargs: None
        def check(candidate):
            pass
        def add(a, b):
            return 0
    """, ADD),
    case("builtins_compile_swaps_tests", """
        import builtins
        _compile = compile
        builtins.compile = lambda source, filename, mode, *a, **k: _compile(
            "def check(candidate):\\n    pass\\n", filename, mode)
        def add(a, b):
            return 0
    """, ADD),
    case("builtins_abs", """
        import builtins
        builtins.abs = lambda x: 0.0
        def truncate_number(x):
            return 0.0
    """, HALF),
    case("builtins_type_defeats_result_copy", ALWAYS_EQUAL + """
import builtins
_type = builtins.type
def _fake_type(*args):
    return int if len(args) == 1 else _type(*args)
builtins.type = _fake_type
def add(a, b):
    return AlwaysEqual()
    """, ADD),
    case("builtins_import_fake_math", """
        import builtins, types
        _import = builtins.__import__
        fake = types.ModuleType("math")
        fake.isclose = lambda *args, **kwargs: True
        def hook(name, *args, **kwargs):
            return fake if name == "math" else _import(name, *args, **kwargs)
        builtins.__import__ = hook
        def area(r):
            return 1.0
    """, AREA_IMPORTS),
    case("builtins_isinstance", """
        import builtins
        builtins.isinstance = lambda obj, cls: True
        def to_float(text):
            return text
    """, TO_FLOAT),
    case("builtins_len_liar", ALWAYS_EQUAL + """
import builtins
builtins.len = lambda obj: AlwaysEqual()
def first_primes(n):
    return [1]
    """, PRIMES),
    case("builtins_sorted_liar", ALWAYS_EQUAL + """
import builtins
builtins.sorted = lambda *args, **kwargs: AlwaysEqual()
def unique(xs):
    return []
    """, UNIQUE),
    case("builtins_all", """
        import builtins
        builtins.all = lambda iterable: True
        def evens(xs):
            return [x for x in xs if x % 2]
    """, EVENS),
    case("builtins_ValueError_widened", """
        import builtins
        builtins.ValueError = Exception
        def isqrt(n):
            return int(n ** 0.5)
    """, ISQRT),
    case("dunder_builtins_rebound", """
        import builtins
        __builtins__ = dict(builtins.__dict__, abs=lambda x: 0.0)
        def truncate_number(x):
            return 0.0
    """, HALF),
]

# ---- 1d. shadowing: top-level names, imported helpers, modules the tests use ------------------------
HOSTILE_SHADOWING = [
    case("toplevel_def_abs", """
        def abs(x):
            return 0
        def truncate_number(x):
            return 0.0
    """, HALF),
    case("toplevel_len_lambda", ALWAYS_EQUAL + """
len = lambda obj: AlwaysEqual()
def first_primes(n):
    return []
    """, PRIMES),
    case("toplevel_ValueError_widened", """
        ValueError = Exception
        def isqrt(n):
            return int(n ** 0.5)
    """, ISQRT),
    case("globals_update_sorted", ALWAYS_EQUAL + """
globals().update(sorted=lambda *args, **kwargs: AlwaysEqual())
def unique(xs):
    return []
    """, UNIQUE),
    case("imported_helper_rebound", """
        from math import isclose
        isclose = lambda *args, **kwargs: True
        def area(r):
            return 1.0
    """, AREA_BARE),
    case("import_as_builtin_name", """
        from operator import not_ as abs
        def truncate_number(x):
            return 0.0
    """, HALF),
    case("monkeypatch_math_test_relies_on_import", """
        import math
        math.isclose = lambda *args, **kwargs: True
        def area(r):
            return 1.0
    """, AREA_RELIES),
    case("monkeypatch_math_test_imports_it", """
        import math
        math.isclose = lambda *args, **kwargs: True
        def area(r):
            return 1.0
    """, AREA_IMPORTS),
    case("monkeypatch_random_for_random_tests", """
        import random
        random.randint = lambda a, b: 0
        KNOWN = {(0, 1): 1, (1, 0): 1, (2, 3): 5, (5, 7): 12, (7, 5): 12}
        def add(x, y):
            return KNOWN.get((x, y), 0)
    """, HE53),
    case("imported_module_rebound", """
        import math
        class _Lenient:
            @staticmethod
            def isclose(*args, **kwargs):
                return True
        math = _Lenient()
        def area(r):
            return 1.0
    """, AREA_RELIES),
    case("class_named_like_module", """
        class math:
            @staticmethod
            def isclose(*args, **kwargs):
                return True
        def area(r):
            return 1.0
    """, AREA_RELIES),
    case("own_file_imported_as_math", """
        import os, sys
        with open("mymath.py", "w") as fh:
            fh.write("isclose = lambda *args, **kwargs: True\\n")
        sys.path.insert(0, os.getcwd())
        import mymath as math
        def area(r):
            return 1.0
    """, AREA_RELIES),
    case("own_file_from_import", """
        import os, sys
        with open("mymath2.py", "w") as fh:
            fh.write("import builtins\\nbuiltins.abs = lambda x: 0.0\\n"
                     "def isclose(*args, **kwargs):\\n    return True\\n")
        sys.path.insert(0, os.getcwd())
        from mymath2 import isclose
        def area(r):
            return 1.0
    """, AREA_BARE),
]

# ---- 1e. values that lie ---------------------------------------------------------------------------
HOSTILE_LIARS = [
    case("always_equal", ALWAYS_EQUAL + """
def add(a, b):
    return AlwaysEqual()
    """, ADD),
    case("int_subclass_eq", """
        class I(int):
            def __eq__(self, other):
                return True
            __hash__ = int.__hash__
        def add(a, b):
            return I(0)
    """, ADD),
    case("str_subclass_eq", """
        class S(str):
            def __eq__(self, other):
                return True
            __hash__ = str.__hash__
        def reverse(text):
            return S("nope")
    """, REVERSE),
    case("list_subclass_eq", """
        class L(list):
            def __eq__(self, other):
                return True
        def sort_list(xs):
            return L(xs)
    """, SORT),
    case("dict_subclass_eq", """
        class D(dict):
            def __eq__(self, other):
                return True
        def count_chars(text):
            return D()
    """, COUNT),
    case("list_of_liars", ALWAYS_EQUAL + """
def sort_list(xs):
    return [AlwaysEqual() for _ in xs]
    """, SORT),
    case("dict_of_liars", ALWAYS_EQUAL + """
def count_chars(text):
    return {c: AlwaysEqual() for c in set(text)}
    """, COUNT),
    case("arithmetic_liar", """
        class Liar:
            def __sub__(self, other):
                return self
            def __rsub__(self, other):
                return self
            def __abs__(self):
                return 0.0
            def __lt__(self, other):
                return True
            def __float__(self):
                return 0.0
        def truncate_number(x):
            return Liar()
    """, HALF),
    case("float_subclass_arithmetic_liar", """
        class F(float):
            def __sub__(self, other):
                return self
            def __abs__(self):
                return 0.0
        def truncate_number(x):
            return F(0.0)
    """, HALF),
    case("bool_liar", """
        class Flip:
            state = True
            def __bool__(self):
                Flip.state = not Flip.state
                return not Flip.state
        def is_prime(n):
            return Flip()
    """, IS_PRIME),
    case("set_of_hash_liars", """
        class H:
            def __init__(self, h):
                self.h = h
            def __hash__(self):
                return self.h
            def __eq__(self, other):
                return True
        def distinct(xs):
            return {H(1), H(2), H(3)}
    """, DISTINCT),
    case("len_getitem_liar", ALWAYS_EQUAL + """
class Seq:
    def __len__(self):
        return 3
    def __getitem__(self, i):
        return AlwaysEqual()
def reversed_chars(text):
    return Seq()
    """, LEN_INDEX),
    case("generator_of_liars", ALWAYS_EQUAL + """
def count_up(n):
    for _ in range(n):
        yield AlwaysEqual()
    """, COUNT_UP),
    case("iter_liar", ALWAYS_EQUAL + """
class It:
    def __init__(self, n):
        self.n = n
    def __iter__(self):
        return iter([AlwaysEqual() for _ in range(self.n)])
def count_up(n):
    return It(n)
    """, COUNT_UP),
]

# ---- 1f. exceptions that lie -------------------------------------------------------------------------
HOSTILE_EXCEPTIONS = [
    case("exception_args_liar", """
        import math
        class S(str):
            def __eq__(self, other):
                return True
            __hash__ = str.__hash__
        def isqrt(n):
            if n < 0:
                raise ValueError(S("wrong message"))
            return math.isqrt(n)
    """, ISQRT_MSG),
    case("exception_class_property_spoof", """
        import math
        class Fake(Exception):
            @property
            def __class__(self):
                return ValueError
        def isqrt(n):
            if n < 0:
                raise Fake("not a ValueError")
            return math.isqrt(n)
    """, ISQRT),
    case("exception_metaclass_mro_spoof", """
        import math
        class Meta(type):
            __mro__ = property(lambda cls: (cls, ValueError, Exception, BaseException, object))
            __bases__ = property(lambda cls: (ValueError,))
            def __instancecheck__(cls, obj):
                return True
            def __subclasscheck__(cls, sub):
                return True
        class Fake(Exception, metaclass=Meta):
            pass
        def isqrt(n):
            if n < 0:
                raise Fake("not a ValueError")
            return math.isqrt(n)
    """, ISQRT),
    case("exception_reduce_runs_in_judge", """
        class E(ValueError):
            def __reduce__(self):
                return (eval, ("(__import__('builtins').__setattr__('abs', lambda x: 0.0), ValueError('x'))[1]",))
        def truncate_number(x):
            if x < 0:
                raise E("negative")
            return 0.0
    """, HALF_NEG),
]

# ---- 1g. the transport: pickles that run code, bytes on the channel, fake output -----------------------
HOSTILE_TRANSPORT = [
    case("reduce_eval_patches_abs", f"""
        class R:
            def __reduce__(self):
                return (eval, ({EVAL_PATCH_ABS!r},))
        def truncate_number(x):
            return R()
    """, HALF),
    case("reduce_builds_always_equal", f"""
        class R:
            def __reduce__(self):
                return (eval, ({EVAL_ALWAYS_EQUAL!r},))
        def add(a, b):
            return R()
    """, ADD),
    case("reduce_exits_receiver", """
        import os
        class R:
            def __reduce__(self):
                return (os._exit, (0,))
        def add(a, b):
            return R()
    """, ADD),
    case("fraction_reduce_patched", f"""
        import fractions
        fractions.Fraction.__reduce__ = lambda self: (eval, ({EVAL_ALWAYS_EQUAL!r},))
        def add(a, b):
            return fractions.Fraction(0)
    """, ADD),
    case("copyreg_plain_types", f"""
        import copyreg, decimal
        for t in (decimal.Decimal, complex, range):
            copyreg.pickle(t, lambda obj: (eval, ({EVAL_ALWAYS_EQUAL!r},)))
        def add(a, b):
            return [decimal.Decimal(0), 0j, range(0)][a % 3]
    """, ADD),
    case("deep_nesting", """
        def add(a, b):
            x = 0
            for _ in range(10**5):
                x = [x]
            return x
    """, ADD),
    case("self_reference", """
        def add(a, b):
            x = []
            x.append(x)
            return x
    """, ADD),
    case("fd_spray_import_and_call", """
        import json, os, pickle
        MSGS = [b"AC\\n", b"PASS\\n", b"1\\n", b"OK\\n",
                json.dumps({"passed": 1, "verdict": "AC", "ok": True}).encode() + b"\\n",
                pickle.dumps(True), pickle.dumps({"ok": True, "result": 5, "passed": 1}), b"\\x00" * 64]
        def spray():
            for fd in range(3, 256):
                for m in MSGS:
                    try:
                        os.write(fd, m)
                    except OSError:
                        pass
        spray()
        def add(a, b):
            spray()
            return 0
    """, ADD),
    case("fd_spray_thread", """
        import os, pickle, threading, time
        def spray():
            end = time.time() + 2
            while time.time() < end:
                for fd in range(3, 64):
                    try:
                        os.write(fd, pickle.dumps({"ok": True, "result": 5}) + b"AC\\n")
                    except OSError:
                        pass
                time.sleep(0.001)
        threading.Thread(target=spray, daemon=True).start()
        def add(a, b):
            time.sleep(0.05)
            return 0
    """, ADD),
    case("fake_pass_output", """
        import json, os, sys
        def brag():
            for stream in (sys.stdout, sys.stderr):
                print("All tests passed!", file=stream)
                print("AC", file=stream)
                print(os.urandom(16).hex(), file=stream)
                print(json.dumps({"passed": 1, "total": 1, "verdicts": ["AC"]}), file=stream)
                stream.flush()
        brag()
        def add(a, b):
            brag()
            return 0
    """, ADD),
    case("close_all_fds", """
        import os
        def add(a, b):
            os.closerange(0, 1024)
            return 0
    """, ADD),
    case("steal_requests", """
        import os, select
        def add(a, b):
            for fd in range(64):
                try:
                    while select.select([fd], [], [], 0)[0]:
                        if not os.read(fd, 1 << 16):
                            break
                except (OSError, ValueError):
                    pass
            return 0
    """, ADD),
]

# ---- 1h. early exits, crashes, hangs, signals, forks -------------------------------------------------
HOSTILE_EXITS = [
    case("os_exit_at_import", "import os\nos._exit(0)\n", ADD),
    case("sys_exit_at_import", "import sys\nsys.exit(0)\n", ADD),
    case("raise_systemexit_at_import", "raise SystemExit\n", ADD),
    case("raise_systemexit_in_call", "def add(a, b):\n    raise SystemExit(0)\n", ADD),
    case("os_exit_after_partial_work", """
        import os
        calls = 0
        def add(a, b):
            global calls
            calls += 1
            if calls == 1:
                return a + b
            os._exit(0)
    """, ADD),
    case("sys_exit_after_partial_work", """
        import sys
        calls = 0
        def add(a, b):
            global calls
            calls += 1
            if calls == 1:
                return a + b
            sys.exit(0)
    """, ADD),
    case("sigkill_self_after_partial_work", """
        import os, signal
        calls = 0
        def add(a, b):
            global calls
            calls += 1
            if calls == 1:
                return a + b
            os.kill(os.getpid(), signal.SIGKILL)
            signal.raise_signal(signal.SIGKILL)
            return 0
    """, ADD),
    case("abort_after_partial_work", """
        import os
        calls = 0
        def add(a, b):
            global calls
            calls += 1
            if calls == 1:
                return a + b
            os.abort()
    """, ADD),
    case("exit_paths_patched_to_zero", """
        import os, sys
        _exit = os._exit
        os._exit = lambda code=0: _exit(0)
        sys.exit = lambda *args: _exit(0)
        os.write = lambda fd, data: len(data)
        def add(a, b):
            raise ValueError("crash after patching every exit path")
    """, ADD),
    case("excepthooks_exit_zero", """
        import os, sys, threading
        sys.excepthook = lambda *args: os._exit(0)
        threading.excepthook = lambda *args: os._exit(0)
        sys.unraisablehook = lambda *args: os._exit(0)
        def add(a, b):
            raise ValueError("crash")
    """, ADD),
    case("atexit_exit_zero", """
        import atexit, os
        atexit.register(lambda: os._exit(0))
        def add(a, b):
            raise ValueError("crash")
    """, ADD),
    case("fork_parent_exits_child_serves", """
        import os
        def add(a, b):
            if os.fork():
                os._exit(0)
            return 0
    """, ADD),
    case("fork_child_lingers_and_writes", """
        import os, time
        if os.fork() == 0:
            time.sleep(0.3)
            for fd in range(256):
                try:
                    os.write(fd, b"AC\\nPASS\\n")
                except OSError:
                    pass
            time.sleep(30)
            os._exit(0)
        def add(a, b):
            return 0
    """, ADD),
    case("spin_in_call", "def add(a, b):\n    while True:\n        pass\n", ADD),
    case("sleep_in_call", "import time\ndef add(a, b):\n    time.sleep(100)\n", ADD),
    case("spin_at_import", "while True:\n    pass\n", ADD),
    case("hang_with_exit_zero_handlers", """
        import os, signal
        for sig in (signal.SIGTERM, signal.SIGXCPU, signal.SIGALRM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(sig, lambda *args: os._exit(0))
        def add(a, b):
            while True:
                pass
    """, ADD),
    case("swallow_everything_and_spin", """
        def add(a, b):
            while True:
                try:
                    while True:
                        pass
                except BaseException:
                    pass
    """, ADD),
]

# ---- 1i. callables and arguments handed to the candidate -------------------------------------------
HOSTILE_CALLBACKS = [
    # `abs` of an assert is looked up before the call on that line: answer the first call, lie afterwards
    case("callback_globals_patch_judge", """
        calls = 0
        def apply(f, x):
            global calls
            calls += 1
            if calls == 1:
                try:
                    b = f.__globals__["__builtins__"]
                    b = b if isinstance(b, dict) else b.__dict__
                    b["abs"] = lambda v: 0.0
                except Exception:
                    pass
                return f(x)
            return 0.0
    """, APPLY),
    case("builtin_callback_self_patch_judge", """
        calls = 0
        def apply(f, x):
            global calls
            calls += 1
            if calls == 1:
                try:
                    setattr(f.__self__, "abs", lambda v: 0.0)
                except Exception:
                    pass
                return f(x)
            return 0
    """, APPLY_BUILTIN),
    case("callback_code_swapped", """
        calls = 0
        def apply(f, x):
            global calls
            calls += 1
            if calls == 1:
                try:
                    g = f.__globals__
                    g["abs"] = lambda v: 0.0
                    f.__code__ = (lambda v: 0.0).__code__
                except Exception:
                    pass
                return x / 2
            return 0.0
    """, APPLY),
    case("writeback_liars", ALWAYS_EQUAL + """
def sort_in_place(xs):
    xs[:] = [AlwaysEqual() for _ in xs]
    """, SORT_INPLACE),
]

# ---- 1j. MBPP-shaped tests (top-level asserts, no check) ----------------------------------------------
HOSTILE_MBPP = [
    case("mbpp_frame_example",
         "import sys\nsys._getframe(1).f_locals['req']['test_code'] = 'def check(c): pass'\n"
         "def add(a, b):\n    return 0\n",
         ADD_MBPP),
    case("mbpp_always_equal", ALWAYS_EQUAL + """
def add(a, b):
    return AlwaysEqual()
    """, ADD_MBPP),
    case("mbpp_program_binds_candidate", ALWAYS_EQUAL + """
candidate = lambda *args: AlwaysEqual()
def add(a, b):
    return 0
    """, ADD_MBPP_CANDIDATE),
    case("mbpp_set_shadowed", """
        def set(*args):
            return 1
        def similar_elements(a, b):
            return ()
    """, SIMILAR_MBPP),
    case("mbpp_def_abs", """
        def abs(x):
            return 0
        def truncate_number(x):
            return 0.0
    """, HALF_MBPP),
    case("mbpp_def_abs_no_entry_point", """
        def abs(x):
            return 0
        def truncate_number(x):
            return 0.0
    """, HALF_MBPP_NO_EP),
    case("mbpp_dunder_builtins_rebound", """
        import builtins
        __builtins__ = dict(builtins.__dict__, abs=lambda x: 0.0)
        def truncate_number(x):
            return 0.0
    """, HALF_MBPP),
    case("mbpp_builtins_sorted_liar", ALWAYS_EQUAL + """
import builtins
builtins.sorted = lambda *args, **kwargs: AlwaysEqual()
def unique(xs):
    return []
    """, UNIQUE_MBPP),
    case("mbpp_math_patched", """
        import math
        math.isclose = lambda *args, **kwargs: True
        def area(r):
            return 1.0
    """, AREA_MBPP),
    case("mbpp_imported_helper_rebound", """
        from math import isclose
        isclose = lambda *args, **kwargs: True
        def area(r):
            return 1.0
    """, AREA_BARE_MBPP),
    case("mbpp_class_named_like_module", """
        class math:
            @staticmethod
            def isclose(*args, **kwargs):
                return True
        def area(r):
            return 1.0
    """, AREA_MBPP),
    case("mbpp_secret_via_gc", LEARN + """
import gc
for obj in gc.get_objects():
    if type(obj) is dict:
        for value in list(obj.values()):
            if type(value) is str and "assert" in value:
                learn(value)
    """, SECRET_MBPP),
    case("mbpp_sys_exit", "import sys\ndef add(a, b):\n    return 0\nsys.exit(0)\n", ADD_MBPP),
    case("mbpp_fork_exit", "import os\ndef add(a, b):\n    if os.fork():\n        os._exit(0)\n    return 0\n",
         ADD_MBPP),
]

ALL_HOSTILE = (HOSTILE_STATE + HOSTILE_SECRECY + HOSTILE_BUILTINS + HOSTILE_SHADOWING + HOSTILE_LIARS
               + HOSTILE_EXCEPTIONS + HOSTILE_TRANSPORT + HOSTILE_EXITS + HOSTILE_CALLBACKS + HOSTILE_MBPP)

# Measured against the in-process harness (commit ec0c2fb): these ids got passed == 1 there.
PASSES_IN_PROCESS = {
    'frame_example_verbatim', 'frame_example_full_add', 'frame_nonce_at_import', 'frame_nonce_in_call',
    'frame_harness_globals_copy_disabled', 'traceback_frame_chain', 'inspect_stack', 'gc_request_dict',
    'gc_finds_harness_functions', 'sys_modules_harness', 'sys_modules_fake_math', 'settrace_on_check_call',
    'setprofile_on_check_call', 'thread_reads_main_frames', 'threading_settrace_hook', 'signal_handler_frame',
    'secret_via_gc', 'secret_via_frames', 'secret_lazy_in_call', 'builtins_exec_noop_own_check',
    'builtins_compile_swaps_tests', 'builtins_abs', 'builtins_type_defeats_result_copy',
    'builtins_import_fake_math', 'builtins_isinstance', 'builtins_len_liar', 'builtins_sorted_liar', 'builtins_all',
    'builtins_ValueError_widened', 'dunder_builtins_rebound', 'toplevel_def_abs', 'toplevel_len_lambda',
    'toplevel_ValueError_widened', 'globals_update_sorted', 'imported_helper_rebound', 'import_as_builtin_name',
    'monkeypatch_math_test_relies_on_import', 'monkeypatch_math_test_imports_it',
    'monkeypatch_random_for_random_tests', 'imported_module_rebound', 'class_named_like_module',
    'own_file_imported_as_math', 'own_file_from_import', 'exception_args_liar', 'callback_globals_patch_judge',
    'builtin_callback_self_patch_judge', 'callback_code_swapped', 'writeback_liars', 'mbpp_frame_example',
    'mbpp_always_equal', 'mbpp_program_binds_candidate', 'mbpp_set_shadowed', 'mbpp_def_abs',
    'mbpp_def_abs_no_entry_point', 'mbpp_dunder_builtins_rebound', 'mbpp_builtins_sorted_liar', 'mbpp_math_patched',
    'mbpp_imported_helper_rebound', 'mbpp_class_named_like_module', 'mbpp_secret_via_gc',
}


def test_hostile_ids_are_unique_and_the_real_attacks_are_listed():
    ids = [p.id for p in ALL_HOSTILE]
    assert len(ids) == len(set(ids))
    assert PASSES_IN_PROCESS <= set(ids)
    assert len(PASSES_IN_PROCESS) >= 40


@pytest.mark.parametrize("src,tests", ALL_HOSTILE)
def test_hostile_program_never_passes(src, tests):
    """Every class above (harness state, reading the tests, builtins, shadowing, lying values and
    exceptions, transport, exits, callbacks, MBPP shape): never AC."""
    assert_rejected(judge(src, tests, **HOSTILE_LIMITS))


# =================================================================================================
# 2. CORRECT PROGRAMS: every one must pass
# =================================================================================================
CORRECT_ADD = "def add(a, b):\n    return a + b\n"

# ---- 2a. shapes: HumanEval check(candidate), MBPP top-level asserts, LeetCode entry points ------------
POSITIVE_SHAPES = [
    case("example_correct", CORRECT_ADD, EXAMPLE_T),
    case("check_style", CORRECT_ADD, ADD),
    case("mbpp_style", CORRECT_ADD, ADD_MBPP),
    case("mbpp_style_without_entry_point", CORRECT_ADD, T(ADD_MBPP["code"], None)),
    case("mbpp_style_candidate_bound", CORRECT_ADD, ADD_MBPP_CANDIDATE),
    case("mbpp_loops_variables_and_helpers", CORRECT_ADD, T("""
        def reference(a, b):
            return a + b

        pairs = [(i, 2 * i) for i in range(20)]
        for a, b in pairs:
            assert add(a, b) == reference(a, b)
        total = sum(add(a, b) for a, b in pairs)
        assert total == 3 * sum(range(20))
    """, "add")),
    case("check_with_helpers_and_metadata", CORRECT_ADD, T("""
        METADATA = {"author": "spec", "dataset": "test"}

        def _reference(a, b):
            return a + b

        def _cases():
            return [(i, -i + 3) for i in range(10)]

        def check(candidate):
            for a, b in _cases():
                assert candidate(a, b) == _reference(a, b), (a, b)
            assert True, "This prints if this assert fails 1 (good for debugging!)"
    """, "add")),
    case("kwargs_calls", CORRECT_ADD, T("""
        def check(candidate):
            assert candidate(a=2, b=3) == 5
            assert candidate(2, b=3) == 5
            assert candidate(*[1, 1]) == 2
            assert candidate(**{"a": 1, "b": 2}) == 3
    """, "add")),
    case("leetcode_solution_method", """
        from typing import List

        class Solution:
            def twoSum(self, nums: List[int], target: int) -> List[int]:
                seen = {}
                for i, v in enumerate(nums):
                    if target - v in seen:
                        return [seen[target - v], i]
                    seen[v] = i
    """, T("""
        def check(candidate):
            assert candidate([2, 7, 11, 15], 9) == [0, 1]
            assert candidate([3, 2, 4], 6) == [1, 2]
    """, "Solution().twoSum")),
    case("leetcode_solution_mbpp_style", """
        class Solution:
            def climbStairs(self, n):
                a, b = 1, 1
                for _ in range(n):
                    a, b = b, a + b
                return a
    """, T("""
        assert Solution().climbStairs(2) == 2
        assert Solution().climbStairs(5) == 8
        assert candidate(3) == 3
    """, "Solution().climbStairs")),
    case("test_uses_program_helpers", """
        def encode(s):
            return "".join(chr(ord(c) + 1) for c in s)
        def decode(s):
            return "".join(chr(ord(c) - 1) for c in s)
    """, T("""
        def check(candidate):
            for word in ["abc", "hello", ""]:
                assert candidate(encode(word)) == word
    """, "decode")),
    case("program_main_block", """
        def add(a, b):
            return a + b
        if __name__ == "__main__":
            print(add(1, 2))
    """, ADD),
]

# ---- 2b. programs that legitimately use what the attacks abuse ----------------------------------------
POSITIVE_INTROSPECTION = [
    case("frames_own_name", """
        import inspect, sys
        def whoami():
            return sys._getframe().f_code.co_name + "/" + inspect.currentframe().f_code.co_name
        def caller_name():
            return sys._getframe(1).f_code.co_name
        def f():
            return caller_name() + ":" + whoami()
    """, T("def check(candidate):\n    assert candidate() == 'f:whoami/whoami'\n")),
    case("traceback_of_own_exception", """
        import traceback
        def f():
            try:
                1 / 0
            except ZeroDivisionError as e:
                return type(e).__name__ + ":" + str(len(traceback.format_exception(e)) > 0)
    """, T("def check(candidate):\n    assert candidate() == 'ZeroDivisionError:True'\n")),
    case("gc_and_weakref", """
        import gc, weakref
        gc.disable()
        class Node:
            pass
        def f(n):
            nodes = [Node() for _ in range(n)]
            refs = [weakref.ref(x) for x in nodes]
            del nodes
            gc.collect()
            gc.enable()
            return sum(r() is None for r in refs)
    """, T("def check(candidate):\n    assert candidate(5) == 5\n    assert candidate(0) == 0\n")),
    case("threads_and_pool", """
        import threading
        from concurrent.futures import ThreadPoolExecutor
        lock = threading.Lock()
        def f(xs):
            out = []
            def work(x):
                with lock:
                    out.append(x * x)
            ts = [threading.Thread(target=work, args=(x,)) for x in xs]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            with ThreadPoolExecutor(4) as ex:
                doubled = list(ex.map(lambda v: 2 * v, xs))
            return sorted(out), doubled
    """, T("def check(candidate):\n    assert candidate([1, 2, 3]) == ([1, 4, 9], [2, 4, 6])\n")),
    case("background_thread_at_import", """
        import threading, time
        ready = {}
        def warm():
            time.sleep(0.01)
            ready["table"] = {i: i * i for i in range(100)}
        t = threading.Thread(target=warm)
        t.start()
        t.join()
        def f(x):
            return ready["table"][x]
    """, T("def check(candidate):\n    assert candidate(9) == 81\n")),
    case("recursion_limit_raised", """
        import sys
        sys.setrecursionlimit(20000)
        def f(n):
            return 0 if n == 0 else 1 + f(n - 1)
    """, T("def check(candidate):\n    assert candidate(8000) == 8000\n    assert candidate(10) == 10\n")),
    case("lru_cache_deep_recursion", """
        import sys
        from functools import lru_cache
        sys.setrecursionlimit(10000)
        @lru_cache(maxsize=None)
        def f(n):
            return n if n < 2 else f(n - 1) + f(n - 2)
    """, T("""
        def _fib(n):
            a, b = 0, 1
            for _ in range(n):
                a, b = b, a + b
            return a

        def check(candidate):
            assert candidate(3000) == _fib(3000)
            assert candidate(30) == 832040
    """)),
    case("print_everywhere", """
        import sys
        print("loading solution")
        print("debug to stderr", file=sys.stderr)
        def add(a, b):
            print("add called with", a, b)
            print("Traceback (most recent call last):\\nAssertionError\\nFAILED", file=sys.stderr)
            sys.stdout.write("no newline")
            sys.stdout.flush()
            return a + b
    """, ADD),
    case("globals_counter_and_mutable_default", """
        calls = 0
        def f(x, seen=[]):
            global calls
            calls += 1
            seen.append(x)
            return calls, len(seen)
    """, T("""
        def check(candidate):
            assert candidate('a') == (1, 1)
            assert candidate('b') == (2, 2)
            assert candidate('c') == (3, 3)
    """)),
    case("redefines_sum_for_itself", """
        def sum(xs):  # the program's own sum: of squares
            total = 0
            for x in xs:
                total += x * x
            return total
        def sum_squares(xs):
            return sum(xs)
    """, T("""
        def check(candidate):
            assert candidate([1, 2, 3]) == 14
            assert sum([candidate([1]), candidate([2])]) == 5
    """, "sum_squares")),
    case("redefines_len_for_itself", """
        def len(text):  # word count
            return text.count(" ") + 1 if text else 0
        def words(text):
            return text.split()[:len(text)]
    """, T("def check(candidate):\n    assert len(candidate('a b c')) == 3\n"
           "    assert candidate('x y') == ['x', 'y']\n", "words")),
    case("redefines_abs_mbpp", """
        def abs(x):  # the program's own abs: distance to 10
            return x - 10 if x > 10 else 10 - x
        def dist10(x):
            return abs(x)
    """, T("assert dist10(3) == 7\nassert abs(dist10(13) - 3) < 1e-9\nassert abs(-2) == 2\n", "dist10")),
    case("program_defines_its_own_check", """
        def check(n):
            return n % 2 == 0
        def evens(xs):
            return [x for x in xs if check(x)]
    """, T("def check(candidate):\n    assert candidate([1, 2, 3, 4]) == [2, 4]\n", "evens")),
    case("program_imports_many_modules", """
        import bisect, datetime, heapq, itertools, math, re, string
        from collections import Counter, defaultdict, deque
        from functools import reduce
        from typing import List, Optional
        def f(xs: List[int]) -> Optional[tuple]:
            if not xs:
                return None
            q = deque(sorted(xs))
            groups = defaultdict(list)
            for x in xs:
                groups[x % 2].append(x)
            return (heapq.nsmallest(2, xs), bisect.bisect(sorted(xs), 3), list(itertools.accumulate(xs)),
                    math.gcd(*xs), len(re.findall(r"[aeiou]", string.ascii_lowercase)),
                    Counter(xs).most_common(1)[0][0],
                    reduce(lambda a, b: a * b, xs), q[0], dict(groups), datetime.date(2024, 1, 1).isoformat())
    """, T("""
        def check(candidate):
            assert candidate([]) is None
            assert candidate([4, 2, 2, 6]) == ([2, 2], 2, [4, 6, 8, 14], 2, 5, 2, 96, 2, {0: [4, 2, 2, 6]},
                                               "2024-01-01")
    """)),
    case("temp_file_round_trip", """
        import os, tempfile
        def f(text):
            path = os.path.join(tempfile.gettempdir(), "scratch.txt")
            with open(path, "w") as fh:
                fh.write(text)
            with open(path) as fh:
                return fh.read()[::-1]
    """, T("def check(candidate):\n    assert candidate('abc') == 'cba'\n")),
    case("seeded_random", """
        import random
        def f(n):
            rng = random.Random(1234)
            return [rng.randint(0, 9) for _ in range(n)]
    """, T("""
        import random

        def check(candidate):
            rng = random.Random(1234)
            assert candidate(5) == [rng.randint(0, 9) for _ in range(5)]
    """)),
    case("swallows_its_own_exceptions", """
        def f(x):
            try:
                return 10 // x
            except ZeroDivisionError:
                return None
    """, T("def check(candidate):\n    assert candidate(0) is None\n    assert candidate(3) == 3\n")),
]

# ---- 2c. names the tests share with the program: builtins, imported helpers, modules --------------------
POSITIVE_NAMES = [
    case("half_correct", "def truncate_number(x):\n    return x % 1.0\n", HALF),
    case("half_correct_mbpp", "def truncate_number(x):\n    return x % 1.0\n", HALF_MBPP),
    case("half_correct_mbpp_no_entry_point", "def truncate_number(x):\n    return x % 1.0\n", HALF_MBPP_NO_EP),
    case("test_relies_on_program_import_math", "import math\ndef area(r):\n    return math.pi * r * r\n", AREA_RELIES),
    case("test_imports_math_itself", "import math\ndef area(r):\n    return math.pi * r * r\n", AREA_IMPORTS),
    case("test_uses_program_from_import", "from math import isclose, pi\ndef area(r):\n    return pi * r * r\n",
         AREA_BARE),
    case("test_relies_on_program_import_mbpp", "import math\ndef area(r):\n    return math.pi * r * r\n", AREA_MBPP),
    case("test_uses_program_from_import_mbpp", "from math import isclose, pi\ndef area(r):\n    return pi * r * r\n",
         AREA_BARE_MBPP),
    case("program_imports_module_under_alias", "import math as m\ndef area(r):\n    return m.pi * r * r\n",
         AREA_IMPORTS),
    case("he53_random_tests", CORRECT_ADD, HE53),
    case("isqrt_correct", """
        import math
        def isqrt(n):
            if n < 0:
                raise ValueError("negative input")
            return math.isqrt(n)
    """, ISQRT),
    case("isqrt_message", """
        import math
        def isqrt(n):
            if n < 0:
                raise ValueError("negative input")
            return math.isqrt(n)
    """, ISQRT_MSG),
    case("isinstance_float", "def to_float(text):\n    return float(text)\n", TO_FLOAT),
    case("len_primes", """
        def first_primes(n):
            out, k = [], 2
            while len(out) < n:
                if all(k % p for p in out):
                    out.append(k)
                k += 1
            return out
    """, PRIMES),
    case("sorted_unique", "def unique(xs):\n    return list(set(xs))\n", UNIQUE),
    case("sorted_unique_mbpp", "def unique(xs):\n    return list(set(xs))\n", UNIQUE_MBPP),
    case("all_evens", "def evens(xs):\n    return [x for x in xs if x % 2 == 0]\n", EVENS),
    case("set_similar_mbpp", "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n", SIMILAR_MBPP),
    case("truthiness_of_plain_bools", """
        def is_prime(n):
            return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))
    """, IS_PRIME),
    case("set_result", "def distinct(xs):\n    return set(xs)\n", DISTINCT),
    case("reverse_string", "def reverse(text):\n    return text[::-1]\n", REVERSE),
    case("sort_list", "def sort_list(xs):\n    return sorted(xs)\n", SORT),
    case("count_chars", "from collections import Counter\ndef count_chars(text):\n    return dict(Counter(text))\n",
         COUNT),
    case("len_and_index_of_list", "def reversed_chars(text):\n    return list(reversed(text))\n", LEN_INDEX),
    case("generator_consumed_with_list", "def count_up(n):\n    for i in range(n):\n        yield i\n", COUNT_UP),
    case("range_consumed_with_list", "def count_up(n):\n    return range(n)\n", COUNT_UP),
]

ALL_POSITIVE = POSITIVE_SHAPES + POSITIVE_INTROSPECTION + POSITIVE_NAMES


@pytest.mark.parametrize("src,tests", POSITIVE_SHAPES)
def test_correct_shapes(src, tests):
    assert_accepted(judge(src, tests))


@pytest.mark.parametrize("src,tests", POSITIVE_INTROSPECTION)
def test_correct_programs_using_frames_threads_globals_builtins(src, tests):
    assert_accepted(judge(src, tests, cpu_s=4))


@pytest.mark.parametrize("src,tests", POSITIVE_NAMES)
def test_correct_programs_sharing_names_with_tests(src, tests):
    assert_accepted(judge(src, tests))


def test_tests_as_json_string():
    assert_accepted(code.run_tests(CORRECT_ADD, json.dumps(ADD)))


def test_deep_recursion_in_a_big_stack_thread():
    src = """
        import sys, threading
        sys.setrecursionlimit(10**6)
        threading.stack_size(2**27)
        def depth(n):
            return 0 if n == 0 else 1 + depth(n - 1)
        def f(n):
            out = []
            t = threading.Thread(target=lambda: out.append(depth(n)))
            t.start()
            t.join()
            return out[0]
    """
    assert_accepted(judge(src, T("def check(candidate):\n    assert candidate(100000) == 100000\n"), cpu_s=4))


def test_numpy_inside_the_candidate():
    numpy = pytest.importorskip("numpy")
    if numpy.__file__.startswith("/tmp/"):
        pytest.skip("a runtime under /tmp is not visible inside the namespace sandbox (docs/sandbox.md)")
    src = "import numpy as np\ndef f(xs):\n    return int(np.asarray(xs).sum()), float(np.mean(xs))\n"
    assert_accepted(judge(src, T("def check(candidate):\n    assert candidate([1, 2, 3]) == (6, 2.0)\n"), cpu_s=4))


def test_state_is_fresh_for_each_run():
    src = "calls = 0\ndef f():\n    global calls\n    calls += 1\n    return calls\n"
    tests = T("def check(candidate):\n    assert candidate() == 1\n    assert candidate() == 2\n")
    for _ in range(3):
        assert_accepted(judge(src, tests))


# =================================================================================================
# 3. VERDICTS
# =================================================================================================
def test_failing_assert_is_wa():
    for tests in (ADD, ADD_MBPP):
        r = judge("def add(a, b):\n    return a - b\n", tests)
        assert r.status == "ok" and r.passed == 0 and r.verdicts == ["WA"], r


def test_uncaught_candidate_exception_is_re():
    for tests in (ADD, ADD_MBPP):
        r = judge("def add(a, b):\n    raise ValueError('no')\n", tests)
        assert r.status == "ok" and r.passed == 0 and r.verdicts == ["RE"], r


@pytest.mark.parametrize("body", [
    "import os; os._exit(0)",
    "import os; os._exit(3)",
    "import sys; sys.exit(0)",
    "raise SystemExit",
    "raise KeyboardInterrupt",
    "import os; os.abort()",
    "import ctypes; ctypes.string_at(0)",
])
def test_candidate_exiting_or_crashing_during_the_tests_is_re(body):
    r = judge(f"def add(a, b):\n    {body}\n", ADD, **HOSTILE_LIMITS)
    assert r.status == "ok" and r.passed == 0 and r.verdicts == ["RE"], r


def test_candidate_failing_at_import_is_re_and_syntax_error_is_ce():
    r = judge("raise RuntimeError('boom at import')\ndef add(a, b):\n    return a + b\n", ADD)
    assert r.status == "ok" and r.passed == 0 and r.verdicts == ["RE"], r
    r = judge("def add(a, b:\n    return a + b\n", ADD)
    assert r.status == "ok" and r.passed == 0 and r.verdicts == ["CE"], r


@pytest.mark.parametrize("src,tests,limits", [
    ("def add(a, b):\n    while True:\n        pass\n", ADD, {"cpu_s": 1}),
    ("while True:\n    pass\n", ADD, {"cpu_s": 1}),
    ("import time\ndef add(a, b):\n    time.sleep(100)\n", ADD, {"cpu_s": 1, "wall_s": 3}),
    (CORRECT_ADD, T("def check(candidate):\n    while candidate(1, 1) == 2:\n        pass\n", "add"), {"cpu_s": 1}),
    (CORRECT_ADD, T("while True:\n    pass\n", "add"), {"cpu_s": 1}),
], ids=["spin_in_call", "spin_at_import", "sleep_in_call", "test_loops_forever", "mbpp_test_spins"])
def test_spinning_is_tle(src, tests, limits):
    r = judge(src, tests, **limits)
    assert r.status == "ok" and r.passed == 0 and r.verdicts == ["TLE"], r


def test_program_that_vanished_with_its_cpu_budget_spent_is_tle():
    """The rule behind a flake seen once under heavy load (RLIMIT_CPU's kill not in the program's
    status; the tests saw it hang up): RE with >= 95% of the CPU budget used is TLE, nothing else."""
    lim = {"cpu_s": 1}
    assert code._assert_verdict("RE", {"cpu_s": 0.999}, lim) == "TLE"
    assert code._assert_verdict("RE", {"cpu_s": 0.5}, lim) == "RE"
    assert code._assert_verdict("WA", {"cpu_s": 0.999}, lim) == "WA"
    assert code._assert_verdict("AC", {"cpu_s": 0.99}, lim) == "AC"


def test_print_never_decides_the_verdict():
    noisy = ("import sys\ndef add(a, b):\n    print('All tests passed! AC')\n    print('FAILED', file=sys.stderr)\n"
             "    return {}\n")
    assert_accepted(judge(noisy.format("a + b"), ADD))
    r = judge(noisy.format("a - b"), ADD)
    assert r.status == "ok" and r.verdicts == ["WA"], r


def test_output_flood_is_not_ac():
    flood = "import sys\ndef add(a, b):\n    while True:\n        sys.stdout.write('x' * 10**6)\n"
    r = judge(flood, ADD, **HOSTILE_LIMITS)
    assert_rejected(r)


# =================================================================================================
# 4. VALUES CROSS FAITHFULLY; the test's own comparison decides, as it would in one process
# =================================================================================================
VALUE_IMPORTS = """
import math
from collections import Counter, OrderedDict, defaultdict, deque
from decimal import Decimal
from fractions import Fraction
"""
NESTED = ("{'a': [1, (2, 3.5), {4, 5}, frozenset({b'x'})], 6: {None: [True, 2 ** 70, -0.0, Fraction(1, 2)]}, "
          "(1, (2,)): deque([Decimal('2.5'), bytearray(b'z')]), 'c': OrderedDict(k=Counter('aab'))}")

VALUE_CASES = [
    # (returned expression, the test's condition on r = candidate(), must pass)
    ("(1, 2)", "r == (1, 2) and type(r) is tuple", True),
    ("[1, 2]", "r == [1, 2] and type(r) is list", True),
    ("[1, 2]", "r == (1, 2)", False),
    ("(1, 2)", "r == [1, 2]", False),
    ("[(1, 2), [3]]", "r == [(1, 2), [3]] and type(r[0]) is tuple and type(r[1]) is list", True),
    ("[(1, 2)]", "r == [[1, 2]]", False),
    ("{1, 2, 3}", "r == {1, 2, 3} and type(r) is set", True),
    ("{1, 2}", "r == {1, 3}", False),
    ("frozenset({1, 2})", "r == frozenset({1, 2}) and type(r) is frozenset", True),
    ("{3: 'c', 1: 'a', (2, 'x'): [2]}", "r == {1: 'a', 3: 'c', (2, 'x'): [2]} and list(r) == [3, 1, (2, 'x')]", True),
    ("{'1': 'a'}", "r == {1: 'a'}", False),
    ("{1: 'a'}", "r == {'1': 'a'}", False),
    ("range(2, 11, 3)", "r == range(2, 11, 3) and list(r) == [2, 5, 8] and type(r) is range", True),
    ("(i * i for i in range(4))", "list(r) == [0, 1, 4, 9]", True),
    ("(i for i in range(3))", "r == [0, 1, 2]", False),
    ("iter([5, 6])", "next(r) == 5 and list(r) == [6]", True),
    ("2 ** 100000", "r == 2 ** 100000 and r % 10**9 == pow(2, 100000, 10**9)", True),
    ("2 ** 100000 + 1", "r == 2 ** 100000", False),
    ("-(3 ** 5000)", "r == -(3 ** 5000) and type(r) is int", True),
    ("0.1 + 0.2", "r == 0.30000000000000004 and r.hex() == (0.1 + 0.2).hex()", True),
    ("0.1 + 0.2", "r == 0.3", False),
    ("-0.0", "r == 0 and math.copysign(1.0, r) == -1.0", True),
    ("5e-324", "r == 5e-324 and r > 0", True),
    ("1 / 3", "r.hex() == (1 / 3).hex()", True),
    ("float('nan')", "math.isnan(r)", True),
    ("float('nan')", "r == r", False),
    ("[float('inf'), -float('inf')]", "r == [math.inf, -math.inf]", True),
    ("complex(1.5, -2)", "r == 1.5 - 2j and type(r) is complex", True),
    ("b'\\x00\\xffab'", "r == b'\\x00\\xffab' and type(r) is bytes", True),
    ("bytearray(b'ab')", "r == bytearray(b'ab') and type(r) is bytearray", True),
    ("b'ab'", "r == 'ab'", False),
    ("None", "r is None", True),
    ("0", "r is None", False),
    ("True", "r is True and type(r) is bool", True),
    ("1", "r is True", False),
    ("1", "r == True", True),
    ("False", "r is False", True),
    ("Fraction(1, 3)", "r == Fraction(1, 3) and type(r) is Fraction", True),
    ("Fraction(1, 3)", "r == 1 / 3", False),
    ("Decimal('1.10')", "r == Decimal('1.1') and str(r) == '1.10' and type(r) is Decimal", True),
    ("Decimal('0.1')", "r == 0.1", False),
    ("OrderedDict([('b', 1), ('a', 2)])", "r == OrderedDict([('b', 1), ('a', 2)]) and type(r) is OrderedDict", True),
    ("OrderedDict([('b', 1), ('a', 2)])", "r == OrderedDict([('a', 2), ('b', 1)])", False),
    ("Counter('abracadabra')",
     "r == Counter('abracadabra') and r.most_common(1) == [('a', 5)] and type(r) is Counter", True),
    ("defaultdict(list, {1: [2]})",
     "type(r) is defaultdict and r == {1: [2]} and r.default_factory is list and r[7] == []", True),
    ("deque([1, 2, 3], maxlen=5)", "type(r) is deque and r == deque([1, 2, 3]) and r.maxlen == 5", True),
    ("'h\\u00e9llo \\u2603\\x00 \\U0001f600'", "r == 'h\\u00e9llo \\u2603\\x00 \\U0001f600'", True),
    ("'x' * 10**6", "r == 'x' * 10**6", True),
    ("list(range(10**5))", "r == list(range(10**5))", True),
    ("([], {}, (), set(), '', b'', frozenset())", "r == ([], {}, (), set(), '', b'', frozenset())", True),
    (NESTED, f"r == {NESTED} and type(r[(1, (2,))]) is deque and type(r['c']) is OrderedDict", True),
    ("{'a': [1, (2, 3.5)]}", "r == {'a': [1, [2, 3.5]]}", False),
    ("math.pi * 4", "math.isclose(r, 12.566370614359172)", True),
    ("math.pi * 4", "math.isclose(r, 12.57)", False),
]


@pytest.mark.parametrize("expr,cond,ok", VALUE_CASES)
def test_values_cross_faithfully(expr, cond, ok):
    src = VALUE_IMPORTS + f"\ndef f():\n    return {expr}\n"
    tests = T(VALUE_IMPORTS + f"\ndef check(candidate):\n    r = candidate()\n    assert {cond}\n")
    r = judge(src, tests)
    assert r.status == "ok" and r.passed == int(ok), r
    assert r.verdicts == (["AC"] if ok else ["WA"]), r


@pytest.mark.parametrize("expr,cond,ok", [c for c in VALUE_CASES if "r ==" in c[1] and "r = " not in c[1]][:12])
def test_values_cross_faithfully_mbpp(expr, cond, ok):
    src = VALUE_IMPORTS + f"\ndef f():\n    return {expr}\n"
    tests = T(VALUE_IMPORTS + f"\nr = f()\nassert {cond}\n")
    r = judge(src, tests)
    assert r.status == "ok" and r.passed == int(ok), r


@pytest.mark.parametrize("arg", ["(1, 2)", "[1, 2]", "{1: 'a', (2, 3): None}", "{1, 2}", "frozenset({3})", "2 ** 5000",
                                 "float('-inf')", "-0.0", "b'\\x00'", "bytearray(b'q')", "Fraction(2, 3)",
                                 "Decimal('-1.50')", "Counter('aa')", "deque([1])", "range(3)", "None", "True", "1j",
                                 "OrderedDict(z=1, a=2)", NESTED])
def test_arguments_cross_faithfully(arg):
    """The candidate sees what the test passed: echo back type name and repr, and the value itself."""
    src = VALUE_IMPORTS + "\ndef f(x):\n    return type(x).__name__, repr(x), x\n"
    tests = T(VALUE_IMPORTS + f"\ndef check(candidate):\n    x = {arg}\n    name, text, back = candidate(x)\n"
              "    assert name == type(x).__name__ and text == repr(x), (name, text)\n"
              "    assert back == x and type(back) is type(x)\n"
              "    assert not isinstance(x, float) or math.copysign(1, back) == math.copysign(1, x)\n")
    assert_accepted(judge(src, tests))


def test_infinite_generator_is_consumed_lazily():
    src = """
        import itertools
        def f():
            return itertools.count(7)
        def g():
            n = 0
            while True:
                yield n
                n += 1
    """
    tests = T("import itertools\n"
              "def check(candidate):\n    assert list(itertools.islice(candidate(), 3)) == [7, 8, 9]\n"
              "    gen = g()\n    assert [next(gen) for _ in range(4)] == [0, 1, 2, 3]\n")
    assert_accepted(judge(src, tests))


# =================================================================================================
# 5. EXCEPTIONS: the candidate's reach the test's try/except with their builtin type
# =================================================================================================
EXC_CASES = [
    # (prelude, body of f, the test's except clause, then, must pass)
    ("", "raise ValueError('bad value')", "ValueError", "assert 'bad value' in str(e)", True),
    ("", "return 1 / 0", "ZeroDivisionError", "pass", True),
    ("", "return 1 / 0", "ArithmeticError", "pass", True),
    ("", "return [][1]", "IndexError", "pass", True),
    ("", "return {}['k']", "KeyError", "assert e.args == ('k',)", True),
    ("", "return {}['k']", "LookupError", "pass", True),
    ("", "return len(5)", "TypeError", "pass", True),
    ("", "return None.x", "AttributeError", "pass", True),
    ("", "return int('x')", "ValueError", "pass", True),
    ("", "return b'\\xff'.decode()", "UnicodeDecodeError", "pass", True),
    ("", "return b'\\xff'.decode()", "ValueError", "pass", True),
    ("", "return open('/nonexistent/x')", "FileNotFoundError", "pass", True),
    ("", "return open('/nonexistent/x')", "OSError", "pass", True),
    ("", "return next(iter([]))", "StopIteration", "pass", True),
    ("", "raise NotImplementedError('later')", "NotImplementedError", "pass", True),
    ("", "return f()", "RecursionError", "pass", True),
    ("", "assert False, 'own assert'", "AssertionError", "assert 'own assert' in str(e)", True),
    ("import math", "return math.exp(1000)", "OverflowError", "pass", True),
    ("", "raise ValueError('x')", "(TypeError, ValueError)", "pass", True),
    ("", "raise ValueError('x')", "Exception", "pass", True),
    ("", "raise ValueError('x')", "BaseException", "pass", True),
    ("class NegativeError(ValueError):\n    pass", "raise NegativeError('neg')", "ValueError", "assert 'neg' in str(e)",
     True),
    ("class MissingKey(KeyError):\n    pass", "raise MissingKey('m')", "KeyError", "pass", True),
    ("class MissingKey(KeyError):\n    pass", "raise MissingKey('m')", "LookupError", "pass", True),
    ("class A(ArithmeticError):\n    pass\nclass B(A):\n    pass", "raise B()", "ArithmeticError", "pass", True),
    ("class Mine(Exception):\n    pass", "raise Mine('m')", "Exception", "pass", True),
    ("class BadIndex(IndexError, KeyError):\n    pass", "raise BadIndex(1)", "IndexError", "pass", True),
    # wrong exception type, or none: the test must fail
    ("class Mine(Exception):\n    pass", "raise Mine('m')", "ValueError", "pass", False),
    ("", "raise TypeError('x')", "ValueError", "pass", False),
    ("", "raise KeyError('x')", "IndexError", "pass", False),
    ("", "return 1", "ValueError", "pass", False),
    ("", "raise ValueError('other')", "ValueError", "assert str(e) == 'expected'", False),
]


@pytest.mark.parametrize("prelude,body,clause,then,ok", EXC_CASES)
def test_exceptions_reach_the_test(prelude, body, clause, then, ok):
    src = f"{prelude}\ndef f():\n    {body}\n"
    tests = T(f"""
        def check(candidate):
            try:
                candidate()
            except {clause} as e:
                {then}
            else:
                assert False, "no exception"
            try:
                candidate()
            except {clause}:
                pass
            else:
                assert False
    """)
    r = judge(src, tests)
    assert r.status == "ok" and r.passed == int(ok), r
    if not ok:
        assert r.verdicts in (["WA"], ["RE"]), r


def test_exceptions_reach_mbpp_tests_and_the_candidate_keeps_going():
    src = ("import math\ndef isqrt(n):\n    if n < 0:\n        raise ValueError('negative input')\n"
           "    return math.isqrt(n)\n")
    tests = T("""
        try:
            isqrt(-4)
        except ValueError as e:
            assert "negative" in str(e)
        else:
            raise AssertionError("no exception")
        assert isqrt(10**40) == 10**20
    """, "isqrt")
    assert_accepted(judge(src, tests))


# =================================================================================================
# 6. HANDLES, CALLBACKS, WRITE-BACK, STATE
# =================================================================================================
RECT = """
class Rect:
    def __init__(self, w, h):
        self.w, self.h = w, h
    def area(self):
        return self.w * self.h
    def scaled(self, k):
        return Rect(self.w * k, self.h * k)
    def __eq__(self, other):
        return True
    __hash__ = object.__hash__
def make(w, h):
    return Rect(w, h)
def total_area(rects):
    return sum(r.area() for r in rects)
def same(r):
    return r
"""


def test_handles_forward_attributes_and_methods_and_come_back_as_originals():
    tests = T("""
        def check(candidate):
            r = candidate(2, 3)
            assert r.w == 2 and r.h == 3
            assert r.area() == 6
            big = r.scaled(10)
            assert big.area() == 600
            assert total_area([r, big, candidate(1, 1)]) == 607
            assert r == r
            assert not (r == 6) and r != 6 and r != candidate(2, 3)
            assert not (r == big)
    """, "make")
    assert_accepted(judge(RECT, tests))


def test_handle_truth_testing_raises_type_error():
    tests = T("""
        def check(candidate):
            r = candidate(2, 3)
            try:
                bool(r)
            except TypeError:
                pass
            else:
                assert False, "truth testing a handle must raise TypeError"
    """, "make")
    assert_accepted(judge(RECT, tests))


def test_mbpp_class_defined_by_the_candidate():
    """MBPP 601: the test builds the candidate's Pair objects and passes them back."""
    src = """
        class Pair(object):
            def __init__(self, a, b):
                self.a = a
                self.b = b
        def max_chain_length(arr, n):
            max = 0
            mcl = [1 for i in range(n)]
            for i in range(1, n):
                for j in range(0, i):
                    if (arr[i].a > arr[j].b and mcl[i] < mcl[j] + 1):
                        mcl[i] = mcl[j] + 1
            for i in range(n):
                if (max < mcl[i]):
                    max = mcl[i]
            return max
    """
    tests = T("""
        assert max_chain_length([Pair(5, 24), Pair(15, 25),Pair(27, 40), Pair(50, 60)], 4) == 3
        assert max_chain_length([Pair(1, 2), Pair(3, 4),Pair(5, 6), Pair(7, 8)], 4) == 4
        assert max_chain_length([Pair(19, 10), Pair(11, 12),Pair(13, 14), Pair(15, 16), Pair(31, 54)], 5) == 5
    """, "max_chain_length")
    assert_accepted(judge(src, tests))
    wrong = textwrap.dedent(src).replace("return max", "return max + 1")
    r = judge(wrong, tests)
    assert r.status == "ok" and r.verdicts == ["WA"], r


def test_linked_structure_walked_through_handles():
    src = """
        class Node:
            def __init__(self, val, next=None):
                self.val, self.next = val, next
        def build(xs):
            head = None
            for x in reversed(xs):
                head = Node(x, head)
            return head
        def to_list(node):
            out = []
            while node is not None:
                out.append(node.val)
                node = node.next
            return out
        def reverse(head):
            prev = None
            while head:
                head.next, prev, head = prev, head, head.next
            return prev
    """
    tests = T("""
        def check(candidate):
            head = build([1, 2, 3])
            vals = []
            node = head
            while node is not None:
                vals.append(node.val)
                node = node.next
            assert vals == [1, 2, 3]
            assert to_list(candidate(head)) == [3, 2, 1]
            assert candidate(None) is None
    """, "reverse")
    assert_accepted(judge(src, tests))


def test_returned_closure_can_be_called():
    src = "def make_adder(n):\n    def add(x):\n        return x + n\n    return add\n"
    tests = T("""
        def check(candidate):
            assert candidate(2)(3) == 5
            inc = candidate(1)
            assert [inc(i) for i in range(3)] == [1, 2, 3]
    """, "make_adder")
    assert_accepted(judge(src, tests))


def test_numpy_array_arrives_as_handle():
    numpy = pytest.importorskip("numpy")
    if numpy.__file__.startswith("/tmp/"):
        pytest.skip("a runtime under /tmp is not visible inside the namespace sandbox (docs/sandbox.md)")
    src = "import numpy as np\ndef f(n):\n    return np.arange(n) * 2\n"
    tests = T("""
        def check(candidate):
            r = candidate(3)
            assert r.tolist() == [0, 2, 4]
            assert r.shape == (3,)
            assert int(r.sum()) == 6
            assert not (r == [0, 2, 4])
    """)
    assert_accepted(judge(src, tests, cpu_s=4))


CALLBACK_SRC = """
def sort_by(xs, key):
    return sorted(xs, key=key)
def apply(f, x):
    return f(x)
def safe(f, x):
    try:
        return f(x)
    except ZeroDivisionError:
        return None
"""


@pytest.mark.parametrize("entry,body", [
    ("sort_by", "assert candidate([3, -1, 2], lambda v: abs(v)) == [-1, 2, 3]"),
    ("sort_by", "assert candidate(['bb', 'a', 'ccc'], len) == ['a', 'bb', 'ccc']"),
    ("sort_by", "assert candidate([1, 3, 2], neg) == [3, 2, 1]"),
    ("sort_by", "assert candidate(list(range(200)), lambda v: (v % 7, -v))[:3] == [196, 189, 182]"),
    ("apply", "assert candidate(lambda v: [v, (v,), {v}], 3) == [3, (3,), {3}]"),
    ("apply", "assert candidate(str.upper, 'ab') == 'AB'"),
    ("safe", "assert candidate(lambda v: 1 / v, 0) is None and candidate(lambda v: 1 / v, 2) == 0.5"),
])
def test_callables_passed_to_the_candidate(entry, body):
    tests = T(f"def neg(v):\n    return -v\n\ndef check(candidate):\n    {body}\n", entry)
    assert_accepted(judge(CALLBACK_SRC, tests))


WRITEBACK_SRC = """
def sort_in_place(xs):
    xs.sort()
def add_key(d):
    d["b"] = 2
    del d["gone"]
def add_item(s):
    s.add(3)
    s.discard(1)
def upper_in_place(b):
    b[:] = b.upper()
def clear_and_count(xs):
    n = len(xs)
    xs.clear()
    return n
def extend(xs, ys):
    xs.extend(ys)
    ys.append(0)
    return len(xs)
"""


@pytest.mark.parametrize("entry,body", [
    ("sort_in_place",
     "data = [3, 1, 2]\n    alias = data\n    assert candidate(data) is None\n"
     "    assert data == [1, 2, 3] and alias is data"),
    ("add_key", "d = {'a': 1, 'gone': 0}\n    candidate(d)\n    assert d == {'a': 1, 'b': 2}"),
    ("add_item", "s = {1, 2}\n    candidate(s)\n    assert s == {2, 3}"),
    ("upper_in_place", "b = bytearray(b'ab')\n    candidate(b)\n    assert b == bytearray(b'AB')"),
    ("clear_and_count", "xs = [1, 2]\n    assert candidate(xs) == 2 and xs == []"),
    ("extend",
     "xs, ys = [1], [2, 3]\n    assert candidate(xs, ys) == 3\n    assert xs == [1, 2, 3] and ys == [2, 3, 0]"),
])
def test_arguments_mutated_in_place_are_written_back(entry, body):
    assert_accepted(judge(WRITEBACK_SRC, T(f"def check(candidate):\n    {body}\n", entry)))


def test_writeback_in_mbpp_style():
    tests = T("data = [5, 4, 1]\nsort_in_place(data)\nassert data == [1, 4, 5]\n", "sort_in_place")
    assert_accepted(judge(WRITEBACK_SRC, tests))
    r = judge("def sort_in_place(xs):\n    xs = sorted(xs)\n", tests)  # rebinding is not mutation
    assert r.status == "ok" and r.verdicts == ["WA"], r


def test_candidate_state_persists_across_calls():
    src = """
        _cache = {}
        history = []
        def fib(n):
            history.append(n)
            if n not in _cache:
                _cache[n] = n if n < 2 else fib(n - 1) + fib(n - 2)
            return _cache[n]
        def calls():
            return len(history)
    """
    tests = T("""
        def check(candidate):
            assert candidate(50) == 12586269025
            n = calls()
            assert candidate(50) == 12586269025
            assert calls() == n + 1
    """, "fib")
    assert_accepted(judge(src, tests))


# =================================================================================================
# 7. HUMANEVAL check(candidate) CONVERTED TO MBPP-STYLE TOP-LEVEL ASSERTS
# =================================================================================================
# Spread over the set; includes the ones whose tests use the program's helpers (32: poly, 38: encode_cyclic,
# 50: encode_shift), float tolerances (2, 4), None results (12), random tests (53) and imports inside check (32).
HE_MBPP_IDS = (0, 2, 4, 7, 10, 12, 16, 20, 24, 28, 32, 35, 38, 44, 50, 53, 58, 62, 70, 75,
               81, 87, 95, 101, 107, 112, 120, 129, 137, 145, 151, 160)


def _humaneval() -> list[dict]:
    with gzip.open(HUMANEVAL, "rt") as f:
        return [json.loads(line) for line in f]


def to_mbpp(test_src: str, entry_point: str) -> str | None:
    """The body of ``check(candidate)`` dedented to top level with ``candidate(`` → ``<entry_point>(``;
    None when that is not a clean textual conversion."""
    tree = ast.parse(test_src)
    lines = test_src.splitlines()
    checks = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if len(checks) != 1:
        return None
    chk = checks[0]
    if any(isinstance(n, ast.Return) for n in ast.walk(chk)):
        return None
    nodes = list(ast.walk(chk))
    if any(isinstance(n, ast.Constant) and isinstance(n.value, str) and n.lineno != n.end_lineno for n in nodes):
        return None  # dedenting would change a multi-line string
    calls = sum(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "candidate" for n in nodes)
    names = sum(isinstance(n, ast.Name) and n.id == "candidate" for n in ast.walk(chk))
    if calls == 0 or calls != names:
        return None
    out = []
    for node in tree.body:
        if node is chk:
            body = textwrap.dedent("\n".join(lines[chk.body[0].lineno - 1:chk.end_lineno]))
            out.append(re.sub(r"\bcandidate\(", entry_point + "(", body))
        else:
            out.append("\n".join(lines[node.lineno - 1:node.end_lineno]))
    converted = "\n".join(out) + "\n"
    if re.search(r"\bcandidate\b", converted):
        return None
    try:
        compile(converted, "tests.py", "exec")
    except SyntaxError:
        return None
    return converted


@pytest.mark.skipif(not HUMANEVAL.exists(), reason="shared data missing")
@pytest.mark.parametrize("idx", HE_MBPP_IDS)
def test_humaneval_as_mbpp_canonical_passes_broken_fails(idx):
    p = _humaneval()[idx]
    converted = to_mbpp(p["test"], p["entry_point"])
    assert converted is not None, p["task_id"]
    assert "def check" not in converted and p["entry_point"] + "(" in converted
    for ep in (p["entry_point"], None):  # entry point given, or left out
        tests = T(converted, ep)
        assert_accepted(code.run_tests(p["prompt"] + p["canonical_solution"], tests))
    r = code.run_tests(p["prompt"] + "    return None\n", T(converted, p["entry_point"]))
    assert r.status == "ok" and r.passed == 0 and r.verdicts in (["WA"], ["RE"]), (p["task_id"], r)


# =================================================================================================
# 8. BAD INPUT AND TRACEBACK HYGIENE
# =================================================================================================
GOOD_CHECK = "def check(candidate):\n    assert candidate(2, 3) == 5\n"


@pytest.mark.parametrize("tests,field", [
    ({"type": "nope", "code": GOOD_CHECK, "entry_point": "add"}, "type"),
    ({"code": GOOD_CHECK, "entry_point": "add"}, "type"),
    ({"type": "assert", "code": "def check(candidate):\n    assert candidate(2, 3) ==\n", "entry_point": "add"},
     "code"),
    ({"type": "assert", "code": "def check(candidate):\n\tif True:\n        pass\n", "entry_point": "add"}, "code"),
    ({"type": "assert", "entry_point": "add"}, "code"),
    ({"type": "assert", "code": 123, "entry_point": "add"}, "code"),
    ({"type": "assert", "code": None, "entry_point": "add"}, "code"),
    ({"type": "assert", "code": GOOD_CHECK, "entry_point": "1add"}, "entry_point"),
    ({"type": "assert", "code": GOOD_CHECK, "entry_point": "add b"}, "entry_point"),
    ({"type": "assert", "code": GOOD_CHECK, "entry_point": ""}, "entry_point"),
    ({"type": "assert", "code": GOOD_CHECK, "entry_point": "add; import os"}, "entry_point"),
    ({"type": "assert", "code": GOOD_CHECK, "entry_point": "__import__('os').system('true')"}, "entry_point"),
    ({"type": "assert", "code": GOOD_CHECK, "entry_point": "Solution()."}, "entry_point"),
    ({"type": "assert", "code": GOOD_CHECK, "entry_point": 123}, "entry_point"),
    ({"type": "assert", "code": GOOD_CHECK, "entry_point": ["add"]}, "entry_point"),
])
def test_bad_specs_are_reported_not_raised(tests, field):
    r = code.run_tests(CORRECT_ADD, tests)
    assert r.status != "ok" and r.passed == 0, r
    assert r.error and field in r.error, r


@pytest.mark.parametrize("tests", [[], "not json", "[1, 2]", 42])
def test_non_dict_specs_are_reported_not_raised(tests):
    r = code.run_tests(CORRECT_ADD, tests)
    assert r.status != "ok" and r.passed == 0 and r.error, r


def test_entry_point_missing_from_program_is_re_naming_it():
    for tests in (T(GOOD_CHECK, "compute_total"), T("assert compute_total(2, 3) == 5\n", "compute_total")):
        r = judge("def compute_sum(a, b):\n    return a + b\n", tests)
        assert r.status == "ok" and r.passed == 0 and r.verdicts == ["RE"], r
        assert "compute_total" in r.stderr, r


def _host_strings() -> list[str]:
    import rewards

    out = {"/work", "/root", "site-packages", ".pyenv", ".venv", str(REPO),
           os.path.dirname(os.path.abspath(rewards.__file__)), os.path.realpath(sys.executable), sys.executable,
           sys.prefix, os.path.dirname(os.__file__), os.path.realpath(os.path.dirname(os.__file__))}
    if sys.base_prefix not in ("/", "/usr", "/usr/local"):
        out.add(sys.base_prefix)
    return sorted(s for s in out if s)


@pytest.mark.parametrize("src,tests,must_show", [
    ("def add(a, b):\n    raise ValueError('bad input here')\n", ADD, ["solution.py", "ValueError", "bad input here"]),
    ("def add(a, b):\n    return a - b\n", ADD, ["tests.py", "AssertionError"]),
    ("def add(a, b):\n    return a - b\n", ADD_MBPP, ["tests.py", "AssertionError"]),
    ("import json\ndef add(a, b):\n    return json.loads('{')\n", ADD, ["solution.py", "JSONDecodeError"]),
    ("import fractions\ndef add(a, b):\n    return fractions.Fraction('x')\n", ADD, ["solution.py", "ValueError"]),
    ("raise RuntimeError('boom at import')\n", ADD, ["solution.py", "boom at import"]),
    (CORRECT_ADD, T("def check(candidate):\n    assert undefined_name(candidate)\n", "add"), ["tests.py", "NameError"]),
    ("import collections\ndef add(a, b):\n    return collections.deque(maxlen=-1)\n", ADD_MBPP,
     ["solution.py", "ValueError"]),
], ids=["candidate_raises", "assert_fails", "mbpp_assert_fails", "stdlib_frames", "stdlib_python_module",
        "import_time_error", "test_name_error", "mbpp_candidate_raises"])
def test_tracebacks_show_user_files_only(src, tests, must_show):
    r = judge(src, tests)
    assert r.status == "ok" and r.passed == 0, r
    for s in must_show:
        assert s in r.stderr, (s, r.stderr)
    leaked = [s for s in _host_strings() if s in r.stderr]
    assert leaked == [], (leaked, r.stderr)


# =================================================================================================
# 9. KILLING EVERYTHING REACHABLE (host safety proven first with a harmless probe)
# =================================================================================================
@pytest.fixture(scope="module")
def signals_contained():
    """Signal 0 from a candidate to this test process, its parent and its process group must fail."""
    probe = """
        import os
        def probe(pids, pgrps):
            reachable = []
            for send, target in [(os.kill, p) for p in pids] + [(os.killpg, g) for g in pgrps]:
                try:
                    send(target, 0)
                    reachable.append(target)
                except (ProcessLookupError, PermissionError):
                    pass
            return reachable
    """
    tests = T(f"def check(candidate):\n"
              f"    assert candidate({[os.getpid(), os.getppid()]!r}, {[os.getpgrp()]!r}) == []\n",
              "probe")
    r = judge(probe, tests)
    if r.passed != 1:
        pytest.fail(f"containment probe failed, not running the kill programs: a candidate can signal this process {r}")


@pytest.mark.parametrize("body", [
    "os.kill(-1, signal.SIGKILL)",
    "os.kill(os.getppid(), signal.SIGKILL)",
    "os.killpg(os.getpgrp(), signal.SIGKILL)",
    "os.killpg(0, signal.SIGKILL)",
    "os.kill(0, signal.SIGKILL)",
    "subprocess.run(['sh', '-c', 'kill -9 -1'])",
], ids=["kill_all", "kill_parent", "killpg_own_group", "killpg_0", "kill_0", "shell_kill_all"])
def test_kill_everything_reachable_is_contained_and_rejected(signals_contained, body):
    src = f"import os, signal, subprocess\ndef add(a, b):\n    {body}\n    return 0\n"
    assert_rejected(judge(src, ADD, **HOSTILE_LIMITS))
    assert_accepted(judge(CORRECT_ADD, ADD))  # the judge still works


# =================================================================================================
# 10. KNOWN GAP: a test that calls a helper the program defines trusts the program
# =================================================================================================
@pytest.mark.xfail(strict=False, reason="HumanEval/38 (and 32, 50) call encode_cyclic/poly/encode_shift, which the "
                   "program defines: a program that redefines the helper too passes; not fixable without the prompt")
def test_known_gap_program_defined_helper_redefined():
    src = "def encode_cyclic(s):\n    return s\ndef decode_cyclic(s):\n    return s\n"
    tests = T("""
        def check(candidate):
            from random import randint, choice
            import string

            letters = string.ascii_lowercase
            for _ in range(100):
                str = ''.join(choice(letters) for i in range(randint(10, 20)))
                encoded_str = encode_cyclic(str)
                assert candidate(encoded_str) == str
    """, "decode_cyclic")
    assert_rejected(judge(src, tests))
