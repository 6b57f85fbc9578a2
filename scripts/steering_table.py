"""CAA and SAE steering in one table, from `tada sweep` results.

    python scripts/steering_table.py CAA=results/organism_steering.json SAE=results/organism_sae_steering.json \
        --out results/organism_caa_vs_sae.md

Per concept and method: steered layers, alpha range, the measure at -max, 0 and +max,
whether it moves monotonically with alpha (both signs), and how much the clip changes
at the ends of the range (preservation: log-mel distance (dB) of the steered clip to the unsteered one,
the benchmark's distance).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tada_core.evaluation.sweeps import SweepResult, comparison_table
from tada_core.runtime.io import atomic_write_text, read_json


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("results", nargs="+", help="METHOD=path/to/sweep.json")
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="CAA vs SAE steering on tada-organism")
    args = p.parse_args()
    named = []
    for spec in args.results:
        method, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"give METHOD=PATH; got {spec!r}")
        named += [(method, SweepResult.from_dict(d)) for d in read_json(Path(path))]
    sizes = sorted({r.n for _, r in named})
    title = f" --title {args.title!r}" if args.title != p.get_default("title") else ""
    text = "\n".join([
        f"# {args.title}", "",
        f"Made by `python scripts/steering_table.py {' '.join(args.results)} --out {args.out}{title}` from the "
        f"`tada sweep` results ({' / '.join(map(str, sizes))} clips per cell: prompts x held-out seeds). "
        "Measure at the ends of each vector's alpha "
        "range and unsteered; preservation = log-mel distance (dB) of the steered clip to the unsteered one, "
        "the benchmark's distance (lower = the rest of the clip is kept).", "", comparison_table(named)])
    atomic_write_text(args.out, text + "\n")
    print(text)


if __name__ == "__main__":
    main()
