"""Regenerate every committed figure under results/ from the committed result data (no model runs).

    python scripts/figures.py [--out DIR]

Without ``--out`` the PNGs are overwritten in place; with it they go to the same paths under DIR.
Each figure is drawn with the library's plotting functions from the JSON next to it:

* ``organism_localization/heatmap.png``: :func:`tada_core.methods.localize.write_summary` on ``summary.json``
  (it also rewrites ``impact.csv`` and ``summary.json``, byte for byte the same);
  ``organism_localization/impact.png``: I(l, c) per layer with its 95% bootstrap interval (``impact_ci``);
* ``organism_benchmark{,_no_renorm}/{CONCEPT/,}curves.png``: :func:`tada_core.evaluation.benchmark.runner.curves_png`
  on ``result.json`` (the combined figure in ``table.json``'s order), each curve with the 95% bootstrap
  band over base prompts of its Delta a at every strength, recomputed from ``clips.jsonl`` as the runner
  computes the curve (same clusters, 400 draws, seed 0, cut at P_max);
* ``musicgen_organism/fig*.png``: the panels ``scripts/musicgen_organism.py`` draws, rebuilt from
  ``results.json`` (keep the two in step; Fig. 5 with its 95% interval per lambda);
* ``organism_guidance/adherence_vs_guidance.png``: ``scripts/organism_guidance.py``'s ``plot`` on ``g*.json``.
* ``verification/{,before-fixes/}effects.png``: :func:`tada_core.evaluation.verification.effects_figure` on
  ``verification.json``.
* ``interference/*.png``: :func:`tada_core.evaluation.interference.write_results`'s heatmaps on ``interference.json``.
* ``editing/editing.png``: :func:`editing_figure` on ``editing.json`` (``scripts/edit_validation.py`` draws it so).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# this checkout's tada_core (not another one installed in the environment), and the scripts' own plot helpers
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from tada_core.evaluation.benchmark import protocol  # noqa: E402
from tada_core.evaluation.benchmark.runner import BenchmarkResult, MethodResult, _arrays, curves_png  # noqa: E402
from tada_core.runtime.io import read_json  # noqa: E402
from tada_core.methods.localize import Localization, write_summary  # noqa: E402
from tada_core.evaluation.plots import LAYER_AXIS, Panel, Series, heatmap_png, line_panels  # noqa: E402
from tada_core.evaluation.stats import bootstrap_intervals  # noqa: E402

BENCHMARKS = ("organism_benchmark", "organism_benchmark_no_renorm", "musicgen_benchmark")
N_BOOT = 400   # as the runner's AUC intervals


# --------------------------------------------------------------------------------------
# localization (Fig. 3)
# --------------------------------------------------------------------------------------
def localization(src: Path, dst: Path) -> list[Path]:
    rows = [Localization.from_dict(d) for d in read_json(src / "summary.json")]
    heatmap = write_summary(rows, dst)["png"]
    panels = []
    for r in rows:
        layers = sorted(r.layers)
        lo = [r.impact_ci.get(layer, (np.nan, np.nan))[0] for layer in layers]
        hi = [r.impact_ci.get(layer, (np.nan, np.nan))[1] for layer in layers]
        verdict = f"functional layers {r.functional_layers() or 'none'}" if r.reliable else "not reliable (n.s.)"
        panels.append(Panel(f"{r.concept}: {verdict}", [Series("I(l, c)", layers, [r.impact[x] for x in layers],
                                                               lo, hi)]))
    impact = line_panels(panels, dst / "impact.png", x_label=LAYER_AXIS, y_label="impact I(l, c) (Eq. 9)",
                         columns=3, size=(400, 270),
                         band_label=f"95% bootstrap interval over prompt pairs (shaded; n = {rows[0].n} per condition)")
    return [heatmap, impact]


# --------------------------------------------------------------------------------------
# steering benchmark (Table 3's curves)
# --------------------------------------------------------------------------------------
def load_result(path: Path) -> BenchmarkResult:
    d = read_json(path)
    return BenchmarkResult(**{**d, "methods": [MethodResult(**m) for m in d["methods"]]})


def add_bands(result: BenchmarkResult, folder: Path) -> None:
    """Put ``delta_lo`` / ``delta_hi`` into every available method's curves: the 95% cluster bootstrap interval
    (base prompts) of the mean Delta a at each strength, cut at P_max with the curve's own boundary point.

    The curve is recomputed from ``clips.jsonl`` first and must equal ``result.json``'s, so the band
    belongs to the curve it is drawn under."""
    done = {}
    for line in (folder / "clips.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        done[tuple(rec["unit"])] = rec
    n_chunks = sum(1 for unit in done if unit[:2] == ("pci", 1))
    for m in result.methods:
        if not m.available:
            continue
        for d, name in ((1, "pos"), (-1, "neg")):
            alphas, meas, dist, _, groups = _arrays(done, m.key, d, n_chunks)
            sim = meas[result.concept]          # every scorer's sign is +1 (Scorer.sign); checked below
            distance = dist.mean(0)

            def delta(rows, sim=sim, d=d):
                return (d * (sim[rows] - sim[rows][:, :1])).mean(0)

            def cut(values, distance=distance, alphas=alphas, name=name):
                return protocol.truncate(protocol.ordered(alphas, values, distance), result.p_max[name]).delta

            curve = m.curves[name]
            if not np.allclose(cut(delta(np.arange(len(sim)))), curve["delta"], rtol=1e-9, atol=1e-9):
                raise SystemExit(f"{folder}: clips.jsonl does not give result.json's {m.label} {name} curve")
            interval = bootstrap_intervals(delta, groups, n_boot=N_BOOT)
            curve["delta_lo"], curve["delta_hi"] = cut(interval[:, 0]).tolist(), cut(interval[:, 1]).tolist()


def benchmark(src: Path, dst: Path) -> list[Path]:
    results = {}
    for path in sorted(src.glob("*/result.json")):
        r = load_result(path)
        add_bands(r, path.parent)
        results[r.concept] = r
    order = [d["concept"] for d in read_json(src / "table.json")]
    written = [curves_png([results[c]], dst / c / "curves.png") for c in order]
    return written + [curves_png([results[c] for c in order], dst / "curves.png")]


# --------------------------------------------------------------------------------------
# MusicGen organism (Facchiano et al., Figs. 4-7)
# --------------------------------------------------------------------------------------
def musicgen(src: Path, dst: Path) -> list[Path]:
    from musicgen_organism import COSINE_AXES

    report = read_json(src / "results.json")
    lam = report["lambda"]
    fig4, fig5, fig7, written = [], [], [], []
    for name, r in report["concepts"].items():
        measure, unit = r["measure"], r["unit"]
        scans = {lam: r["fig4"]["effect"]} | {float(k): v["effect"] for k, v in r["fig4_small"].items()}
        fig4.append(Panel(f"{name}: {measure} at +lambda minus at -lambda, per source layer",
                          [Series(f"lambda {k}", [int(x) for x in e], list(e.values())) for k, e in scans.items()],
                          y_label=f"{measure} effect ({unit})"))
        layers = [str(i) for i in range(len(r["fig6_cosine"]))]
        written.append(heatmap_png(np.array(r["fig6_cosine"]), layers, layers, dst / f"fig6_cosine_{name}.png",
                                   title=f"cosine of DiffMean directions, {name}", **COSINE_AXES))
        f5 = r["fig5"]
        lo, hi = zip(*f5["ci"])
        fig5.append(Panel(f"{name}: {measure} ({unit}) vs lambda", [Series("mean", f5["lambda"], f5["mean"], lo, hi)],
                          y_label=f"{measure} ({unit})"))
        fig7.append((f"{name}: FAD to lambda 0 (log-mel)", [("FAD", r["fig7_fad"]["lambda"], r["fig7_fad"]["fad"])]))
    return written + [
        line_panels(fig4, dst / "fig4_layer_effect.png", x_label="source layer (0-based)"),
        line_panels(fig5, dst / "fig5_lambda.png", x_label="lambda (steering strength)",
                    band_label="95% bootstrap interval over prompts (shaded)"),
        line_panels(fig7, dst / "fig7_fad.png", x_label="lambda (steering strength)",
                    y_label="FAD (log-mel embedding, to lambda 0 clips)")]


# --------------------------------------------------------------------------------------
# organism guidance
# --------------------------------------------------------------------------------------
def guidance(src: Path, dst: Path) -> list[Path]:
    from organism_guidance import plot

    reports = {}
    for path in sorted(src.glob("g*.json")):
        report = read_json(path)
        reports[float(report["guidance"])] = report
    if not reports:
        raise SystemExit(f"no g*.json in {src}")
    first = next(iter(reports.values()))
    concepts = list(first["concepts"])
    path = dst / "adherence_vs_guidance.png"
    plot(reports, concepts, {c: first["concepts"][c]["bar"] for c in concepts}, path)
    return [path]


def verification(src: Path, dst: Path) -> list[Path]:
    from tada_core.evaluation.verification import effects_figure, read_results

    written = []
    for folder in sorted({p.parent for p in src.rglob("verification.json")}):
        target = dst / folder.relative_to(src) / "effects.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        written.append(effects_figure(read_results(folder), target))
    return written


def interference(src: Path, dst: Path) -> list[Path]:
    from tada_core.evaluation.interference import crosstalk_figure, interaction_figures

    result = read_json(src / "interference.json")
    dst.mkdir(parents=True, exist_ok=True)
    return interaction_figures(result, dst) + [crosstalk_figure(result, dst / "crosstalk.png")]


def editing_figure(out: dict, path: Path) -> Path:
    """``tada edit`` on the organism: the edited clips' target measure per alpha (mean, 95% interval), one panel per
    concept, generated and synthesized clips, with the inputs' mean as a flat line."""
    panels = []
    for concept in next(iter(out["sets"].values()))["concepts"]:
        series = []
        for name, s in out["sets"].items():
            e = s["concepts"][concept]
            t = e["target"]
            series.append(Series(f"{name}, edited", e["alphas"], t["per_alpha_mean"],
                                 [c[0] for c in t["per_alpha_ci"]], [c[1] for c in t["per_alpha_ci"]]))
            level = float(np.mean(s["input"][concept]))
            series.append(Series(f"{name}, input", e["alphas"], [level] * len(e["alphas"])))
        label = out["labels"][concept].split(";")[0].split("(Krumhansl")[0].strip()
        label += ")" * (label.count("(") - label.count(")"))
        panels.append(Panel(f"{concept}: edits with vectors/tada-organism-{concept}-caa", series, y_label=label))
    return line_panels(panels, path, x_label="alpha (steering strength of the edit)")


def editing(src: Path, dst: Path) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    return [editing_figure(read_json(src / "editing.json"), dst / "editing.png")]


def regenerate(results: Path, out: Path) -> list[Path]:
    """Every figure of ``results`` drawn again into ``out`` (the same relative paths); returns the files."""
    written = localization(results / "organism_localization", out / "organism_localization")
    for name in BENCHMARKS:
        written += benchmark(results / name, out / name)
    written += musicgen(results / "musicgen_organism", out / "musicgen_organism")
    written += guidance(results / "organism_guidance", out / "organism_guidance")
    written += verification(results / "verification", out / "verification")
    written += interference(results / "interference", out / "interference")
    written += editing(results / "editing", out / "editing")
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=None, help="write the figures under DIR instead of overwriting results/")
    args = ap.parse_args(argv)
    results = ROOT / "results"
    out = Path(args.out) if args.out else results
    for path in regenerate(results, out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
