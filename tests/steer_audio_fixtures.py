"""Files in the exact layouts the TADA reference code (luk-st/steer-audio) writes, for the importer tests.

CAA vectors: the reference's ``VectorStore`` keeps, per prompt, ``{key: defaultdict(list)}``
with ``key = (step, cfg_pass)`` when ``save_all_cfg_passes`` (its default) else ``step``,
each list holding the layer's output averaged over batch and frames (one entry per call);
Stable Audio's and AudioLDM2's stores hold plain dicts keyed by module path. Its
``compute_standard_steering_vectors`` then writes, per key, a ``defaultdict(list)`` of
layer -> ``[unit-norm float32 mean difference]`` and pickles the dict as ``sv.pkl``
beside a ``config.json``. This module does the same with random activations, so the
pickles reference exactly the globals the reference's do.

SAEs: ``train_ace.py`` saves sparsify's layout, one folder per hookpoint
(``transformer_blocks.N.cross_attn`` on ACE-Step v1) with ``cfg.json`` (the reference's
``SaeConfig`` fields plus ``d_in``) and ``sae.safetensors``.

Run ``python tests/steer_audio_fixtures.py OUT`` to write every layout to OUT.
"""

from __future__ import annotations

import json
import pickle
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

# layout name -> (layer key -> width, steps, CFG passes stored (None: save_all_cfg_passes=False), inner container)
LAYOUTS = {
    "ace-v1": ({"tf6": 2560, "tf7": 2560}, 3, 2, "defaultdict"),
    "ace-v1-cond-only": ({"tf6": 2560, "tf7": 2560}, 3, None, "defaultdict"),
    "ace-v1-turbo": ({"tf6": 2560}, 1, None, "defaultdict"),
    "ace-v1-double-guidance": ({"tf7": 2560}, 2, 3, "defaultdict"),
    "stable-audio": ({".transformer.transformer_blocks.11.attn2": 1536,
                      ".transformer.transformer_blocks.12.attn2": 1536}, 2, 2, "dict"),
    "audioldm2-large": ({".unet.up_blocks.1.attentions.5.transformer_blocks.0.attn2": 384,
                         ".unet.up_blocks.1.attentions.5.transformer_blocks.1.attn2": 384}, 2, 2, "dict"),
    "tiny-stable-audio": ({".transformer.transformer_blocks.1.attn2": 96,
                           ".transformer.transformer_blocks.2.attn2": 96}, 3, 2, "dict"),
    "tiny-stable-audio-turbo": ({".transformer.transformer_blocks.1.attn2": 96}, 1, 2, "dict"),
}


def _store(layers: dict[str, int], steps: int, passes: int | None, container: str, rng) -> dict:
    """One prompt's ``vector_store`` as the reference's controllers fill it."""
    store = defaultdict(dict)
    for step in range(steps):
        for p in range(passes or 1):
            step_store = defaultdict(list)
            for key, width in layers.items():
                output = rng.standard_normal((1, 4, width)).astype(np.float32)  # [batch, frames, width]
                step_store[key].append(output.mean(axis=0).mean(axis=0))
            store[(step, p) if passes else step] = step_store if container == "defaultdict" else dict(step_store)
    return store


def _steering_vectors(pos: list[dict], neg: list[dict]) -> dict:
    """The reference's ``compute_standard_steering_vectors``: unit-norm mean difference per key and layer."""
    out = {}
    keys = list(pos[0].keys())
    layers = list(pos[0][keys[0]].keys())
    for key in keys:
        out[key] = defaultdict(list)
        for layer in layers:
            v = np.mean([s[key][layer][0] for s in pos], axis=0) - np.mean([s[key][layer][0] for s in neg], axis=0)
            n = np.linalg.norm(v)
            out[key][layer].append(v / n if n > 0 else v)
    return out


def write_reference_vectors(folder: str | Path, layout: str, *, prompts: int = 3, seed: int = 0) -> Path:
    """``folder/sv.pkl`` + ``folder/config.json`` in ``layout`` (a key of :data:`LAYOUTS`); returns sv.pkl."""
    layers, steps, passes, container = LAYOUTS[layout]
    rng = np.random.default_rng(seed)
    pos = [_store(layers, steps, passes, container, rng) for _ in range(prompts)]
    neg = [_store(layers, steps, passes, container, rng) for _ in range(prompts)]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "sv.pkl", "wb") as f:
        pickle.dump(_steering_vectors(pos, neg), f)
    with open(folder / "pos_vectors.pkl", "wb") as f:
        pickle.dump(pos, f)
    config = {"method": "standard_caa", "concept": "tempo", "lyrics": "[inst]", "num_cfg_passes": passes or 2,
              "save_all_cfg_passes": passes is not None, "audio_duration": 30.0, "num_inference_steps": steps,
              "seed": 10, "device": "cuda", "save_dir": "steering_vectors/caa", "guidance_scale_text": 0.0,
              "guidance_scale_lyric": 0.0, "guidance_scale": 5.0, "guidance_interval": 1.0,
              "guidance_interval_decay": 0.0}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder / "sv.pkl"


# the reference's SaeConfig (batch_topk is what train_ace.py turns on) and the d_in save_to_disk adds
REFERENCE_SAE_CFG = {"expansion_factor": 4, "normalize_decoder": True, "num_latents": 0, "k": 8,
                     "batch_topk": True, "sample_topk": False, "input_unit_norm": False, "multi_topk": False}


def write_reference_sae(folder: str | Path, hookpoint: str, d_in: int, *, seed: int = 0, **cfg) -> Path:
    """One hookpoint folder as the reference's ``Sae.save_to_disk`` writes it (random weights)."""
    g = torch.Generator().manual_seed(seed)
    fields = {**REFERENCE_SAE_CFG, **cfg}
    latents = fields["num_latents"] or d_in * fields["expansion_factor"]
    w_dec = torch.randn(latents, d_in, generator=g)
    w_dec /= w_dec.norm(dim=1, keepdim=True)
    out = Path(folder) / hookpoint
    out.mkdir(parents=True, exist_ok=True)
    save_file({"encoder.weight": torch.randn(latents, d_in, generator=g) / d_in ** 0.5,
               "encoder.bias": torch.randn(latents, generator=g) * 0.1, "W_dec": w_dec,
               "b_dec": torch.randn(d_in, generator=g) * 0.1}, str(out / "sae.safetensors"))
    (out / "cfg.json").write_text(json.dumps({**fields, "d_in": d_in}))
    return out


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "steer_audio_fixtures")
    for name in LAYOUTS:
        print(write_reference_vectors(root / name, name))
    print(write_reference_sae(root / "sae", "transformer_blocks.6.cross_attn", 64))
