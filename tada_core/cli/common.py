"""What every ``tada`` command shares: argument types that validate before any model loads,
the generation options, loading a model for a command, and writing a report."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

from tada_core.adapters import FAMILIES
from tada_core.adapters.settings import GenerationSettings
from tada_core.errors import TadaError

log = logging.getLogger(__name__)


def _whole(minimum: int, maximum: int | None, accepted: str):
    """An argparse type: a whole number in [minimum, maximum) (``--pairs 0`` is an error, not "the default")."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value >= maximum):
            raise argparse.ArgumentTypeError(f"must be {accepted}; got {text!r}")
        return value
    return parse


positive_int = _whole(1, None, "a whole number >= 1")
seed_int = _whole(0, 2 ** 32, "a whole number in 0..4294967295")
layer_index = _whole(0, None, "a layer index, a whole number >= 0")


def add_renorm_arg(p: argparse.ArgumentParser) -> None:
    """``--renorm`` / ``--no-renorm``: ReNorm (Eq. 3) after steering; default: the vector's own, else on."""
    p.add_argument("--renorm", action=argparse.BooleanOptionalAction, default=None,
                   help="rescale each steered token to its original norm (ReNorm, Eq. 3). Default: the setting the "
                        "vector's alpha range was validated with, else on, as in the paper's method and results; "
                        "--no-renorm adds alpha * v alone (Eq. 8, the reference code's default)")


def add_validated_renorm_arg(p: argparse.ArgumentParser) -> None:
    """``--renorm`` / ``--no-renorm`` of commands that make a vector: recorded with its alpha range."""
    p.add_argument("--renorm", action=argparse.BooleanOptionalAction, default=None,
                   help="record that --alpha-range was validated with (default) or without ReNorm (Eq. 3); "
                        "applying the vector then uses the same setting unless told otherwise")


def finite_float(text: str) -> float:
    """argparse type: a finite number (no NaN, no inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number; got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number (not NaN or inf); got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0; got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0; got {text!r}")
    return value


def add_model_arg(p: argparse.ArgumentParser, artifact: bool = False) -> None:
    """--model (default: the shipped organism, or with ``artifact``, the model the artifact was made for)."""
    from tada_core.registry import DEFAULT_MODEL

    default = "the artifact's model" if artifact else DEFAULT_MODEL
    p.add_argument("--model", default=None, help=f"model name, local pipeline folder or Hub repo id "
                                                 f"(default: {default}; see `tada models`)")


def add_generation_args(p: argparse.ArgumentParser, batch_size: int | None = 24) -> None:
    """--duration --steps --guidance, every family's options (``--lyrics`` ...), --device --dtype [--batch-size]."""
    p.add_argument("--duration", type=positive_float, default=None, help="seconds (default: the model's)")
    p.add_argument("--steps", type=positive_int, default=None, help="diffusion steps (default: the model's)")
    p.add_argument("--guidance", type=nonnegative_float, default=None, help="classifier-free guidance scale "
                                                                            "(default: the model's)")
    add_family_options(p)
    add_device_args(p)
    if batch_size is not None:
        p.add_argument("--batch-size", type=positive_int, default=batch_size,
                       help=f"generations per pipeline call (default {batch_size})")


def add_family_options(p: argparse.ArgumentParser) -> None:
    """The options each family declares (:attr:`ModelAdapter.option_specs`), as ``--name``; a model of another
    family refuses them when the command loads it (:meth:`ModelAdapter.configure`)."""
    for cls in FAMILIES.values():
        for spec in cls.option_specs:
            p.add_argument("--" + spec.name.replace("_", "-"), dest=spec.name, default=None, nargs=spec.nargs,
                           metavar=spec.metavar, type=spec.type, help=f"{cls.display_name}: {spec.help}")


def family_options(args: argparse.Namespace) -> dict[str, Any]:
    """The family options the user gave on the command line (name -> value)."""
    names = {spec.name for cls in FAMILIES.values() for spec in cls.option_specs}
    return {name: getattr(args, name) for name in sorted(names) if getattr(args, name, None) is not None}


def add_device_args(p: argparse.ArgumentParser) -> None:
    """--device --device-map --dtype."""
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--device-map", choices=["balanced"], default=None,
                   help="spread the model's components over the visible GPUs (diffusers' own device map), for "
                        "checkpoints larger than one GPU; replaces --device")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                   help="weights dtype (default: float32 on CPU; on a GPU the family's: bfloat16 for ACE-Step, "
                        "else as saved); recorded activations and vectors stay float32")


def settings_from(args: argparse.Namespace) -> GenerationSettings:
    return GenerationSettings(duration=args.duration, steps=args.steps, guidance=args.guidance,
                              batch_size=getattr(args, "batch_size", 16))


def check_device(device: str | None) -> None:
    """Refuse a device this machine does not have, before loading anything."""
    if device is None:
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise TadaError(f"unknown device {device!r}; accepted: cpu, cuda, cuda:N, mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TadaError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise TadaError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA devices")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise TadaError(f"--device {device}: MPS is not available on this machine; use --device cpu")


def check_writable(path: str | Path, what: str = "--out") -> Path:
    """Refuse an output path whose folder cannot be created or written, before any work is done."""
    path = Path(path)
    folder = path if path.suffix == "" else path.parent
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise TadaError(f"{what} {str(path)!r}: cannot write there ({probe} is not a writable folder)")
    return path


def processes_for(args: argparse.Namespace):
    """The processes of this run (one, or those of ``accelerate launch``); sets ``args.device`` to this
    process's device (``cuda:<local rank>`` in a multi-GPU run)."""
    from tada_core.runtime.distributed import launched

    check_device(getattr(args, "device", None))
    processes = launched(getattr(args, "device", None))
    if processes.distributed and getattr(args, "device_map", None):
        raise TadaError("--device-map spreads one model over every GPU, and a multi-process run gives each process "
                        "its own GPU; use one or the other")
    args.device = processes.device(getattr(args, "device", None))
    return processes


def load_for(args: argparse.Namespace, model: str | None = None):
    """The model of ``--model`` (else ``model``, else the shipped organism) on ``--device``, progress bars off."""
    from tada_core.registry import DEFAULT_MODEL, load_model

    check_device(getattr(args, "device", None))
    m = load_model(getattr(args, "model", None) or model or DEFAULT_MODEL, device=getattr(args, "device", None),
                   dtype=getattr(args, "dtype", None), device_map=getattr(args, "device_map", None))
    m.set_progress_bar(False)
    m.configure(**family_options(args))
    return m


def write_report(out: str | None, title: str, intro: str, table: str, data: Any) -> None:
    """Print ``table``; with ``--out``, also write ``OUT.md`` (title, intro, table) and ``OUT.json`` (the data)."""
    from tada_core.runtime.io import atomic_write_text, write_json

    print(table)
    if not out:
        return
    path = Path(out)
    if path.suffix in (".md", ".json"):
        path = path.with_suffix("")
    md, js = path.with_name(path.name + ".md"), path.with_name(path.name + ".json")   # "g2.5" keeps its ".5"
    atomic_write_text(md, f"# {title}\n\n{intro}\n\n{table}\n")
    write_json(js, data)
    print(f"wrote {md} and {js}", file=sys.stderr)


def note(text: str) -> None:
    """A progress or context line for the user (stderr through logging, so stdout stays the result and
    ``-q`` silences it)."""
    log.info(text)
