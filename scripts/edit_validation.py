"""Ground truth for `tada edit` on the organism: reconstruction at alpha 0, and steering an edit.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python scripts/edit_validation.py [--out results/editing] [--clips 8]

Clips treated as user audio:
* *generated*: the organism's own clips of the evaluation prompts ("a waltz", ...) on held-out seeds
  8100, 8101, ... (no vector was fitted on them: vectors used seeds 0-3, verification 267099118 etc.);
* *synthesized*: clips the model did not generate, written by the synthesizer (tada_core.organism.synth)
  with known tempo, key and brightness, draw seed 8300.

Measures: the verification panel (tada_core/organism/panel.py: librosa tempo, harmonic centroid, key mode,
kick level, pYIN voice, instrument classifier), and a log-mel distance (mean |dB difference| of 64-band
mel spectrograms, 80 dB floor) for "how far is this clip from that one".

(1) Reconstruction: log-mel distance of the alpha-0 edit to the input, over the distance between two fresh
generations of the same prompt (seeds 8100+k and 8200+k): the ratio per clip, bootstrap 95% CI.
(2) Steering: each concept's vector at alphas (-2r, -r, 0, r, 2r) (r: the vector's validated alpha_range;
2r: the app's limit): the target measure per alpha, the share of clips where it is monotone in alpha, and at +-r every other panel axis's change re the
input, against regenerating from scratch with the edited prompt ("a bright waltz" / "a dark
waltz") and the clip's own seed. (3) The same edits on the synthesized clips (prompt: their own caption).
Writes OUT/editing.json, OUT/editing.md and OUT/editing.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

GEN_SEED, FRESH_SEED, SYNTH_SEED = 8100, 8200, 8300
CONCEPTS = ("brightness", "tempo")
EDITED = {"brightness": ("a bright {base}", "a dark {base}"), "tempo": ("a fast {base}", "a slow {base}")}


def logmel(audio: np.ndarray, sr: int) -> np.ndarray:
    import librosa

    m = librosa.feature.melspectrogram(y=audio.astype(np.float32), sr=sr, n_fft=1024, hop_length=256, n_mels=64)
    return librosa.power_to_db(m, ref=1.0, top_db=None).clip(-80, None)


def distance(a: np.ndarray, b: np.ndarray, sr: int) -> float:
    """Mean absolute log-mel difference in dB (one mono clip each)."""
    return float(np.abs(logmel(a, sr) - logmel(b, sr)).mean())


def mono(x: torch.Tensor) -> np.ndarray:
    return x.float().mean(-2).numpy() if x.ndim >= 2 else x.numpy()


def ci(values) -> list[float]:
    from tada_core.evaluation.stats import bootstrap_ci

    return list(bootstrap_ci(values))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="results/editing")
    ap.add_argument("--clips", type=int, default=8)
    args = ap.parse_args()
    import tada_core
    from tada_core.artifacts.vectors import load_vector
    from tada_core.editing import edit
    from tada_core.organism import synth
    from tada_core.organism.concepts import bases
    from tada_core.organism.panel import LABELS, build

    t_start = time.time()
    model = tada_core.load_model()
    model.set_progress_bar(False)
    panel = build()
    sr = model.sample_rate
    n = args.clips
    base_list = bases()
    chosen = [base_list[k % len(base_list)] for k in range(n)]
    prompts = [("an " if b[0] in "aeiou" else "a ") + b for b in chosen]

    def measure(clips: list[np.ndarray]) -> dict[str, np.ndarray]:
        return panel.measure(np.stack(clips), sr)

    # ----- the clips
    gen = model.generate(prompts, seeds=[GEN_SEED + k for k in range(n)]).audio
    fresh = model.generate(prompts, seeds=[FRESH_SEED + k for k in range(n)]).audio
    items = synth.dataset(n, seed=SYNTH_SEED)
    synth_audio = [synth.synthesize(a, s)[: int(model.defaults.duration * sr)] for a, _, s in items]
    sets = {
        "generated": {"audio": [mono(gen[k]) for k in range(n)], "prompts": prompts,
                      "seeds": [GEN_SEED + k for k in range(n)]},
        "synthesized": {"audio": synth_audio, "prompts": [c for _, c, _ in items],
                        "seeds": [SYNTH_SEED + k for k in range(n)],
                        "truth": [{"bpm": a.bpm, "mood": a.mood, "brightness": a.brightness, "instrument": a.instrument,
                                   "drums": a.drums, "voice": a.voice} for a, _, _ in items]},
    }
    command = "OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python scripts/edit_validation.py " + " ".join(sys.argv[1:])
    out: dict = {"command": command.rstrip(),
                 "model": model.name, "settings": model.defaults.to_dict(), "clips": n,
                 "seeds": {"generated": GEN_SEED, "fresh": FRESH_SEED, "synthesized": SYNTH_SEED},
                 "distance": "mean |log-mel difference| (dB; 64 mel bands, n_fft 1024, hop 256, floor -80 dB)",
                 "labels": LABELS, "sets": {}}
    for name, s in sets.items():
        s["measured"] = measure(s["audio"])
        out["sets"][name] = {"prompts": s["prompts"], "truth": s.get("truth"),
                             "input": {c: v.tolist() for c, v in s["measured"].items()}, "concepts": {}}

    # ----- edits: one batched call per clip and concept (all alphas + the anchor)
    for concept in CONCEPTS:
        vec = load_vector(f"vectors/tada-organism-{concept}-caa")
        r = max(abs(float(a)) for a in vec.alpha_range)
        alphas = [-2 * r, -r, 0.0, r, 2 * r]   # r: the validated range; 2r: the app's limit
        for name, s in sets.items():
            edits, encoded, seconds = [], [], []
            for k in range(n):
                t0 = time.time()
                res = edit(model, s["audio"][k], sr, steer=vec, alpha=alphas, prompt=s["prompts"][k],
                           seed=s["seeds"][k])
                seconds.append(time.time() - t0)
                edits.append([mono(res.audio[j]) for j in range(len(alphas))])
                encoded.append(mono(res.encoded))
            flat = [e for clip in edits for e in clip]
            vals = measure(flat)
            by_alpha = {c: v.reshape(n, len(alphas)) for c, v in vals.items()}
            target = by_alpha[concept]
            steps = np.diff(target, axis=1)
            monotone = ((steps >= 0).all(1) | (steps <= 0).all(1)) & (target[:, -1] != target[:, 0])
            increasing = (steps >= 0).all(1) & (target[:, -1] > target[:, 0])
            entry = {"alphas": alphas, "vector": f"vectors/tada-organism-{concept}-caa",
                     "edit_seconds_per_clip": float(np.mean(seconds)),
                     "target": {"per_alpha_mean": target.mean(0).tolist(),
                                "per_alpha_ci": [ci(target[:, j]) for j in range(len(alphas))],
                                "monotone_share": float(monotone.mean()),
                                "increasing_share": float(increasing.mean()),
                                "change_at_max_alpha": float((target[:, -1] - s["measured"][concept]).mean()),
                                "change_at_max_alpha_ci": ci(target[:, -1] - s["measured"][concept]),
                                "change_at_min_alpha": float((target[:, 0] - s["measured"][concept]).mean()),
                                "change_at_min_alpha_ci": ci(target[:, 0] - s["measured"][concept])}}
            # reconstruction at alpha 0
            zero = alphas.index(0.0)
            rec = [distance(edits[k][zero], s["audio"][k], sr) for k in range(n)]
            enc = [distance(encoded[k], s["audio"][k], sr) for k in range(n)]
            entry["reconstruction"] = {"alpha0_to_input_db": float(np.mean(rec)), "alpha0_to_input_ci": ci(rec),
                                       "codec_to_input_db": float(np.mean(enc)), "codec_to_input_ci": ci(enc)}
            if name == "generated":
                fr = [distance(mono(fresh[k]), s["audio"][k], sr) for k in range(n)]
                ratio = np.array(rec) / np.array(fr)
                entry["reconstruction"].update({"fresh_pair_db": float(np.mean(fr)), "fresh_pair_ci": ci(fr),
                                                "ratio": float(ratio.mean()), "ratio_ci": ci(ratio)})
            # preservation: the edits at +-r vs regeneration from scratch with the edited prompt, same seed
            others = [c for c in vals if c != concept]
            pres = {}
            for sign, j, template in ((+1, alphas.index(r), EDITED[concept][0]),
                                      (-1, alphas.index(-r), EDITED[concept][1])):
                edited_prompts = [template.format(base=b) for b in chosen] if name == "generated" else None
                if edited_prompts is None:   # synthesized: the caption's concept words replaced by the edited ones
                    edited_prompts = [template.format(base="tune") for _ in range(n)]
                regen = model.generate(edited_prompts, seeds=s["seeds"]).audio
                regen_mono = [mono(regen[k]) for k in range(n)]
                rv = measure(regen_mono)
                side = {"edit_target_change": float((by_alpha[concept][:, j] - s["measured"][concept]).mean()),
                        "regen_target_change": float((rv[concept] - s["measured"][concept]).mean()),
                        "regen_prompt": edited_prompts[0], "axes": {}}
                for c in others:
                    de = np.abs(by_alpha[c][:, j] - s["measured"][c])
                    dr = np.abs(rv[c] - s["measured"][c])
                    side["axes"][c] = {"edit_abs_change": float(de.mean()), "edit_ci": ci(de),
                                       "regen_abs_change": float(dr.mean()), "regen_ci": ci(dr),
                                       "edit_better_share": float((de < dr).mean())}
                de = [distance(edits[k][j], s["audio"][k], sr) for k in range(n)]
                dr = [distance(regen_mono[k], s["audio"][k], sr) for k in range(n)]
                side["logmel_to_input"] = {"edit_db": float(np.mean(de)), "edit_ci": ci(de),
                                           "regen_db": float(np.mean(dr)), "regen_ci": ci(dr)}
                pres["+" if sign > 0 else "-"] = side
            entry["preservation"] = pres
            out["sets"][name]["concepts"][concept] = entry
            print(f"{name} {concept}: done ({time.time() - t_start:.0f}s)", file=sys.stderr)
    out["seconds"] = time.time() - t_start
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "editing.json").write_text(json.dumps(out, indent=1) + "\n")
    (folder / "editing.md").write_text(markdown(out))
    figure(out, folder / "editing.png")
    print(f"wrote {folder}/editing.json, editing.md, editing.png ({out['seconds']:.0f}s)", file=sys.stderr)
    return 0


def _fmt(v: float, c: list[float]) -> str:
    return f"{v:.3g} [{c[0]:.3g}, {c[1]:.3g}]"


def markdown(out: dict) -> str:
    lines = ["# `tada edit` on the organism: reconstruction and steering an edit", "",
             f"Command: `{out['command']}` ({out['seconds'] / 60:.1f} min on a 2-core CPU). Model {out['model']}, "
             f"settings {out['settings']}, {out['clips']} clips per set; held-out seeds: generated clips "
             f"{out['seeds']['generated']}+k, fresh pair {out['seeds']['fresh']}+k, synthesized draw "
             f"{out['seeds']['synthesized']}. Distance: {out['distance']}. Means with bootstrap 95% CIs over clips.",
             "", "## Reconstruction (alpha 0, full inversion)", "",
             "| clips | vector run | alpha-0 edit to input (dB) | codec only to input (dB) | fresh pair (dB) | ratio |",
             "|---|---|---|---|---|---|"]
    for name, s in out["sets"].items():
        for concept, e in s["concepts"].items():
            r = e["reconstruction"]
            fresh = _fmt(r["fresh_pair_db"], r["fresh_pair_ci"]) if "fresh_pair_db" in r else "-"
            ratio = _fmt(r["ratio"], r["ratio_ci"]) if "ratio" in r else "-"
            lines.append(f"| {name} | {concept} | {_fmt(r['alpha0_to_input_db'], r['alpha0_to_input_ci'])} | "
                         f"{_fmt(r['codec_to_input_db'], r['codec_to_input_ci'])} | {fresh} | {ratio} |")
    lines += ["", "## Steering an edit: the target measure per alpha", "",
              "| clips | concept (measure) | alphas | mean per alpha | monotone | increasing | "
              "change at -2r | change at +2r |", "|---|---|---|---|---|---|---|---|"]
    for name, s in out["sets"].items():
        for concept, e in s["concepts"].items():
            t = e["target"]
            lines.append(f"| {name} | {concept} | {', '.join(f'{a:g}' for a in e['alphas'])} | "
                         f"{', '.join(f'{v:.4g}' for v in t['per_alpha_mean'])} | {t['monotone_share']:.2f} | "
                         f"{t['increasing_share']:.2f} | {_fmt(t['change_at_min_alpha'], t['change_at_min_alpha_ci'])} | "
                         f"{_fmt(t['change_at_max_alpha'], t['change_at_max_alpha_ci'])} |")
    lines += ["", "## What is kept: the edit at alpha +-r vs regenerating from scratch with the edited prompt, same seed",
              "", "Mean |change| of each other panel axis re the input (lower is better kept); `edit better`: share "
              "of clips where the edit changed it less than the regeneration.", "",
              "| clips | concept | side | target change: edit / regen | log-mel to input (dB): edit / regen | "
              "other axes: edit / regen (edit better) |", "|---|---|---|---|---|---|"]
    for name, s in out["sets"].items():
        for concept, e in s["concepts"].items():
            for side, p in e["preservation"].items():
                axes = "; ".join(f"{c} {a['edit_abs_change']:.3g} / {a['regen_abs_change']:.3g} "
                                 f"({a['edit_better_share']:.2f})" for c, a in p["axes"].items())
                lm = p["logmel_to_input"]
                lines.append(f"| {name} | {concept} | {side} ({p['regen_prompt']!r}) | "
                             f"{p['edit_target_change']:.3g} / {p['regen_target_change']:.3g} | "
                             f"{_fmt(lm['edit_db'], lm['edit_ci'])} / {_fmt(lm['regen_db'], lm['regen_ci'])} | "
                             f"{axes} |")
    lines += ["", "Edit time per clip (5 alphas + the anchor row, one batched call): " + ", ".join(
        f"{name} {concept} {e['edit_seconds_per_clip']:.2f}s" for name, s in out["sets"].items()
        for concept, e in s["concepts"].items()), ""]
    return "\n".join(lines)


def figure(out: dict, path: Path) -> None:
    """The figure scripts/figures.py redraws from editing.json (one definition: its ``editing_figure``)."""
    from figures import editing_figure

    editing_figure(out, path)


if __name__ == "__main__":
    sys.exit(main())
