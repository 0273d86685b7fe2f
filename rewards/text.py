"""Shared helpers for reward functions: completions arrive as strings or as chat messages."""

from __future__ import annotations

from typing import Any


def _content(content: Any) -> str:
    """A message's content: a string, or a list of parts (``{"type": "text", "text": ...}``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type", "text") == "text")
    return ""


def completion_text(completion: Any) -> str:
    """TRL passes a plain string (standard data) or ``[{"role": "assistant", "content": ...}]``."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(_content(m.get("content")) for m in completion
                       if isinstance(m, dict) and m.get("role") == "assistant")
    if isinstance(completion, dict):
        return _content(completion.get("content"))
    raise TypeError(f"a completion must be a string or a list of chat messages, got {type(completion).__name__}")
