"""rl_reason: an R1-style GRPO reasoning trainer on TRL, with verifiable rewards and trace export."""

__version__ = "0.1.0"
