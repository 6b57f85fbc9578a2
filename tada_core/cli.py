"""The ``tada`` command line.

    tada models                      supported models, hub ids, layer counts, CFG batch order
    tada generate --prompt P --out x.wav [--model M --seed S --duration D --steps N --guidance G]
                  [--steer VECTOR --alpha A]   VECTOR: a steering-vector folder or Hub repo id
    tada list [ROOT ...]             steering vectors and SAEs in vectors/ and saes/ (rebuilds index.json)
    tada push FOLDER --repo ORG/NAME [--dry-run]   validate and upload an artifact folder
    tada pull ORG/NAME [--revision R]              download (or find in the cache) and validate
    tada import-steer-audio VECTORS.pkl --config config.json --model ace-step --out FOLDER

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

            stack.enter_context(load_vector(args.steer, args.revision).apply(model, alpha=args.alpha))
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
