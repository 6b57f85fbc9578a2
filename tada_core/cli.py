"""The ``tada`` command line.

    tada models                      supported models, hub ids, layer counts, CFG batch order
    tada generate --prompt P --out x.wav [--model M --seed S --duration D --steps N --guidance G]

Bad input ends with a one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
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
    gen = model.generate(args.prompt, seeds=args.seed, duration=args.duration, steps=args.steps,
                         guidance=args.guidance)
    t2 = time.perf_counter()
    for path, clip, prompt, seed in zip(_out_paths(args.out, len(gen.prompts)), gen.audio, gen.prompts, gen.seeds):
        save_wav(path, clip, gen.sample_rate)
        print(f"wrote {path}  ({clip.shape[-1] / gen.sample_rate:.2f}s, {gen.sample_rate} Hz, "
              f"seed {seed}, prompt {prompt!r})")
    print(f"model {model.name}: loaded in {t1 - t0:.2f}s, generated in {t2 - t1:.2f}s", file=sys.stderr)
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
    p.set_defaults(func=_cmd_generate)
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
