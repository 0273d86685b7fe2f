"""Reward functions by name, with what every consumer needs to know about them, in one place.

Each entry is a factory taking the recipe's keyword arguments and returning a picklable callable
with TRL's reward signature, plus its **role** and the dataset **columns** it reads:

* ``verifier``: decides correctness (pass rate, ``export --correct-only``, rejection sampling);
  a record is correct when every verifier that scored it gave 1.0;
* ``format``: checks the shape of a completion (format rate);
* ``shaping``: anything else that adds to the reward (length penalties, ...).

Third-party rewards are reachable by dotted path (``pkg.module:func``). Their role is the recipe's
``role:`` when given, else the function's own ``role`` attribute, else ``verifier``: a reward a user
brings is most often the checker of their task.

Traces record rewards by function name (what TRL logs), so roles are also looked up by that name:
``roles_of`` answers for any list of names, from a run's recorded roles first.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

ROLES = ("verifier", "format", "shaping")
USER_DEFAULT_ROLE = "verifier"


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


@dataclass(frozen=True)
class RewardInfo:
    factory: Callable[..., Callable]
    role: str
    columns: tuple[str, ...]  # dataset columns it reads; checked before training starts
    func_name: str  # the name TRL logs its values under, and traces record them by


REWARDS: dict[str, RewardInfo] = {
    "math": RewardInfo(_math, "verifier", ("answer",), "accuracy_reward"),
    "code": RewardInfo(_code, "verifier", ("tests",), "code_reward"),
    "format": RewardInfo(_format, "format", (), "think_format_reward"),
    "length": RewardInfo(_length, "shaping", (), "soft_overlong_punishment"),
}
_BY_FUNC_NAME = {info.func_name: info for info in REWARDS.values()}


def _dotted(name: str):
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_reward(name: str, **kwargs) -> Callable:
    """A reward function by registry name or ``module:function`` dotted path."""
    if name in REWARDS:
        return REWARDS[name].factory(**kwargs)
    if ":" in name:
        func = _dotted(name)
        return func(**kwargs) if kwargs else func
    raise KeyError(f"unknown reward {name!r}; choose one of {sorted(REWARDS)} or give 'module:function'")


def required_columns(name: str) -> tuple[str, ...]:
    """Dataset columns the reward reads (a user's function declares its own as ``columns``)."""
    if name in REWARDS:
        return REWARDS[name].columns
    return tuple(getattr(_dotted(name), "columns", ())) if ":" in name else ()


def role_of(name: str, declared: str | None = None, func: Callable | None = None) -> str:
    """The role of a recipe's reward: ``declared`` (the recipe's ``role:``) wins, then the registry,
    then the function's ``role`` attribute, then ``verifier``. A role outside ``ROLES`` raises ValueError."""
    if declared is None and name in REWARDS:
        return REWARDS[name].role
    role = declared if declared is not None else getattr(func, "role", None)
    if role is None:
        return USER_DEFAULT_ROLE
    if role not in ROLES:  # a typo must not quietly turn a format check into a verifier
        raise ValueError(f"{name}: unknown reward role {role!r}; choose one of {list(ROLES)}")
    return role


def func_name(func: Callable) -> str:
    """The name TRL logs a reward function under (``trl.trainer.utils.get_callable_name``)."""
    while isinstance(func, functools.partial):
        func = func.func
    return getattr(func, "__name__", type(func).__name__)


def roles_of(func_names: Iterable[str], recorded: Mapping[str, str] | None = None) -> dict[str, str]:
    """Role per reward function name: a run's recorded roles (``run.json``) first, then the registry's
    built-in names. Names known to neither are ``shaping``: traces from before roles were recorded only
    had built-in verifiers."""
    recorded = recorded or {}
    out = {}
    for name in func_names:
        info = _BY_FUNC_NAME.get(name)
        out[name] = recorded.get(name) or (info.role if info else "shaping")
    return out


def names_with_role(func_names: Iterable[str], role: str, recorded: Mapping[str, str] | None = None) -> list[str]:
    return [n for n, r in roles_of(func_names, recorded).items() if r == role]
