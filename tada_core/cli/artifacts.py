"""``tada list``, ``tada push``, ``tada pull``, ``tada import-steer-audio``: artifacts and the Hub."""

from __future__ import annotations

import argparse

from .common import note


def register_list(sub) -> None:
    p = sub.add_parser("list", help="list (and index) the steering vectors and SAEs in artifact folders")
    p.add_argument("roots", nargs="*", default=["vectors", "saes"])
    p.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    from ..hub import build_index

    status = 0
    for root in args.roots:
        errors: list[str] = []
        rows = build_index(root, errors)
        print(f"{root}/  ({len(rows)} artifacts; index written to {root}/index.json)")
        for r in rows:
            layers = ",".join(map(str, r["layers"]))
            print(f"  {r['name']:<28} {r['kind']:<16} model={r['model']}  concept={r['concept']}  "
                  f"method={r['method']}  layers={layers}")
        for e in errors:
            note(f"  skipped (invalid): {e}")
            status = 2
    return status


def register_push(sub) -> None:
    p = sub.add_parser("push", help="validate an artifact folder and upload it as a Hub model repo")
    p.add_argument("folder")
    p.add_argument("--repo", required=True, help="ORG/NAME")
    p.add_argument("--revision", default=None)
    p.add_argument("--private", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded; send nothing")
    p.set_defaults(func=run_push)


def run_push(args: argparse.Namespace) -> int:
    from ..hub import push

    files = push(args.folder, args.repo, revision=args.revision, private=args.private, dry_run=args.dry_run)
    verb = "would upload" if args.dry_run else "uploaded"
    for name, size in files:
        print(f"{verb} {name}  ({size} bytes)")
    print(f"{verb} {len(files)} files to https://huggingface.co/{args.repo}")
    return 0


def register_pull(sub) -> None:
    p = sub.add_parser("pull", help="download a vector/SAE repo (or find it in the cache) and validate it")
    p.add_argument("repo")
    p.add_argument("--revision", default=None)
    p.set_defaults(func=run_pull)


def run_pull(args: argparse.Namespace) -> int:
    from ..hub import artifact_summary, pull

    folder = pull(args.repo, args.revision)
    r = artifact_summary(folder)
    print(f"{folder}\n  {r['kind']} model={r['model']} concept={r['concept']} layers={r['layers']}")
    return 0


def register_import(sub) -> None:
    p = sub.add_parser("import-steer-audio", help="convert the TADA reference code's pickled CAA vectors "
                                                  "(read with a restricted unpickler: numpy arrays only)")
    p.add_argument("pickle", help="the reference code's vectors .pkl")
    p.add_argument("--config", default=None, help="its config.json")
    p.add_argument("--model", default="ace-step", help="model the vectors were computed on (default: ace-step)")
    p.add_argument("--concept", default=None)
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    from ..hub import import_steer_audio
    from ..registry import REGISTRY, load_model, measured_layers

    entry = REGISTRY.get(args.model)
    layers = measured_layers(entry) if entry is not None else None  # layer paths without loading weights
    if layers is not None:
        paths = {index: path for index, path, _ in layers}
    else:
        paths = {layer.index: layer.path for layer in load_model(args.model, device="cpu").layers}
    vec = import_steer_audio(args.pickle, args.config, model=args.model, layer_paths=paths, concept=args.concept)
    out = vec.save(args.out)
    print(f"wrote {out}: concept {vec.concept!r}, layers {vec.layers}, "
          f"{next(iter(vec.vectors.values())).shape[0]} steps")
    return 0
