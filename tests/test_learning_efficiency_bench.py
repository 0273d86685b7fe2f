"""benchmarks/learning_efficiency.py end to end with tiny budgets: every arm trains, every snapshot is evaluated,
and the table, plot and JSON are written (the numbers themselves are meaningless at this size)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_learning_efficiency_quick(tmp_path):
    out = tmp_path / "le"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "learning_efficiency.py"), "--quick", "--seeds",
                           "0", "--work", str(tmp_path / "work"), "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.with_suffix(".json").read_text())
    arms = {r["arm"]: r for r in result["rows"]}
    assert set(arms) == {"plain GRPO", "dynamic sampling", "dynamic sampling + curriculum"}
    for row in arms.values():
        points = row["points"]
        assert len(points) >= 2 and all(0.0 <= p["accuracy"] <= 1.0 for p in points)
        assert points[0]["step"] == 0 and points[-1]["cpu_s"] >= 6.0  # the budget ended the run
        assert [p["generated_tokens"] for p in points] == sorted(p["generated_tokens"] for p in points)
        assert not any(Path(p["path"]).exists() for p in points)  # snapshots are removed once evaluated
    assert arms["dynamic sampling"]["extra_rounds"] is not None and arms["plain GRPO"]["extra_rounds"] is None
    assert arms["dynamic sampling + curriculum"]["skipped"] is not None
    table = out.with_suffix(".md").read_text()
    assert table.startswith("| arm |") and table.count("\n| ") == 3 and "generated / trained token" in table
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    assert "dynamic sampling vs plain GRPO" in proc.stdout
