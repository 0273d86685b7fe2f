"""rewards.math: extraction, equivalence on labelled cases, policies, the TRL reward, the worker
pool's hard deadlines, the GSM8K labelled completions and HardVerify-Math."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest

from rewards import math as rm
from rewards.math import Verdict, accuracy_reward, check, check_batch, extract_answer, gold_answer, is_equivalent
from rewards.registry import func_name

HERE = Path(__file__).resolve().parent
CASES = [json.loads(line) for line in (HERE / "data" / "math" / "equivalence_cases.jsonl").read_text().splitlines()
         if line.strip()]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


# ---------------------------------------------------------------- extraction

@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so \boxed{42}.", "42"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"first \boxed{3} then, wait, no: \boxed{5}", "5"),  # the first answer is taken back: not a hedge
        (r"first \boxed{3} then \boxed{5}", None),  # two different final answers: a hedge
        (r"\boxed{0.5}, that is \boxed{\frac{1}{2}}", r"\frac{1}{2}"),  # one value written twice
        (r"\boxed{0.5}, that is \boxed{0.25}", None),
        (r"so \boxed{4}. Indeed \boxed{4}", "4"),  # the same answer twice is no hedge
        (r"<think>maybe \boxed{3}</think> so \boxed{5}", "5"),  # after </think> only the answer part counts
        (r"<think>only inside \boxed{3}</think> done", "3"),
        (r"\fbox{7}", "7"),
        (r"\boxed{\begin{pmatrix} 1 \\ 2 \end{pmatrix}}", r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}"),
        (r"\boxed{}", None),  # empty box
        (r"\boxed{   }", None),
        (r"the answer is \boxed{12", None),  # unclosed (truncated) box
        (r"\boxed{1} and \boxed{2}", "1, 2"),  # adjacent boxes form one answer (a hedge then fails)
        ("<answer>17</answer>", "17"),
        (r"<think>x</think><answer>so \boxed{4}</answer>", "4"),
        ("The answer is 12.", None),  # fallbacks are off by default for RL
        ("no answer here", None),
        ("", None),
        (None, None),
        (r"\boxed 5", "5"),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_hedge_option():
    text = r"first \boxed{3} then, wait, no: \boxed{5}"
    assert extract_answer(text, hedge="last") == "5"
    assert extract_answer("<answer>3</answer> or <answer>4</answer>") is None
    assert extract_answer("<answer>3</answer> or <answer>4</answer>", hedge="last") == "4"
    with pytest.raises(ValueError):
        extract_answer(text, hedge="maybe")


def test_extract_fallbacks_are_opt_in():
    assert extract_answer("so the answer is 12.") is None
    assert extract_answer("so the answer is 12.", fallbacks=True) == "12"
    assert extract_answer("work\n#### 1,234", fallbacks=("gsm8k",)) == "1,234"
    assert extract_answer("work\n#### 7", fallbacks=("the_answer_is",)) is None
    text = "Final Answer: The final answer is $28\\%$. I hope it is correct."
    assert extract_answer(text, fallbacks=True) == "$28\\%$"
    assert extract_answer("steps\nA: 18", fallbacks=True) == "18"
    assert extract_answer("**Final Answer:** **73**", fallbacks=True) == "73"


def test_hedges_earn_nothing():
    for text in [r"\boxed{3} or \boxed{5}", r"\boxed{3 \text{ or } 5}", r"\boxed{3, 5}"]:
        assert not is_equivalent("3", extract_answer(text)), text
    assert is_equivalent("3", extract_answer(r"\boxed{3} or \boxed{3}"))


def test_gold_answer_from_reference_columns():
    assert gold_answer("18") == "18"
    assert gold_answer("Janet sells 9 eggs.\n#### 18") == "18"
    assert gold_answer(r"so $\boxed{\frac{1}{2}}$", from_solution=True) == r"\frac{1}{2}"
    assert gold_answer("   ") is None
    assert gold_answer(None) is None


# ---------------------------------------------------------------- equivalence

def test_labelled_cases():
    """Facts from Math-Verify's and Hendrycks' test suites, the note's false positives and the
    project's own cases (tests/data/math/equivalence_cases.jsonl), all in one batch per policy."""
    by_policy: dict[str, list[dict]] = {}
    for case in CASES:
        by_policy.setdefault(json.dumps(case.get("policy", {}), sort_keys=True), []).append(case)
    wrong = []
    for key, cases in by_policy.items():
        verdicts = check_batch([(c["gold"], c["pred"]) for c in cases], **json.loads(key))
        wrong += [(c["gold"], c["pred"], c["expected"], v) for c, v in zip(cases, verdicts)
                  if int(v.equal) != c["expected"]]
    assert not wrong, wrong
    assert len(CASES) >= 200
    assert {c["expected"] for c in CASES} == {0, 1}


def test_no_math_verify_false_positive_from_the_note():
    fps = [c for c in CASES if "false positive" in c.get("note", "")]
    assert len(fps) >= 10
    assert not any(check(c["gold"], c["pred"]).equal for c in fps)


def test_three_way_verdicts():
    v = check("3", "3")
    assert v == Verdict("equal") and bool(v) and v.equal
    assert check("3", "4").status == "not_equal"
    assert check("", "4") == Verdict("unknown", "gold unparseable")
    assert check(None, "4") == Verdict("unknown", "gold unparseable")
    assert check("3", None) == Verdict("not_equal", "no answer")
    assert check("3", "x" * 5000).status == "not_equal"
    assert check(r"\frac{", "1").status == "unknown"  # an unreadable gold is never a 0
    assert check(7, "7.0").equal  # numeric golds from a dataset column


def test_policy_options_are_checked():
    with pytest.raises(TypeError, match="unknown math policy"):
        check("1", "1", bogus=True)
    with pytest.raises(ValueError, match="percent"):
        check("1", "1", percent="sometimes")


def test_fast_path_needs_no_pool(monkeypatch):
    import rewards.math.pool as pool

    def boom(*a, **k):
        raise AssertionError("the number fast path must not start workers")

    monkeypatch.setattr(pool, "get_pool", boom)
    got = check_batch([("18", "18"), ("1,000", "1000"), ("0.5", r"\frac{1}{2}"), ("3", "4"), ("3", None),
                       ("12", "12.0")])
    assert [v.equal for v in got] == [True, True, True, False, False, True]


# ---------------------------------------------------------------- the TRL reward

def test_accuracy_reward_trl_signature():
    logged = {}
    out = accuracy_reward(
        prompts=[[{"role": "user", "content": "q"}]] * 5,
        completions=[
            [{"role": "assistant", "content": r"<think>..</think> \boxed{18}"}],
            r"so \boxed{17}",
            "I don't know",
            r"\boxed{18}",
            r"\boxed{\frac{1}{2}}",
        ],
        answer=["18", "18", "18", "", "0.5"],
        trainer_state=None,
        completion_ids=[[1]] * 5,
        log_extra=lambda *a: None,
        log_metric=lambda name, value: logged.__setitem__(name, value),
        other_column=[1] * 5,
    )
    assert out == [1.0, 0.0, 0.0, None, 1.0]
    assert logged["math/unparseable_gold"] == 1 and logged["math/no_answer"] == 1 and logged["math/timeouts"] == 0
    assert accuracy_reward.__name__ == "accuracy_reward"


def test_accuracy_reward_solution_column_and_errors():
    out = accuracy_reward(None, [r"\boxed{2}", r"\boxed{3}"],
                          solution=[r"We get $\boxed{2}$.", "no final answer in here"])
    assert out == [1.0, None]
    with pytest.raises(ValueError, match="answer"):
        accuracy_reward(None, ["x"])
    with pytest.raises(ValueError, match="references"):
        accuracy_reward(None, ["x", "y"], answer=["1"])


def test_make_accuracy_reward_policy():
    strict = rm.make_accuracy_reward(percent="strict")
    assert strict(None, [r"\boxed{50}"], answer=[r"50\%"]) == [0.0]
    assert accuracy_reward(None, [r"\boxed{50}"], answer=[r"50\%"]) == [1.0]
    assert func_name(strict) == "accuracy_reward"  # what TRL logs it under


# ---------------------------------------------------------------- safety: deadlines, threads, asyncio

PATHOLOGICAL = [
    ("3", "9^{9^9}"),
    ("3", "9^{9^{9^{9}}}"),
    ("2", "(10^{7})!"),
    ("5", r"\sum_{k=1}^{10^9} 1/k^2"),
    ("3", r"\dfrac{5^{(5^{(5^{(5^5)})}-4)}-5}{16}"),
    ("1", "(" * 400 + "1" + ")" * 400),
    ("2", r"\sqrt{" * 150 + "2" + "}" * 150),
    ("1", "(x+1)^{100000}"),
    ("x", "x^{x^{x^{x^x}}}"),
    ("1", "10^{10^{10}} - 10^{10^{10}} + 1"),
    ("3", r"\binom{10^{9}}{10^{5}}"),
    ("0", "(x+1)^{999}(x-1)^{999} - (x^2-1)^{999} + 1"),
    ("1", "1" * 1999),
    ("9^{9^9}", "9^{9^9}+0"),
]


def test_pathological_inputs_answer_within_deadline():
    check("1", "x+1")  # start the workers outside the timed part
    for gold, pred in PATHOLOGICAL:
        t = time.monotonic()
        v = check(gold, pred, timeout=2.0)
        took = time.monotonic() - t
        assert took < 2.5, (gold, pred[:40], took)
        assert not v.equal, (gold, pred[:40], v)
    # the pool recovered: ordinary work still goes through
    assert check("x^2+2x+1", "(x+1)^2").equal


def test_hard_timeout_kills_and_recovers_from_threads_and_asyncio():
    slow = "(x+1)^{999}(x-1)^{998} - x"  # symbolic work that takes far longer than 0.5 s
    results = {}

    def worker():
        t = time.monotonic()
        results["v"] = check("3", slow, timeout=0.5)
        results["t"] = time.monotonic() - t

    th = threading.Thread(target=worker)
    th.start()
    th.join(10)
    assert results["v"] == Verdict("unknown", "timeout") and results["t"] < 1.5

    async def main():
        return await asyncio.gather(
            asyncio.to_thread(check, "4", slow, 0.5), asyncio.to_thread(check, "x+1", "1+x")
        )

    v1, v2 = asyncio.run(main())
    assert v1.status == "unknown" and v2.equal


def test_pool_kill_path():
    """A task that the in-worker alarm cannot interrupt (C code retrying waitpid) is killed at
    its deadline, answers timeout, and a fresh worker takes the next task."""
    from rewards.math.pool import WorkerPool

    pool = WorkerPool("os:system", workers=1)
    try:
        assert pool.run([("true",)], timeout=10.0) == [("ok", 0)]
        t = time.monotonic()
        out = pool.run([("sleep 3",), ("true",)], timeout=0.5)
        assert out == [("timeout", None), ("ok", 0)]
        assert time.monotonic() - t < 2.9 and pool.respawns == 1
    finally:
        pool.shutdown()


def test_forked_child_gets_its_own_pool():
    import os

    assert check("1", "x+1").status == "not_equal"  # the parent's pool exists
    pid = os.fork()
    if pid == 0:  # child: must not reuse the parent's pipes
        try:
            os._exit(0 if check("x+1", "1+x").equal and check("(x+1)^2", "x^2+2x+1").equal else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert check("x^2", "x x").equal  # and the parent's pool still works


def test_pool_that_cannot_start_fails_fast():
    from rewards.math.pool import WorkerPool

    pool = WorkerPool("no_such_module_for_math_tests:fn", workers=1)
    try:
        t = time.monotonic()
        assert pool.run([(1,), (2,)], timeout=1.0) == [("error", "workers failed to start")] * 2
        assert pool.run([(3,)], timeout=1.0) == [("error", "workers failed to start")]
        assert time.monotonic() - t < 15
    finally:
        pool.shutdown()


# ---------------------------------------------------------------- reference data sets

@pytest.mark.skipif(not (SHARED / "gsm8k" / "example_model_solutions.jsonl").exists(), reason="needs ../shared/data")
def test_gsm8k_labelled_completions_agree_100_percent():
    rows = [json.loads(line) for line in (SHARED / "gsm8k" / "example_model_solutions.jsonl").open()]
    pairs, labels = [], []
    for row in rows:
        gold = gold_answer(row["ground_truth"], from_solution=True)
        for key in ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"):
            pairs.append((gold, extract_answer(row[key]["solution"], fallbacks=True)))
            labels.append(row[key]["is_correct"])
    assert len(pairs) == 5276
    verdicts = check_batch(pairs)
    disagree = [(p, lab, v) for p, lab, v in zip(pairs, labels, verdicts) if v.equal != lab]
    assert not disagree, disagree[:5]


@pytest.mark.skipif(not (SHARED / "hardverify_math" / "HardVerify-Math.json").exists(), reason="needs ../shared/data")
def test_hardverify_math_recall_and_specificity():
    data = json.loads((SHARED / "hardverify_math" / "HardVerify-Math.json").read_text())
    pairs = [(d["ground_truth"], d["fn_output"]) for d in data] + [(d["ground_truth"], d["tn_output"]) for d in data]
    n = len(data)
    # exact precision (the reward's default) and the opt-in rounded policy; the one accepted
    # "wrong" answer is label noise (id 52: the pred set equals the gold)
    for policy, min_recall in (({}, 0.80), ({"precision": "rounded"}, 0.84)):
        verdicts = check_batch(pairs, timeout=3.0, **policy)
        recall = sum(v.equal for v in verdicts[:n]) / n
        specificity = sum(not v.equal for v in verdicts[n:]) / n
        assert recall >= min_recall, (policy, recall)
        assert specificity >= 0.995, (policy, specificity)
