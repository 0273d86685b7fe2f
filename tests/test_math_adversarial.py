"""rewards.math against a policy that games it: hand-labelled adversarial cases per class (both
labels: the wrong answer a policy would try and the correct look-alike that must still pass),
extraction of final answers that are not final, the reward's handling of repeated boxes, the
precision policies, and extraction in bounded time on degenerate completions."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import pytest

from rewards.math import accuracy_reward, check, check_batch, extract_answer, extract_answers, make_accuracy_reward

DATA = Path(__file__).resolve().parent / "data" / "math"
ADVERSARIAL = [json.loads(line) for line in (DATA / "adversarial_cases.jsonl").read_text().splitlines() if line.strip()]
EXTRACTION = [json.loads(line) for line in (DATA / "extraction_cases.jsonl").read_text().splitlines() if line.strip()]
CLASSES = sorted({c["class"] for c in ADVERSARIAL})
# issue 11's classes; the others (structure, list, multiple_choice) came from a second red-team round
ISSUE_CLASSES = {"qualifier", "named_swap", "negation", "sentence_word", "units", "percent", "domain", "degrees",
                 "precision", "false_negative"}


@pytest.mark.parametrize("cls", CLASSES)
def test_adversarial_class(cls):
    cases = [c for c in ADVERSARIAL if c["class"] == cls]
    assert len(cases) >= (25 if cls in ISSUE_CLASSES else 10) and {c["expected"] for c in cases} == {0, 1}, cls
    by_policy: dict[str, list[dict]] = defaultdict(list)
    for c in cases:
        by_policy[json.dumps(c.get("policy", {}), sort_keys=True)].append(c)
    wrong = []
    for key, group in by_policy.items():
        verdicts = check_batch([(c["gold"], c["pred"]) for c in group], **json.loads(key))
        wrong += [(c["gold"], c["pred"], c["expected"], v, c.get("note")) for c, v in zip(group, verdicts)
                  if int(v.equal) != c["expected"]]
    assert not wrong, wrong


def test_every_issue_class_is_covered():
    assert set(CLASSES) >= ISSUE_CLASSES
    assert sum(c["expected"] == 0 for c in ADVERSARIAL) >= 200


@pytest.mark.parametrize("cls", sorted({c["class"] for c in EXTRACTION}))
def test_extraction_class(cls):
    cases = [c for c in EXTRACTION if c["class"] == cls]
    assert len(cases) >= 20 and any(c["expected"] is None for c in cases) and any(c["expected"] for c in cases)
    wrong = [(c["text"], c["expected"], extract_answer(c["text"])) for c in cases
             if extract_answer(c["text"]) != c["expected"]]
    assert not wrong, wrong


def test_reward_cases():
    r"""Whole completions through the reward: text next to the box (``\boxed{7} or 9``, ``x \ge
    \boxed{7}``, ``The answer is not \boxed{7}``), later answers, hedges, think blocks."""
    cases = [json.loads(line) for line in (DATA / "reward_cases.jsonl").read_text().splitlines() if line.strip()]
    assert len(cases) >= 60 and {c["reward"] for c in cases} == {0.0, 1.0}
    rewards = accuracy_reward(completions=[c["text"] for c in cases], answer=[c["gold"] for c in cases])
    wrong = [(c["text"], c["gold"], c["reward"], r) for c, r in zip(cases, rewards) if r != c["reward"]]
    assert not wrong, wrong


def test_completion_longer_than_max_text_is_no_answer():
    """Cutting a long completion could hide an unclosed <think> or an earlier different box."""
    from rewards.math.extract import MAX_TEXT

    filler = "Let me reason. " * (MAX_TEXT // 15 + 1)
    assert extract_answer(filler + r"\boxed{7}") is None
    assert extract_answer("<think>" + filler + r"\boxed{7}") is None
    assert extract_answer(r"\boxed{7}") == "7"


def test_reward_compares_the_values_of_repeated_answers():
    completions = [
        r"so \boxed{2\sqrt2}, i.e. \boxed{\sqrt8}",  # one value in two spellings: no hedge
        r"\boxed{2\sqrt2} or maybe \boxed{3}",  # two values: a hedge
        r"\boxed{3}. Wait, that's wrong; it should be \boxed{2\sqrt{2}}.",  # taken back, then answered
        r"<think>it is \boxed{2\sqrt2}",  # never left the thinking
        r"\boxed{2\sqrt2}</think> Actually, it is 3.",  # the box is taken back
    ]
    assert extract_answers(completions[0]) == [r"2\sqrt2", r"\sqrt8"]
    for hedge in (r"\boxed{7} for $k \ge 2$, otherwise 1.", r"\boxed{7}, or possibly 1", r"\boxed{7} unless $k = 1$"):
        assert extract_answer(hedge) is None, hedge  # a second value offered after the box
    assert accuracy_reward(completions=completions, answer=[r"\sqrt{8}"] * 5) == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert accuracy_reward(completions=[r"\boxed{3} then \boxed{5}"] * 2, answer=["3", "5"]) == [0.0, 0.0]
    # hedge="last" keeps Math-Verify's behaviour: the last box only
    assert make_accuracy_reward(hedge="last")(completions=[r"\boxed{3} then \boxed{5}"], answer=["5"]) == [1.0]


def test_precision_policies():
    exact = [("0.125", "0.13"), ("2.25", "2.3"), ("249.75", "250"), (r"\frac23", "0.6667"), (r"\frac{600}{7}", "85.71")]
    assert not any(check(g, p).equal for g, p in exact)
    assert all(check(g, p, precision="rounded").equal for g, p in exact[3:])
    # an exact decimal, and an exact value that the gold rounds
    assert check(r"\frac18", "0.125").equal and check("6.67", r"\frac{20}{3}").equal
    with pytest.raises(ValueError, match="precision"):
        check("1", "1", precision="loose")
    with pytest.raises(TypeError, match="rounding"):
        check("1", "1", rounding=True)


def _degenerate(n: int) -> dict[str, str]:
    return {
        "unclosed boxes": "\\boxed{" * (n // 7),
        "nested boxes": "\\boxed{" * (n // 14) + "}" * (n // 28),
        "closed boxes": "\\boxed{1} x " * (n // 12),
        "distinct boxes": " ".join(f"\\boxed{{{i}}} x" for i in range(n // 14)),
        "joined boxes": ", ".join(f"\\boxed{{{i}}}" for i in range(n // 12)),
        "answer tags": "<answer>" * (n // 8),
        "think tags": "<think>\\boxed{1}</think>" * (n // 24),
        "retractions": "\\boxed{9} wait " * (n // 15),
        "final answer": "final answer is " * (n // 16),
        "gsm8k": "#### " + "x" * n,
        "answer lines": "Answer: 1\n" * (n // 10),
        "braces": "{" * n,
    }


def test_extraction_is_linear_and_bounded():
    """A repetition loop (tens of KB of ``\\boxed{``) took 3-16 s in the trainer's process
    before; every degenerate 64 KB completion must now be extracted in well under a second."""
    worst = {}
    for name, text in _degenerate(64_000).items():
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            extract_answers(text, fallbacks=True)
            best = min(best, time.perf_counter() - t)
        worst[name] = best
    assert max(worst.values()) < 0.25, worst
    t = time.perf_counter()
    rewards = accuracy_reward(completions=list(_degenerate(64_000).values()), answer=["1"] * 12)
    assert time.perf_counter() - t < 2.0
    assert rewards.count(1.0) <= 2  # only the clean closed-box / answer-line texts can score
