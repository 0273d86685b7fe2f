"""The code demo: its procedural problems (fast, judged by the real sandbox) and the pipeline end to end (--quick)."""

import json
import subprocess
import sys

import pytest

from rl_reason.data.code_tasks import EVAL_SEED_OFFSET, FAMILIES, SYSTEM_PROMPT, corpus, fence, make_problems


def test_problems_are_deterministic_by_seed_and_distinct():
    a, b = make_problems(200, seed=3, sloppy_rate=0.5), make_problems(200, seed=3, sloppy_rate=0.5)
    assert a == b
    assert [p["question"] for p in make_problems(200, seed=4)] != [p["question"] for p in a]
    assert len({p["question"] for p in a}) == 200
    assert {p["source"] for p in a} == {f"code-{f}" for f in FAMILIES}


def test_heldout_problems_are_disjoint_from_every_training_set():
    # The demo's held-out set, and the sets it trains on (warm start, GRPO, rejection sampling), for two seeds.
    for seed in (0, 1):
        held = {p["question"] for p in make_problems(300, seed=seed + EVAL_SEED_OFFSET)}
        for offset, n in ((1, 8000), (0, 4000), (2, 2000)):
            train = make_problems(n, seed=seed + offset, exclude=held)
            assert len(train) == n and not held & {p["question"] for p in train}


def test_sloppy_rate_mixes_the_teachers_programs():
    rows = make_problems(1000, seed=0, sloppy_rate=0.65)
    good = sum(r["solution"] == fence(r["answer"]) for r in rows)
    assert 0.25 < good / len(rows) < 0.45  # about 35% careful, the rest the systematic slip
    assert all(r["solution"] == fence(r["answer"]) for r in make_problems(100, seed=0))


def test_reference_passes_and_sloppy_fails_in_the_sandbox():
    from rewards.code import run_tests
    from rl_reason.demo_code import passes

    rows = make_problems(60, seed=5, sloppy_rate=1.0)
    for r in rows:
        good = run_tests(r["answer"], r["tests"], stop_on_first_failure=False)
        assert good.status == "ok" and good.passed == good.total == 4, (r["question"], good)
        sloppy = run_tests(r["solution"][len("```python\n"):-len("\n```")], r["tests"], stop_on_first_failure=False)
        assert sloppy.status == "ok" and sloppy.passed < sloppy.total, (r["question"], sloppy)
    # The demo's evaluator: the last ```python block, every test, from a completion's text.
    assert passes(rows, [fence(r["answer"]) for r in rows]) == [1.0] * len(rows)
    assert passes(rows, [r["solution"] for r in rows]) == [0.0] * len(rows)
    assert passes(rows[:2], ["no code here", fence("def f(*a):return 0")]) == [0.0, 0.0]


def test_code_corpus_shortens_programs_and_leaves_the_default_tokenizer_alone():
    from rl_reason.data.tiny import build_tokenizer

    default, code = build_tokenizer(), build_tokenizer(400, corpus())
    assert default.get_vocab() == build_tokenizer(300, None).get_vocab()
    program = make_problems(1, seed=0)[0]["solution"]
    assert len(code(program)["input_ids"]) < 0.7 * len(default(program)["input_ids"])
    ids = code(program, add_special_tokens=False)["input_ids"]
    assert code.decode(ids, skip_special_tokens=True) == program


@pytest.mark.slow
def test_quick_code_demo_runs_every_stage(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "rl_reason.cli", "demo", "--task", "code", "--output", str(out), "--quick"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "code" and summary["quick"]
    for key in ["warm_start_accuracy", "policy_accuracy", "student_base_accuracy", "student_accuracy"]:
        assert 0.0 <= summary[key] <= 1.0
    assert set(summary["by_family"]["warm_start"]) == {"all", *(f"code-{f}" for f in FAMILIES)}
    assert summary["grpo_traces"] == summary["grpo_steps"] * 64 > 0
    assert summary["traces"] == summary["grpo_traces"] + summary["sampled_traces"]
    assert 0 <= summary["exported"] <= summary["traces"]
    assert set(summary["stage_seconds"]) == {"warm_start", "grpo", "rejection_sampling", "export", "distill"}
    # Every GRPO completion was judged by the sandbox: a pass fraction, never None.
    records = [json.loads(line) for line in (out / "grpo" / "traces" / "rank-00000.jsonl").open()]
    assert len(records) == summary["grpo_traces"]
    assert all(0.0 <= r["rewards"]["code_reward"] <= 1.0 for r in records)
    assert records[0]["prompt"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    png = (out / "reward_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert "held-out accuracy" in proc.stdout
