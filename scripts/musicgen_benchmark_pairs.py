"""Paired comparisons between the rows of the committed MusicGen benchmark, from its journals (no generation).

    python scripts/musicgen_benchmark_pairs.py [results/musicgen_benchmark]

For each concept: DiffMean One-to-All against All-to-All, and DiffMean One-to-All against the prompt swap and
the text-embedding difference: AUC avg of the first minus the second, with the paired 95% bootstrap interval
over base prompts (the same prompts resampled for both; the benchmark's protocol, P_max held fixed). Writes
pairs.md next to table.md and prints it.
"""

import sys
from pathlib import Path

from tada_core.evaluation.benchmark import controls
from tada_core.evaluation.benchmark.runner import BenchmarkResult
from tada_core.organism.concepts import ORGANISM_CONCEPT_SET
from tada_core.organism.scorer import OrganismScorer
from tada_core.runtime.io import read_json

PAIRS = (("diffmean", "diffmean-all"), ("diffmean", "pci"), ("diffmean", "text-emb"))


def main(out: Path) -> str:
    scorer = OrganismScorer()
    lines = ["| concept | method | minus | AUC avg | AUC avg | difference [paired 95% CI] | verdict |",
             "|---|---|---|---|---|---|---|"]
    for folder in sorted(p.parent for p in out.glob("*/result.json")):
        result = BenchmarkResult.from_dict(read_json(folder / "result.json"))
        concept = ORGANISM_CONCEPT_SET.get(result.concept)
        for first, second in PAIRS:
            row = next(r for r in controls.compare(folder, result, scorer, concept, control=second)
                       if r.method == first)
            d, lo, hi = row.difference
            verdict = "first above" if lo > 0 else "first below" if hi < 0 else "not distinguishable"
            other = next(m.label for m in result.methods if m.key == second)
            lines.append(f"| {result.concept} | {row.label} | {other} | {row.auc:.0f} | {row.control_auc:.0f} | "
                         f"{d:.0f} [{lo:.0f}, {hi:.0f}] | {verdict} |")
    text = ("# Paired comparisons (scripts/musicgen_benchmark_pairs.py)\n\n"
            "AUC avg of the method minus the other's, 95% paired bootstrap interval over base prompts.\n\n"
            + "\n".join(lines) + "\n")
    (out / "pairs.md").write_text(text, encoding="utf-8")
    return text


if __name__ == "__main__":
    print(main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/musicgen_benchmark")))
