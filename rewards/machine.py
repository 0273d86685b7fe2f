"""This process's share of the machine, so that reward workers scale with the node, not with the ranks.

A training node runs one trainer process per GPU (``LOCAL_WORLD_SIZE``, set by torchrun and accelerate),
and each would otherwise size its reward pools to every core of the machine.
"""

from __future__ import annotations

import os


def cores() -> int:
    """The cores this process may run on (its affinity mask, which SLURM and containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def local_ranks() -> int:
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def share(cap: int | None = None) -> int:
    """Worker processes for one pool of this rank: its share of the cores, at least 1, at most ``cap``."""
    n = max(1, cores() // local_ranks())
    return min(n, cap) if cap else n
