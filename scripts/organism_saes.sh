#!/usr/bin/env bash
# TopK SAEs on the organism's most functional layers (6 and 8), their concept features,
# and the SAE steering sweep.
#
#     bash scripts/organism_saes.sh          (resumable: the cache skips finished shards)
#
# Writes runs/sae-cache-organism/ (not committed), saes/tada-organism-topk/ (best SAE per layer
# in sparsify's layout, with the (m, k) sweep in its README), vectors/tada-organism-<concept>-sae/
# and results/organism_sae_steering.{md,json}.
set -euo pipefail
export HF_HUB_OFFLINE=1
cd "$(dirname "$0")/.."

tada sae cache --layers 6 8 --prompts 400 --out runs/sae-cache-organism
tada sae train runs/sae-cache-organism --epochs 2 --out saes/tada-organism-topk
for c in tempo brightness drums vocal_gender; do
  tada sae features saes/tada-organism-topk --concept "$c" --tau 20 --alpha-range -ALPHA ALPHA \
      --out "vectors/tada-organism-$c-sae"
done
tada sweep vectors/tada-organism-{tempo,brightness,drums,vocal_gender}-sae --out results/organism_sae_steering
tada list
