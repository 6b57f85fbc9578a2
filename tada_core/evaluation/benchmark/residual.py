"""The steering benchmark's methods for a model steered in its residual stream (an autoregressive model).

TADA's baselines (:mod:`.methods`) act on cross-attention inputs at diffusion steps. A model whose
adapter declares ``benchmark_kind = "residual-stream"`` (MusicGen: the text is a prefix of the
decoder sequence, read once into its key/value cache, and steering adds to the residual stream)
runs this table instead, with the same protocol (:mod:`.runner`, :mod:`.protocol`):

========================  ======================================================================
key                       method
========================  ======================================================================
``diffmean``              DiffMean (Facchiano et al. 2025, Eq. 1-2), **One-to-All**: the source
                          layer's Delta^(l_best) added to every layer, h += lambda Delta, every
                          autoregressive step, both CFG branches, no ReNorm (the paper's setting).
``diffmean-all``          DiffMean **All-to-All**: each layer its own Delta^(l).
``pci``                   **Prompt swap**, PCI's analogue (the baseline P_max is taken from): the
                          text conditioning moves from the neutral prompt's to the positive (alpha
                          > 0) or negative prompt's: E = (1 - w) E(neutral) + w E(target), w = |alpha|
                          in (0, 1], at the text encoder's output; w = 1 is the full prompt swap.
``text-emb``              **Text-embedding difference** (Ezra et al. 2025's Text Embeddings on this
                          model): E = E(neutral) + alpha (E(positive) - E(negative)).
``random``                **Random control**: random directions with DiffMean One-to-All's norm at
                          every layer (one direction shared by the layers, as One-to-All shares
                          its), injected the same way; ``draws`` directions from fixed seeds,
                          draw ``i = base index mod draws`` for a base prompt, so one row pools
                          the draws at the cost of one method.
========================  ======================================================================

E is the text encoder's output, before MusicGen's projection into the decoder (a linear map, so
the same arithmetic after it). The text masks of the prompts combined are united (a token of
either prompt is attended to); w = 1 takes the target's own mask, so the full swap is the target
prompt's conditioning. Why not PCI's steps: the prompt is read once, at the first decoder call,
into every layer's key/value cache; "the target prompt from step T - |alpha| on" would need the
cache rebuilt mid-generation, and the interpolation weight plays the role of the number of steps.
Strength 0 is the unsteered run, bit-identical, for every method (tested on the MusicGen organism). On a model
without a fixed text length (the real checkpoints) the text methods pad a batch's prompts to the longest of its
neutral, positive and negative prompts, and Melody's audio positions follow the padding: their strength-0 clip is
then the unsteered run at that padding, made in the same call as the steered ones (so the distances stay paired),
but not bit-identical to the prompt generated alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from tada_core.artifacts.vectors import SteeringVector, load_vector
from tada_core.errors import TadaError
from tada_core.evaluation.benchmark.methods import METHODS, Context, Method, MethodUnavailable, make_method
from tada_core.interventions.hooks import steer_sum

RANDOM_DRAWS = 4          # random-control directions per concept
RANDOM_SEED = 7000        # draw i is made from seed RANDOM_SEED + i
DIFFMEAN_RANGE = 4.0      # nominal range: this many times the vector's alpha_range (then calibrated)


def _united(*masks: torch.Tensor) -> torch.Tensor:
    out = masks[0].clone()
    for m in masks[1:]:
        out = torch.maximum(out, m)
    return out


class _TextMethod(Method):
    """A method that replaces the text conditioning of the steered rows (through ``adapter.text_conditioning``)."""

    def setup(self, ctx: Context) -> None:
        if not hasattr(ctx.adapter, "text_conditioning"):
            raise MethodUnavailable(f"{ctx.adapter.name} offers no text_conditioning to steer the prompt with")

    def encode(self, ctx: Context, bases: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """[3, n, L, D] states and [3, n, L] masks of (neutral, positive, negative) of each base, one batch."""
        n = len(bases)
        states, mask = ctx.adapter.encode_text([ctx.items[b][k] for k in range(3) for b in bases])
        return states.float().reshape(3, n, *states.shape[1:]), mask.reshape(3, n, -1)

    def states(self, e: torch.Tensor, m: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The steered rows' states and masks from ``e`` / ``m`` (neutral, positive, negative) and strengths ``a``."""
        raise NotImplementedError

    def apply(self, ctx, bases, strengths):
        a = torch.tensor([float(x) for x in strengths], dtype=torch.float32)
        bases = list(bases)

        def provide(run) -> tuple[torch.Tensor, torch.Tensor, list[bool]]:
            if len(run.prompts) != len(bases):
                raise TadaError(f"{self.label}: {len(run.prompts)} prompts for {len(bases)} strengths")
            e, m = self.encode(ctx, bases)
            states, mask = self.states(e, m, a)
            return states, mask, [x != 0 for x in a.tolist()]

        return ctx.adapter.text_conditioning(provide)


class PromptSwap(_TextMethod):
    """PCI's analogue on an autoregressive model: E = (1 - w) E(neutral) + w E(target), w = |alpha| in (0, 1]."""

    key, label = "pci", "Prompt swap"
    grid_kind = "fraction"

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.max_strength = 1.0

    def grid(self, ctx: Context, n: int, top: float | None = None) -> list[float]:
        """``n`` interpolation weights up to the full swap, w = 1 (never calibrated: 1 is the swap)."""
        return [float(f"{x:.6g}") for x in np.linspace(1.0 / n, 1.0, n)]

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "point": "text encoder output",
                "conditioning": "(1 - |alpha|) E(neutral) + |alpha| E(positive if alpha > 0 else negative)"}

    def states(self, e, m, a):
        w = a.abs().clamp(max=1.0)[:, None, None]
        target = torch.where((a > 0)[:, None, None], e[1], e[2])
        target_mask = torch.where((a > 0)[:, None], m[1], m[2])
        mask = torch.where((w[:, 0, 0] >= 1)[:, None], target_mask, _united(m[0], target_mask))
        return (1 - w) * e[0] + w * target, mask


class TextDifference(_TextMethod):
    """The text-embedding difference: E = E(neutral) + alpha (E(positive) - E(negative))."""

    key, label = "text-emb", "Text Embeddings"

    def __init__(self, max_strength: float = 2.0) -> None:
        super().__init__()
        self.max_strength = max_strength

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "point": "text encoder output",
                "conditioning": "E(neutral) + alpha (E(positive) - E(negative)), masks united"}

    def states(self, e, m, a):
        return e[0] + a[:, None, None] * (e[1] - e[2]), _united(m[0], m[1], m[2])


def one_to_all(vector: SteeringVector) -> bool:
    return bool(vector.strategy) and vector.strategy["name"] == "one-to-all"


class DiffMean(Method):
    """The concept's DiffMean vector (``vectors/{model}-{concept}-diffmean``), injected One-to-All or All-to-All."""

    def __init__(self, strategy: str, range_scale: float = DIFFMEAN_RANGE) -> None:
        super().__init__()
        if strategy not in ("one-to-all", "all-to-all"):
            raise TadaError(f"strategy must be one-to-all or all-to-all; got {strategy!r}")
        self.strategy, self.range_scale = strategy, range_scale
        self.key, self.label = (("diffmean", "DiffMean(1→all)") if strategy == "one-to-all"
                                else ("diffmean-all", "DiffMean(all→all)"))
        self.vector: SteeringVector | None = None

    def load(self, ctx: Context) -> SteeringVector:
        folder = ctx.vector_folder("diffmean")
        if not (folder / "config.json").is_file():
            raise MethodUnavailable(f"no DiffMean vector for {ctx.concept.name!r} at {folder} (make one with "
                                    f"`tada diffmean compute`)")
        vector = load_vector(folder)
        vector.check_compatible(ctx.adapter)
        if vector.method != "diffmean":
            raise MethodUnavailable(f"the vector at {folder} is a {vector.method!r} vector, not DiffMean")
        if not vector.alpha_range:
            raise MethodUnavailable(f"the vector at {folder} has no alpha_range")
        return vector

    def setup(self, ctx: Context) -> None:
        vector = self.load(ctx)
        if self.strategy == "one-to-all" and not one_to_all(vector):
            raise MethodUnavailable("the vector records no One-to-All source layer (l_best); choose one with "
                                    "`tada diffmean scan --write-back`")
        if self.strategy == "all-to-all":
            vector = dataclasses.replace(vector, strategy={"name": "all-to-all"})
        self.vector = vector
        self.layers = [layer.index for layer in ctx.adapter.layers]
        self.max_strength = self.range_scale * max(abs(x) for x in vector.alpha_range)

    def hyperparameters(self) -> dict[str, Any]:
        source = (self.vector.strategy or {}).get("source_layer") if self.vector is not None else None
        return {**super().hyperparameters(), "strategy": self.strategy, "source_layer": source, "renorm": False,
                "branch": "family default (MusicGen: both, as in Facchiano et al.)",
                "range": f"{self.range_scale} x the vector's alpha_range, then calibrated"}

    def apply(self, ctx, bases, strengths):
        return self.vector.apply(ctx.adapter, alpha=[float(x) for x in strengths], layers=self.layers,
                                 use_renorm=False)


def random_like(injected: Mapping[int, torch.Tensor], seed: int, shared: bool) -> dict[int, torch.Tensor]:
    """Random directions with the norms of ``injected`` (layer -> vector): u ~ N(0, I) from ``seed``, each layer's
    u / ||u|| ||v_l||. ``shared``: one u for every layer (as One-to-All adds one direction everywhere), else one
    per layer, drawn in layer order."""
    gen = torch.Generator().manual_seed(int(seed))
    layers = sorted(injected)
    width = int(injected[layers[0]].shape[-1])
    u = torch.randn(width, generator=gen, dtype=torch.float64)
    out = {}
    for layer in layers:
        if not shared and layer != layers[0]:
            u = torch.randn(width, generator=gen, dtype=torch.float64)
        v = injected[layer].double()
        out[layer] = (u / u.norm() * v.norm()).to(injected[layer].dtype)
    return out


class RandomControl(DiffMean):
    """Random directions with DiffMean One-to-All's per-layer norms; draw ``base index mod draws`` per base prompt."""

    def __init__(self, draws: int = RANDOM_DRAWS, seed: int = RANDOM_SEED) -> None:
        super().__init__("one-to-all")
        if draws < 1:
            raise TadaError(f"draws must be at least 1; got {draws!r}")
        self.key, self.label = "random", "Random control"
        self.draws, self.seed = int(draws), int(seed)
        self.directions: list[dict[int, torch.Tensor]] = []

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        injected = self.vector.injected(self.layers)
        self.directions = [random_like(injected, self.seed + i, shared=one_to_all(self.vector))
                           for i in range(self.draws)]

    def draw(self, base: int) -> int:
        return int(base) % self.draws

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "draws": self.draws, "seeds": [self.seed + i for i in range(self.draws)],
                "pooling": "draw (base index mod draws) for each base prompt",
                "norm": "DiffMean One-to-All's at every layer (||Delta^(l_best)||), one direction shared by the layers"}

    def apply(self, ctx, bases, strengths):
        strengths = [float(x) for x in strengths]
        terms = []
        for i, direction in enumerate(self.directions):
            alphas = [a if self.draw(b) == i else 0.0 for b, a in zip(bases, strengths)]
            if any(alphas):
                terms.append((direction, alphas))
        if not terms:
            return contextlib.nullcontext()
        return steer_sum(ctx.adapter, terms, use_renorm=False)


RESIDUAL_METHODS: dict[str, Any] = {
    "diffmean": lambda: DiffMean("one-to-all"),
    "diffmean-all": lambda: DiffMean("all-to-all"),
    "pci": PromptSwap,
    "text-emb": TextDifference,
    "random": RandomControl,
}


def method_table(adapter: Any) -> dict[str, Any]:
    """The benchmark's method table for ``adapter``: by its ``benchmark_kind`` (cross-attention: TADA's Table 3,
    :data:`.methods.METHODS`; residual-stream: :data:`RESIDUAL_METHODS`)."""
    kind = getattr(adapter, "benchmark_kind", "cross-attention")
    tables = {"cross-attention": METHODS, "residual-stream": RESIDUAL_METHODS}
    if kind not in tables:
        raise TadaError(f"{getattr(adapter, 'name', adapter)}: benchmark_kind {kind!r} has no method table; "
                        f"accepted: {', '.join(tables)}")
    return tables[kind]


def needs_functional_layers(adapter: Any) -> bool:
    """Whether the adapter's methods include localized ones (CAA(F), ...), which need functional layers."""
    return method_table(adapter) is not RESIDUAL_METHODS


def make_method_for(adapter: Any, key: str, *, vector_renorm: bool = True) -> Method:
    """The method ``key`` of ``adapter``'s table (:func:`method_table`); an unknown key is refused, naming the
    table's."""
    table = method_table(adapter)
    if table is not RESIDUAL_METHODS:
        return make_method(key, vector_renorm=vector_renorm)
    if key not in table:
        raise TadaError(f"unknown method {key!r} for {getattr(adapter, 'name', 'this model')} (a residual-stream "
                        f"model); accepted: {', '.join(table)}")
    return table[key]()


__all__ = ["PromptSwap", "TextDifference", "DiffMean", "RandomControl", "random_like", "RESIDUAL_METHODS",
           "method_table", "make_method_for", "needs_functional_layers", "RANDOM_DRAWS", "RANDOM_SEED"]
