"""Training: ``train()`` (run), TRL's GRPOTrainer with its trace hooks and the checks of its coupling to
TRL (trainer), rollout health metrics (health), W&B monitoring, the OUTPUT_DIR lock and the worker lifeline."""
