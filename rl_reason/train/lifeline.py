"""Workers die with their launcher.

torchrun starts every worker in a session of its own, so a kill of the launcher's process group
(``kill -9 -PGID``, a scheduler ending a job step, a closed terminal) never reaches them, and
orphaned workers go on training and writing OUTPUT_DIR under whatever runs next. A worker started
by a launcher therefore watches its parent: when the parent is gone (the worker was re-parented),
it kills its own process group, itself and the helpers it started (reward pools) included.

Polling ``getppid`` rather than ``PR_SET_PDEATHSIG``: the death signal follows the parent
*thread* that forked, and a launcher may spawn workers from a thread that ends before it does.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

POLL_S = 0.5


def _started_by_launcher(parent: int) -> bool:
    """torchrun (and accelerate's multi-process launchers) set LOCAL_RANK; accelerate's one-process
    launcher does not, but is our parent. A run started from a shell (``nohup rl-reason train &``)
    is neither, and outlives its shell as the user meant."""
    if "LOCAL_RANK" in os.environ:
        return True
    try:
        with open(f"/proc/{parent}/cmdline", "rb") as f:
            return b"accelerate" in f.read()
    except OSError:
        return False


def follow_launcher(poll_s: float = POLL_S) -> bool:
    """Start the watch when this process was started by a launcher; True if started."""
    parent = os.getppid()
    if not _started_by_launcher(parent):
        return False

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        print(f"rank {os.environ.get('RANK', '?')}: the launcher (pid {parent}) is gone; stopping",
              file=sys.stderr, flush=True)
        if os.getpgrp() == os.getpid():  # our own group: our children go with us
            os.killpg(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="follow-launcher", daemon=True).start()
    return True
