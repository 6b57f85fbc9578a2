"""``tada sweep`` (the measure at several alphas, both signs) and ``tada ablate`` (Table 2)."""

from __future__ import annotations

import argparse
from typing import Sequence

from tada_core.errors import TadaError
from tada_core.evaluation.benchmark.distance import DISTANCES
from tada_core.cli.common import (add_renorm_arg, add_generation_args, add_model_arg, check_writable, finite_float, layer_index, load_for,
                     positive_int, seed_int, settings_from, write_report)
from tada_core.cli.localize import add_scorer_arg, scorer_for


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("vectors", nargs="+", help="steering-vector folders or Hub repo ids")
    add_model_arg(p, artifact=True)
    p.add_argument("--revision", default=None)
    p.add_argument("--seeds", type=seed_int, nargs="+", default=[0, 1])
    p.add_argument("--prompts", type=positive_int, default=None, help="use the first N evaluation prompts")
    add_scorer_arg(p)
    add_renorm_arg(p)
    p.add_argument("--distance", default="mel", help=f"preservation distance, as in `tada benchmark`: {DISTANCES}")
    p.add_argument("--out", default=None, help="write OUT.md and OUT.json")


def _load_for_vectors(args: argparse.Namespace):
    """The vectors, their model, its scorer, the (vector, concept) pairs and the evaluation prompts."""
    from tada_core.registry import entry_for
    from tada_core.artifacts.vectors import load_vector

    if args.out:
        check_writable(args.out)
    vectors = [load_vector(v, args.revision) for v in args.vectors]
    model = load_for(args, vectors[0].model)
    for v in vectors:
        v.check_compatible(model)
    scorer = scorer_for(args, model)
    concepts = entry_for(model).concepts
    items = [(v, concepts.get(v.concept)) for v in vectors]
    for _, concept in items:
        scorer.check(concept)
    prompts = list(concepts.eval_prompts)
    return model, scorer, items, prompts[:args.prompts] if args.prompts else prompts


def _alphas_for(vec, given: Sequence[float] | None) -> list[float]:
    if given:
        return sorted(set(given) | {0.0})
    if not vec.alpha_range:
        raise TadaError(f"vector {vec.concept!r} has no alpha_range; give --alphas A [A ...]")
    lo, hi = vec.alpha_range
    return sorted({lo, lo / 2, 0.0, hi / 2, hi})


def register_sweep(sub) -> None:
    p = sub.add_parser("sweep", help="measure a concept at several alphas, both signs")
    _common(p)
    p.add_argument("--alphas", type=finite_float, nargs="+", default=None,
                   help="default: -max, -max/2, 0, +max/2, +max of each vector's alpha_range")
    p.add_argument("--layers", type=layer_index, nargs="+", default=None, help="default: the vector's functional")
    add_generation_args(p)
    p.set_defaults(func=run_sweep)


def run_sweep(args: argparse.Namespace) -> int:
    from tada_core.evaluation.benchmark.distance import make_distance
    from tada_core.evaluation.sweeps import alpha_sweep, sweep_table

    model, scorer, items, prompts = _load_for_vectors(args)
    alphas = {id(vec): _alphas_for(vec, args.alphas) for vec, _ in items}
    if len({len(a) for a in alphas.values()}) > 1:
        raise TadaError("vectors were swept over different numbers of alphas; give --alphas to use one list")
    results = [alpha_sweep(model, vec, scorer, concept, prompts, alphas[id(vec)], seeds=args.seeds,
                           layers=args.layers, use_renorm=args.renorm, settings=settings_from(args),
                           distance=make_distance(args.distance))
               for vec, concept in items]
    table = sweep_table(results, alpha_headers=bool(args.alphas))
    intro = (f"`tada sweep` on {model.name}: {len(prompts)} prompts x seeds {args.seeds} per cell, mean of the measure "
             f"at each alpha (alpha 0 = unsteered) with its 95% bootstrap interval over prompts, steering each "
             f"vector's functional layers. Monotonic: yes = the intervals of adjacent alphas are ordered in the "
             f"concept's direction over the whole range, both signs; means only = the means are, but some adjacent "
             f"intervals overlap; no = the means step back.")
    write_report(args.out, f"Alpha sweep: {model.name}", intro, table, [r.to_dict() for r in results])
    return 0


def register_ablate(sub) -> None:
    p = sub.add_parser("ablate", help="Table 2: steer all / all but functional / functional layers")
    _common(p)
    p.add_argument("--alpha", type=finite_float, default=None, help="default: the largest |alpha| of each "
                                                                    "vector's alpha_range")
    p.add_argument("--functional", type=layer_index, nargs="+", default=None, help="default: the vector's")
    add_generation_args(p)
    p.set_defaults(func=run_ablate)


def run_ablate(args: argparse.Namespace) -> int:
    from tada_core.evaluation.benchmark.distance import make_distance
    from tada_core.evaluation.sweeps import ablation_table, layer_ablation

    model, scorer, items, prompts = _load_for_vectors(args)
    plans = []
    for vec, concept in items:
        functional = args.functional or vec.functional_layers
        if not functional:
            raise TadaError(f"vector {concept.name!r} has no functional layers; give --functional L [L ...]")
        alpha = args.alpha if args.alpha is not None else (max(abs(a) for a in vec.alpha_range)
                                                           if vec.alpha_range else None)
        if alpha is None:
            raise TadaError(f"vector {concept.name!r} has no alpha_range; give --alpha A")
        plans.append((vec, concept, alpha, functional))
    results = [layer_ablation(model, vec, scorer, concept, prompts, alpha, functional, seeds=args.seeds,
                              use_renorm=args.renorm, settings=settings_from(args),
                              distance=make_distance(args.distance))
               for vec, concept, alpha, functional in plans]
    table = ablation_table(results)
    intro = (f"`tada ablate` on {model.name} (TADA Table 2): +/- alpha steering all layers (L), all but "
             f"the functional ones (L \\ F) or only them (F); {len(prompts)} prompts x seeds {args.seeds}. "
             f"Delta alignment is sign-corrected and averaged over both signs, in units of the {scorer.name} "
             f"scorer's similarity for the concept (see `tada_core.evaluation.scoring`).")
    write_report(args.out, f"Layer-set ablation: {model.name}", intro, table, [r.to_dict() for r in results])
    return 0
