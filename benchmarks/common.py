"""Helpers shared by the benchmark scripts (run them from the repo root: python benchmarks/NAME.py)."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Callable

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")   # benchmarks never download
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def null_scorer():
    """A scorer that scores nothing: the benchmarks time generation, not scoring."""
    from tada_core.evaluation.scoring import Scorer

    class Null(Scorer):
        name = "null"

        def check(self, concept):
            pass

        def label(self, concept):
            return "nothing"

        def measure(self, audio, sample_rate, concept):
            return [0.0] * audio.shape[0]

    return Null()


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


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()


def run_benchmark(main: Callable[[], None]) -> None:
    """Run a benchmark's ``main``; with ``--save`` (removed from argv), also write what it prints to
    ``results/benchmarks/<script>.txt``, the file docs/benchmarks.md quotes."""
    import sys
    from pathlib import Path

    if "--save" not in sys.argv:
        main()
        return
    sys.argv.remove("--save")
    out = Path(__file__).resolve().parents[1] / "results" / "benchmarks" / (Path(sys.argv[0]).stem + ".txt")
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        real, sys.stdout = sys.stdout, _Tee(sys.stdout, f)
        try:
            print(f"$ python benchmarks/{Path(sys.argv[0]).name} {' '.join(sys.argv[1:])}".rstrip())
            main()
        finally:
            sys.stdout = real


def repeats(default: int = 5) -> argparse.Namespace:
    """The arguments of the simple timing benchmarks: ``--repeats N``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=default)
    return parser.parse_args()
