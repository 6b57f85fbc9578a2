"""Every multi-process command, small: run alone, or under ``accelerate launch`` (tests/test_distributed.py).

    OMP_NUM_THREADS=1 python tests/distributed_jobs.py
    accelerate launch --multi_gpu --num_processes 2 tests/distributed_jobs.py

Writes into the current folder (relative paths, so that the two runs' files can be compared
byte for byte). Each job goes through ``tada_core.cli.main``, as ``accelerate launch -m
tada_core.cli ...`` would run it.
"""

import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from tada_core.cli import main  # noqa: E402

SMALL = ["--steps", "2", "--duration", "0.5", "--device", "cpu"]
CAPTIONS = str(Path(__file__).parent / "data" / "musiccaps_sample.csv")

JOBS = [
    # the organism: a localization sweep, CAA, an activation cache, data-parallel SAE training, the benchmark
    ["localize", "--concept", "tempo", "--pairs", "2", "--seeds", "0", "--layers", "3", "5",
     "--batch-size", "2", "--out", "loc", *SMALL],
    ["caa", "--concept", "tempo", "--seeds", "0", "1", "--batch-size", "4", "--out", "caa", *SMALL],
    ["sae", "cache", "--prompts", "10", "--layers", "3", "--batch-size", "4", "--out", "cache", *SMALL],
    ["sae", "train", "cache", "--expansions", "2", "--ks", "4", "--epochs", "2", "--batch-tokens", "64",
     "--out", "sae"],
    ["benchmark", "--concept", "mood", "--methods", "pci", "text-emb", "--prompts", "2", "--seeds", "100", "--strengths", "1",
     "--functional", "4", "--specificity", "--batch-size", "16", "--out", "bench", *SMALL],
    # a tiny fixture of another family
    ["sae", "cache", "--model", "tiny-ace-step", "--captions", CAPTIONS, "--prompts", "6", "--layers", "0", "1",
     "--batch-size", "2", "--out", "tiny-cache", *SMALL],
]

if __name__ == "__main__":
    for job in JOBS:
        code = main(job)
        if code:
            sys.exit(f"{' '.join(job)}: exit code {code}")
