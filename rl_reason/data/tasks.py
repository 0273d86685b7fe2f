"""A procedural reasoning task: multi-digit addition worked column by column.

Problems have exact integer answers. Reference solutions put the column work inside
``<think>…</think>`` and the answer in ``\\boxed{}``, the shape R1-style rewards expect.
"""

from __future__ import annotations

import random

SYSTEM_PROMPT = "Think inside <think></think>, then answer in \\boxed{}."


def reference_solution(a: int, b: int, sloppy: bool = False) -> str:
    """Column addition from the right: one line per column, carries written out.

    ``sloppy=True`` writes the solution of a teacher who forgets every carry: each line adds
    0 instead of the carry, and the boxed answer follows from those lines (wrong whenever a
    carry was needed). The demo's warm-start data mixes such solutions in on purpose.
    """
    xs, ys = str(a)[::-1], str(b)[::-1]
    lines, carry, digits = [], 0, []
    columns = max(len(xs), len(ys))
    for i in range(columns):
        x = int(xs[i]) if i < len(xs) else 0
        y = int(ys[i]) if i < len(ys) else 0
        total = x + y + carry
        lines.append(f"{x}+{y}+{carry}={total}")
        digits.append(str(total % 10) if i < columns - 1 else str(total))
        carry = 0 if sloppy else total // 10
    answer = "".join(reversed(digits))
    return "<think>\n" + "\n".join(lines) + "\n</think>\n\\boxed{" + answer + "}"


def make_problem(rng: random.Random, min_digits: int, max_digits: int, sloppy_rate: float = 0.0) -> dict:
    def number() -> int:
        n = rng.randint(min_digits, max_digits)
        return rng.randint(10 ** (n - 1) if n > 1 else 0, 10**n - 1)

    a, b = number(), number()
    question = f"{a}+{b}"
    return {
        "question": question,
        "answer": str(a + b),
        "solution": reference_solution(a, b, sloppy=rng.random() < sloppy_rate),
        "source": "addition",
    }


def make_problems(
    n: int, seed: int, min_digits: int = 2, max_digits: int = 4, exclude: set[str] | None = None,
    sloppy_rate: float = 0.0,
) -> list[dict]:
    """``n`` distinct problems; ``exclude`` holds questions kept out (a held-out set).

    ``sloppy_rate`` is the fraction whose ``solution`` forgets carries (``answer`` is always exact).
    """
    rng = random.Random(seed)
    seen = set(exclude or ())
    rows = []
    while len(rows) < n:
        row = make_problem(rng, min_digits, max_digits, sloppy_rate)
        if row["question"] in seen:
            continue
        seen.add(row["question"])
        row["id"] = f"addition-{seed}-{len(rows)}"
        rows.append(row)
    return rows


def resolve_system_prompt(system_prompt: str | None) -> str:
    """The system prompt a recipe or option asks for: ``None`` is the task's default, ``""`` none at all."""
    return SYSTEM_PROMPT if system_prompt is None else system_prompt


def prompt_messages(question: str, system_prompt: str | None = SYSTEM_PROMPT) -> list[dict]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": question}]


def problem_prompts(problems: list[dict], system_prompt: str | None = None) -> list[list[dict]]:
    """The chat prompt of each problem row, with ``resolve_system_prompt(system_prompt)``."""
    system = resolve_system_prompt(system_prompt)
    return [prompt_messages(p["question"], system) for p in problems]
