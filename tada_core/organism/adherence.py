"""Concept adherence of a trained organism: ``tada organism adherence``.

For each concept, the model generates from positive and negative prompts built from
its concept set's templates ("a fast {base}" / "a slow {base}") over every base
description and a few seeds; the organism's scorer weights label each clip with the
concept's descriptor and with its classifier. Accuracy is the share of clips whose label
matches the prompt's side. Instruments are a 4-way choice ("a {base} played on piano"
...), scored by the classifier (chance 25%). Generation is batched per concept.
"""

from __future__ import annotations

import numpy as np

from ..settings import GenerationSettings
from . import synth
from .concepts import INSTRUMENT_TEMPLATE, ORGANISM_CONCEPT_SET
from .descriptors import DESCRIPTORS, DescriptorClassifier, descriptors

CONCEPTS = ("tempo", "mood", "brightness", "drums", "vocal_gender")  # two-sided; "instrument" is 4-way


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


def evaluate(model, weights: DescriptorClassifier, seeds: tuple[int, ...] = (1000, 1001),
             settings: GenerationSettings | None = None, progress: bool = True) -> dict:
    """Accuracy per concept, with the descriptor and the classifier; see the module docstring."""
    from tqdm.auto import tqdm

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
            prompts = [INSTRUMENT_TEMPLATE.format(base=b, instrument=i) for i in synth.INSTRUMENTS for b in bases]
            truth = np.array([i for i in synth.INSTRUMENTS for _ in bases])
            seed_list = [seeds[j % len(seeds)] for j in range(len(prompts))]
            audio = run(prompts, seed_list)
            pred = weights.predict(audio, model.sample_rate)["instrument"]
            results[concept] = {"n": len(prompts), "classifier": float((pred == truth).mean()), "descriptor": None}
        else:
            c = concepts.get(concept)
            prompts = [c.positive.format(base=b) for b in bases for _ in seeds] + \
                [c.negative.format(base=b) for b in bases for _ in seeds]
            truth = np.array([1] * (len(prompts) // 2) + [0] * (len(prompts) // 2))
            seed_list = [s for _ in range(2) for _ in bases for s in seeds]
            audio = run(prompts, seed_list)
            d = descriptors(audio, model.sample_rate)
            by_desc = weights.descriptor_labels(audio, model.sample_rate, d)[concept]
            by_clf = weights.predict(audio, model.sample_rate, d)[concept]
            results[concept] = {"n": len(prompts), "descriptor": float((by_desc == truth).mean()),
                                "classifier": float((by_clf == truth).mean())}
        all_prompts += prompts
    return {"concepts": results, "prompts_seen_in_training": seen_in_training(sorted(set(all_prompts))),
            "seeds": list(seeds), "steps": settings.steps, "guidance": settings.guidance}


def table(report: dict) -> str:
    """The adherence table as Markdown."""
    lines = ["| concept | prompts (positive / negative) | clips | descriptor | classifier | best |",
             "|---|---|---|---|---|---|"]
    for concept, r in report["concepts"].items():
        if concept == "instrument":
            pair = f"`{INSTRUMENT_TEMPLATE}` (4-way, chance 0.25)"
        else:
            c = ORGANISM_CONCEPT_SET.get(concept)
            pair = f"`{c.positive}` / `{c.negative}`"
        desc = "-" if r["descriptor"] is None else f"{r['descriptor']:.2f} ({DESCRIPTORS[concept]})"
        best = max(v for v in (r["descriptor"], r["classifier"]) if v is not None)
        lines.append(f"| {concept} | {pair} | {r['n']} | {desc} | {r['classifier']:.2f} | "
                     f"{best:.2f}{' ✓' if best >= 0.8 else ' ✗'} |")
    return "\n".join(lines)


__all__ = ["evaluate", "table", "seen_in_training", "CONCEPTS"]
