"""``tada edit``: steer a clip the user already has (tada_core.editing; docs/editing.md)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tada_core.audio import check_wav_path
from tada_core.cli.common import (add_generation_args, add_model_arg, add_renorm_arg, check_device, check_writable,
                                  finite_float, layer_index, load_for, note, seed_int, settings_from)


def register_edit(sub) -> None:
    p = sub.add_parser("edit", help="steer your own clip: invert it (edit-friendly DDPM inversion) and regenerate "
                                    "it steered (MusicGen: keep its start as codec tokens, continue it steered); "
                                    "several --alpha: one file each, one batched call")
    p.add_argument("--audio", required=True, help="the clip: .wav, .flac, .ogg or .mp3 (any rate, mono or stereo; "
                                                  "at most 50 MB and 600 s; the model edits its first --duration s)")
    add_model_arg(p, artifact=True)
    p.add_argument("--steer", default=None, metavar="VECTOR",
                   help="steering-vector folder or Hub repo id (without it: the reconstruction, alpha 0 only)")
    p.add_argument("--alpha", type=finite_float, nargs="+", default=None,
                   help="steering strength(s); several write one file each (OUT_a+4.wav ...)")
    p.add_argument("--revision", default=None, help="Hub revision of --steer")
    p.add_argument("--steer-layers", type=layer_index, nargs="+", default=None, metavar="L",
                   help="layers to steer (default: the vector's functional layers)")
    p.add_argument("--prompt", default=None,
                   help="what the clip is, in the model's words (default: the neutral 'music'); it conditions both "
                        "the inversion and the regeneration (docs/editing.md)")
    p.add_argument("--strength", type=finite_float, default=None,
                   help="0-1: how much of the sampling is regenerated (1: full inversion, default; smaller keeps "
                        "more of the clip, SDEdit-like; 0: the clip's encoding). MusicGen: the fraction of the clip "
                        "replaced by a steered continuation of the rest (default 0.5)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the inversion's noise maps (default 0)")
    p.add_argument("--out", required=True, help="output .wav path")
    p.add_argument("--encoded", action="store_true",
                   help="also write OUT_encoded.wav: the clip through the model's autoencoder only")
    add_renorm_arg(p)
    add_generation_args(p, batch_size=None)
    p.set_defaults(func=run_edit)


def out_paths(out: str | Path, alphas: list[float]) -> list[Path]:
    """One path per alpha: ``out`` itself for one alpha, else ``STEM_a{alpha:+g}.wav`` (``x_a+4.wav``)."""
    path = Path(out)
    if len(alphas) == 1:
        return [path]
    return [path.with_name(f"{path.stem}_a{a:+g}{path.suffix}") for a in alphas]


def run_edit(args: argparse.Namespace) -> int:
    from tada_core.audio import level, read_clip, save_wav
    from tada_core.editing import check_strength, edit
    from tada_core.errors import TadaError

    check_writable(check_wav_path(args.out))
    if args.strength is not None:
        check_strength(args.strength)
    alphas = args.alpha if args.alpha is not None else [0.0]
    if args.steer is None and any(a != 0 for a in alphas):
        raise TadaError("--alpha other than 0 needs --steer VECTOR (the vector to scale)")
    if len(set(alphas)) != len(alphas):
        raise TadaError(f"--alpha has repeated values {alphas}; give each strength once")
    audio, sample_rate = read_clip(args.audio)      # before loading a model: a bad file fails fast
    check_device(args.device)
    vec = None
    if args.steer is not None:
        from tada_core.artifacts.vectors import load_vector

        vec = load_vector(args.steer, args.revision)
    t0 = time.perf_counter()
    model = load_for(args, vec.model if vec is not None else None)
    steer = None
    if vec is not None:
        vec.check_compatible(model)
        layers, renorm = args.steer_layers, args.renorm

        class _Steer:   # the vector with this command's layer / ReNorm choices
            def apply(self, adapter, alpha):
                return vec.apply(adapter, alpha, layers=layers, use_renorm=renorm)
        steer = _Steer()
    t1 = time.perf_counter()
    result = edit(model, audio, sample_rate, steer=steer, alpha=alphas, prompt=args.prompt, strength=args.strength,
                  seed=args.seed, settings=settings_from(args))
    t2 = time.perf_counter()
    import torch

    clips = level(torch.cat([result.audio, result.encoded[None]]))   # one gain for the whole call
    for path, clip, alpha in zip(out_paths(args.out, alphas), clips, alphas):
        save_wav(path, clip, result.sample_rate)
        seconds = clip.shape[-1] / result.sample_rate
        print(f"wrote {path}  (alpha {alpha:g}, strength {result.strength:g}, {seconds:.2f}s, "
              f"{result.sample_rate} Hz, prompt {result.prompt!r})")
    if args.encoded:
        path = Path(args.out).with_name(f"{Path(args.out).stem}_encoded.wav")
        save_wav(path, clips[-1], result.sample_rate)
        print(f"wrote {path}  (the clip through the autoencoder only)")
    what = f"{vec.concept!r}" if vec is not None else "no vector"
    if result.method == "continuation":
        how = f"keeping the clip's first {result.start_step} codec frames and continuing them"
    else:
        how = f"regenerating from step {result.start_step} of {result.settings.steps}"
    note(f"edited with {what}, {len(alphas)} alpha(s), {how}; model {model.name}: loaded in {t1 - t0:.2f}s, "
         f"edited in {t2 - t1:.2f}s")
    return 0
