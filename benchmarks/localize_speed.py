"""Cost of steering and speed of the localization sweep on the shipped organism, as ratios from one run.

    python benchmarks/localize_speed.py [--repeats 7] [--pairs 4]

1. Steered vs unsteered generation time (a batch of 4 clips at the model's defaults, the
   tempo CAA vector from vectors/ at its functional layers; runs interleaved, medians).
   Target: <= 1.02.
2. Localization sweep throughput for one concept over all layers (``--pairs`` pairs x 2
   seeds), three ways:
   a. batched (``tada localize``'s way: one call per condition and batch);
   b. the same work one generation per call (``batch_size=1``);
   c. Fig. 2 taken literally, one generation per call: for every layer, a full target run
      with P_c (whose keys and values are then patched in), a run with P_c-tilde and the
      patched run, i.e. 3 generations per layer instead of 1 + 2 / layers.
   Printed: a/b (batching alone) and a/c (the sweep as built vs the literal procedure).
   Target: >= 3x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import load_warm, machine, null_scorer, run_benchmark  # noqa: E402

from tada_core import GenerationSettings, load_vector, patch  # noqa: E402
from tada_core.methods.localize import localize  # noqa: E402
from tada_core.organism.concepts import ORGANISM_CONCEPT_SET, captions  # noqa: E402


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--pairs", type=int, default=4)
    args = parser.parse_args()
    print(machine())
    model, _ = load_warm()

    vec = load_vector(Path(__file__).resolve().parents[1] / "vectors" / "tada-organism-tempo-caa")
    prompts = ["a waltz", "a pop song", "a folk tune", "a march"]
    plain, steered = [], []
    for _ in range(args.repeats):       # interleaved, so drift hits both alike
        plain.append(timed(lambda: model.generate(prompts, seeds=[0, 1, 2, 3])))
        with vec.apply(model, alpha=1.0):
            steered.append(timed(lambda: model.generate(prompts, seeds=[0, 1, 2, 3])))
    p, s = statistics.median(plain), statistics.median(steered)
    print(f"generation, batch of 4 at {model.defaults}: unsteered {p:.3f} s, steered at layers "
          f"{vec.default_layers()} {s:.3f} s; ratio steered/unsteered = {s / p:.3f} (target <= 1.02)")

    concept = ORGANISM_CONCEPT_SET.get("drums")
    pairs = concept.pairs(captions(), limit=args.pairs)
    seeds = [0, 1]
    n_items, n_layers = len(pairs) * len(seeds), len(model.layers)
    batched = timed(lambda: localize(model, concept, pairs, null_scorer(), seeds=seeds,
                                     settings=GenerationSettings(batch_size=n_items), progress=False))
    single = timed(lambda: localize(model, concept, pairs, null_scorer(), seeds=seeds,
                                    settings=GenerationSettings(batch_size=1), progress=False))

    def literal():
        for layer in range(n_layers):
            for pos, neg in pairs:
                for seed in seeds:
                    model.generate(pos, seeds=seed)              # target run (Fig. 2a)
                    model.generate(neg, seeds=seed)              # source run, unpatched
                    with patch(model, [layer], prompts=pos):     # source run, layer patched (Fig. 2b)
                        model.generate(neg, seeds=seed)
    naive = timed(literal)
    gens = (n_layers + 2) * n_items
    print(f"sweep of {n_layers} layers x {n_items} pair-seeds ({gens} generations as built, "
          f"{3 * n_layers * n_items} literally):")
    print(f"  a. batched ({n_items} per call)        {batched:7.1f} s  {gens / batched:5.2f} clips/s")
    print(f"  b. same work, one per call      {single:7.1f} s  {gens / single:5.2f} clips/s")
    print(f"  c. Fig. 2 literally, one per call {naive:7.1f} s")
    print(f"  throughput ratio a/b (batching alone) = {single / batched:.2f}x")
    print(f"  throughput ratio a/c (sweep as built vs literal procedure) = {naive / batched:.2f}x  (target >= 3x)")


if __name__ == "__main__":
    run_benchmark(main)
