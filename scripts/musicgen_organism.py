"""Facchiano et al. (arXiv 2504.04479) reproduced on the MusicGen organism.

    python scripts/musicgen_organism.py [--out results/musicgen_organism] [--vectors vectors]

Writes ``OUT/README.md`` (every table), ``OUT/results.json`` (every number) and the figures
``fig4_layer_effect.png``, ``fig5_lambda.png``, ``fig6_cosine_{tempo,brightness}.png``,
``fig7_fad.png``; saves the two DiffMean vectors (One-to-All from l_best) to
``VECTORS/musicgen-organism-{tempo,brightness}-diffmean``.

Protocol, and which seeds see what:

* DiffMean (Eq. 1) from 100 + 100 template prompts per concept (``diffmean_prompts`` with the
  organism's vocabulary); no generation.
* Fig. 4 / l_best: each layer's direction injected One-to-All at +-1.25 on 4 base prompts x
  seeds 100, 101 (the *fitting* clips: l_best is chosen on them). The same scan at lambda 0.1,
  0.25 and 0.5 picks the organism's own (lambda, l_best): the largest effect of the four scans
  (lambda's scale depends on the model's residual norms; the paper's 1.25 was chosen for MusicGen
  Melody).
* Table 1, strategies, CFG branches: 50 held-out prompts (training-style captions that name no
  tempo, mood, brightness or drums, drawn with seed 4242; none is a DiffMean prompt), one
  held-out seed each (5000 + i), at the paper's lambda = 1.25 (its l_best) and at the organism's
  (lambda, l_best); mean +- std over the 50 prompts (the paper's statistic) and a 95% bootstrap
  interval of the mean change.
* Fig. 5 / Fig. 7: the first 16 held-out prompts at lambda in [-5, 5]; FAD of each lambda's
  clips to the lambda = 0 clips (offline log-mel embedding, see docs/musicgen.md).
* Adherence by librosa BPM and spectral centroid: "a fast {base}" / "a slow {base}" and
  "a bright {base}" / "a dark {base}" on every base x seeds 2000-2003, thresholds fitted on
  synthetic generator clips only (the scorer's adherence table is ``tada organism adherence``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tada_core import load_model
from tada_core.concepts import diffmean_prompts
from tada_core.methods.diffmean import choose_layer, cosine_matrix, diffmean, layer_scan, with_strategy
from tada_core.evaluation.metrics import LogMelEmbedding, frechet_audio_distance, spectral_centroid, tempo_bpm
from tada_core.organism import synth
from tada_core.organism.adherence import SEEDS
from tada_core.evaluation.plots import Panel, Series, heatmap_png, line_panels
from tada_core.evaluation.stats import bootstrap_ci

LAM = 1.25
SCAN_SEEDS = (100, 101)
SMALL = (0.1, 0.25, 0.5)   # the smaller lambdas scanned on the fitting clips (the organism's scale, see below)
GRID = (-5.0, -3.0, -2.0, -1.25, -1.0, -0.5, -0.25, -0.1, 0.0, 0.1, 0.25, 0.5, 1.0, 1.25, 2.0, 3.0, 5.0)
CONCEPTS = {"tempo": ("bpm", tempo_bpm, "BPM", ("slow", "fast")),
            "brightness": ("centroid", spectral_centroid, "Hz", ("dark", "bright"))}
COSINE_AXES = dict(x_label="layer (0-based)", y_label="layer (0-based)", colorbar_label="cosine similarity",
                   vmin=-1.0, vmax=1.0)
# The paper's Table 1 (MusicGen Melody, lambda 1.25, One-to-All): base, negative side, positive side
PAPER = {"tempo": (134.5, 86.0, 176.0), "brightness": (1799.0, 1077.0, 2161.0)}


def held_out_prompts(n: int = 50, seed: int = 4242) -> list[str]:
    """Training-style captions naming no tempo, mood, brightness or drums (instrument and voice may be named)."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    while len(out) < n:
        c = synth.caption(synth.random_attributes(rng), rng, p_mention=0.0)
        if c not in out:
            out.append(c)
    return out


def generate(model, vector, prompts, seeds, alphas, batch: int = 24, **steer) -> np.ndarray:
    """Clips of every (prompt, seed, alpha), steered per sample in batches (alpha 0 rows: unsteered)."""
    out = []
    for i in range(0, len(prompts), batch):
        p, s, a = prompts[i:i + batch], seeds[i:i + batch], alphas[i:i + batch]
        if vector is None:
            out.append(model.generate(p, seeds=s).audio.numpy())
        else:
            with vector.apply(model, alpha=list(a), use_renorm=False, **steer):
                out.append(model.generate(p, seeds=s).audio.numpy())
    return np.concatenate(out)


def side_stats(values: np.ndarray, base: np.ndarray) -> dict:
    change = values - base
    lo, hi = bootstrap_ci(change)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)), "change": float(change.mean()),
            "change_ci": [lo, hi]}


def threshold_from_synthetic(fn, concept: str, clips: int = 200, seed: int = 31) -> float:
    """Midpoint of the two classes' medians on generator clips (what the organism scorer does), never on the model."""
    items = synth.dataset(clips, seed=seed)
    audio = np.stack([synth.synthesize(a, s) for a, _, s in items])
    y = synth.label([a for a, _, _ in items], concept)
    v = np.log(fn(audio, synth.SR)) if concept == "tempo" else fn(audio, synth.SR)
    return float((np.median(v[y == 1]) + np.median(v[y == 0])) / 2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="results/musicgen_organism")
    ap.add_argument("--vectors", default="vectors")
    ap.add_argument("--model", default="musicgen-organism")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    model = load_model(args.model)
    concepts = model.entry.concepts
    sr = model.sample_rate
    held = held_out_prompts()
    held_seeds = [5000 + i for i in range(len(held))]
    report: dict = {"model": model.name, "layers": len(model.layers), "lambda": LAM, "held_out_prompts": held,
                    "held_out_seeds": held_seeds, "scan_seeds": list(SCAN_SEEDS), "concepts": {}}
    scan_prompts = list(concepts.eval_prompts[:4])
    fig4, fig5, fig7 = [], [], []
    for name, (measure_name, fn, unit, (neg_word, pos_word)) in CONCEPTS.items():
        concept = concepts.get(name)
        r: dict = {"measure": measure_name, "unit": unit}
        pos, neg = diffmean_prompts(concept, concepts.bases, 100, concepts.variants)
        if set(pos + neg) & set(held):
            raise SystemExit("a held-out prompt is a DiffMean prompt")
        vec = diffmean(model, pos, neg, concept=name)
        # Fig. 4 and l_best (fitting clips)
        scan = layer_scan(model, vec, fn, scan_prompts, lam=LAM, seeds=SCAN_SEEDS, measure_label=measure_name)
        raw = vec
        vec = choose_layer(raw, scan)
        best = scan.best()
        r["fig4"] = {"baseline": scan.baseline, "up": scan.up, "down": scan.down, "effect": scan.effect,
                     "l_best": best, "clips_per_layer": 3 * scan.n}
        series = [(f"lambda {LAM}", list(scan.effect), list(scan.effect.values()))]
        scans = {LAM: scan}
        for lam in SMALL:
            scans[lam] = layer_scan(model, raw, fn, scan_prompts, lam=lam, seeds=SCAN_SEEDS,
                                    measure_label=measure_name)
            series.append((f"lambda {lam}", list(scans[lam].effect), list(scans[lam].effect.values())))
        own_lam = max(scans, key=lambda lam: max(scans[lam].effect.values()))
        own = choose_layer(raw, scans[own_lam])
        r["fig4_small"] = {str(lam): {"effect": scans[lam].effect, "l_best": scans[lam].best()} for lam in SMALL}
        r["own"] = {"lambda": own_lam, "l_best": scans[own_lam].best()}
        fig4.append(Panel(f"{name}: {measure_name} at +lambda minus at -lambda, per source layer", series,
                          y_label=f"{measure_name} effect ({unit})"))
        r["fig6_cosine"] = cosine_matrix(vec).tolist()
        heatmap_png(cosine_matrix(vec), [str(i) for i in vec.layers], [str(i) for i in vec.layers],
                    out / f"fig6_cosine_{name}.png", title=f"cosine of DiffMean directions, {name}", **COSINE_AXES)
        own.alpha_range = (-own_lam, own_lam)   # the shipped vector: the organism's (lambda, l_best)
        own.save(Path(args.vectors) / f"{model.name}-{name}-diffmean")
        # Table 1, the strategies and the CFG branches (held-out prompts and seeds)
        n = len(held)
        base = fn(generate(model, None, held, held_seeds, [0.0] * n), sr)
        rows = {"base": {"mean": float(base.mean()), "std": float(base.std(ddof=1))}}
        for lam, v0, tag in ((LAM, vec, "paper's lambda"), (own_lam, own, "organism's lambda")):
            variants = {"one-to-all, both branches": (v0, {}),
                        "all-to-all, both branches": (with_strategy(v0, "all-to-all"), {}),
                        "one-to-all, conditional branch only": (v0, {"branch": "cond"})}
            for label, (v, steer) in variants.items():
                for sign, word in ((-1, neg_word), (1, pos_word)):
                    values = fn(generate(model, v, held, held_seeds, [sign * lam] * n, **steer), sr)
                    rows[f"{word} ({label}; lambda {lam:g}, l_best {v0.strategy['source_layer']})"] = \
                        side_stats(values, base) | {"table": tag}
        r["table1"] = rows
        # Fig. 5 and Fig. 7 (first 16 held-out prompts, lambda grid)
        sub, sub_seeds = held[:16], held_seeds[:16]
        jobs = [(p, s, lam) for lam in GRID for p, s in zip(sub, sub_seeds)]
        audio = generate(model, vec, [j[0] for j in jobs], [j[1] for j in jobs], [j[2] for j in jobs])
        audio = audio.reshape(len(GRID), len(sub), -1)
        values = fn(audio.reshape(len(GRID) * len(sub), -1), sr).reshape(len(GRID), len(sub))
        ref = audio[GRID.index(0.0)]
        emb = LogMelEmbedding()
        fad = [frechet_audio_distance(ref, audio[k], sr, emb) for k in range(len(GRID))]
        r["fig5"] = {"lambda": list(GRID), "mean": values.mean(1).tolist(),
                     "ci": [list(bootstrap_ci(values[k])) for k in range(len(GRID))]}
        r["fig7_fad"] = {"lambda": list(GRID), "fad": fad}
        lo, hi = zip(*r["fig5"]["ci"])
        fig5.append(Panel(f"{name}: {measure_name} ({unit}) vs lambda",
                          [Series("mean", list(GRID), values.mean(1).tolist(), lo, hi)],
                          y_label=f"{measure_name} ({unit})"))
        fig7.append((f"{name}: FAD to lambda 0 (log-mel)", [("FAD", list(GRID), fad)]))
        # Adherence by the librosa measure (thresholds fitted on synthetic clips)
        c_pos, c_neg, seeds = concepts.contrast(concept, SEEDS)
        clips = generate(model, None, c_pos + c_neg, seeds + seeds, [0.0] * (2 * len(seeds)))
        v = fn(clips, sr)
        thr = threshold_from_synthetic(fn, name)
        pred = (np.log(np.maximum(v, 1e-6)) if name == "tempo" else v) > thr
        truth = np.array([1] * len(c_pos) + [0] * len(c_neg))
        hits = (pred == truth).astype(float)
        groups = [p.split(" ", 2)[-1] for p in c_pos] + [p.split(" ", 2)[-1] for p in c_neg]
        r["adherence"] = {"accuracy": float(hits.mean()), "ci": list(bootstrap_ci(hits, groups=groups)),
                          "clips": len(hits), "threshold": float(np.exp(thr)) if name == "tempo" else thr,
                          f"mean_{pos_word}": float(v[truth == 1].mean()), f"mean_{neg_word}": float(v[truth == 0].mean())}
        report["concepts"][name] = r
        print(f"{name}: l_best {best}, base {base.mean():.1f} {unit}", file=sys.stderr)
    line_panels(fig4, out / "fig4_layer_effect.png", x_label="source layer (0-based)")
    line_panels(fig5, out / "fig5_lambda.png", x_label="lambda (steering strength)",
                band_label="95% bootstrap interval over prompts (shaded)")
    line_panels(fig7, out / "fig7_fad.png", x_label="lambda (steering strength)",
                y_label="FAD (log-mel embedding, to lambda 0 clips)")
    report["seconds"] = round(time.time() - t0, 1)
    report["torch_threads"] = torch.get_num_threads()
    (out / "results.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    (out / "README.md").write_text(markdown(report), encoding="utf-8")
    print(f"wrote {out}/README.md in {report['seconds']} s", file=sys.stderr)
    return 0


def markdown(report: dict) -> str:
    lines = ["# Facchiano et al. on the MusicGen organism", "",
             f"Made by `python scripts/musicgen_organism.py` ({report['seconds']} s on {report['torch_threads']} CPU "
             f"threads): DiffMean from 100 + 100 template prompts per concept; l_best chosen on seeds "
             f"{report['scan_seeds']} (4 base prompts); everything below the layer scan on 50 held-out prompts with "
             f"one held-out seed each (5000-5049). lambda = {report['lambda']}, no ReNorm (the paper's Eq. 2). "
             f"Layers are 0-based ({report['layers']} decoder layers).", ""]
    for name, r in report["concepts"].items():
        unit = r["unit"]
        paper = PAPER[name]
        small = "; ".join(f"lambda {lam}: " + ", ".join(f"{k}: {v:+.1f}" for k, v in d["effect"].items())
                          for lam, d in r["fig4_small"].items())
        lines += [f"## {name} ({r['measure']}, {unit})", "",
                  f"Fig. 4 ([fig4_layer_effect.png](fig4_layer_effect.png)): steering effect (+{report['lambda']} minus "
                  f"-{report['lambda']}) per source layer: " +
                  ", ".join(f"{k}: {v:+.1f}" for k, v in r["fig4"]["effect"].items()) +
                  f"; l_best = **{r['fig4']['l_best']}**. Smaller lambdas: {small}. The organism's (lambda, l_best), "
                  f"the largest effect of the four scans: **({r['own']['lambda']}, {r['own']['l_best']})**.", "",
                  "| Table 1 | mean +- std over 50 prompts | change vs base (95% interval) | paper |",
                  "|---|---|---|---|"]
        for label, row in r["table1"].items():
            if label == "base":
                lines.append(f"| base | {row['mean']:.1f} +- {row['std']:.1f} | | {paper[0]:g} |")
                continue
            ref = paper[1] if label.startswith(("slow", "dark")) else paper[2]
            shown = f"{ref:g}" if "one-to-all, both" in label and row["table"] == "paper's lambda" else ""
            lines.append(f"| {label} | {row['mean']:.1f} +- {row['std']:.1f} | {row['change']:+.1f} "
                         f"[{row['change_ci'][0]:+.1f}, {row['change_ci'][1]:+.1f}] | {shown} |")
        f5, f7 = r["fig5"], r["fig7_fad"]
        lines += ["", f"Fig. 5 ([fig5_lambda.png](fig5_lambda.png)) and Fig. 7 ([fig7_fad.png](fig7_fad.png)), "
                      "16 held-out prompts:", "",
                  "| lambda | " + " | ".join(f"{x:g}" for x in f5["lambda"]) + " |",
                  "|---" * (len(f5["lambda"]) + 1) + "|",
                  f"| {r['measure']} | " + " | ".join(f"{x:.0f}" for x in f5["mean"]) + " |",
                  "| FAD | " + " | ".join(f"{x:.1f}" for x in f7["fad"]) + " |", ""]
        a = r["adherence"]
        lines += [f"Adherence by {r['measure']} alone (threshold {a['threshold']:.0f} {unit}, fitted on synthetic "
                  f"clips): {a['accuracy']:.3f} [{a['ci'][0]:.3f}, {a['ci'][1]:.3f}] over {a['clips']} clips "
                  f"(template prompts on every base, seeds 2000-2003).", "",
                  f"Fig. 6: [fig6_cosine_{name}.png](fig6_cosine_{name}.png).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
