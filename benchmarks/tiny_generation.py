"""Time generation on the tiny offline fixtures, per family (median of several runs).

    python benchmarks/tiny_generation.py [--repeats 5]

Prints, per model: build time, median time of one 1-second clip at 4 steps, and the
ratio of four single calls to one batched 4-clip call (>1 means batching pays off).
"""

from __future__ import annotations

from common import load_warm, machine, median_time, repeats, run_benchmark

from tada_core.registry import REGISTRY


def main() -> None:
    args = repeats()
    print(machine())
    print(f"{'model':<18}{'build s':>9}{'1 clip s':>10}{'4 single / 1 batch of 4':>26}")
    for name in (n for n, e in REGISTRY.items() if e.build is not None):
        model, build = load_warm(name)
        one = median_time(lambda: model.generate("fast techno", seeds=0), args.repeats)
        singles = median_time(lambda: [model.generate("fast techno", seeds=s) for s in range(4)], args.repeats)
        batch = median_time(lambda: model.generate(["fast techno"] * 4, seeds=[0, 1, 2, 3]), args.repeats)
        print(f"{name:<18}{build:>9.3f}{one:>10.3f}{singles / batch:>26.2f}")


if __name__ == "__main__":
    run_benchmark(main)
