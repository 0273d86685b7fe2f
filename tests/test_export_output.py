"""Export output: both views, Parquet and JSONL, the dataset card, mixing, compaction, atomicity, the CLI."""

import json
import subprocess
import sys

import pytest
from datasets import load_dataset

from rl_reason.traces.compact import compact
from rl_reason.traces.parquet import read_parquet_shard, record_to_row, row_to_record
from rl_reason.export.pipeline import ExportError, ExportOptions, export
from rl_reason.export.publish import push_to_hub
from rl_reason.traces.reader import TraceSource
from rl_reason.traces.schema import write_run_info
from rl_reason.traces.writer import TraceWriter

SYS = {"role": "system", "content": "sys"}


def rec(q, completion, correct, step=0, **kw):
    return {"step": step, "mode": "train", "group": f"{step}-0-{q}", "prompt": [SYS, {"role": "user", "content": q}],
            "completion": completion, "answer": "3",
            "rewards": {"accuracy_reward": float(correct), "think_format_reward": 1.0},
            "reward": float(correct) + 0.1, "advantage": 0.5, "completion_tokens": len(completion), "truncated": False,
            "id": f"id-{q}", "source": "unit", **kw}


def make_run(directory, n_prompts=6, ranks=2):
    for rank in range(ranks):
        with TraceWriter(directory, rank=rank, run_id="run-A") as w:
            for p in range(rank, n_prompts, ranks):
                for g in range(4):
                    correct = g < (p % 4) + 1  # pass rates 1/4 .. 4/4
                    answer = 2 * p if correct else 0
                    w.add(rec(f"{p}+{p}", f"<think>\nwork {p} {g}\n</think>\n\\boxed{{{answer}}}", correct))
    return directory


@pytest.fixture
def run_dir(tmp_path):
    return make_run(tmp_path / "traces")


def test_parquet_views_and_card(tmp_path, run_dir):
    # not a shard: goes to the card
    (run_dir / "run.json").write_text(json.dumps({"git_sha": "abc123", "model": "tiny"}))
    opts = ExportOptions(min_reward=None, correct_only=True, check_format=True)
    stats = export(run_dir, tmp_path / "out", options=opts, fmt="parquet")
    out = tmp_path / "out"
    assert stats.read == 24 and stats.kept == sum((p % 4) + 1 for p in range(6)) and stats.prompts == 6
    # datasets caches a local directory by its name and config, whatever its files: a fresh cache
    msgs = load_dataset(str(out), "messages", split="train", cache_dir=str(tmp_path / "hf"))
    probs = load_dataset(str(out), "problems", split="train", cache_dir=str(tmp_path / "hf"))
    assert len(msgs) == stats.kept and len(probs) == 6
    row = probs[0]
    assert len(row["generations"]) == len(row["correctness"]) == len(row["finish_reasons"]) == 4
    assert row["correctness_count"] == sum(row["correctness"]) and row["pass_rate"] == row["correctness_count"] / 4
    assert row["num_generations"] == row["num_samples"] == 4 and row["generations_pass_rate"] == row["pass_rate"]
    assert row["selected"] == row["correctness"] and row["messages"][-1]["role"] == "assistant"
    card = (out / "README.md").read_text()
    assert "config_name: problems" in card and "run-A" in card and "| `not_verified_correct` |" in card
    assert f"traces exported: {stats.kept}" in card and "```" in card and '"git_sha": "abc123"' in card


def test_problem_rows_count_kept_generations_apart_from_every_sample(tmp_path):
    good, wrong = "<think>\nwork\n</think>\n\\boxed{6}", "<think>\nwork\n</think>\n\\boxed{0}"
    with TraceWriter(tmp_path / "traces", run_id="run-B") as w:
        samples = [(good, True, {}), (good, True, {}), ("<think>\ncut", True, {"truncated": True}), (wrong, False, {})]
        for completion, correct, extra in samples:
            w.add(rec("3+3", completion, correct, **extra))
        w.add(rec("9+9", good, True, mode="eval"))  # a prompt seen only in evaluation
    export(tmp_path / "traces", tmp_path / "out", options=ExportOptions(min_reward=None))
    (row,) = [json.loads(line) for line in (tmp_path / "out" / "data" / "problems.jsonl").read_text().splitlines()]
    # every sample: 3 of 4 correct; the generations that passed the filters (no duplicate, no truncated): 1 of 2
    assert row["num_samples"] == 4 and row["pass_rate"] == 0.75
    assert row["generations"] == [good, wrong] and row["correctness"] == [True, False]
    assert row["num_generations"] == 2 and row["correctness_count"] == 1 and row["generations_pass_rate"] == 0.5
    card = (tmp_path / "out" / "README.md").read_text()
    assert "prompts seen: 1 (and 1 only in evaluation samples, which --include-eval exports); prompts exported" in card
    stats = json.loads((tmp_path / "out" / "export_stats.json").read_text())
    assert stats["prompts_seen"] == 1 and not (tmp_path / "out" / "dataset" / "export_stats.json").exists()


def test_export_judges_by_the_roles_the_run_recorded(tmp_path):
    with TraceWriter(tmp_path / "traces", run_id="run-C") as w:
        for q, value in [("1+1", 1.0), ("2+2", 0.0)]:
            w.add({**rec(q, "<think>\nx\n</think>\n\\boxed{2}", True), "rewards": {"my_check": value}, "reward": 0.0})
    write_run_info(tmp_path / "traces", {"run_id": "run-C", "reward_roles": {"my_check": "verifier"}})
    stats = export(tmp_path / "traces", tmp_path / "out", options=ExportOptions(min_reward=None, correct_only=True))
    assert stats.kept == 1 and stats.removed == {"not_verified_correct": 1}
    rows = [json.loads(line) for line in (tmp_path / "out" / "data" / "problems.jsonl").read_text().splitlines()]
    assert [r["problem"] for r in rows] == ["1+1"] and rows[0]["pass_rate"] == 1.0


def test_mixing_human_rows_at_a_ratio(tmp_path, run_dir):
    human = tmp_path / "human.jsonl"
    human.write_text("".join(json.dumps({"question": f"q{i}", "answer": f"a{i} #### {i}"}) + "\n" for i in range(100)))
    stats = export(run_dir, tmp_path / "out", options=ExportOptions(min_reward=None, correct_only=True), mix=str(human),
                   mix_ratio=0.2)
    rows = [json.loads(line) for line in (tmp_path / "out" / "data" / "messages.jsonl").read_text().splitlines()]
    human_rows = [r for r in rows if r["origin"] == "human"]
    assert stats.mixed == len(human_rows) == round(stats.kept * 0.2 / 0.8)
    assert human_rows[0]["messages"][-1]["role"] == "assistant" and human_rows[0]["source"] == "human:human"
    with pytest.raises(ExportError):
        export(run_dir, tmp_path / "out2", mix=str(human), mix_ratio=1.5)


def test_compaction_is_lossless_and_export_reads_parquet(tmp_path, run_dir):
    before = sorted((json.dumps(r, sort_keys=True) for _, r in TraceSource(run_dir)))
    export(run_dir, tmp_path / "from_jsonl", fmt="jsonl")
    done = compact(run_dir)
    assert done == {"rank-00000.parquet": 12, "rank-00001.parquet": 12}
    assert not list(run_dir.glob("*.jsonl"))
    after = sorted((json.dumps(r, sort_keys=True) for _, r in TraceSource(run_dir)))
    assert [json.loads(a) for a in after] == [json.loads(b) for b in before]
    assert len(list(read_parquet_shard(run_dir / "rank-00001.parquet"))) == 12
    export(run_dir, tmp_path / "from_parquet", fmt="jsonl")
    a = (tmp_path / "from_jsonl" / "data" / "messages.jsonl").read_text()
    b = (tmp_path / "from_parquet" / "data" / "messages.jsonl").read_text()
    assert a == b and a


def test_compact_rows_keep_odd_fields():
    record = {"schema": 1, "prompt": "plain text prompt", "completion": "c", "answer": 42,
              "rewards": {"a": None, "b": 1},
              "completion_ids": [1, 2, 3], "step": None, "new_field": {"x": 1}}
    back = row_to_record(record_to_row(record))
    assert back == {**record, "rewards": {"a": None, "b": 1.0}, "step": None} | {"step": None} or back
    assert back["answer"] == 42 and back["completion_ids"] == [1, 2, 3] and back["new_field"] == {"x": 1}
    assert back["prompt"] == "plain text prompt" and "step" not in back


def test_truncated_last_line_is_skipped(tmp_path, run_dir):
    shard = run_dir / "rank-00000.jsonl"
    with open(shard, "a") as f:
        f.write('{"prompt": [{"role": "user", "content": "cut')
    stats = export(run_dir, tmp_path / "out")
    assert stats.read == 24 and stats.skipped_lines == {"truncated": 1, "corrupt": 0}


def test_errors_leave_nothing_half_written(tmp_path, run_dir):
    out = tmp_path / "out"
    export(run_dir, out)
    before = (out / "data" / "messages.jsonl").read_text()
    with pytest.raises(ExportError):
        export(run_dir, out, options=ExportOptions(decontaminate=[str(tmp_path / "missing.jsonl")]))
    with pytest.raises(FileNotFoundError):
        export(tmp_path / "nope", out)
    assert (out / "data" / "messages.jsonl").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "traces"]


def test_push_to_hub_offline_is_a_clear_error(tmp_path, run_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    export(run_dir, tmp_path / "out")
    with pytest.raises(ExportError, match="intact in"):
        push_to_hub(tmp_path / "out", "someone/traces")
    assert (tmp_path / "out" / "README.md").exists()


def cli(*args):
    return subprocess.run([sys.executable, "-m", "rl_reason.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_cli_export_compact_and_errors(tmp_path, run_dir):
    evalset = tmp_path / "eval.jsonl"
    evalset.write_text(json.dumps({"question": "0 + 0"}) + "\n")
    proc = cli("export", run_dir, "-o", tmp_path / "out", "--no-min-reward", "--correct-only", "--select", "shortest",
               "--decontaminate", evalset, "--format", "parquet", "--push-to-hub", "me/traces")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: push to the Hub failed") and proc.stderr.count("\n") == 1
    assert "kept 5 from 5 prompts" in proc.stdout  # prompt "0+0" decontaminated, one trace per prompt
    assert (tmp_path / "out" / "data" / "problems.parquet").exists()
    proc = cli("export", run_dir, "-o", tmp_path / "bad", "--select", "random")
    assert proc.returncode == 2 and proc.stderr.startswith("error: select") and not (tmp_path / "bad").exists()
    proc = cli("compact", run_dir)
    assert proc.returncode == 0 and "rank-00000.parquet: 12 traces" in proc.stdout
    proc = cli("compact", run_dir)
    assert proc.returncode == 2 and proc.stderr.startswith("error: no JSONL")
