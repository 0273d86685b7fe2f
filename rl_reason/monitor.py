"""Run monitoring: extra TrainerCallbacks for W&B and the local report (issue: monitoring)."""

from __future__ import annotations


def monitoring_callbacks(recipe) -> list:
    """Callbacks ``rl_reason.train`` adds to every GRPO run."""
    return []
