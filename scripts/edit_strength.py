"""What `--strength` does: the brightness edit at alpha +-2 on held-out organism clips, for several strengths.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python scripts/edit_strength.py [--out results/editing] [--clips 6]

Clips: the organism's own clips of the evaluation prompts on seeds 8100+k (as scripts/edit_validation.py).
Per strength: the change of the harmonic centroid (the verification panel's brightness measure) at alpha -2 and
+2 re the input, and the log-mel distance of the edits to the input (mean |dB difference|), with bootstrap 95% CIs.
Writes OUT/strength.json and OUT/strength.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edit_validation import GEN_SEED, ci, distance, mono  # noqa: E402

STRENGTHS = (1.0, 0.75, 0.5, 0.25)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="results/editing")
    ap.add_argument("--clips", type=int, default=6)
    args = ap.parse_args()
    import tada_core
    from tada_core.artifacts.vectors import load_vector
    from tada_core.editing import edit
    from tada_core.organism.concepts import bases
    from tada_core.organism.panel import build

    t0 = time.time()
    model = tada_core.load_model()
    model.set_progress_bar(False)
    panel = build()
    sr, n = model.sample_rate, args.clips
    prompts = [("an " if b[0] in "aeiou" else "a ") + b for b in (bases()[k % len(bases())] for k in range(n))]
    gen = model.generate(prompts, seeds=[GEN_SEED + k for k in range(n)]).audio
    clips = [mono(gen[k]) for k in range(n)]
    before = panel.measure(np.stack(clips), sr)["brightness"]
    vec = load_vector("vectors/tada-organism-brightness-caa")
    rows = []
    for strength in STRENGTHS:
        lo, hi, d_lo, d_hi = [], [], [], []
        for k in range(n):
            r = edit(model, clips[k], sr, steer=vec, alpha=[-2.0, 2.0], prompt=prompts[k], strength=strength,
                     seed=GEN_SEED + k)
            a, b = mono(r.audio[0]), mono(r.audio[1])
            lo.append(a), hi.append(b)
            d_lo.append(distance(a, clips[k], sr)), d_hi.append(distance(b, clips[k], sr))
        m_lo = panel.measure(np.stack(lo), sr)["brightness"] - before
        m_hi = panel.measure(np.stack(hi), sr)["brightness"] - before
        rows.append({"strength": strength, "start_step": r.start_step,
                     "centroid_change_minus2": float(m_lo.mean()), "centroid_change_minus2_ci": ci(m_lo),
                     "centroid_change_plus2": float(m_hi.mean()), "centroid_change_plus2_ci": ci(m_hi),
                     "logmel_minus2_db": float(np.mean(d_lo)), "logmel_minus2_ci": ci(d_lo),
                     "logmel_plus2_db": float(np.mean(d_hi)), "logmel_plus2_ci": ci(d_hi)})
        print(f"strength {strength}: done ({time.time() - t0:.0f}s)", file=sys.stderr)
    command = "OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python scripts/edit_strength.py " + " ".join(sys.argv[1:])
    out = {"command": command.rstrip(),
           "clips": n, "seeds": f"{GEN_SEED}+k", "settings": model.defaults.to_dict(),
           "vector": "vectors/tada-organism-brightness-caa", "rows": rows, "seconds": time.time() - t0}
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "strength.json").write_text(json.dumps(out, indent=1) + "\n")
    f = lambda v, c: f"{v:.3g} [{c[0]:.3g}, {c[1]:.3g}]"  # noqa: E731
    lines = ["# `tada edit --strength`: the brightness edit at alpha -2 / +2", "",
             f"Command: `{out['command']}` ({out['seconds'] / 60:.1f} min). {n} organism clips (seeds {GEN_SEED}+k, "
             f"their own prompts), settings {out['settings']}. Harmonic-centroid change re the input (Hz) and "
             "log-mel distance to the input (dB); means with bootstrap 95% CIs.", "",
             "| strength | regenerated from step | centroid change at -2 | centroid change at +2 | "
             "log-mel to input at -2 | at +2 |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['strength']:g} | {r['start_step']} | "
                     f"{f(r['centroid_change_minus2'], r['centroid_change_minus2_ci'])} | "
                     f"{f(r['centroid_change_plus2'], r['centroid_change_plus2_ci'])} | "
                     f"{f(r['logmel_minus2_db'], r['logmel_minus2_ci'])} | "
                     f"{f(r['logmel_plus2_db'], r['logmel_plus2_ci'])} |")
    (folder / "strength.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {folder}/strength.json and strength.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
