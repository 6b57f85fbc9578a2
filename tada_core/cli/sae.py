"""``tada sae cache | train | features | atlas``: TopK SAEs from activations to concept features."""

from __future__ import annotations

import argparse
from pathlib import Path

from tada_core.errors import TadaError
from tada_core.cli.common import (add_generation_args, add_model_arg, add_validated_renorm_arg, check_writable, finite_float,
                     layer_index, load_for, note, positive_int, processes_for, seed_int, settings_from)


def register_sae(sub) -> None:
    sae = sub.add_parser("sae", help="TopK sparse autoencoders: cache activations, train, select concept features")
    sae_sub = sae.add_subparsers(dest="sae_command", required=True)

    p = sae_sub.add_parser("cache", help="record cross-attention outputs to sharded safetensors (resumable)")
    add_model_arg(p)
    p.add_argument("--captions", default=None, help="caption file; default: the model's own captions")
    p.add_argument("--prompts", type=positive_int, default=1000, help="how many captions (default 1000)")
    p.add_argument("--layers", type=layer_index, nargs="+", required=True)
    p.add_argument("--tokens", type=positive_int, default=16, help="frames sampled per diffusion step and prompt")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--out", required=True)
    add_generation_args(p)
    p.set_defaults(func=run_cache)

    p = sae_sub.add_parser("train", help="train the (m, k) sweep on a cache and keep the best SAE per layer")
    p.add_argument("cache")
    p.add_argument("--layers", type=layer_index, nargs="+", default=None, help="default: every cached layer")
    p.add_argument("--expansions", type=positive_int, nargs="+", default=[2, 4, 8, 16])
    p.add_argument("--ks", type=positive_int, nargs="+", default=[16, 32, 64])
    p.add_argument("--epochs", type=positive_int, default=5)
    p.add_argument("--lr", type=finite_float, default=None)
    p.add_argument("--batch-tokens", type=positive_int, default=1024)
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--out", required=True, help="SAE artifact folder, e.g. saes/tada-organism-topk")
    p.set_defaults(func=run_train)

    p = sae_sub.add_parser("features", help="TF-IDF concept features (Eq. 6) and their steering vector (Eq. 7)")
    p.add_argument("sae", help="SAE artifact folder (one sub-folder per hookpoint)")
    add_model_arg(p, artifact=True)
    p.add_argument("--concept", required=True)
    p.add_argument("--tau", type=positive_int, default=20, help="features per layer (Table 1: 20, or 5)")
    p.add_argument("--selection", choices=["global", "per-step"], default="global",
                   help="global (default): Eq. 6 on TopK latents averaged over all steps, one feature set; "
                        "per-step: the reference code's variant, Eq. 6 on pre-TopK activations per diffusion step, "
                        "a feature set and vector per step")
    p.add_argument("--seeds", type=seed_int, nargs="+", default=[0, 1])
    p.add_argument("--check-seeds", type=seed_int, nargs="+", default=None,
                   help="held-out seeds (not among --seeds): keep only the selected features that are more active on "
                        "the positive prompts than on the negative ones there (95%% interval over bases above 0); "
                        "recorded in the vector's config")
    p.add_argument("--alpha-range", type=finite_float, nargs=2, default=None, metavar=("MIN", "MAX"))
    add_validated_renorm_arg(p)
    p.add_argument("--out", default=None, help="default vectors/MODEL-CONCEPT-sae")
    add_generation_args(p)
    p.set_defaults(func=run_features)

    p = sae_sub.add_parser("atlas", help="every feature's top prompts and Eq. 6 score per concept, saved in "
                                         "the SAE folder (the app's feature browser reads it)")
    p.add_argument("sae", help="SAE artifact folder (one sub-folder per hookpoint)")
    add_model_arg(p, artifact=True)
    p.add_argument("--prompts", type=positive_int, default=96, help="browse prompts (the model's captions; "
                                                                    "default 96)")
    p.add_argument("--concepts", nargs="+", default=["all"], help="concepts to score (default: all)")
    add_generation_args(p)
    p.set_defaults(func=run_atlas)


def run_cache(args: argparse.Namespace) -> int:
    from tada_core.interventions.cache import cache_activations
    from tada_core.concepts import read_captions
    from tada_core.registry import entry_for

    check_writable(args.out)
    captions = read_captions(args.captions) if args.captions else None
    processes = processes_for(args)
    model = load_for(args)
    if captions is None:
        own = entry_for(model).concepts.captions
        if own is None:
            raise TadaError(f"give --captions FILE (e.g. MusicCaps' CSV) to cache {model.name}'s activations")
        captions = own()
    cache = cache_activations(model, captions[:args.prompts], args.out, layers=args.layers, tokens=args.tokens,
                              seed=args.seed, settings=settings_from(args), processes=processes)
    if not processes.main:
        return 0
    print(f"{cache.folder}: {len(cache.shards)} shards, {cache.n_tokens} tokens per layer, layers {cache.layers}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from tada_core.interventions.cache import ActivationCache
    from tada_core.artifacts.sae import SaeArtifact
    from tada_core.methods.sae import sweep_saes

    check_writable(args.out)
    processes = processes_for(args)
    cache = ActivationCache(args.cache)
    layers = args.layers or cache.layers
    out = Path(args.out)
    report, lines, chosen = {}, [], {}
    for layer in layers:
        n_shards = len(cache.shards)
        held_out = max(1, n_shards // 10)
        train_shards, eval_shards = cache.shards[:-held_out] or cache.shards, cache.shards[-held_out:]

        def batches(shards):
            def it():
                sub = ActivationCache(cache.folder)
                sub.shards = shards
                return sub.batches(layer, args.batch_tokens, shuffle_seed=args.seed)
            return it

        entries = sweep_saes(batches(train_shards), batches(eval_shards), cache.width(layer),
                             expansions=args.expansions, ks=args.ks, epochs=args.epochs, lr=args.lr, seed=args.seed,
                             processes=processes)
        if not processes.main:
            continue
        best = entries[0]
        chosen[layer] = best.sae
        report[str(layer)] = [{"expansion_factor": e.cfg.expansion_factor, "k": e.cfg.k, "fvu": e.metrics.fvu,
                               "dead_fraction": e.metrics.dead_fraction,
                               "high_freq_fraction": e.metrics.high_freq_fraction, "eval_tokens": e.metrics.tokens}
                              for e in entries]
        for e in entries:
            lines.append(f"| {layer} | {e.cfg.expansion_factor} | {e.cfg.k} | {e.metrics.fvu:.3f} | "
                         f"{e.metrics.dead_fraction:.3f} | {e.metrics.high_freq_fraction:.3f} | "
                         f"{'**chosen**' if e is best else ''} |")
    if not processes.main:
        return 0
    table = ("| layer | m | k | FVU (held out) | dead | high-frequency | |\n|---|---|---|---|---|---|---|\n"
             + "\n".join(lines))
    artifact = SaeArtifact(base_model=cache.spec["model"], layers=list(layers),
                           hookpoints={str(i): cache.spec["layer_paths"][str(i)] for i in layers},
                           cache_tokens=cache.n_tokens, epochs=args.epochs, sweep=report,
                           command=getattr(args, "command_line", None))
    artifact.save(out, chosen, table)
    print(table)
    print(f"wrote {out} (run `tada list` to refresh saes/index.json)")
    return 0


def _sae_and_model(args: argparse.Namespace):
    """The SAE folder of ``args.sae``, its base model (or ``--model``) and its SAEs by layer index."""
    from tada_core.methods.features import load_saes
    from tada_core.artifacts.sae import SaeArtifact, validate_sae_folder

    folder = Path(args.sae)
    validate_sae_folder(folder)
    meta = SaeArtifact.read(folder)
    model = load_for(args, meta.base_model if meta is not None else None)
    return folder, model, load_saes(model, folder)


def run_features(args: argparse.Namespace) -> int:
    from tada_core.methods.features import concept_vector
    from tada_core.registry import entry_for

    if args.out:
        check_writable(args.out)
    folder, model, saes = _sae_and_model(args)
    concepts = entry_for(model).concepts
    concept = concepts.get(args.concept, files=True)
    pos, neg, seeds = concepts.contrast(concept, args.seeds)
    if args.check_seeds and set(args.check_seeds) & set(args.seeds):
        raise TadaError(f"--check-seeds {sorted(set(args.check_seeds) & set(args.seeds))} are also in --seeds; "
                        f"the held-out check needs seeds the selection did not see")
    held_out = concepts.contrast(concept, args.check_seeds) if args.check_seeds else None
    vec, chosen = concept_vector(model, saes, pos, neg, concept=concept.name, tau=args.tau, seeds=seeds,
                                 sae_sources={str(i): str(folder) for i in saes},
                                 alpha_range=tuple(args.alpha_range) if args.alpha_range else None,
                                 settings=settings_from(args), selection=args.selection, held_out=held_out)
    vec.renorm = args.renorm
    vec.command = getattr(args, "command_line", None)
    out = vec.save(args.out or f"vectors/{model.name}-{concept.name}-sae")
    for layer, c in chosen.items():
        if c.per_step:
            common = set.intersection(*(set(f) for f in c.per_step))
            print(f"layer {layer}: {len(c.per_step)} steps; {len(common)} of {len(c.features)} features chosen at "
                  f"every step; step 0: {c.features}")
            continue
        print(f"layer {layer}: features {c.features} (Eq. 6 scores "
              + ", ".join(f"{float(c.scores[j]):.2f}" for j in c.features) + ")")
    for layer, r in vec.extra.get("held_out", {}).get("layers", {}).items():
        print(f"layer {layer}: held-out check kept {len(r['kept'])} of {len(r['kept']) + len(r['dropped'])} features"
              + (f", dropped {r['dropped']}" if r["dropped"] else ""))
    print(f"wrote {out}: SAE steering vector (Eq. 7) for {concept.name!r}")
    return 0


def run_atlas(args: argparse.Namespace) -> int:
    from tada_core.methods.features import build_atlas, save_atlas
    from tada_core.registry import entry_for

    folder, model, saes = _sae_and_model(args)
    concepts = entry_for(model).concepts
    pool = concepts.captions() if concepts.captions else list(concepts.eval_prompts)
    prompts = pool[:args.prompts]
    names = concepts.names() if args.concepts == ["all"] else args.concepts
    contrasts = {}
    for name in names:
        concept = concepts.get(name, files=True)
        contrasts[concept.name] = concept.contrastive_prompts(concepts.bases)
    note(f"{len(prompts)} browse prompts, {len(contrasts)} concepts x {len(concepts.bases)} contrastive pairs, "
         f"layers {sorted(saes)}")
    out = save_atlas(build_atlas(model, saes, prompts, contrasts, settings=settings_from(args)), folder)
    print(f"wrote {out}")
    return 0
