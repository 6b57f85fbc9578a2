"""DiffMean steering of MusicGen's residual stream (Facchiano et al. 2025, arXiv 2504.04479).

* :func:`diffmean` (their Sec. 3, Eq. 1): for contrastive prompt sets S_pos and S_neg, the
  residual stream at each prompt's EOS position at every decoder layer,
  ``Delta^(l) = mean_{S_pos} h^(l) - mean_{S_neg} h^(l)`` (not normalized), saved as a
  steering vector with ``method: "diffmean"`` and an injection ``strategy``;
* injection (their Eq. 2): ``h^(l) <- h^(l) + lambda Delta^(l)`` at every autoregressive step,
  into both CFG branches by default (:func:`tada_core.interventions.hooks.steer`, through
  :meth:`SteeringVector.apply`), with the **All-to-All** strategy (each layer its own
  Delta^(l)) or **One-to-All** (Delta^(l_best) into every layer; the paper's choice);
* :func:`layer_scan` (their Fig. 4): each layer's direction injected One-to-All at a fixed
  lambda, the change of a measure; :func:`cosine_matrix` (their Fig. 6); :func:`choose_layer`
  records l_best with its evidence.

Layers are 0-based decoder-layer indices; the paper counts from 1 (its layer 16 for tempo is
index 15 here, its layer 10 for timbre index 9). No ReNorm: the paper adds lambda Delta as is.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from tada_core.errors import TadaError, check_finite
from tada_core.artifacts.vectors import STRATEGIES, SteeringVector
from tada_core.runtime.io import read_json, write_json

Measure = Callable[[torch.Tensor, int], np.ndarray]   # (audio [clips, channels, samples], sample rate) -> [clips]


def diffmean(adapter, positive: Sequence[str], negative: Sequence[str], *, concept: str,
             strategy: str = "one-to-all", source_layer: int | None = None, batch_size: int = 16,
             alpha_range: tuple[float, float] | None = None, progress: bool = True) -> SteeringVector:
    """Facchiano et al. Eq. 1 at every layer: mean EOS state over ``positive`` minus mean over ``negative``.

    ``strategy``: how :meth:`SteeringVector.apply` injects it, ``"one-to-all"`` (the paper's
    choice; ``source_layer`` = l_best, default the layer with the largest ``||Delta||``
    relative to the residual norm, until :func:`choose_layer` picks one by its effect) or
    ``"all-to-all"``.
    """

    if strategy not in STRATEGIES:
        raise TadaError(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    if len(positive) != len(negative) or not positive:
        raise TadaError(f"give as many positive as negative prompts (at least one); got {len(positive)} and "
                        f"{len(negative)}")
    sums = {}
    norms = torch.zeros(len(adapter.layers))
    for side, prompts in (("positive", list(positive)), ("negative", list(negative))):
        total = None
        for k in tqdm(range(0, len(prompts), batch_size), desc=f"DiffMean {concept} ({side})", unit="batch",
                      disable=not progress):
            states = adapter.prompt_states(prompts[k:k + batch_size])     # [layers, batch, width]
            total = states.sum(1) if total is None else total + states.sum(1)
            norms += states.norm(dim=-1).sum(1)
        sums[side] = total / len(prompts)
    delta = sums["positive"] - sums["negative"]                          # [layers, width]
    layers = [layer.index for layer in adapter.layers]
    if source_layer is None:
        relative = delta.norm(dim=-1) / (norms / (2 * len(positive))).clamp_min(1e-12)
        source_layer = int(relative.argmax())
    if source_layer not in layers:
        raise TadaError(f"source_layer {source_layer} does not exist; {adapter.name} has layers 0..{len(layers) - 1}")
    chosen = {"name": strategy, "source_layer": source_layer} if strategy == "one-to-all" else {"name": strategy}
    return SteeringVector(
        vectors={i: delta[i] for i in layers}, concept=concept, model=adapter.name,
        layer_paths={layer.index: layer.path for layer in adapter.layers}, method="diffmean",
        prompts={"positive": list(positive), "negative": list(negative)}, alpha_range=alpha_range, renorm=False,
        strategy=chosen, extra={"kind": "residual-stream", "point": adapter.layer_kind, "read_out": "EOS position",
                                "norms": [float(x) for x in delta.norm(dim=-1)]})


def with_strategy(vector: SteeringVector, strategy: str, source_layer: int | None = None) -> SteeringVector:
    """The same directions, injected All-to-All or One-to-All (from ``source_layer``)."""
    if strategy not in STRATEGIES:
        raise TadaError(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    if strategy == "one-to-all":
        source = source_layer if source_layer is not None else (vector.strategy or {}).get("source_layer")
        chosen = {"name": strategy, "source_layer": source}
    else:
        chosen = {"name": strategy}
    return dataclasses.replace(vector, strategy=chosen)


def cosine_matrix(vector: SteeringVector) -> np.ndarray:
    """Cosine similarity between every two layers' directions (Facchiano et al. Fig. 6), [layers, layers]."""
    v = torch.stack([vector.vectors[i].reshape(-1) for i in vector.layers]).double()
    v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (v @ v.T).numpy()


@dataclasses.dataclass
class LayerScan:
    """Fig. 4: per source layer, the mean measure when its direction is injected One-to-All at +lambda and -lambda."""

    concept: str
    measure_label: str
    lam: float
    baseline: float
    up: dict[int, float]
    down: dict[int, float]
    n: int
    seeds: list[int] | None = None
    prompts: list[str] | None = None

    FIELDS = ("concept", "measure", "lambda", "baseline", "up", "down", "effect", "clips_per_point", "best_layer",
              "seeds", "prompts")

    def to_dict(self) -> dict[str, Any]:
        """``scan.json``: the scan, its effect and best layer (derived, kept for readers), prompts and seeds."""
        return {"concept": self.concept, "measure": self.measure_label, "lambda": self.lam, "baseline": self.baseline,
                "up": {str(k): v for k, v in self.up.items()}, "down": {str(k): v for k, v in self.down.items()},
                "effect": {str(k): v for k, v in self.effect.items()}, "clips_per_point": self.n,
                "best_layer": self.best(), "seeds": self.seeds, "prompts": self.prompts}

    @classmethod
    def from_dict(cls, d: Any, where: str = "scan.json") -> "LayerScan":
        if not isinstance(d, dict):
            raise TadaError(f"{where} must hold a JSON object")
        unknown, missing = sorted(set(d) - set(cls.FIELDS)), sorted(set(cls.FIELDS) - set(d))
        if unknown or missing:
            raise TadaError(f"{where}: " + "; ".join(
                x for x in (f"unknown fields {', '.join(unknown)}" if unknown else "",
                            f"missing fields {', '.join(missing)}" if missing else "") if x))
        try:
            scan = cls(str(d["concept"]), str(d["measure"]), float(d["lambda"]), float(d["baseline"]),
                       {int(k): float(v) for k, v in d["up"].items()}, {int(k): float(v) for k, v in d["down"].items()},
                       int(d["clips_per_point"]), d["seeds"], d["prompts"])
        except (AttributeError, TypeError, ValueError) as e:
            raise TadaError(f"{where}: malformed ({e})") from None
        if scan.best() != d["best_layer"] or {str(k): v for k, v in scan.effect.items()} != d["effect"]:
            raise TadaError(f"{where}: effect / best_layer do not follow from up and down (edited by hand?)")
        return scan

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "LayerScan":
        return cls.from_dict(read_json(path), str(path))

    @property
    def effect(self) -> dict[int, float]:
        """Measure at +lambda minus measure at -lambda, per source layer (the steering power)."""
        return {layer: self.up[layer] - self.down[layer] for layer in self.up}

    def best(self) -> int:
        return max(self.effect, key=lambda layer: self.effect[layer])


def layer_scan(adapter, vector: SteeringVector, measure: Measure, prompts: Sequence[str], *, lam: float,
               seeds: Sequence[int] = (0,), layers: Sequence[int] | None = None, measure_label: str = "",
               progress: bool = True) -> LayerScan:
    """Inject each layer's direction into every layer (One-to-All) at +-``lam`` and measure the clips.

    One batched call per source layer holds every prompt x seed at -lam, 0 and +lam.
    """

    lam = abs(check_finite("lambda", lam))
    if lam == 0:
        raise TadaError("the layer scan needs a non-zero lambda")
    items = [(p, s) for p in prompts for s in seeds]
    if not items:
        raise TadaError("give at least one prompt and one seed")
    sources = list(vector.layers if layers is None else adapter.resolve_layers(layers))
    up, down, base = {}, {}, []
    for source in tqdm(sources, desc=f"layer scan {vector.concept}", unit="layer", disable=not progress):
        one = with_strategy(vector, "one-to-all", source)
        alphas = [a for _ in items for a in (-lam, 0.0, lam)]
        with one.apply(adapter, alpha=alphas, use_renorm=False):
            gen = adapter.generate([p for p, _ in items for _ in range(3)], seeds=[s for _, s in items for _ in range(3)])
        values = np.asarray(measure(gen.audio, gen.sample_rate), dtype=float).reshape(len(items), 3)
        down[source], up[source] = float(values[:, 0].mean()), float(values[:, 2].mean())
        base.append(values[:, 1].mean())
    return LayerScan(vector.concept, measure_label, lam, float(np.mean(base)), up, down, len(items),
                     seeds=[int(s) for s in seeds], prompts=list(prompts))


def choose_layer(vector: SteeringVector, scan: LayerScan) -> SteeringVector:
    """``vector`` injected One-to-All from the scan's best layer, with the scan recorded as the evidence."""
    best = scan.best()
    out = with_strategy(vector, "one-to-all", best)
    out.extra = {**out.extra, "l_best": {"layer": best, "measure": scan.measure_label, "lambda": scan.lam,
                                          "effect": {str(k): v for k, v in scan.effect.items()}, "clips": scan.n}}
    return out


__all__ = ["diffmean", "with_strategy", "cosine_matrix", "layer_scan", "LayerScan", "choose_layer", "STRATEGIES"]
