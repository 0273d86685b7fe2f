"""Length rewards: DAPO's soft overlong punishment (Yu et al. 2025, eq. 13).

Zero up to ``max_completion_length - cache``, then a linear penalty down to -1 at the limit.
Length is counted in tokens from ``completion_ids`` when TRL passes them, else in characters.
"""

from __future__ import annotations

import functools

from rewards.text import completion_text


def overlong_penalty(length: int, max_completion_length: int, cache: int) -> float:
    if cache <= 0 or max_completion_length <= 0:
        raise ValueError("max_completion_length and cache must be positive")
    expected = max_completion_length - cache
    if length <= expected:
        return 0.0
    if length <= max_completion_length:
        return (expected - length) / cache
    return -1.0


def soft_overlong_punishment(prompts=None, completions=None, completion_ids=None, *, max_completion_length: int,
                             cache: int, **kwargs) -> list[float]:
    """The TRL reward; ``make_soft_overlong_punishment`` binds the two lengths."""
    if completion_ids is not None:
        lengths = [len(ids) for ids in completion_ids]
    else:
        lengths = [len(completion_text(c)) for c in completions]
    return [overlong_penalty(n, max_completion_length, cache) for n in lengths]


def make_soft_overlong_punishment(max_completion_length: int, cache: int):
    if not 0 < cache <= max_completion_length:
        raise ValueError(f"need 0 < cache <= max_completion_length, got cache={cache}, max={max_completion_length}")
    # a partial, not a closure: it pickles, and TRL still names it after soft_overlong_punishment
    return functools.partial(soft_overlong_punishment, max_completion_length=max_completion_length, cache=cache)
