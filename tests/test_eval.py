"""pass@k, answer types, the report and ``rl-reason eval``."""

import json
import subprocess
import sys
from itertools import combinations
from math import comb

import pytest

from rl_reason.sampling.evaluate import EvalReport, answer_type, evaluate, pass_at_k
from rl_reason.data.tasks import make_problems


@pytest.mark.parametrize("n,c,k", [(5, 0, 1), (5, 2, 1), (5, 2, 2), (6, 3, 4), (10, 1, 10), (4, 4, 2)])
def test_pass_at_k_matches_enumeration(n, c, k):
    # The probability that a random k-subset of the n samples holds a correct one, by brute force.
    hits = sum(any(i < c for i in subset) for subset in combinations(range(n), k))
    assert pass_at_k(n, c, k) == pytest.approx(hits / comb(n, k))


def test_pass_at_k_needs_k_samples():
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


@pytest.mark.parametrize("answer,kind", [("42", "integer"), ("-1,000", "integer"), ("3.5", "decimal"),
                                         ("1/2", "fraction"), ("\\frac{1}{2}", "fraction"), ("x^2+1", "expression"),
                                         ("\\sqrt{2}", "expression"), ("Paris", "text")])
def test_answer_types(answer, kind):
    assert answer_type(answer) == kind


def test_evaluate_reports_pass_at_k_and_breakdowns(tiny_model_dir):
    problems = make_problems(4, seed=5, min_digits=1, max_digits=1)
    problems[0]["source"] = "other"
    problems[1]["answer"] = "1/2"  # unreachable, but it makes a second answer type
    report = evaluate(tiny_model_dir, problems, max_new_tokens=6, k=2, n=3, temperature=1.0)
    assert report.problems == 4 and 0.0 <= report.accuracy <= 1.0
    assert set(report.pass_at_k) == {"pass@1", "pass@2"} and report.samples_per_problem == 3
    assert report.pass_at_k["pass@1"] <= report.pass_at_k["pass@2"]
    assert set(report.by_source) == {"addition", "other"} and report.counts["source"] == {"addition": 3, "other": 1}
    assert set(report.by_answer_type) == {"integer", "fraction"}
    assert set(report.pass_at_k_by_source) == {"addition", "other"}
    table = report.table()
    assert "source=other" in table and "answer=fraction" in table and "pass@2" in table
    assert json.loads(report.to_json())["settings"]["n"] == 3


def test_table_without_sampling():
    report = EvalReport(model="m", problems=2, accuracy=0.5, by_source={"a": 0.5}, counts={"source": {"a": 2}})
    assert report.table().splitlines()[2].split() == ["all", "2", "50.0%"]


def test_cli_eval_writes_json_and_rejects_bad_options(tiny_model_dir, tmp_path):
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "rl_reason.cli", "eval", str(tiny_model_dir), "--num-problems", "3",
                           "--max-new-tokens", "4", "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "slice" in proc.stdout and json.loads(out.read_text())["problems"] == 3
    proc = subprocess.run([sys.executable, "-m", "rl_reason.cli", "eval", str(tiny_model_dir), "--k", "4", "--n", "2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: eval: --n 2 is smaller than --k 4"
