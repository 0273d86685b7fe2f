"""A real (tiny) teacher for the ``rl-reason synthesize`` tests, trained in the test session.

The embedded tiny model is fine-tuned with TRL's ``SFTTrainer`` (``rl_reason.distill.run_sft``) on a
procedural corpus of the two requests the synthesize pipeline sends a teacher
(``rl_reason/synthesize/prompts.py``):

* problem requests, ``problem_request(examples, leaf)``: 2-6 example "a+b" questions and a leaf of
  ``tests/data/synth_taxonomy.yaml``; the reply is a fresh "a+b" (not one of the examples) whose larger
  operand has the leaf's digit count;
* solution requests, ``solution_messages(question, instruction)`` under one of the Orca instructions;
  the reply is the teacher's own column addition (``teacher_solution``).

``ground_truth`` and ``leaf_of`` are the tests' oracle, written without any pipeline code.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

TAXONOMY = Path(__file__).parent / "data" / "synth_taxonomy.yaml"
# Leaf topic by the digit count of the larger operand (the names in synth_taxonomy.yaml).
TOPICS = {
    1: "sums of one-digit numbers",
    2: "sums where the larger number has two digits",
    3: "sums where the larger number has three digits",
}
MIN_DIGITS, MAX_DIGITS = 1, 3
# Held-out problems: never a solution reply in the corpus; the quality test evaluates on them.
HELDOUT_SEED, NUM_HELDOUT = 987_654, 200
# What a caller needs for generation: a full solution is at most 53 tokens (999+999 with the end of
# turn), a problem reply at most 8.
SOLUTION_MAX_NEW_TOKENS = 64
PROBLEM_MAX_NEW_TOKENS = 16

# The fine-tune: phases of one epoch each, batches of 32 drawn at random; measured with probes like
# tests/test_synth_teacher.py's (seed 0). The tokenizer is character-level, so a problem request (its
# examples) runs to 300 tokens: hence max_length 512.
# 1. Solutions only, 1,000 steps: greedy 99% on held-out problems. After 625 steps it was 84%, and its
#    errors (a digit fetched from the wrong column) repeat across samples, so majority votes kept them.
# 2. Mostly problem requests, solutions rehearsed, at a quarter of the rate: requests valid 96%, on the
#    requested leaf 74%, solutions unharmed (98%). At 1e-3 with 10% rehearsal, solutions fell from 84%
#    to 42%; requests first and solutions second never got solutions past 12%. In one mixed phase
#    requests hardly move the model (a reply of a few tokens, and the loss averages over tokens), and
#    batches grouped by length keep them apart but stall column addition (0% after 560 batches).
PHASES = [
    {"num_conversations": 32_000, "request_share": 0.0},
    {"num_conversations": 5_000, "request_share": 0.6, "learning_rate": 5e-4},
]
SFT_ARGS = {"num_train_epochs": 1, "learning_rate": 2e-3, "per_device_train_batch_size": 32,
            "lr_scheduler_type": "cosine", "warmup_steps": 0.05, "max_length": 512, "logging_steps": 50}

_SUM = re.compile(r"\s*(0|[1-9][0-9]*)\s*\+\s*(0|[1-9][0-9]*)\s*")


def _operands(question) -> tuple[int, int] | None:
    if not isinstance(question, str):
        return None
    m = _SUM.fullmatch(question)
    return (int(m.group(1)), int(m.group(2))) if m else None


def ground_truth(question: str) -> str | None:
    """The sum of an "a+b" question (two non-negative integers without leading zeros, optional spaces
    around '+'), computed here; ``None`` for anything else."""
    ops = _operands(question)
    return None if ops is None else str(ops[0] + ops[1])


def leaf_of(question: str) -> str | None:
    """The taxonomy topic of an "a+b" question: by the digit count of its larger operand (1-3)."""
    ops = _operands(question)
    if ops is None:
        return None
    return TOPICS.get(len(str(max(ops))))


def heldout_questions() -> list[str]:
    """The held-out procedural questions (digits 1-3) the corpus never solves."""
    from rl_reason.data.tasks import make_problems

    rows = make_problems(NUM_HELDOUT, seed=HELDOUT_SEED, min_digits=MIN_DIGITS, max_digits=MAX_DIGITS)
    return [r["question"] for r in rows]


def _number(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1)


def procedural_question(rng: random.Random) -> str:
    """An "a+b" question drawn like ``make_problems(min_digits=1, max_digits=3)`` draws one."""
    return f"{_number(rng, rng.randint(MIN_DIGITS, MAX_DIGITS))}+{_number(rng, rng.randint(MIN_DIGITS, MAX_DIGITS))}"


def problem_on_leaf(rng: random.Random, digits: int) -> tuple[int, int]:
    """Operands drawn like the procedural generator (digit counts uniform in 1-3, then values),
    conditioned on the larger operand having ``digits`` digits."""
    while True:
        na, nb = rng.randint(MIN_DIGITS, MAX_DIGITS), rng.randint(MIN_DIGITS, MAX_DIGITS)
        if max(na, nb) == digits:
            return _number(rng, na), _number(rng, nb)


def teacher_solution(a: int, b: int) -> str:
    """Column addition from the right that writes the answer so far on every line, then boxes it.

    The task's own format (``reference_solution``) lists the column sums and leaves the reversed
    read-back of their digits to the last line; a tiny model learns that late (about 2,000 steps).
    Here each line puts one digit in front of the line above's answer (a copy), and the tiny model is
    accurate after a few hundred steps.
    """
    xs, ys = str(a)[::-1], str(b)[::-1]
    width = max(len(xs), len(ys))
    carry, answer, lines = 0, "", []
    for i in range(width):
        x = int(xs[i]) if i < len(xs) else 0
        y = int(ys[i]) if i < len(ys) else 0
        total = x + y + carry
        answer = (str(total) if i == width - 1 else str(total % 10)) + answer
        lines.append(f"{x}+{y}+{carry}={total}: {answer}")
        carry = total // 10
    return "<think>\n" + "\n".join(lines) + "\n</think>\n\\boxed{" + answer + "}"


def teacher_corpus(n: int, seed: int, request_share: float) -> list[list[dict]]:
    """``n`` chat conversations (messages ending with the assistant reply), problem requests
    (``request_share`` of them, leaves drawn uniformly so each is learned equally) mixed with solution
    requests; solutions never of a held-out question."""
    from rl_reason.synthesize.prompts import DEFAULT_SYSTEM_INSTRUCTIONS, problem_request, solution_messages
    from rl_reason.synthesize.taxonomy import load_taxonomy

    rng = random.Random(seed)
    by_digits = {next(d for d, t in TOPICS.items() if t == leaf.topic): leaf for leaf in load_taxonomy(TAXONOMY)}
    heldout = set(heldout_questions())
    conversations = []
    for _ in range(n):
        if rng.random() < request_share:
            examples = [procedural_question(rng) for _ in range(rng.randint(2, 6))]
            digits = rng.choice(sorted(by_digits))
            reply = examples[0]
            while reply in examples:
                reply = "{}+{}".format(*problem_on_leaf(rng, digits))
            messages = problem_request(examples, by_digits[digits])
        else:
            question = next(q for q in iter(lambda: procedural_question(rng), None) if q not in heldout)
            messages = solution_messages(question, rng.choice(DEFAULT_SYSTEM_INSTRUCTIONS))
            reply = teacher_solution(*map(int, question.split("+")))
        conversations.append(messages + [{"role": "assistant", "content": reply}])
    return conversations


def build_teacher(out_dir, seed: int = 0, phases: list[dict] = PHASES) -> Path:
    """Build the tiny model, fine-tune it into a teacher and save model and tokenizer to ``out_dir``.
    ``phases``: each ``num_conversations`` and ``request_share``, and SFTConfig fields over ``SFT_ARGS``."""
    import torch
    from datasets import Dataset

    from rl_reason.data.tiny import build_tiny
    from rl_reason.distill import run_sft, sft_config

    out_dir = Path(out_dir)
    model = build_tiny(out_dir.parent / f"{out_dir.name}-base", seed=seed)
    threads = torch.get_num_threads()
    # One thread: the same floating-point sums whatever the core count, so the same teacher as measured
    # above (given the same packages and CPU kind); on 2 shared cores it is also no slower for a model
    # this small.
    torch.set_num_threads(1)
    try:
        for i, phase in enumerate(phases):
            n, share, sft_args = phase["num_conversations"], phase["request_share"], {
                k: v for k, v in phase.items() if k not in ("num_conversations", "request_share")}
            corpus = teacher_corpus(n, seed=seed + 1 + i, request_share=share)
            dataset = Dataset.from_list([{"messages": c} for c in corpus])
            where = out_dir if i == len(phases) - 1 else out_dir.parent / f"{out_dir.name}-phase{i}"
            model = run_sft(model, dataset, sft_config(where, {**SFT_ARGS, **sft_args}, seed))
    finally:
        torch.set_num_threads(threads)
    return model
