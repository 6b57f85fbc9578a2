"""The MusicGen organism's codec round trip, judged by the organism's third-party scorer.

    python scripts/musicgen_codec_round_trip.py [--clips 300] [--out results/musicgen_organism/codec_round_trip.md]

Held-out generator clips (seed 99, never used to fit the codebooks) go through the shipped
``EncodecModel``: ``encode`` (analytic encoder, RVQ with the first n codebooks) -> ``decode``.
For each n, the relative L2 error to the clean clip and the scorer's agreement with the
generator's ground truth (the clean clips' agreement is the ceiling).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from tada_core import load_model
from tada_core.organism import codec, encodec, synth
from tada_core.organism.scorer import OrganismScorer, agreement


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=300)
    ap.add_argument("--out", default="results/musicgen_organism/codec_round_trip.md")
    args = ap.parse_args(argv)
    model = load_model("musicgen-organism")
    enc = model.pipeline.model.audio_encoder
    items = synth.dataset(args.clips, seed=99)
    attrs = [a for a, _, _ in items]
    clean = codec.synthesize_amplitudes(np.stack([synth.render(a, s) for a, _, s in items])).astype(np.float32)
    scorer = OrganismScorer()
    with torch.no_grad():
        codes = enc.encode(torch.from_numpy(clean)[:, None]).audio_codes[0]
    rows = []
    names = None
    for n in range(1, codes.shape[1] + 1):
        audio = encodec.decode(enc, codes[:, :n])
        err = float(np.sqrt(((audio - clean) ** 2).mean() / (clean ** 2).mean()))
        ag = agreement(scorer, attrs, audio)
        names = list(ag)
        rows.append((str(n), f"{err:.3f}", [ag[k]["accuracy"] for k in names]))
    ag = agreement(scorer, attrs, clean)
    rows.append(("clean clips", "0", [ag[k]["accuracy"] for k in names]))
    lines = [f"# The MusicGen organism's codec round trip ({args.clips} held-out generator clips)", "",
             "Made by `python scripts/musicgen_codec_round_trip.py`: encode -> the first n RVQ codebooks -> decode "
             "through the shipped `EncodecModel`; relative L2 error to the clean clip, and the share of clips whose "
             "label by the organism's scorer (librosa, pYIN, the timbre classifier) matches the generator's ground "
             "truth.", "",
             "| codebooks | relative error | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    lines += [f"| {n} | {e} | " + " | ".join(f"{v:.3f}" for v in vals) + " |" for n, e, vals in rows]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
