"""Peak memory of the activation cache for N and 10 N prompts (it should not grow).

    python benchmarks/cache_memory.py [--prompts 16] [--layers 6 8]

Each run is a fresh child process (``tada sae cache`` on the shipped organism, default
settings, batches of 16) whose peak resident memory is read from ``wait4``. Prints both
peaks, the ratio (target: about 1.0, i.e. independent of the number of prompts) and the
cache sizes on disk, which do grow 10x.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine, run_benchmark


def peak_rss_mb(n: int, layers: list[str], out: Path) -> float:
    cmd = [sys.executable, "-m", "tada_core.cli", "sae", "cache", "--prompts", str(n), "--layers", *layers,
           "--batch-size", "16", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed")
    return usage.ru_maxrss / 1024  # Linux reports KiB


def size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir()) / 2 ** 20


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--layers", nargs="+", default=["6", "8"])
    args = p.parse_args()
    print(machine())
    tmp = Path(tempfile.mkdtemp(prefix="tada-cache-"))
    try:
        small = peak_rss_mb(args.prompts, args.layers, tmp / "small")
        large = peak_rss_mb(10 * args.prompts, args.layers, tmp / "large")
        print(f"{args.prompts} prompts: peak RSS {small:.0f} MB, cache {size_mb(tmp / 'small'):.1f} MB on disk")
        print(f"{10 * args.prompts} prompts: peak RSS {large:.0f} MB, cache {size_mb(tmp / 'large'):.1f} MB on disk")
        print(f"peak RSS ratio 10x prompts / 1x = {large / small:.3f} (target: about 1.0)")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    run_benchmark(main)
