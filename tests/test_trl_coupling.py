"""The TRL coupling: the private hooks TracingGRPOTrainer overrides, the attributes it reads, and trace
fields that equal what TRL used in every advantage mode it accepts (the others are refused)."""

import math
import types
from collections import defaultdict

import pytest
import torch
from trl import GRPOTrainer

import rl_reason.train.trainer as trainer_module
from rl_reason.config import ConfigError
from rl_reason.traces.reader import read_traces
from rl_reason.train.run import load_train_recipe, train
from rl_reason.train.trainer import (
    TRLCouplingError,
    TracingGRPOTrainer,
    check_advantages,
    check_trl_attributes,
    check_trl_hooks,
)

# Two rewards whose values differ within a group, and that cannot judge one completion in four (groups
# are contiguous, of 4): that completion has no judged reward at all, so its reward is null.
USER_REWARDS = '''
def _texts(completions):
    return [c if isinstance(c, str) else c[-1]["content"] for c in completions]


def spread(completions, **kwargs):
    return [None if i % 4 == 3 else sum(map(ord, t)) % 7 / 6 for i, t in enumerate(_texts(completions))]


def parity(completions, **kwargs):
    return [None if i % 4 == 3 else float(sum(map(ord, t)) % 2) for i, t in enumerate(_texts(completions))]
'''


def test_the_hooks_match_the_installed_trl():
    check_trl_hooks()


def test_a_renamed_hook_is_named(monkeypatch):
    monkeypatch.delattr(GRPOTrainer, "_calculate_rewards")
    with pytest.raises(TRLCouplingError, match=r"^trl \S+: GRPOTrainer\._calculate_rewards no longer exists; "
                                               r"rl_reason/train/trainer\.py's trace hooks need updating$"):
        check_trl_hooks()


def test_a_changed_signature_is_named():
    class Dropped(GRPOTrainer):
        def _calculate_rewards(self, inputs, prompts, completions):
            pass

    class Added(GRPOTrainer):
        def _generate(self, prompts, images=None):
            pass

    with pytest.raises(TRLCouplingError, match=r"GRPOTrainer\._calculate_rewards\(\.\.\.\) no longer takes "
                                               r"completion_ids_list; rl_reason/train/trainer\.py"):
        check_trl_hooks(Dropped)
    with pytest.raises(TRLCouplingError, match=r"GRPOTrainer\._generate\(\.\.\.\) now takes \(self, prompts, images\)"):
        check_trl_hooks(Added)


def test_the_trainer_checks_its_hooks_before_loading_anything(monkeypatch):
    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", lambda self, inputs, mode: None)
    with pytest.raises(TRLCouplingError, match=r"_generate_and_score_completions\(\.\.\.\) now takes"):
        TracingGRPOTrainer(model="no-such-model")


def test_a_missing_or_reshaped_attribute_is_named():
    trainer = types.SimpleNamespace(
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)}, reward_weights=torch.ones(1),
        reward_func_names=["r"], num_generations=2, num_generations_eval=2, eos_token_ids=[0],
        multi_objective_aggregation="sum_then_normalize", scale_rewards="group", _tokenizer=None)
    check_trl_attributes(trainer)
    trainer._metrics["eval"] = {}
    with pytest.raises(TRLCouplingError, match=r"GRPOTrainer\._metrics\['eval'\] is no longer a defaultdict of lists"):
        check_trl_attributes(trainer)
    del trainer.scale_rewards
    with pytest.raises(TRLCouplingError, match=r"GRPOTrainer\.scale_rewards no longer exists"):
        check_trl_attributes(trainer)


def test_advantages_off_the_recorded_formula_fail_loudly():
    records = [{"reward": 1.0, "group_mean": 0.5, "advantage_scale": 0.5001},
               {"reward": None, "group_mean": 0.5, "advantage_scale": 0.5001}]
    check_advantages(records, torch.tensor([0.5 / 0.5001, 0.0]))
    with pytest.raises(TRLCouplingError, match=r"GRPOTrainer\._generate_and_score_completions computed advantages "
                                               r"that differ .* by up to 0\.5"):
        check_advantages(records, torch.tensor([0.5 / 0.5001, 0.5]))


@pytest.fixture
def run_recipe(tmp_path, tiny_model_dir, write_recipe, monkeypatch):
    """``run_recipe(**overrides)``: one step of 2 groups of 4 on ``spread`` (weight 0.5) and ``parity``."""
    (tmp_path / "coupling_rewards.py").write_text(USER_REWARDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return lambda **extra: write_recipe(
        tmp_path / "recipe.yaml", tiny_model_dir, tmp_path / "run", max_steps=1, per_device_train_batch_size=8,
        rewards=[{"name": "coupling_rewards:spread", "weight": 0.5, "role": "shaping"},
                 {"name": "coupling_rewards:parity"}], **extra)


@pytest.mark.parametrize("scale_rewards", ["group", "batch", "none"])
def test_trace_fields_are_what_trl_used(run_recipe, monkeypatch, scale_rewards):
    seen = []
    check = trainer_module.check_advantages

    def keep(records, advantages):  # what TRL returned, next to the records built from it
        seen.append((records, advantages.tolist()))
        check(records, advantages)

    monkeypatch.setattr(trainer_module, "check_advantages", keep)
    result = train(load_train_recipe(run_recipe(scale_rewards=scale_rewards)))
    records = list(read_traces(result.traces_dir))
    ((checked, trl_advantages),) = seen
    assert len(records) == 8 and [r["advantage"] for r in records] == trl_advantages  # TRL's own values

    def f32(x):
        return torch.tensor(math.nan if x is None else x, dtype=torch.float32)

    rewards = [r["reward"] for r in records if r["reward"] is not None]
    batch_std = torch.tensor(rewards).std().item()
    for r in records:
        group = [o["reward"] for o in records if o["group"] == r["group"] and o["reward"] is not None]
        assert r["group_mean"] == pytest.approx(sum(group) / len(group))
        assert r["group_std"] == pytest.approx(torch.tensor(group).std().item(), abs=1e-6)
        expected_scale = {"group": r["group_std"] + 1e-4, "batch": batch_std + 1e-4, "none": 1.0}[scale_rewards]
        assert r["advantage_scale"] == pytest.approx(expected_scale, rel=1e-5)
        # The schema's formula, in TRL's float32, gives TRL's advantage exactly.
        advantage = torch.nan_to_num((f32(r["reward"]) - f32(r["group_mean"])) / f32(r["advantage_scale"]), nan=0.0)
        assert advantage.item() == r["advantage"]
        if r["reward"] is None:  # no function judged it: no learning signal
            assert r["advantage"] == 0.0 and r["rewards"]["spread"] is None
    assert sum(r["reward"] is None for r in records) == 2 and any(r["advantage"] != 0 for r in records)
    (logged,) = [h for h in result.log_history if "reward" in h]
    assert logged["reward"] == pytest.approx(sum(rewards) / len(rewards), rel=1e-5)  # TRL's mean of `reward`
    if scale_rewards != "batch":  # the same question as TRL's (see rl_reason.train.health.zero_variance_groups)
        assert logged["health/zero_variance_groups"] == logged["frac_reward_zero_std"]


def test_a_changed_advantage_formula_stops_the_run(run_recipe, monkeypatch):
    score = GRPOTrainer._generate_and_score_completions

    def shifted(self, inputs):
        output = score(self, inputs)
        output["advantages"] = output["advantages"] + 0.25
        return output

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", shifted)
    with pytest.raises(TRLCouplingError, match=r"GRPOTrainer\._generate_and_score_completions computed advantages"):
        train(load_train_recipe(run_recipe()))


def test_normalize_then_sum_is_refused_in_one_line(run_recipe):
    recipe = run_recipe(multi_objective_aggregation="normalize_then_sum")
    with pytest.raises(ConfigError) as info:
        load_train_recipe(recipe)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"{recipe}: multi_objective_aggregation: 'normalize_then_sum' is not supported")

    from typer.testing import CliRunner

    from rl_reason.cli import app

    result = CliRunner().invoke(app, ["train", str(recipe)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"error: {info.value}"]
