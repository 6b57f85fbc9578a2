"""Batched vs one-clip-per-call generation in the steering benchmark, on the shipped organism.

    python benchmarks/steering_batching.py [--repeats 3]

`tada benchmark` issues every strength of a prompt and seed in one `generate` call (per-sample
strengths). This measures that call against the same clips made one per call, for three
methods (CAA on the functional layer, PCI, FreeSliders), and prints the ratio measured in this run.
Generation only: scoring costs the same either way.
"""

from __future__ import annotations

from common import load_warm, machine, median_time, repeats, run_benchmark


def main() -> None:
    from tada_core.evaluation.benchmark.methods import Context, make_method

    args = repeats()
    print(machine())
    model, _ = load_warm()
    concepts = model.entry.concepts
    concept = concepts.get("tempo")
    ctx = Context(adapter=model, concept=concept, functional=[3], settings=model.resolve_settings(None),
                  items=[(concepts.neutral.format(base=b), concept.positive.format(base=b),
                          concept.negative.format(base=b)) for b in concepts.bases[:2]])
    print(f"model {model.name}: {model.defaults.duration} s clips, {model.defaults.steps} steps")
    for key in ("caa", "pci", "freesliders"):
        method = make_method(key)
        method.setup(ctx)
        strengths = [0.0] + method.grid(ctx, 5)            # one direction, 6 clips, as `--strengths 5` runs it
        bases = [0] * len(strengths)

        def batched():
            with method.apply(ctx, bases, strengths):
                model.generate(method.prompts(ctx, bases), seeds=[300] * len(strengths))

        def one_by_one():
            for a in strengths:
                with method.apply(ctx, [0], [a]):
                    model.generate(method.prompts(ctx, [0]), seeds=[300])

        b = median_time(batched, args.repeats)
        s = median_time(one_by_one, args.repeats)
        print(f"{method.label:>14}: {len(strengths)} clips batched {b:.2f} s, one per call {s:.2f} s, "
              f"ratio {s / b:.2f}x")


if __name__ == "__main__":
    run_benchmark(main)
