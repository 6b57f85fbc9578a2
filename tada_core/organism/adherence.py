"""Concept adherence of a trained organism: ``tada organism adherence``.

For each concept, the model generates from positive and negative prompts built from its
concept set's templates ("a fast {base}" / "a slow {base}") over every base description,
each with several held-out seeds (seeds no vector, threshold or classifier was fitted on),
and the organism's scorer labels each clip with third-party measures (librosa's beat
tracker, a Krumhansl-Kessler key estimate on librosa's chroma, librosa's HPSS and centroid,
pYIN). Accuracy is the share of clips whose label matches the prompt's side, with a 95%
bootstrap interval over base prompts. Instruments are a 4-way choice ("a {base} played on
piano" ...), labelled by the timbre classifier (chance 25%).
"""

from __future__ import annotations
from tqdm.auto import tqdm

import numpy as np

from tada_core.adapters.settings import GenerationSettings
from tada_core.evaluation.stats import bootstrap_ci
from tada_core.organism import synth
from tada_core.organism.concepts import INSTRUMENT_TEMPLATE, ORGANISM_CONCEPT_SET
from tada_core.organism.scorer import MEASURES, OrganismScorer

CONCEPTS = ("tempo", "mood", "brightness", "drums", "vocal_gender")   # two-sided; "instrument" is 4-way
BARS = {"tempo": 0.9, "mood": 0.9, "brightness": 0.95, "drums": 0.95, "vocal_gender": 0.95, "instrument": 0.8}
SEEDS = (2000, 2001, 2002, 2003)


def seen_in_training(prompts: list[str], n: int = 100_000, seed: int = 12345) -> float:
    """Share of ``prompts`` that the training caption grammar produced verbatim in ``n`` draws."""
    rng = np.random.default_rng(seed)
    wanted = set(prompts)
    seen = set()
    for _ in range(n):
        c = synth.caption(synth.random_attributes(rng), rng)
        if c in wanted:
            seen.add(c)
    return len(seen) / max(1, len(wanted))


def evaluate(model, scorer: OrganismScorer, seeds: tuple[int, ...] = SEEDS,
             settings: GenerationSettings | None = None, progress: bool = True) -> dict:
    """Accuracy per concept with its 95% interval; see the module docstring."""

    settings = model.resolve_settings(settings or GenerationSettings(batch_size=32))
    concepts = ORGANISM_CONCEPT_SET

    def run(prompts: list[str], seed_list: list[int]) -> np.ndarray:
        chunks = []
        for i in range(0, len(prompts), settings.batch_size):
            g = model.generate(prompts[i:i + settings.batch_size], seeds=seed_list[i:i + settings.batch_size],
                               settings=settings)
            chunks.append(g.audio.numpy())
        return np.concatenate(chunks)

    bases = concepts.bases
    results, all_prompts = {}, []
    for concept in tqdm(CONCEPTS + ("instrument",), desc="adherence", disable=not progress):
        if concept == "instrument":
            jobs = [(INSTRUMENT_TEMPLATE.format(base=b, instrument=i), i, b, s)
                    for i in synth.INSTRUMENTS for b in bases for s in seeds[:2]]
        else:
            c = concepts.get(concept)
            jobs = [(c.positive.format(base=b), 1, b, s) for b in bases for s in seeds] + \
                [(c.negative.format(base=b), 0, b, s) for b in bases for s in seeds]
        prompts = [j[0] for j in jobs]
        audio = run(prompts, [j[3] for j in jobs])
        pred = scorer.decide(audio, model.sample_rate, concept)
        hits = np.array([p == j[1] for p, j in zip(pred, jobs)], dtype=np.float64)
        lo, hi = bootstrap_ci(hits, groups=[j[2] for j in jobs])
        results[concept] = {"n": len(jobs), "accuracy": float(hits.mean()), "ci": [lo, hi], "bar": BARS[concept]}
        all_prompts += prompts
    return {"concepts": results, "prompts_seen_in_training": seen_in_training(sorted(set(all_prompts))),
            "seeds": list(seeds), "steps": settings.steps, "guidance": settings.guidance}


def table(report: dict) -> str:
    """The adherence table as Markdown."""
    lines = ["| concept | prompts (positive / negative) | clips | measured by | accuracy | 95% interval | bar | |",
             "|---|---|---|---|---|---|---|---|"]
    for concept, r in report["concepts"].items():
        if concept == "instrument":
            pair = f"`{INSTRUMENT_TEMPLATE}` (4-way, chance 0.25)"
            measure = "timbre classifier (librosa features)"
        else:
            c = ORGANISM_CONCEPT_SET.get(concept)
            pair, measure = f"`{c.positive}` / `{c.negative}`", MEASURES[concept][1]
        verdict = "✓" if r["ci"][0] >= r["bar"] else ("✓ (interval reaches below)" if r["accuracy"] >= r["bar"]
                                                        else "✗")
        lines.append(f"| {concept} | {pair} | {r['n']} | {measure} | {r['accuracy']:.3f} | "
                     f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | {r['bar']} | {verdict} |")
    return "\n".join(lines)


__all__ = ["evaluate", "table", "seen_in_training", "CONCEPTS", "BARS", "SEEDS"]
