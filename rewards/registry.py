"""Reward functions by name, so a YAML recipe can pick and weight them.

Each entry is a factory taking the recipe's keyword arguments and returning a callable with
TRL's reward signature. Third-party rewards are reachable by dotted path (``pkg.module:func``).
"""

from __future__ import annotations

import importlib
from typing import Callable


def _math(**kw):
    from rewards import math

    return math.make_accuracy_reward(**kw) if kw else math.accuracy_reward


def _code(**kw):
    from rewards import code

    return code.make_code_reward(**kw) if kw else code.code_reward


def _format(**kw):
    from rewards.format import make_format_reward

    return make_format_reward(**kw)


def _length(**kw):
    from rewards.length import make_soft_overlong_punishment

    return make_soft_overlong_punishment(**kw)


REWARDS: dict[str, Callable[..., Callable]] = {
    "math": _math,
    "code": _code,
    "format": _format,
    "length": _length,
}

# Dataset columns each reward reads; checked before training starts.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "math": ("answer",),
    "code": ("tests",),
    "format": (),
    "length": (),
}


def get_reward(name: str, **kwargs) -> Callable:
    """A reward function by registry name or ``module:function`` dotted path."""
    if name in REWARDS:
        return REWARDS[name](**kwargs)
    if ":" in name:
        module, _, attr = name.partition(":")
        func = getattr(importlib.import_module(module), attr)
        return func(**kwargs) if kwargs else func
    raise KeyError(f"unknown reward {name!r}; choose one of {sorted(REWARDS)} or give 'module:function'")
