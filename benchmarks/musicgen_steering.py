"""The cost of DiffMean steering on MusicGen: steered / unsteered generation, and a lambda sweep in one batch.

    python benchmarks/musicgen_steering.py [--model tiny-musicgen-melody] [--repeats 5] [--duration 2]

Prints, measured in this run on this machine: the time of one clip unsteered and steered
(One-to-All into every layer, both CFG branches: the paper's setting) and their ratio (target
<= 1.02); and six lambdas of one prompt as one batched call vs six calls, and their ratio.
"""

from __future__ import annotations

import argparse
import statistics

from common import machine, median_time, run_benchmark


def main() -> None:
    from tada_core import load_model
    from tada_core.concepts import diffmean_prompts
    from tada_core.methods.diffmean import diffmean

    p = argparse.ArgumentParser()
    p.add_argument("--model", default="tiny-musicgen-melody")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--duration", type=float, default=2.0)
    args = p.parse_args()
    print(machine())
    model = load_model(args.model, device="cpu")
    model.set_progress_bar(False)
    concepts = model.entry.concepts
    pos, neg = diffmean_prompts(concepts.get("tempo"), concepts.bases, 20, concepts.variants)
    vec = diffmean(model, pos, neg, concept="tempo", progress=False)
    settings = model.resolve_settings(duration=args.duration)
    print(f"model {model.name}: {settings.duration:g} s clips = {settings.steps} autoregressive steps, guidance "
          f"{settings.guidance:g}, {len(model.layers)} layers; vector One-to-All from layer "
          f"{vec.strategy['source_layer']}")

    def plain():
        model.generate("a pop song", seeds=0, settings=settings)

    def steered():
        with vec.apply(model, alpha=1.25):
            model.generate("a pop song", seeds=0, settings=settings)

    plain()   # warm-up
    steered()
    pairs = [(median_time(plain, 1), median_time(steered, 1)) for _ in range(args.repeats)]   # interleaved
    t_plain = statistics.median(p for p, _ in pairs)
    t_steer = statistics.median(s for _, s in pairs)
    ratio = statistics.median(s / p for p, s in pairs)
    print(f"one clip: unsteered {t_plain:.3f} s, steered {t_steer:.3f} s (medians of {args.repeats} interleaved "
          f"pairs); steered / unsteered = {ratio:.3f} (median of the pairs' ratios)")
    calls = settings.steps * len(model.layers)
    print(f"  = {1e6 * (t_steer - t_plain) / calls:.0f} us per steered layer call ({calls} calls: "
          f"{settings.steps} steps x {len(model.layers)} layers); a real checkpoint's step costs far more than "
          f"this fixture's, so its ratio is closer to 1")
    lambdas = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]

    def batched():
        with vec.apply(model, alpha=lambdas):
            model.generate(["a pop song"] * len(lambdas), seeds=[0] * len(lambdas), settings=settings)

    def one_by_one():
        for lam in lambdas:
            with vec.apply(model, alpha=lam):
                model.generate("a pop song", seeds=0, settings=settings)

    t_batch, t_single = median_time(batched, args.repeats), median_time(one_by_one, args.repeats)
    print(f"{len(lambdas)} lambdas: one batched call {t_batch:.3f} s, one call per lambda {t_single:.3f} s, "
          f"one per lambda / batched = {t_single / t_batch:.2f}")


if __name__ == "__main__":
    run_benchmark(main)
