"""benchmarks/gpu.py runs end to end on a CPU (reduced size), and says that its GPU table is empty there."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the script runs at full size: run it by hand")
def test_gpu_benchmark_runs_on_cpu_at_reduced_size():
    done = subprocess.run([sys.executable, "gpu.py", "--smoke", "--dtypes", "bfloat16"], cwd=ROOT / "benchmarks",
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "## GPU table\n\nempty: no GPU on this machine" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "bfloat16" in line]
    assert [r.split("|")[1].strip() for r in rows] == ["stable-audio", "ace-step", "audioldm2"]
    for row in rows:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        ratios = [float(c) for c in cells[5:9]] + [float(cells[9].rstrip("x"))]
        assert all(0 < r < 10 for r in ratios), row       # steered, patched and sweep ratios: measured, finite
        assert float(cells[10]) > 0 and float(cells[11]) > 0 and re.match(r"\d", cells[13]), row
