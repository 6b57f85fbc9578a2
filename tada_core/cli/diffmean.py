"""``tada diffmean compute | scan``: DiffMean vectors of MusicGen's residual stream (Facchiano et al. 2025)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tada_core.cli.common import (add_device_args, add_model_arg, check_writable, finite_float, layer_index, load_for, note,
                     positive_int, seed_int)


def register_diffmean(sub) -> None:
    p = sub.add_parser("diffmean", help="DiffMean steering vectors of an autoregressive model's residual stream "
                                        "(MusicGen; Facchiano et al. 2025)")
    dsub = p.add_subparsers(dest="diffmean_command", required=True)

    c = dsub.add_parser("compute", help="Eq. 1 at every layer: mean EOS state of S_pos minus S_neg")
    add_model_arg(c)
    add_device_args(c)
    c.add_argument("--concept", required=True, help="concept name (tempo, brightness, ...)")
    c.add_argument("--prompts", type=positive_int, default=100, help="prompts per side (default 100, the paper's)")
    c.add_argument("--strategy", choices=["one-to-all", "all-to-all"], default="one-to-all",
                   help="injection: one direction into every layer (the paper's choice) or each layer its own")
    c.add_argument("--source-layer", type=layer_index, default=None,
                   help="l_best for one-to-all, 0-based (default: the largest relative ||Delta||, until "
                        "`tada diffmean scan` picks one by its effect)")
    c.add_argument("--alpha-range", type=finite_float, nargs=2, default=None, metavar=("MIN", "MAX"))
    c.add_argument("--batch-size", type=positive_int, default=16)
    c.add_argument("--out", default=None, help="default vectors/MODEL-CONCEPT-diffmean")
    c.set_defaults(func=run_compute)

    s = dsub.add_parser("scan", help="Fig. 4 and 6: each layer's direction injected One-to-All at +-lambda, the "
                                     "measure's change; cosine matrix; l_best recorded in the vector")
    s.add_argument("vector", help="a DiffMean vector folder")
    add_model_arg(s, artifact=True)
    add_device_args(s)
    s.add_argument("--measure", choices=["bpm", "centroid"], required=True,
                   help="bpm: librosa beat tracker; centroid: librosa spectral centroid (the paper's metrics)")
    s.add_argument("--lam", type=finite_float, default=1.25, help="lambda of the scan (default 1.25, the paper's)")
    s.add_argument("--prompts", nargs="+", default=None, help="prompts to steer (default: 4 of the model's "
                                                                 "evaluation prompts)")
    s.add_argument("--seeds", type=seed_int, nargs="+", default=[100, 101], help="held-out seeds (default 100 101)")
    s.add_argument("--layers", type=layer_index, nargs="+", default=None, help="source layers (default: all)")
    s.add_argument("--write-back", action="store_true",
                   help="save the vector with the best layer as its One-to-All source and the scan as evidence")
    s.add_argument("--out", required=True, help="folder for scan.json, effect.png and cosine.png")
    s.set_defaults(func=run_scan)

    f = dsub.add_parser("fad", help="Fig. 7: Frechet audio distance of steered to unsteered clips as lambda grows")
    f.add_argument("vector", help="a DiffMean vector folder")
    add_model_arg(f, artifact=True)
    add_device_args(f)
    f.add_argument("--lambdas", type=finite_float, nargs="+", default=[0.25, 0.5, 1.0, 1.25, 1.5, 2.0, 3.0],
                   help="lambdas (default 0.25 ... 3; the paper: 0 to 5)")
    f.add_argument("--prompts", nargs="+", default=None, help="prompts (default: 8 of the model's evaluation prompts)")
    f.add_argument("--seeds", type=seed_int, nargs="+", default=[100, 101], help="held-out seeds (default 100 101)")
    f.add_argument("--embedding", default="logmel",
                   help="logmel (default, offline: log-mel frames; not comparable with VGGish FAD) or "
                        "clap:PATH_OR_ID (a pretrained CLAP audio encoder)")
    f.add_argument("--out", required=True, help="folder for fad.json and fad.png")
    f.set_defaults(func=run_fad)


def run_compute(args: argparse.Namespace) -> int:
    from tada_core.concepts import diffmean_prompts
    from tada_core.methods.diffmean import diffmean
    from tada_core.registry import entry_for

    if args.out:
        check_writable(args.out)
    model = load_for(args)
    concept = entry_for(model).concepts.get(args.concept, files=True)
    pos, neg = diffmean_prompts(concept, entry_for(model).concepts.bases, args.prompts,
                                entry_for(model).concepts.variants)
    vec = diffmean(model, pos, neg, concept=concept.name, strategy=args.strategy, source_layer=args.source_layer,
                   batch_size=args.batch_size, alpha_range=tuple(args.alpha_range) if args.alpha_range else None)
    vec.command = getattr(args, "command_line", None)
    out = vec.save(args.out or f"vectors/{model.name}-{concept.name}-diffmean")
    norms = vec.extra["norms"]
    print(f"wrote {out}: DiffMean {concept.name!r} from {len(pos)} + {len(neg)} prompts, {len(norms)} layers "
          f"(||Delta|| {min(norms):.3g} to {max(norms):.3g}); strategy {vec.strategy}")
    note("`tada diffmean scan` picks l_best by its steering effect")
    return 0


def run_scan(args: argparse.Namespace) -> int:
    import numpy as np

    from tada_core.methods.diffmean import choose_layer, cosine_matrix, layer_scan
    from tada_core.evaluation.metrics import measure
    from tada_core.evaluation.plots import heatmap_png, line_panels
    from tada_core.registry import entry_for
    from tada_core.artifacts.vectors import load_vector

    check_writable(args.out)
    vec = load_vector(args.vector)
    if vec.method != "diffmean":
        from tada_core.errors import TadaError

        raise TadaError(f"{args.vector} is a {vec.method} vector; the layer scan is for DiffMean vectors")
    fn, label = measure(args.measure)
    model = load_for(args, vec.model)
    vec.check_compatible(model)
    prompts = args.prompts or list(entry_for(model).concepts.eval_prompts)[:4]
    scan = layer_scan(model, vec, fn, prompts, lam=args.lam, seeds=args.seeds, layers=args.layers,
                      measure_label=label)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    effect = scan.effect
    scan.save(out / "scan.json")
    layers = sorted(effect)
    line_panels([(f"{vec.concept}: measure at +-{scan.lam:g} by source layer (One-to-All)",
                  [(f"+{scan.lam:g}", layers, [scan.up[i] for i in layers]),
                   (f"-{scan.lam:g}", layers, [scan.down[i] for i in layers]),
                   ("unsteered", layers, [scan.baseline] * len(layers))])], out / "effect.png",
                x_label="source layer (0-based)", y_label=label, columns=1)
    cos = cosine_matrix(vec)
    heatmap_png(np.clip(cos, 0, 1), [str(i) for i in vec.layers], [str(i) for i in vec.layers], out / "cosine.png",
                title=f"cosine between layers' DiffMean directions ({vec.concept}; colour clipped at 0)", cell=28,
                x_label="layer (0-based)", y_label="layer (0-based)", colorbar_label="cosine similarity")
    print(f"{'layer':>6} {'-lam':>10} {'+lam':>10} {'effect':>10}")
    for i in layers:
        print(f"{i:>6} {scan.down[i]:>10.4g} {scan.up[i]:>10.4g} {effect[i]:>10.4g}")
    print(f"best layer (largest +lambda minus -lambda): {scan.best()}; wrote {out}/scan.json, effect.png, cosine.png")
    if args.write_back:
        chosen = choose_layer(vec, scan)
        chosen.command = getattr(args, "command_line", None)
        chosen.save(args.vector)
        print(f"updated {args.vector}: One-to-All from layer {scan.best()}")
    return 0


def run_fad(args: argparse.Namespace) -> int:
    from tada_core.evaluation.sweeps import fad_sweep
    from tada_core.runtime.io import write_json
    from tada_core.evaluation.plots import line_panels
    from tada_core.registry import entry_for
    from tada_core.evaluation.scoring import make_embedding
    from tada_core.artifacts.vectors import load_vector

    check_writable(args.out)
    embedding = make_embedding(args.embedding)
    vec = load_vector(args.vector)
    model = load_for(args, vec.model)
    vec.check_compatible(model)
    prompts = args.prompts or list(entry_for(model).concepts.eval_prompts)[:8]
    result = fad_sweep(model, vec, prompts, args.lambdas, embedding, seeds=args.seeds, embedding_name=args.embedding)
    fad = result.fad
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "fad.json", result.to_dict())
    line_panels([(f"{vec.concept}: FAD to unsteered clips ({args.embedding})",
                  [("FAD", list(fad), list(fad.values()))])], out / "fad.png", x_label="lambda", y_label="FAD",
                columns=1)
    for lam, v in fad.items():
        print(f"lambda {lam:>6g}  FAD {v:.4g}")
    print(f"wrote {out}/fad.json and fad.png ({result.clips} clips per lambda)")
    return 0
