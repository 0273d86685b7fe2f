"""Training: ``train()`` (run), TRL's GRPOTrainer with its trace and health hooks (trainer),
W&B monitoring, the OUTPUT_DIR lock and the worker lifeline."""
