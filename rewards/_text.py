"""Shared helpers for reward functions: completions arrive as strings or as chat messages."""

from __future__ import annotations

from typing import Any


def completion_text(completion: Any) -> str:
    """TRL passes a plain string (standard data) or ``[{"role": "assistant", "content": ...}]``."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(m.get("content") or "" for m in completion if isinstance(m, dict) and m.get("role") == "assistant")
    if isinstance(completion, dict):
        return completion.get("content") or ""
    raise TypeError(f"a completion must be a string or a list of chat messages, got {type(completion).__name__}")
