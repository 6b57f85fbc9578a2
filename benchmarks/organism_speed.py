"""How long the shipped organism takes to load and to make one clip at its defaults.

    python benchmarks/organism_speed.py [--repeats 5]

Prints the load time, the median time of one 4-second clip at the default 20 steps with
classifier-free guidance (the bar: under 1 s on a 2-core CPU), the time per clip in a
batch of 8, and the real-time factor.
"""

from __future__ import annotations

from common import load_warm, machine, median_time, repeats, run_benchmark


def report(name: str | None = None) -> None:
    """Load ``name`` (default: the diffusion organism) and print its timings."""
    args = repeats()
    print(machine())
    model, load = load_warm(name)
    d = model.defaults
    one = median_time(lambda: model.generate("a fast happy pop song with drums", seeds=0), args.repeats)
    eight = median_time(lambda: model.generate(["a slow sad waltz on violin"] * 8, seeds=list(range(8))),
                        max(1, args.repeats // 2))
    print(f"model {model.name}: {d.duration} s clips, {d.steps} steps, guidance {d.guidance}")
    print(f"load: {load:.2f} s")
    print(f"one clip: {one:.3f} s  (real-time factor {d.duration / one:.1f}x)")
    print(f"batch of 8: {eight / 8:.3f} s per clip")


def main() -> None:
    report()


if __name__ == "__main__":
    run_benchmark(main)
