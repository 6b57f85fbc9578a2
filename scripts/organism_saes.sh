#!/usr/bin/env bash
# TopK SAEs on the organism's most functional layers (3: tempo, 5: brightness; results/organism_localization),
# their concept features,
# and the SAE steering sweep.
#
#     bash scripts/organism_saes.sh          (resumable: the cache skips finished shards)
#
# Writes runs/sae-cache-organism/ (not committed), saes/tada-organism-topk/ (best SAE per layer
# in sparsify's layout, with the (m, k) sweep in its README, and the feature atlas the app
# browses), vectors/tada-organism-<concept>-sae/, results/organism_sae_steering.{md,json} and
# results/organism_caa_vs_sae.md (with the CAA sweep of scripts/organism_results.sh).
# (Delete saes/tada-organism-topk to retrain it; training is seeded and deterministic.)
set -euo pipefail
export HF_HUB_OFFLINE=1
cd "$(dirname "$0")/.."

tada sae cache --layers 3 5 --prompts 400 --out runs/sae-cache-organism
[ -f saes/tada-organism-topk/config.json ] || \
  tada sae train runs/sae-cache-organism --epochs 2 --out saes/tada-organism-topk
# Table 1's tau = 20 features per layer; alpha ranges where the measure moves monotonically.
feat() { tada sae features saes/tada-organism-topk --concept "$1" --tau 20 --alpha-range "-$2" "$2" --no-renorm \
           --out "vectors/tada-organism-$1-sae"; }
feat tempo 0.2
feat brightness 0.4
feat drums 0.1
feat vocal_gender 0.4
feat mood 0.4
feat piano 0.4
tada sweep vectors/tada-organism-{tempo,mood,brightness,drums,vocal_gender,piano}-sae \
  --seeds 200 201 202 203 --no-renorm --out results/organism_sae_steering
python scripts/steering_table.py CAA=results/organism_steering.json SAE=results/organism_sae_steering.json \
  --out results/organism_caa_vs_sae.md
tada sae atlas saes/tada-organism-topk
tada list
