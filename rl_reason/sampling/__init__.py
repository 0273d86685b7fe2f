"""Sampling: generator backends, rejection sampling, evaluation (pass@k) and STaR."""
