"""Format reward: reasoning inside one well-formed ``<think>…</think>``, then exactly one final answer.

Unlike TRL's ``think_format_reward`` this accepts templates that prefill ``<think>`` in the prompt
(DeepSeek-R1-Distill, Qwen3 thinking; TRL #6966) when ``prefilled_think=True``.
"""

from __future__ import annotations

import functools
import re

from rewards.text import completion_text

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_TAG = re.compile(r"<answer>.*?</answer>", re.S)


def is_well_formed(text: str, prefilled_think: bool = False) -> bool:
    body = text.lstrip()
    if not prefilled_think:
        if not body.startswith("<think>"):
            return False
        body = body[len("<think>"):]
    if body.count("<think>") or body.count("</think>") != 1:
        return False
    reasoning, answer = body.split("</think>", 1)
    if not reasoning.strip():
        return False
    finals = len(_BOXED.findall(answer)) + len(_ANSWER_TAG.findall(answer))
    return finals == 1


def think_format_reward(prompts=None, completions=None, prefilled_think: bool = False, **kwargs) -> list[float]:
    """1.0 when the completion is ``<think>reasoning</think>`` followed by exactly one boxed or tagged answer."""
    return [1.0 if is_well_formed(completion_text(c), prefilled_think) else 0.0 for c in completions]


def make_format_reward(prefilled_think: bool = False):
    # a partial, not a closure: it pickles, and TRL still names it after think_format_reward
    return functools.partial(think_format_reward, prefilled_think=True) if prefilled_think else think_format_reward
