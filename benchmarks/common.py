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


def load_warm(name: str | None = None):
    """Load a model on the CPU (default: the shipped organism), progress bars off, after one warm-up
    generation; returns (model, load seconds)."""
    from tada_core import DEFAULT_MODEL, load_model

    t = time.perf_counter()
    model = load_model(name or DEFAULT_MODEL, device="cpu")
    seconds = time.perf_counter() - t
    model.set_progress_bar(False)
    model.generate("warm up")
    return model, seconds
