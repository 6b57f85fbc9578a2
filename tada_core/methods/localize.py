"""Layer localization by activation patching (TADA Sec. 3-4, Fig. 2, Eq. 9).

For a concept c with counterfactual prompt pairs (P_c, P_c-tilde) and seeds, the sweep
generates, for every pair and seed:

* ``c``: P_c with no patch, the upper reference sim(l <- c, l' <- c);
* ``c~``: P_c-tilde with no patch, the lower reference sim(l <- c~, l' <- c~);
* ``patch:l`` for every layer l: P_c-tilde with layer l's keys and values taken from
  P_c (:func:`tada_core.interventions.hooks.patch`), i.e. sim(l <- c, l' <- c~).

A scorer (:mod:`tada_core.evaluation.scoring`) gives each clip its similarity to the concept, and
Eq. 9 turns the means into the impact I(l, c) of each layer.

Patched generations run batched: one call per (condition, batch of pairs x seeds).
The cached "target run" of Fig. 2a is a single denoiser pass, because cross-attention
keys and values depend only on the prompt. The sweep is a :mod:`tada_core.runtime.jobs`
job whose units are these calls: with ``out``, every finished batch is appended to
``scores.jsonl`` and fsynced; rerunning the same sweep skips what is done, so an
interrupted sweep loses at most the batch in flight, and since the batches are fixed, a
resumed sweep gives exactly the numbers of an uninterrupted one. Under ``accelerate
launch`` (``processes``, :mod:`tada_core.runtime.distributed`) the batches still to do are dealt
across the processes and the folder ends as a single-process run leaves it.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from tada_core.concepts import Concept
from tada_core.runtime.distributed import Processes
from tada_core.errors import TadaError, check_prompts
from tada_core.interventions.hooks import patch
from tada_core.runtime.io import read_json, write_json
from tada_core.runtime.jobs import Job, Stage, run
from tada_core.adapters.settings import GenerationSettings
from tada_core.evaluation.stats import bootstrap_intervals
from tada_core.evaluation.plots import heatmap_png

SWEEP_FILE, SCORES_FILE, RESULT_FILE = "sweep.json", "scores.jsonl", "impact.json"


def impact(sim_patched: float | np.ndarray, sim_pos: float, sim_neg: float, *,
           clip: bool = False) -> float | np.ndarray:
    """Eq. 9 of the TADA paper: I(l, c) = (sim(l<-c, l'<-c~) - sim(c~)) / (sim(c) - sim(c~)).

    ``sim_patched``: mean similarity of the patched generations (one value or one per
    layer); ``sim_pos`` / ``sim_neg``: means of the unpatched P_c / P_c-tilde generations.
    The denominator is the similarity gain of the full prompt change, so I is 0 when
    patching the layer does nothing and 1 when it does as much as the prompt. By default
    values are not clipped (noise can put them slightly outside [0, 1], and averaging
    clipped values across concepts biases noisy layers upward); ``clip=True`` clips to
    [0, 1] as the reference code's published impact values are. If the prompt change does not
    raise the similarity (denominator <= 0) the model does not show the concept and I is
    undefined: NaN.
    """
    denom = sim_pos - sim_neg
    if not math.isfinite(denom) or denom <= 1e-12:
        return np.full_like(np.asarray(sim_patched, dtype=float), np.nan) if np.ndim(sim_patched) else float("nan")
    out = (np.asarray(sim_patched, dtype=float) - sim_neg) / denom
    if clip:
        out = np.clip(out, 0.0, 1.0)
    return out if np.ndim(sim_patched) else float(out)


@dataclasses.dataclass
class Localization:
    """The outcome of a sweep for one concept: Eq. 9 per layer, and the similarities behind it."""

    concept: str
    model: str
    scorer: str
    layers: list[int]
    n: int  # generations per condition (pairs x seeds)
    sim_pos: float
    sim_neg: float
    sim_patched: dict[int, float]
    impact: dict[int, float]
    gain_se: float = float("nan")  # standard error of the paired gain sim(c) - sim(c~)
    impact_ci: dict[int, tuple[float, float]] = dataclasses.field(default_factory=dict)  # 95%, bootstrap over pairs

    @property
    def reliable(self) -> bool:
        """Whether the prompt change itself raises the similarity clearly: gain > 2 standard errors.

        When it does not, Eq. 9 divides noise by noise (the scorer cannot see the concept in
        this model's output, or the model ignores the words) and no layer is called functional.
        """
        gain = self.sim_pos - self.sim_neg
        return bool(gain > 0 and (not math.isfinite(self.gain_se) or gain > 2 * self.gain_se))

    def functional_layers(self, min_impact: float = 0.3) -> list[int]:
        """:func:`functional_layers` of the impacts; [] if the sweep is not :attr:`reliable`."""
        return functional_layers(self.impact, min_impact) if self.reliable else []

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["sim_patched"] = {str(k): v for k, v in self.sim_patched.items()}
        d["impact"] = {str(k): (None if not math.isfinite(v) else v) for k, v in self.impact.items()}
        d["impact_ci"] = {str(k): [None if not math.isfinite(x) else x for x in v] for k, v in self.impact_ci.items()}
        d["gain_se"] = None if not math.isfinite(self.gain_se) else self.gain_se
        d["reliable"] = self.reliable
        d["functional_layers"] = self.functional_layers()
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "Localization":
        fields = {k: d[k] for k in ("concept", "model", "scorer", "layers", "n", "sim_pos", "sim_neg")}
        se = d.get("gain_se")

        def num(v):
            return float("nan") if v is None else float(v)

        return cls(**fields, sim_patched={int(k): float(v) for k, v in d["sim_patched"].items()},
                   impact={int(k): num(v) for k, v in d["impact"].items()}, gain_se=num(se),
                   impact_ci={int(k): (num(v[0]), num(v[1])) for k, v in d.get("impact_ci", {}).items()})


def functional_layers(impacts: Mapping[int, float], min_impact: float = 0.3, floor: float = 0.1) -> list[int]:
    """Layers whose impact reaches ``min_impact``; else the strongest one if it reaches ``floor``; else [].

    [] means no single layer carries the concept (patching any one layer barely moves it),
    and steering should use all layers. NaN impacts are skipped.
    """
    finite = {k: v for k, v in impacts.items() if math.isfinite(v)}
    chosen = sorted(k for k, v in finite.items() if v >= min_impact)
    if chosen or not finite:
        return chosen
    best = max(finite, key=finite.get)
    return [best] if finite[best] >= floor else []


# --------------------------------------------------------------------------------------
# the sweep
# --------------------------------------------------------------------------------------
def _conditions(layers: Sequence[int]) -> list[str]:
    return ["c", "c~"] + [f"patch:{layer}" for layer in layers]


def localize(adapter, concept: Concept, pairs: Sequence[tuple[str, str]], scorer, *,
             seeds: Sequence[int] = (0,), layers: Sequence[int] | None = None,
             settings: GenerationSettings | None = None, out: str | Path | None = None, progress: bool = True,
             on_batch: Callable[[int, int], None] | None = None,
             processes: Processes | None = None) -> Localization:
    """Run the patching sweep for one concept and compute Eq. 9 per layer (see module docstring).

    ``pairs``: (P_c, P_c-tilde) prompt pairs, e.g. from :meth:`Concept.pairs` or
    :meth:`Concept.contrastive_prompts`; ``seeds``: every pair runs with each seed;
    ``settings``: generation settings (``batch_size``: generations per pipeline call);
    ``out``: folder for the resumable record.
    ``on_batch(done, total)``: called before the first batch and after each one; an
    exception it raises stops the sweep (batches already in ``out`` are kept for a rerun).
    ``processes``: this process's share of a multi-process run (:func:`tada_core.runtime.distributed.launched`;
    needs ``out``); every process returns the same result, the main one writes the files.
    """
    pairs = [(str(a), str(b)) for a, b in pairs]
    if not pairs:
        raise TadaError(f"concept {concept.name!r}: no prompt pairs to localize with; give captions that contain "
                        f"its keywords ({', '.join(concept.keywords) or 'none set'}) or a concept with prompts")
    check_prompts([p for pair in pairs for p in pair], f"concept {concept.name!r} pairs")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise TadaError("seeds is empty; give at least one seed")
    scorer.check(concept)
    layer_ids = list(adapter.resolve_layers(layers))
    settings = adapter.resolve_settings(settings)
    batch_size = settings.batch_size
    items = [(i, s) for i in range(len(pairs)) for s in seeds]
    batches = [items[k:k + batch_size] for k in range(0, len(items), batch_size)]
    # no local paths in the spec: a sweep folder must resume on another machine or checkout
    spec = {"model": adapter.name, "weights": adapter.weights_fingerprint(), **adapter.options(),
            "concept": concept.name, "pairs": pairs, "seeds": seeds, "layers": layer_ids, "batch_size": batch_size,
            "scorer": scorer.name, **settings.to_dict()}

    def do(unit: tuple[str, int]) -> dict:
        cond, b = unit
        batch = batches[b]
        pos = [pairs[i][0] for i, _ in batch]
        neg = [pairs[i][1] for i, _ in batch]
        bseeds = [s for _, s in batch]
        gen = dict(seeds=bseeds, settings=settings)
        if cond == "c":
            audio = adapter.generate(pos, **gen).audio
        elif cond == "c~":
            audio = adapter.generate(neg, **gen).audio
        else:
            with patch(adapter, [int(cond.split(":")[1])], prompts=pos):
                audio = adapter.generate(neg, **gen).audio
        sim = [float(x) for x in np.asarray(scorer.similarity(audio, adapter.sample_rate, concept))]
        return {"condition": cond, "batch": b, "pair": [i for i, _ in batch], "seed": bseeds, "sim": sim}

    def reduce(done: Mapping[tuple[str, int], dict]) -> Localization:
        def values(cond: str) -> np.ndarray:
            return np.array([float(x) for b in range(len(batches)) for x in done[(cond, b)]["sim"]])

        pos_v, neg_v = values("c"), values("c~")
        sim_pos, sim_neg = float(pos_v.mean()), float(neg_v.mean())
        gain = pos_v - neg_v  # paired: same pair, same seed
        gain_se = float(gain.std(ddof=1) / math.sqrt(len(gain))) if len(gain) > 1 else float("nan")
        patched = {layer: float(values(f"patch:{layer}").mean()) for layer in layer_ids}
        patched_v = np.stack([values(f"patch:{layer}") for layer in layer_ids])
        impacts = impact(np.array([patched[layer] for layer in layer_ids]), sim_pos, sim_neg)

        def resampled(rows: np.ndarray) -> np.ndarray:   # Eq. 9 on a bootstrap draw of the pairs (paired conditions)
            return impact(patched_v[:, rows].mean(1), float(pos_v[rows].mean()), float(neg_v[rows].mean()))

        intervals = bootstrap_intervals(resampled, [i for i, _ in items])
        return Localization(concept=concept.name, model=adapter.name, scorer=scorer.name, layers=layer_ids,
                            n=len(items), sim_pos=sim_pos, sim_neg=sim_neg, sim_patched=patched,
                            impact={layer: float(v) for layer, v in zip(layer_ids, impacts)}, gain_se=gain_se,
                            impact_ci={layer: (float(lo), float(hi)) for layer, (lo, hi) in zip(layer_ids, intervals)})

    work = [(cond, b) for cond in _conditions(layer_ids) for b in range(len(batches))]
    job = Job(name=f"localize {concept.name}", spec=spec, stages=[Stage(work, do)], reduce=reduce, key=_batch_of,
              write=lambda folder, result, done: _write_outputs(folder, result, batches, done, pairs), unit="batch",
              what="sweep", spec_file=SWEEP_FILE, journal_file=SCORES_FILE)
    return run(job, out, processes=processes, progress=progress, on_unit=on_batch)


def _batch_of(record: Mapping) -> tuple[str, int]:
    """The (condition, batch) a journal record is of (its ``sim`` must be a list of numbers)."""
    for x in record["sim"]:
        float(x)
    return record["condition"], int(record["batch"])


def _write_outputs(folder: Path, result: Localization, batches, done, pairs) -> None:
    write_json(folder / RESULT_FILE, result.to_dict())
    with (folder / "scores.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["condition", "patched_layer", "pair", "seed", "prompt_c", "prompt_c_tilde", "sim"])
        for cond in _conditions(result.layers):
            layer = cond.split(":")[1] if cond.startswith("patch:") else ""
            for b, batch in enumerate(batches):
                for (i, s), sim in zip(batch, done[(cond, b)]["sim"]):
                    w.writerow([cond, layer, i, s, pairs[i][0], pairs[i][1], f"{float(sim):.6g}"])


def read_localization(folder: str | Path) -> Localization:
    """Load ``impact.json`` from a finished sweep folder (``tada localize --out DIR`` writes one per concept,
    ``DIR/CONCEPT``)."""
    folder = Path(folder)
    path = folder / RESULT_FILE
    if not path.is_file():
        raise TadaError(f"no {RESULT_FILE} in {str(folder)!r}; make it with `tada localize --concept {folder.name} "
                        f"--out {folder.parent}`")
    return Localization.from_dict(read_json(path))


def write_summary(results: Iterable[Localization], out: str | Path, title: str = "", *,
                  clip: bool = False) -> dict[str, Path]:
    """Layers x concepts table (``impact.csv``, ``summary.json``) and heatmap (``heatmap.png``) like Fig. 3.

    ``clip``: show Eq. 9 clipped to [0, 1] in the table and the heatmap (as the reference
    code publishes it); default: the raw values. The title says which; ``summary.json``
    always holds the raw values.
    """

    results = list(results)
    if not results:
        raise TadaError("no localization results to summarize")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    layers = sorted({layer for r in results for layer in r.layers})
    matrix = np.array([[r.impact.get(layer, float("nan")) for layer in layers] for r in results])
    if clip:
        matrix = np.clip(matrix, 0.0, 1.0)   # NaN stays NaN
    with (out / "impact.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["concept"] + [f"layer_{layer}" for layer in layers] + ["functional_layers", "reliable"])
        for r, row in zip(results, matrix):
            w.writerow([r.concept] + [("" if not math.isfinite(v) else f"{v:.4f}") for v in row]
                       + [" ".join(map(str, r.functional_layers())), str(r.reliable).lower()])
    write_json(out / "summary.json", [r.to_dict() for r in results])
    labels = [r.concept if r.reliable else f"{r.concept} (n.s.)" for r in results]
    png = heatmap_png(matrix, labels, [str(layer) for layer in layers], out / "heatmap.png",
                      title=(title or f"I(l, c), Eq. 9: {results[0].model}, scorer {results[0].scorer}")
                      + (" (clipped to [0, 1])" if clip else " (not clipped)"))
    return {"csv": out / "impact.csv", "json": out / "summary.json", "png": png}


__all__ = ["impact", "localize", "Localization", "functional_layers", "read_localization", "write_summary"]
