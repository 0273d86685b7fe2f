"""Export: traces -> a distillation dataset (filters, rows, card), and publishing it (Hub, W&B)."""
