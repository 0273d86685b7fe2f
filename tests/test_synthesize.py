"""rl-reason synthesize without a trained teacher: bad input, taxonomies, votes, the collapse guard,
resume bookkeeping. The end-to-end runs with a real teacher are in test_synthesize_e2e.py."""

from __future__ import annotations

import json
import random
import socket
from collections import Counter
from pathlib import Path

import pytest
import yaml

from rl_reason.config import ConfigError, load_synthesize_recipe
from rl_reason.synthesize.diversity import answer_type, collapsed, distinct_n
from rl_reason.synthesize.prompts import parse_problem
from rl_reason.synthesize.taxonomy import TaxonomyError, coverage, load_taxonomy, pick_leaf
from rl_reason.synthesize.verify import majority_votes
from tests.test_config_cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "configs" / "synthesize" / "seeds_math.jsonl"
TAXONOMY = ROOT / "configs" / "synthesize" / "taxonomy_math.yaml"


def recipe(tmp_path: Path, teacher_dir, **synth) -> Path:
    section = {"task": "math", "num_problems": 4, "max_rounds": 1, "requests_per_round": 2,
               "teacher": {"model": str(teacher_dir)}, "seeds": str(SEEDS), "taxonomy": str(TAXONOMY)}
    for key, value in synth.items():
        node = section
        *parents, last = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    path = tmp_path / "synth.yaml"
    path.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "out"), "seed": 0, "synthesize": section}))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_one_line_exit_2(result, *needles, out: Path):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not out.exists(), "nothing may be written for bad input"


# --- bad input: one line naming it, exit 2, nothing written ----------------------------------------


@pytest.mark.parametrize("body", [
    "", "{}", "Mathematics:\n", "Mathematics: {Arithmetic: {}}\n", "Mathematics: {Arithmetic: []}\n",
    "Mathematics: {Arithmetic: null, Algebra: null}\n", "Mathematics: {}\nPhysics: {}\n",
])
def test_taxonomy_without_leaves(tmp_path, tiny_model_dir, body):
    tax = tmp_path / "tax.yaml"
    tax.write_text(body)
    result = run_cli("synthesize", recipe(tmp_path, tiny_model_dir, taxonomy=str(tax)))
    assert_one_line_exit_2(result, "taxonomy", str(tax), "no leaves", out=tmp_path / "out")


@pytest.mark.parametrize("body, needle", [
    ("Mathematics: {Arithmetic: {addition: 0}}\n", "weight must be a number > 0"),
    ("Mathematics: {Arithmetic: {addition: -1}}\n", "weight must be a number > 0"),
    ("Mathematics: {Arithmetic: {addition: yes}}\n", "weight must be a number > 0"),
    ("Mathematics: [Arithmetic]\n", "expected a mapping of subjects"),
    ("Mathematics: {Arithmetic: [{name: x}]}\n", "expected a topic name"),
    ("- a\n- b\n", "expected a mapping"),
    ("Mathematics: {Arithmetic: [x, x]}\n", "appears twice"),
    ("Mathematics: {Arithmetic: [x\n", "not valid YAML"),
])
def test_taxonomy_mistakes_name_the_place(tmp_path, tiny_model_dir, body, needle):
    tax = tmp_path / "tax.yaml"
    tax.write_text(body)
    result = run_cli("synthesize", recipe(tmp_path, tiny_model_dir, taxonomy=str(tax)))
    assert_one_line_exit_2(result, str(tax), needle, out=tmp_path / "out")


def test_unreachable_endpoint(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    path = recipe(tmp_path, "served-model", teacher={"backend": "openai", "model": "served-model", "base_url": url,
                                                     "max_retries": 1, "timeout": 5})
    result = run_cli("synthesize", path)
    assert_one_line_exit_2(result, url, out=tmp_path / "out")


@pytest.mark.parametrize("column", ["problem", "prompt", "Question"])
def test_seed_file_without_the_named_column(tmp_path, tiny_model_dir, column):
    result = run_cli("synthesize", recipe(tmp_path, tiny_model_dir, question_column=column))
    assert_one_line_exit_2(result, f"synthesize.question_column: column {column!r} not in", str(SEEDS),
                           out=tmp_path / "out")


def test_seed_file_missing_or_unreadable(tmp_path, tiny_model_dir):
    result = run_cli("synthesize", recipe(tmp_path, tiny_model_dir, seeds=str(tmp_path / "nope.jsonl")))
    assert_one_line_exit_2(result, "synthesize.seeds", "nope.jsonl", "not found", out=tmp_path / "out")
    bad = tmp_path / "seeds.txt"
    bad.write_text("a problem\n")
    result = run_cli("synthesize", recipe(tmp_path, tiny_model_dir, seeds=str(bad)))
    assert_one_line_exit_2(result, "synthesize.seeds", "seeds.txt", out=tmp_path / "out")
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"question": "  "}) + "\n")
    result = run_cli("synthesize", recipe(tmp_path, tiny_model_dir, seeds=str(empty)))
    assert_one_line_exit_2(result, "no non-empty", out=tmp_path / "out")


@pytest.mark.parametrize("key, value", [
    ("filters__rouge_l_threshold", 1.5), ("filters__rouge_l_threshold", -0.1), ("verify__min_agreement", 1.01),
    ("verify__min_agreement", -1), ("difficulty__min_pass_rate", -0.5), ("difficulty__max_pass_rate", 2),
    ("human_share", 1.5), ("collapse__min_distinct_2", -0.2), ("verify__min_kill_rate", 7),
])
def test_threshold_outside_0_1(tmp_path, tiny_model_dir, key, value):
    result = run_cli("synthesize", recipe(tmp_path, tiny_model_dir, **{key: value}))
    assert_one_line_exit_2(result, "synthesize." + key.replace("__", "."), repr(value), out=tmp_path / "out")


def test_threshold_override_on_the_command_line(tmp_path, tiny_model_dir):
    result = run_cli("synthesize", recipe(tmp_path, tiny_model_dir), "synthesize.filters.rouge_l_threshold=2")
    assert_one_line_exit_2(result, "synthesize.filters.rouge_l_threshold", out=tmp_path / "out")


@pytest.mark.parametrize("kwargs, needle", [
    ({"filters__rouge_treshold": 0.5}, "unknown key 'synthesize.filters.rouge_treshold'"),
    ({"difficulty__min_pass_rate": 0.8, "difficulty__max_pass_rate": 0.2}, "min_pass_rate (0.8) is above"),
    ({"teacher": {"backend": "openai", "model": "m"}}, "needs base_url"),
    ({"teacher": {"model": "/no/such/teacher"}}, "synthesize.teacher.model"),
    ({"filters__decontaminate": ["/no/such/bench.jsonl"]}, "synthesize.filters.decontaminate"),
    ({"filters__blocked_patterns": ["(unclosed"]}, "blocked_patterns[0]: not a regex"),
    ({"task": "poetry"}, "synthesize.task"),
    ({"difficulty__model": "policy"}, "untrained 'tiny'"),
])
def test_other_mistakes_name_the_key(tmp_path, tiny_model_dir, kwargs, needle):
    result = run_cli("synthesize", recipe(tmp_path, tiny_model_dir, **kwargs))
    assert_one_line_exit_2(result, needle, out=tmp_path / "out")


def test_top_level_mistakes(tmp_path, tiny_model_dir):
    path = recipe(tmp_path, tiny_model_dir)
    raw = yaml.safe_load(path.read_text())
    raw["synthesise"] = raw.pop("synthesize")
    path.write_text(yaml.safe_dump(raw))
    assert_one_line_exit_2(run_cli("synthesize", path), "unknown key 'synthesise'", "did you mean 'synthesize'",
                           out=tmp_path / "out")


def test_a_resumed_run_must_use_the_same_recipe(tmp_path, tiny_model_dir):
    path = recipe(tmp_path, tiny_model_dir)
    out = tmp_path / "out"
    out.mkdir()
    saved = yaml.safe_load(path.read_text())
    (out / "recipe.yaml").write_text(yaml.safe_dump(saved))
    from rl_reason.synthesize.pipeline import preflight

    preflight(load_synthesize_recipe(path, ["synthesize.num_problems=50", "synthesize.teacher.timeout=9"]))
    with pytest.raises(ConfigError, match="different recipe"):
        preflight(load_synthesize_recipe(path, ["synthesize.verify.min_agreement=0.9"]))
    with pytest.raises(ConfigError, match="different recipe"):
        preflight(load_synthesize_recipe(path, ["seed=3"]))


# --- the parts ----------------------------------------------------------------------------------


def test_taxonomy_shapes_and_balance(tmp_path):
    tax = tmp_path / "t.yaml"
    tax.write_text("Math:\n  Arithmetic:\n    add: 3\n    sub: 1\n  Algebra:\n    - linear\n"
                   "    - {topic: quadratic, weight: 2}\n")
    leaves = load_taxonomy(tax)
    assert [(leaf.subject, leaf.topic, leaf.weight) for leaf in leaves] == [
        ("Arithmetic", "add", 3.0), ("Arithmetic", "sub", 1.0), ("Algebra", "linear", 1.0),
        ("Algebra", "quadratic", 2.0)]
    rng, counts = random.Random(0), Counter()
    for _ in range(700):
        counts[pick_leaf(leaves, counts, rng).name] += 1
    for row in coverage(leaves, counts):  # steered towards the weights' shares, not left to chance
        assert abs(row["share"] - row["target_share"]) < 0.02, row
    shipped = load_taxonomy(TAXONOMY)
    assert len(shipped) >= 10 and len({leaf.subject for leaf in shipped}) >= 5


def test_load_taxonomy_missing_file(tmp_path):
    with pytest.raises(TaxonomyError, match="file not found"):
        load_taxonomy(tmp_path / "missing.yaml")


def test_majority_votes_group_equivalent_answers():
    votes = majority_votes([
        [r"\boxed{1/2}", r"\boxed{0.5}", r"\boxed{\frac{1}{2}}", r"\boxed{3}"],  # three forms of one answer
        [r"\boxed{7}", r"\boxed{8}", r"\boxed{9}", r"\boxed{10}"],  # all disagree
        ["no answer here", "nor here", r"\boxed{4}", r"\boxed{4}"],  # no answer counts against
        [r"\boxed{3} or maybe \boxed{5}", r"\boxed{5}", r"\boxed{5}", "x"],  # a hedge is no answer
        ["nothing", "at all"],
        [r"\boxed{2}", r"\boxed{3}", r"\boxed{3}", r"\boxed{2}"],  # a tie: the group seen first
    ])
    assert (votes[0].agreement, votes[0].votes, votes[0].agreeing) == (0.75, 3, [0, 1, 2])
    assert votes[0].answer in ("1/2", "0.5", r"\frac{1}{2}")
    assert votes[1].agreement == 0.25
    assert (votes[2].answer, votes[2].agreement) == ("4", 0.5)
    assert (votes[3].answer, votes[3].agreement) == ("5", 0.5)
    assert (votes[4].answer, votes[4].agreement) == (None, 0.0)
    assert (votes[5].answer, votes[5].agreement) == ("2", 0.5)


@pytest.mark.parametrize("reply, expected", [
    ("23+45", "23+45"), ("Problem: 23+45", "23+45"), ("New problem: What is 2+2?", "What is 2+2?"),
    ("Example 9: 12+3", "12+3"), ("What is 2+2?\nSolution: 4", "What is 2+2?"),
    ("What is 2+2?\nAnswer: 4", "What is 2+2?"), ("   ", None), ("Problem:", None),
    ("A train leaves at 3 pm.\nHow far does it go?", "A train leaves at 3 pm.\nHow far does it go?"),
])
def test_parse_problem(reply, expected):
    assert parse_problem(reply) == expected


def test_diversity_measures():
    assert distinct_n(["a b c", "a b c"], 2) == 0.5
    assert distinct_n(["a b", "c d"], 2) == 1.0
    assert distinct_n([], 2) == 1.0
    assert [answer_type(a) for a in ["12", "-3", "1,000", "0.5", "3/4", r"\frac{1}{2}", "x+1", r"2\sqrt{2}", None]] == [
        "integer", "integer", "integer", "decimal", "fraction", "fraction", "expression", "expression", "none"]
    ok = {"kept": 3, "distinct_2": 0.8, "mean_rouge_l": 0.3}
    assert collapsed(ok, 0.5, 0.6) is None
    assert "distinct-2" in collapsed({**ok, "distinct_2": 0.4}, 0.5, 0.6)
    assert "mean ROUGE-L" in collapsed({**ok, "mean_rouge_l": 0.7}, 0.5, 0.6)
    assert collapsed({**ok, "kept": 0, "distinct_2": 0.0}, 0.5, 0.6) is None  # nothing kept: nothing to judge


def test_collapse_guard_actions(tmp_path, tiny_model_dir):
    from rl_reason.synthesize.pipeline import _guard, preflight

    low = {"round": 3, "kept": 5, "distinct_2": 0.2, "mean_rouge_l": 0.1, "human_share": 0.5}
    for action, share, stops in [("stop", 0.5, True), ("raise_human_share", 0.75, False), ("warn", 0.5, False)]:
        plan = preflight(load_synthesize_recipe(recipe(tmp_path, tiny_model_dir, collapse={
            "min_distinct_2": 0.3, "action": action, "human_share_step": 0.25})))
        metrics = dict(low)
        next_share, stop = _guard(metrics, plan)
        assert next_share == share and (stop is not None) == stops, action
        assert "distinct-2 0.200 below the floor 0.3" in metrics["collapse"]
    metrics = {**low, "human_share": 1.0}  # nothing left to raise: stop
    plan = preflight(load_synthesize_recipe(recipe(tmp_path, tiny_model_dir, collapse={
        "min_distinct_2": 0.3, "action": "raise_human_share"})))
    assert _guard(metrics, plan)[1] is not None


def test_teacher_log_drops_a_torn_last_line(tmp_path):
    from rl_reason.synthesize.teacher import read_log

    log = tmp_path / "teacher_log.jsonl"
    log.write_text(json.dumps({"key": "a", "texts": ["x"]}) + "\n" + '{"key": "b", "te')
    assert read_log(log) == {"a": ["x"]}
    assert log.read_text() == json.dumps({"key": "a", "texts": ["x"]}) + "\n"


# --- the code task through the pipeline's stages (the teacher's replies written here) ------------

GOOD = ("Problem: Return the largest of three integers a, b and c.\nSolution:\n```python\ndef largest(a, b, c):\n"
        "    return max(a, b, c)\n```\nTests:\n```python\nassert largest(1, 2, 3) == 3\nassert largest(9, -1, 0) == 9\n"
        "assert largest(-5, -2, -7) == -2\nassert largest(4, 8, 6) == 8\n```\n")
CODE_REPLIES = {  # in this order: the kept one joins the pool, so only near_copy comes after it
    "reference_fails": GOOD.replace("return max(a, b, c)", "return min(a, b, c)"),
    "weak_tests": GOOD.split("Tests:")[0] + "Tests:\n```python\nassert largest(1, 2, 3) is not None or True\n```\n",
    "weak_tests_type_only": GOOD.split("Tests:")[0]
    + "Tests:\n```python\nassert isinstance(largest(1, 2, 3), int)\n```\n",
    "invalid_tests_exit": GOOD.replace("assert largest(1, 2, 3) == 3", "import sys\nsys.exit(0)"),
    "invalid_tests_no_assert": GOOD.split("Tests:")[0] + "Tests:\n```python\nprint(largest(1, 2, 3))\n```\n",
    "unparseable": "def largest(a, b, c):\n    return max(a, b, c)\n",
    "kept": GOOD,
    "near_copy": GOOD.replace("three integers", "three whole integers"),
}


def test_code_task_through_the_pipeline(tmp_path, tiny_model_dir):
    """Each reply class meets the filter it should, and a kept problem is a data.source the code reward
    trains on: its tests column judges the reference as passing and a wrong program as failing."""
    from rl_reason.config import DataSection
    from rl_reason.data.load import train_dataset
    from rl_reason.synthesize.card import dataset_row
    from rl_reason.synthesize.pipeline import _screen, _verify, preflight
    from rl_reason.synthesize.rouge import RougePool
    from rewards.code import make_code_reward

    seeds = ROOT / "configs" / "synthesize" / "seeds_python.jsonl"
    plan = preflight(load_synthesize_recipe(recipe(tmp_path, tiny_model_dir, task="code", seeds=str(seeds))))
    pool = RougePool(0.7)
    for line in seeds.read_text().splitlines():
        pool.add(json.loads(line)["question"])
    status = {}
    for label, reply in CODE_REPLIES.items():
        c = {"id": label, "reply": reply, "system_instruction": "Solve the problem step by step.", "leaf": None}
        status[label] = _screen(c, plan, pool)
        if status[label] is None:
            kept = _verify([c], plan, teacher=None, r=0)
            status[label] = "kept" if kept else c["status"]
            if kept:
                pool.offer(c["question"])
                row = dataset_row(c, "code")
    assert status == {"kept": "kept", "reference_fails": "reference_fails", "weak_tests": "weak_tests",
                      "weak_tests_type_only": "weak_tests", "invalid_tests_exit": "invalid_tests",
                      "invalid_tests_no_assert": "invalid_tests", "unparseable": "unparseable",
                      "near_copy": "near_copy"}
    assert row["tests"] == {"type": "assert", "code": row["tests"]["code"], "entry_point": "largest"}
    path = tmp_path / "code.jsonl"
    path.write_text(json.dumps(row) + "\n")
    ds = train_dataset(DataSection(source=str(path)), required_columns={"tests"})
    reward = make_code_reward(all_or_nothing=True)
    good = f"```python\n{row['reference']}\n```"
    bad = "```python\ndef largest(a, b, c):\n    return a\n```"
    assert reward([ds[0]["prompt"]] * 2, [good, bad], tests=[ds[0]["tests"]] * 2) == [1.0, 0.0]
