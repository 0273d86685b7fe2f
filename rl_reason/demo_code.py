"""``rl-reason demo --task code``: the R1 pipeline of ``rl_reason.demo`` on a code task, rewarded by the sandbox.

build tiny model → warm-start SFT on a sloppy teacher's programs → eval → GRPO rewarded only by running
the tests → eval → rejection sampling from the RL checkpoint → export the verified-correct traces →
distill a smaller student → eval the student (and its undistilled base).

Every number in ``summary.json`` is held-out pass@1: a greedy program per problem, run by the sandbox on
that problem's tests, counted when it passes them all.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from rl_reason.data.code_tasks import SYSTEM_PROMPT

# The task (rl_reason.data.code_tasks): one-line functions in three families, each with an edge case
# (the last term of 1..n, inclusive bounds, x == 0). The warm-start teacher forgets the edge case in
# 65% of its programs, always the same way; SFT copies the majority, so the warm-started policy writes
# the slip under greedy decoding (pass@1 0%) while sampling careful programs 20-30% of the time. GRPO,
# rewarded only by the sandbox running the tests, has to discover that the edge case pays.
NUM_EVAL = 300

# The tokenizer also learns merges from code (rl_reason.data.tiny's extra_corpus): a program is ~25
# tokens instead of ~54 with the math tokenizer (its prompt ~20 instead of ~36).
TOKENIZER = {"vocab_size": 400}

WARM_START = {
    "num_problems": 12000,
    "sloppy_rate": 0.65,
    "args": {
        # Copying the question's constants into the program digit by digit is what takes the time, and it
        # is learnt suddenly: after 375 updates the policy still mangled them (2% of GRPO's samples passed);
        # 750 updates were enough on one seed (99.5% copied, greedy) and not on another (token accuracy
        # 0.93, 4% of GRPO's samples passed). 1125 updates leave a margin.
        "num_train_epochs": 3,
        "learning_rate": 2e-3,
        "per_device_train_batch_size": 32,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 0.05,
        "max_length": 128,
    },
}

GRPO = {
    "learning_rate": 3e-5,
    "num_generations": 8,
    "per_device_train_batch_size": 64,
    "max_completion_length": 40,
    "max_steps": 100,
    "temperature": 1.0,
    "beta": 0.0,
    "logging_steps": 5,
    "lr_scheduler_type": "constant",
    "activation_checkpointing": False,
    "save_strategy": "no",
    "report_to": "none",
    # The sandbox alone: the pass fraction of the tests. (The math demo's format reward checks
    # <think> and \boxed{}, which a program has no use for.)
    "rewards": [{"name": "code", "weight": 1.0}],
}
NUM_TRAIN = 4000  # GRPO's prompts; it sees max_steps * 64 / 8 of them

REJECTION_SAMPLING = {"num_problems": 2000, "num_samples": 2, "temperature": 0.6}

DISTILL = {
    "max_steps": 1000,
    "learning_rate": 3e-3,
    "per_device_train_batch_size": 32,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.05,
    "max_length": 128,
    "save_strategy": "no",
    "report_to": "none",
}

QUICK = {  # --quick: every stage with tiny budgets, for tests (the numbers are not meaningful)
    "warm_problems": 64,
    "warm_epochs": 1,
    "grpo_steps": 2,
    "num_eval": 16,
    "sample_problems": 16,
    "distill_steps": 4,
}


def prompts_of(problems: list[dict]) -> list[list[dict]]:
    from rl_reason.data.tasks import problem_prompts

    return problem_prompts(problems, SYSTEM_PROMPT)


def passes(problems: list[dict], completions: list[str]) -> list[float]:
    """1.0 per completion whose last ```python block passes every test of its problem, else 0.0.

    ``rl_reason.sampling.evaluate`` scores with the math checker; a program needs its tests run. A
    completion the sandbox could not judge (``None``) counts as a failure, never as a pass."""
    from rewards.code import make_code_reward

    judged = make_code_reward(all_or_nothing=True)(prompts=prompts_of(problems), completions=completions,
                                                   tests=[p["tests"] for p in problems])
    return [v or 0.0 for v in judged]


def pass_at_1(model_dir: str | Path, problems: list[dict], max_new_tokens: int = GRPO["max_completion_length"],
              ) -> dict[str, float]:
    """Greedy pass@1 on ``problems``: overall (``all``) and per family (``code-<family>``)."""
    from rl_reason.sampling.generation import Generator

    samples = Generator(model_dir)(prompts_of(problems), max_new_tokens=max_new_tokens, batch_size=128,
                                   desc="eval: greedy")
    by_index = {s.prompt_index: s.text for s in samples}
    scores = passes(problems, [by_index[i] for i in range(len(problems))])
    by: dict[str, list[float]] = {"all": scores}
    for p, v in zip(problems, scores):
        by.setdefault(p["source"], []).append(v)
    return {k: sum(v) / len(v) for k, v in sorted(by.items())}


def warm_start(base: Path, output_dir: Path, held_questions: set[str], seed: int = 0, quick: bool = False,
               report_to: str = "none") -> Path:
    """SFT of ``base`` on a sloppy teacher's programs for procedural problems (none of ``held_questions``)."""
    from datasets import Dataset

    from rl_reason.data.code_tasks import make_problems
    from rl_reason.distill import run_sft, sft_config

    n_warm = QUICK["warm_problems"] if quick else WARM_START["num_problems"]
    rows = make_problems(n_warm, seed=seed + 1, exclude=held_questions, sloppy_rate=WARM_START["sloppy_rate"])
    dataset = Dataset.from_list([
        {"messages": prompt + [{"role": "assistant", "content": r["solution"]}]}
        for prompt, r in zip(prompts_of(rows), rows)
    ])
    args = dict(WARM_START["args"], report_to=report_to,
                **({"num_train_epochs": QUICK["warm_epochs"]} if quick else {}))
    return run_sft(base, dataset, sft_config(output_dir, args, seed))


def write_jsonl(rows: list[dict], path: Path) -> Path:
    with path.open("w") as f:
        for r in rows:
            f.write(json.dumps({k: r[k] for k in ("question", "answer", "tests", "id", "source")}) + "\n")
    return path


def run_demo(output: str | Path, seed: int = 0, quick: bool = False, report_to: str = "none") -> dict:
    from rl_reason.data.code_tasks import EVAL_SEED_OFFSET, corpus, make_problems
    from rl_reason.data.tiny import build_tiny
    from rl_reason.demo import plot_reward_curve, print_summary
    from rl_reason.distill import load_messages, run_sft, sft_config
    from rl_reason.export.pipeline import export
    from rl_reason.preflight import check_output_dir
    from rl_reason.sampling.sample import sample_traces
    from rl_reason.train.run import load_train_recipe, train

    start = time.time()
    out = check_output_dir(output, "demo")
    models = out / "models"
    timings: dict[str, float] = {}

    def stage(name):
        timings[name] = round(time.time() - start - sum(timings.values()), 1)
        print(f"[demo] {name} done in {timings[name]} s")

    num_eval = QUICK["num_eval"] if quick else NUM_EVAL
    heldout = make_problems(num_eval, seed=seed + EVAL_SEED_OFFSET)
    held_questions = {p["question"] for p in heldout}
    evals: dict[str, dict[str, float]] = {}

    def accuracy(name: str, model_dir: Path) -> float:
        evals[name] = pass_at_1(model_dir, heldout)
        print(f"[demo] {name} pass@1 {evals[name]['all']:.3f} " + json.dumps(evals[name]))
        return evals[name]["all"]

    # 1. Tiny policy and student, built from code, with a tokenizer that has seen code.
    for name, size in (("base", "tiny"), ("student_base", "student")):
        build_tiny(models / name, size=size, seed=seed, extra_corpus=corpus(), **TOKENIZER)

    # 2. Warm start on the sloppy teacher's programs.
    warm_start(models / "base", models / "warm_start", held_questions, seed, quick, report_to)
    stage("warm_start")
    warm_acc = accuracy("warm_start", models / "warm_start")

    # 3. GRPO from the warm start, through the same recipe path as `rl-reason train`; the data are a
    # JSONL file (question, tests, ...), as a user's code dataset would be.
    train_rows = make_problems(NUM_TRAIN, seed=seed, exclude=held_questions)
    grpo_recipe = {
        **{k: v for k, v in GRPO.items() if k != "rewards"},
        "output_dir": str(out / "grpo"),
        "seed": seed,
        "max_steps": QUICK["grpo_steps"] if quick else GRPO["max_steps"],
        "report_to": report_to,
        "model": {"name_or_path": str(models / "warm_start")},
        "data": {"source": str(write_jsonl(train_rows, out / "grpo_train.jsonl")), "system_prompt": SYSTEM_PROMPT},
        "rewards": GRPO["rewards"],
        "run_name": f"demo-code-seed{seed}",
    }
    (out / "grpo_recipe.yaml").write_text(yaml.safe_dump(grpo_recipe, sort_keys=False))
    result = train(load_train_recipe(out / "grpo_recipe.yaml"))
    stage("grpo")
    policy_acc = accuracy("policy", out / "grpo")

    # 4. Rejection sampling from the RL checkpoint, into the same trace store, judged by the same sandbox.
    n_sample = QUICK["sample_problems"] if quick else REJECTION_SAMPLING["num_problems"]
    sample_rows = make_problems(n_sample, seed=seed + 2, exclude=held_questions)
    sampled = sample_traces(
        out / "grpo", sample_rows, result.traces_dir,
        reward_specs=[(r["name"], r["weight"], {}) for r in GRPO["rewards"]],
        num_samples=REJECTION_SAMPLING["num_samples"], temperature=REJECTION_SAMPLING["temperature"],
        max_new_tokens=GRPO["max_completion_length"], seed=seed, run_id=f"demo-code-seed{seed}-sample",
        system_prompt=SYSTEM_PROMPT,
    )
    print(f"[demo] rejection sampling: {sampled['correct']} of {sampled['samples']} samples pass every test")
    stage("rejection_sampling")

    # 5. Export the programs that passed every test, and distill the small student on them.
    stats = export(result.traces_dir, out / "export", min_reward=1.0, correct_only=True, select="all")
    stage("export")
    student_base_acc = accuracy("student_base", models / "student_base")
    distill_args = dict(DISTILL, **({"max_steps": QUICK["distill_steps"]} if quick else {}))
    if stats.kept:
        run_sft(models / "student_base", load_messages(out / "export"), sft_config(models / "student", distill_args,
                                                                                     seed))
        student_acc = accuracy("student", models / "student")
    else:
        student_acc = student_base_acc
    stage("distill")

    summary = {
        "task": "code",
        "warm_start_accuracy": warm_acc,
        "policy_accuracy": policy_acc,
        "student_base_accuracy": student_base_acc,
        "student_accuracy": student_acc,
        "by_family": evals,
        "traces": stats.read,
        "exported": stats.kept,
        "heldout_problems": len(heldout),
        "grpo_steps": result.global_step,
        "grpo_traces": stats.read - sampled["samples"],
        "sampled_traces": sampled["samples"],
        "seed": seed,
        "quick": quick,
        "stage_seconds": timings,
        "wall_seconds": round(time.time() - start, 1),
    }
    plot_reward_curve(result.log_history, out / "reward_curve.png")  # one reward, so "reward" is the pass rate
    from rl_reason.report import write_report

    write_report(out / "grpo", out / "report.html")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print_summary(summary)
    return summary
