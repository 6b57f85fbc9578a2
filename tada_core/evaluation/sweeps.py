"""Steering evaluation (TADA Sec. 5.1-5.2): alpha sweeps, the layer-set ablation of Table 2, smoothness.

* :func:`alpha_sweep`: for each prompt and seed, generate every alpha in one batched call
  (per-sample alphas of :func:`tada_core.interventions.hooks.steer`; alpha 0 is the unsteered clip) and
  measure: the scorer's value for the concept (e.g. BPM), the sign-corrected
  alignment delta Delta a(alpha) = sign(alpha) (a(alpha) - a(0)) of Sec. 5.1, and
  preservation as the distance to the unsteered clip. Returns a :class:`SweepResult`.
* :func:`layer_ablation`: Table 2: the same sweep steering all layers (L), all but the
  functional ones (L \\ F) and only the functional ones (F). Returns an :class:`AblationResult`.
* :func:`smoothness`: Sec. 5.1's S = std of consecutive gaps of the normalized delta.

Results render themselves (``to_markdown``) and round-trip through JSON (``to_dict`` /
``from_dict``), so the CLI and the scripts that combine results share one format.

Preservation: the distance of the steered clip to its alpha-0 clip, measured exactly as the
benchmark measures it (:mod:`tada_core.evaluation.benchmark.distance`: the multi-resolution log-mel
distance by default, LPAPS from a checkpoint you provide), so that a sweep and a benchmark give one
answer to one question. The paper uses LPAPS, whose weights cannot be downloaded here; the log-mel
numbers are not comparable with the paper's LPAPS values. Results record which distance they used
(``distance``); sweeps saved before this had a single-resolution STFT distance (``stft``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from tada_core.concepts import Concept
from tada_core.errors import TadaError, check_finite, check_prompts
from tada_core.evaluation.scoring import Scorer
from tada_core.adapters.settings import GenerationSettings
from tada_core.evaluation.benchmark.distance import Distance, make_distance
from tada_core.evaluation.stats import bootstrap_ci
from tada_core.evaluation.benchmark import protocol
from tada_core.evaluation.metrics import frechet_audio_distance


def smoothness(alphas: Sequence[float], delta: Sequence[float]) -> float:
    """Sec. 5.1 smoothness S (lower is smoother) of one steering direction, untruncated.

    ``delta``: sign-corrected alignment deltas at ``alphas`` (any order); the points are taken in
    |alpha| order with alpha 0 (delta 0) first, and S is :func:`tada_core.evaluation.benchmark.protocol.smoothness`.
    NaN when no delta is positive.
    """
    return protocol.smoothness(protocol.ordered(alphas, delta, np.zeros(len(delta))))


def monotonic(values: Sequence[float], sign: int = 1, tolerance: float = 0.02) -> bool:
    """True if ``sign * values`` (in alpha order) never falls and rises somewhere.

    A step back smaller than ``tolerance`` times the range of the values is allowed, so that
    a saturated measure (a probability at 0.002 vs 0.003) does not count as a reversal.
    """
    v = [sign * float(x) for x in values]
    slack = tolerance * (max(v) - min(v))
    return max(v) > min(v) and all(y >= x - slack for x, y in zip(v, v[1:]))


def _num(x: float) -> str:
    """Table number: no exponent notation, 3 decimals below 100 (probabilities, rates, dB)."""
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3f}"


def intervals_ordered(intervals: Sequence[tuple[float, float]], sign: int = 1) -> bool:
    """True if each interval lies wholly beyond the previous one in the direction ``sign`` (no overlap)."""
    iv = [(sign * lo, sign * hi) if sign > 0 else (sign * hi, sign * lo) for lo, hi in intervals]
    return all(all(map(math.isfinite, (a[1], b[0]))) and b[0] > a[1] for a, b in zip(iv, iv[1:]))


@dataclasses.dataclass
class SweepResult:
    """Means over prompts x seeds at each alpha (keys are alphas, ascending), with 95% bootstrap intervals
    over prompts. ``sign``: the scorer's sign for the concept (+1 when a larger measure means more of it)."""

    concept: str
    measure_label: str
    layers: list[int]
    alphas: list[float]
    n: int
    measure: dict[float, float]
    measure_sd: dict[float, float]
    delta_alignment: dict[float, float]
    preservation: dict[float, float]
    sign: int = 1
    measure_ci: dict[float, tuple[float, float]] = dataclasses.field(default_factory=dict)
    distance: str = "mel"   # the preservation distance (its ``Distance.name``)

    @property
    def monotonic(self) -> bool:
        """The verdict: the 95% intervals of adjacent alphas are ordered in the concept's direction (they do not
        overlap), over the whole range, both signs. Without intervals: :attr:`monotonic_means`."""
        if not self.measure_ci:
            return self.monotonic_means
        return intervals_ordered([self.measure_ci[a] for a in self.alphas], self.sign)

    @property
    def monotonic_means(self) -> bool:
        """The weaker reading: the means alone never step back (beyond 2% of their range)."""
        return monotonic([self.measure[a] for a in self.alphas], self.sign)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("sign", "measure_ci")}
        for key in ("measure", "measure_sd", "delta_alignment", "preservation"):
            d[key] = {f"{a:g}": v for a, v in getattr(self, key).items()}
        d["monotonic"] = self.monotonic
        d["sign"] = self.sign
        if self.measure_ci:
            d["measure_ci"] = {f"{a:g}": list(v) for a, v in self.measure_ci.items()}
            d["monotonic_means"] = self.monotonic_means
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SweepResult":
        def by_alpha(key: str) -> dict[float, float]:
            return {float(a): float(v) for a, v in d[key].items()}

        try:
            return cls(concept=d["concept"], measure_label=d["measure_label"], layers=list(d["layers"]),
                       alphas=[float(a) for a in d["alphas"]], n=int(d["n"]), measure=by_alpha("measure"),
                       measure_sd=by_alpha("measure_sd"), delta_alignment=by_alpha("delta_alignment"),
                       preservation=by_alpha("preservation"), sign=int(d.get("sign", 1)),
                       measure_ci={float(a): (float(v[0]), float(v[1])) for a, v in d.get("measure_ci", {}).items()},
                       distance=str(d.get("distance", "stft")))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise TadaError(f"not a sweep result ({type(e).__name__}: {e})") from None

    def verdict(self) -> str:
        if self.monotonic and self.measure_ci:
            return "yes"
        if self.monotonic_means:
            return "means only" if self.measure_ci else "yes"
        return "no"

    def cell(self, a: float) -> str:
        if a in self.measure_ci:
            lo, hi = self.measure_ci[a]
            return f"{_num(self.measure[a])} [{_num(lo)}, {_num(hi)}]"
        return _num(self.measure[a])

    def row(self) -> str:
        """This sweep as a row of :func:`sweep_table`."""
        return (f"| {self.concept} | {self.measure_label} | {','.join(map(str, self.layers))} | "
                + ", ".join(f"{a:g}" for a in self.alphas) + " | "
                + " | ".join(self.cell(a) for a in self.alphas) + f" | {self.verdict()} |")


def sweep_table(results: Sequence[SweepResult], alpha_headers: bool = False) -> str:
    """The ``tada sweep`` table: the measure at each alpha and whether it is monotonic.

    Columns are named by alpha (``alpha_headers``, for one alpha list given to all) or by
    position in each vector's range (-max, -max/2, 0, +max/2, +max).
    """
    if not results:
        raise TadaError("no sweep results to tabulate")
    n = len(results[0].alphas)
    if any(len(r.alphas) != n for r in results):
        raise TadaError("vectors were swept over different numbers of alphas; give --alphas to use one list")
    heads = [f"alpha {a:g}" for a in results[0].alphas] if alpha_headers else \
        (["-max", "-max/2", "0", "+max/2", "+max"] if n == 5 else [f"#{i}" for i in range(n)])
    return ("| concept | measure | steered layers | alphas | " + " | ".join(heads)
            + " | monotonic |\n|---|---|---|---|" + "---|" * n + "---|\n" + "\n".join(r.row() for r in results))


def comparison_table(results: Sequence[tuple[str, SweepResult]]) -> str:
    """Methods side by side per concept (``(method, sweep)`` pairs): measure at -max, 0, +max, monotonic,
    and preservation (dB) at the ends of each method's alpha range."""
    def fmt(x: float) -> str:
        return f"{x:.3f}" if abs(x) < 10 else f"{x:.0f}"

    by_concept: dict[str, list[tuple[str, SweepResult]]] = {}
    for method, r in results:
        by_concept.setdefault(r.concept, []).append((method, r))
    lines = ["| concept | method | measure | layers | alpha range | at -max | at 0 | at +max | monotonic | "
             "preservation at -max / +max (dB) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for concept, entries in by_concept.items():
        for method, r in entries:
            lo, hi = r.alphas[0], r.alphas[-1]
            verdict = r.verdict()
            lines.append(f"| {concept} | {method} | {r.measure_label} | {','.join(map(str, r.layers))} | "
                         f"+-{hi:g} | {fmt(r.measure[lo])} | {fmt(r.measure[0.0])} | {fmt(r.measure[hi])} | "
                         f"{verdict if verdict == 'yes' else f'**{verdict}**'} | "
                         f"{r.preservation[lo]:.1f} / {r.preservation[hi]:.1f} |")
    return "\n".join(lines)


def alpha_sweep(adapter, vector, scorer: Scorer, concept: Concept, prompts: Sequence[str],
                alphas: Sequence[float], *, seeds: Sequence[int] = (0,), layers: Sequence[int] | None = None,
                use_renorm: bool | None = None, settings: GenerationSettings | None = None,
                distance: Distance | None = None, progress: bool = True) -> SweepResult:
    """Steer ``prompts`` x ``seeds`` with ``vector`` (a SteeringVector) at every alpha; see the module docstring.

    ``layers``: where to steer (default: the vector's functional layers, else all of its
    layers). Alpha 0 is always included as the reference. Every alpha of a prompt and seed
    is one batched call; ``settings.batch_size`` bounds the clips per call. ``distance``: the
    preservation distance (default: the benchmark's default, the multi-resolution log-mel distance).
    """

    prompts = check_prompts(prompts, "sweep prompts")
    alphas = sorted({check_finite("alpha", a) for a in alphas} | {0.0})
    if len(alphas) < 2:
        raise TadaError("give at least one non-zero alpha")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise TadaError("seeds is empty; give at least one seed")
    scorer.check(concept)
    distance = distance or make_distance(None)
    settings = adapter.resolve_settings(settings)
    chosen = vector.default_layers() if layers is None else list(layers)
    items = [(p, s) for p in prompts for s in seeds]
    per_call = max(1, settings.batch_size // len(alphas))
    values, dists = [], []
    for k in tqdm(range(0, len(items), per_call), desc=f"alpha sweep {concept.name}", unit="batch",
                  disable=not progress):
        chunk = items[k:k + per_call]
        batch_prompts = [p for p, _ in chunk for _ in alphas]
        batch_seeds = [s for _, s in chunk for _ in alphas]
        with vector.apply(adapter, alpha=[a for _ in chunk for a in alphas], layers=chosen, use_renorm=use_renorm):
            audio = adapter.generate(batch_prompts, seeds=batch_seeds, settings=settings).audio
        audio = audio.reshape(len(chunk), len(alphas), *audio.shape[1:])
        ref = audio[:, alphas.index(0.0)]
        flat = audio.reshape(-1, *audio.shape[2:])
        # similarity = sign * measure: score each clip once
        values.append(np.asarray(scorer.measure(flat, adapter.sample_rate, concept)).reshape(len(chunk), len(alphas)))
        dists.append(np.stack([distance(audio[:, j], ref, adapter.sample_rate)
                               for j in range(len(alphas))], axis=1))
    values, dists = np.concatenate(values), np.concatenate(dists)
    sign = scorer.sign(concept)
    sims = sign * values
    groups = [p for p, _ in items]          # clips of one prompt are one draw of the bootstrap
    return SweepResult(
        concept=concept.name, measure_label=scorer.label(concept), layers=sorted(chosen), alphas=alphas,
        n=len(items), measure={a: float(values[:, j].mean()) for j, a in enumerate(alphas)},
        measure_sd={a: float(values[:, j].std()) for j, a in enumerate(alphas)},
        delta_alignment=delta_alignment(alphas, sims),
        preservation={a: float(dists[:, j].mean()) for j, a in enumerate(alphas)}, sign=sign,
        measure_ci={a: bootstrap_ci(values[:, j], groups) for j, a in enumerate(alphas)}, distance=distance.name)


def delta_alignment(alphas: Sequence[float], sims: np.ndarray) -> dict[float, float]:
    """Sec. 5.1's sign-corrected alignment gain, mean over clips: sign(alpha) (a(alpha) - a(0)).

    ``sims``: [clips, alphas] similarities (larger = more of the concept), alpha 0 among the columns.
    """
    alphas = [float(a) for a in alphas]
    if 0.0 not in alphas:
        raise TadaError("delta alignment needs the unsteered clips (alpha 0)")
    a0 = sims[:, alphas.index(0.0)]
    return {a: float((np.sign(a) * (sims[:, j] - a0)).mean()) for j, a in enumerate(alphas)}


@dataclasses.dataclass
class AblationRow:
    """One layer set of Table 2: mean preservation and Delta alignment over +/- alpha, and the measure."""

    set: str
    layers: list[int]
    n_layers: int
    preservation: float
    delta_alignment: float
    measure: dict[str, float]   # "-alpha", "0", "alpha" -> mean measure
    measure_label: str


@dataclasses.dataclass
class AblationResult:
    """Table 2 for one concept at +/- ``alpha``: rows for L, L \\ F and F."""

    concept: str
    alpha: float
    rows: list[AblationRow]

    def to_dict(self) -> dict[str, Any]:
        return {"concept": self.concept, "alpha": self.alpha, "rows": [dataclasses.asdict(r) for r in self.rows]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AblationResult":
        try:
            return cls(d["concept"], float(d["alpha"]), [AblationRow(**r) for r in d["rows"]])
        except (KeyError, TypeError, ValueError) as e:
            raise TadaError(f"not an ablation result ({type(e).__name__}: {e})") from None

    def lines(self) -> list[str]:
        a = self.alpha
        return [f"| {self.concept} | {a:g} | {r.set} = {{{','.join(map(str, r.layers))}}} | {r.n_layers} | "
                f"{r.preservation:.2f} | {_num(r.delta_alignment)} | {_num(r.measure[f'{-a:g}'])} / "
                f"{_num(r.measure['0'])} / {_num(r.measure[f'{a:g}'])} ({r.measure_label}) |" for r in self.rows]


def ablation_table(results: Sequence[AblationResult]) -> str:
    """Table 2 rows of several concepts as one Markdown table."""
    return ("| concept | alpha | steered layers | # | preservation: log-mel distance, dB (lower = closer) | "
            "Delta alignment (higher = better) | measure at -alpha / 0 / +alpha |\n|---|---|---|---|---|---|---|\n"
            + "\n".join(line for r in results for line in r.lines()))


def layer_ablation(adapter, vector, scorer: Scorer, concept: Concept, prompts: Sequence[str], alpha: float,
                   functional: Sequence[int], *, seeds: Sequence[int] = (0,), use_renorm: bool | None = None,
                   settings: GenerationSettings | None = None, distance: Distance | None = None,
                   progress: bool = True) -> AblationResult:
    """Table 2: steer all layers, all but ``functional``, and only ``functional`` at +/- ``alpha``.

    Each row: the layer set, preservation (mean distance to the unsteered clip, as :func:`alpha_sweep`,
    over both signs), Delta alignment (mean sign-corrected delta over both signs), and
    the measure at -alpha, 0 and +alpha.
    """
    alpha = abs(check_finite("alpha", alpha))
    if alpha == 0:
        raise TadaError("the ablation needs a non-zero alpha")
    all_layers = list(vector.layers)
    functional = sorted(set(int(x) for x in functional))
    if not functional or set(functional) - set(all_layers):
        raise TadaError(f"functional layers {functional} must be a non-empty subset of the vector's layers "
                        f"{all_layers}")
    rest = [x for x in all_layers if x not in functional]
    rows = []
    for name, layer_set in (("L", all_layers), ("L \\ F", rest), ("F", functional)):
        if not layer_set:
            continue
        r = alpha_sweep(adapter, vector, scorer, concept, prompts, [-alpha, alpha], seeds=seeds, layers=layer_set,
                        use_renorm=use_renorm, settings=settings, distance=distance, progress=progress)
        rows.append(AblationRow(set=name, layers=layer_set, n_layers=len(layer_set),
                                preservation=(r.preservation[-alpha] + r.preservation[alpha]) / 2,
                                delta_alignment=(r.delta_alignment[-alpha] + r.delta_alignment[alpha]) / 2,
                                measure={f"{a:g}": r.measure[a] for a in r.alphas}, measure_label=r.measure_label))
    return AblationResult(concept.name, alpha, rows)


@dataclasses.dataclass
class FadSweep:
    """Facchiano et al. Fig. 7: the Frechet audio distance between steered and unsteered clips at each strength.
    ``fad``: lambda -> FAD (lambda 0, the reference, is not listed); ``clips``: clips per strength."""

    concept: str
    embedding: str
    clips: int
    fad: dict[float, float]
    prompts: list[str]
    seeds: list[int]

    def to_dict(self) -> dict[str, Any]:
        """``fad.json``."""
        return {"concept": self.concept, "embedding": self.embedding, "clips": self.clips,
                "fad": {str(k): v for k, v in self.fad.items()}, "prompts": self.prompts, "seeds": self.seeds}

    @classmethod
    def from_dict(cls, d: Any, where: str = "fad.json") -> "FadSweep":
        fields = ("concept", "embedding", "clips", "fad", "prompts", "seeds")
        if not isinstance(d, dict) or set(d) != set(fields):
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise TadaError(f"{where} must have exactly the fields {', '.join(fields)}; got {got}")
        try:
            return cls(str(d["concept"]), str(d["embedding"]), int(d["clips"]),
                       {float(k): float(v) for k, v in d["fad"].items()}, list(d["prompts"]),
                       [int(s) for s in d["seeds"]])
        except (AttributeError, TypeError, ValueError) as e:
            raise TadaError(f"{where}: malformed ({e})") from None


def fad_sweep(adapter, vector, prompts: Sequence[str], lambdas: Sequence[float], embedding, *,
              seeds: Sequence[int] = (0,), embedding_name: str = "", progress: bool = True) -> FadSweep:
    """FAD (:func:`tada_core.evaluation.metrics.frechet_audio_distance` with ``embedding``) between the clips
    steered at each |lambda| and the unsteered clips of the same prompts and seeds; every lambda of a prompt
    and seed is one batched call."""
    prompts = check_prompts(prompts, "FAD prompts")
    seeds = [int(s) for s in seeds]
    items = [(p, s) for p in prompts for s in seeds]
    if not items:
        raise TadaError("give at least one prompt and one seed")
    lambdas = sorted({0.0} | {abs(check_finite("lambda", x)) for x in lambdas})
    if len(lambdas) < 2:
        raise TadaError("give at least one non-zero lambda")
    clips: dict[float, list] = {lam: [] for lam in lambdas}
    sample_rate = adapter.sample_rate
    for p, s in tqdm(items, desc=f"FAD {vector.concept}", unit="clip", disable=not progress):
        with vector.apply(adapter, alpha=lambdas):
            gen = adapter.generate([p] * len(lambdas), seeds=[s] * len(lambdas))
        for lam, clip in zip(lambdas, gen.audio):
            clips[lam].append(clip)
    ref = torch.stack(clips[0.0])
    fad = {lam: frechet_audio_distance(ref, torch.stack(clips[lam]), sample_rate, embedding)
           for lam in lambdas if lam}
    return FadSweep(vector.concept, embedding_name, len(items), fad, list(prompts), seeds)


__all__ = ["FadSweep", "fad_sweep", "alpha_sweep", "layer_ablation", "smoothness", "monotonic", "intervals_ordered",
           "delta_alignment",
           "SweepResult", "AblationResult", "AblationRow", "sweep_table", "comparison_table", "ablation_table"]
