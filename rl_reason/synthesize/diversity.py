"""What a round's kept problems look like as a whole: the collapse guard's measurements.

Model collapse shows first as sameness: fewer distinct n-grams, problems ever closer to the pool,
one answer type, topics falling silent. Each round is measured on the problems it kept.
"""

from __future__ import annotations

import re
from collections import Counter

from rl_reason.synthesize.rouge import rouge_tokens

_INTEGER = re.compile(r"^[-+]?\d[\d,]*$")
_DECIMAL = re.compile(r"^[-+]?\d*\.\d+$")
_FRACTION = re.compile(r"^[-+]?(?:\d+\s*/\s*\d+|\\[dt]?frac\{[^{}]+\}\{[^{}]+\})$")


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct word n-grams over all n-grams of ``texts`` (1.0 when there are none)."""
    grams = [tuple(t[i : i + n]) for t in map(rouge_tokens, texts) for i in range(len(t) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def answer_type(answer: str | None) -> str:
    if answer is None:
        return "none"
    a = answer.strip().strip("$")
    if _INTEGER.match(a):
        return "integer"
    if _DECIMAL.match(a):
        return "decimal"
    if _FRACTION.match(a):
        return "fraction"
    if re.search(r"[a-zA-Z\\^]", a):
        return "expression"
    return "other"


def answer_mix(answers: list[str | None]) -> dict[str, float]:
    counts = Counter(answer_type(a) for a in answers)
    total = sum(counts.values())
    return {k: v / total for k, v in sorted(counts.items())} if total else {}


def collapsed(metrics: dict, min_distinct_2: float, max_mean_rouge_l: float) -> str | None:
    """Why a round counts as collapsing, or None. A round that kept nothing is not judged."""
    if not metrics.get("kept"):
        return None
    if metrics["distinct_2"] < min_distinct_2:
        return f"distinct-2 {metrics['distinct_2']:.3f} below the floor {min_distinct_2}"
    if metrics["mean_rouge_l"] > max_mean_rouge_l:
        return f"mean ROUGE-L to the pool {metrics['mean_rouge_l']:.3f} above the ceiling {max_mean_rouge_l}"
    return None
