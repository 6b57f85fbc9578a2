"""``tada benchmark``: TADA's Table 3 (Sec. 5.1) for one concept or all, every method, resumable."""

from __future__ import annotations

import argparse
from pathlib import Path

from tada_core.errors import TadaError
from tada_core.cli.common import (add_generation_args, add_model_arg, check_writable, layer_index, load_for, note, positive_int,
                     processes_for, seed_int, settings_from)
from tada_core.cli.localize import add_scorer_arg, scorer_for


def register_benchmark(sub) -> None:
    from tada_core.evaluation.benchmark.distance import DISTANCES
    from tada_core.evaluation.benchmark.methods import METHODS
    from tada_core.evaluation.benchmark.quality import QUALITIES
    from tada_core.evaluation.benchmark.residual import RESIDUAL_METHODS

    p = sub.add_parser("benchmark", help="Table 3: AUC, smoothness, quality of every steering method")
    add_model_arg(p)
    p.add_argument("--concept", action="append", default=None,
                   help="concept name (repeatable), or 'all' for every concept of the model (required)")
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help=f"default all of the model's table: {', '.join(METHODS)}; on a residual-stream model "
                        f"(MusicGen): {', '.join(RESIDUAL_METHODS)} (pci, the prompt swap there, is always run: "
                        f"P_max comes from it)")
    p.add_argument("--seeds", type=seed_int, nargs="+", default=[300], help="held-out seeds per base prompt")
    p.add_argument("--prompts", type=positive_int, default=None, help="use the first N base prompts")
    p.add_argument("--strengths", type=positive_int, default=15, help="strengths per direction (default 15)")
    p.add_argument("--localization", default=None,
                   help="a `tada localize --out` folder giving the functional layers (default: the CAA vector's)")
    p.add_argument("--functional", type=layer_index, nargs="+", default=None, help="functional layers, for all "
                                                                                   "concepts (overrides the rest)")
    p.add_argument("--vectors", default="vectors/{model}-{concept}-{kind}",
                   help="folder template of the CAA / SAE vectors ({model}, {concept}, {kind} = caa or sae)")
    p.add_argument("--specificity", nargs="*", default=None, metavar="CONCEPT",
                   help="other concepts measured on every clip for leakage (default: the benchmarked ones)")
    p.add_argument("--distance", "--axis", dest="distance", default="mel",
                   help=f"preservation distance (the paper's axis): {DISTANCES}")
    p.add_argument("--quality", default="typicality", help=f"quality measure: {QUALITIES}")
    p.add_argument("--no-vector-renorm", dest="vector_renorm", action="store_false",
                   help="steer the CAA and SAE vectors without ReNorm (Eq. 3): h + alpha v, as a vector recorded "
                        "with renorm false had its alpha range validated (default: ReNorm on, the paper's benchmark "
                        "setting; AUSteer keeps it either way)")
    add_scorer_arg(p)
    p.add_argument("--out", default=None, help="output folder (one subfolder per concept; resumable; required)")
    add_generation_args(p, batch_size=16)
    p.set_defaults(func=run_benchmark)
    tables = p.add_subparsers(dest="benchmark_action", metavar="table")
    t = tables.add_parser("table", help="Table 3, the MIR preservation tables or the layer-impact tables rebuilt "
                                        "from the reference's published real-model measurements")
    t.add_argument("--from-published", dest="published", default=None, metavar="DIR",
                   help="a folder of the reference's published CSVs with its source.json (default: the copy shipped "
                        "with tada, tada_core/data/steer_audio)")
    t.add_argument("--axis", default="lpaps", choices=["lpaps", "harmony", "melody", "rhythm", "ssm"],
                   help="preservation axis: lpaps (Table 3) or a MIR axis (no quality column)")
    t.add_argument("--all-axes", action="store_true", help="every axis, one table each (with --out: tables_<axis>.md)")
    t.add_argument("--all", action="store_true", help="everything at once: every axis, the layer-impact tables, and "
                                                      "(with --out) the alignment-vs-preservation curves on LPAPS")
    t.add_argument("--localization", action="store_true", help="the layer-impact tables instead (I(l) averaged "
                                                               "over concepts, per model)")
    t.add_argument("--compare", default=None, metavar="RUN",
                   help="a `tada benchmark --out` folder: its method ranking next to the published one")
    t.add_argument("--run", default=None, metavar="RUN",
                   help="a `tada benchmark --out` folder, rendered in the paper's Table 3 layout")
    t.add_argument("--rebuild", default=None, metavar="RUN",
                   help="a `tada benchmark --out` folder: rewrite its table.md|csv|json and curves.png from the "
                        "result.json of every concept folder in it (after a partial or resumed run)")
    t.add_argument("--out", default=None, help="a folder: write tables_<axis>.md / tables_localization.md there")
    t.set_defaults(func=run_table)


def _functional(args, model, concept) -> list[int]:
    from tada_core.evaluation.benchmark.residual import needs_functional_layers
    from tada_core.methods.localize import read_localization

    if args.functional is not None:
        return list(args.functional)
    if not needs_functional_layers(model):
        return []      # residual-stream methods steer every layer (DiffMean's strategies), none is localized
    if args.localization:
        return read_localization(Path(args.localization) / concept.name).functional_layers()
    folder = Path(args.vectors.format(model=model.name, concept=concept.name, kind="caa"))
    if (folder / "config.json").is_file():
        from tada_core.artifacts.vectors import load_vector

        return list(load_vector(folder).functional_layers or [])
    raise TadaError(f"no functional layers for {concept.name!r}: give --localization DIR or --functional L ...")


def rebuild_tables(run: Path) -> int:
    """``tada benchmark table --rebuild RUN``: the run's combined tables and curves from its concepts' results."""
    from tada_core.evaluation.benchmark.runner import RESULT_FILE, BenchmarkResult, curves_png, write_tables
    from tada_core.runtime.io import read_json

    folders = sorted(p for p in run.iterdir() if (p / RESULT_FILE).is_file()) if run.is_dir() else []
    if not folders:
        raise TadaError(f"{run}: no concept folder with a {RESULT_FILE}; give a `tada benchmark --out` folder")
    spec = read_json(folders[0] / "spec.json") if (folders[0] / "spec.json").is_file() else {}
    results = [BenchmarkResult.from_dict(read_json(p / RESULT_FILE)) for p in folders]
    old = run / "table.json"
    if old.is_file():   # keep the run's concept order where it has one
        order = [r.get("concept") for r in read_json(old) if isinstance(r, dict)]
        results.sort(key=lambda r: order.index(r.concept) if r.concept in order else len(order))
    renorm = "without" if spec.get("vector_renorm") is False else "with"
    write_tables(results, run, title=f"Steering benchmark (TADA Table 3) on {results[0].model}, CAA and SAE {renorm} "
                                     f"ReNorm")
    curves_png(results, run / "curves.png")
    print((run / "table.md").read_text(encoding="utf-8"))
    note(f"rewrote {run}/table.md, table.csv, table.json and curves.png from {len(results)} concepts")
    return 0


def run_table(args: argparse.Namespace) -> int:
    from tada_core.evaluation import published as pub

    if args.rebuild:
        return rebuild_tables(Path(args.rebuild))

    data = pub.read_published(args.published or pub.DEFAULT_DIR)
    if args.out:
        check_writable(Path(args.out) / "x.md")
    if args.all:
        texts = {axis: pub.table3_markdown(pub.table3(data, axis)) for axis in pub.AXES}
        texts["localization"] = pub.localization_markdown(pub.localization_table(data))
    elif args.run:
        texts = {"run": pub.run_markdown(args.run)}
    elif args.compare:
        texts = {"comparison": pub.compare(data, args.compare).markdown()}
    elif args.localization:
        texts = {"localization": pub.localization_markdown(pub.localization_table(data))}
    else:
        axes = pub.AXES if args.all_axes else (args.axis,)
        texts = {axis: pub.table3_markdown(pub.table3(data, axis)) for axis in axes}
    for name, text in texts.items():
        print(text)
        if args.out:
            path = Path(args.out) / f"tables_{name}.md"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            note(f"wrote {path}")
    if args.all and args.out:
        from tada_core.evaluation.benchmark.runner import curves_png

        for alignment in ("muqt", "clap"):
            path = curves_png(pub.benchmark_results(data, alignment), Path(args.out) / f"curves_lpaps_{alignment}.png")
            note(f"wrote {path}")
    note(f"from {data.source.describe()}: the reference's published measurements, reduced by tada's protocol")
    return 0


def run_benchmark(args: argparse.Namespace) -> int:
    if not args.concept or not args.out:
        raise TadaError("give --concept C (repeatable, or all) and --out DIR; or `tada benchmark table` to rebuild "
                        "the published real-model tables")
    from tada_core.evaluation.benchmark import make_distance, make_quality, run_benchmark as run, write_tables
    from tada_core.evaluation.benchmark.methods import METHODS
    from tada_core.evaluation.benchmark.residual import RESIDUAL_METHODS, method_table, needs_functional_layers
    from tada_core.evaluation.benchmark.runner import BenchmarkConfig, curves_png
    from tada_core.registry import entry_for

    unknown = [m for m in args.methods or [] if m not in METHODS and m not in RESIDUAL_METHODS]
    if unknown:
        raise TadaError(f"unknown method {unknown[0]!r}; accepted: {', '.join(METHODS)} (diffusion models) or "
                        f"{', '.join(RESIDUAL_METHODS)} (residual-stream models)")
    out = check_writable(args.out)
    distance, quality = make_distance(args.distance), make_quality(args.quality)
    processes = processes_for(args)
    model = load_for(args)
    table = method_table(model)
    methods = list(args.methods) if args.methods else list(table)
    unknown = [m for m in methods if m not in table]
    if unknown:
        raise TadaError(f"method {unknown[0]!r} does not apply to {model.name}; accepted: {', '.join(table)}")
    scorer = scorer_for(args, model)
    concepts = entry_for(model).concepts
    names = concepts.names() if "all" in args.concept else list(dict.fromkeys(args.concept))
    chosen = [concepts.get(n, files=True) for n in names]
    specificity = [concepts.get(n, files=True) for n in args.specificity] if args.specificity is not None else chosen
    bases = list(concepts.bases)[:args.prompts] if args.prompts else None
    config = BenchmarkConfig(concepts=concepts, methods=methods, distance=distance, quality=quality, functional=(),
                             seeds=args.seeds, bases=bases, strengths=args.strengths, specificity=specificity,
                             vectors=args.vectors, settings=settings_from(args), vector_renorm=args.vector_renorm)
    results = []
    for concept in chosen:
        functional = _functional(args, model, concept)
        if processes.main:
            note(f"{concept.name}: functional layers {functional or 'none'}")
        results.append(run(model, concept, scorer, config, functional=functional, out=out / concept.name,
                           processes=processes))
    if not processes.main:
        return 0
    if needs_functional_layers(model):
        renorm = "with" if args.vector_renorm else "without"
        title = f"Steering benchmark (TADA Table 3) on {model.name}, CAA and SAE {renorm} ReNorm"
    else:
        title = f"Steering benchmark (TADA Table 3's protocol) on {model.name}: DiffMean and its baselines"
    write_tables(results, out, title=title)
    curves_png(results, out / "curves.png")
    if any(m.key == "random" and m.available for r in results for m in r.methods):
        from tada_core.evaluation.benchmark import controls

        controls.write(out, results, scorer, chosen)    # each method against the random control, in table.md
    print((out / "table.md").read_text(encoding="utf-8"))
    return 0
