#!/usr/bin/env bash
# The steering benchmark (TADA Sec. 5.1's protocol) on the MusicGen organism (docs/musicgen.md#the-steering-benchmark):
# DiffMean One-to-All and All-to-All (the shipped vectors), the prompt swap (PCI's analogue; P_max comes from it),
# the text-embedding difference and a random control (4 draws with DiffMean's per-layer norm), both directions,
# tempo and brightness, the organism's ground-truth scorer, leakage measured between the two concepts.
#
#     bash scripts/musicgen_benchmark.sh      (about 30 min on a shared 2-core CPU; resumable: rerun to finish)
#
# Held-out seeds 300 and 301 on all 12 base prompts: the DiffMean vectors were computed from forward passes (no
# seed) and their l_best chosen on seeds 100-101; the ranges are calibrated at seed 0; quality's reference clips
# are seeds 10000-10063. 7 strengths per direction (`tada benchmark` defaults to 15) to fit the CPU budget.
# Writes results/musicgen_benchmark/ (table.md with the comparison against the random control, table.csv,
# table.json, controls.json, curves.png, one folder per concept with its clips.jsonl journal).
set -euo pipefail
export HF_HUB_OFFLINE=1
cd "$(dirname "$0")/.."

tada benchmark --model musicgen-organism --concept tempo --concept brightness --seeds 300 301 --strengths 7 \
    --out results/musicgen_benchmark
