"""benchmarks/gpu_check.sh's CPU dry path end to end: a toy-width Qwen2 model, GRPO plain and
under DeepSpeed ZeRO-2 (one process, gloo), pytest -m gpu (skipped here), one JSON line."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


@pytest.mark.slow
def test_cpu_dry_path_end_to_end(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_CPU": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--no-install", "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, check=False, timeout=600, env=env, cwd=tmp_path,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr[-4000:]
    report = json.loads(lines[-1])
    assert proc.returncode == 0 and report["pass"], (report, proc.stderr[-4000:])
    assert report["mode"] == "cpu-dry" and report["device"].startswith("cpu")
    assert report["model"]["pass"] and report["model"]["params"] > 0
    for part in ("plain", "zero2"):
        r = report[part]
        assert r["pass"] and r["steps"] == 2 and r["loss_finite"]
        for key in ("step_s", "generation_s", "update_s", "tokens_per_s", "generation_tokens_per_s", "peak_rss_gib"):
            assert isinstance(r[key], float) and r[key] > 0, (part, key, r)
        for key in ("reward_s", "scoring_s"):
            assert isinstance(r[key], float) and r[key] >= 0, (part, key, r)
        assert r["generation_s"] + r["update_s"] <= r["step_s"] * 1.01
        # Never a GPU number that was not measured.
        assert r["peak_gpu_mem_gib"] is None
        assert r["traces"] == 2 * 4
    tests = report["gpu_tests"]
    assert tests["pass"] and tests["failed"] == 0 and tests["skipped"] >= 1 and tests["passed"] == 0
    assert report["total_s"] > 0


def test_failed_part_still_prints_the_json_line(tmp_path):
    """Without CUDA and without --cpu, the GPU path reports every training part failed, with
    null numbers, and still prints its JSON line (exit status 1)."""
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": "", "GPU_CHECK_CPU": "0"}
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--no-install", "--skip-tests"],
        capture_output=True, text=True, check=False, timeout=300, env=env, cwd=tmp_path,
    )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 1 and report["pass"] is False
    assert report["mode"] == "gpu" and report["device"] is None
    assert report["model"]["pass"] is False and "CUDA is not available" in report["model"]["error"]
    assert report["plain"]["pass"] is False and report["zero2"]["pass"] is False
    assert "step_s" not in report["plain"]
    assert "failed" in proc.stderr


def test_slim_drops_only_unused_members(tmp_path):
    """`gpu_check.py slim` removes Flight, headers and tests from a pyarrow wheel, keeps the
    libraries the loader needs, and rewrites RECORD without the dropped files."""
    import gpu_check

    wheel = tmp_path / "pyarrow-24.0.0-cp312-cp312-manylinux_2_28_x86_64.whl"
    keep = ["pyarrow/__init__.py", "pyarrow/libarrow.so.2400", "pyarrow/libarrow_python.so.2400",
            "pyarrow/libarrow_substrait.so.2400", "pyarrow/_parquet.cpython-312-x86_64-linux-gnu.so"]
    drop = ["pyarrow/libarrow_flight.so.2400", "pyarrow/_flight.cpython-312-x86_64-linux-gnu.so",
            "pyarrow/libarrow_python.so", "pyarrow/libarrow_python.so.2400.0.0", "pyarrow/include/arrow/api.h",
            "pyarrow/tests/test_array.py", "pyarrow/lib.pxd"]
    record = "".join(f"{n},sha256=x,1\n" for n in keep + drop) + "pyarrow-24.0.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as z:
        for n in keep + drop:
            z.writestr(n, b"x" * 100)
        z.writestr("pyarrow-24.0.0.dist-info/RECORD", record)
    gpu_check.slim_wheels(tmp_path)
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert set(keep) <= names and not (set(drop) & names)
        rec = z.read("pyarrow-24.0.0.dist-info/RECORD").decode()
    assert all(n in rec for n in keep) and not any(f"{n}," in rec for n in drop)
