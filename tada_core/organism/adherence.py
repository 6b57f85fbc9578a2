"""Concept adherence of a trained organism: ``python -m tada_core.organism.adherence``.

For each concept, the model generates from positive and negative prompts built from
TADA-style templates ("a fast {base}" / "a slow {base}") over every base description
and a few seeds; the shipped scorer (:mod:`.descriptors`) labels each clip. Accuracy is
the share of clips whose label matches the prompt's side. Instruments are a 4-way
choice ("{base} played on piano" ...), scored by the classifier (chance 25%).
Generation is batched per concept.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from . import synth
from .descriptors import DESCRIPTORS, Scorer, descriptors

# concept -> (positive template, negative template)
CONTRASTS: dict[str, tuple[str, str]] = {
    "tempo": ("a fast {base}", "a slow {base}"),
    "mood": ("a happy {base}", "a sad {base}"),
    "brightness": ("a bright {base}", "a dark {base}"),
    "drums": ("a {base} with drums", "a {base} without drums"),
    "vocal_gender": ("a {base} with female vocals", "a {base} with male vocals"),
}
INSTRUMENT_TEMPLATE = "a {base} played on {instrument}"


def _bases() -> list[str]:
    """Base nouns ("pop song", "waltz", "tune", ...); the templates add the article."""
    return [p.split(" ", 1)[1] for p in synth.base_phrases() if p != "music"]


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


def evaluate(model, scorer: Scorer, seeds: tuple[int, ...] = (1000, 1001), steps: int | None = None,
             guidance: float | None = None, batch: int = 32) -> dict:
    """Accuracy per concept, with the descriptor and the classifier; see the module docstring."""
    from tqdm.auto import tqdm

    def run(prompts: list[str], seed_list: list[int]) -> np.ndarray:
        chunks = []
        for i in range(0, len(prompts), batch):
            g = model.generate(prompts[i:i + batch], seeds=seed_list[i:i + batch], steps=steps, guidance=guidance)
            chunks.append(g.audio.numpy())
        return np.concatenate(chunks)

    bases = _bases()
    results, all_prompts = {}, []
    jobs = list(CONTRASTS) + ["instrument"]
    for concept in tqdm(jobs, desc="adherence"):
        if concept == "instrument":
            prompts = [INSTRUMENT_TEMPLATE.format(base=b, instrument=i) for i in synth.INSTRUMENTS for b in bases]
            truth = np.array([i for i in synth.INSTRUMENTS for _ in bases])
            seed_list = [seeds[j % len(seeds)] for j in range(len(prompts))]
            audio = run(prompts, seed_list)
            pred = scorer.predict(audio, model.sample_rate)["instrument"]
            results[concept] = {"n": len(prompts), "classifier": float((pred == truth).mean()), "descriptor": None}
        else:
            pos, neg = CONTRASTS[concept]
            prompts = [pos.format(base=b) for b in bases for _ in seeds] + [neg.format(base=b) for b in bases
                                                                           for _ in seeds]
            truth = np.array([1] * (len(prompts) // 2) + [0] * (len(prompts) // 2))
            seed_list = [s for _ in range(2) for _ in bases for s in seeds]
            audio = run(prompts, seed_list)
            d = descriptors(audio, model.sample_rate)
            by_desc = scorer.descriptor_labels(audio, model.sample_rate, d)[concept]
            by_clf = scorer.predict(audio, model.sample_rate, d)[concept]
            results[concept] = {"n": len(prompts), "descriptor": float((by_desc == truth).mean()),
                                "classifier": float((by_clf == truth).mean())}
        all_prompts += prompts
    return {"concepts": results, "prompts_seen_in_training": seen_in_training(sorted(set(all_prompts))),
            "seeds": list(seeds), "steps": model.defaults["steps"] if steps is None else steps,
            "guidance": model.defaults["guidance"] if guidance is None else guidance}


def table(report: dict) -> str:
    """The adherence table as Markdown."""
    lines = ["| concept | prompts (positive / negative) | clips | descriptor | classifier | best |",
             "|---|---|---|---|---|---|"]
    for concept, r in report["concepts"].items():
        if concept == "instrument":
            pair = f"`{INSTRUMENT_TEMPLATE}` (4-way, chance 0.25)"
        else:
            pair = " / ".join(f"`{t}`" for t in CONTRASTS[concept])
        desc = "-" if r["descriptor"] is None else f"{r['descriptor']:.2f} ({DESCRIPTORS[concept]})"
        best = max(v for v in (r["descriptor"], r["classifier"]) if v is not None)
        lines.append(f"| {concept} | {pair} | {r['n']} | {desc} | {r['classifier']:.2f} | "
                     f"{best:.2f}{' ✓' if best >= 0.8 else ' ✗'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import torch

    from ..adapters import ORGANISM, load_model
    from .model import checkpoint_path

    p = argparse.ArgumentParser(prog="python -m tada_core.organism.adherence", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=ORGANISM, help="organism name or pipeline folder")
    p.add_argument("--scorer", default=None, help="folder with scorer.json (default: the shipped checkpoint)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--guidance", type=float, default=None)
    p.add_argument("--out", default="results/organism_adherence", help="writes OUT.md and OUT.json")
    a = p.parse_args(argv)
    model = load_model(a.model, device="cpu", dtype=torch.float32)
    model.set_progress_bar(False)
    scorer = Scorer.load(a.scorer or (a.model if Path(a.model).is_dir() else checkpoint_path()))
    t0 = time.time()
    report = evaluate(model, scorer, steps=a.steps, guidance=a.guidance)
    report["seconds"] = round(time.time() - t0, 1)
    report["torch_threads"] = torch.get_num_threads()
    md = table(report)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(
        f"# Organism concept adherence\n\nMade by `python -m tada_core.organism.adherence` "
        f"({report['steps']} steps, guidance {report['guidance']}, seeds {report['seeds']}, "
        f"{report['seconds']} s on {report['torch_threads']} CPU threads). "
        f"{report['prompts_seen_in_training']:.0%} of these prompts occur verbatim in 100k draws of the "
        f"training caption grammar.\n\n{md}\n")
    print(md)


if __name__ == "__main__":
    main()
