"""Steering evaluation (TADA Sec. 5.1-5.2): alpha sweeps, the layer-set ablation of Table 2, smoothness.

* :func:`alpha_sweep`: for each prompt and seed, generate every alpha in one batched call
  (per-sample alphas of :func:`tada_core.hooks.steer`; alpha 0 is the unsteered clip) and
  measure: the scorer's value for the concept (e.g. onset rate), the sign-corrected
  alignment delta Delta a(alpha) = sign(alpha) (a(alpha) - a(0)), and preservation as the
  distance to the unsteered clip.
* :func:`layer_ablation`: Table 2: the same sweep steering all layers (L), all but the
  functional ones (L \\ F) and only the functional ones (F).
* :func:`smoothness`: Sec. 5.1's S = std of consecutive gaps of the normalized delta.

Preservation: the paper uses LPAPS, whose weights cannot be downloaded here; we use the
mean absolute difference of log-magnitude spectrograms in dB (:func:`spectral_distance`),
0 for an identical clip. It ranks edits the same way on the organism, but its numbers are
not comparable with the paper's LPAPS values.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
import torch

from .concepts import Concept
from .errors import TadaError, check_finite, check_prompts


def spectral_distance(a: torch.Tensor, b: torch.Tensor, sample_rate: int) -> np.ndarray:
    """Mean |20 log10 |STFT(a)| - 20 log10 |STFT(b)|| in dB per clip; ``a``, ``b``: [batch, channels, samples]."""
    if a.shape != b.shape:
        raise TadaError(f"clips differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    n_fft = 2 ** max(8, int(round(math.log2(sample_rate * 0.064))))
    window = torch.hann_window(n_fft)

    def db(x: torch.Tensor) -> torch.Tensor:
        x = x.float().mean(1)
        s = torch.stft(x, n_fft, hop_length=n_fft // 4, window=window, return_complex=True).abs()
        return 20 * torch.log10(s.clamp_min(1e-5))

    return (db(a) - db(b)).abs().mean(dim=(1, 2)).double().numpy()


def smoothness(alphas: Sequence[float], delta: Sequence[float]) -> float:
    """Sec. 5.1 smoothness S (lower is smoother), for one steering direction.

    ``delta``: sign-corrected alignment deltas at ``alphas`` (same sign, any order); they
    are normalized by the largest delta, ordered by |alpha| (with 0 at alpha 0), and S is
    the standard deviation of the consecutive gaps.
    """
    order = np.argsort(np.abs(np.asarray(alphas, dtype=float)))
    d = np.asarray(delta, dtype=float)[order]
    top = d.max() if len(d) else 0.0
    if len(d) < 2 or top <= 0:
        return float("nan")
    d = np.concatenate([[0.0], d / top]) if abs(alphas[order[0]]) > 0 else d / top
    return float(np.std(np.diff(d)))


@dataclasses.dataclass
class SweepResult:
    """Means over prompts x seeds at each alpha (keys are alphas, in ascending order)."""

    concept: str
    measure_label: str
    layers: list[int]
    alphas: list[float]
    n: int
    measure: dict[float, float]
    measure_sd: dict[float, float]
    delta_alignment: dict[float, float]
    preservation: dict[float, float]

    def monotonic(self, sign: int = 1, tolerance: float = 0.02) -> bool:
        """True if ``sign`` * measure never falls as alpha grows, over both signs of alpha.

        A step back smaller than ``tolerance`` times the measure's range over the sweep is
        allowed, so that a saturated measure (P(drums) at 0.002 vs 0.003) does not count as
        a reversal.
        """
        v = [sign * self.measure[a] for a in self.alphas]
        slack = tolerance * (max(v) - min(v))
        return max(v) > min(v) and all(y >= x - slack for x, y in zip(v, v[1:]))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for key in ("measure", "measure_sd", "delta_alignment", "preservation"):
            d[key] = {f"{a:g}": v for a, v in getattr(self, key).items()}
        return d


def alpha_sweep(adapter, vector, scorer, concept: Concept, prompts: Sequence[str], alphas: Sequence[float], *,
                seeds: Sequence[int] = (0,), layers: Sequence[int] | None = None, use_renorm: bool = False,
                batch_size: int = 32, duration: float | None = None, steps: int | None = None,
                guidance: float | None = None, progress: bool = True) -> SweepResult:
    """Steer ``prompts`` x ``seeds`` with ``vector`` (a SteeringVector) at every alpha; see module docstring.

    ``layers``: where to steer (default: the vector's functional layers, else all of its
    layers). Alpha 0 is always included as the reference.
    """
    from tqdm.auto import tqdm

    prompts = check_prompts(prompts, "sweep prompts")
    alphas = sorted({check_finite("alpha", a) for a in alphas} | {0.0})
    if len(alphas) < 2:
        raise TadaError("give at least one non-zero alpha")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise TadaError("seeds is empty; give at least one seed")
    chosen = vector.default_layers() if layers is None else list(layers)
    items = [(p, s) for p in prompts for s in seeds]
    per_call = max(1, batch_size // len(alphas))
    values, sims, dists = [], [], []
    for k in tqdm(range(0, len(items), per_call), desc=f"alpha sweep {concept.name}", unit="batch",
                  disable=not progress):
        chunk = items[k:k + per_call]
        batch_prompts = [p for p, _ in chunk for _ in alphas]
        batch_seeds = [s for _, s in chunk for _ in alphas]
        with vector.apply(adapter, alpha=[a for _ in chunk for a in alphas], layers=chosen, use_renorm=use_renorm):
            audio = adapter.generate(batch_prompts, seeds=batch_seeds, duration=duration, steps=steps,
                                     guidance=guidance).audio
        audio = audio.reshape(len(chunk), len(alphas), *audio.shape[1:])
        ref = audio[:, alphas.index(0.0)]
        flat = audio.reshape(-1, *audio.shape[2:])
        measure = getattr(scorer, "measure", scorer.similarity)
        v = np.asarray(measure(flat, adapter.sample_rate, concept)).reshape(len(chunk), len(alphas))
        values.append(v)
        # a scorer with measure() and sign() defines similarity = sign * measure: score each clip once
        sims.append(scorer.sign(concept) * v if hasattr(scorer, "sign") and hasattr(scorer, "measure") else
                    np.asarray(scorer.similarity(flat, adapter.sample_rate, concept)).reshape(len(chunk), len(alphas)))
        dists.append(np.stack([spectral_distance(audio[:, j], ref, adapter.sample_rate)
                               for j in range(len(alphas))], axis=1))
    values, sims, dists = np.concatenate(values), np.concatenate(sims), np.concatenate(dists)
    a0 = sims[:, alphas.index(0.0)]
    label = scorer.label(concept) if hasattr(scorer, "label") else f"sim({concept.query!r})"
    return SweepResult(
        concept=concept.name, measure_label=label, layers=sorted(chosen), alphas=alphas, n=len(items),
        measure={a: float(values[:, j].mean()) for j, a in enumerate(alphas)},
        measure_sd={a: float(values[:, j].std()) for j, a in enumerate(alphas)},
        delta_alignment={a: float((np.sign(a) * (sims[:, j] - a0)).mean()) for j, a in enumerate(alphas)},
        preservation={a: float(dists[:, j].mean()) for j, a in enumerate(alphas)})


def layer_ablation(adapter, vector, scorer, concept: Concept, prompts: Sequence[str], alpha: float,
                   functional: Sequence[int], *, seeds: Sequence[int] = (0,), **kwargs) -> list[dict]:
    """Table 2: steer all layers, all but ``functional``, and only ``functional`` at +/- ``alpha``.

    Returns one row per layer set: layers, preservation (mean spectral distance to the
    unsteered clip over both signs) and Delta alignment (mean sign-corrected delta over
    both signs), plus the measure at -alpha, 0 and +alpha.
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
    sets = [("L", all_layers), ("L \\ F", rest), ("F", functional)]
    rows = []
    for name, layer_set in sets:
        if not layer_set:
            continue
        r = alpha_sweep(adapter, vector, scorer, concept, prompts, [-alpha, alpha], seeds=seeds, layers=layer_set,
                        **kwargs)
        rows.append({"set": name, "layers": layer_set, "n_layers": len(layer_set),
                     "preservation": (r.preservation[-alpha] + r.preservation[alpha]) / 2,
                     "delta_alignment": (r.delta_alignment[-alpha] + r.delta_alignment[alpha]) / 2,
                     "measure": {f"{a:g}": r.measure[a] for a in r.alphas}, "measure_label": r.measure_label})
    return rows


__all__ = ["alpha_sweep", "layer_ablation", "smoothness", "spectral_distance", "SweepResult"]
