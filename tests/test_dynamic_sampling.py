"""DAPO dynamic sampling and the difficulty curriculum: their pure parts, then real GRPO runs on the tiny model.

The rewards come from tests/sampling_rewards.py, whose flat groups are known in advance (a random tiny model
solves nothing, so the real verifier would make every group flat)."""

import json
import os
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rl_reason.traces.reader import read_traces
from rl_reason.train.curriculum import PassRateMemory, PromptStream, prompt_key
from rl_reason.train.dynamic_sampling import SURPLUS, ZERO_SPREAD, assemble, plan
from rl_reason.train.health import flat_groups

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = str(Path(sys.executable).parent / "accelerate")
EASY = "tests.sampling_rewards:easy_even"


def cli(*args):
    return [sys.executable, "-m", "rl_reason.cli", *map(str, args)]


# --- the pure parts -------------------------------------------------------------------------------


def test_flat_groups_match_the_zero_advantage_groups():
    totals = torch.tensor([1.0, 1, 1, 1, 0, 1, 0, 0, float("nan"), 2, float("nan"), float("nan"), 0.5, 0.5, 0.5,
                           0.5 + 1e-9])
    assert flat_groups(totals, 4).tolist() == [True, False, True, True]  # one judged is no spread; 1e-9 is none
    assert flat_groups(torch.tensor([0.0, 0.1]), 2).tolist() == [False]


def test_plan_fills_with_signal_in_order_then_masked_flat_groups():
    rounds = [torch.tensor([True, False, True]), torch.tensor([False, False, True])]
    p = plan(rounds, 2)
    assert p.picks == [(0, 1), (1, 0)] and not p.masked
    assert p.dropped == {(1, 1): SURPLUS, (0, 0): ZERO_SPREAD, (0, 2): ZERO_SPREAD, (1, 2): ZERO_SPREAD}
    short = plan([torch.tensor([True, False, True])], 3)  # the round limit left one signal group
    assert short.picks == [(0, 1), (0, 0), (0, 2)] and short.masked == {(0, 0), (0, 2)}
    assert short.dropped == {(0, 0): ZERO_SPREAD, (0, 2): ZERO_SPREAD}


def _round(rows: list[int], prompt_width: int, completion_width: int) -> dict:
    """A gathered round whose row r carries the value r in every real token (0 is padding)."""
    n = len(rows)
    value = torch.tensor(rows).unsqueeze(1)
    prompt_mask = torch.ones(n, prompt_width, dtype=torch.long)
    prompt_mask[:, 0] = 0  # left padding
    return {
        "prompt_ids": value.repeat(1, prompt_width) * prompt_mask,
        "prompt_mask": prompt_mask,
        "completion_ids": value.repeat(1, completion_width),
        "completion_mask": torch.ones(n, completion_width, dtype=torch.long),
        "old_per_token_logps": value.float().repeat(1, completion_width),
        "advantages": torch.tensor(rows, dtype=torch.float),
    }


@pytest.mark.parametrize("world", [1, 2, 3])
def test_assemble_gives_every_rank_an_equal_share_of_the_planned_rows(world):
    group = 2
    # Round 0 holds rows 100..111 (6 groups), round 1 rows 200..211, with wider prompts and completions.
    r0 = _round(list(range(100, 112)), 3, 4)
    r1 = _round(list(range(200, 212)), 5, 6)
    flat = [torch.tensor([True, False, True, False, True, True]), torch.tensor([True, False, False, True, False, True])]
    the_plan = plan(flat, 6)
    shares = [assemble([r0, r1], the_plan, group, rank, world, pad_token_id=0) for rank in range(world)]
    assert len({s["advantages"].numel() for s in shares}) == 1  # the same batch size on every rank
    rows = torch.cat([s["advantages"] for s in shares]).long().tolist()
    # Signal groups in generation order (round 0: 1, 3; round 1: 1, 2, 4), then one flat group, masked.
    assert rows == [102, 103, 106, 107, 202, 203, 204, 205, 208, 209, 100, 101]
    for s in shares:
        for i, row in enumerate(s["advantages"].long().tolist()):
            real = s["completion_ids"][i][s["completion_mask"][i].bool()]
            assert s["prompt_ids"][i][s["prompt_mask"][i].bool()].eq(row).all()
            assert s["old_per_token_logps"][i][s["completion_mask"][i].bool()].eq(row).all()
            if row in (100, 101):
                assert real.numel() == 0  # the filler adds nothing to the loss or the token count
            else:
                assert real.numel() == (4 if row < 200 else 6) and real.eq(row).all()


def test_assemble_regroups_vllm_importance_sampling_tensors():
    r0, r1 = _round(list(range(100, 104)), 2, 3), _round(list(range(200, 204)), 2, 5)
    for r, width in ((r0, 3), (r1, 5)):
        r["sampling_per_token_logps"] = r["old_per_token_logps"] + 0.5  # one value per token
        r["importance_sampling_ratio"] = r["advantages"].unsqueeze(1) * 10  # sequence level: one per row
    the_plan = plan([torch.tensor([True, False]), torch.tensor([False, True])], 2)
    out = assemble([r0, r1], the_plan, 2, 0, 1, pad_token_id=0, sequence_level={"importance_sampling_ratio"})
    assert out["advantages"].long().tolist() == [102, 103, 200, 201]
    assert out["importance_sampling_ratio"].shape == (4, 1)
    assert out["importance_sampling_ratio"].squeeze(1).tolist() == [1020, 1030, 2000, 2010]
    assert out["sampling_per_token_logps"].shape == out["completion_ids"].shape == (4, 5)
    assert out["sampling_per_token_logps"][0].tolist() == [102.5] * 3 + [0, 0]  # padded past its completion


def test_memory_skips_saturated_prompts_with_a_floor():
    memory = PassRateMemory(window=2, floor=0.0)
    for key, rates in {"solved": [1.0, 1.0], "never": [0.0, 0.0], "mixed": [1.0, 0.0], "once": [1.0],
                       "learning": [0.0, 0.5]}.items():
        for r in rates:
            memory.record(key, r)
    memory.record("unjudged", None)
    assert [memory.take(k) for k in ("solved", "never", "mixed", "once", "learning", "unjudged", "new")] == \
        [False, False, True, True, True, True, True]
    memory.record("solved", 0.75)  # the window slides: solved no more
    assert memory.take("solved")
    stats = memory.pool_stats(10)
    assert stats["pool/unseen"] == 0.5 and stats["pool/never_solved"] == 0.1 and stats["pool/in_between"] == 0.4
    assert stats["pool/mean_pass_rate"] == pytest.approx((0.75 + 0.0 + 0.0 + 1.0 + 0.5) / 5)

    floored = PassRateMemory(window=1, floor=0.1, seed=3)
    floored.record("p", 1.0)
    takes = [floored.take("p") for _ in range(2000)]
    assert 0.07 < sum(takes) / len(takes) < 0.13  # down-weighted to the floor, never starved
    again = PassRateMemory(window=1, floor=0.1, seed=3)
    again.load_state_dict(json.loads(json.dumps(floored.state_dict())))
    assert [again.take("p") for _ in range(50)] == [floored.take("p") for _ in range(50)]  # replays after resume


def test_prompt_stream_is_seeded_passes_and_resumes():
    stream = PromptStream(5, seed=1)
    first = stream.take(12)
    assert sorted(first[:5]) == sorted(first[5:10]) == list(range(5)) and first[:5] != first[5:10]
    resumed = PromptStream(5, seed=1)
    resumed.load_state_dict(stream.state_dict())
    assert resumed.take(7) == stream.take(7)
    assert prompt_key([{"role": "user", "content": "1+1"}]) != prompt_key([{"role": "user", "content": "1+2"}])


# --- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra, key", [
    ({"num_generations": 1, "per_device_train_batch_size": 4, "dynamic_sampling": {"enabled": True}},
     "num_generations"),
    ({"dynamic_sampling": {"enabled": True, "max_rounds": -1}}, "dynamic_sampling.max_rounds"),
    ({"curriculum": {"enabled": True, "window": 0}}, "curriculum.window"),
    ({"curriculum": {"enabled": True, "floor": 1.5}}, "curriculum.floor"),
    ({"dynamic_sampling": {"enabled": True, "max_round": 2}}, "dynamic_sampling.max_round"),
    ({"curriculum": {"enabled": True}, "rewards": [{"name": "format"}]}, "curriculum"),
])
def test_bad_sampling_keys_fail_in_one_line_before_any_model_loads(tmp_path, extra, key):
    import yaml

    recipe = tmp_path / "r.yaml"
    # The model path does not exist: reaching it would be a different error.
    recipe.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "out"), "model": {"name_or_path": "/nonexistent"},
                                      "report_to": "none", **extra}))
    proc = subprocess.run(cli("train", recipe), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and key in lines[0] and str(recipe) in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


# --- real runs ---------------------------------------------------------------------------------------


@pytest.fixture
def capture_batches(monkeypatch):
    """The training batches TRL receives from the rollout (after dynamic sampling), and the trainer."""
    from rl_reason.train.trainer import TracingGRPOTrainer

    seen = {"batches": []}
    rollout = TracingGRPOTrainer._generate_and_score_completions

    def wrapped(self, inputs):
        seen["trainer"] = self
        output = rollout(self, inputs)
        if self.model.training:
            seen["batches"].append({k: v.detach().clone() if torch.is_tensor(v) else v for k, v in output.items()})
        return output

    monkeypatch.setattr(TracingGRPOTrainer, "_generate_and_score_completions", wrapped)
    return seen


def _train(tmp_path, tiny_model_dir, write_recipe, name="run", **overrides):
    from rl_reason.train.run import load_train_recipe, train

    recipe = write_recipe(tmp_path / f"{name}.yaml", tiny_model_dir, tmp_path / name, **overrides)
    return train(load_train_recipe(recipe))


def test_dynamic_sampling_trains_only_groups_with_signal(tmp_path, tiny_model_dir, write_recipe, capture_batches):
    result = _train(tmp_path, tiny_model_dir, write_recipe, rewards=[{"name": EASY}], per_device_train_batch_size=16,
                    max_steps=3, dynamic_sampling={"enabled": True, "max_rounds": 4})
    for batch in capture_batches["batches"]:
        assert batch["advantages"].numel() == 16  # the configured batch, full
        # Every row has signal and counts: no zero-advantage (flat) group, no masked filler.
        assert (batch["advantages"].abs() > 1e-6).all()
        assert batch["completion_mask"].sum(dim=1).gt(0).all()
        assert int(batch["num_items_in_batch"]) == int(batch["completion_mask"].sum())
    records = list(read_traces(result.traces_dir))
    by_group = defaultdict(list)
    for r in records:
        by_group[r["group"]].append(r)
    for group in by_group.values():
        assert len(group) == 4 and len({r["dropped"] for r in group}) == 1
        spread = len({r["reward"] for r in group}) > 1
        assert group[0]["dropped"] in ((None, SURPLUS) if spread else (ZERO_SPREAD,))
    for step in range(3):
        trained = [r for r in records if r["step"] == step and r["dropped"] is None]
        assert len(trained) == 16  # what was trained is in the traces, and so is every dropped completion
    history = [h for h in result.log_history if "dynamic_sampling/extra_rounds" in h]
    assert len(history) == 3
    for h in history:
        generated = h["dynamic_sampling/generated_groups"]
        assert generated == 4 * (1 + h["dynamic_sampling/extra_rounds"]) and h["dynamic_sampling/kept_groups"] == 4
        assert h["efficiency/generated_tokens_per_trained_token"] > 1.0
        assert 0 < h["pool/unseen"] < 1
    assert sum(1 for r in records if r["dropped"] is not None) > 0
    assert len(records) == sum(h["dynamic_sampling/generated_groups"] * 4 for h in history)

    from rl_reason.report import write_report

    page = write_report(result.output_dir, tmp_path / "report.html").read_text()
    for title in ("Dynamic sampling and curriculum", "Generated tokens per trained token", "Prompt pool by pass rate"):
        assert f"<figcaption>{title}" in page
    dropped = sum(1 for r in records if r["dropped"] == ZERO_SPREAD)
    assert f"dropped by dynamic sampling (zero_spread)</td><td>{dropped}<" in page


@pytest.mark.parametrize("max_rounds", [0, 2])
def test_round_limit_holds_and_a_short_batch_trains_on_what_there_is(tmp_path, tiny_model_dir, write_recipe,
                                                                      capture_batches, max_rounds):
    result = _train(tmp_path, tiny_model_dir, write_recipe, rewards=[{"name": "tests.sampling_rewards:always_solved"}],
                    max_steps=2, dynamic_sampling={"enabled": True, "max_rounds": max_rounds})
    for batch in capture_batches["batches"]:
        assert batch["advantages"].numel() == 4
        assert int(batch["completion_mask"].sum()) == 0 and int(batch["num_items_in_batch"]) == 0
    history = [h for h in result.log_history if "dynamic_sampling/extra_rounds" in h]
    assert [h["dynamic_sampling/extra_rounds"] for h in history] == [max_rounds] * 2
    assert [h["dynamic_sampling/short_groups"] for h in history] == [1, 1]
    records = list(read_traces(result.traces_dir))
    assert len(records) == 2 * 4 * (1 + max_rounds) and {r["dropped"] for r in records} == {ZERO_SPREAD}


def test_curriculum_skips_solved_prompts_after_their_window(tmp_path, tiny_model_dir, write_recipe):
    # 8 prompts, 2 per step: every prompt is seen within 4 steps; easy ones (even first number) are solved.
    result = _train(tmp_path, tiny_model_dir, write_recipe, rewards=[{"name": EASY}], max_steps=10,
                    per_device_train_batch_size=8, data={"num_train": 8, "min_digits": 1, "max_digits": 2},
                    curriculum={"enabled": True, "window": 1, "floor": 0.0})
    from tests.sampling_rewards import _first_operand

    records = list(read_traces(result.traces_dir))
    easy = {prompt_key(r["prompt"]) for r in records if _first_operand(r["prompt"]) % 2 == 0}
    assert easy, "the procedural set has no easy prompt; change the data seed"
    first_seen = {}
    for r in records:
        first_seen.setdefault(prompt_key(r["prompt"]), r["step"])
    for r in records:
        key = prompt_key(r["prompt"])
        assert key not in easy or r["step"] == first_seen[key], "a solved prompt came back with floor 0"
    skipped = sum(h.get("curriculum/skipped", 0) for h in result.log_history)
    assert skipped > 0
    last = [h for h in result.log_history if "pool/always_solved" in h][-1]
    assert last["pool/always_solved"] > 0 and last["pool/unseen"] == 0


@pytest.mark.slow
def test_resume_is_exact_with_curriculum_and_dynamic_sampling(tmp_path, tiny_model_dir, write_recipe):
    recipe = write_recipe(
        tmp_path / "r.yaml", tiny_model_dir, tmp_path / "straight", run_name="resume", seed=5,
        rewards=[{"name": EASY}], per_device_train_batch_size=8, max_steps=8, save_strategy="steps", save_steps=4,
        data={"num_train": 8, "min_digits": 1, "max_digits": 2},
        dynamic_sampling={"enabled": True, "max_rounds": 2}, curriculum={"enabled": True, "window": 1, "floor": 0.5})
    straight = subprocess.run(cli("train", recipe), capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]
    # The same run cut at checkpoint-4: a copy of its directory as it stood then, resumed. Step 4 starts the
    # second epoch (8 prompts, 2 per step), so this also checks the data order continues across epochs:
    # TRL's RepeatSampler alone restarts a resumed run at epoch 0's order (rl_reason.train.trainer.EpochRepeatSampler).
    cut = tmp_path / "cut"
    final = {"checkpoint-8", "model.safetensors", "trainer_state.json"}  # what only the end of the run wrote
    shutil.copytree(tmp_path / "straight", cut,
                    ignore=lambda d, names: final & set(names) if Path(d) == tmp_path / "straight" else set())
    state = json.loads((cut / "checkpoint-4" / "sampling_state.json").read_text())
    assert state["pass_rates"]["rates"] and state["stream"]["drawn"] > 0  # there is something to restore
    resumed = subprocess.run(cli("train", recipe, f"output_dir={cut}", "--resume"), capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming at step 4" in resumed.stdout

    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(cut / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    fields = ("step", "group", "prompt", "completion", "reward", "advantage", "dropped")

    def rows(run):
        return sorted(json.dumps([r[f] for f in fields]) for r in read_traces(run / "traces"))

    assert rows(tmp_path / "straight") == rows(cut)

    def metrics(run):
        history = json.loads((run / "trainer_state.json").read_text())["log_history"]
        clock = ("time/", "throughput/", "reward_pool/", "step_time", "train_")
        return [{k: v for k, v in h.items() if not k.startswith(clock)} for h in history]

    straight_metrics = metrics(tmp_path / "straight")
    assert straight_metrics == metrics(cut)
    assert sum(h.get("curriculum/skipped", 0) for h in straight_metrics[4:]) > 0  # the memory mattered after the cut
    assert Counter(r["step"] for r in read_traces(cut / "traces") if r["dropped"] is None) == {s: 8 for s in range(8)}


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_two_ranks_of_different_difficulty_take_the_same_rounds(tmp_path, tiny_model_dir, write_recipe, stage):
    """Everything rank 0 scores is solved (flat); rank 1's groups have spread. With 6 rows per rank and groups
    of 4, the middle group is split across the ranks."""
    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, tmp_path / "run", run_name="ds",
                          rewards=[{"name": "tests.sampling_rewards:rank0_solved"}], per_device_train_batch_size=6,
                          max_steps=3, dynamic_sampling={"enabled": True, "max_rounds": 3})
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [ACCELERATE, "launch", "--config_file", str(REPO / "configs" / "accelerate" / f"{stage}.yaml"),
         "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--main_process_port", "29543" if stage == "zero2" else "29544",
         "-m", "rl_reason.cli", "train", str(recipe)],
        capture_output=True, text=True, timeout=600, env=env, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("done: 3 steps") == 2
    records = list(read_traces(tmp_path / "run" / "traces"))
    batches = defaultdict(set)  # (step, rank) -> generation rounds
    for r in records:
        batches[(r["step"], r["rank"])].add(r["group"].split("-")[1])
    for step in range(3):
        assert len(batches[(step, 0)]) == len(batches[(step, 1)]) >= 2  # the same rounds; rank 0's alone forced one
    groups = defaultdict(list)
    for r in records:
        groups[r["group"]].append(r)
    assert any(len({x["rank"] for x in g}) == 2 for g in groups.values())  # a group split across ranks
    for g in groups.values():
        assert len(g) == 4 and len({x["dropped"] for x in g}) == 1
        if g[0]["dropped"] is None:
            assert len({x["reward"] for x in g}) > 1
    assert {r["dropped"] for r in records if r["rank"] == 0 and len({x["rank"] for x in groups[r["group"]]}) == 1} \
        == {ZERO_SPREAD}
    for step in range(3):
        assert sum(1 for r in records if r["step"] == step and r["dropped"] is None) == 12  # 3 groups, all signal
