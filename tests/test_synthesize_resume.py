"""A synthesis killed mid-run continues from what it wrote, and nothing is written twice: the
process SIGKILLed (local teacher), and the teacher's HTTP server SIGKILLed (OpenAI-compatible
endpoint, the ``openai`` client): retries, one clear line, exit 2; then the same command again.

The teacher is the untrained tiny model: these tests are about the bookkeeping (every answer and
candidate written once, finished rounds kept, an unfinished one redone from the answer log), which
does not depend on what the teacher says; its replies still go through every filter."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.test_synthesize import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "openai_server.py"
TAXONOMY = ROOT / "tests" / "data" / "synth_taxonomy.yaml"


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def _lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    data = path.read_text()
    return data[: data.rfind("\n") + 1].splitlines()


def _recipe(root: Path, teacher: dict) -> Path:
    from rl_reason.data.tasks import make_problems

    seeds = make_problems(16, seed=3, min_digits=1, max_digits=3)
    (root / "seeds.jsonl").write_text("".join(json.dumps(s) + "\n" for s in seeds))
    recipe = {"output_dir": str(root / "out"), "seed": 1, "synthesize": {
        "task": "math", "num_problems": 1000, "max_rounds": 4, "requests_per_round": 12, "teacher": teacher,
        "seeds": str(root / "seeds.jsonl"), "taxonomy": str(TAXONOMY), "num_examples": 3, "human_share": 0.5,
        "max_completion_length": 6, "filters": {"min_words": 1, "max_words": 40, "blocked_patterns": []},
        "verify": {"num_generations": 2, "min_agreement": 0.5, "max_completion_length": 6}}}
    path = root / "synth.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _cli(recipe: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rl_reason.cli", "synthesize", str(recipe), "--no-progress"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _check_written_once(out: Path, log_before: list[str], cands_before: list[str]) -> None:
    log = _lines(out / "teacher_log.jsonl")
    keys = [json.loads(line)["key"] for line in log]
    assert len(keys) == len(set(keys)), "a teacher answer was written twice"
    assert log[: len(log_before)] == log_before, "answers written before the kill were rewritten"
    rounds = [json.loads(line) for line in _lines(out / "rounds.jsonl")]
    assert [r["round"] for r in rounds] == list(range(len(rounds)))
    cands = [json.loads(line) for line in _lines(out / "candidates.jsonl")]
    ids = [c["id"] for c in cands]
    assert len(ids) == len(set(ids)), "a candidate was recorded twice"
    finished = {json.loads(c)["round"] for c in cands_before} & {r["round"] for r in rounds}
    kept_before = [c for c in cands_before if json.loads(c)["round"] in finished]
    assert [line for line in _lines(out / "candidates.jsonl")][: len(kept_before)] == kept_before
    assert len(rounds) == 4 and len(cands) == 4 * 12
    assert sum(c["status"] != "unparseable" for c in cands) > 0, "no reply reached the later filters"
    rows = [json.loads(line) for line in _lines(out / "dataset" / "train.jsonl")]
    assert [r["id"] for r in rows] == [c["id"] for c in cands if c["status"] == "kept"]
    stats = json.loads((out / "synthesize_stats.json").read_text())
    assert stats["candidates"] == len(cands) and stats["rounds"] == 4


def test_a_killed_run_continues_from_what_it_wrote(tmp_path, tiny_model_dir):
    recipe = _recipe(tmp_path, {"model": str(tiny_model_dir), "batch_size": 64})
    out = tmp_path / "out"
    proc = _cli(recipe)
    _wait_for(lambda: len(_lines(out / "rounds.jsonl")) >= 1, proc)
    mark = len(_lines(out / "teacher_log.jsonl"))
    _wait_for(lambda: len(_lines(out / "teacher_log.jsonl")) >= mark + 3, proc)  # inside round 1 (or 2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    log_before, cands_before = _lines(out / "teacher_log.jsonl"), _lines(out / "candidates.jsonl")
    assert len(_lines(out / "rounds.jsonl")) >= 1
    again = _cli(recipe)
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr[-3000:]
    _check_written_once(out, log_before, cands_before)
    resumed = len(_lines(out / "teacher_log.jsonl")) - len(log_before)
    assert resumed > 0 and "done:" in stdout


def _serve(model_dir: Path, port: int, log: Path) -> subprocess.Popen:
    with log.open("a") as err:
        proc = subprocess.Popen([sys.executable, str(SERVER), str(model_dir), "--port", str(port),
                                 "--model-name", "teacher", "--delay", "0.05"],
                                stdout=subprocess.PIPE, stderr=err, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if select.select([proc.stdout], [], [], 0.5)[0] and proc.stdout.readline().startswith("PORT "):
            return proc
    proc.kill()
    raise RuntimeError(log.read_text())


def test_the_http_teacher_killed_mid_run(tmp_path, tiny_model_dir):
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    server = _serve(tiny_model_dir, port, tmp_path / "server.log")
    recipe = _recipe(tmp_path, {"backend": "openai", "model": "teacher", "base_url": url, "max_retries": 2,
                                "timeout": 30, "max_concurrency": 4})
    out = tmp_path / "out"
    try:
        proc = _cli(recipe, env={**os.environ, "OPENAI_API_KEY": "test-key"})
        _wait_for(lambda: len(_lines(out / "teacher_log.jsonl")) >= 18, proc)  # inside round 1
        server.kill()
        server.wait()
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 2, stderr[-3000:]
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and stderr.strip().splitlines()[-1] == errors[0], stderr[-3000:]
        assert url in errors[0] and "attempts" in errors[0] and "run the same command to continue" in errors[0]
        log_before, cands_before = _lines(out / "teacher_log.jsonl"), _lines(out / "candidates.jsonl")
        server = _serve(tiny_model_dir, port, tmp_path / "server.log")  # the endpoint is back
        again = _cli(recipe)
        stdout, stderr = again.communicate(timeout=600)
        assert again.returncode == 0, stderr[-3000:]
        _check_written_once(out, log_before, cands_before)
    finally:
        server.kill()
        server.wait()
