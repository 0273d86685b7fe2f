"""A few real GRPO steps through TRL's GRPOTrainer on the tiny model, traces and all."""

import json
from collections import Counter

import pytest

from rl_reason.traces.reader import read_traces
from rl_reason.train.run import load_train_recipe, train


@pytest.fixture
def recipe_file(tmp_path, tiny_model_dir, write_recipe):
    """``recipe_file(**overrides)``: 3 steps of 8 completions (2 prompts' groups of 4)."""
    return lambda **extra: write_recipe(
        tmp_path / "recipe.yaml", tiny_model_dir, tmp_path / "run",
        data={"source": "addition", "num_train": 32, "min_digits": 1, "max_digits": 2},
        per_device_train_batch_size=8, activation_checkpointing=False, **extra)


def test_grpo_steps_write_every_completion_as_a_trace(recipe_file):
    result = train(load_train_recipe(recipe_file(), ["run_name=t1"]))
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
        question = r["prompt"][-1]
        assert question["role"] == "user" and r["answer"] == str(sum(map(int, question["content"].split("+"))))
        assert isinstance(r["completion"], str) and 0 < r["completion_tokens"] <= 12
        assert isinstance(r["truncated"], bool) and isinstance(r["advantage"], float)
    # Within a group, advantages are centred on the group mean (GRPO).
    by_group = {}
    for r in records:
        by_group.setdefault(r["group"], []).append(r["advantage"])
    assert all(abs(sum(v)) < 1e-3 for v in by_group.values())
    # The trainer's own metrics carry the per-function reward means.
    assert any("rewards/accuracy_reward/mean" in h for h in result.log_history)


def test_wandb_offline_run_is_written(tmp_path, recipe_file, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    result = train(load_train_recipe(recipe_file(max_steps=1, report_to="wandb", run_name="wb")))
    assert result.global_step == 1
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    import wandb

    wandb.finish()


USER_REWARDS = '''
def addition_check(completions, answer, **kwargs):
    """A user's own verifier: 1.0 when the reference answer appears in the completion."""
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [1.0 if a in t else 0.0 for t, a in zip(texts, answer)]
'''


def test_a_users_own_verifier_counts_as_a_verifier(tmp_path, recipe_file, monkeypatch):
    (tmp_path / "my_task_rewards.py").write_text(USER_REWARDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = train(load_train_recipe(recipe_file(max_steps=1, rewards=[{"name": "my_task_rewards:addition_check"}])))
    (logged,) = [h for h in result.log_history if "reward" in h]
    assert 0.0 <= logged["health/pass_rate"] <= 1.0 and "health/addition_check_unjudged" in logged
    assert "health/format_rate" not in logged  # no format reward in this recipe
    run_info = json.loads((result.traces_dir / "run.json").read_text())
    assert run_info["reward_roles"] == {"addition_check": "verifier"}


def test_health_and_recent_traces_without_trace_files(tmp_path, recipe_file, monkeypatch):
    import rl_reason.train.run as run_module

    seen = {}
    callbacks = run_module.monitoring_callbacks

    def keep_trainer(recipe, trainer):
        seen["trainer"] = trainer
        return callbacks(recipe, trainer)

    monkeypatch.setattr(run_module, "monitoring_callbacks", keep_trainer)
    result = train(load_train_recipe(recipe_file(max_steps=2, traces={"enabled": False})))
    logged = [h for h in result.log_history if "reward" in h]
    assert len(logged) == 2
    for h in logged:
        for key in ("health/pass_rate", "health/format_rate", "health/length_p90", "health/truncated_rate",
                    "health/zero_variance_groups"):
            assert key in h, key
        assert "traces/written" not in h  # a count of what was written: nothing was
    recent = list(seen["trainer"].recent_traces)
    assert len(recent) == 16 and {r["step"] for r in recent} == {0, 1}  # what the W&B traces table samples from
    assert result.traces_dir is None
    assert not list(result.output_dir.rglob("*.jsonl")) and not (result.output_dir / "traces").exists()
