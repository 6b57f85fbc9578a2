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
    p.add_argument("--steer", action="append", default=None, metavar="VECTOR",
                   help="steering-vector folder or Hub repo id to apply; repeat to steer with several at once, "
                        "each with its own --alpha (matched in order; docs/composition.md)")
    p.add_argument("--alpha", action="append", type=finite_float, default=None,
                   help="steering strength (signed; one per --steer, in order)")
    p.add_argument("--revision", action="append", default=None,
                   help="Hub revision of --steer (one per --steer, in order, if given)")
    p.add_argument("--steer-layers", action="append", type=layer_index, nargs="+", default=None, metavar="L",
                   help="layers to steer (default: the vector's functional layers); with several --steer, give it "
                        "once per --steer, in order")
    add_renorm_arg(p)
    add_generation_args(p, batch_size=None)
    p.set_defaults(func=run_generate)


def _out_paths(out: str, n: int) -> list[Path]:
    path = Path(out)
    if n == 1:
        return [path]
    return [path.with_name(f"{path.stem}_{i}{path.suffix}") for i in range(n)]


def steering_plan(steer: list[str] | None, alpha: list[float] | None, revision: list[str] | None,
                  layers: list[list[int]] | None) -> list[tuple[str, float, str | None, list[int] | None]]:
    """``--steer``, ``--alpha``, ``--revision`` and ``--steer-layers`` as one (vector, alpha, revision, layers)
    tuple per ``--steer``, matched in order; counts that do not match are refused, naming them."""
    from tada_core.errors import TadaError

    steer, alpha = steer or [], alpha or []
    if alpha and not steer:
        raise TadaError("--alpha needs --steer VECTOR (the vector to scale)")
    if steer and not alpha:
        raise TadaError("--steer needs --alpha A (the steering strength; 0 = unsteered)")
    if len(alpha) != len(steer):
        raise TadaError(f"got {len(steer)} --steer and {len(alpha)} --alpha: give one --alpha per --steer, in order")
    if revision and len(revision) != len(steer):
        raise TadaError(f"got {len(steer)} --steer and {len(revision)} --revision: give one --revision per --steer, "
                        f"in order, or none")
    if layers and len(layers) != len(steer):
        raise TadaError(f"got {len(steer)} --steer and {len(layers)} --steer-layers: with several --steer, give "
                        f"--steer-layers once per --steer, in order, or not at all (each vector's default layers)")
    return [(s, a, revision[k] if revision else None, layers[k] if layers else None)
            for k, (s, a) in enumerate(zip(steer, alpha))]


def run_generate(args: argparse.Namespace) -> int:
    from tada_core.audio import level, save_wav
    from tada_core.errors import TadaError, check_prompts

    check_writable(check_wav_path(args.out))     # before loading a model, not after generating
    check_prompts(args.prompt, "--prompt")
    steers = steering_plan(args.steer, args.alpha, args.revision, args.steer_layers)
    check_device(args.device)
    vecs = []
    if steers:
        from tada_core.artifacts.vectors import load_vector

        from tada_core.registry import REGISTRY

        vecs = [load_vector(path, revision) for path, _, revision, _ in steers]
        # a registry name and its Hub id are one model; refuse before loading any model
        same = {(REGISTRY[v.model].hub_id or v.model) if v.model in REGISTRY else v.model for v in vecs}
        if len(same) > 1:
            made = ", ".join(f"{path} for {vec.model!r}" for (path, _, _, _), vec in zip(steers, vecs))
            raise TadaError(f"the --steer vectors were made for different models ({made}); a vector only steers "
                            f"the model it was computed on: give vectors of one model")
    t0 = time.perf_counter()
    model = load_for(args, vecs[0].model if vecs else None)
    settings = model.resolve_settings(settings_from(args))
    t1 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if vecs:
            from tada_core.artifacts.compose import compose, composed_renorm, steered_layers

            items = [(vec, alpha) for vec, (_, alpha, _, _) in zip(vecs, steers)]
            layers = [chosen for _, _, _, chosen in steers]
            stack.enter_context(compose(model, items, layers=layers, use_renorm=args.renorm))
            renorm = composed_renorm(vecs, args.renorm)
            what = ", ".join(f"{vec.concept!r} at layers {steered_layers(vec, [layer.index for layer in model.layers], chosen)} alpha "
                             f"{alpha:g}" for (vec, alpha), chosen in zip(items, layers))
            note(f"steering {what} {'with' if renorm else 'without'} ReNorm")
        gen = model.generate(args.prompt, seeds=args.seed, settings=settings)
    t2 = time.perf_counter()
    leveled = level(gen.audio)   # one gain for the whole call (see tada_core.audio); refuses NaN audio
    for path, clip, prompt, seed in zip(_out_paths(args.out, len(gen.prompts)), leveled, gen.prompts, gen.seeds):
        save_wav(path, clip, gen.sample_rate)
        print(f"wrote {path}  ({clip.shape[-1] / gen.sample_rate:.2f}s, {gen.sample_rate} Hz, "
              f"seed {seed}, prompt {prompt!r})")
    note(f"model {model.name}: loaded in {t1 - t0:.2f}s, generated in {t2 - t1:.2f}s")
    return 0
