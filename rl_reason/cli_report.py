"""CLI commands for monitoring (``rl-reason report``). Registered onto the app by ``rl_reason.cli``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Monitoring commands land here (issue: monitoring)."""
