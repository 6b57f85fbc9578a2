#!/usr/bin/env bash
# TADA's Table 3 (Sec. 5.1) on the shipped organism: every steering method, six concepts.
#
#     bash scripts/organism_benchmark.sh      (about two hours on a 2-core CPU; resumable: rerun to finish)
#
# Held-out seed 300 (CAA vectors were fitted on seeds 0-3, AUSteer's directions on 0-3, localization on
# 100-103). Functional layers from results/organism_localization. The grid is smaller than the paper's so that
# the table fits an hour of CPU: 6 base prompts x 1 seed per cell and 7 strengths per direction
# (`tada benchmark` defaults to 15). Leakage is measured on the three cheap measures (mood, drums, piano).
# Run twice: CAA and SAE with ReNorm (Eq. 3, the paper's benchmark setting), then without it (h + alpha v, the
# setting the organism's vectors were validated with: their config says renorm false); every other method is the same.
# Writes results/organism_benchmark/ and results/organism_benchmark_no_renorm/ (table.md, table.csv, table.json,
# curves.png, one folder per concept).
set -euo pipefail
export HF_HUB_OFFLINE=1
cd "$(dirname "$0")/.."

tada benchmark --concept tempo --concept mood --concept brightness --concept drums --concept vocal_gender \
    --concept piano --localization results/organism_localization --seeds 300 --prompts 6 --strengths 7 \
    --specificity mood drums piano --batch-size 48 --out results/organism_benchmark
tada benchmark --concept tempo --concept mood --concept brightness --concept drums --concept vocal_gender \
    --concept piano --localization results/organism_localization --seeds 300 --prompts 6 --strengths 7 \
    --specificity mood drums piano --batch-size 48 --no-vector-renorm --out results/organism_benchmark_no_renorm
