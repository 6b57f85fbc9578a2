"""CAA and SAE steering in one table, from `tada sweep` results.

    python scripts/steering_table.py CAA=results/organism_steering.json SAE=results/organism_sae_steering.json \
        --out results/organism_caa_vs_sae.md

Per concept and method: steered layers, alpha range, the measure at -max, 0 and +max,
whether it moves monotonically with alpha (both signs), and how much the clip changes
at the ends of the range (preservation, dB spectral distance to alpha 0).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _fmt(x: float) -> str:
    return f"{x:.3f}" if abs(x) < 10 else f"{x:.0f}"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("results", nargs="+", help="METHOD=path/to/sweep.json")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    rows = {}
    for spec in args.results:
        method, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"give METHOD=PATH; got {spec!r}")
        for r in json.loads(Path(path).read_text(encoding="utf-8")):
            rows.setdefault(r["concept"], []).append((method, r))
    lines = ["# CAA vs SAE steering on tada-organism", "",
             f"Made by `python scripts/steering_table.py {' '.join(args.results)} --out {args.out}` from the "
             "`tada sweep` results (12 prompts x 2 seeds per cell). Measure at the ends of each vector's alpha "
             "range and unsteered; preservation = dB spectral distance of the steered clip to the unsteered one "
             "(lower = the rest of the clip is kept).", "",
             "| concept | method | measure | layers | alpha range | at -max | at 0 | at +max | monotonic | "
             "preservation at -max / +max (dB) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for concept, entries in rows.items():
        for method, r in entries:
            keys = sorted(r["measure"], key=float)
            lo, hi = keys[0], keys[-1]
            zero = next(k for k in keys if float(k) == 0)
            lines.append(f"| {concept} | {method} | {r['measure_label']} | {','.join(map(str, r['layers']))} | "
                         f"+-{float(hi):g} | {_fmt(r['measure'][lo])} | {_fmt(r['measure'][zero])} | "
                         f"{_fmt(r['measure'][hi])} | {'yes' if r['monotonic'] else '**no**'} | "
                         f"{r['preservation'][lo]:.1f} / {r['preservation'][hi]:.1f} |")
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
