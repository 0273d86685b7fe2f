"""A few real GRPO steps through TRL's GRPOTrainer on the tiny model, traces and all."""

import json
from collections import Counter

import yaml

from rl_reason.traces import read_traces
from rl_reason.train import load_train_recipe, train


def recipe_file(tmp_path, model_dir, **extra):
    data = {
        "output_dir": str(tmp_path / "run"),
        "model": {"name_or_path": str(model_dir)},
        "data": {"source": "addition", "num_train": 32, "min_digits": 1, "max_digits": 2},
        "rewards": [{"name": "math", "weight": 1.0}, {"name": "format", "weight": 0.5}],
        "num_generations": 4,
        "per_device_train_batch_size": 8,
        "max_completion_length": 12,
        "max_steps": 3,
        "logging_steps": 1,
        "learning_rate": 1e-3,
        "save_strategy": "no",
        "report_to": "none",
        "activation_checkpointing": False,
        **extra,
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_grpo_steps_write_every_completion_as_a_trace(tmp_path, tiny_model_dir):
    result = train(load_train_recipe(recipe_file(tmp_path, tiny_model_dir), ["run_name=t1"]))
    assert result.global_step == 3
    assert (result.output_dir / "model.safetensors").exists()
    records = list(read_traces(result.traces_dir))
    # 3 steps x 8 completions (2 prompts x 4 generations), every one of them.
    assert len(records) == 24
    assert Counter(r["step"] for r in records) == {0: 8, 1: 8, 2: 8}
    groups = Counter(r["group"] for r in records)
    assert len(groups) == 6 and set(groups.values()) == {4}
    for r in records:
        assert r["run_id"] == "t1" and r["rank"] == 0 and r["mode"] == "train"
        assert set(r["rewards"]) == {"accuracy_reward", "think_format_reward"}
        expected = r["rewards"]["accuracy_reward"] * 1.0 + r["rewards"]["think_format_reward"] * 0.5
        assert abs(r["reward"] - expected) < 1e-6
        assert r["prompt"][-1]["role"] == "user" and r["answer"] == str(sum(map(int, r["prompt"][-1]["content"].split("+"))))
        assert isinstance(r["completion"], str) and 0 < r["completion_tokens"] <= 12
        assert isinstance(r["truncated"], bool) and isinstance(r["advantage"], float)
    # Within a group, advantages are centred on the group mean (GRPO).
    by_group = {}
    for r in records:
        by_group.setdefault(r["group"], []).append(r["advantage"])
    assert all(abs(sum(v)) < 1e-3 for v in by_group.values())
    # The trainer's own metrics carry the per-function reward means.
    assert any("rewards/accuracy_reward/mean" in h for h in result.log_history)


def test_wandb_offline_run_is_written(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    result = train(load_train_recipe(recipe_file(tmp_path, tiny_model_dir, max_steps=1, report_to="wandb", run_name="wb")))
    assert result.global_step == 1
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    import wandb

    wandb.finish()
