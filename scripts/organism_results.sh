#!/usr/bin/env bash
# Localization, CAA vectors, alpha sweep and layer-set ablation on the shipped organism.
#
#     bash scripts/organism_results.sh        (about 25 min on a 2-core CPU; resumable)
#
# Writes results/organism_localization/ (Eq. 9 per layer and concept, heatmap.png),
# vectors/tada-organism-<concept>-caa/ (CAA, Eq. 2), results/organism_steering.{md,json}
# (measure vs alpha) and results/organism_ablation.{md,json} (Table 2), and refreshes
# vectors/index.json. Every step is deterministic: rerunning it reproduces the committed files.
set -euo pipefail
export HF_HUB_OFFLINE=1
cd "$(dirname "$0")/.."

# 1. Localization: 12 counterfactual caption pairs x 2 seeds per concept, every layer patched.
tada localize --concept all --out results/organism_localization

# 2. CAA vectors for all layers (12 base prompts x 4 seeds = 48 pairs); by default they steer
#    the concept's functional layers from step 1 (all layers when none is functional).
#    The alpha range is where the concept's measure moves monotonically (see the sweep).
caa() { tada caa --concept "$1" --localization results/organism_localization --alpha-range "-$2" "$2" \
          --out "vectors/tada-organism-$1-caa"; }
caa tempo 1
caa mood 0.5
caa brightness 4
caa drums 1
caa vocal_gender 1
caa piano 2

# 3. The measure at -max, -max/2, 0, +max/2, +max of each vector's range: 12 prompts x 2 seeds.
tada sweep vectors/tada-organism-{tempo,mood,brightness,drums,vocal_gender,piano}-caa \
    --out results/organism_steering

# 4. Table 2: steer all layers, all but the functional ones, only the functional ones, at +/- max alpha.
#    (mood has no functional layer, so there is nothing to ablate.)
tada ablate vectors/tada-organism-{tempo,brightness,drums,vocal_gender,piano}-caa \
    --out results/organism_ablation

tada list vectors
