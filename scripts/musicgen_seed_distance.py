"""How far apart two unsteered MusicGen-organism clips of the same prompt are, on the benchmark's distance.

    python scripts/musicgen_seed_distance.py [results/musicgen_benchmark]

The neutral prompt of each of the 12 base prompts at the benchmark's seeds 300 and 301, 4.096 s: the mean
multi-resolution log-mel distance between the two seeds' clips, next to the benchmark's P_max (a yardstick
for "a different clip" on the preservation axis). Writes seed_distance.json there and prints it.
"""

import json
import sys
from pathlib import Path

import numpy as np

from tada_core import load_model
from tada_core.evaluation.benchmark import make_distance
from tada_core.runtime.io import write_json


def main(out: Path) -> dict:
    model = load_model("musicgen-organism")
    concepts = model.entry.concepts
    prompts = [concepts.neutral.format(base=b) for b in concepts.bases]
    a = model.generate(prompts, seeds=[300] * len(prompts)).audio
    b = model.generate(prompts, seeds=[301] * len(prompts)).audio
    d = np.asarray(make_distance("mel")(a, b, model.sample_rate), dtype=float)
    p_max = {c: json.loads((out / c / "result.json").read_text())["p_max"] for c in ("tempo", "brightness")}
    report = {"prompts": prompts, "seeds": [300, 301], "distance": "mel", "per_prompt": d.round(3).tolist(),
              "mean": round(float(d.mean()), 3), "min": round(float(d.min()), 3), "max": round(float(d.max()), 3),
              "p_max": p_max}
    write_json(out / "seed_distance.json", report)
    return report


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/musicgen_benchmark")), indent=1))
