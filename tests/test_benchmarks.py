"""The sandbox benchmark's modes run end to end on a small workload (a stage stamp renamed in the server
once broke ``--breakdown`` with a KeyError while every test stayed green)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "sandbox.py"


def _run(*args: str) -> str:
    p = subprocess.run([sys.executable, str(BENCH), *args], check=False, cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


def test_sandbox_benchmark_side_by_side(tmp_path):
    out = _run("--problems", "6", "--trivial", "8", "--json", str(tmp_path / "rows.json"))
    rows = json.loads((tmp_path / "rows.json").read_text())
    got = {(r["workload"], r["runner"]): (r["n"], r["passed"]) for r in rows}
    for runner in ("sandbox", "subprocess", "humaneval_harness"):
        assert got[("humaneval", runner)] == (6, 6)
        assert got[("trivial", runner)] == (8, 8)
    assert got[("trivial_serial", "sandbox")] == (8, 8)
    assert "humaneval: sandbox throughput =" in out and "trivial: sandbox throughput =" in out


def test_sandbox_benchmark_breakdown_names_every_stage():
    out = _run("--breakdown", "10")
    from benchmarks.sandbox import STAGES

    lines = out.splitlines()
    for label, _, _ in STAGES:
        row = next((ln for ln in lines if ln.startswith(label)), None)
        assert row is not None, f"no row for {label!r}"
        assert len([float(v) for v in row[len(label):].split()]) == 4  # p50 and mean, both paths
    total = next(ln for ln in lines if ln.startswith("total"))
    assert 0 < float(total.split()[-1]) < 1000  # ms
