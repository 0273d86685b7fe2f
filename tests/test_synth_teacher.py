"""The synthesize tests' teacher (tests/synth_teacher.py): its oracle, its corpus and, slow, its quality."""

import random
import re
from collections import Counter

import pytest

from rl_reason.synthesize.prompts import (
    DEFAULT_SYSTEM_INSTRUCTIONS,
    PROBLEM_SYSTEM,
    parse_problem,
    problem_request,
    solution_messages,
)
from rl_reason.synthesize.taxonomy import load_taxonomy
from tests.synth_teacher import (
    PROBLEM_MAX_NEW_TOKENS,
    SOLUTION_MAX_NEW_TOKENS,
    TAXONOMY,
    TOPICS,
    ground_truth,
    heldout_questions,
    leaf_of,
    problem_on_leaf,
    procedural_question,
    teacher_corpus,
    teacher_solution,
)

_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def boxed(text: str) -> str | None:
    found = _BOXED.findall(text)
    return found[-1].strip() if found else None


@pytest.mark.parametrize("question, answer", [
    ("12+34", "46"), ("0+0", "0"), ("7+8", "15"), (" 999 + 1 ", "1000"), ("123+4", "127"),
    ("12-34", None), ("1.5+2", None), ("12+34+5", None), ("a+b", None), ("", None), ("+3", None),
    ("3+", None), ("-1+2", None), ("05+3", None), ("12 34", None), ("12+34\nSolution: 46", None),
    ("\uff11\uff12+3", None), (None, None),
])
def test_ground_truth(question, answer):
    assert ground_truth(question) == answer


@pytest.mark.parametrize("question, topic", [
    ("3+4", TOPICS[1]), ("0+9", TOPICS[1]), ("12+3", TOPICS[2]), ("3+12", TOPICS[2]), ("99+99", TOPICS[2]),
    ("100+1", TOPICS[3]), ("5+999", TOPICS[3]), ("123+456", TOPICS[3]),
    ("1000+1", None), ("12-3", None), ("1.5+2", None), ("", None), ("a+b", None),
])
def test_leaf_of(question, topic):
    assert leaf_of(question) == topic


def test_taxonomy_matches_the_generators_frequencies():
    leaves = load_taxonomy(TAXONOMY)
    assert [(leaf.discipline, leaf.subject) for leaf in leaves] == [("Mathematics", "Addition")] * 3
    assert [leaf.topic for leaf in leaves] == [TOPICS[d] for d in (1, 2, 3)]
    # Each operand has 1-3 digits uniformly: the larger one's digit count has odds 1 : 3 : 5.
    odds = Counter(max(na, nb) for na in (1, 2, 3) for nb in (1, 2, 3))
    assert [leaf.weight for leaf in leaves] == [float(odds[d]) for d in (1, 2, 3)]


@pytest.mark.parametrize("a, b, lines", [
    (457, 86, ["7+6+0=13: 3", "5+8+1=14: 43", "4+0+1=5: 543"]),
    (5, 7, ["5+7+0=12: 12"]),
    (0, 0, ["0+0+0=0: 0"]),
    (999, 1, ["9+1+0=10: 0", "9+0+1=10: 00", "9+0+1=10: 1000"]),
    (3, 120, ["3+0+0=3: 3", "0+2+0=2: 23", "0+1+0=1: 123"]),
])
def test_teacher_solution(a, b, lines):
    assert teacher_solution(a, b) == "<think>\n" + "\n".join(lines) + "\n</think>\n\\boxed{" + str(a + b) + "}"


def test_teacher_solution_is_always_right():
    rng = random.Random(1)
    for _ in range(3000):
        question = procedural_question(rng)
        a, b = map(int, question.split("+"))
        assert boxed(teacher_solution(a, b)) == ground_truth(question)


def test_teacher_corpus_requests_and_solutions():
    corpus = teacher_corpus(400, seed=3, request_share=0.3)
    assert corpus == teacher_corpus(400, seed=3, request_share=0.3)
    leaves = {leaf.topic: leaf for leaf in load_taxonomy(TAXONOMY)}
    held = set(heldout_questions())
    kinds = Counter()
    for messages in corpus:
        *prompt, reply = messages
        assert reply["role"] == "assistant" and [m["role"] for m in prompt] == ["system", "user"]
        if prompt[0]["content"] == PROBLEM_SYSTEM:
            kinds["request"] += 1
            examples = re.findall(r"^Example \d+: (.*)$", prompt[1]["content"], re.MULTILINE)
            assert 2 <= len(examples) <= 6 and all(ground_truth(e) for e in examples)
            topic = re.search(r"on the topic: (.*) \(Mathematics / Addition\)", prompt[1]["content"]).group(1)
            kinds[topic] += 1
            assert prompt == problem_request(examples, leaves[topic])
            assert parse_problem(reply["content"]) == reply["content"]
            assert ground_truth(reply["content"]) and leaf_of(reply["content"]) == topic
            assert reply["content"] not in examples
        else:
            kinds["solution"] += 1
            question = prompt[1]["content"]
            instruction = next(i for i in DEFAULT_SYSTEM_INSTRUCTIONS if prompt[0]["content"].startswith(i))
            assert prompt == solution_messages(question, instruction)
            assert question not in held
            a, b = map(int, question.split("+"))
            assert reply["content"] == teacher_solution(a, b) and boxed(reply["content"]) == ground_truth(question)
    assert kinds["request"] > 70 and kinds["solution"] > 200
    assert all(kinds[topic] > 10 for topic in TOPICS.values())


def test_leaf_conditioned_operands_follow_the_generator():
    rng = random.Random(0)
    for digits in (1, 2, 3):
        pairs = [problem_on_leaf(rng, digits) for _ in range(3000)]
        assert all(leaf_of(f"{a}+{b}") == TOPICS[digits] for a, b in pairs)
        # Given the larger operand's digit count d, each of the 2d-1 digit-count pairs is equally likely.
        shapes = Counter((len(str(a)), len(str(b))) for a, b in pairs)
        assert len(shapes) == 2 * digits - 1
        assert max(shapes.values()) / min(shapes.values()) < 1.3


@pytest.mark.slow
def test_teacher_quality(synth_teacher_dir):
    """The trained teacher writes valid, on-leaf, fresh problems and solves held-out ones."""
    from rl_reason.sampling.generation import Generator

    teacher = Generator(synth_teacher_dir)
    leaves = load_taxonomy(TAXONOMY)
    rng = random.Random(11)

    # (1) Problem requests at temperature 1.0, 50 per leaf, 2-6 procedural examples each.
    requests = []
    for i in range(150):
        examples = [procedural_question(rng) for _ in range(rng.randint(2, 6))]
        requests.append((examples, leaves[i % 3]))
    replies = teacher([problem_request(ex, leaf) for ex, leaf in requests], max_new_tokens=PROBLEM_MAX_NEW_TOKENS,
                      temperature=1.0, seed=0)
    valid, on_leaf, copies = [], Counter(), 0
    for sample, (examples, leaf) in zip(replies, requests):
        question = parse_problem(sample.text)
        if question is None or ground_truth(question) is None:
            continue
        valid.append(question)
        on_leaf[leaf.topic] += leaf_of(question) == leaf.topic
        copies += question in examples
    n = len(requests)
    valid_rate, leaf_rate, copy_rate = len(valid) / n, sum(on_leaf.values()) / n, copies / n
    distinct = len(set(valid)) / max(1, len(valid))
    print(f"\nproblems: valid {valid_rate:.1%}, on the requested leaf {leaf_rate:.1%} "
          f"({', '.join(f'{t}: {on_leaf[t] / 50:.0%}' for t in TOPICS.values())}), "
          f"copies of an example {copy_rate:.1%}, distinct {distinct:.1%}")

    # (2) Greedy solutions of 100 held-out procedural problems (digits 1-3).
    held = heldout_questions()
    greedy_qs = held[:100]
    outs = teacher([solution_messages(q, DEFAULT_SYSTEM_INSTRUCTIONS[i % 3]) for i, q in enumerate(greedy_qs)],
                   max_new_tokens=SOLUTION_MAX_NEW_TOKENS, temperature=0.0)
    greedy = sum(boxed(s.text) == ground_truth(q) for s, q in zip(outs, greedy_qs)) / len(greedy_qs)

    # (3) Majority vote over K=5 samples at temperature 0.7 on 60 more held-out problems.
    k, vote_qs = 5, held[100:160]
    outs = teacher([solution_messages(q, DEFAULT_SYSTEM_INSTRUCTIONS[i % 3]) for i, q in enumerate(vote_qs)],
                   max_new_tokens=SOLUTION_MAX_NEW_TOKENS, temperature=0.7, num_samples=k, seed=0)
    agreed = agreed_correct = sample_correct = 0
    for i, q in enumerate(vote_qs):
        answers = [boxed(s.text) for s in outs[i * k : (i + 1) * k]]
        sample_correct += sum(a == ground_truth(q) for a in answers)
        top, votes = Counter(answers).most_common(1)[0]
        if votes / k >= 0.6:
            agreed += 1
            agreed_correct += top == ground_truth(q)
    precision = agreed_correct / max(1, agreed)
    print(f"solutions: greedy {greedy:.1%} on {len(greedy_qs)} held-out; samples at T=0.7 "
          f"{sample_correct / (k * len(vote_qs)):.1%} correct; a majority of >=60% of {k} on "
          f"{agreed}/{len(vote_qs)} problems, correct on {precision:.1%} of those")

    # Measured (seed 0): valid 95%, on the leaf 71% (43% if it ignored the leaf), no copies, 94% distinct,
    # greedy 98%, majorities on all 60 and all correct.
    assert valid_rate >= 0.90
    assert leaf_rate >= 0.60
    assert copy_rate <= 0.05
    assert distinct >= 0.8
    assert greedy >= 0.95
    assert agreed >= 0.9 * len(vote_qs) and precision >= 0.95
