"""Every export filter and selection policy, alone, on crafted traces."""

import json

import pytest

from rl_reason.export.pipeline import ExportError, ExportOptions, ExportStats, select_records
from rl_reason.export.filters import (
    Decontaminator,
    drop_near_duplicates,
    in_pass_band,
    most_diverse,
    problem_text,
    select_indices,
    word_ngrams,
)

SYS = {"role": "system", "content": "Think, then answer."}


def prompt(q):
    return [SYS, {"role": "user", "content": q}]


def rec(q, completion, correct=True, reward=None, **kw):
    return {
        "prompt": prompt(q), "completion": completion, "mode": "train", "truncated": False,
        "rewards": {"accuracy_reward": 1.0 if correct else 0.0},
        "reward": reward if reward is not None else (1.1 if correct else 0.1),
        "completion_tokens": len(completion.split()), **kw,
    }


def ok(body, answer="3"):
    return f"<think>\n{body}\n</think>\n\\boxed{{{answer}}}"


def texts(records):
    return [r["completion"] for r in records]


def run(records, reward_roles=None, **kw):
    stats = ExportStats()
    kept = select_records(records, stats=stats, options=ExportOptions(**kw), reward_roles=reward_roles)
    return kept, stats


def test_min_reward_and_correct_only():
    records = [rec("q", ok("a"), reward=2.0, correct=False), rec("q", ok("b"), reward=1.0),
               rec("q", ok("c"), reward=0.5)]
    kept, stats = run(records, min_reward=1.0)
    assert texts(kept) == [ok("a"), ok("b")] and stats.removed["below_min_reward"] == 1
    kept, stats = run(records, min_reward=None, correct_only=True)
    assert texts(kept) == [ok("b"), ok("c")] and stats.removed["not_verified_correct"] == 1


def test_correctness_comes_from_the_rewards_with_the_verifier_role():
    def scored(text, **rewards):
        return {**rec("q", ok(text)), "rewards": rewards, "reward": 0.5}

    records = [scored("a", my_check=1.0), scored("b", my_check=0.0), scored("c", my_check=1.0, accuracy_reward=None),
               scored("d", accuracy_reward=1.0, my_check=0.0)]
    # The run recorded its own module:function reward as a verifier: it decides with the built-in one;
    # a verifier that did not score a record (None) leaves the verdict to the others.
    kept, stats = run(records, min_reward=None, correct_only=True, reward_roles={"my_check": "verifier"})
    assert texts(kept) == [ok("a"), ok("c")] and stats.removed["not_verified_correct"] == 2
    # Traces from before roles were recorded: only the built-in verifiers are known.
    assert texts(run(records, min_reward=None, correct_only=True)[0]) == [ok("d")]
    assert texts(run(records, min_reward=None, correct_only=True, reward_roles={"my_check": "shaping"})[0]) == [ok("d")]


def test_an_answer_no_verifier_could_judge_is_not_correct_whatever_its_reward():
    from rl_reason.export.filters import Verifiers

    verifiers = Verifiers()
    unjudged = {"rewards": {"accuracy_reward": None, "think_format_reward": 1.0}, "reward": 5.0}
    assert verifiers.verdict(unjudged) is False and verifiers.is_correct(unjudged, min_reward=1.0) is False
    # A math+code mix: each row is judged by the verifier its columns feed, the other says None.
    assert verifiers.verdict({"rewards": {"accuracy_reward": 1.0, "code_reward": None}}) is True
    assert verifiers.verdict({"rewards": {"accuracy_reward": None, "code_reward": 0.5}}) is False
    # No verifier among the rewards: the weighted reward decides.
    no_verifier = {"rewards": {"think_format_reward": 1.0}, "reward": 1.0}
    assert verifiers.verdict(no_verifier) is None and verifiers.is_correct(no_verifier) is True


def test_truncated_eval_mode_and_exact_duplicates():
    records = [rec("q", ok("a")), rec("q", ok("a")), rec("q", ok("b"), truncated=True), rec("q", ok("c"), mode="eval")]
    kept, stats = run(records)
    assert texts(kept) == [ok("a")]
    assert stats.removed == {"duplicate": 1, "truncated": 1, "eval_mode": 1}
    assert len(run(records, dedup=False, keep_truncated=True, include_eval=True)[0]) == 4


def test_format_check_requires_think_and_one_answer():
    good = ok("work")
    records = [rec("q", good), rec("q", "no think \\boxed{3}"), rec("q", "<think>x</think> \\boxed{3} \\boxed{4}"),
               rec("q", "<think>x</think> no answer"), rec("q", "<think>x<think>y</think>\\boxed{3}")]
    kept, stats = run(records, check_format=True)
    assert texts(kept) == [good] and stats.removed["bad_format"] == 4
    # R1-Distill/Qwen3 templates prefill <think>: the completion starts inside it
    kept, _ = run([rec("q", "work\n</think>\n\\boxed{3}")], check_format=True, prefilled_think=True)
    assert len(kept) == 1


def test_length_bounds_use_completion_tokens():
    records = [rec("q", ok("a"), completion_tokens=5), rec("q", ok("b"), completion_tokens=50),
               rec("q", ok("c"), completion_tokens=500)]
    kept, stats = run(records, min_tokens=10, max_tokens=100)
    assert texts(kept) == [ok("b")] and stats.removed["too_short"] == 1 and stats.removed["too_long"] == 1
    with pytest.raises(ExportError):
        run(records, min_tokens=10, max_tokens=5)


def test_pass_rate_band_uses_every_sample_of_the_prompt():
    easy = [rec("easy", ok(str(i))) for i in range(4)]  # 4/4
    mid = [rec("mid", ok("m1")), rec("mid", ok("m2")), rec("mid", ok("w"), correct=False),
           rec("mid", ok("w2"), correct=False)]  # 2/4
    hard = [rec("hard", ok("h")), *[rec("hard", ok(f"x{i}"), correct=False) for i in range(7)]]  # 1/8
    kept, stats = run(easy + mid + hard, min_reward=None, correct_only=True, min_pass_rate=0.2, max_pass_rate=0.9)
    assert {problem_text(r["prompt"]) for r in kept} == {"mid"}
    assert stats.removed["pass_rate_band"] == 5  # 4 easy + 1 hard correct traces
    # truncated samples still count as failures of their prompt: the rate is the group's
    assert in_pass_band(1, 4, 0.25, 0.25) and not in_pass_band(0, 0, 0.0, 1.0)


def test_select_policies():
    records = [rec("q", ok("medium length reasoning"), reward=1.2), rec("q", ok("short"), reward=1.0),
               rec("q", ok("the longest reasoning of all here"), reward=1.5),
               rec("q", ok("medium length reasonings"), reward=1.1)]
    assert texts(run(records, select="best")[0]) == [ok("the longest reasoning of all here")]
    assert texts(run(records, select="shortest")[0]) == [ok("short")]
    assert texts(run(records, select="first", k=2)[0]) == texts(records[:2])
    assert len(run(records, select="all")[0]) == 4
    diverse = texts(run(records, select="diverse", k=2)[0])
    assert ok("short") in diverse  # starts from the shortest
    assert not {ok("medium length reasoning"), ok("medium length reasonings")} <= set(diverse)
    _, stats = run(records, select="first", k=1)
    assert stats.removed["not_selected"] == 3
    with pytest.raises(ExportError):
        run(records, select="random")


def test_select_indices_and_most_diverse_directly():
    cands = [{"reward": 1.0, "length": 3, "text": "aaaa"}, {"reward": 1.0, "length": 2, "text": "aaab"},
             {"reward": 1.0, "length": 9, "text": "zzzz"}]
    assert select_indices(cands, "shortest") == [1]
    assert select_indices(cands, "best") == [1]  # tie on reward: shorter wins
    assert most_diverse([c["text"] for c in cands], 2, start=1) == [1, 2]
    assert most_diverse(["a", "b"], 5) == [0, 1]


def test_near_duplicates_with_rapidfuzz():
    base = "add the units column then carry the one into the tens column and finish " * 3
    near = base.replace("finish", "finished", 1)
    other = "a completely different line of reasoning about the tens digit first " * 3
    assert drop_near_duplicates([base, near, other], threshold=95) == [0, 2]
    assert drop_near_duplicates([base, near, other], threshold=100) == [0, 1, 2]
    records = [rec("q", ok(base)), rec("q", ok(near)), rec("q", ok(other))]
    kept, stats = run(records, near_dup_threshold=95)
    assert texts(kept) == [ok(base), ok(other)] and stats.removed["near_duplicate"] == 1
    assert len(run(records)[0]) == 3  # off by default


def test_word_ngram_decontamination(tmp_path):
    leaked = "Find the number of ordered pairs of integers such that both are positive and sum to ten"
    assert ("find the number of ordered pairs of integers" in word_ngrams(leaked, 8))
    assert word_ngrams("12+34", 8) == {"12 34"}  # short texts: the whole text is one n-gram
    evalset = tmp_path / "eval.jsonl"
    evalset.write_text(json.dumps({"problem": leaked}) + "\n" + json.dumps({"problem": "What is 7+8?"}) + "\n")
    records = [
        # shares an 8-gram
        rec("Please FIND the number of ordered pairs of integers, such that both are positive.", ok("a")),
        rec("What is 7 + 8?", ok("b")),  # short: same words after normalisation
        rec("Find the number of ordered pairs of reals", ok("c")),  # only 7 shared words
    ]
    kept, stats = run(records, decontaminate=[str(evalset)])
    assert [problem_text(r["prompt"]) for r in kept] == ["Find the number of ordered pairs of reals"]
    assert stats.removed["decontaminated"] == 2
    # n is configurable: with 4-grams the third prompt overlaps too
    assert run(records, decontaminate=[str(evalset)], ngram=4)[0] == []
    d = Decontaminator(["one two three four five six seven eight nine"], n=8)
    assert d.contaminated("zero one two three four five six seven eight") and not d.contaminated("one two three")


def test_decontamination_errors_are_export_errors(tmp_path):
    with pytest.raises(ExportError, match="not found"):
        run([rec("q", ok("a"))], decontaminate=[str(tmp_path / "missing.jsonl")])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "x"}) + "\n")
    with pytest.raises(ExportError, match="no problem column"):
        run([rec("q", ok("a"))], decontaminate=[str(bad)])


def test_each_removed_record_counted_once():
    records = [rec("q", "bad", truncated=True, mode="train", correct=False), rec("q", ok("a"))]
    kept, stats = run(records, check_format=True, correct_only=True)
    assert stats.removed == {"truncated": 1} and len(kept) == 1
    assert stats.read == len(kept) + sum(stats.removed.values())
