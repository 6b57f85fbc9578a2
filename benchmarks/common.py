"""Helpers shared by the benchmark scripts (run them from the repo root: python benchmarks/NAME.py)."""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable

import torch


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn``, in seconds."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def machine() -> str:
    return (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__}, threads {torch.get_num_threads()}")
