"""The one W&B rule training and export share: offline when nobody configured an account."""

from __future__ import annotations

import os
from pathlib import Path


def default_mode() -> str | None:
    """``"offline"`` when no W&B account is configured (no ``WANDB_API_KEY``, no ``WANDB_MODE``, no
    ``~/.netrc``), so nothing tries the network and fails; else None: wandb's own settings decide."""
    if "WANDB_MODE" in os.environ or "WANDB_API_KEY" in os.environ or Path("~/.netrc").expanduser().exists():
        return None
    return "offline"
