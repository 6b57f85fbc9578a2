#!/usr/bin/env bash
# TADA's Table 3 (Sec. 5.1) on the shipped organism: every steering method, six concepts.
#
#     bash scripts/organism_benchmark.sh      (hours on a 2-core CPU; resumable: rerun to finish)
#
# Held-out seed 300 (CAA vectors were fitted on seeds 0-3, AUSteer's directions and the Concept Sliders on 0-3,
# localization on 100-103). Functional layers from results/organism_localization. The grid is smaller than the
# paper's so that the table fits a CPU: 6 base prompts x 1 seed per cell and 7 strengths per direction
# (`tada benchmark` defaults to 15). Leakage is measured on the three cheap measures (mood, drums, piano).
# Run twice: CAA and SAE with ReNorm (Eq. 3, the paper's benchmark setting), then without it (h + alpha v, the
# setting the organism's vectors were validated with: their config says renorm false); every other method is the same.
# Writes results/organism_benchmark/ and results/organism_benchmark_no_renorm/ (table.md, table.csv, table.json,
# curves.png, one folder per concept). The run without ReNorm also has the 15th-cell methods (Concept Sliders on
# all and on the functional layers, Text and Token Embeddings on the functional layers) and the random-direction
# controls of CAA, SAE and AUSteer; a folder made with fewer methods takes the added ones without redoing its calls.
set -euo pipefail
export HF_HUB_OFFLINE=1
cd "$(dirname "$0")/.."
CONCEPTS="tempo brightness drums mood vocal_gender piano"
ARGS=(--localization results/organism_localization --seeds 300 --prompts 6 --strengths 7
      --specificity mood drums piano --batch-size 48)

# Concept Sliders, trained once per concept on its 6 base prompts at seeds 0-3 (a folder that exists is kept)
for c in $CONCEPTS; do
    if [ "$c" != drums ] && [ "$c" != piano ]; then   # no functional layer: no localized slider
        tada slider train --concept "$c" --layers functional --localization results/organism_localization \
            --prompts 6 --out "sliders/tada-organism-$c-slider"
    fi
    tada slider train --concept "$c" --layers all --prompts 6 --out "sliders/tada-organism-$c-slider-all"
done

tada benchmark $(printf -- '--concept %s ' $CONCEPTS) "${ARGS[@]}" --out results/organism_benchmark \
    --methods pci caa caa-all sae pci-f text-emb token-emb freesliders freesliders-f austeer austeer-f
tada benchmark $(printf -- '--concept %s ' $CONCEPTS) "${ARGS[@]}" --no-vector-renorm \
    --out results/organism_benchmark_no_renorm \
    --methods pci caa caa-all sae pci-f text-emb token-emb freesliders freesliders-f austeer austeer-f \
              text-emb-f token-emb-f sliders sliders-f \
              random-caa random-caa-all random-sae random-austeer random-austeer-f
