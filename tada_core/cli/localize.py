"""``tada localize`` (Eq. 9 per layer and concept, heatmap) and ``tada caa`` (CAA vectors, Eq. 2)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tada_core.errors import TadaError
from tada_core.cli.common import (add_generation_args, add_model_arg, add_validated_renorm_arg, check_writable,
                     finite_float, layer_index, load_for, note, positive_int, processes_for, seed_int, settings_from)

SCORER_HELP = ("the model's built-in scorer by default (the organism has one; real checkpoints do not), or "
               "clap:FOLDER_OR_ID / muq:FOLDER_OR_ID")


def add_scorer_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scorer", default=None, help=SCORER_HELP)


def scorer_for(args: argparse.Namespace, model):
    from tada_core.registry import entry_for
    from tada_core.evaluation.scoring import make_scorer

    return make_scorer(args.scorer, entry_for(model), device=str(model.device))


def register_localize(sub) -> None:
    p = sub.add_parser("localize", help="find functional layers: activation-patching sweep, Eq. 9, heatmap")
    add_model_arg(p)
    p.add_argument("--concept", action="append", default=[], help="concept name or .json/.yaml file; repeat, or 'all'")
    p.add_argument("--captions", default=None, help="MusicCaps CSV (caption column), JSON list or text file; "
                                                     "default: the model's own captions, else the templates")
    p.add_argument("--templates", action="store_true", help="use the contrastive templates, not caption pairs")
    p.add_argument("--pairs", type=positive_int, default=12, help="prompt pairs per concept (default 12; the "
                                                                  "paper: 256)")
    p.add_argument("--seeds", type=seed_int, nargs="+", default=[0, 1], help="seeds per pair (default 0 1)")
    p.add_argument("--layers", type=layer_index, nargs="+", default=None, help="layers to patch (default: all)")
    add_scorer_arg(p)
    p.add_argument("--min-impact", type=finite_float, default=0.3, help="I(l, c) that makes a layer functional")
    p.add_argument("--clip-impact", action="store_true",
                   help="show Eq. 9 clipped to [0, 1] in impact.csv and the heatmap, as the reference code publishes "
                        "it (default: raw values; summary.json always has them)")
    p.add_argument("--out", default=None, help="output folder (default results/localization/MODEL); rerun to resume")
    add_generation_args(p)
    p.set_defaults(func=run_localize)


def run_localize(args: argparse.Namespace) -> int:
    from tada_core.concepts import read_captions
    from tada_core.methods.localize import localize, write_summary
    from tada_core.registry import entry_for

    if not args.concept:
        raise TadaError("give at least one --concept (or --concept all)")
    if args.out:
        check_writable(args.out)
    captions = read_captions(args.captions) if args.captions else None
    processes = processes_for(args)
    model = load_for(args)
    concepts = entry_for(model).concepts
    scorer = scorer_for(args, model)
    names = concepts.names() if args.concept == ["all"] else args.concept
    chosen = [concepts.get(name, files=True) for name in names]
    for concept in chosen:
        scorer.check(concept)
    out = Path(args.out or f"results/localization/{model.name}")
    results = []
    for concept in chosen:
        pairs, how = concepts.localization_pairs(concept, captions, limit=args.pairs, templates=args.templates)
        if processes.main:
            note(f"{concept.name}: {len(pairs)} pairs from {how} x {len(args.seeds)} seeds, "
                 f"{len(model.resolve_layers(args.layers)) + 2} conditions" + (
                     f", across {processes.count} processes" if processes.distributed else ""))
        results.append(localize(model, concept, pairs, scorer, seeds=args.seeds, layers=args.layers,
                                settings=settings_from(args), out=out / concept.name, processes=processes))
    if not processes.main:
        return 0
    files = write_summary(results, out, clip=args.clip_impact)
    layers = results[0].layers
    print("concept".ljust(14) + "".join(f"{layer:>7}" for layer in layers) + "   functional")
    for r in results:
        print(r.concept.ljust(14) + "".join(f"{r.impact[layer]:7.2f}" for layer in layers)
              + (f"   {r.functional_layers(args.min_impact) or 'none: no single layer carries it'}" if r.reliable else
                 f"   none: the prompt change gains {r.sim_pos - r.sim_neg:.3g} +/- {r.gain_se:.2g} (not significant)"))
    print(f"wrote {files['csv']}, {files['json']}, {files['png']}")
    return 0


def register_caa(sub) -> None:
    p = sub.add_parser("caa", help="compute a CAA steering vector (Eq. 2) and save it as an artifact folder")
    add_model_arg(p)
    p.add_argument("--concept", required=True, help="concept name or .json/.yaml concept file")
    p.add_argument("--seeds", type=seed_int, nargs="+", default=[0, 1, 2, 3], help="seeds per base prompt")
    p.add_argument("--layers", type=layer_index, nargs="+", default=None,
                   help="layers to compute vectors for (default all)")
    p.add_argument("--functional", type=layer_index, nargs="+", default=None,
                   help="layers the vector steers by default (overrides --localization)")
    p.add_argument("--localization", default=None, help="a `tada localize --out` folder: take the concept's "
                                                        "functional layers from it")
    p.add_argument("--min-impact", type=finite_float, default=0.3)
    p.add_argument("--per-step", action="store_true", help="one vector per diffusion step")
    p.add_argument("--alpha-range", type=finite_float, nargs=2, default=None, metavar=("MIN", "MAX"))
    add_validated_renorm_arg(p)
    p.add_argument("--out", default=None, help="output folder (default vectors/MODEL-CONCEPT-caa)")
    add_generation_args(p)
    p.set_defaults(func=run_caa)


def run_caa(args: argparse.Namespace) -> int:
    from tada_core.methods.caa import compute_caa
    from tada_core.methods.localize import read_localization
    from tada_core.registry import DEFAULT_MODEL, REGISTRY, entry_for, get_entry

    if args.out:
        check_writable(args.out)

    def check(concepts):
        """Concept and localization folder, named in one message each (before the model loads where its
        registry entry is known)."""
        concept = concepts.get(args.concept, files=True)
        functional = args.functional
        if functional is None and args.localization:
            functional = read_localization(Path(args.localization) / concept.name).functional_layers(args.min_impact)
        return concept, functional

    name = getattr(args, "model", None) or DEFAULT_MODEL
    if name in REGISTRY:
        check(get_entry(name).concepts)
    processes = processes_for(args)
    model = load_for(args)
    concepts = entry_for(model).concepts
    concept, functional = check(concepts)
    if functional:
        model.resolve_layers(functional)
    elif functional is not None:
        note(f"{concept.name}: no functional layer in {args.localization}; the vector steers all layers")
    pos, neg, seeds = concepts.contrast(concept, args.seeds)
    vec = compute_caa(model, pos, neg, concept=concept.name, layers=args.layers, functional_layers=functional,
                      seeds=seeds, per_step=args.per_step, settings=settings_from(args),
                      alpha_range=tuple(args.alpha_range) if args.alpha_range else None, processes=processes)
    if not processes.main:
        return 0
    vec.renorm = args.renorm
    vec.command = getattr(args, "command_line", None)
    out = vec.save(args.out or f"vectors/{model.name}-{concept.name}-caa")
    print(f"wrote {out}: concept {concept.name!r}, {len(pos)} pairs, layers {vec.layers}, "
          f"functional (default steering) layers {vec.default_layers()}")
    note("run `tada list` to refresh vectors/index.json")
    return 0
