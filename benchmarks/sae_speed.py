"""SAE training throughput against EleutherAI sparsify's SparseCoder, on the same cached activations.

    python -m venv --system-site-packages /tmp/spvenv && /tmp/spvenv/bin/pip install eai-sparsify
    /tmp/spvenv/bin/python benchmarks/sae_speed.py [--cache runs/sae-cache-organism] [--layer 6] [--m 8] [--k 64]

(sparsify is not a dependency of this project; a venv that sees the system packages
adds it without touching torch.) Needs the cache that ``scripts/organism_saes.sh``
writes. Both trainers see the same batches in the same order, with Adam at the same
learning rate, the same AuxK rule and decoder normalization; one epoch each, timed
after a warm-up batch. Prints tokens/s for both and ours / sparsify (target >= 1.0),
then loads the committed SAE with sparsify's own ``load_from_disk`` and compares its
reconstruction with ours.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from common import machine, run_benchmark

from tada_core.interventions.cache import ActivationCache
from tada_core.artifacts.sae import SaeConfig, TopKSAE

ROOT = Path(__file__).resolve().parents[1]


def run(model, forward, batches, lr) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=lr, eps=6.25e-10)
    since = torch.zeros(model.W_dec.shape[0], dtype=torch.long)  # tokens since each latent fired
    tokens, start = 0, None
    for i, x in enumerate(batches):
        if i == 1:
            start, tokens = time.perf_counter(), 0    # batch 0 is the warm-up
        out = forward(x, since > 100_000)
        loss = out.fvu + out.auxk_loss / 32
        opt.zero_grad(set_to_none=True)
        loss.backward()
        model.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        model.set_decoder_norm_to_unit_norm()
        with torch.no_grad():
            fired = torch.zeros_like(since, dtype=torch.bool)
            fired[out.latent_indices.flatten()] = True
            since += x.shape[0]
            since[fired] = 0
        tokens += x.shape[0]
    return tokens / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cache", default=str(ROOT / "runs" / "sae-cache-organism"))
    p.add_argument("--layer", type=int, default=6)
    p.add_argument("--m", type=int, default=8)
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--batch-tokens", type=int, default=1024)
    args = p.parse_args()
    try:
        from sparsify import SparseCoder, SparseCoderConfig
    except ImportError:
        raise SystemExit("sparsify is not installed here; see the docstring for a venv that has it") from None
    print(machine())
    cache = ActivationCache(args.cache)
    batches = list(cache.batches(args.layer, args.batch_tokens, shuffle_seed=0))
    d = cache.width(args.layer)
    lr = 2e-4 / math.sqrt(d * args.m / 2 ** 14)
    torch.manual_seed(0)
    ours = TopKSAE(SaeConfig(d_in=d, expansion_factor=args.m, k=args.k), generator=torch.Generator().manual_seed(0))
    theirs = SparseCoder(d, SparseCoderConfig(expansion_factor=args.m, k=args.k))
    with torch.no_grad():                            # same start for both
        theirs.encoder.weight.copy_(ours.encoder.weight)
        theirs.W_dec.copy_(ours.W_dec)
        ours.b_dec.copy_(batches[0].mean(0))
        theirs.b_dec.copy_(batches[0].mean(0))
    n = sum(len(b) for b in batches)
    t_ours = run(ours, lambda x, dead: ours(x, dead_mask=dead), batches, lr)
    t_theirs = run(theirs, lambda x, dead: theirs(x, dead_mask=dead), batches, lr)
    print(f"{n} tokens of layer {args.layer} (width {d}), m={args.m}, k={args.k}, batches of {args.batch_tokens}")
    print(f"tada_core.methods.sae: {t_ours:,.0f} tokens/s   sparsify SparseCoder: {t_theirs:,.0f} tokens/s   "
          f"ratio ours/sparsify = {t_ours / t_theirs:.2f} (target >= 1.0)")

    folder = ROOT / "saes" / "tada-organism-topk" / cache.spec["layer_paths"][str(args.layer)]
    if folder.is_dir():
        mine, loaded = TopKSAE.load(folder), SparseCoder.load_from_disk(folder)
        x = batches[0][:256]
        with torch.no_grad():
            diff = (mine(x).sae_out - loaded(x).sae_out).abs().max().item()
        print(f"sparsify's load_from_disk reads {folder.relative_to(ROOT)}: max |difference| of reconstructions "
              f"= {diff:.2e}")


if __name__ == "__main__":
    run_benchmark(main)
