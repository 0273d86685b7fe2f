"""Reward functions with a known spread, for the dynamic sampling and curriculum tests ("module:function").

A random tiny model solves nothing, so the real verifier's groups are all flat; these make flatness a
property of the prompt or of the rank, known in advance."""

import os
import re


def _parity(completion) -> float:
    text = completion if isinstance(completion, str) else "".join(m.get("content") or "" for m in completion)
    return float(len(text) % 2)


def _first_operand(prompt) -> int:
    text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
    return int(re.search(r"\d+", text).group())


def easy_even(prompts, completions, **kwargs):
    """Prompts whose first number is even are solved by every completion (a flat group of 1.0); the others
    score by completion length parity (a group with spread, almost always)."""
    return [1.0 if _first_operand(p) % 2 == 0 else _parity(c) for p, c in zip(prompts, completions, strict=True)]


def rank0_solved(prompts, completions, **kwargs):
    """Everything rank 0 scores is solved (flat); the other ranks score by parity."""
    if int(os.environ.get("RANK", "0")) == 0:
        return [1.0] * len(completions)
    return [_parity(c) for c in completions]


def always_solved(prompts, completions, **kwargs):
    return [1.0] * len(completions)
