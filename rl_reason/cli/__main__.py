"""``python -m rl_reason.cli``: what accelerate and torchrun start on each worker."""

from rl_reason.cli import main

main()
