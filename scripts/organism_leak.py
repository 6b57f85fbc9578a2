"""Where the female voice's sub-octave comes from: the male F0 channel under classifier-free guidance.

    python scripts/organism_leak.py [--model FOLDER] [--guidance 2.5 4 7] [--seeds 4000 4001] [--out PATH.json]

For "a {base} with female vocals" over the organism's 12 base prompts, the pipeline's final latents
(before the decoder) are read in two channels: the female voice's F0 (grid bin 20, 312.5 Hz) and the
male voice's F0 (bin 10, 156.25 Hz), which the prompt wants silent. Printed per guidance: the mean
latent in each, and the male-F0 partial's level relative to the female F0's after the decoder,
read off the checkpoint's own VAE (so the script measures an older checkpoint's curve as well).
Negative latents in the male channel are classifier-free guidance's extrapolation away from the
unconditional prediction; how loud they sound depends only on the curve.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def amplitude_of(vae, z: np.ndarray, channel: int) -> np.ndarray:
    """What this VAE's decoder makes of latent values ``z`` in ``channel``: the amplitude of that partial,
    read off the decoder itself (one frame, one channel, the synthesized audio projected on its sinusoid)."""
    from tada_core.organism import codec

    lat = torch.zeros(len(z), codec.N_CHANNELS, 4)
    lat[:, channel, :] = torch.as_tensor(z, dtype=torch.float32)[:, None]
    with torch.no_grad():
        audio = vae.decode(lat).sample[:, 0].numpy()
    return codec.analyze(np.pad(audio, ((0, 0), (0, 4 * codec.HOP - audio.shape[-1]))))[:, channel, 1]


def main() -> None:
    from tada_core import load_model
    from tada_core.organism import codec
    from tada_core.organism.concepts import ORGANISM_CONCEPT_SET

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tada-organism")
    p.add_argument("--guidance", type=float, nargs="+", default=[2.5, 4.0, 7.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[4000, 4001])
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = p.parse_args()
    model = load_model(args.model, device="cpu")
    pipe = model.pipeline
    male, female = codec.channel(codec.VOICE_F0_BINS["male"]), codec.channel(codec.VOICE_F0_BINS["female"])
    prompts = [f"a {b} with female vocals" for b in ORGANISM_CONCEPT_SET.bases]
    rows = []
    for g in args.guidance:
        lat = []
        for s in args.seeds:
            gen = [torch.Generator().manual_seed(s) for _ in prompts]
            out = pipe(prompts, num_inference_steps=20, guidance_scale=g, audio_end_in_s=4.0, generator=gen,
                       output_type="latent")
            lat.append(out.audios.float().numpy())
        lat = np.concatenate(lat)
        zm, zf = lat[:, male].mean(-1), lat[:, female].mean(-1)
        am = np.abs(amplitude_of(pipe.vae, zm, male))
        af = np.abs(amplitude_of(pipe.vae, zf, female))
        row = {"guidance": g, "clips": len(lat), "male_f0_latent": float(zm.mean()),
               "female_f0_latent": float(zf.mean()),
               "male_f0_below_zero": float((zm < 0).mean()),
               "male_over_female_db": float(np.median(20 * np.log10(np.maximum(am, 1e-9) / np.maximum(af, 1e-9))))}
        rows.append(row)
        print(f"guidance {g:g}: male-F0 latent {row['male_f0_latent']:+.2f} (below zero in "
              f"{row['male_f0_below_zero']:.0%} of clips), female-F0 latent {row['female_f0_latent']:+.2f}; "
              f"male-F0 partial {row['male_over_female_db']:+.1f} dB re the female F0 (median)", flush=True)
    print("\n| guidance | clips | male-F0 latent (mean) | below zero | female-F0 latent (mean) "
          "| male-F0 partial re female F0 (median) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['guidance']:g} | {r['clips']} | {r['male_f0_latent']:+.2f} | {r['male_f0_below_zero']:.0%} | "
              f"{r['female_f0_latent']:+.2f} | {r['male_over_female_db']:+.1f} dB |")
    if args.out:
        Path(args.out).write_text(json.dumps({"model": args.model, "seeds": args.seeds, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
