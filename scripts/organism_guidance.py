"""Which guidance scale makes the organism follow its prompts: adherence vs guidance, on selection seeds.

    python scripts/organism_guidance.py [--guidance 2 2.5 3 3.5 4 5 7] [--seeds 4000 4001 4002 4003]

Runs ``tada organism adherence --guidance G --seeds ...`` for every G (each about 5 minutes on 2 CPU
cores; a G whose JSON is already in the output folder is not run again), then writes
``results/organism_guidance/README.md`` (accuracy and 95% interval per concept and G, with the bars)
and ``adherence_vs_guidance.png``, and prints the G this rule picks: the most concepts whose mean
accuracy reaches its bar, ties broken by the smallest summed shortfall below the bars, then by the
largest summed accuracy minus bar.

The seeds are **selection seeds** (4000-4003 by default): the choice is made on them, so the verdict on
the chosen G must then come from the held-out seeds of ``tada organism adherence`` (2000-2003), never
from these.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def name(g: float) -> str:
    return f"g{g:g}".replace(".", "p")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--guidance", type=float, nargs="+", default=[2, 2.5, 3, 3.5, 4, 5, 7])
    p.add_argument("--seeds", type=int, nargs="+", default=[4000, 4001, 4002, 4003])
    p.add_argument("--out", default=str(ROOT / "results" / "organism_guidance"))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    reports = {}
    for g in args.guidance:
        path = out / f"{name(g)}.json"
        if not path.is_file():
            print(f"guidance {g:g}: running adherence", file=sys.stderr, flush=True)
            subprocess.run([sys.executable, "-m", "tada_core.cli", "organism", "adherence", "--guidance", f"{g:g}",
                            "--seeds", *map(str, args.seeds), "--out", str(out / name(g))], check=True, env=env)
        report = json.loads(path.read_text())
        if report["seeds"] != args.seeds or abs(report["guidance"] - g) > 1e-9:
            sys.exit(f"{path} was made with seeds {report['seeds']} and guidance {report['guidance']}; remove it")
        reports[g] = report
    concepts = list(next(iter(reports.values()))["concepts"])
    bars = {c: next(iter(reports.values()))["concepts"][c]["bar"] for c in concepts}

    def score(r):
        accs = {c: r["concepts"][c]["accuracy"] for c in concepts}
        met = sum(accs[c] >= bars[c] for c in concepts)
        shortfall = sum(max(0.0, bars[c] - accs[c]) for c in concepts)
        margin = sum(accs[c] - bars[c] for c in concepts)
        return met, -shortfall, margin

    best = max(reports, key=lambda g: score(reports[g]))
    head = "| guidance | " + " | ".join(f"{c} (bar {bars[c]:g})" for c in concepts) + " | means at the bar |"
    lines = [head, "|" + "---|" * (len(concepts) + 2)]
    for g, r in sorted(reports.items()):
        cells = []
        for c in concepts:
            x = r["concepts"][c]
            mark = "**" if x["accuracy"] >= bars[c] else ""
            cells.append(f"{mark}{x['accuracy']:.3f}{mark} [{x['ci'][0]:.2f}, {x['ci'][1]:.2f}]")
        lines.append(f"| {g:g}{' (picked)' if g == best else ''} | " + " | ".join(cells)
                     + f" | {score(r)[0]} of {len(concepts)} |")
    table = "\n".join(lines)
    steps = next(iter(reports.values()))["steps"]
    never = [c for c in concepts if not any(r["concepts"][c]["accuracy"] >= bars[c] for r in reports.values())]
    verdict = (f"Every concept reaches its bar at guidance {best:g} on these seeds." if score(reports[best])[0] ==
               len(concepts) else
               f"**No guidance in {sorted(reports)} brings every concept to its bar** (at most "
               f"{score(reports[best])[0]} of {len(concepts)})"
               + (f"; {', '.join(never)} reach{'es' if len(never) == 1 else ''} it at none" if never else "")
               + ". Guidance alone does not make this organism follow all its prompts.")
    text = (f"# Organism adherence vs guidance (selection seeds)\n\n"
            f"Made by `python scripts/organism_guidance.py`: `tada organism adherence` at {steps} steps on selection "
            f"seeds {args.seeds} (12 base prompts x 4 seeds x 2 sides = 96 clips per concept; 95% bootstrap intervals "
            f"over base prompts; bold: the mean reaches the bar). Rule: the most concepts at their bar, ties broken by "
            f"the smallest summed shortfall below the bars, then the largest summed accuracy minus bar. These seeds choose; the held-out seeds of "
            f"[organism_adherence.md](../organism_adherence.md) judge.\n\n{table}\n\n{verdict}\n\n"
            f"![adherence vs guidance](adherence_vs_guidance.png)\n")
    (out / "README.md").write_text(text, encoding="utf-8")
    plot(reports, concepts, bars, out / "adherence_vs_guidance.png")
    print(table)
    print(f"\npicked guidance {best:g} ({score(reports[best])[0]} of {len(concepts)} concepts at their bar on the "
          f"selection seeds)")


def plot(reports, concepts, bars, path: Path) -> None:
    from tada_core.evaluation.plots import Panel, Series, line_panels

    gs = sorted(reports)
    panels = []
    for c in concepts:
        acc = [reports[g]["concepts"][c]["accuracy"] for g in gs]
        lo = [reports[g]["concepts"][c]["ci"][0] for g in gs]
        hi = [reports[g]["concepts"][c]["ci"][1] for g in gs]
        panels.append(Panel(f"{c} (bar {bars[c]:g})", [Series("accuracy", gs, acc, lo, hi),
                                                       Series("bar (accuracy required)", gs, [bars[c]] * len(gs))]))
    line_panels(panels, path, x_label="guidance scale (CFG)", y_label="accuracy (fraction of clips)",
                columns=3, band_label="95% interval over base prompts (shaded)")


if __name__ == "__main__":
    main()
