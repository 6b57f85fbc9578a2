"""``tada models`` and ``tada generate``."""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

from tada_core.audio import check_wav_path
from tada_core.cli.common import (add_renorm_arg, add_generation_args, add_model_arg, check_device, check_writable, finite_float, layer_index,
                     load_for, note, seed_int, settings_from)


def register_models(sub) -> None:
    p = sub.add_parser("models", help="list the models: checkpoints, measured layer counts and widths, CFG batch "
                                      "order, functional-layer presets")
    p.add_argument("--all", action="store_true", help="also list the tiny random-weight test fixtures")
    p.set_defaults(func=run_models)


def run_models(args: argparse.Namespace) -> int:
    from tada_core.registry import model_catalog

    rows = [r for r in model_catalog() if r["listed"] or args.all]
    cols = [("name", "model"), ("family", "family"), ("source", "checkpoint"), ("layers", "cross-attn layers"),
            ("widths", "widths"), ("cfg_batch", "CFG batch"), ("presets", "functional layers (0-based) on it"),
            ("scorer", "built-in scorer")]
    widths = [max(len(title), *(len(str(r[key])) for r in rows)) for key, title in cols]
    print("  ".join(title.ljust(w) for (_, title), w in zip(cols, widths)))
    for r in rows:
        print("  ".join(str(r[key]).ljust(w) for (key, _), w in zip(cols, widths)))
    for r in rows:
        if r["notes"]:
            print(f"\n{r['name']}: {r['notes']}")
    print("\nLayer counts and widths are measured from each checkpoint's denoiser config (built on the meta device, "
          "no weights). Layer indices are 0-based module indices; the papers count from 1.")
    return 0


def register_generate(sub) -> None:
    p = sub.add_parser("generate", help="generate audio from one or more prompts, optionally steered")
    add_model_arg(p)
    p.add_argument("--prompt", action="append", required=True,
                   help="text prompt; repeat for a batch (files get _0, _1, ... suffixes)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the first prompt; the next use seed+1, ...")
    p.add_argument("--out", required=True, help="output .wav path")
    p.add_argument("--steer", default=None, help="steering-vector folder or Hub repo id to apply")
    p.add_argument("--alpha", type=finite_float, default=None, help="steering strength (signed; needs --steer)")
    p.add_argument("--revision", default=None, help="Hub revision of --steer")
    p.add_argument("--steer-layers", type=layer_index, nargs="+", default=None,
                   help="layers to steer (default: the vector's functional layers)")
    add_renorm_arg(p)
    add_generation_args(p, batch_size=None)
    p.set_defaults(func=run_generate)


def _out_paths(out: str, n: int) -> list[Path]:
    path = Path(out)
    if n == 1:
        return [path]
    return [path.with_name(f"{path.stem}_{i}{path.suffix}") for i in range(n)]


def run_generate(args: argparse.Namespace) -> int:
    from tada_core.audio import level, save_wav
    from tada_core.errors import TadaError, check_prompts

    check_writable(check_wav_path(args.out))     # before loading a model, not after generating
    check_prompts(args.prompt, "--prompt")
    if args.alpha is not None and not args.steer:
        raise TadaError("--alpha needs --steer VECTOR (the vector to scale)")
    if args.steer and args.alpha is None:
        raise TadaError("--steer needs --alpha A (the steering strength; 0 = unsteered)")
    check_device(args.device)
    vec = None
    if args.steer:
        from tada_core.artifacts.vectors import load_vector

        vec = load_vector(args.steer, args.revision)
    t0 = time.perf_counter()
    model = load_for(args, vec.model if vec else None)
    settings = model.resolve_settings(settings_from(args))
    t1 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if vec is not None:
            renorm = vec.default_renorm() if args.renorm is None else args.renorm
            stack.enter_context(vec.apply(model, alpha=args.alpha, layers=args.steer_layers, use_renorm=renorm))
            note(f"steering {vec.concept!r} at layers {args.steer_layers or vec.default_layers()}, alpha "
                 f"{args.alpha:g} {'with' if renorm else 'without'} ReNorm")
        gen = model.generate(args.prompt, seeds=args.seed, settings=settings)
    t2 = time.perf_counter()
    leveled = level(gen.audio)   # one gain for the whole call (see tada_core.audio); refuses NaN audio
    for path, clip, prompt, seed in zip(_out_paths(args.out, len(gen.prompts)), leveled, gen.prompts, gen.seeds):
        save_wav(path, clip, gen.sample_rate)
        print(f"wrote {path}  ({clip.shape[-1] / gen.sample_rate:.2f}s, {gen.sample_rate} Hz, "
              f"seed {seed}, prompt {prompt!r})")
    note(f"model {model.name}: loaded in {t1 - t0:.2f}s, generated in {t2 - t1:.2f}s")
    return 0
