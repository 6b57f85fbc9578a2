"""The ``tada`` command line.

    tada models                      supported models, hub ids, layer counts, CFG batch order
    tada generate --prompt P --out x.wav [--model M --seed S --duration D --steps N --guidance G]
                  [--steer VECTOR --alpha A [--steer-layers L ...] [--renorm]]
                                     VECTOR: a steering-vector folder or Hub repo id
    tada list [ROOT ...]             steering vectors and SAEs in vectors/ and saes/ (rebuilds index.json)
    tada push FOLDER --repo ORG/NAME [--dry-run]   validate and upload an artifact folder
    tada pull ORG/NAME [--revision R]              download (or find in the cache) and validate
    tada import-steer-audio VECTORS.pkl --config config.json --model ace-step --out FOLDER
    tada localize --concept C [--concept ...|all] [--captions musiccaps.csv] [--out DIR]
                                     activation-patching sweep, Eq. 9 per layer, heatmap (resumable)
    tada caa --concept C [--localization DIR] [--out vectors/NAME]   CAA vector (Eq. 2) as an artifact
    tada sweep VECTOR [VECTOR ...] --alphas A [A ...]   concept measure vs alpha, both signs
    tada ablate VECTOR [VECTOR ...] --alpha A        Table 2: steer all / all but functional / functional
    tada sae cache --layers L [L ...] --out DIR      activation cache (sharded safetensors, resumable)
    tada sae train DIR --out saes/NAME               (m, k) sweep of TopK SAEs, best per layer, sparsify layout
    tada sae features saes/NAME --concept C          TF-IDF features (Eq. 6) -> SAE steering vector (Eq. 7)
    tada sae atlas saes/NAME                         every feature's top prompts and concept scores (for the app)

Bad input ends with a one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings
from pathlib import Path
from typing import Sequence

from .errors import TadaError


def _cmd_models(args: argparse.Namespace) -> int:
    from .adapters import model_catalog

    rows = model_catalog()
    cols = [("name", "model"), ("family", "family"), ("source", "default source"), ("layers", "cross-attn layers"),
            ("cfg_batch", "CFG batch"), ("paper_functional", "paper functional (0-based)")]
    widths = [max(len(title), *(len(str(r[key])) for r in rows)) for key, title in cols]
    print("  ".join(title.ljust(w) for (_, title), w in zip(cols, widths)))
    for r in rows:
        print("  ".join(str(r[key]).ljust(w) for (key, _), w in zip(cols, widths)))
    print("\nLayer indices are 0-based module indices; the papers count from 1 "
          "(ACE-Step's functional {7, 8} are indices 6, 7).")
    return 0


def _out_paths(out: str, n: int) -> list[Path]:
    path = Path(out)
    if n == 1:
        return [path]
    return [path.with_name(f"{path.stem}_{i}{path.suffix}") for i in range(n)]


def _cmd_generate(args: argparse.Namespace) -> int:
    from .adapters import load_model
    from .audio import check_wav_path, save_wav

    check_wav_path(args.out)  # before loading a model, not after generating
    t0 = time.perf_counter()
    model = load_model(args.model, device=args.device)
    t1 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.steer:
            from .hub import load_vector

            vec = load_vector(args.steer, args.revision)
            stack.enter_context(vec.apply(model, alpha=args.alpha, layers=args.steer_layers, use_renorm=args.renorm))
            print(f"steering {vec.concept!r} at layers {args.steer_layers or vec.default_layers()}, alpha {args.alpha:g}"
                  f"{' with ReNorm' if args.renorm else ''}", file=sys.stderr)
        gen = model.generate(args.prompt, seeds=args.seed, duration=args.duration, steps=args.steps,
                             guidance=args.guidance)
    t2 = time.perf_counter()
    for path, clip, prompt, seed in zip(_out_paths(args.out, len(gen.prompts)), gen.audio, gen.prompts, gen.seeds):
        save_wav(path, clip, gen.sample_rate)
        print(f"wrote {path}  ({clip.shape[-1] / gen.sample_rate:.2f}s, {gen.sample_rate} Hz, "
              f"seed {seed}, prompt {prompt!r})")
    print(f"model {model.name}: loaded in {t1 - t0:.2f}s, generated in {t2 - t1:.2f}s", file=sys.stderr)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from .hub import build_index

    for root in args.roots:
        rows = build_index(root)
        print(f"{root}/  ({len(rows)} artifacts; index written to {root}/index.json)" if rows else
              f"{root}/  (no artifacts)")
        for r in rows:
            layers = ",".join(map(str, r["layers"]))
            print(f"  {r['name']:<28} {r['kind']:<16} model={r['model']}  concept={r['concept']}  "
                  f"method={r['method']}  layers={layers}")
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    from .hub import push

    files = push(args.folder, args.repo, revision=args.revision, private=args.private, dry_run=args.dry_run)
    verb = "would upload" if args.dry_run else "uploaded"
    for name, size in files:
        print(f"{verb} {name}  ({size} bytes)")
    print(f"{verb} {len(files)} files to https://huggingface.co/{args.repo}")
    return 0


def _cmd_pull(args: argparse.Namespace) -> int:
    from .hub import artifact_summary, pull

    folder = pull(args.repo, args.revision)
    r = artifact_summary(folder)
    print(f"{folder}\n  {r['kind']} model={r['model']} concept={r['concept']} layers={r['layers']}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from .adapters import FAMILIES, load_model
    from .hub import import_steer_audio

    cls = FAMILIES.get(args.model)
    if cls is not None and cls.layer_path_template:
        paths = {i: cls.layer_path_template.format(i=i) for i in range(cls.paper_layer_count or 64)}
    else:
        paths = {layer.index: layer.path for layer in load_model(args.model, device="cpu").layers}
    vec = import_steer_audio(args.pickle, args.config, model=args.model, layer_paths=paths, concept=args.concept)
    out = vec.save(args.out)
    print(f"wrote {out}: concept {vec.concept!r}, layers {vec.layers}, "
          f"{next(iter(vec.vectors.values())).shape[0]} steps")
    return 0


# ----------------------------------------------------------------------------- localization and CAA
def _settings(args: argparse.Namespace) -> dict:
    return dict(duration=args.duration, steps=args.steps, guidance=args.guidance)


def _concept_names(names: Sequence[str], model_name: str) -> list[str]:
    from .concepts import concepts_for

    if not names:
        raise TadaError("give at least one --concept (or --concept all)")
    return list(concepts_for(model_name)) if list(names) == ["all"] else list(names)


def _cmd_localize(args: argparse.Namespace) -> int:
    from .adapters import load_model
    from .concepts import get_concept, localization_pairs, read_captions
    from .localize import localize, write_summary
    from .scoring import make_scorer

    model = load_model(args.model, device=args.device)
    model.set_progress_bar(False)
    scorer = make_scorer(args.scorer, device=str(model.device))
    captions = read_captions(args.captions) if args.captions else None
    out = Path(args.out or f"results/localization/{model.name}")
    results = []
    for name in _concept_names(args.concept, model.name):
        concept = get_concept(name, model.name)
        pairs, how = localization_pairs(concept, model.name, captions, limit=args.pairs, templates=args.templates)
        print(f"{concept.name}: {len(pairs)} pairs from {how} x {len(args.seeds)} seeds, "
              f"{len(model.resolve_layers(args.layers)) + 2} conditions", file=sys.stderr)
        results.append(localize(model, concept, pairs, scorer, seeds=args.seeds, layers=args.layers,
                                batch_size=args.batch_size, out=out / concept.name, **_settings(args)))
    files = write_summary(results, out)
    layers = results[0].layers
    print("concept".ljust(14) + "".join(f"{layer:>7}" for layer in layers) + "   functional")
    for r in results:
        print(r.concept.ljust(14) + "".join(f"{r.impact[layer]:7.2f}" for layer in layers)
              + (f"   {r.functional_layers(args.min_impact) or 'none: no single layer carries it'}" if r.reliable else
                 f"   none: the prompt change gains {r.sim_pos - r.sim_neg:.3g} +/- {r.gain_se:.2g} (not significant)"))
    print(f"wrote {files['csv']}, {files['json']}, {files['png']}")
    return 0


def _cmd_caa(args: argparse.Namespace) -> int:
    from .adapters import load_model
    from .caa import compute_caa
    from .concepts import default_bases, get_concept
    from .localize import read_localization

    model = load_model(args.model, device=args.device)
    model.set_progress_bar(False)
    concept = get_concept(args.concept, model.name)
    functional = args.functional
    if functional is None and args.localization:
        functional = read_localization(Path(args.localization) / concept.name).functional_layers(args.min_impact)
    if functional:
        model.resolve_layers(functional)
    elif functional is not None:
        print(f"{concept.name}: no functional layer in {args.localization}; the vector steers all layers",
              file=sys.stderr)
    pos, neg = concept.contrastive_prompts(default_bases(model.name))
    pos = [p for p in pos for _ in args.seeds]
    neg = [n for n in neg for _ in args.seeds]
    seeds = [s for _ in range(len(pos) // len(args.seeds)) for s in args.seeds]
    vec = compute_caa(model, pos, neg, concept=concept.name, layers=args.layers, functional_layers=functional,
                      seeds=seeds, per_step=args.per_step, batch_size=args.batch_size,
                      alpha_range=tuple(args.alpha_range) if args.alpha_range else None, **_settings(args))
    out = vec.save(args.out or f"vectors/{model.name}-{concept.name}-caa")
    print(f"wrote {out}: concept {concept.name!r}, {len(pos)} pairs, layers {vec.layers}, "
          f"functional (default steering) layers {vec.default_layers()}")
    print("run `tada list` to refresh vectors/index.json", file=sys.stderr)
    return 0


def _load_for_vectors(args: argparse.Namespace):
    from .adapters import load_model
    from .concepts import get_concept
    from .hub import load_vector
    from .scoring import make_scorer

    vectors = [load_vector(v, args.revision) for v in args.vectors]
    model = load_model(args.model or vectors[0].model, device=args.device)
    model.set_progress_bar(False)
    for v in vectors:
        v.check_compatible(model)
    scorer = make_scorer(args.scorer, device=str(model.device))
    return model, scorer, [(v, get_concept(v.concept, model.name)) for v in vectors]


def _write_report(out: str | None, title: str, intro: str, table: str, data) -> None:
    import json

    if not out:
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".md").write_text(f"# {title}\n\n{intro}\n\n{table}\n", encoding="utf-8")
    path.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path.with_suffix('.md')} and {path.with_suffix('.json')}", file=sys.stderr)


def _eval_prompts(args, model) -> list[str]:
    from .concepts import default_eval_prompts

    prompts = default_eval_prompts(model.name)
    return prompts[:args.prompts] if args.prompts else prompts


def _num(x: float) -> str:
    """Table number: no exponent notation, 3 decimals below 100 (probabilities, rates, dB)."""
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3f}"


def _alphas_for(vec, given: Sequence[float] | None) -> list[float]:
    if given:
        return sorted(set(given) | {0.0})
    if not vec.alpha_range:
        raise TadaError(f"vector {vec.concept!r} has no alpha_range; give --alphas A [A ...]")
    lo, hi = vec.alpha_range
    return sorted({lo, lo / 2, 0.0, hi / 2, hi})


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .evaluate import alpha_sweep

    model, scorer, items = _load_for_vectors(args)
    prompts = _eval_prompts(args, model)
    rows, data = [], []
    for vec, concept in items:
        r = alpha_sweep(model, vec, scorer, concept, prompts, _alphas_for(vec, args.alphas), seeds=args.seeds,
                        layers=args.layers, use_renorm=args.renorm, batch_size=args.batch_size, **_settings(args))
        sign = scorer.sign(concept) if hasattr(scorer, "sign") else 1
        mono = r.monotonic(sign)
        data.append({**r.to_dict(), "monotonic": mono, "sign": sign})
        rows.append(f"| {concept.name} | {r.measure_label} | {','.join(map(str, r.layers))} | "
                    + ", ".join(f"{a:g}" for a in r.alphas) + " | "
                    + " | ".join(_num(r.measure[a]) for a in r.alphas) + f" | {'yes' if mono else 'no'} |")
    n = len(data[0]["alphas"])
    if any(len(d["alphas"]) != n for d in data):
        raise TadaError("vectors were swept over different numbers of alphas; give --alphas to use one list")
    heads = [f"alpha {a:g}" for a in data[0]["alphas"]] if args.alphas else \
        (["-max", "-max/2", "0", "+max/2", "+max"] if n == 5 else [f"#{i}" for i in range(n)])
    table = ("| concept | measure | steered layers | alphas | " + " | ".join(heads)
             + " | monotonic |\n|---|---|---|---|" + "---|" * n + "---|\n" + "\n".join(rows))
    print(table)
    intro = (f"`tada sweep` on {model.name}: {len(prompts)} prompts x seeds {args.seeds}, mean of the measure at "
             f"each alpha (alpha 0 = unsteered), steering each vector's functional layers. Monotonic = the measure "
             f"moves with alpha in the concept's direction over the whole range, both signs (for vocal_gender the "
             f"vector points to 'female', so low_voice falls as alpha grows).")
    _write_report(args.out, f"Alpha sweep: {model.name}", intro, table, data)
    return 0


def _cmd_ablate(args: argparse.Namespace) -> int:
    from .evaluate import layer_ablation

    model, scorer, items = _load_for_vectors(args)
    prompts = _eval_prompts(args, model)
    rows, data = [], []
    for vec, concept in items:
        functional = args.functional or vec.functional_layers
        if not functional:
            raise TadaError(f"vector {concept.name!r} has no functional layers; give --functional L [L ...]")
        alpha = args.alpha if args.alpha is not None else (max(abs(a) for a in vec.alpha_range)
                                                           if vec.alpha_range else None)
        if alpha is None:
            raise TadaError(f"vector {concept.name!r} has no alpha_range; give --alpha A")
        result = layer_ablation(model, vec, scorer, concept, prompts, alpha, functional, seeds=args.seeds,
                                use_renorm=args.renorm, batch_size=args.batch_size, **_settings(args))
        data.append({"concept": concept.name, "alpha": alpha, "rows": result})
        for row in result:
            m = row["measure"]
            rows.append(f"| {concept.name} | {alpha:g} | {row['set']} = {{{','.join(map(str, row['layers']))}}} | "
                        f"{row['n_layers']} | {row['preservation']:.2f} | {_num(row['delta_alignment'])} | "
                        f"{_num(m[f'{-alpha:g}'])} / {_num(m['0'])} / {_num(m[f'{alpha:g}'])} "
                        f"({row['measure_label']}) |")
    table = ("| concept | alpha | steered layers | # | preservation: spectral distance, dB (lower = closer) | "
             "Delta alignment (higher = better) | measure at -alpha / 0 / +alpha |\n|---|---|---|---|---|---|---|\n"
             + "\n".join(rows))
    print(table)
    intro = (f"`tada ablate` on {model.name} (TADA Table 2): +/- alpha steering all layers (L), all but "
             f"the functional ones (L \\ F) or only them (F); {len(prompts)} prompts x seeds {args.seeds}. "
             f"Delta alignment is sign-corrected and averaged over both signs, in units of the {scorer.name} "
             f"scorer's similarity for the concept (see `tada_core.scoring`).")
    _write_report(args.out, f"Layer-set ablation: {model.name}", intro, table, data)
    return 0


# ----------------------------------------------------------------------------- sparse autoencoders
def _cmd_sae_cache(args: argparse.Namespace) -> int:
    from .adapters import load_model
    from .cache import cache_activations
    from .concepts import default_captions, read_captions

    model = load_model(args.model, device=args.device)
    model.set_progress_bar(False)
    prompts = read_captions(args.captions) if args.captions else default_captions(model.name)
    if prompts is None:
        raise TadaError(f"give --captions FILE (e.g. MusicCaps' CSV) to cache {model.name}'s activations")
    prompts = prompts[:args.prompts]
    cache = cache_activations(model, prompts, args.out, layers=args.layers, tokens=args.tokens,
                              batch_size=args.batch_size, seed=args.seed, **_settings(args))
    print(f"{cache.folder}: {len(cache.shards)} shards, {cache.n_tokens} tokens per layer, layers {cache.layers}")
    return 0


def _cmd_sae_train(args: argparse.Namespace) -> int:
    import json

    from .cache import ActivationCache
    from .hub import CONFIG_FILE
    from .sae import sweep_saes

    cache = ActivationCache(args.cache)
    layers = args.layers or cache.layers
    out = Path(args.out)
    report, lines = {}, []
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
                             expansions=args.expansions, ks=args.ks, epochs=args.epochs, lr=args.lr, seed=args.seed)
        best = entries[0]
        path = cache.spec["layer_paths"][str(layer)]
        best.sae.save(out / path, extra={"layer": layer, "hookpoint": path})
        report[str(layer)] = [{"expansion_factor": e.cfg.expansion_factor, "k": e.cfg.k, "fvu": e.metrics.fvu,
                               "dead_fraction": e.metrics.dead_fraction,
                               "high_freq_fraction": e.metrics.high_freq_fraction, "eval_tokens": e.metrics.tokens}
                              for e in entries]
        for e in entries:
            lines.append(f"| {layer} | {e.cfg.expansion_factor} | {e.cfg.k} | {e.metrics.fvu:.3f} | "
                         f"{e.metrics.dead_fraction:.3f} | {e.metrics.high_freq_fraction:.3f} | "
                         f"{'**chosen**' if e is best else ''} |")
    table = ("| layer | m | k | FVU (held out) | dead | high-frequency | |\n|---|---|---|---|---|---|---|\n"
             + "\n".join(lines))
    meta = {"kind": "tada-sae", "base_model": cache.spec["model"], "concept": None, "layers": layers,
            "hookpoints": {str(i): cache.spec["layer_paths"][str(i)] for i in layers},
            "cache_tokens": cache.n_tokens, "epochs": args.epochs, "sweep": report}
    (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(
        f"---\nlibrary_name: tada-steer\nlicense: apache-2.0\ntags:\n- tada\n- sparse-autoencoder\n- sparsify\n---\n\n"
        f"# {out.name}: TopK SAEs on {cache.spec['model']}\n\nOne folder per hookpoint in EleutherAI sparsify's "
        f"layout (`cfg.json` + `sae.safetensors`), trained on {cache.n_tokens} cached tokens per layer; the "
        f"(m, k) sweep below picks the lowest FVU + dead + high-frequency fractions (TADA Sec. 5.1).\n\n"
        f"```python\nfrom tada_core.sae import TopKSAE\nsae = TopKSAE.load(\"{out.name}/{cache.spec['layer_paths'][str(layers[0])]}\")"
        f"\n```\n\n{table}\n", encoding="utf-8")
    print(table)
    print(f"wrote {out} (run `tada list` to refresh saes/index.json)")
    return 0


def _sae_and_model(args: argparse.Namespace):
    """The SAE folder of ``args.sae``, its base model (or ``--model``) and its SAEs by layer index."""
    from .adapters import load_model
    from .features import load_saes
    from .hub import _read_json

    folder = Path(args.sae)
    meta = _read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    model = load_model(args.model or meta.get("base_model") or "tada-organism", device=args.device)
    model.set_progress_bar(False)
    return folder, model, load_saes(model, folder)


def _cmd_sae_features(args: argparse.Namespace) -> int:
    from .concepts import default_bases, get_concept
    from .features import concept_vector

    folder, model, saes = _sae_and_model(args)
    concept = get_concept(args.concept, model.name)
    pos, neg = concept.contrastive_prompts(default_bases(model.name))
    pos = [p for p in pos for _ in args.seeds]
    neg = [n for n in neg for _ in args.seeds]
    seeds = [s for _ in range(len(pos) // len(args.seeds)) for s in args.seeds]
    vec, chosen = concept_vector(model, saes, pos, neg, concept=concept.name, tau=args.tau, seeds=seeds,
                                 sae_sources={str(i): str(folder) for i in saes},
                                 alpha_range=tuple(args.alpha_range) if args.alpha_range else None,
                                 batch_size=args.batch_size, **_settings(args))
    out = vec.save(args.out or f"vectors/{model.name}-{concept.name}-sae")
    for layer, c in chosen.items():
        print(f"layer {layer}: features {c.features} (Eq. 6 scores "
              + ", ".join(f"{float(c.scores[j]):.2f}" for j in c.features) + ")")
    print(f"wrote {out}: SAE steering vector (Eq. 7) for {concept.name!r}")
    return 0


def _cmd_sae_atlas(args: argparse.Namespace) -> int:
    from .concepts import concepts_for, default_bases, default_captions, default_eval_prompts, get_concept
    from .features import build_atlas, save_atlas

    folder, model, saes = _sae_and_model(args)
    pool = default_captions(model.name) or default_eval_prompts(model.name)
    prompts = pool[:args.prompts]
    names = list(concepts_for(model.name)) if args.concepts == ["all"] else args.concepts
    concepts = {}
    for name in names:
        concept = get_concept(name, model.name)
        concepts[concept.name] = concept.contrastive_prompts(default_bases(model.name))
    print(f"{len(prompts)} browse prompts, {len(concepts)} concepts x {len(default_bases(model.name))} "
          f"contrastive pairs, layers {sorted(saes)}", file=sys.stderr)
    out = save_atlas(build_atlas(model, saes, prompts, concepts, batch_size=args.batch_size, **_settings(args)),
                     folder)
    print(f"wrote {out}")
    return 0


def _add_settings(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=None, help="seconds (default: the model's)")
    p.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the model's)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--batch-size", type=int, default=24, help="generations per pipeline call (default 24)")


def build_parser() -> argparse.ArgumentParser:
    from .adapters import DEFAULT_MODEL

    parser = argparse.ArgumentParser(prog="tada", description="Look inside and steer text-to-music diffusion models.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list supported models, hub ids, layer counts and CFG batch order")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("generate", help="generate audio from one or more prompts")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"model name, local pipeline folder or Hub repo id (default: {DEFAULT_MODEL}; "
                        f"see `tada models`)")
    p.add_argument("--prompt", action="append", required=True,
                   help="text prompt; repeat for a batch (files get _0, _1, ... suffixes)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first prompt; the next prompts use seed+1, ...")
    p.add_argument("--duration", type=float, default=None, help="seconds (default: the model's)")
    p.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the model's)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--out", required=True, help="output .wav path")
    p.add_argument("--steer", default=None, help="steering-vector folder or Hub repo id to apply")
    p.add_argument("--alpha", type=float, default=0.0, help="steering strength (signed; 0 = no change)")
    p.add_argument("--revision", default=None, help="Hub revision of --steer")
    p.add_argument("--steer-layers", type=int, nargs="+", default=None,
                   help="layers to steer (default: the vector's functional layers)")
    p.add_argument("--renorm", action="store_true", help="apply ReNorm (Eq. 3) after steering")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("list", help="list (and index) the steering vectors and SAEs in artifact folders")
    p.add_argument("roots", nargs="*", default=["vectors", "saes"])
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("push", help="validate an artifact folder and upload it as a Hub model repo")
    p.add_argument("folder")
    p.add_argument("--repo", required=True, help="ORG/NAME")
    p.add_argument("--revision", default=None)
    p.add_argument("--private", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded; send nothing")
    p.set_defaults(func=_cmd_push)

    p = sub.add_parser("pull", help="download a vector/SAE repo (or find it in the cache) and validate it")
    p.add_argument("repo")
    p.add_argument("--revision", default=None)
    p.set_defaults(func=_cmd_pull)

    p = sub.add_parser("import-steer-audio", help="convert the TADA reference code's pickled CAA vectors "
                                                  "(read with a restricted unpickler: numpy arrays only)")
    p.add_argument("pickle", help="the reference code's vectors .pkl")
    p.add_argument("--config", default=None, help="its config.json")
    p.add_argument("--model", default="ace-step", help="model the vectors were computed on (default: ace-step)")
    p.add_argument("--concept", default=None)
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_cmd_import)

    scorer_help = "organism (default: the shipped model's scorer), clap:FOLDER_OR_ID or muq:FOLDER_OR_ID"
    p = sub.add_parser("localize", help="find functional layers: activation-patching sweep, Eq. 9, heatmap")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--concept", action="append", default=[], help="concept name or .json/.yaml file; repeat, or 'all'")
    p.add_argument("--captions", default=None, help="MusicCaps CSV (caption column), JSON list or text file; "
                                                     "default: the organism's captions, else the templates")
    p.add_argument("--templates", action="store_true", help="use the contrastive templates, not caption pairs")
    p.add_argument("--pairs", type=int, default=12, help="prompt pairs per concept (default 12; the paper: 256)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds per pair (default 0 1)")
    p.add_argument("--layers", type=int, nargs="+", default=None, help="layers to patch (default: all)")
    p.add_argument("--scorer", default="organism", help=scorer_help)
    p.add_argument("--min-impact", type=float, default=0.3, help="I(l, c) that makes a layer functional")
    p.add_argument("--out", default=None, help="output folder (default results/localization/MODEL); rerun to resume")
    _add_settings(p)
    p.set_defaults(func=_cmd_localize)

    p = sub.add_parser("caa", help="compute a CAA steering vector (Eq. 2) and save it as an artifact folder")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--concept", required=True, help="concept name or .json/.yaml concept file")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="seeds per base prompt")
    p.add_argument("--layers", type=int, nargs="+", default=None, help="layers to compute vectors for (default all)")
    p.add_argument("--functional", type=int, nargs="+", default=None,
                   help="layers the vector steers by default (overrides --localization)")
    p.add_argument("--localization", default=None, help="a `tada localize --out` folder: take the concept's "
                                                        "functional layers from it")
    p.add_argument("--min-impact", type=float, default=0.3)
    p.add_argument("--per-step", action="store_true", help="one vector per diffusion step")
    p.add_argument("--alpha-range", type=float, nargs=2, default=None, metavar=("MIN", "MAX"))
    p.add_argument("--out", default=None, help="output folder (default vectors/MODEL-CONCEPT-caa)")
    _add_settings(p)
    p.set_defaults(func=_cmd_caa)

    for name, fn, text in (("sweep", _cmd_sweep, "measure a concept at several alphas, both signs"),
                           ("ablate", _cmd_ablate, "Table 2: steer all / all but functional / functional layers")):
        p = sub.add_parser(name, help=text)
        p.add_argument("vectors", nargs="+", help="steering-vector folders or Hub repo ids")
        p.add_argument("--model", default=None, help="default: the vectors' model")
        p.add_argument("--revision", default=None)
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
        p.add_argument("--prompts", type=int, default=None, help="use the first N evaluation prompts")
        p.add_argument("--scorer", default="organism", help=scorer_help)
        p.add_argument("--renorm", action="store_true", help="apply ReNorm (Eq. 3)")
        p.add_argument("--out", default=None, help="write OUT.md and OUT.json")
        if name == "sweep":
            p.add_argument("--alphas", type=float, nargs="+", default=None,
                           help="default: -max, -max/2, 0, +max/2, +max of each vector's alpha_range")
            p.add_argument("--layers", type=int, nargs="+", default=None, help="default: the vector's functional")
        else:
            p.add_argument("--alpha", type=float, default=None, help="default: the largest |alpha| of each "
                                                                       "vector's alpha_range")
            p.add_argument("--functional", type=int, nargs="+", default=None, help="default: the vector's")
        _add_settings(p)
        p.set_defaults(func=fn)

    sae = sub.add_parser("sae", help="TopK sparse autoencoders: cache activations, train, select concept features")
    sae_sub = sae.add_subparsers(dest="sae_command", required=True)
    p = sae_sub.add_parser("cache", help="record cross-attention outputs to sharded safetensors (resumable)")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--captions", default=None, help="caption file; default: the organism's captions")
    p.add_argument("--prompts", type=int, default=1000, help="how many captions (default 1000)")
    p.add_argument("--layers", type=int, nargs="+", required=True)
    p.add_argument("--tokens", type=int, default=16, help="frames sampled per diffusion step and prompt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    _add_settings(p)
    p.set_defaults(func=_cmd_sae_cache)

    p = sae_sub.add_parser("train", help="train the (m, k) sweep on a cache and keep the best SAE per layer")
    p.add_argument("cache")
    p.add_argument("--layers", type=int, nargs="+", default=None, help="default: every cached layer")
    p.add_argument("--expansions", type=int, nargs="+", default=[2, 4, 8, 16])
    p.add_argument("--ks", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-tokens", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="SAE artifact folder, e.g. saes/tada-organism-topk")
    p.set_defaults(func=_cmd_sae_train)

    p = sae_sub.add_parser("features", help="TF-IDF concept features (Eq. 6) and their steering vector (Eq. 7)")
    p.add_argument("sae", help="SAE artifact folder (one sub-folder per hookpoint)")
    p.add_argument("--model", default=None, help="default: the SAE's base model")
    p.add_argument("--concept", required=True)
    p.add_argument("--tau", type=int, default=20, help="features per layer (Table 1: 20, or 5)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--alpha-range", type=float, nargs=2, default=None, metavar=("MIN", "MAX"))
    p.add_argument("--out", default=None, help="default vectors/MODEL-CONCEPT-sae")
    _add_settings(p)
    p.set_defaults(func=_cmd_sae_features)

    p = sae_sub.add_parser("atlas", help="every feature's top prompts and Eq. 6 score per concept, saved in "
                                         "the SAE folder (the app's feature browser reads it)")
    p.add_argument("sae", help="SAE artifact folder (one sub-folder per hookpoint)")
    p.add_argument("--model", default=None, help="default: the SAE's base model")
    p.add_argument("--prompts", type=int, default=96, help="browse prompts (the model's captions; default 96)")
    p.add_argument("--concepts", nargs="+", default=["all"], help="concepts to score (default: all)")
    _add_settings(p)
    p.set_defaults(func=_cmd_sae_atlas)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # torch's weight_norm deprecation, raised inside diffusers' decoders, says nothing to a user.
    warnings.filterwarnings("ignore", message=".*weight_norm.*deprecated.*")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TadaError as e:
        print(f"tada {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
