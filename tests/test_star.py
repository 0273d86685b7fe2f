"""End to end on tiny models: teacher → sample → export → distill → eval, and the student improves.

The teacher is a student-sized model fitted for a few seconds to procedural reference solutions
of 24 one-digit additions, so it is right on a fair share of them; the student starts from random
weights. One STaR round (``rl_reason.sampling.star``) with ``base_model`` = the student is R1's
distillation recipe: rejection-sample the teacher, keep the verified-correct traces, SFT the
student. The student is scored on the problems the teacher was sampled on: a tiny model cannot
learn addition in seconds, but it must learn what the exported traces teach, so this checks the
pipeline's plumbing end to end (wrong traces, empty exports or a broken chat format all fail it).
"""

import json
import subprocess
import sys

import pytest
from datasets import Dataset

from rl_reason.data.tasks import make_problems, prompt_messages
from rl_reason.data.tiny import build_tiny
from rl_reason.distill import run_sft, sft_config
from rl_reason.export.pipeline import ExportOptions
from rl_reason.sampling.evaluate import evaluate
from rl_reason.sampling.star import DEFAULT_SFT, star, star_problems

MAX_NEW = 32
SFT = {"max_steps": 80, "learning_rate": 3e-3, "per_device_train_batch_size": 24, "max_length": 96}


@pytest.mark.slow
def test_teacher_to_student_improves(tmp_path):
    problems = make_problems(24, seed=1, min_digits=1, max_digits=1)
    build_tiny(tmp_path / "teacher_base", size="student", seed=1)
    student = build_tiny(tmp_path / "student_base", size="student", seed=0)
    warm_ds = Dataset.from_list([
        {"messages": prompt_messages(p["question"]) + [{"role": "assistant", "content": p["solution"]}]}
        for p in problems
    ])
    teacher = run_sft(tmp_path / "teacher_base", warm_ds, sft_config(tmp_path / "teacher", {**DEFAULT_SFT, **SFT}))
    heldout = train = problems

    student_before = evaluate(student, heldout, max_new_tokens=MAX_NEW).accuracy
    report = star(
        teacher, train, heldout, tmp_path / "star", rounds=1, base_model=student, num_samples=4, temperature=0.7,
        max_new_tokens=MAX_NEW, export_options=ExportOptions(min_reward=None, correct_only=True, check_format=True),
        sft=SFT, log=lambda _: None,
    )
    teacher_acc, round1 = report[0]["accuracy"], report[1]
    assert teacher_acc > 0.0, "the warmed teacher should solve some problems"
    assert 0 < round1["exported"] <= round1["correct"] <= round1["sampled"] == 96
    assert round1["accuracy"] > student_before, (student_before, round1)
    assert json.loads((tmp_path / "star" / "star_report.json").read_text()) == report
    card = (tmp_path / "star" / "round-1" / "export" / "README.md").read_text()
    assert "star-round-1" in card


def test_star_cli_rejects_bad_rounds(tiny_model_dir, tmp_path):
    cmd = [sys.executable, "-m", "rl_reason.cli", "star", str(tiny_model_dir), "-o", str(tmp_path / "s"),
           "--rounds", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --rounds must be at least 1"


def test_star_problems_keep_heldout_questions_out_of_training():
    train, heldout = star_problems("addition", None, num_problems=300, num_eval=50, seed=3)
    assert len(heldout) == 50 and train
    assert not {p["question"] for p in train} & {p["question"] for p in heldout}
