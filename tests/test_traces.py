"""Trace store: append per rank, flushed per step, readable after a crash."""

import json
import os
import subprocess
import sys
import textwrap

from rl_reason.traces.reader import read_traces
from rl_reason.traces.schema import shard_path
from rl_reason.traces.writer import TraceWriter


def test_write_read_and_append(tmp_path):
    with TraceWriter(tmp_path, rank=0, run_id="r1") as w:
        for i in range(3):
            w.add({"step": i, "completion": f"c{i}", "reward": 1.0})
        w.flush()
        assert len(list(read_traces(tmp_path))) == 3
    with TraceWriter(tmp_path, rank=0, run_id="r2") as w:  # a resumed run appends
        w.add({"step": 3, "completion": "c3", "reward": 0.0})
    with TraceWriter(tmp_path, rank=1, run_id="r2") as w:
        w.add({"step": 3, "completion": "other rank", "reward": 0.0})
    records = list(read_traces(tmp_path))
    assert [r["step"] for r in records] == [0, 1, 2, 3, 3]
    assert {r["rank"] for r in records} == {0, 1}
    assert records[0]["run_id"] == "r1" and records[3]["run_id"] == "r2"
    assert all(r["schema"] == 1 and isinstance(r["time"], float) for r in records)


def test_truncated_last_line_is_skipped(tmp_path):
    with TraceWriter(tmp_path, rank=0) as w:
        w.add({"step": 0, "completion": "ok"})
    with open(shard_path(tmp_path, 0), "a") as f:
        f.write('{"step": 1, "completion": "cut sho')
    stats = {}
    records = list(read_traces(tmp_path, stats))
    assert [r["step"] for r in records] == [0]
    assert stats["truncated"] == 1 and stats["corrupt"] == 0


def test_unflushed_records_are_lost_but_flushed_ones_survive_sigkill(tmp_path):
    """A process killed mid-run keeps every step it flushed."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from rl_reason.traces.writer import TraceWriter
        w = TraceWriter({str(tmp_path)!r}, rank=0)
        for step in range(5):
            w.add({{"step": step}})
            w.flush()
        w.add({{"step": 99}})  # in flight, never flushed
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script])
    assert proc.returncode == -9
    assert [r["step"] for r in read_traces(tmp_path)] == [0, 1, 2, 3, 4]


def test_non_ascii_and_odd_values_round_trip(tmp_path):
    with TraceWriter(tmp_path) as w:
        w.add({"completion": "ünïcode ∑ \n newline", "rewards": {"a": None}})
    (record,) = read_traces(tmp_path)
    assert record["completion"] == "ünïcode ∑ \n newline" and record["rewards"] == {"a": None}
    line = open(shard_path(tmp_path, 0), encoding="utf-8").read()
    assert line.count("\n") == 1 and json.loads(line)
    assert os.path.getsize(shard_path(tmp_path, 0)) > 0


def test_rewind_drops_steps_that_will_rerun(tmp_path):
    from rl_reason.traces.writer import rewind_shard

    with TraceWriter(tmp_path, rank=0) as w:
        for step in range(5):
            w.add({"step": step, "mode": "train"})
        w.add({"step": None, "mode": "sample"})  # rejection-sampling traces are not re-run
    with open(shard_path(tmp_path, 0), "a") as f:
        f.write('{"step": 5, "mo')  # the killed write
    assert rewind_shard(shard_path(tmp_path, 0), 3) == 2
    assert [r["step"] for r in read_traces(tmp_path)] == [0, 1, 2, None]
    assert rewind_shard(tmp_path / "missing.jsonl", 0) == 0


def test_rewind_keeps_the_evaluation_that_ran_before_the_checkpoint(tmp_path):
    from rl_reason.traces.writer import rewind_shard

    with TraceWriter(tmp_path, rank=0) as w:
        for step in range(4):
            w.add({"step": step, "mode": "train"})
            if step % 2 == 0:
                w.add({"step": step, "mode": "eval"})
    # A checkpoint at step 2 is saved after step 2's evaluation; training samples at step 2 are re-run.
    assert rewind_shard(shard_path(tmp_path, 0), 2) == 2
    kept = [(r["step"], r["mode"]) for r in read_traces(tmp_path)]
    assert kept == [(0, "train"), (0, "eval"), (1, "train"), (2, "eval")]


def test_trace_counters_come_from_the_checkpoint_or_else_the_rewound_shard(tmp_path):
    from rl_reason.train.trainer import COUNTERS_DIR, load_trace_counters

    with TraceWriter(tmp_path / "traces", rank=1, run_id="r") as w:
        for batch in range(3):
            for group in range(2):
                w.add({"step": batch, "mode": "train", "group": f"{batch}-{batch}-{group}"})
    with TraceWriter(tmp_path / "traces", rank=1, run_id="an-earlier-run") as w:
        w.add({"step": 0, "mode": "train", "group": "0-7-0"})
    shard = shard_path(tmp_path / "traces", 1)
    checkpoint = tmp_path / "checkpoint-3"
    checkpoint.mkdir()
    assert load_trace_counters(checkpoint, 1, shard, "r") == {"generation_batches": 3, "written": 6, "run_id": "r"}
    (checkpoint / COUNTERS_DIR).mkdir()
    (checkpoint / COUNTERS_DIR / "rank-00001.json").write_text('{"generation_batches": 4, "written": 9, "run_id": "r"}')
    assert load_trace_counters(checkpoint, 1, shard, "r")["generation_batches"] == 4


def test_line_breaks_other_than_newline_survive_every_reader(tmp_path):
    """Shards split on b"\\n" only: str.splitlines() would also break on these, inside a record."""
    from rl_reason.traces.compact import compact
    from rl_reason.traces.writer import rewind_shard

    odd = "a\u2028b\u2029c\x85d\x0ce\x0bf\x1cg\x1dh\x1ei\rj\r\nk"
    records = [{"step": step, "mode": "train", "prompt": [{"role": "user", "content": f"q{step} {odd}"}],
                "completion": f"c{step} {odd}", "rewards": {"r": 1.0}} for step in range(4)]
    with TraceWriter(tmp_path, rank=0, run_id="r") as w:
        for r in records:
            w.add(r)
    shard = shard_path(tmp_path, 0)
    assert len(shard.read_text(encoding="utf-8").splitlines()) > len(records)  # the trap this test is about

    def read_back():
        return [(r["step"], r["prompt"], r["completion"]) for r in read_traces(tmp_path)]

    expected = [(r["step"], r["prompt"], r["completion"]) for r in records]
    assert read_back() == expected
    assert rewind_shard(shard, 3) == 1
    assert read_back() == expected[:3]
    assert compact(tmp_path) == {"rank-00000.parquet": 3}
    assert not shard.exists() and read_back() == expected[:3]
