"""benchmarks/gpu_check.py stays runnable where no GPU exists: the same code on the CPU with a
tiny budget (its figures mean nothing; on a GPU machine the script measures the CUDA path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_runs_every_check_on_the_cpu(tmp_path: Path, chase_dir: Path) -> None:
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/gpu_check.py"), "--allow-cpu", "--quick",
         "--json", str(out)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    checks = report["checks"]
    assert set(checks) == {"cuda_inference", "onnx_cuda", "cuda_training"}
    assert all(c["ok"] for c in checks.values()) and report["ok"]
    for name in ("999x960", "3504x2336"):
        assert checks["onnx_cuda"][name]["max_abs_diff_vs_pytorch"] <= 1e-4
    training = checks["cuda_training"]
    assert training["test_images"] == 2 and 0 <= training["f1"] <= 1
    assert set(training["f1_at_minutes"]) <= {"0.1", "0.15"}


def test_gpu_check_without_a_gpu_says_so_and_measures_nothing(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    hidden = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # also where a GPU exists
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu_check.py"), "--json",
                           str(out)], capture_output=True, text=True, timeout=300, env=hidden)
    assert done.returncode == 2 and "no CUDA device" in done.stderr
    assert not out.exists()
