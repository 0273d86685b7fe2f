"""rl_reason.synthesize.code_check: parsing a teacher's code problem, broken variants, and keeping only
problems whose tests pass the reference and fail stubs and mutants (runs the real sandbox)."""

from __future__ import annotations

import ast
import json
import re
import textwrap
from pathlib import Path

import pytest

from rl_reason.synthesize import code_check as cc
from rl_reason.synthesize.code_check import (CodeProblem, broken_variants, parse_code_problem, render_code_problem,
                                             verify_code_problem)

SEEDS = Path(__file__).resolve().parents[1] / "configs" / "synthesize" / "seeds_python.jsonl"

VOWELS = textwrap.dedent('''\
    def count_vowels(s):
        n = 0
        for ch in s.lower():
            if ch in "aeiou":
                n += 1
        return n
    ''')
VOWEL_TESTS = 'assert count_vowels("hello") == 2\nassert count_vowels("") == 0\nassert count_vowels("AEIOU") == 5\n'


def reply(statement: str, solution: str, tests: str, fence: str = "python") -> str:
    return (f"Problem: {statement}\nSolution:\n```{fence}\n{textwrap.dedent(solution).strip()}\n```\n"
            f"Tests:\n```{fence}\n{textwrap.dedent(tests).strip()}\n```\n")


def vowels(tests: str, reference: str = VOWELS, entry: str = "count_vowels") -> CodeProblem:
    return CodeProblem("Count the vowels.", entry, reference, textwrap.dedent(tests))


# ---- good problems are kept ---------------------------------------------------------------------------
def test_good_teacher_problem_parsed_and_kept():
    p = parse_code_problem(reply("Count the vowels in s.", VOWELS, VOWEL_TESTS))
    assert isinstance(p, CodeProblem), p
    assert p.entry_point == "count_vowels"
    assert p.question == "Count the vowels in s.\n\nWrite a Python function `count_vowels(s)`."
    assert p.spec == {"type": "assert", "code": p.tests, "entry_point": "count_vowels"}
    v = verify_code_problem(p)
    assert v.kept and v.reason == "ok", v
    assert v.reference_passed and v.stubs_total == v.stubs_killed == 8
    assert 0 < v.mutants_total <= cc.MAX_MUTANTS and v.mutants_killed >= v.mutants_total / 2


def test_humaneval_style_check_is_kept():
    tests = 'def check(candidate):\n    assert candidate("hello") == 2\n    assert candidate("") == 0\n' \
            '    assert candidate("AEIOU") == 5\n\ncheck(count_vowels)\n'
    p = parse_code_problem(reply("Count the vowels in s.", VOWELS, tests))
    assert isinstance(p, CodeProblem) and p.entry_point == "count_vowels", p
    assert verify_code_problem(p).kept


def test_helpers_usage_and_signature():
    text = """**Problem:** Given a list of integers and a threshold, return the sum of the even values above it.
**Solution:**
```py
import math

def _even(x: int) -> bool:
    return x % 2 == 0

def sum_even_above(xs: list[int], threshold: int = 0) -> int:
    return sum(x for x in xs if _even(x) and x > threshold)

assert sum_even_above([2, 4], 0) == 6  # a self-check in the solution: removed
print(sum_even_above([1, 2, 3, 4]))
if __name__ == "__main__":
    print(sum_even_above(list(map(int, input().split()))))
```
**Tests:**
```py
assert sum_even_above([1, 2, 3, 4]) == 6
assert sum_even_above([2, 4, 6], 3) == 10
assert sum_even_above([], 5) == 0
assert sum_even_above([-4, -2, 0], -3) == -2
assert sum_even_above([8], 8) == 0
```"""
    p = parse_code_problem(text)
    assert isinstance(p, CodeProblem), p
    assert p.entry_point == "sum_even_above"
    assert p.question.endswith(
        "\n\nWrite a Python function `sum_even_above(xs: list[int], threshold: int=0) -> int`.")
    assert "print" not in p.reference and "__main__" not in p.reference and "assert" not in p.reference
    assert "import math" in p.reference and "def _even" in p.reference
    v = verify_code_problem(p)
    assert v.kept, v


def test_self_check_in_solution_cannot_make_weak_tests_look_strong():
    """A top-level ``assert f(...)`` in the solution would fail every stub at import whatever the tests say;
    parse removes it, so the weak tests are judged on their own."""
    sol = VOWELS + '\nassert count_vowels("hello") == 2\nCHECK = count_vowels("abc")\n'
    p = parse_code_problem(reply("Count vowels.", sol, 'count_vowels("x")\nassert True\n'))
    assert isinstance(p, CodeProblem), p
    assert "assert" not in p.reference and "CHECK" not in p.reference
    assert verify_code_problem(p).reason == "tests accept a stub returning None"


def _seeds() -> list[dict]:
    return [json.loads(line) for line in SEEDS.read_text().splitlines() if line.strip()]


def test_seed_file_shape():
    rows = _seeds()
    assert len(rows) >= 30
    assert len({r["entry_point"] for r in rows}) == len(rows)
    for r in rows:
        assert set(r) == {"question", "entry_point", "reference", "tests", "source"} and r["source"] == "seed"
        # the seed is exactly what parsing its own teacher-format rendering gives (question idempotent)
        again = parse_code_problem(render_code_problem(CodeProblem(r["question"], r["entry_point"], r["reference"],
                                                                   r["tests"])))
        assert again == CodeProblem(r["question"], r["entry_point"], r["reference"], r["tests"]), r["entry_point"]


@pytest.mark.parametrize("row", _seeds(), ids=lambda r: r["entry_point"])
def test_every_seed_is_kept(row):
    p = CodeProblem(row["question"], row["entry_point"], row["reference"], row["tests"])
    v = verify_code_problem(p)
    assert v.kept, v


# ---- tests that game the check are dropped --------------------------------------------------------------
@pytest.mark.parametrize("tests, reason", [
    ('count_vowels("hello")\nassert True\n', "tests accept a stub returning None"),
    # failures swallowed
    ('try:\n    assert count_vowels("hello") == 2\n    assert count_vowels("a") == 1\nexcept Exception:\n    pass\n',
     "tests accept a stub returning None"),
    ('try:\n    assert count_vowels("hello") == 2\nexcept:\n    pass\n', "tests accept a stub returning None"),
    ('try:\n    assert count_vowels("hello") == 2\nexcept BaseException:\n    pass\n',
     "tests accept a stub returning None"),
    ('try:\n    assert count_vowels("hello") == 2\nexcept AssertionError:\n    pass\n',
     "tests accept a stub returning None"),
    ('try:\n    assert count_vowels("hello") == 2\nexcept (ValueError, TypeError):\n    pass\n',
     "tests accept a stub raising an exception"),
    ('assert count_vowels("hello") is not None or True\n', "tests accept a stub returning None"),
    # type only
    ('assert isinstance(count_vowels("hello"), int)\n', "tests accept a stub returning 0"),
    ('assert type(count_vowels("hello")) == type(count_vowels("x"))\n', "tests accept a stub returning None"),
    # the function's own output
    ('assert count_vowels("hello") == count_vowels("hello")\n', "tests accept a stub returning None"),
    ('r = count_vowels("ab")\nassert r == r\n', "tests accept a stub returning None"),
    # a different function does the asserting
    ('count_vowels("abc")\nassert len("abc") == 3\nassert sorted([2, 1]) == [1, 2]\n',
     "tests accept a stub returning None"),
    # bool == int: True passes "== 1"
    ('assert count_vowels("a") == 1\n', "tests accept a stub returning True"),
    ('assert count_vowels("xyz") == 0\n', "tests accept a stub returning 0"),
    ('assert count_vowels("aaa") == 3 or count_vowels("a") is None\n', "tests accept a stub returning None"),
    ('assert (count_vowels("hello") == 2, "a tuple is always true")\n', "tests accept a stub returning None"),
    ('import contextlib\nwith contextlib.suppress(Exception):\n    assert count_vowels("hello") == 2\n',
     "tests accept a stub returning None"),
    ('if 0:\n    assert count_vowels("hello") == 2\ncount_vowels("a")\n', "tests accept a stub returning None"),
])
def test_gaming_tests_dropped(tests, reason):
    v = verify_code_problem(vowels(tests))
    assert v.reference_passed and not v.kept, v
    assert v.reason == reason, v
    assert v.stubs_total == 8 and v.stubs_killed < 8


def test_tests_that_only_check_a_helper_are_dropped(monkeypatch):
    ref = 'def is_vowel(c):\n    return c in "aeiou"\n\n' + VOWELS.replace('ch in "aeiou"', "is_vowel(ch)")
    problem = vowels('assert is_vowel("a")\nassert not is_vowel("b")\ncount_vowels("x")\n', ref)
    assert verify_code_problem(problem).reason == "tests use is_vowel from the solution"
    # Without that check: stubs keep the reference's helpers, so such tests pass every stub (stubs of the
    # entry point alone would have failed them by the missing helper).
    with monkeypatch.context() as m:
        m.setattr(cc, "_test_problems", lambda *a: None)
        assert verify_code_problem(problem).reason == "tests accept a stub returning None"


def test_module_imports_of_the_solution_are_fine_in_tests():
    sol = "import math\n\ndef hypot2(a, b):\n    return math.sqrt(a * a + b * b)\n"
    tests = ("import math\nassert math.isclose(hypot2(3, 4), 5.0)\nassert math.isclose(hypot2(5, 12), 13.0)\n"
             "assert hypot2(0, 0) == 0.0\nassert math.isclose(hypot2(-1, 1), math.sqrt(2))\n")
    p = parse_code_problem(reply("Length of the hypotenuse.", sol, tests))
    assert isinstance(p, CodeProblem), p
    assert verify_code_problem(p).kept
    p2 = parse_code_problem(reply("Length of the hypotenuse.", sol, tests.replace("import math\n", "", 1)))
    assert isinstance(p2, CodeProblem), p2  # the judge imports math for ``math.isclose`` by itself
    assert verify_code_problem(p2).kept


def test_tests_that_kill_stubs_but_no_mutant():
    ref = "def add(a, b):\n    return a + b\n"
    tests = "r = add(2, 3)\nassert type(r) is int and r not in (0, 1, 2)\n"  # every stub fails, a - b = -1 passes
    v = verify_code_problem(CodeProblem("Add.", "add", ref, tests))
    assert (v.kept, v.reason, v.stubs_killed, v.stubs_total) == (False, "tests kill no mutant", 8, 8), v
    assert v.mutants_total >= 1 and v.mutants_killed == 0


def test_weak_tests_below_the_kill_rate():
    ref = textwrap.dedent("""\
        def median(nums):
            s = sorted(nums)
            mid = len(s) // 2
            if len(s) % 2 == 1:
                return s[mid]
            return (s[mid - 1] + s[mid]) / 2
        """)
    v = verify_code_problem(CodeProblem("Median.", "median", ref, "assert median([3, 1, 2]) == 2\n"))
    assert not v.kept and v.reason.startswith("tests kill only ") and v.stubs_killed == v.stubs_total, v
    assert 0 < v.mutants_killed < v.mutants_total / 2
    assert verify_code_problem(CodeProblem("Median.", "median", ref, "assert median([3, 1, 2]) == 2\n"),
                               min_kill_rate=0.3).kept  # the threshold is what decides


def test_reference_failing_its_tests_is_dropped():
    v = verify_code_problem(vowels('assert count_vowels("hello") == 3\n'))
    assert (v.kept, v.reason, v.reference_passed, v.stubs_total, v.mutants_total) == (
        False, "reference fails its tests", False, 0, 0)
    slow = "def spin(n):\n    while True:\n        n += 1\n"
    assert verify_code_problem(CodeProblem("x", "spin", slow, "assert spin(1) == 2\n"), cpu_s=1).reason == \
        "reference fails its tests"


@pytest.mark.parametrize("tests, reason", [
    ('def count_vowels(s):\n    return 0\nassert count_vowels("hello") == 0\n', "tests redefine count_vowels"),
    ('count_vowels = lambda s: 1\nassert count_vowels("a") == 1\n', "tests redefine count_vowels"),
    ('from os.path import join as count_vowels\nassert count_vowels("a") == "a"\n', "tests redefine count_vowels"),
    ('print(count_vowels("hello"))\n', "tests contain no assert"),
    ('assert count_vowels("hello") == 2\nimport sys\nsys.exit(0)\n', "tests exit early"),
    ('count_vowels("a")\nraise SystemExit\nassert False\n', "tests exit early"),
    ('import os\ncount_vowels("a")\nos._exit(0)\nassert False\n', "tests exit early"),
    ('count_vowels("a")\nexit()\nassert False\n', "tests exit early"),
    ('def test_a():\n    assert count_vowels("hello") == 2\n', "tests define test functions that nothing calls"),
    ('assert len("abc") == 3\n', "tests never call count_vowels"),
    ('import sys\nassert count_vowels("a") == 1 and "n += 1" in str(sys._getframe().f_back)\n',
     "tests use introspection: _getframe, f_back"),
    ('assert eval("count_vowels(\'a\')") == 1\nassert count_vowels("e") == 1\n', "tests use introspection: eval"),
    ('import inspect\nassert count_vowels("a") == 1\n', "tests use introspection: inspect"),
    ('from gc import get_objects\nassert count_vowels("a") == 1\n', "tests use introspection: gc"),
])
def test_static_rejections(tests, reason):
    assert verify_code_problem(vowels(tests)).reason == reason
    sol_text = reply("Count vowels.", VOWELS, tests)
    parsed = parse_code_problem(sol_text)
    assert parsed == (reason if "never call" not in reason else "tests never call a solution function")


@pytest.mark.parametrize("tests, reason", [
    ('def count_vowels(s):\n    return 0\nassert count_vowels("hello") == 0\n', "tests accept a stub returning None"),
    ('print(count_vowels("hello"))\n', "tests accept a stub returning None"),
    ('def test_a():\n    assert count_vowels("hello") == 2\n', "tests accept a stub returning None"),
    # the harness judges an early exit of the tests as a failure (RE): the reference fails
    ('assert count_vowels("hello") == 2\nimport sys\nsys.exit(0)\n', "reference fails its tests"),
    ('count_vowels("a")\nraise SystemExit(0)\n', "reference fails its tests"),
    ('count_vowels("a")\nexit()\n', "reference fails its tests"),
    ('count_vowels("a")\ngetattr(__import__("sys"), "ex" + "it")(0)\n', "reference fails its tests"),
    # os._exit kills the judge before it answers: the harness reports a sandbox error, never a pass
    ('import os\ncount_vowels("a")\nos._exit(0)\n', "sandbox error: "),
    ('count_vowels("a")\ngetattr(__import__("os"), "_ex" + "it")(0)\n', "sandbox error: "),
])
def test_what_the_static_checks_catch_is_dropped_by_the_sandbox_too(monkeypatch, tests, reason):
    """Defence in depth: without the text checks, the runs alone still drop these tests."""
    with monkeypatch.context() as m:
        m.setattr(cc, "_test_problems", lambda *a: None)
        v = verify_code_problem(vowels(tests))
    assert not v.kept and v.reason.startswith(reason), v
    assert verify_code_problem(vowels(VOWEL_TESTS)).kept  # the sandbox recovers after a dead judge


def test_tests_grading_the_source_text_need_the_introspection_check(monkeypatch):
    """The judge's frames hold the program's source: tests can demand the reference's exact text, which every
    stub and mutant fails and no policy could match. Only the text check drops them."""
    grade = ("import sys\ncount_vowels('a')\nfr, src = sys._getframe(), None\nwhile fr is not None:\n"
             "    for v in list(fr.f_locals.values()):\n"
             "        if isinstance(v, dict) and isinstance(v.get('source'), str):\n            src = v['source']\n"
             f"    fr = fr.f_back\nassert src == {VOWELS!r}\n")
    assert verify_code_problem(vowels(grade)).reason.startswith("tests use introspection: ")
    with monkeypatch.context() as m:
        m.setattr(cc, "_test_problems", lambda *a: None)
        assert verify_code_problem(vowels(grade)).kept  # the hole the check closes


def test_legit_tests_using_re_compile_are_kept():
    tests = 'import re\nPAT = re.compile(r"\\d+")\nassert PAT.fullmatch(str(count_vowels("hello")))\n' + VOWEL_TESTS
    assert verify_code_problem(vowels(tests)).kept


def test_reference_that_runs_the_entry_point_at_import_is_dropped():
    ref = VOWELS + 'assert count_vowels("hello") == 2\n'
    assert verify_code_problem(vowels('count_vowels("x")\nassert True\n', ref)).reason == \
        "reference runs count_vowels at import"


def test_sandbox_error_and_invalid_tests_are_never_kept(monkeypatch):
    from rewards import code

    v = verify_code_problem(vowels('assert count_vowels("a") == 1\nreturn 5\n'))  # parses, does not compile
    assert not v.kept and v.reason.startswith("invalid tests: "), v
    with monkeypatch.context() as m:
        m.setattr(code, "run_tests", lambda *a, **k: code.RunResult(0, 1, status="sandbox_error", error="boom"))
        v = verify_code_problem(vowels(VOWEL_TESTS))
    assert (v.kept, v.reason) == (False, "sandbox error: boom")
    real = code.run_tests
    calls = []

    def flaky(source, *a, **k):  # the reference and the stubs judged, one mutant not
        calls.append(source)
        if len(calls) == 12:
            return code.RunResult(0, 1, status="sandbox_error", error="lost")
        return real(source, *a, **k)
    with monkeypatch.context() as m:
        m.setattr(code, "run_tests", flaky)
        v = verify_code_problem(vowels(VOWEL_TESTS), workers=1)
    assert (v.kept, v.reason) == (False, "sandbox error: lost")
    assert v.stubs_total == 8 and v.mutants_total == len(calls) - 1 - 8 - 1  # the unjudged run counted nowhere


# ---- parsing rejects malformed replies -----------------------------------------------------------------
GOOD_SOL, GOOD_TESTS = VOWELS, VOWEL_TESTS


@pytest.mark.parametrize("text, reason", [
    ("", "no Problem: section"),
    ("Count vowels.\n```python\ndef f(s):\n    return 1\n```", "no Problem: section"),
    ("Problem: Count vowels.\n", "no Solution: section after the problem"),
    (f"Problem: x\nSolution:\n```python\n{GOOD_SOL}```\n", "no Tests: section after the solution"),
    (f"Problem:\nSolution:\n```python\n{GOOD_SOL}```\nTests:\n```python\n{GOOD_TESTS}```", "empty problem statement"),
    (f"Problem: x\nSolution:\n{GOOD_SOL}\nTests:\n```python\n{GOOD_TESTS}```", "no fenced solution code"),
    (f"Problem: x\nSolution:\n```python\n{GOOD_SOL}```\nTests:\n{GOOD_TESTS}", "no fenced test code"),
    (f"Problem: x\nSolution:\n```text\n{GOOD_SOL}```\nTests:\n```python\n{GOOD_TESTS}```", "no fenced solution code"),
    (reply("x", "def count_vowels(s)\n    return 1", GOOD_TESTS), "solution does not parse: SyntaxError"),
    (reply("x", GOOD_SOL, "assert count_vowels('a' == 1"), "tests do not parse: SyntaxError"),
    (reply("x", "count_vowels = lambda s: 1", GOOD_TESTS), "solution has no top-level function"),
    (reply("x", "class A:\n    def count_vowels(self, s):\n        return 1", GOOD_TESTS),
     "solution has no top-level function"),
    (reply("x", GOOD_SOL, "assert len('a') == 1"), "tests never call a solution function"),
    (reply("x", GOOD_SOL + "\ndef other(s):\n    return s\n", GOOD_TESTS + "assert other(1) == 1\n"),
     "entry point ambiguous: tests call count_vowels, other"),
    (reply("x", GOOD_SOL + "\n" + GOOD_SOL, GOOD_TESTS), "solution defines count_vowels twice"),
    (reply("x", "VOWELS = 'aeiou'\n" + GOOD_SOL, GOOD_TESTS + "assert count_vowels(VOWELS) == 5\n"),
     "tests use VOWELS from the solution"),
    (reply("x", "class Box:\n    pass\n" + GOOD_SOL, GOOD_TESTS + "assert count_vowels(Box) == 0\n"),
     "tests use Box from the solution"),
    (reply("x", "from math import isclose\n" + GOOD_SOL, GOOD_TESTS + "assert isclose(count_vowels('a'), 1)\n"),
     "tests use isclose from the solution"),
    (reply("x", "def max(a, b):\n    return a if a > b else b", "assert max(1, 2) == 2"),
     "entry point max shadows a builtin"),
    (reply("x", "async def count_vowels(s):\n    return 1", GOOD_TESTS), "entry point count_vowels is async"),
])
def test_parse_rejects(text, reason):
    got = parse_code_problem(text)
    assert isinstance(got, str) and got.startswith(reason), got


def test_parse_is_deterministic_and_idempotent():
    text = reply("Count the vowels.", VOWELS, VOWEL_TESTS)
    p = parse_code_problem(text)
    assert p == parse_code_problem(text)
    assert parse_code_problem(render_code_problem(p)) == p  # the signature sentence is not added twice


# ---- broken variants -------------------------------------------------------------------------------------
REFS = [
    (VOWELS, "count_vowels"),
    ("def add(a, b):\n    return a + b\n", "add"),
    ("def noargs():\n    return 42\n", "noargs"),
    ("def star(*xs):\n    return sum(xs)\n", "star"),
    ('def _h(x):\n    return x * 2\n\ndef f(xs):\n    """doc"""\n    out = []\n    for x in xs:\n'
     "        if x > 0 and not x % 3 == 0:\n            out.append(_h(x) - 1)\n        elif x == -1:\n"
     "            break\n        else:\n            continue\n    return out\n", "f"),
]


@pytest.mark.parametrize("ref, entry", REFS)
def test_broken_variants_valid_distinct_and_different(ref, entry):
    variants = broken_variants(ref, entry)
    assert variants == broken_variants(ref, entry)  # deterministic
    labels, sources = zip(*variants)
    assert len(set(sources)) == len(sources) and len(set(labels)) == len(labels)
    baseline = ast.unparse(ast.parse(ref)) + "\n"
    assert baseline not in sources
    for src in sources:
        tree = ast.parse(src)
        compile(tree, "<variant>", "exec")
        assert entry in cc._top_functions(tree)
    stub_labels = [lab for lab in labels if lab.startswith("returning ") or lab == "raising an exception"]
    assert list(labels[:len(stub_labels)]) == stub_labels  # stubs first
    assert {"returning None", "returning 0", "returning ''", "returning []", "returning False",
            "returning True", "raising an exception"} <= set(stub_labels)
    assert len(labels) - len(stub_labels) <= cc.MAX_MUTANTS


def test_stubs_keep_helpers_and_mutants_cover_the_operators():
    ref = REFS[-1][0]
    variants = dict(broken_variants(ref, "f", max_mutants=100))
    assert "def _h(x)" in variants["returning None"] and "return xs" in variants["returning its first argument"]
    mutants = [lab for lab in variants if not lab.startswith(("returning ", "raising "))]
    for op in ("Gt -> GtE", "And -> Or", "Not removed", "Mult -> FloorDiv", "Sub -> Add", "Eq -> NotEq",
               "1 -> 2", "3 -> 2", "Break -> Continue", "Continue -> Break", "return None", "USub removed"):
        assert any(lab.startswith(op) for lab in mutants), (op, mutants)
    few = broken_variants(ref, "f", max_mutants=5)
    assert len(few) - len(cc._stubs(ref, "f")) == 5
    lines = [int(re.search(r"line (\d+)", lab).group(1)) for lab, _ in few[len(cc._stubs(ref, "f")):]]
    assert lines == sorted(lines) and lines[-1] - lines[0] >= 5  # spread over the code, in reading order
    assert "returning its first argument" not in dict(broken_variants("def g():\n    return 1\n", "g"))
    assert "return xs[0]" in dict(broken_variants(REFS[3][0], "star"))["returning its first argument"]
    with pytest.raises(ValueError):
        broken_variants(ref, "missing")


def test_one_line_entry_point_return_none_mutant_deduplicated():
    labels = [lab for lab, _ in broken_variants("def add(a, b):\n    return a + b\n", "add")]
    assert not any(lab.startswith("return None") for lab in labels)


def test_section_markers_inside_code_are_not_sections():
    sol = "# Tests: below\ndef count_vowels(s):\n    # Solution: count\n" + VOWELS.split("\n", 1)[1]
    p = parse_code_problem(reply("Count vowels.", sol, VOWEL_TESTS))
    assert isinstance(p, CodeProblem) and p.entry_point == "count_vowels" and "n += 1" in p.reference, p


def test_mutant_labels_unique_on_one_line():
    variants = broken_variants("def f(x):\n    return x[1] + x[1:1] + [1]\n", "f", max_mutants=100)
    labels = [lab for lab, _ in variants]
    assert len(set(labels)) == len(labels) and any(lab.endswith(" #2") for lab in labels), labels
