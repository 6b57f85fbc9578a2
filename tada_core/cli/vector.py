"""``tada vector info``: what a steering vector is, and what ``tada verify`` found it does;
``tada vector combine``: a new vector from a weighted sum of saved ones (docs/composition.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tada_core.cli.common import check_writable
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
    c = vsub.add_parser("combine", help="a new vector from a weighted sum or difference of saved vectors of one "
                                        "model (concept arithmetic), saved with its recipe")
    c.add_argument("terms", nargs="+", type=weighted_term, metavar="VECTOR:WEIGHT",
                   help="a shipped vector name, a vector folder or a Hub repo id, a colon and its signed weight, "
                        "e.g. tada-organism-tempo-caa:1 tada-organism-drums-caa:-0.5")
    c.add_argument("--out", required=True, help="the folder to write the combined vector to")
    c.add_argument("--concept", default=None, help="the new vector's concept name (default: the recipe, e.g. "
                                                   "'1*tempo - 0.5*drums')")
    c.add_argument("--vectors", default="vectors", help="the folder of shipped vectors (default: vectors)")
    c.add_argument("--renorm", action=argparse.BooleanOptionalAction, default=None,
                   help="record that the new vector is applied with (or, --no-renorm, without) ReNorm (Eq. 3); "
                        "default: the sources' common setting (sources that differ need one of the two)")
    c.set_defaults(func=run_vector_combine)


def weighted_term(text: str) -> tuple[str, float]:
    """argparse type: ``VECTOR:WEIGHT`` (the weight a finite signed number)."""
    import math

    source, colon, weight = text.rpartition(":")
    try:
        value = float(weight) if colon and source else None
    except ValueError:
        value = None
    if value is None or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be VECTOR:WEIGHT with a finite signed weight, e.g. "
                                         f"tada-organism-tempo-caa:1 or tada-organism-drums-caa:-0.5; got {text!r}")
    return source, value


def vector_folder(name: str, root: str | Path) -> Path:
    """A vector's folder: ``name`` in ``root``'s index.json (the shipped vectors), else a folder or Hub repo id."""
    from tada_core.artifacts.hub import read_index
    from tada_core.runtime.io import resolve

    names = {r["name"] for r in read_index(root) if r.get("kind") == "steering-vector"}
    return Path(root) / name if name in names else Path(resolve(name))


def run_vector_info(args: argparse.Namespace) -> int:
    from tada_core.artifacts.vectors import load_vector
    from tada_core.evaluation import verification as ver

    folder = vector_folder(args.vector, args.vectors)
    vec = load_vector(folder)
    lo, hi = vec.alpha_range or (None, None)
    print(f"{folder.name}: {vec.method} vector for concept {vec.concept!r} on {vec.model}")
    print(f"  layers {vec.layers}; steers {vec.default_layers()} by default"
          + (f" ({vec.strategy['name']} from layer {vec.strategy['source_layer']})" if vec.strategy else ""))
    validated = ("alpha range (each source within its own validated range; the combination unvalidated)"
                 if vec.method == "combined" else "validated alpha range")
    print(f"  {validated} {lo} .. {hi}; ReNorm {'on' if vec.default_renorm() else 'off'}")
    if vec.command:
        print(f"  made by: {vec.command}")
    for entry in vec.extra.get("recipe") or []:
        print(f"  recipe: {entry.get('weight'):g} x {entry.get('source') or entry.get('concept')}"
              + (f" (sha256 {entry['sha256'][:12]}...)" if entry.get("sha256") else ""))
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


def run_vector_combine(args: argparse.Namespace) -> int:
    from tada_core.artifacts.compose import combine
    from tada_core.artifacts.vectors import load_vector
    from tada_core.evaluation.verification import artifact_sha256

    out = check_writable(args.out)
    terms, sources = [], []
    for name, weight in args.terms:
        folder = vector_folder(name, args.vectors)
        if folder.resolve() == out.resolve():
            raise TadaError(f"--out {str(out)!r} is the source {name!r}: the recipe would name a vector that no "
                            f"longer exists; give a new folder")
        terms.append((load_vector(folder), weight))
        sources.append({"source": name, "sha256": artifact_sha256(folder)})
    vec = combine(terms, concept=args.concept, sources=sources, renorm=args.renorm, command=args.command_line)
    vec.save(out)
    lo, hi = vec.alpha_range or (None, None)
    print(f"wrote {out}: {vec.concept!r} on {vec.model}, layers {vec.layers}, alpha range {lo} .. {hi}, "
          f"ReNorm {'on' if vec.default_renorm() else 'off'}")
    return 0
