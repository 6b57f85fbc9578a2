#!/usr/bin/env bash
# The steering benchmark (TADA Sec. 5.1's protocol) on the MusicGen organism: DiffMean One-to-All and All-to-All,
# the prompt swap (P_max), the text-embedding difference and a random control, both directions, tempo and
# brightness, the organism's ground-truth scorer. Resumable: rerun the same command to finish an interrupted run.
# Writes results/musicgen_benchmark/ (table.md|csv|json, curves.png, per concept result.json and clips.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/musicgen_benchmark}
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
start=$(date +%s)
python -m tada_core.cli benchmark --model musicgen-organism --concept tempo --concept brightness \
  --seeds 300 301 --strengths 7 --out "$OUT" "$@"
python -m tada_core.cli benchmark controls "$OUT"
echo "wall time: $(( $(date +%s) - start )) s"
