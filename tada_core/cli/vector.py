"""``tada vector info``: what a steering vector is, and what ``tada verify`` found it does."""

from __future__ import annotations

import argparse
from pathlib import Path

from tada_core.errors import TadaError

DEFAULT_RESULTS = "results/verification"


def register_vector(sub) -> None:
    v = sub.add_parser("vector", help="steering vectors: what a vector is and what it was verified to do")
    vsub = v.add_subparsers(dest="vector_command", required=True)
    i = vsub.add_parser("info", help="a vector's config and its verified effect and leakage (from `tada verify`)")
    i.add_argument("vector", help="a shipped vector name, a vector folder or a Hub repo id")
    i.add_argument("--vectors", default="vectors", help="the folder of shipped vectors (default: vectors)")
    i.add_argument("--verification", default=DEFAULT_RESULTS,
                   help=f"verification results to read (default: {DEFAULT_RESULTS})")
    i.set_defaults(func=run_vector_info)


def run_vector_info(args: argparse.Namespace) -> int:
    from tada_core.artifacts.hub import read_index
    from tada_core.artifacts.vectors import load_vector
    from tada_core.evaluation import verification as ver
    from tada_core.runtime.io import resolve

    root = Path(args.vectors)
    names = {r["name"] for r in read_index(root) if r.get("kind") == "steering-vector"}
    folder = root / args.vector if args.vector in names else Path(resolve(args.vector))
    vec = load_vector(folder)
    lo, hi = vec.alpha_range or (None, None)
    print(f"{folder.name}: {vec.method} vector for concept {vec.concept!r} on {vec.model}")
    print(f"  layers {vec.layers}; steers {vec.default_layers()} by default"
          + (f" ({vec.strategy['name']} from layer {vec.strategy['source_layer']})" if vec.strategy else ""))
    print(f"  validated alpha range {lo} .. {hi}; ReNorm {'on' if vec.default_renorm() else 'off'}")
    if vec.command:
        print(f"  made by: {vec.command}")
    text = verified_text(folder.name, ver.artifact_sha256(folder), args.verification)
    print(text)
    return 0


def verified_text(name: str, sha256: str, results_path: str | Path) -> str:
    """:func:`tada_core.evaluation.verification.verified_lines`, indented, with how to verify when it is not."""
    from tada_core.evaluation import verification as ver

    try:
        results = ver.read_results(results_path)
    except TadaError:
        results = None
    lines = ver.verified_lines(results, name, sha256)
    if lines[0].startswith("not verified"):
        lines.append(f"run `tada verify {name} --out DIR`, then `tada vector info {name} --verification DIR`"
                     + ("" if results is not None else f" (looked in {results_path})"))
    return "\n".join("  " + line if k == 0 else "    " + line for k, line in enumerate(lines))
