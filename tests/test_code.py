"""rewards.code: correctness of judging, the test formats, the
assert protocol, HumanEval canonical solutions, C++, and the TRL reward."""

from __future__ import annotations

import gzip
import json
import os
import re
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rewards import code
from rewards.registry import func_name

HUMANEVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "humaneval" / "HumanEval.jsonl.gz"


def stdio(src: str, cases, **kw) -> code.RunResult:
    r = code.run_tests(textwrap.dedent(src), {"type": "stdio", "cases": [{"input": i, "output": o} for i, o in cases]},
                       **kw)
    assert r.status == "ok", r
    return r


@pytest.mark.parametrize("reader", [
    "import sys\nprint(sum(map(int, sys.stdin.buffer.read().split())))",
    "print(sum(map(int, open(0).read().split())))",
    "import sys\nprint(sum(int(x) for line in sys.stdin for x in line.split()))",
    "import sys\na = sys.stdin.readline(); b = sys.stdin.readline()\nprint(int(a) + int(b))",
    "import sys\nprint(sum(map(int, sys.stdin.read().split())))",
])
def test_stdin_readers(reader):
    assert stdio(reader, [("1\n2", "3"), ("40\n2\n", "42")], stop_on_first_failure=False).verdicts == ["AC", "AC"]


@pytest.mark.parametrize("src", [
    "total = 0\ndef f():\n    global total\n    total += 5\nf()\nprint(total)",
    "def main():\n    print(5)\nif __name__ == '__main__':\n    main()",
    "import sys\ndef main():\n    print(5)\nsys.exit(main())",
    "print(5)\nexit()",
    "import sys\nprint(5)\nsys.exit(0)",
])
def test_program_shapes(src):
    assert stdio(src, [("", "5")]).verdicts == ["AC"]


def test_big_int_and_deep_recursion_thread():
    import sys

    big = 2**20000
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        text = str(big)
    finally:
        sys.set_int_max_str_digits(old)
    assert stdio("print(2**20000)", [("", text)]).verdicts == ["AC"]
    assert stdio("print(2**20000 + 1)", [("", text)]).verdicts == ["WA"]
    src = """
    import sys, threading
    sys.setrecursionlimit(10**6)
    threading.stack_size(2**27)
    def depth(n):
        return 0 if n == 0 else 1 + depth(n - 1)
    def main():
        print(depth(100000))
    threading.Thread(target=main).start()
    """
    assert stdio(src, [("", "100000")], cpu_s=4).verdicts == ["AC"]


def test_numpy_under_memory_limit():
    numpy = pytest.importorskip("numpy")
    if numpy.__file__.startswith("/tmp/"):
        pytest.skip("a runtime under /tmp is not visible inside the namespace sandbox (docs/sandbox.md)")
    assert stdio("import numpy as np\nprint(int(np.arange(10).sum()))", [("", "45")], cpu_s=4).verdicts == ["AC"]


@pytest.mark.parametrize("out,exp,tol,verdict", [
    ("1 2  \r\n3\r\n\r\n", "1 2\n3", None, "AC"),
    ("5", "5\n", None, "AC"),
    ("0.30000000000000004", "0.3", 1e-6, "AC"),
    ("1e-7", "0.0000001", 1e-6, "AC"),
    ("0.30000000000000004", "0.3", None, "WA"),
    ("YES", "NO", None, "WA"),
    ("1 2", "2 1", None, "WA"),
    ("1", "1\n2", None, "WA"),
    ("007", "7", None, "AC"),
    ("nan", "nan", 1e-6, "AC"),
    ("inf", "1e308", 1e-6, "WA"),
])
def test_comparison(out, exp, tol, verdict):
    tests = {"type": "stdio", "float_tol": tol, "cases": [{"input": "", "output": exp}]}
    r = code.run_tests(f"import sys\nsys.stdout.write({out!r})", tests)
    assert r.verdicts == [verdict]


def test_raw_writes_and_bad_bytes():
    assert stdio("import sys, os\nsys.stdout.buffer.write(b'4')\nsys.stdout.flush()\nos.write(1, b'2\\n')",
                 [("", "42")]).verdicts == ["AC"]
    assert stdio("import os\nos.write(1, b'\\xff\\xfe\\x00 1')", [("", "1")]).verdicts == ["WA"]


def test_random_reseeded_per_run():
    """Forks of one server share its generator state unless the harness reseeds."""
    pool = code._get_pool()
    req = {"lang": "python", "mode": "stdio", "source": "import random\nprint(random.getrandbits(64))",
           "limits": code._limits({})}
    outs = {pool.execute(req)["stdout"] for _ in range(4)}
    assert len(outs) == 4 and all(o.strip().isdigit() for o in outs)


def test_output_then_crash_is_re():
    assert stdio("print(1)\nimport sys\nsys.exit(1)", [("", "1")]).verdicts == ["RE"]
    crash = "import ctypes, sys\nprint(1)\nsys.stdout.flush()\nctypes.string_at(0)"
    assert stdio(crash, [("", "1")]).verdicts == ["RE"]


def test_compile_error_is_ce():
    assert stdio("def f(:\n", [("", "1")]).verdicts == ["CE"]


def test_stop_on_first_failure_and_fresh_state():
    src = "import sys\nx = int(input())\nprint(x * 2)"
    r = stdio(src, [("1", "2"), ("2", "5"), ("3", "6")])
    assert (r.passed, r.total, r.verdicts) == (1, 3, ["AC", "WA"])
    r = stdio(src, [("1", "2"), ("2", "5"), ("3", "6")], stop_on_first_failure=False)
    assert (r.passed, r.verdicts) == (2, ["AC", "WA", "AC"])


# ---- functional ----
def test_functional_and_class_solution_fresh_instance():
    src = """
    class Solution:
        def __init__(self):
            self.calls = 0
        def twoSum(self, nums, target):
            self.calls += 1
            assert self.calls == 1
            seen = {}
            for i, v in enumerate(nums):
                if target - v in seen:
                    return [seen[target - v], i]
                seen[v] = i
    """
    tests = {"type": "functional", "fn_name": "twoSum",
             "cases": [{"args": [[2, 7, 11, 15], 9], "expected": [0, 1]}, {"args": [[3, 2, 4], 6], "expected": [1, 2]}]}
    r = code.run_tests(textwrap.dedent(src), tests)
    assert (r.passed, r.verdicts) == (2, ["AC", "AC"])
    assert code.run_tests("def f(a, b=0):\n    return (a, b)", {"type": "functional", "fn_name": "f", "cases": [
        {"args": [1], "kwargs": {"b": 2}, "expected": [1, 2]}]}).verdicts == ["AC"]


def test_always_equal_and_harness_monkeypatching_fail():
    always = "class E:\n    def __eq__(self, o): return True\n    __hash__ = object.__hash__\ndef f():\n    return E()"
    def expecting(value):
        return {"type": "functional", "fn_name": "f", "cases": [{"args": [], "expected": value}]}

    assert code.run_tests(always, expecting(5)).verdicts == ["RE"]
    subclass = "class I(int):\n    def __eq__(self, o): return True\ndef f():\n    return I(3)"  # travels as int 3
    assert code.run_tests(subclass, expecting(5)).verdicts == ["WA"]
    assert code.run_tests(subclass, expecting(3)).verdicts == ["AC"]
    patch = """
    import json, builtins, unittest
    json.dumps = lambda *a, **k: '5'
    builtins.print = lambda *a, **k: None
    unittest.TestCase.assertEqual = lambda *a: None
    def f():
        return 4
    """
    assert code.run_tests(textwrap.dedent(patch), {"type": "functional", "fn_name": "f",
                                                   "cases": [{"args": [], "expected": 5}]}).verdicts == ["WA"]


# ---- assert protocol ----
ASSERT_TESTS = {"type": "assert", "entry_point": "add",
                "code": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"}


@pytest.mark.parametrize("src,ok", [
    ("def add(a, b):\n    return a + b", True),
    ("def add(a, b):\n    return a + b + 1", False),
    ("def add(a, b):\n    return None", False),
    ("import os\nos._exit(0)", False),
    ("import sys\nsys.exit(0)", False),
    ("raise SystemExit", False),
    ("import atexit, os\natexit.register(lambda: os._exit(0))\ndef add(a, b):\n    raise ValueError", False),
    ("def add(a, b):\n    import os; os._exit(0)", False),
    ("def add(a, b):\n    raise SystemExit(0)", False),
    ("class E:\n    def __eq__(self, o): return True\ndef add(a, b):\n    return E()", False),
    ("import os\nos.write(3, b'x' * 32)\ndef add(a, b):\n    return 0", False),
])
def test_assert_protocol(src, ok):
    r = code.run_tests(src, ASSERT_TESTS)
    assert r.status == "ok" and (r.passed == 1) is ok, r


def _humaneval():
    with gzip.open(HUMANEVAL, "rt") as f:
        return [json.loads(line) for line in f]


def _he_tests(p):
    return {"type": "assert", "code": p["test"], "entry_point": p["entry_point"]}


@pytest.mark.skipif(not HUMANEVAL.exists(), reason="shared data missing")
def test_humaneval_canonical_pass_and_broken_fail():
    probs = _humaneval()
    assert len(probs) == 164
    with ThreadPoolExecutor(code._get_pool().slots) as ex:
        good = list(ex.map(lambda p: code.run_tests(p["prompt"] + p["canonical_solution"], _he_tests(p)), probs))
    failed = [p["task_id"] for p, r in zip(probs, good) if r.passed != 1]
    assert failed == []

    def broken(p):
        none = p["prompt"] + "    return None\n"
        # off by one: shift every integer literal in the canonical solution's return lines
        off = p["prompt"] + re.sub(r"return (.+)", r"return _off(\1)", p["canonical_solution"]) + textwrap.dedent("""
        def _off(x):
            if isinstance(x, bool): return not x
            if isinstance(x, (int, float)): return x + 1
            if isinstance(x, str): return x + 'x'
            if isinstance(x, (list, tuple)): return type(x)(list(x) + [1])
            return None
        """)
        return [code.run_tests(none, _he_tests(p)).passed, code.run_tests(off, _he_tests(p)).passed]

    sample = probs[::8]
    with ThreadPoolExecutor(code._get_pool().slots) as ex:
        results = list(ex.map(broken, sample))
    assert all(r == [0, 0] for r in results), [(p["task_id"], r) for p, r in zip(sample, results) if r != [0, 0]]


def test_64_concurrent_runs_all_pass():
    src = "n = int(input())\nprint(sum(range(n)))"
    with ThreadPoolExecutor(64) as ex:
        rs = list(ex.map(lambda _: stdio(src, [("1000", "499500"), ("10", "45")]), range(64)))
    assert all(r.passed == 2 for r in rs)


# ---- C++ ----
def test_cpp_compiled_once_and_judged():
    src = "#include <bits/stdc++.h>\nint main(){long long a,b;std::cin>>a>>b;std::cout<<a+b<<\"\\n\";}"
    tests = {"type": "stdio", "cases": [{"input": "2 3", "output": "5"}, {"input": "-1 1", "output": "0"}]}
    r = code.run_tests(src, tests, language="cpp", stop_on_first_failure=False)
    assert r.verdicts == ["AC", "AC"], r
    key_count = len(code._cpp_cache)
    assert code.run_tests(src, tests, language="cpp").passed == 2 and len(code._cpp_cache) == key_count
    assert code.run_tests("int main({", tests, language="cpp").verdicts == ["CE"]
    assert code.run_tests("int main(){for(;;);}", tests, language="cpp", cpu_s=1).verdicts == ["TLE"]


# ---- the TRL reward ----
def test_code_reward_signature_and_modes():
    assert code.code_reward.__name__ == "code_reward"
    tests = {"type": "stdio", "cases": [{"input": "2", "output": "4"}, {"input": "3", "output": "9"}]}
    half = "```python\nn = int(input())\nprint(4 if n == 2 else 0)\n```"
    full = [{"role": "assistant",
             "content": "Reasoning...\n```python\nprint(0)\n```\nFinal:\n```python\nn=int(input())\nprint(n*n)\n```"}]
    out = code.code_reward(["p"] * 4, [half, full, "no code here", "whatever"],
                           tests=[tests, json.dumps(tests), tests, None],
                           trainer_state=None, completion_ids=[[1]] * 4, other_column=[1, 2, 3, 4])
    assert out == [0.5, 1.0, 0.0, None]
    strict = code.make_code_reward(all_or_nothing=True)
    assert func_name(strict) == "code_reward"  # what TRL logs it under
    logged = {}
    assert strict(["p"], [half], tests=[tests], log_metric=lambda k, v: logged.__setitem__(k, v)) == [0.0]
    assert logged == {"code/WA": 1}


def test_sandbox_failure_gives_none(monkeypatch):
    def boom(*a, **k):
        raise code.ServerDied("simulated: fork server died")

    monkeypatch.setattr(code._get_pool(), "execute", boom)
    r = code.run_tests("print(1)", {"type": "stdio", "cases": [{"input": "", "output": "1"}]})
    assert r.status == "sandbox_error" and r.passed == 0
    assert code.code_reward(["p"], ["```python\nprint(1)\n```"],
                            tests=[{"type": "stdio", "cases": [{"input": "", "output": "1"}]}]) == [None]


def test_shutdown_leaves_no_processes():
    pool = code._get_pool()
    pids = [s.proc.pid for s in pool._all]
    code.shutdown()
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert code.run_tests("print(1)", {"type": "stdio", "cases": [{"input": "", "output": "1"}]}).passed == 1


# ---- functional results: every value is a verdict, none is a crash ---------------------------------
def functional(src: str, expected, **kw) -> code.RunResult:
    r = code.run_tests(textwrap.dedent(src), {"type": "functional", "fn_name": "f",
                                              "cases": [{"args": [], "expected": expected}]}, **kw)
    assert r.status == "ok", r
    return r


FUNCTIONAL_VALUES = [
    ("10**400", 1.5, None, "WA"),          # int too large for a float: OverflowError in a naive compare
    ("10**400", 1.5, 1e-6, "WA"),
    ("10**400", 10**400, None, "AC"),
    ("2**20000 + 1", 2**20000 + 1, None, "AC"),  # beyond the 4300-digit str/json limit
    ("2**20000", 2**20000 + 1, None, "WA"),
    ("-(2**20000)", -(2**20000), None, "AC"),
    ("float('nan')", 1.0, 1e-6, "WA"),
    ("float('inf')", 1e308, 1e-6, "WA"),
    ("{1: 'a', 2: 'b'}", {"1": "a", "2": "b"}, None, "AC"),  # JSON expected values have string keys
    ("{1: 'a'}", {"1": "b"}, None, "WA"),
    ("(1, [2, (3,)])", [1, [2, [3]]], None, "AC"),         # JSON has no tuples
    ("[1, 2]", [1, 2, 3], None, "WA"),
    ("{1, 2}", [1, 2], None, "WA"),                         # a set is not a list
    ("range(3)", [0, 1, 2], None, "WA"),
    ("(x for x in range(3))", [0, 1, 2], None, "WA"),
    ("True", 1, None, "WA"),
    ("1", True, None, "WA"),
    ("0.1 + 0.2", 0.3, None, "WA"),
    ("0.1 + 0.2", 0.3, 1e-9, "AC"),
    ("'x' * 100000", "x" * 100000, None, "AC"),
    ("b'\\xff'", "\xff", None, "WA"),
    ("__import__('fractions').Fraction(1, 2)", 0.5, None, "AC"),
    ("__import__('decimal').Decimal('0.1')", 0.1, None, "WA"),  # exact decimal 0.1 is not the float 0.1
]


@pytest.mark.parametrize("ret,expected,tol,verdict", FUNCTIONAL_VALUES,
                         ids=[f"{r}-{v}-{t}" for r, _, t, v in FUNCTIONAL_VALUES])
def test_functional_values_never_crash(ret, expected, tol, verdict):
    tests = {"type": "functional", "fn_name": "f", "float_tol": tol, "cases": [{"args": [], "expected": expected}]}
    r = code.run_tests(f"def f():\n    return {ret}", tests)
    assert (r.status, r.verdicts) == ("ok", [verdict]), r


def test_functional_objects_that_are_not_data_fail_cleanly():
    for src in ("class A:\n    pass\ndef f():\n    return A()", "def f():\n    return f",
                "def f():\n    x = []\n    x.append(x)\n    return x",
                "def f():\n    x = [0]\n    for _ in range(100000):\n        x = [x]\n    return x"):
        r = functional(src, 5)
        assert r.verdicts[0] in ("RE", "WA") and r.passed == 0, r


def test_stdout_of_any_bytes_is_a_verdict():
    for out in ("b'\\x00' * 100", "bytes(range(256)) * 1000", "b'9' * 5000 + b' x'", "b'1e99999'", "b'-0'"):
        r = code.run_tests(f"import sys\nsys.stdout.buffer.write({out})", {"type": "stdio", "float_tol": 1e-6,
                                                                          "cases": [{"input": "", "output": "1"}]})
        assert r.status == "ok" and r.verdicts == ["WA"], (out, r)


# ---- bad specs: one line naming the field, never an exception out of the reward -------------------
@pytest.mark.parametrize("tests,field", [
    ({"type": "unit"}, "type"),
    ({"cases": []}, "type"),
    ({"type": "stdio"}, "cases"),
    ({"type": "stdio", "cases": [{"input": "1"}]}, "cases"),
    ({"type": "stdio", "cases": [{"input": 1, "output": "1"}]}, "cases"),
    ({"type": "functional", "cases": [{"expected": 1}]}, "fn_name"),
    ({"type": "functional", "fn_name": "f", "cases": [{"args": 3, "expected": 1}]}, "cases"),
    ({"type": "stdio", "float_tol": "x", "cases": []}, "float_tol"),
    ("{not json", "tests"),
    (["a", "list"], "tests"),
])
def test_bad_specs_name_the_field(tests, field):
    r = code.run_tests("print(1)", tests)
    assert r.status == "invalid_tests" and r.passed == 0 and field in r.error and "\n" not in r.error, r


def test_code_reward_never_raises_and_scores_bad_rows_none(recwarn):
    good = {"type": "stdio", "cases": [{"input": "", "output": "1"}]}
    out = code.code_reward(["p"] * 4, ["```python\nprint(1)\n```"] * 4,
                           tests=[good, {"type": "bogus"}, "{broken json", {"type": "functional", "fn_name": "f",
                                                                              "cases": [{"expected": 1.5}]}])
    assert out[:3] == [1.0, None, None]
    assert out[3] == 0.0  # no function f: the program's failure, a verdict
    assert any("type" in str(w.message) for w in recwarn.list)


def test_tracebacks_show_nothing_of_the_host():
    here = str(Path(__file__).resolve().parents[1])
    for src in ("import json\njson.loads('{')", "from json import nope", "def f():\n    return 1 / 0\nf()",
                "import threading\nt = threading.Thread(target=lambda: 1 / 0)\nt.start(); t.join()\nprint(1)"):
        r = code.run_tests(src, {"type": "stdio", "cases": [{"input": "", "output": "2"}]})
        assert "solution.py" in r.stderr or "Error" in r.stderr, r
        for host in (here, "/root", "/home", "site-packages", "/work", "/tmp", "python3.11/"):
            assert host not in r.stderr, (host, r.stderr)


def test_empty_program_is_a_verdict_and_empty_tests_are_invalid():
    assert code.run_tests("", {"type": "stdio", "cases": [{"input": "", "output": "1"}]}).verdicts == ["WA"]
    r = code.run_tests("", ASSERT_TESTS)
    assert r.status == "ok" and r.verdicts == ["RE"] and "add" in r.stderr, r
    r = code.run_tests("def add(a, b):\n    return 0", {"type": "assert", "code": " \n", "entry_point": "add"})
    assert r.status == "invalid_tests" and "code" in r.error, r
