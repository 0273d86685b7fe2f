"""A procedural reasoning task: multi-digit addition worked column by column.

Problems have exact integer answers. Reference solutions put the column work inside
``<think>…</think>`` and the answer in ``\\boxed{}``, the shape R1-style rewards expect.
"""

from __future__ import annotations

import random

SYSTEM_PROMPT = "Think inside <think></think>, then answer in \\boxed{}."


def reference_solution(a: int, b: int) -> str:
    """Column addition from the right: one line per column, carries written out."""
    xs, ys = str(a)[::-1], str(b)[::-1]
    lines, carry = [], 0
    for i in range(max(len(xs), len(ys))):
        x = int(xs[i]) if i < len(xs) else 0
        y = int(ys[i]) if i < len(ys) else 0
        total = x + y + carry
        lines.append(f"{x}+{y}+{carry}={total}")
        carry = total // 10
    return "<think>\n" + "\n".join(lines) + "\n</think>\n\\boxed{" + str(a + b) + "}"


def make_problem(rng: random.Random, min_digits: int, max_digits: int) -> dict:
    def number() -> int:
        n = rng.randint(min_digits, max_digits)
        return rng.randint(10 ** (n - 1) if n > 1 else 0, 10**n - 1)

    a, b = number(), number()
    question = f"{a}+{b}"
    return {
        "question": question,
        "answer": str(a + b),
        "solution": reference_solution(a, b),
        "source": "addition",
    }


def make_problems(n: int, seed: int, min_digits: int = 2, max_digits: int = 4, exclude: set[str] | None = None) -> list[dict]:
    """``n`` distinct problems; ``exclude`` holds questions kept out (a held-out set)."""
    rng = random.Random(seed)
    seen = set(exclude or ())
    rows = []
    while len(rows) < n:
        row = make_problem(rng, min_digits, max_digits)
        if row["question"] in seen:
            continue
        seen.add(row["question"])
        row["id"] = f"addition-{seed}-{len(rows)}"
        rows.append(row)
    return rows


def prompt_messages(question: str, system_prompt: str | None = SYSTEM_PROMPT) -> list[dict]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": question}]
