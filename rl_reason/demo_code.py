"""``rl-reason demo --task code``: ``rl_reason.demo``'s pipeline on a code task, rewarded by the sandbox.

build tiny model → warm-start SFT on a sloppy teacher's programs → eval → GRPO rewarded only by running
the tests → eval → rejection sampling from the RL checkpoint → export the verified-correct traces →
distill a smaller student → eval the student (and its undistilled base). ``CodeTask`` is what differs
from the math demo; ``rl_reason.demo.run_pipeline`` runs it.

Every number in ``summary.json`` is held-out pass@1: a greedy program per problem, run by the sandbox on
that problem's tests, counted when it passes them all.
"""

from __future__ import annotations

import json
from pathlib import Path

from rl_reason.data.code_tasks import SYSTEM_PROMPT
from rl_reason.demo import QUICK, run_pipeline

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


class CodeTask:
    """The code demo's task: one-line Python functions (``rl_reason.data.code_tasks``), judged by their tests."""

    name = "code"
    run_name = "demo-code"
    grpo, rejection_sampling, distill = GRPO, REJECTION_SAMPLING, DISTILL
    system_prompt = SYSTEM_PROMPT
    passed = "pass every test"

    def __init__(self, seed: int, quick: bool):
        self.seed, self.num_eval = seed, QUICK["num_eval"] if quick else NUM_EVAL

    def build_models(self, models: Path, seed: int) -> None:
        """The policy and the student, with a tokenizer that has seen code."""
        from rl_reason.data.code_tasks import corpus
        from rl_reason.data.tiny import build_tiny

        for name, size in (("base", "tiny"), ("student_base", "student")):
            build_tiny(models / name, size=size, seed=seed, extra_corpus=corpus(), **TOKENIZER)

    def heldout(self) -> list[dict]:
        from rl_reason.data.code_tasks import EVAL_SEED_OFFSET, make_problems

        return make_problems(self.num_eval, seed=self.seed + EVAL_SEED_OFFSET)

    def warm_start(self, base: Path, output_dir: Path, held_questions: set[str], seed: int, quick: bool,
                   report_to: str) -> Path:
        return warm_start(base, output_dir, held_questions, seed, quick, report_to)

    def evaluate(self, model_dir: Path, heldout: list[dict]) -> dict[str, float]:
        return pass_at_1(model_dir, heldout)

    def grpo_data(self, out: Path, seed: int, held_questions: set[str]) -> dict:
        """A JSONL file of problems (question, tests, ...), as a user's code dataset would be."""
        from rl_reason.data.code_tasks import make_problems

        rows = make_problems(NUM_TRAIN, seed=seed, exclude=held_questions)
        return {"source": str(write_jsonl(rows, out / "grpo_train.jsonl")), "system_prompt": SYSTEM_PROMPT}

    def sample_problems(self, n: int, seed: int, held_questions: set[str]) -> list[dict]:
        from rl_reason.data.code_tasks import make_problems

        return make_problems(n, seed=seed, exclude=held_questions)


def run_demo(output: str | Path, seed: int = 0, quick: bool = False, report_to: str = "none") -> dict:
    return run_pipeline(CodeTask(seed, quick), output, seed, quick, report_to)
