"""Verifiable rewards: pure scoring with sympy and the standard library.

Nothing here imports torch, TRL or the trainer. Every reward is a callable with TRL's
reward signature ``fn(prompts, completions, **columns) -> list[float | None]``, where
``None`` means "cannot judge this one", never 0.
"""
