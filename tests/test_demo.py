"""The demo pipeline end to end with tiny budgets (--quick): every stage runs, every file is written."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_quick_demo_writes_summary_and_plot(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "rl_reason.cli", "demo", "--output", str(out), "--quick"],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "math" and summary["quick"]
    # "student" is there only when the export is not empty
    assert {"warm_start", "policy", "student_base"} <= set(summary["by_family"])
    for key in ["warm_start_accuracy", "policy_accuracy", "student_base_accuracy", "student_accuracy"]:
        assert 0.0 <= summary[key] <= 1.0
    assert summary["grpo_traces"] == summary["grpo_steps"] * 64 > 0
    assert summary["traces"] == summary["grpo_traces"] + summary["sampled_traces"]
    assert 0 <= summary["exported"] <= summary["traces"]
    assert summary["wall_seconds"] > 0
    png = (out / "reward_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    assert (out / "grpo" / "traces" / "rank-00000.jsonl").exists()
    assert (out / "grpo_recipe.yaml").exists()
    assert "data:image/png;base64," in (out / "report.html").read_text()
    assert "held-out accuracy" in proc.stdout
