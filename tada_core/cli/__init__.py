"""The ``tada`` command line: a thin layer over the library. Each command registers its own
arguments beside its handler (``register_<command>`` / ``run_<command>`` in this package).

    tada models                      the models: checkpoints, measured layer counts, CFG order, presets
    tada generate --prompt P --out x.wav [--model M --seed S --duration D --steps N --guidance G]
                  [--steer VECTOR --alpha A [--steer-layers L ...] ...] [--no-renorm]   (several: composed)
    tada list [ROOT ...]             steering vectors and SAEs in vectors/ and saes/ (rebuilds index.json)
    tada push FOLDER --repo ORG/NAME [--dry-run]   validate and upload an artifact folder
    tada pull ORG/NAME [--revision R]              download (or find in the cache) and validate
    tada import-steer-audio VECTORS.pkl --config config.json --model ace-step --out FOLDER
    tada localize --concept C [--concept ...|all] [--captions musiccaps.csv] [--out DIR]
    tada caa --concept C [--localization DIR] [--out vectors/NAME]
    tada diffmean compute --model musicgen-melody --concept C   DiffMean vectors (MusicGen's residual stream)
    tada diffmean scan VECTOR --measure bpm|centroid --out DIR  per-layer effect, cosine matrix, l_best
    tada diffmean fad VECTOR --out DIR                          FAD to unsteered clips as lambda grows
    tada sweep VECTOR [VECTOR ...] [--alphas A ...]      concept measure vs alpha, both signs
    tada ablate VECTOR [VECTOR ...] [--alpha A]          Table 2: all / all but functional / functional
    tada benchmark --concept C|all --out DIR [--methods M ...]   Table 3: every steering method, AUC
    tada sae cache | train | features | atlas            TopK SAEs, concept features, the feature atlas
    tada organism train | scorer | adherence             the model organism
    tada verify [ARTIFACT ...] --out DIR [--seeds S ...] every shipped artifact on fresh seeds: effect, leakage
    tada vector info NAME                                a vector and what `tada verify` found it does
    tada vector combine A:W B:W ... --out DIR            concept arithmetic: a weighted sum of vectors
    tada interference --out DIR [--method caa sae]       pairs of vectors composed: additivity, cross-talk
    tada edit --audio in.wav --steer VECTOR --alpha A [A ...] --out out.wav   steer your own clip (inversion)
    tada slider train --concept C --layers functional|all --out DIR   a Concept Slider (LoRA, Gandikota et al.)

Bad input ends with a one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from typing import Sequence

from tada_core.errors import TadaError
from tada_core.runtime import logs
from tada_core.cli.artifacts import register_import, register_list, register_pull, register_push
from tada_core.cli.benchmark import register_benchmark
from tada_core.cli.diffmean import register_diffmean
from tada_core.cli.edit import register_edit
from tada_core.cli.evaluate import register_ablate, register_sweep
from tada_core.cli.interference import register_interference
from tada_core.cli.localize import register_caa, register_localize
from tada_core.cli.models import register_generate, register_models
from tada_core.cli.organism import register_organism
from tada_core.cli.sae import register_sae
from tada_core.cli.slider import register_slider
from tada_core.cli.vector import register_vector
from tada_core.cli.verify import register_verify

REGISTER = (register_models, register_generate, register_list, register_push, register_pull, register_import,
            register_localize, register_caa, register_diffmean, register_sweep, register_ablate, register_benchmark,
            register_sae, register_organism, register_verify, register_vector,
            register_interference, register_edit, register_slider)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tada", description="Look inside and steer text-to-music models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in REGISTER:
        register(sub)
    _add_verbosity(parser, top=True)
    return parser


def _add_verbosity(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """``-v`` / ``-q`` on the command and on every subcommand (``tada -q localize`` = ``tada localize -q``)."""
    default = 0 if top else argparse.SUPPRESS
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1, default=default,
                       help="more detail (DEBUG, and diffusers' / transformers' own messages)")
    group.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1, default=default,
                       help="only warnings and errors (no progress notes)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_verbosity(child)


def main(argv: Sequence[str] | None = None) -> int:
    # torch's weight_norm deprecation (inside diffusers' decoders) and torchsde's Brownian-interval notes
    # (inside Stable Audio's scheduler at its first step) say nothing to a user.
    warnings.filterwarnings("ignore", message=".*weight_norm.*deprecated.*")
    warnings.filterwarnings("ignore", message="Should have t[ab]>=t0", module="torchsde")
    warnings.filterwarnings("ignore", message=".*`torch_dtype` is deprecated", category=FutureWarning)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["tada", *argv])   # the provenance saved artifacts record
    logs.configure(args.verbosity)
    try:
        return args.func(args)
    except TadaError as e:
        print(f"tada {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # resumable commands (localize, benchmark, sae cache) have already kept every finished batch
        print(f"tada {args.command}: interrupted; finished work is kept where the command writes it, and "
              f"the same command resumes it", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
