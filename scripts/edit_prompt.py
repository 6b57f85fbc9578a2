"""How the edit's prompt matters: the neutral default ("music") vs the clip's own caption.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python scripts/edit_prompt.py [--out results/editing] [--clips 6]

Clips the organism did not generate (the synthesizer, draw seed 8300, as scripts/edit_validation.py), edited with
the brightness vector at alpha -2 and +2 under each prompt: the harmonic-centroid change re the input (Hz) and the
log-mel distance to the input (dB), bootstrap 95% CIs. Writes OUT/prompt.json and OUT/prompt.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edit_validation import SYNTH_SEED, ci, distance, mono  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="results/editing")
    ap.add_argument("--clips", type=int, default=6)
    args = ap.parse_args()
    import tada_core
    from tada_core.artifacts.vectors import load_vector
    from tada_core.editing import DEFAULT_PROMPT, edit
    from tada_core.organism import synth
    from tada_core.organism.panel import build

    t0 = time.time()
    model = tada_core.load_model()
    model.set_progress_bar(False)
    panel = build()
    sr, n = model.sample_rate, args.clips
    items = synth.dataset(n, seed=SYNTH_SEED)
    clips = [synth.synthesize(a, s)[: int(model.defaults.duration * sr)] for a, _, s in items]
    before = panel.measure(np.stack(clips), sr)["brightness"]
    vec = load_vector("vectors/tada-organism-brightness-caa")
    rows = []
    for which in ("default", "caption"):
        lo, hi, d_lo, d_hi = [], [], [], []
        for k, (_, caption, _) in enumerate(items):
            prompt = DEFAULT_PROMPT if which == "default" else caption
            r = edit(model, clips[k], sr, steer=vec, alpha=[-2.0, 2.0], prompt=prompt, seed=SYNTH_SEED + k)
            a, b = mono(r.audio[0]), mono(r.audio[1])
            lo.append(a), hi.append(b)
            d_lo.append(distance(a, clips[k], sr)), d_hi.append(distance(b, clips[k], sr))
        m_lo = panel.measure(np.stack(lo), sr)["brightness"] - before
        m_hi = panel.measure(np.stack(hi), sr)["brightness"] - before
        rows.append({"prompt": which if which == "caption" else f"default ({DEFAULT_PROMPT!r})",
                     "centroid_change_minus2": float(m_lo.mean()), "centroid_change_minus2_ci": ci(m_lo),
                     "centroid_change_plus2": float(m_hi.mean()), "centroid_change_plus2_ci": ci(m_hi),
                     "logmel_minus2_db": float(np.mean(d_lo)), "logmel_minus2_ci": ci(d_lo),
                     "logmel_plus2_db": float(np.mean(d_hi)), "logmel_plus2_ci": ci(d_hi)})
        print(f"{which}: done ({time.time() - t0:.0f}s)", file=sys.stderr)
    command = "OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python scripts/edit_prompt.py " + " ".join(sys.argv[1:])
    out = {"command": command.rstrip(), "clips": n, "seed": SYNTH_SEED, "settings": model.defaults.to_dict(),
           "vector": "vectors/tada-organism-brightness-caa", "captions": [c for _, c, _ in items], "rows": rows,
           "seconds": time.time() - t0}
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompt.json").write_text(json.dumps(out, indent=1) + "\n")
    f = lambda v, c: f"{v:.3g} [{c[0]:.3g}, {c[1]:.3g}]"  # noqa: E731
    lines = ["# The edit's prompt: the neutral default vs the clip's own caption (brightness, alpha -2 / +2)", "",
             f"Command: `{out['command']}` ({out['seconds'] / 60:.1f} min). {n} synthesized clips (draw seed "
             f"{SYNTH_SEED}), settings {out['settings']}. Harmonic-centroid change re the input (Hz) and log-mel "
             "distance to the input (dB); means with bootstrap 95% CIs.", "",
             "| prompt | centroid change at -2 | centroid change at +2 | log-mel to input at -2 | at +2 |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['prompt']} | {f(r['centroid_change_minus2'], r['centroid_change_minus2_ci'])} | "
                     f"{f(r['centroid_change_plus2'], r['centroid_change_plus2_ci'])} | "
                     f"{f(r['logmel_minus2_db'], r['logmel_minus2_ci'])} | "
                     f"{f(r['logmel_plus2_db'], r['logmel_plus2_ci'])} |")
    (folder / "prompt.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {folder}/prompt.json and prompt.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
