"""Rejection sampling from a teacher into traces, and ``rl-reason sample``."""

import subprocess
import sys

import pytest

from rl_reason.cli.sampling import parse_rewards
from rl_reason.config import ConfigError
from rl_reason.data.tasks import make_problems
from rl_reason.export.pipeline import ExportOptions, export
from rl_reason.sampling.generation import resolve_backend
from rl_reason.sampling.sample import sample_traces
from rl_reason.traces.reader import read_traces
from rl_reason.traces.schema import reward_roles, write_run_info


def test_sample_traces_writes_scored_records(tiny_model_dir, tmp_path):
    problems = make_problems(3, seed=1, min_digits=1, max_digits=1)
    result = sample_traces(tiny_model_dir, problems, tmp_path / "traces", num_samples=2, temperature=1.0,
                           max_new_tokens=6, seed=0, run_id="t")
    records = list(read_traces(tmp_path / "traces"))
    assert result["samples"] == len(records) == 6 and result["prompts"] == 3
    assert result["correct"] == sum(r["rewards"]["accuracy_reward"] == 1.0 for r in records)
    r = records[0]
    assert r["mode"] == "sample" and r["run_id"] == "t" and r["answer"] == problems[0]["answer"]
    assert set(r["rewards"]) == {"accuracy_reward", "think_format_reward"}
    assert r["completion_tokens"] == len(r["completion_ids"]) <= 6
    assert r["finish_reason"] in ("stop", "length") and r["sampling"]["n"] == 2
    assert [rec["group"] for rec in records] == ["sample-0", "sample-0", "sample-1", "sample-1", "sample-2", "sample-2"]
    assert reward_roles(tmp_path / "traces") == {"accuracy_reward": "verifier", "think_format_reward": "format"}


USER_REWARDS = """
def even_answer(completions, answer, **kwargs):
    return [float(int(a) % 2 == 0) for a in answer]
"""


def test_a_users_verifier_counts_in_sampling_and_export(tiny_model_dir, tmp_path, monkeypatch):
    (tmp_path / "user_rewards_sample.py").write_text(USER_REWARDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    problems = make_problems(4, seed=1, min_digits=1, max_digits=1)
    even = sum(int(p["answer"]) % 2 == 0 for p in problems)
    assert 0 < even < 4
    traces = tmp_path / "traces"
    specs = [("user_rewards_sample:even_answer", 1.0, {}), ("format", 0.1, {})]
    result = sample_traces(tiny_model_dir, problems, traces, reward_specs=specs, num_samples=2, max_new_tokens=4,
                           run_id="u")
    assert result["correct"] == 2 * even and result["solved"] == even
    assert reward_roles(traces) == {"even_answer": "verifier", "think_format_reward": "format"}
    # export --correct-only judges by the roles sampling recorded in traces/run.json
    opts = ExportOptions(min_reward=None, correct_only=True, keep_truncated=True, dedup=False)
    stats = export(traces, tmp_path / "out", options=opts)
    assert stats.kept == result["correct"]
    # without them the name means nothing to export: no verifier scored any record
    (traces / "run.json").unlink()
    stats = export(traces, tmp_path / "out", options=opts)
    assert stats.kept == 0 and stats.removed["not_verified_correct"] == 8


def test_sampling_refuses_a_reward_the_traces_record_with_another_role(tmp_path):
    (tmp_path / "traces").mkdir()
    write_run_info(tmp_path / "traces", {"run_id": "train", "reward_roles": {"accuracy_reward": "shaping"}})
    with pytest.raises(ConfigError, match="records reward 'accuracy_reward' as a shaping"):
        sample_traces(tmp_path / "no-model", [{"question": "1+1", "answer": "2"}], tmp_path / "traces")


def test_parse_rewards():
    assert parse_rewards("math:1.0, format:0.1") == [("math", 1.0, {}), ("format", 0.1, {})]
    assert parse_rewards("format") == [("format", 1.0, {})]
    assert parse_rewards("rewards.format:think_format_reward:0.5") == [("rewards.format:think_format_reward", 0.5, {})]
    with pytest.raises(ConfigError):
        parse_rewards("nosuch:1")


def test_backend_resolution():
    assert resolve_backend("transformers") == "transformers"
    assert resolve_backend("auto") in ("transformers", "vllm")
    with pytest.raises(ValueError):
        resolve_backend("tgi")


def test_cli_sample(tiny_model_dir, tmp_path):
    cmd = [sys.executable, "-m", "rl_reason.cli", "sample", str(tiny_model_dir), "-o", str(tmp_path / "traces"),
           "--num-problems", "2", "-n", "2", "--max-new-tokens", "4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "of 4 samples correct" in proc.stdout and len(list(read_traces(tmp_path / "traces"))) == 4
    proc = subprocess.run(cmd + ["--rewards", "bogus"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: --rewards: unknown reward 'bogus'")
