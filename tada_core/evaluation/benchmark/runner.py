"""The steering benchmark of TADA Sec. 5.1 (Table 3): every method, both directions, on one concept.

For each benchmark item (a base prompt and a seed) and each method and direction, one batched
``generate`` call makes the unsteered clip (strength 0) and the clips at every strength of the
direction. Each clip gets the concept's measure (and, for specificity, every other concept's),
its distance to the strength-0 clip and its quality. The sweeps are then reduced with
:mod:`.protocol`:

* strengths: 15 per direction (``strengths``); PCI's are whole steps up to T; every other method's
  range is *calibrated* first, on fitting seeds (never the benchmark's): its nominal range times
  1/16 ... 4 is probed on four base prompts, and the range ends at the smallest probe whose mean
  distance reaches that of PCI's full prompt swap on the same probes, so every sweep crosses P_max
  with a similar resolution (``calibrate=False`` keeps the nominal ranges);
* alignment Delta a(alpha) = sign(alpha) (sim(alpha) - sim(0)), sim = the scorer's similarity
  to the positive side (so the negative direction measures the move toward the negative pole);
* P_max per direction = min(max distance of PCI on all layers, max distance of PCI on the
  functional layers) over their strength grids (|alpha| = T, the full prompt swap, included);
* AUC (pos, neg, avg), smoothness (pos, neg) on the mean curves truncated at P_max, with 95%
  bootstrap intervals over base prompts (P_max held fixed);
* average quality on the 15-point distance grid;
* each method's AUC avg minus CAA(F)'s, with a paired bootstrap interval (the same prompts resampled
  for both): the direct answer to "does this method beat localized CAA here";
* nAUC = AUC / (P_max x gap), gap = sim(positive prompt) - sim(negative prompt) from PCI's full
  swaps: 1 would mean "as much alignment as the prompt swap, at no distortion";
* leakage (specificity, beyond the paper): every other concept's mean |change| at the kept
  strengths, in units of that concept's own prompt gap (its measure on "a fast ..." minus on
  "a slow ..." prompts of the same bases and seeds), averaged over concepts: 0.5 means steering
  this concept moved another one half as far as asking for it in the prompt would.

The run is a :mod:`tada_core.runtime.jobs` job whose units are the calls, so the output folder is
resumable like ``tada localize``: ``spec.json`` (what is computed), ``clips.jsonl`` (one fsynced
record per finished call), and on completion ``result.json``, ``table.md`` / ``table.csv`` and
``curves.png``. Its stages are the phases (quality reference, calibration, prompt gaps, sweeps):
under ``accelerate launch`` (``processes``, :mod:`tada_core.runtime.distributed`) each stage's calls
are dealt across the processes, which meet after each stage; method setups that fit something run on
the main process first and are read from the folder by the others.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tada_core.concepts import Concept, ConceptSet
from tada_core.runtime.distributed import Processes
from tada_core.errors import TadaError
from tada_core.runtime.io import atomic_write_text, read_json, write_json
from tada_core.runtime.jobs import Job, Stage, run
from tada_core.adapters.settings import GenerationSettings
from tada_core.evaluation.scoring import Scorer
from tada_core.evaluation.benchmark import protocol
from tada_core.evaluation.benchmark.distance import Distance
from tada_core.evaluation.benchmark.methods import Context, Method, MethodUnavailable
from tada_core.evaluation.benchmark.residual import make_method_for
from tada_core.evaluation.benchmark.quality import Quality, logmel_stats
from tada_core.evaluation.plots import Panel, Series, line_panels
from tada_core.evaluation.stats import bootstrap_intervals

logger = logging.getLogger(__name__)

SPEC_FILE, CLIPS_FILE, RESULT_FILE = "spec.json", "clips.jsonl", "result.json"
REQUIRED = ("pci",)
CAL_FACTORS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1, 2, 4)   # probed multiples of a method's nominal range
CAL_TARGET = 1.0                                       # the range ends where the distance reaches the swap's
CAL_ITEMS = 4                                          # base prompts probed (at the first fitting seed)


@dataclasses.dataclass
class MethodResult:
    key: str
    label: str
    available: bool
    reason: str = ""
    layers: list[int] | None = None
    hyperparameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    grid: dict[str, list[float]] = dataclasses.field(default_factory=dict)     # strengths per direction
    kept: dict[str, int] = dataclasses.field(default_factory=dict)            # measured points within P_max
    auc: dict[str, float] = dataclasses.field(default_factory=dict)          # pos, neg, avg
    auc_ci: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    nauc: float = float("nan")
    smoothness: dict[str, float] = dataclasses.field(default_factory=dict)   # pos, neg
    smoothness_ci: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    quality: float = float("nan")
    leakage: float = float("nan")
    leakage_by_concept: dict[str, float] = dataclasses.field(default_factory=dict)
    curves: dict[str, dict[str, list[float]]] = dataclasses.field(default_factory=dict)  # truncated, per direction
    vs_reference: list[float] = dataclasses.field(default_factory=list)  # AUC avg - CAA(F)'s: [diff, lo, hi]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MethodResult":
        """One method of :meth:`BenchmarkResult.from_dict`."""
        d = _fields(cls, data, "method result")
        numbers = ("grid", "auc", "auc_ci", "nauc", "smoothness", "smoothness_ci", "quality", "leakage",
                   "leakage_by_concept", "curves", "vs_reference")
        d.update({k: _floats(d[k]) for k in numbers if k in d})
        if d.get("layers") is not None:
            d["layers"] = [int(x) for x in d["layers"]]
        if "kept" in d:
            d["kept"] = {k: int(v) for k, v in d["kept"].items()}
        return cls(**d)


@dataclasses.dataclass
class BenchmarkResult:
    concept: str
    model: str
    scorer: str
    measure_label: str
    distance: str
    quality: str
    n_items: int
    p_max: dict[str, float]
    gap: float
    functional: list[int]
    methods: list[MethodResult]
    other_gaps: dict[str, float] = dataclasses.field(default_factory=dict)  # |prompt gap| of each leakage concept
    compute_s: float = float("nan")   # seconds of generation and scoring, summed over the calls (resumes included)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (``result.json``): NaN is null, keys are strings."""
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BenchmarkResult":
        """The result :meth:`to_dict` gave (``from_dict(r.to_dict()) == r``); null numbers are NaN again, and a
        key that is not a field is refused by name."""
        d = _fields(cls, data, "benchmark result")
        d.update({k: _floats(d[k]) for k in ("p_max", "gap", "other_gaps", "compute_s") if k in d})
        d.update(n_items=int(d["n_items"]), functional=[int(x) for x in d["functional"]],
                 methods=[MethodResult.from_dict(m) for m in d["methods"]])
        return cls(**d)

    def __eq__(self, other: object) -> bool:
        """Equal when their JSON is (so a NaN, which JSON keeps as null, equals a NaN)."""
        if not isinstance(other, BenchmarkResult):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def control_verdict(self, key: str) -> str:
        """Whether method ``key``'s AUC avg interval clears its random-direction control's (the row
        ``random-KEY``): "yes" (its lower bound is above the control's upper bound), "below" (its upper bound is
        below the control's lower bound), "no" (the intervals overlap); "" when the run has no such control."""
        by_key = {m.key: m for m in self.methods if m.available}
        m, c = by_key.get(key), by_key.get(f"random-{key}")
        if m is None or c is None:
            return ""
        (lo, hi), (c_lo, c_hi) = m.auc_ci.get("avg", [math.nan] * 2), c.auc_ci.get("avg", [math.nan] * 2)
        if not all(x is not None and math.isfinite(x) for x in (lo, hi, c_lo, c_hi)):
            return ""
        return "yes" if lo > c_hi else "below" if hi < c_lo else "no"

    def table_rows(self) -> list[list[str]]:
        rows = []
        for m in self.methods:
            if not m.available:
                rows.append([self.concept, m.label, "-", "n/a", "", "", "", "", "", "", "", "", "", "", "", m.reason])
                continue
            lo, hi = m.auc_ci.get("avg", [float("nan")] * 2)
            vs = (f"{_f(m.vs_reference[0])} [{_f(m.vs_reference[1])}, {_f(m.vs_reference[2])}]"
                  if m.vs_reference and m.key != "caa" else "")
            rows.append([self.concept, m.label, ",".join(map(str, m.layers)) if m.layers is not None else "all",
                         _f(m.auc["pos"]), _f(m.auc["neg"]), f"{_f(m.auc['avg'])} [{_f(lo)}, {_f(hi)}]",
                         self.control_verdict(m.key), vs,
                         _f(m.nauc), _f(m.smoothness["pos"]), _f(m.smoothness["neg"]), _f(m.quality),
                         _f(m.leakage), f"{m.grid['pos'][-1]:.3g} / {m.grid['neg'][-1]:.3g}",
                         f"{m.kept['pos']} / {m.kept['neg']}", ""])
        return rows


HEADER = ["concept", "method", "layers", "AUC +", "AUC -", "AUC avg [95% CI]", "> control", "minus CAA(F) [95% CI]", "nAUC avg", "smooth +", "smooth -",
          "quality", "leakage", "range + / -", "kept + / -", "note"]


def _f(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3f}"


def _fields(cls, data: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``data`` as keyword arguments of dataclass ``cls``: a key that is not a field, or a missing field without
    a default, is refused by name."""
    fields = dataclasses.fields(cls)
    unknown = sorted(set(data) - {f.name for f in fields})
    missing = [f.name for f in fields if f.name not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if unknown or missing:
        raise TadaError(f"not a {what}: " + "; ".join(
            (([f"unknown keys {unknown}"] if unknown else []) + ([f"missing keys {missing}"] if missing else [])))
            + f" (the keys are {', '.join(f.name for f in fields)})")
    return dict(data)


def _floats(x: Any) -> Any:
    """JSON numbers as floats, null as NaN, through lists and dicts (the inverse of :func:`_jsonable` on numbers)."""
    if x is None:
        return math.nan
    if isinstance(x, dict):
        return {k: _floats(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_floats(v) for v in x]
    return float(x)


def _jsonable(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    return x


def markdown_table(results: Sequence[BenchmarkResult]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in results:
        lines += ["| " + " | ".join(row) + " |" for row in r.table_rows()]
    return "\n".join(lines)


def verdicts(result: BenchmarkResult) -> dict[str, list[str]]:
    """Each available method against CAA(F), by the paired 95% interval of its AUC avg minus CAA(F)'s:
    ``beats`` (the interval is above 0), ``loses`` (below 0), ``ties`` (it includes 0). Empty lists when
    CAA(F) did not run (no functional layer or no vector), since there is nothing to compare with."""
    out: dict[str, list[str]] = {"beats": [], "ties": [], "loses": []}
    if not any(m.key == "caa" and m.available for m in result.methods):
        return out
    for m in result.methods:
        if not m.available or m.key == "caa" or len(m.vs_reference) != 3:
            continue
        _, lo, hi = m.vs_reference
        if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
            continue
        out["beats" if lo > 0 else "loses" if hi < 0 else "ties"].append(m.label)
    return out


def verdicts_table(results: Sequence[BenchmarkResult]) -> str:
    """Markdown: per concept, which methods beat, tie with or lose to localized CAA (see :func:`verdicts`)."""
    lines = ["| concept | CAA(F) layers | beats CAA(F) | ties with CAA(F) | loses to CAA(F) |", "|---|---|---|---|---|"]
    for r in results:
        caa = next((m for m in r.methods if m.key == "caa"), None)
        if caa is None or not caa.available:
            why = caa.reason if caa is not None else "CAA(F) was not run"
            lines.append(f"| {r.concept} | - | no comparison: {why} | | |")
            continue
        v = verdicts(r)
        lines.append(f"| {r.concept} | {','.join(map(str, caa.layers or []))} | "
                     + " | ".join(", ".join(v[k]) or "-" for k in ("beats", "ties", "loses")) + " |")
    return "\n".join(lines)


def write_tables(results: Sequence[BenchmarkResult], out: str | Path, title: str = "") -> None:
    """``table.md``, ``table.csv`` and ``table.json`` in ``out`` (Table 3's layout, one block per concept)."""
    out = Path(out)
    rows = [row for r in results for row in r.table_rows()]
    with (out / "table.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)
    write_json(out / "table.json", [r.to_dict() for r in results])
    p = "; ".join(f"{r.concept}: + {_f(r.p_max['pos'])}, - {_f(r.p_max['neg'])}" for r in results)
    atomic_write_text(out / "table.md", (f"# {title}\n\n" if title else "") + markdown_table(results)
                      + f"\n\nP_max ({results[0].distance}): {p}\n\n"
                      + "Against localized CAA (paired 95% bootstrap interval of AUC avg minus CAA(F)'s: above 0 "
                        "beats, below 0 loses, including 0 ties):\n\n" + verdicts_table(results) + "\n"
                      + controls_table(results))


def controls_table(results: Sequence[BenchmarkResult]) -> str:
    """Markdown: per concept, each method that has a random-direction control in the run and whether its AUC avg
    interval clears the control's (:meth:`BenchmarkResult.control_verdict`); "" when no run has a control."""
    lines = []
    for r in results:
        for m in r.methods:
            verdict = r.control_verdict(m.key)
            if verdict:
                c = next(x for x in r.methods if x.key == f"random-{m.key}")
                lines.append(f"| {r.concept} | {m.label} | {_f(m.auc['avg'])} {_ci(m)} | {_f(c.auc['avg'])} {_ci(c)} "
                             f"| {verdict} |")
    if not lines:
        return ""
    return ("\nAgainst random directions of the same norm per layer (95% bootstrap intervals of AUC avg; yes: the "
            "method's interval lies above the control's, below: under it, no: they overlap):\n\n"
            "| concept | method | AUC avg [95% CI] | random control [95% CI] | clears the control |\n"
            "|---|---|---|---|---|\n" + "\n".join(lines) + "\n")


def _ci(m: MethodResult) -> str:
    lo, hi = m.auc_ci.get("avg", [math.nan] * 2)
    return f"[{_f(lo)}, {_f(hi)}]"


# --------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """What a benchmark run computes besides the model, the concept and the scorer (see the module docstring).

    ``concepts``: the model's concept set (its base prompts and neutral template); ``methods``: keys of
    :data:`~tada_core.evaluation.benchmark.methods.METHODS` (PCI always runs: P_max comes from it);
    ``functional``: the concept's functional layers ([]: the localized variants are n/a); ``seeds``:
    held-out seeds per base prompt, never among ``fit_seeds`` (the seeds methods fit directions on);
    ``bases``: base prompts (default the concept set's); ``strengths`` per direction; ``specificity``:
    other concepts measured on every clip for leakage; ``reference_seeds``: the unsteered clips a quality
    measure with a reference is fitted on; ``vectors``: folder template of the CAA / SAE vectors;
    ``sliders``: folder template of the trained Concept Sliders (kind ``slider`` on the functional layers,
    ``slider-all`` on all); ``settings``: generation settings (``batch_size``: clips per call); ``calibrate``: calibrate every
    method's range on fitting seeds (False: nominal ranges); ``vector_renorm``: CAA and SAE vectors steer
    with ReNorm (Eq. 3, the paper's benchmark setting) or without it (``h + alpha v``, as a vector with
    ``renorm: false`` was validated).
    """

    concepts: ConceptSet
    methods: Sequence[str]
    distance: Distance
    quality: Quality
    functional: Sequence[int]
    seeds: Sequence[int] = (300,)
    bases: Sequence[str] | None = None
    strengths: int = protocol.GRID_POINTS
    specificity: Sequence[Concept] = ()
    reference_seeds: Sequence[int] = tuple(range(10_000, 10_064))
    vectors: str = "vectors/{model}-{concept}-{kind}"
    fit_seeds: Sequence[int] = (0, 1, 2, 3)
    settings: GenerationSettings | None = None
    calibrate: bool = True
    vector_renorm: bool = True
    sliders: str = "sliders/{model}-{concept}-{kind}"

    def __post_init__(self) -> None:
        if isinstance(self.strengths, bool) or not isinstance(self.strengths, int) or self.strengths < 1:
            raise TadaError(f"strengths per direction must be an integer >= 1; got {self.strengths!r}")
        for name in ("seeds", "fit_seeds", "reference_seeds"):
            object.__setattr__(self, name, tuple(int(s) for s in getattr(self, name)))
        object.__setattr__(self, "methods", tuple(str(m) for m in self.methods))
        object.__setattr__(self, "functional", tuple(sorted(int(x) for x in self.functional)))
        object.__setattr__(self, "specificity", tuple(self.specificity))
        if self.bases is not None:
            object.__setattr__(self, "bases", tuple(self.bases))
        if not self.seeds:
            raise TadaError("seeds is empty; give at least one seed")
        overlap = sorted(set(self.seeds) & set(self.fit_seeds))
        if overlap:
            raise TadaError(f"benchmark seeds {overlap} are also fitting seeds; use held-out seeds")


@dataclasses.dataclass
class _Plan:
    """What the reduction needs besides the records: the methods that ran, their strengths, the calls' layout."""

    concept: Concept
    scorer: Scorer
    model: str
    distance: str                     # labels
    quality: str
    keys: list[str]                   # every requested method, in order
    functional: list[int]
    others: list[Concept]             # the leakage concepts
    n_chunks: int
    n_items: int
    ready: dict[str, Method] = dataclasses.field(default_factory=dict)
    reasons: dict[str, str] = dataclasses.field(default_factory=dict)       # why a method is unavailable
    grids: dict[tuple[str, int], list[float]] = dataclasses.field(default_factory=dict)
    labels: dict[str, str] = dataclasses.field(default_factory=dict)        # every requested method's label


def run_benchmark(adapter, concept: Concept, scorer: Scorer, config: BenchmarkConfig | None = None, *,
                  out: str | Path | None = None, progress: bool = True,
                  on_unit: Callable[[int, int], None] | None = None, processes: Processes | None = None,
                  **fields: Any) -> BenchmarkResult:
    """Run the benchmark for one concept (see the module docstring), a resumable :mod:`tada_core.runtime.jobs` job.

    ``config``: what is computed (:class:`BenchmarkConfig`); its fields may also be given one by one
    (``methods=[...]``), alone or to override ``config``'s. ``out``: the resumable folder.
    ``on_unit(done, total)``: called before the first call and after each one; an exception it raises
    stops the run (the calls in ``out`` are kept for a rerun). ``processes``: this process's share of a
    multi-process run (needs ``out``); every process returns the result, the main one writes the files.
    """
    config = _config(config, fields)
    keys = list(dict.fromkeys(list(REQUIRED) + list(config.methods)))
    # the adapter's method table (cross-attention or residual-stream); unknown keys fail before any work
    built = [make_method_for(adapter, k, vector_renorm=config.vector_renorm) for k in keys]
    scorer.check(concept)
    for c in config.specificity:
        scorer.check(c)
    settings = adapter.resolve_settings(config.settings)
    base_list = list(config.bases) if config.bases is not None else list(config.concepts.bases)
    if not base_list:
        raise TadaError("no base prompts to benchmark with")
    if concept.prompt_pairs:
        raise TadaError(f"concept {concept.name!r} is made of explicit prompt pairs; the benchmark needs templates")
    items = [(config.concepts.neutral.format(base=b), concept.positive.format(base=b),
              concept.negative.format(base=b)) for b in base_list]
    functional = list(config.functional)
    if functional:                      # [] is allowed: no functional layer (the localized variants are n/a)
        adapter.resolve_layers(functional)
    ctx = Context(adapter=adapter, concept=concept, items=items, functional=functional, settings=settings,
                  vectors=config.vectors, fit_seeds=config.fit_seeds, sliders=config.sliders,
                  cache=Path(out) if out is not None else None)
    others = [c for c in config.specificity if c.name != concept.name]
    measured = [concept] + others
    strengths, quality, distance = config.strengths, config.quality, config.distance
    pairs = [(b, s) for b in range(len(items)) for s in config.seeds]
    per_call = max(1, settings.batch_size // (strengths + 1))
    chunks = [pairs[k:k + per_call] for k in range(0, len(pairs), per_call)]
    ref_seeds = list(config.reference_seeds) if quality.needs_reference else []
    ref_items = [(k % len(items), s) for k, s in enumerate(ref_seeds)]
    ref_chunks = [ref_items[k:k + settings.batch_size] for k in range(0, len(ref_items), settings.batch_size)]
    probe = [(b, ctx.fit_seeds[0]) for b in range(min(CAL_ITEMS, len(items)))] if config.calibrate else []
    spec = {"model": adapter.name, "weights": adapter.weights_fingerprint(), **adapter.options(),
            "concept": concept.to_dict(), "methods": keys, "bases": base_list, "seeds": list(config.seeds),
            "strengths_per_direction": strengths, "functional": functional, "scorer": scorer.name,
            "distance": distance.name, "quality": quality.name, "specificity": [c.name for c in others],
            "reference_seeds": ref_seeds, "fit_seeds": list(ctx.fit_seeds), "vectors": config.vectors,
            "calibration": {"factors": list(CAL_FACTORS), "target": CAL_TARGET, "items": CAL_ITEMS}
            if config.calibrate else None, **settings.to_dict()}
    if not config.vector_renorm:        # recorded only when off, so folders made before the option still resume
        spec["vector_renorm"] = False
    if config.sliders != BenchmarkConfig.sliders:   # likewise recorded only when not the default
        spec["sliders"] = config.sliders
    plan = _Plan(concept=concept, scorer=scorer, model=adapter.name, distance=distance.label, quality=quality.label,
                 keys=keys, functional=functional, others=others, n_chunks=len(chunks), n_items=len(pairs),
                 labels={m.key: m.label for m in built})

    def stages() -> list[Stage]:
        """Set the methods up (directions, ranges; an unavailable one is reported with its reason), then the
        calls. Runs once the folder's spec is checked, main process first: what a method fits is cached in
        the folder, and the other processes read it from there."""
        for m in built:
            try:
                m.setup(ctx)
                plan.ready[m.key] = m
            except MethodUnavailable as e:
                plan.reasons[m.key] = str(e)
        if "pci" not in plan.ready:
            raise TadaError(f"P_max needs the PCI baseline, which cannot run: {plan.reasons.get('pci')}")
        for k, m in list(plan.ready.items()):      # a control sweeps its parent's strengths: the parent must run
            parent = getattr(m, "follows", None)
            if parent is not None and parent not in plan.ready:
                del plan.ready[k]
                plan.reasons[k] = (f"a control sweeps the strengths of {parent}, which is not in this run"
                                   + (f" ({plan.reasons[parent]})" if parent in plan.reasons else ""))
        calibrated = ["pci"] + [k for k, m in plan.ready.items() if m.grid_kind == "linear"
                                and getattr(m, "follows", None) is None] if config.calibrate else []
        return [Stage([("ref", 0, k) for k in range(len(ref_chunks))], reference),
                Stage([("cal", k, d) for k in calibrated for d in (1, -1)], calibration, before=fit_quality),
                Stage([("gap", c.name, k) for c in others for k in range(len(chunks))], prompt_gap,
                      before=set_grids),
                Stage([(k, d, c) for k in plan.ready for d in (1, -1) for c in range(len(chunks))], sweep)]

    def steered(method: Method, chunk, alphas: list[float]):
        b_idx = [b for b, _ in chunk for _ in alphas]
        with method.apply(ctx, b_idx, [a for _ in chunk for a in alphas]):
            audio = adapter.generate(method.prompts(ctx, b_idx), seeds=[s for _, s in chunk for _ in alphas],
                                     settings=settings).audio
        shaped = audio.reshape(len(chunk), len(alphas), *audio.shape[1:])
        return audio, distance(audio, shaped[:, :1].expand_as(shaped).reshape(audio.shape), adapter.sample_rate)

    # 1. the quality reference must exist before any steered clip is rated
    def reference(unit) -> dict:
        chunk = ref_chunks[unit[2]]
        started = time.perf_counter()
        audio = adapter.generate([items[b][0] for b, _ in chunk], seeds=[s for _, s in chunk],
                                 settings=settings).audio
        return {"unit": list(unit), "emb": logmel_stats(audio, adapter.sample_rate).tolist(),
                "seconds": _since(started)}

    def fit_quality(done) -> None:
        if ref_chunks:
            quality.fit_embeddings(np.concatenate([np.asarray(done[("ref", 0, k)]["emb"])
                                                   for k in range(len(ref_chunks))]))

    # 2. ranges: each method's largest strength is where its distance first reaches CAL_TARGET x the full
    #    prompt swap's, probed on fitting seeds (never the benchmark's)
    def calibration(unit) -> dict:
        _, key, d = unit
        method = plan.ready[key]
        started = time.perf_counter()
        probes = [0.0, d * method.grid(ctx, 1)[-1]] if key == "pci" else \
            [0.0] + [d * float(f"{method.max_strength * f:.6g}") for f in CAL_FACTORS]
        _, dist = steered(method, probe, probes)
        return {"unit": list(unit), "alphas": probes,
                "distance": dist.reshape(len(probe), len(probes)).mean(0).tolist(), "seconds": _since(started)}

    def set_grids(done) -> None:
        for key, method in sorted(plan.ready.items(), key=lambda km: getattr(km[1], "follows", None) is not None):
            for d in (1, -1):
                if getattr(method, "follows", None) is not None:
                    plan.grids[(key, d)] = list(plan.grids[(method.follows, d)])
                    continue
                top = None
                if config.calibrate and method.grid_kind == "linear":
                    swap = done[("cal", "pci", d)]["distance"][-1]
                    cal = done[("cal", key, d)]
                    reach = [abs(a) for a, x in zip(cal["alphas"][1:], cal["distance"][1:]) if x >= CAL_TARGET * swap]
                    top = min(reach) if reach else abs(cal["alphas"][-1])
                grid = method.grid(ctx, strengths, top)
                if not grid or not all(math.isfinite(a) and a > 0 for a in grid):
                    raise TadaError(f"method {key}: its strengths {grid} are not positive finite numbers; "
                                    f"check its range (max_strength {method.max_strength!r})")
                plan.grids[(key, d)] = [d * a for a in grid]
        # a folder whose sweeps used other strengths (a method's range changed) is refused before any new work
        for w, rec in done.items():
            if w[0] in plan.ready and rec.get("alphas") != [0.0] + plan.grids[(w[0], w[1])]:
                raise TadaError(f"{Path(out) if out is not None else 'this run'}: the strengths of {w[0]} in the "
                                f"folder differ from this run's (the method's range changed); use another output "
                                f"folder")

    # 3. the other concepts' own prompt gaps: their positive and negative prompts on the same items
    def prompt_gap(unit) -> dict:
        _, name, c = unit
        other = next(o for o in others if o.name == name)
        chunk = chunks[c]
        started = time.perf_counter()
        prompts = [t.format(base=base_list[b]) for t in (other.positive, other.negative) for b, _ in chunk]
        audio = adapter.generate(prompts, seeds=[s for _ in range(2) for _, s in chunk], settings=settings).audio
        m = np.asarray(scorer.measure(audio, adapter.sample_rate, other), dtype=float)
        return {"unit": list(unit), "pos": m[:len(chunk)].tolist(), "neg": m[len(chunk):].tolist(),
                "seconds": _since(started)}

    # 4. the sweeps
    def sweep(unit) -> dict:
        key, direction, c = unit
        started = time.perf_counter()
        alphas = [0.0] + plan.grids[(key, direction)]
        chunk = chunks[c]
        audio, dist = steered(plan.ready[key], chunk, alphas)
        sr = adapter.sample_rate
        qual = quality(audio, sr)
        meas = {cc.name: np.asarray(scorer.measure(audio, sr, cc), dtype=float).tolist() for cc in measured}
        return {"unit": list(unit), "alphas": alphas, "items": [list(x) for x in chunk], "distance": dist.tolist(),
                "quality": qual.tolist(), "measure": meas, "seconds": _since(started)}

    def write(folder: Path, result: BenchmarkResult, done) -> None:
        write_json(folder / RESULT_FILE, result.to_dict())
        write_tables([result], folder, title=f"Steering benchmark: {concept.name} on {adapter.name}")
        curves_png([result], folder / "curves.png")

    if out is not None and processes is not None and processes.distributed:
        processes.wait()
    if out is not None and (processes is None or processes.main):
        add_methods(Path(out) / SPEC_FILE, spec)
    if out is not None and processes is not None and processes.distributed:
        processes.wait()
    job = Job(name=f"benchmark {concept.name}", spec=spec, stages=stages, reduce=lambda done: _reduce(plan, done),
              write=write, unit="call", what="benchmark", spec_file=SPEC_FILE, journal_file=CLIPS_FILE)
    return run(job, out, processes=processes, progress=progress, on_unit=on_unit)


def add_methods(spec_path: Path, spec: Mapping[str, Any]) -> bool:
    """Let a finished or partial run folder take more methods: when its ``spec.json`` differs from ``spec`` only
    in ``methods`` and every method it holds is still asked for, the spec is rewritten with the longer list (the
    finished calls stay valid: a method's calls depend only on PCI's, its own and, for a control, its parent's
    strengths). Returns whether it was rewritten; any other difference is left for the folder to refuse."""
    if not spec_path.is_file():
        return False
    old = read_json(spec_path)
    new = json.loads(json.dumps(dict(spec)))
    if not isinstance(old, dict) or old == new:
        return False
    same = {k: v for k, v in old.items() if k != "methods"} == {k: v for k, v in new.items() if k != "methods"}
    before, after = list(old.get("methods") or []), list(new.get("methods") or [])
    if not same or not set(before) < set(after):
        return False
    logger.info("%s: adding methods %s to the run's %s", spec_path.parent,
                ", ".join(k for k in after if k not in before), ", ".join(before))
    write_json(spec_path, new)
    return True


def _config(config: BenchmarkConfig | None, fields: Mapping[str, Any]) -> BenchmarkConfig:
    """``config`` with ``fields`` replaced, or a config of ``fields`` alone; an unknown field is refused by name."""
    names = [f.name for f in dataclasses.fields(BenchmarkConfig)]
    unknown = sorted(set(fields) - set(names))
    if unknown:
        raise TypeError(f"run_benchmark: unknown settings {unknown}; a BenchmarkConfig has {', '.join(names)}")
    return dataclasses.replace(config, **fields) if config is not None else BenchmarkConfig(**fields)


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def _arrays(done, key: str, direction: int, n_chunks: int):
    """[items, alphas] arrays of one method and direction: measure of every concept, distance, quality."""
    recs = [done[(key, direction, c)] for c in range(n_chunks)]
    alphas = np.asarray(recs[0]["alphas"], dtype=float)
    k = len(alphas)
    dist = np.concatenate([np.asarray(r["distance"]).reshape(-1, k) for r in recs])
    qual = np.concatenate([np.asarray(r["quality"]).reshape(-1, k) for r in recs])
    meas = {name: np.concatenate([np.asarray(r["measure"][name]).reshape(-1, k) for r in recs])
            for name in recs[0]["measure"]}
    groups = np.array([b for r in recs for b, _ in r["items"]])
    return alphas, meas, dist, qual, groups


def _reduce(plan: _Plan, done: Mapping[tuple, dict]) -> BenchmarkResult:
    """The benchmark's numbers (module docstring) from the records of every call."""
    concept, ready, others, n_chunks = plan.concept, plan.ready, plan.others, plan.n_chunks
    sign = plan.scorer.sign(concept)
    data = {(k, d): _arrays(done, k, d, n_chunks) for k in ready for d in (1, -1)}

    def sim(meas):
        return sign * meas[concept.name]

    # P_max per direction, and the prompt gap from PCI's full swaps (|alpha| = T)
    p_max = {}
    for d, name in ((1, "pos"), (-1, "neg")):
        maxima = [data[(k, d)][2].mean(0).max() for k in ("pci", "pci-f") if k in ready]
        p_max[name] = protocol.p_max(maxima)
    a_pos, m_pos = data[("pci", 1)][0], data[("pci", 1)][1]
    a_neg, m_neg = data[("pci", -1)][0], data[("pci", -1)][1]
    gap = float(sim(m_pos)[:, np.argmax(np.abs(a_pos))].mean() - sim(m_neg)[:, np.argmax(np.abs(a_neg))].mean())
    # every other concept's prompt gap: its measure on its positive minus on its negative prompts, same items
    spread = {}
    for c in others:
        recs = [done[("gap", c.name, k)] for k in range(n_chunks)]
        spread[c.name] = abs(float(np.mean([x for r in recs for x in r["pos"]])
                                   - np.mean([x for r in recs for x in r["neg"]])))

    def sweeps(alphas, s, dist, qual, rows, d):
        delta = (d * (s[rows] - s[rows][:, :1])).mean(0)
        return protocol.ordered(alphas, delta, dist[rows].mean(0), qual[rows].mean(0))

    results = []
    for k in plan.keys:
        method = ready.get(k)
        label = method.label if method else plan.labels[k]
        if method is None:
            results.append(MethodResult(k, label, False, plan.reasons.get(k, "")))
            continue
        res = MethodResult(k, label, True, layers=method.layers, hyperparameters=method.hyperparameters(),
                           grid={"pos": list(plan.grids[(k, 1)]), "neg": list(plan.grids[(k, -1)])})
        full, whole = {}, {}
        for d, name in ((1, "pos"), (-1, "neg")):
            alphas, meas, dist, qual, groups = data[(k, d)]
            s = sim(meas)
            rows = np.arange(len(s))
            whole[name] = sweeps(alphas, s, dist, qual, rows, d)
            full[name] = protocol.truncate(whole[name], p_max[name])
            res.auc[name] = protocol.auc(full[name])
            res.kept[name] = int(sum(1 for j in range(1, len(alphas)) if dist[:, j].mean() <= p_max[name]))
            res.smoothness[name] = protocol.smoothness(full[name])
            res.curves[name] = {"alpha": full[name].alphas.tolist(), "delta": full[name].delta.tolist(),
                                "distance": full[name].distance.tolist()}

            def stat(idx, alphas=alphas, s=s, dist=dist, qual=qual, d=d, name=name):
                sw = protocol.truncate(sweeps(alphas, s, dist, qual, idx, d), p_max[name])
                return np.array([protocol.auc(sw), protocol.smoothness(sw)])

            iv = bootstrap_intervals(stat, groups, n_boot=400)
            res.auc_ci[name], res.smoothness_ci[name] = list(iv[0]), list(iv[1])
        res.auc["avg"] = (res.auc["pos"] + res.auc["neg"]) / 2
        res.auc_ci["avg"] = _avg_ci(data, k, sim, sweeps, p_max)
        res.nauc = res.auc["avg"] / (0.5 * (p_max["pos"] + p_max["neg"]) * gap) if gap > 0 else float("nan")
        res.quality = protocol.average_quality(whole["pos"], whole["neg"], p_max["pos"], p_max["neg"])
        # leakage: other concepts' change at the kept (measured) strengths, in units of their prompt gaps
        by_concept = {}
        for c in others:
            values = []
            for d, name in ((1, "pos"), (-1, "neg")):
                alphas, meas, dist, _, _ = data[(k, d)]
                kept = [j for j in range(1, len(alphas)) if dist[:, j].mean() <= p_max[name]]
                m = meas[c.name]
                values += [abs(float((m[:, j] - m[:, 0]).mean())) / spread[c.name] for j in kept
                           if spread[c.name] > 0]
            by_concept[c.name] = float(np.mean(values)) if values else float("nan")
        res.leakage_by_concept = by_concept
        finite = [v for v in by_concept.values() if math.isfinite(v)]
        res.leakage = float(np.mean(finite)) if finite else float("nan")
        results.append(res)
    reference = "caa" if "caa" in ready else None
    if reference is not None:
        for res in results:
            if res.available:
                res.vs_reference = _paired_difference(data, res.key, reference, sim, sweeps, p_max)
    seconds = [rec.get("seconds") for rec in done.values()]
    compute = float(sum(seconds)) if all(isinstance(x, (int, float)) for x in seconds) else float("nan")
    return BenchmarkResult(concept=concept.name, model=plan.model, scorer=plan.scorer.name,
                           measure_label=plan.scorer.label(concept), distance=plan.distance, quality=plan.quality,
                           n_items=plan.n_items, p_max=p_max, gap=gap, functional=list(plan.functional),
                           methods=results, other_gaps=spread, compute_s=compute)


def _avg_auc(data, k, sim, sweeps, p_max, idx) -> float:
    """(AUC+ + AUC-) / 2 of method ``k`` on the item rows ``idx`` (both directions with the same rows)."""
    (ap, mp, dp, qp, _), (an, mn, dn, qn, _) = data[(k, 1)], data[(k, -1)]
    pos = protocol.auc(protocol.truncate(sweeps(ap, sim(mp), dp, qp, idx, 1), p_max["pos"]))
    neg = protocol.auc(protocol.truncate(sweeps(an, sim(mn), dn, qn, idx, -1), p_max["neg"]))
    return (pos + neg) / 2


def _avg_ci(data, k, sim, sweeps, p_max) -> list[float]:
    """95% interval of (AUC+ + AUC-)/2, both directions resampled with the same prompts."""

    groups = data[(k, 1)][4]
    return list(bootstrap_intervals(lambda idx: np.array([_avg_auc(data, k, sim, sweeps, p_max, idx)]), groups,
                                    n_boot=400)[0])


def _paired_difference(data, k, ref, sim, sweeps, p_max) -> list[float]:
    """AUC avg of ``k`` minus that of ``ref``, and its 95% interval: the same prompts resampled for both."""

    groups = data[(k, 1)][4]
    rows = np.arange(len(groups))

    def diff(idx):
        return np.array([_avg_auc(data, k, sim, sweeps, p_max, idx) - _avg_auc(data, ref, sim, sweeps, p_max, idx)])

    lo, hi = bootstrap_intervals(diff, groups, n_boot=400)[0]
    return [float(diff(rows)[0]), float(lo), float(hi)]


def curves_png(results: Sequence[BenchmarkResult], path: str | Path) -> Path:
    """Alignment gain against preservation (p = P_max - d), one panel per concept and direction. A curve that
    holds ``delta_lo`` / ``delta_hi`` (one bound per point) is drawn with that band (``scripts/figures.py``
    adds the 95% bootstrap band over base prompts from ``clips.jsonl``)."""

    panels = []
    for r in results:
        for name, sign in (("pos", "+"), ("neg", "-")):
            series = [Series(m.label, [r.p_max[name] - x for x in m.curves[name]["distance"]], m.curves[name]["delta"],
                             m.curves[name].get("delta_lo"), m.curves[name].get("delta_hi"))
                      for m in r.methods if m.available]
            panels.append(Panel(f"{r.concept}, {sign} direction", series, y_label=f"Δa: {r.measure_label}"))
    distance = results[0].distance if results else "distance"
    return line_panels(panels, path, x_label=f"preservation p = P_max - d (d: {distance})", size=(520, 360),
                       band_label="95% interval over base prompts (shaded)")


__all__ = ["run_benchmark", "BenchmarkConfig", "BenchmarkResult", "MethodResult", "markdown_table", "verdicts",
           "write_tables", "controls_table", "add_methods", "curves_png"]
