"""Time generation on the tiny offline fixtures, per family (median of several runs).

    python benchmarks/tiny_generation.py [--repeats 5]

Prints, per model: build time, median time of one 1-second clip at 4 steps, and the
ratio of a batched 4-clip call to four single calls (>1 means batching pays off).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


from common import machine, median_time  # noqa: E402

from tada_core import load_model  # noqa: E402
from tada_core.fixtures import TINY_MODELS  # noqa: E402




def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    print(f"{'model':<18}{'build s':>9}{'1 clip s':>10}{'4 single / 1 batch of 4':>26}")
    for name in TINY_MODELS:
        t = time.perf_counter()
        model = load_model(name, device="cpu")
        build = time.perf_counter() - t
        model.set_progress_bar(False)
        model.generate("warm up")
        one = median_time(lambda: model.generate("fast techno", seeds=0), args.repeats)
        singles = median_time(lambda: [model.generate("fast techno", seeds=s) for s in range(4)], args.repeats)
        batch = median_time(lambda: model.generate(["fast techno"] * 4, seeds=[0, 1, 2, 3]), args.repeats)
        print(f"{name:<18}{build:>9.3f}{one:>10.3f}{singles / batch:>26.2f}")


if __name__ == "__main__":
    main()
