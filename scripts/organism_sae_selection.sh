#!/usr/bin/env bash
# The reference code's per-step TF-IDF feature selection vs this project's global one, on the organism:
# the same SAEs (saes/tada-organism-topk), tau = 20, the same alpha ranges and the same held-out seeds
# as scripts/organism_saes.sh, without ReNorm as there.
#
#     bash scripts/organism_sae_selection.sh      (after scripts/organism_saes.sh)
#
# Writes runs/sae-per-step/ (the per-step vectors, not committed), results/organism_sae_per_step.{md,json}
# and results/organism_sae_selection.md (global vs per-step, one table).
set -euo pipefail
export HF_HUB_OFFLINE=1
cd "$(dirname "$0")/.."

# the alpha range of each concept's global SAE vector, read from its config.json (the same ranges, by construction)
for concept in tempo brightness drums vocal_gender mood piano; do
  max=$(python -c "import json,sys; print(max(json.load(open(sys.argv[1]))['alpha_range']))" \
        "vectors/tada-organism-$concept-sae/config.json")
  tada sae features saes/tada-organism-topk --concept "$concept" --tau 20 --alpha-range "-$max" "$max" --no-renorm \
    --selection per-step --out "runs/sae-per-step/tada-organism-$concept-sae-per-step"
done
tada sweep runs/sae-per-step/tada-organism-{tempo,mood,brightness,drums,vocal_gender,piano}-sae-per-step \
  --seeds 200 201 202 203 --no-renorm --out results/organism_sae_per_step
python scripts/steering_table.py SAE=results/organism_sae_steering.json \
  SAE-per-step=results/organism_sae_per_step.json --out results/organism_sae_selection.md \
  --title "SAE feature selection on tada-organism: global (this project) vs per-step (the reference code)"
