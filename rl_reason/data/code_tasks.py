"""A procedural code task: one-line Python functions, each family with an edge case a sloppy teacher forgets.

Every problem asks for a function ``f`` whose constants come from the question, and carries functional
tests (the ``tests`` column the sandbox ``code`` reward reads). Reference programs are one line, so a
completion stays near 30 tokens. Each family has one systematic slip, the kind a hurried programmer makes:

* ``range_sum``: ``range(1,n)`` where ``1..n`` includes ``n``;
* ``count_between``: ``a<x<b`` where the question says inclusive;
* ``safe_div``: ``a//x`` without the ``x == 0`` case the question names.

Every problem's tests hit its slip, so a sloppy program never passes them all, while one that
copies the constants and handles the edge case always does.
"""

from __future__ import annotations

import json
import random

SYSTEM_PROMPT = "Answer with a Python function f."
FAMILIES = ("range_sum", "count_between", "safe_div")
EVAL_SEED_OFFSET = 10_000  # held-out problems come from a seed no training set uses (and are excluded from them)


def fence(program: str) -> str:
    """The completion shape the ``code`` reward reads: the program in a ```python block."""
    return f"```python\n{program}\n```"


def _range_sum(rng: random.Random) -> tuple[str, str, str, list]:
    a, b = rng.randint(2, 99), rng.randint(1, 99)
    question = f"f(n) = sum of x*{a}+{b} for x = 1..n"
    good = f"def f(n):return sum(x*{a}+{b} for x in range(1,n+1))"
    sloppy = f"def f(n):return sum(x*{a}+{b} for x in range(1,n))"  # drops the last term
    cases = [[n] for n in sorted(rng.sample(range(1, 10), 4))]  # n >= 1: the last term always counts
    return question, good, sloppy, [(args, sum(x * a + b for x in range(1, args[0] + 1))) for args in cases]


def _count_between(rng: random.Random) -> tuple[str, str, str, list]:
    a = rng.randint(0, 90)
    b = rng.randint(a + 2, min(a + 40, 99))
    question = f"f(xs) = how many x in xs are from {a} to {b} inclusive"
    good = f"def f(xs):return sum({a}<=x<={b} for x in xs)"
    sloppy = f"def f(xs):return sum({a}<x<{b} for x in xs)"  # reads "from a to b" as exclusive
    cases = []
    for _ in range(4):
        xs = [rng.randint(max(0, a - 5), b + 5) for _ in range(rng.randint(2, 5))]
        xs.insert(rng.randint(0, len(xs)), rng.choice([a, b]))  # an endpoint in every case
        cases.append([xs])
    return question, good, sloppy, [(args, sum(a <= x <= b for x in args[0])) for args in cases]


def _safe_div(rng: random.Random) -> tuple[str, str, str, list]:
    a, b = rng.randint(10, 99), rng.randint(0, 99)
    question = f"f(x) = {a}//x, or {b} when x is 0"
    good = f"def f(x):return {a}//x if x else {b}"
    sloppy = f"def f(x):return {a}//x"  # forgets x == 0: ZeroDivisionError
    cases = [[0]] + [[x] for x in rng.sample(range(1, 13), 3)]
    return question, good, sloppy, [(args, a // args[0] if args[0] else b) for args in cases]


_MAKERS = {"range_sum": _range_sum, "count_between": _count_between, "safe_div": _safe_div}


def make_problem(rng: random.Random, sloppy_rate: float = 0.0, families: tuple[str, ...] = FAMILIES) -> dict:
    """One problem; its ``solution`` is the sloppy program with probability ``sloppy_rate``, else the good one."""
    family = rng.choice(families)
    question, good, sloppy, cases = _MAKERS[family](rng)
    tests = {"type": "functional", "fn_name": "f",
             "cases": [{"args": args, "expected": expected} for args, expected in cases]}
    return {
        "question": question,
        "answer": good,  # the reference program (the trace schema's answer field)
        "solution": fence(sloppy if rng.random() < sloppy_rate else good),
        "tests": json.dumps(tests),  # a JSON string: one Arrow type for every family's arguments
        "source": f"code-{family}",
    }


def make_problems(n: int, seed: int, exclude: set[str] | None = None, sloppy_rate: float = 0.0,
                  families: tuple[str, ...] = FAMILIES) -> list[dict]:
    """``n`` distinct problems, deterministic in ``seed``; ``exclude`` holds questions kept out (a held-out set)."""
    rng = random.Random(seed)
    seen = set(exclude or ())
    rows = []
    while len(rows) < n:
        row = make_problem(rng, sloppy_rate, families)
        if row["question"] in seen:
            continue
        seen.add(row["question"])
        row["id"] = f"code-{seed}-{len(rows)}"
        rows.append(row)
    return rows


def corpus(n: int = 300, seed: int = 54321) -> list[str]:
    """Text to train the tiny tokenizer on (``build_tiny(extra_corpus=...)``), so code takes few tokens."""
    texts = [SYSTEM_PROMPT]
    for row in make_problems(n, seed=seed, sloppy_rate=0.5):
        texts += [row["question"], row["solution"], fence(row["answer"])]
    return texts
