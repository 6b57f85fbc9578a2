"""``tada list``, ``tada push``, ``tada pull``, ``tada import-steer-audio``: artifacts and the Hub."""

from __future__ import annotations

import argparse

from tada_core.cli.common import note


def register_list(sub) -> None:
    p = sub.add_parser("list", help="list (and index) the steering vectors and SAEs in artifact folders")
    p.add_argument("roots", nargs="*", default=["vectors", "saes"])
    p.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    from tada_core.artifacts.hub import build_index

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
    from tada_core.artifacts.hub import push

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
    from tada_core.artifacts.hub import artifact_summary, pull

    folder = pull(args.repo, args.revision)
    r = artifact_summary(folder)
    print(f"{folder}\n  {r['kind']} model={r['model']} concept={r['concept']} layers={r['layers']}")
    return 0


def register_import(sub) -> None:
    p = sub.add_parser("import-steer-audio", help="convert the TADA reference code's CAA vectors (sv.pkl) exactly "
                                                  "(read with a restricted unpickler: numpy arrays only)")
    p.add_argument("pickle", help="the reference code's sv.pkl")
    p.add_argument("--config", default=None, help="its config.json (default: the one beside the pickle, if any)")
    p.add_argument("--model", default="auto",
                   help="model the vectors were computed on: 'auto' (default: tf<N> keys = ACE-Step v1, "
                        ".transformer.* = stable-audio, .unet.* = audioldm2-large, the reference's checkpoints), "
                        "or a registry name / Hub id")
    p.add_argument("--cfg-pass", default="cond",
                   help="which CFG pass of a (step, cfg_pass) file: cond (default, what the reference steers "
                        "with), uncond, or a pass number")
    p.add_argument("--concept", default=None, help="concept name (default: the config's)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tada_core.artifacts.reference import import_steer_audio

    config = args.config
    if config is None and (Path(args.pickle).parent / "config.json").is_file():
        config = Path(args.pickle).parent / "config.json"
    cfg_pass = int(args.cfg_pass) if str(args.cfg_pass).isdigit() else args.cfg_pass
    vec = import_steer_audio(args.pickle, config, model=args.model, concept=args.concept, cfg_pass=cfg_pass)
    vec.command = getattr(args, "command_line", None)
    out = vec.save(args.out)
    layout = vec.extra["layout"]
    print(f"wrote {out}: concept {vec.concept!r} on {vec.model}, layers {vec.layers} "
          f"({', '.join(vec.layer_paths[i] for i in vec.layers)}), "
          f"{'one vector per step for ' + str(layout['steps']) + ' steps' if layout['per_step'] else 'one vector for every step'}, "
          f"CFG pass {layout['cfg_pass']}")
    if vec.extra.get("note"):
        note(f"note: {vec.extra['note']}: no model this project loads can apply it")
    return 0
