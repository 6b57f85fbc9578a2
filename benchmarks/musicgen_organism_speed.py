"""How long the shipped MusicGen organism takes to load and to make one clip at its defaults.

    python benchmarks/musicgen_organism_speed.py [--repeats 5]

As benchmarks/organism_speed.py, for ``musicgen-organism``: one 4.096-second clip is 67
autoregressive steps (64 frames + 3 for the delay pattern) with classifier-free guidance; the
bar is under 2 s on a 2-core CPU.
"""

from __future__ import annotations

from common import run_benchmark
from organism_speed import report


def main() -> None:
    report("musicgen-organism")


if __name__ == "__main__":
    run_benchmark(main)
