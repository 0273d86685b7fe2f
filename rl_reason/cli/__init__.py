"""The ``rl-reason`` command line: each command parses its options, calls one stage and prints the outcome.

Commands live beside the stage they drive: ``synthesize``, ``train`` (train, distill, demo, launch), ``traces`` (export,
compact), ``sampling`` (sample, star, eval) and ``report``. Heavy imports happen inside commands, so
``--help`` is instant.
"""

from __future__ import annotations

import sys

from rl_reason.cli.app import app

# Registers the commands, in the order ``--help`` lists them (the pipeline's).
from rl_reason.cli import synthesize, train, traces, sampling, report  # noqa: F401


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
