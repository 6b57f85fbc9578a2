"""The steering methods of TADA's Table 3, each in one place with its hyperparameters.

Every method acts through the model adapter (hooks on cross-attention layers or on the
denoiser), so it runs on every supported family. A method is prepared once per concept
(:meth:`Method.setup`: load or compute its direction) and then steers a batch in which every
sample has its own signed strength (:meth:`Method.apply`), so that a whole sweep of a prompt
and seed is one call. Strength 0 leaves a sample as the method's unsteered run. Positive
strengths move toward the concept's positive prompt ("a fast ..."), negative ones toward the
negative prompt ("a slow ...").

========================  ======================================================================
key                       method
========================  ======================================================================
``caa``, ``caa-all``      CAA (TADA Eq. 2): h += alpha v on the functional layers / all layers,
                          conditional branch, every step; ReNorm (Eq. 3) on, as in the paper's
                          benchmark configurations (``vector_renorm=False``: off, for CAA and SAE).
``sae``                   The SAE feature vector (Eq. 8) on the functional layers it exists for.
``pci``, ``pci-f``        Prompt concept injection (Gorgun et al., 2026): generate the neutral
                          prompt; from step T - |alpha| on, the cross-attention layers (all / only
                          the functional ones) take the positive (alpha > 0) or negative prompt.
                          |alpha| = T is the full prompt swap. Strengths are whole steps.
``text-emb``,             Text Embeddings (Ezra et al., 2025): conditioning = neutral + alpha
``text-emb-f``            (positive - negative), per token, every step; masks united; all layers /
                          only the functional ones (the others keep the neutral conditioning).
``token-emb``,            Token Embeddings (Baumann et al., 2025): d = state of the concept word
``token-emb-f``           in the positive prompt - state at its position in the negative prompt,
                          averaged over the base prompts; alpha d is added to the state of a
                          generic word (``word``, default "music") appended to the neutral prompt,
                          at all layers / only the functional ones (the others keep it unsteered).
``freesliders``,          FreeSliders (Ezra et al., 2025): the conditional prediction becomes
``freesliders-f``         eps(neutral) + alpha (eps(positive) - eps(negative)) at every step; the
                          -f variant gives the positive / negative conditioning only to the
                          functional layers.
``austeer``,              AUSteer (Feng et al., 2026): per step, layer and dimension, m = positive -
``austeer-f``             negative activation per pair and frame; beta = +-max(P(m > 0), P(m < 0));
                          the top-k |beta| (k = 2048 x width / 2560) over the active layers kept per
                          step; h += alpha beta mask, conditional branch, ReNorm on.
``sliders``,              Concept Sliders (Gandikota et al., 2024): a LoRA slider trained per concept
``sliders-f``             (:mod:`tada_core.methods.sliders`) on the cross-attention projections of all /
                          the functional layers; the strength is the slider's scale.
``random-caa``,           Random-direction controls: the method after ``random-`` with each direction
``random-caa-all``,       replaced by a random one of the same norm per layer (and per step), one draw
``random-sae``,           per base prompt (draw b, seeded b, for base prompt b), at the method's own
``random-austeer``,       strengths and ReNorm setting: how much AUC any direction of that norm gets.
``random-austeer-f``
========================  ======================================================================

Where the strength of a method is not a number of steps, its range is generous by design: the
benchmark truncates every sweep at P_max, so a range that reaches past it loses nothing.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from tada_core.adapters.base import Conditioning, ModelAdapter, Run, hook_handles
from tada_core.concepts import Concept
from tada_core.errors import TadaError
from tada_core.interventions.hooks import condition, patch, record, steer, steer_sum
from tada_core.artifacts.slider import load_slider
from tada_core.artifacts.vectors import load_vector
from tada_core.runtime.io import read_tensors
from tada_core.runtime.io import save_tensors


class MethodUnavailable(TadaError):
    """This method cannot run for this concept and model (the reason is the message)."""


@dataclasses.dataclass
class Context:
    """What every method is prepared with: the model, the concept, the benchmark's base prompts.

    ``items``: (neutral, positive, negative) prompt per base; ``functional``: the concept's
    functional layers (0-based; [] when localization found none); ``vectors``: folder template
    of precomputed vectors, with ``{model}``, ``{concept}`` and ``{kind}`` (``sliders``: the same for trained
    Concept Sliders, kind ``slider`` / ``slider-all``); ``fit_seeds``: seeds
    for directions a method computes itself (never the benchmark's seeds).
    """

    adapter: ModelAdapter
    concept: Concept
    items: list[tuple[str, str, str]]
    functional: list[int]
    settings: Any
    vectors: str = "vectors/{model}-{concept}-{kind}"
    fit_seeds: tuple[int, ...] = (0, 1, 2, 3)
    sliders: str = "sliders/{model}-{concept}-{kind}"
    cache: Path | None = None   # where methods keep what they fitted (the benchmark's folder), for resumes

    def vector_folder(self, kind: str) -> Path:
        return Path(self.vectors.format(model=self.adapter.name, concept=self.concept.name, kind=kind))


class Method(abc.ABC):
    key: str = ""
    label: str = ""
    grid_kind: str = "linear"   # "linear" (15 strengths up to max_strength) or "steps" (whole steps 1..T)

    def __init__(self) -> None:
        self.max_strength = 1.0
        self.layers: list[int] | None = None   # None: all layers

    def setup(self, ctx: Context) -> None:
        """Load or compute the direction; raise :class:`MethodUnavailable` if the method cannot run."""

    def hyperparameters(self) -> dict[str, Any]:
        return {"max_strength": self.max_strength, "layers": self.layers}

    def grid(self, ctx: Context, n: int, top: float | None = None) -> list[float]:
        """``n`` strengths of one direction, as magnitudes: whole steps 1..T for step-valued methods, else evenly
        spaced up to ``top`` (default :attr:`max_strength`, the nominal range)."""
        if self.grid_kind == "steps":
            t = int(ctx.settings.steps)
            return [float(x) for x in sorted({max(1, int(round(x))) for x in np.linspace(t / n, t, n)})]
        top = self.max_strength if top is None else float(top)
        return [float(f"{x:.6g}") for x in np.linspace(top / n, top, n)]

    @abc.abstractmethod
    def apply(self, ctx: Context, bases: Sequence[int], strengths: Sequence[float]) -> contextlib.AbstractContextManager:
        """A context in which ``adapter.generate(self.prompts(ctx, bases), ...)`` steers sample i with strengths[i]."""

    def prompts(self, ctx: Context, bases: Sequence[int]) -> list[str]:
        """The prompts the steered samples are generated from (the neutral prompts by default)."""
        return [ctx.items[b][0] for b in bases]


def _where_active(strengths: Sequence[float], never: int) -> list[int]:
    """from_step per sample: 0 where the strength is non-zero, ``never`` (no step) where it is 0."""
    return [0 if a != 0 else never for a in strengths]


# --------------------------------------------------------------------------------------
# activation steering: CAA, SAE
# --------------------------------------------------------------------------------------
class VectorMethod(Method):
    """A saved steering vector (``tada caa`` / ``tada sae features``) on the functional or all layers."""

    def __init__(self, key: str, kind: str, localized: bool, renorm: bool = True, range_scale: float = 2.0):
        super().__init__()
        self.key, self.kind, self.localized, self.renorm, self.range_scale = key, kind, localized, renorm, range_scale
        self.label = f"{kind.upper()}({'F' if localized else 'all'})"
        self.vector = None

    def setup(self, ctx: Context) -> None:
        folder = ctx.vector_folder(self.kind)
        if not (folder / "config.json").is_file():
            raise MethodUnavailable(f"no {self.kind.upper()} vector for {ctx.concept.name!r} at {folder} "
                                    f"(make one with `tada {'caa' if self.kind == 'caa' else 'sae features'}`)")
        self.vector = load_vector(folder)
        self.vector.check_compatible(ctx.adapter)
        have = self.vector.layers
        if self.localized:
            if not ctx.functional:
                raise MethodUnavailable(f"{ctx.concept.name!r} has no functional layer on {ctx.adapter.name}")
            self.layers = [i for i in ctx.functional if i in have]
            if not self.layers:
                raise MethodUnavailable(f"the {self.kind.upper()} vector has layers {have}, none of the functional "
                                        f"layers {ctx.functional}")
        else:
            self.layers = have
        if not self.vector.alpha_range:
            raise MethodUnavailable(f"the vector at {folder} has no alpha_range")
        self.max_strength = self.range_scale * max(abs(x) for x in self.vector.alpha_range)

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "renorm": self.renorm, "branch": "cond",
                "range": f"{self.range_scale} x the vector's alpha_range"}

    def apply(self, ctx, bases, strengths):
        return self.vector.apply(ctx.adapter, alpha=list(strengths), layers=self.layers, use_renorm=self.renorm)


# --------------------------------------------------------------------------------------
# prompt level: PCI, Text Embeddings, Token Embeddings
# --------------------------------------------------------------------------------------
class PCI(Method):
    grid_kind = "steps"

    def __init__(self, localized: bool):
        super().__init__()
        self.localized = localized
        self.key, self.label = ("pci-f", "PCI(F)") if localized else ("pci", "PCI")

    def setup(self, ctx: Context) -> None:
        self.max_strength = float(ctx.settings.steps)
        if self.localized:
            if not ctx.functional:
                raise MethodUnavailable(f"{ctx.concept.name!r} has no functional layer on {ctx.adapter.name}")
            self.layers = list(ctx.functional)

    def apply(self, ctx, bases, strengths):
        t = int(ctx.settings.steps)
        targets = [ctx.items[b][1] if a > 0 else ctx.items[b][2] for b, a in zip(bases, strengths)]
        start = [t - int(round(abs(a))) if a != 0 else t + 1 for a in strengths]
        return patch(ctx.adapter, self.layers, targets, from_step=start)


def _union(m1: torch.Tensor | None, m2: torch.Tensor | None) -> torch.Tensor | None:
    """Union of two attention masks (keep-masks 1/0 or True/False, or additive 0/-inf: elementwise max)."""
    if m1 is None or m2 is None:
        return None
    return m1 | m2 if m1.dtype == torch.bool else torch.maximum(m1, m2)


def _functional_layers(ctx: Context) -> list[int]:
    """The concept's functional layers, or :class:`MethodUnavailable` when localization found none."""
    if not ctx.functional:
        raise MethodUnavailable(f"{ctx.concept.name!r} has no functional layer on {ctx.adapter.name}")
    return list(ctx.functional)


class TextEmbeddings(Method):
    """Text Embeddings; ``localized``: the steered conditioning reaches only the functional layers (the others
    keep the neutral prompt's, as PCI(F) and FreeSliders(F) do)."""

    def __init__(self, max_strength: float = 2.0, localized: bool = False):
        super().__init__()
        self.max_strength, self.localized = max_strength, localized
        self.key, self.label = ("text-emb-f", "Text Embeddings(F)") if localized else ("text-emb", "Text Embeddings")

    def setup(self, ctx: Context) -> None:
        if self.localized:
            self.layers = _functional_layers(ctx)

    def apply(self, ctx, bases, strengths):
        adapter = ctx.adapter
        layers = list(adapter.resolve_layers(self.layers))

        def provide(run: Run) -> dict[int, Conditioning]:
            n = len(bases)
            batch = [ctx.items[b][k] for k in range(3) for b in bases]
            got = adapter.capture_conditioning(batch, run.settings, layers)
            a = torch.tensor(list(strengths), dtype=torch.float32)
            out = {}
            for i, c in got.items():
                s = c.states.float()
                neutral, pos, neg = s[:n], s[n:2 * n], s[2 * n:]
                states = neutral + a.to(s.device)[:, None, None] * (pos - neg)
                mask = None if c.mask is None else _union(_union(c.mask[:n], c.mask[n:2 * n]), c.mask[2 * n:])
                out[i] = Conditioning(states.to(c.states.dtype), mask)
            return out

        return condition(adapter, layers, provide, from_step=_where_active(strengths, int(ctx.settings.steps) + 1))


def _span(longer: list[int], shorter: list[int]) -> tuple[int, int]:
    """Positions [start, end) of ``longer`` where it departs from ``shorter`` (common prefix and suffix removed)."""
    start = 0
    while start < min(len(longer), len(shorter)) and longer[start] == shorter[start]:
        start += 1
    end_l, end_s = len(longer), len(shorter)
    while end_l > start and end_s > start and longer[end_l - 1] == shorter[end_s - 1]:
        end_l, end_s = end_l - 1, end_s - 1
    return start, max(end_l, start + 1)


class TokenEmbeddings(Method):
    """Token Embeddings; ``localized``: the word's state is moved only at the functional layers (the others see
    the same prompt, neutral + word, unsteered)."""

    def __init__(self, word: str = "music", max_strength: float = 4.0, localized: bool = False):
        super().__init__()
        self.word, self.max_strength, self.localized = word, max_strength, localized
        self.key, self.label = ("token-emb-f", "Token Embeddings(F)") if localized else ("token-emb", "Token Embeddings")
        self.direction: dict[int, torch.Tensor] = {}

    def addon(self, neutral: str) -> str:
        return f"{neutral} {self.word}"

    def setup(self, ctx: Context) -> None:
        adapter = ctx.adapter
        if self.localized:
            self.layers = _functional_layers(ctx)
        try:
            adapter.prompt_token_ids(ctx.items[0][0])
        except TadaError as e:
            raise MethodUnavailable(str(e)) from None
        layers = list(adapter.resolve_layers(self.layers))
        pos = [p for _, p, _ in ctx.items]
        neg = [n for _, _, n in ctx.items]
        got = adapter.capture_conditioning(pos + neg, adapter.resolve_settings(ctx.settings), layers)
        n = len(pos)
        sums = {i: torch.zeros(c.states.shape[-1]) for i, c in got.items()}
        for k in range(n):
            ip, ineg = adapter.prompt_token_ids(pos[k]), adapter.prompt_token_ids(neg[k])
            (p0, p1), (n0, n1) = _span(ip, ineg), _span(ineg, ip)
            for i, c in got.items():
                s = c.states.float().cpu()
                sums[i] += s[k, p0:p1].mean(0) - s[n + k, n0:n1].mean(0)
        self.direction = {i: v / n for i, v in sums.items()}

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "word": self.word, "addon": self.addon("{neutral}")}

    def prompts(self, ctx, bases):
        return [self.addon(ctx.items[b][0]) for b in bases]

    def apply(self, ctx, bases, strengths):
        adapter = ctx.adapter
        layers = list(adapter.resolve_layers(self.layers))
        spans = []
        for b in bases:
            neutral = ctx.items[b][0]
            spans.append(_span(adapter.prompt_token_ids(self.addon(neutral)), adapter.prompt_token_ids(neutral)))

        def provide(run: Run) -> dict[int, Conditioning]:
            got = adapter.capture_conditioning(run.prompts, run.settings, layers)
            out = {}
            for i, c in got.items():
                states = c.states.clone()
                for row, ((s0, s1), a) in enumerate(zip(spans, strengths)):
                    states[row, s0:s1] += (a * self.direction[i]).to(states.device, states.dtype)
                out[i] = Conditioning(states, c.mask)
            return out

        return condition(adapter, layers, provide, from_step=_where_active(strengths, int(ctx.settings.steps) + 1))


# --------------------------------------------------------------------------------------
# score level: FreeSliders
# --------------------------------------------------------------------------------------
def _output_tensor(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        return output[0]
    if hasattr(output, "sample"):
        return output.sample
    raise TadaError(f"cannot read the denoiser's output of type {type(output).__name__}")


def _with_tensor(output: Any, tensor: torch.Tensor) -> Any:
    if isinstance(output, torch.Tensor):
        return tensor
    if isinstance(output, tuple):
        return (tensor, *output[1:])
    if isinstance(output, list):
        return [tensor, *output[1:]]
    output.sample = tensor
    return output


class FreeSliders(Method):
    def __init__(self, localized: bool, max_strength: float = 2.0):
        super().__init__()
        self.localized, self.max_strength = localized, max_strength
        self.key, self.label = ("freesliders-f", "FreeSliders(F)") if localized else ("freesliders", "FreeSliders")

    def setup(self, ctx: Context) -> None:
        if self.localized:
            if not ctx.functional:
                raise MethodUnavailable(f"{ctx.concept.name!r} has no functional layer on {ctx.adapter.name}")
            self.layers = list(ctx.functional)

    @contextlib.contextmanager
    def apply(self, ctx, bases, strengths) -> Iterator[None]:
        adapter = ctx.adapter
        layer_ids = list(adapter.resolve_layers(self.layers))
        a = list(strengths)
        state: dict[str, Any] = {"swap": None, "pos": {}, "neg": {}}

        def prepare(run: Run) -> None:
            n = len(bases)
            batch = [ctx.items[b][1] for b in bases] + [ctx.items[b][2] for b in bases]
            got = adapter.capture_conditioning(batch, run.settings, layer_ids)
            state["pos"] = {i: Conditioning(c.states[:n], None if c.mask is None else c.mask[:n]) for i, c in got.items()}
            state["neg"] = {i: Conditioning(c.states[n:], None if c.mask is None else c.mask[n:]) for i, c in got.items()}

        def swap_hook(layer: int):
            def hook(module, args, kwargs):
                if state["swap"] is None:
                    return None
                c = state["pos" if state["swap"] == "pos" else "neg"][layer]
                kwargs = dict(kwargs)
                kwargs[adapter.conditioning_kwarg] = c.states
                kwargs[adapter.conditioning_mask_kwarg] = c.mask
                return args, kwargs
            return hook

        def denoiser_hook(module, args, kwargs, output):
            run = adapter.run
            if run is None or run.capture or state["swap"] is not None:
                return None
            out = _output_tensor(output)
            cond, _ = adapter.branch_rows(out.shape[0])
            if not any(a):
                return None
            c_args, c_kwargs = adapter.denoiser_rows(args, kwargs, out.shape[0], cond)
            preds = {}
            try:
                for side in ("pos", "neg"):
                    state["swap"] = side
                    preds[side] = _output_tensor(module.forward(*c_args, **c_kwargs))
            finally:
                state["swap"] = None
            strength = torch.tensor(a, dtype=out.dtype, device=out.device)
            shape = (-1,) + (1,) * (out.ndim - 1)
            new = out.clone()
            slid = out[cond] + strength.view(shape) * (preds["pos"] - preds["neg"]).to(out.dtype)
            new[cond] = torch.where((strength != 0).view(shape), slid, out[cond])
            return _with_tensor(output, new)

        remove = adapter.add_before_generate(prepare)
        try:
            with hook_handles() as add:
                for i in layer_ids:
                    add(adapter.layers[i].module.register_forward_pre_hook(swap_hook(i), with_kwargs=True))
                add(adapter.denoiser.register_forward_hook(denoiser_hook, with_kwargs=True))
                yield
        finally:
            remove()


# --------------------------------------------------------------------------------------
# activation level with scalar selection: AUSteer
# --------------------------------------------------------------------------------------
def austeer_mask(beta: dict[int, torch.Tensor], k: int) -> dict[int, torch.Tensor]:
    """Keep, per step, the ``k`` largest |beta| over all layers of ``beta`` (layer -> [steps, width]); zero the rest."""
    layers = sorted(beta)
    stacked = torch.stack([beta[i] for i in layers], dim=1)            # [steps, layers, width]
    steps, n_layers, width = stacked.shape
    flat = stacked.reshape(steps, -1)
    k = max(1, min(int(k), flat.shape[1]))
    top = flat.abs().topk(k, dim=1).indices
    keep = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, top, True)
    masked = torch.where(keep, flat, torch.zeros_like(flat)).reshape(steps, n_layers, width)
    return {i: masked[:, j] for j, i in enumerate(layers)}


class AUSteer(Method):
    def __init__(self, localized: bool, k: int | None = None, reference_width: int = 2560, k_reference: int = 2048):
        super().__init__()
        self.localized, self.k_given = localized, k
        self.reference_width, self.k_reference = reference_width, k_reference
        self.key, self.label = ("austeer-f", "AUSteer(F)") if localized else ("austeer", "AUSteer")
        self.vectors: dict[int, torch.Tensor] = {}
        self.k = 0

    def setup(self, ctx: Context) -> None:
        adapter = ctx.adapter
        if self.localized:
            if not ctx.functional:
                raise MethodUnavailable(f"{ctx.concept.name!r} has no functional layer on {ctx.adapter.name}")
            self.layers = list(ctx.functional)
        layer_ids = list(adapter.resolve_layers(self.layers))
        width = adapter.layers[layer_ids[0]].width
        self.k = self.k_given or max(1, round(self.k_reference * width / self.reference_width))
        cached = ctx.cache / f"{self.key}.safetensors" if ctx.cache is not None else None
        if cached is not None and cached.is_file():
            tensors = read_tensors(cached)
            self.vectors = {int(k.split(".")[1]): v for k, v in tensors.items() if k.startswith("layers.")}
            self.max_strength = float(tensors["max_strength"])
            return
        pos = [p for _, p, _ in ctx.items for _ in ctx.fit_seeds]
        neg = [n for _, _, n in ctx.items for _ in ctx.fit_seeds]
        seeds = [s for _ in ctx.items for s in ctx.fit_seeds]
        counts: dict[tuple[int, int], list[torch.Tensor]] = {}
        n_per: dict[tuple[int, int], int] = {}
        diffs: dict[tuple[int, int], torch.Tensor] = {}
        chunk = max(1, ctx.settings.batch_size // 2)
        for start in range(0, len(pos), chunk):
            p, q, s = pos[start:start + chunk], neg[start:start + chunk], seeds[start:start + chunk]
            m = len(p)

            def sink(layer: int, step: int, value: torch.Tensor) -> None:
                diff = value[:m] - value[m:]                              # [pairs, frames, width]
                key = (layer, step)
                up, down = (diff > 0).sum((0, 1)).float(), (diff < 0).sum((0, 1)).float()
                if key in counts:
                    counts[key][0] += up
                    counts[key][1] += down
                else:
                    counts[key] = [up, down]
                n_per[key] = n_per.get(key, 0) + diff.shape[0] * diff.shape[1]
                diffs[key] = diffs.get(key, 0) + diff.sum((0, 1))

            with record(adapter, layer_ids, mode="frames", sink=sink):
                adapter.generate(p + q, seeds=s + s, settings=ctx.settings)
        steps = max(step for _, step in counts) + 1
        beta = {}
        caa_norm, beta_norm = [], []
        for i in layer_ids:
            rows = []
            for step in range(steps):
                up, down = counts[(i, step)]
                n = n_per[(i, step)]
                fp, fn = up / n, down / n
                rows.append(torch.where(fp >= fn, fp, -fn))
                caa_norm.append(float((diffs[(i, step)] / n).norm()))
            beta[i] = torch.stack(rows)
        self.vectors = austeer_mask(beta, self.k)
        for i in layer_ids:
            beta_norm += [float(x) for x in self.vectors[i].norm(dim=1)]
        # strength scale: at alpha = max_strength each step adds 16 times the norm of the mean difference
        # (a generous range: the benchmark truncates at P_max)
        self.max_strength = 16.0 * float(np.median(caa_norm)) / max(float(np.median(beta_norm)), 1e-12)
        if cached is not None:
            save_tensors(cached, {**{f"layers.{i}": v for i, v in self.vectors.items()},
                                  "max_strength": torch.tensor(self.max_strength, dtype=torch.float64)})

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "k": self.k, "renorm": True, "branch": "cond",
                "range": "16 x (median norm of the mean difference / median norm of beta * mask)"}

    def apply(self, ctx, bases, strengths):
        return steer(ctx.adapter, self.vectors, alpha=list(strengths), use_renorm=True)


# --------------------------------------------------------------------------------------
# weight level: Concept Sliders
# --------------------------------------------------------------------------------------
class Sliders(Method):
    """A trained Concept Slider (``tada slider train``; Gandikota et al., 2024) on the functional layers or on
    every cross-attention layer, at scale = strength. Like CAA's vectors, sliders are trained once per concept
    and layer set on the fitting seeds and read from a folder (``ctx.sliders``, kind ``slider`` / ``slider-all``)."""

    def __init__(self, localized: bool, max_strength: float = 2.0):
        super().__init__()
        self.localized, self.max_strength = localized, max_strength
        self.key, self.label = ("sliders-f", "Concept Sliders(F)") if localized else ("sliders", "Concept Sliders")
        self.slider = None

    def setup(self, ctx: Context) -> None:
        kind = "slider" if self.localized else "slider-all"
        folder = Path(ctx.sliders.format(model=ctx.adapter.name, concept=ctx.concept.name, kind=kind))
        want = _functional_layers(ctx) if self.localized else [layer.index for layer in ctx.adapter.layers]
        if not (folder / "config.json").is_file():
            layers = "functional" if self.localized else "all"
            raise MethodUnavailable(f"no slider for {ctx.concept.name!r} at {folder} (train one with `tada slider "
                                    f"train --concept {ctx.concept.name} --layers {layers} --out {folder}`)")
        self.slider = load_slider(folder)
        self.slider.check_compatible(ctx.adapter)
        if self.slider.layers != sorted(want):
            raise MethodUnavailable(f"the slider at {folder} adapts layers {self.slider.layers}, not {sorted(want)}")
        self.layers = list(self.slider.layers)
        fit = (self.slider.training or {}).get("seeds")
        if fit is not None and set(fit) - set(ctx.fit_seeds):
            raise MethodUnavailable(f"the slider at {folder} was trained on seeds {fit}, not the fitting seeds "
                                    f"{list(ctx.fit_seeds)}")
        if self.slider.scale_range:
            self.max_strength = max(abs(float(x)) for x in self.slider.scale_range)

    def hyperparameters(self) -> dict[str, Any]:
        t = self.slider.training if self.slider is not None else {}
        return {**super().hyperparameters(), "rank": getattr(self.slider, "rank", None),
                "lora_alpha": getattr(self.slider, "lora_alpha", None), "eta": t.get("eta"),
                "train_steps": t.get("steps"), "lr": t.get("lr"), "fit_seeds": t.get("seeds"),
                "loss": [t.get("loss_before"), t.get("loss_after")]}

    def apply(self, ctx, bases, strengths):
        return self.slider.apply(ctx.adapter, list(strengths))


# --------------------------------------------------------------------------------------
# controls: random directions of the same norm
# --------------------------------------------------------------------------------------
def random_like(vectors: dict[int, torch.Tensor], seed: int) -> dict[int, torch.Tensor]:
    """Gaussian directions with the norm of ``vectors`` per layer (and per step, for [steps, width] vectors):
    r = g |v| / |g|, g ~ N(0, I) from a generator seeded ``seed`` (layers in sorted order); a zero row stays 0."""
    gen = torch.Generator().manual_seed(int(seed))
    out = {}
    for layer in sorted(vectors):
        v = vectors[layer].detach().to("cpu", torch.float32)
        g = torch.randn(v.shape, generator=gen, dtype=torch.float32)
        out[layer] = g * (v.norm(dim=-1, keepdim=True) / g.norm(dim=-1, keepdim=True).clamp_min(1e-12))
    return out


class RandomControl(Method):
    """The random-direction control of an activation-steering method (``parent``: CAA, SAE or AUSteer).

    The parent's directions are replaced by :func:`random_like` draws of the same norm per layer (and step);
    base prompt b gets draw b (seed b), so one control row costs one cell and its bootstrap over prompts
    includes the variance between draws. Strengths are the parent's own (the benchmark takes the parent's
    calibrated grid: ``follows``), so the row answers "how much of the parent's AUC would any direction of
    this norm, at the same strengths, get"."""

    def __init__(self, parent: Method):
        super().__init__()
        self.parent = parent
        self.follows = parent.key
        self.key, self.label = f"random-{parent.key}", f"{parent.label} random"
        self.draws: dict[int, dict[int, torch.Tensor]] = {}

    def _directions(self) -> dict[int, torch.Tensor]:
        p = self.parent
        if isinstance(p, VectorMethod):
            return {i: p.vector.vectors[i] for i in p.layers}
        if isinstance(p, AUSteer):
            return dict(p.vectors)
        raise TadaError(f"no random control for {type(p).__name__}; accepted parents: CAA, SAE, AUSteer")

    def setup(self, ctx: Context) -> None:
        self.parent.setup(ctx)
        self.layers, self.max_strength = self.parent.layers, self.parent.max_strength
        directions = self._directions()
        self.draws = {b: random_like(directions, b) for b in range(len(ctx.items))}

    @property
    def renorm(self) -> bool:
        return bool(getattr(self.parent, "renorm", True))

    def hyperparameters(self) -> dict[str, Any]:
        return {**self.parent.hyperparameters(), "control_of": self.parent.key,
                "draws": "draw b (torch seed b) for base prompt b; same norm per layer and step"}

    def apply(self, ctx, bases, strengths):
        terms = [(self.draws[b], [a if bb == b else 0.0 for bb, a in zip(bases, strengths)])
                 for b in sorted(set(bases))]
        return steer_sum(ctx.adapter, terms, use_renorm=self.renorm)


# --------------------------------------------------------------------------------------
# the registry of methods
# --------------------------------------------------------------------------------------
METHODS: dict[str, Any] = {
    "caa": lambda: VectorMethod("caa", "caa", localized=True),
    "caa-all": lambda: VectorMethod("caa-all", "caa", localized=False),
    "sae": lambda: VectorMethod("sae", "sae", localized=True),
    "pci": lambda: PCI(localized=False),
    "pci-f": lambda: PCI(localized=True),
    "text-emb": TextEmbeddings,
    "text-emb-f": lambda: TextEmbeddings(localized=True),
    "token-emb": TokenEmbeddings,
    "token-emb-f": lambda: TokenEmbeddings(localized=True),
    "freesliders": lambda: FreeSliders(localized=False),
    "freesliders-f": lambda: FreeSliders(localized=True),
    "austeer": lambda: AUSteer(localized=False),
    "austeer-f": lambda: AUSteer(localized=True),
    "sliders": lambda: Sliders(localized=False),
    "sliders-f": lambda: Sliders(localized=True),
    "random-caa": lambda: RandomControl(VectorMethod("caa", "caa", localized=True)),
    "random-caa-all": lambda: RandomControl(VectorMethod("caa-all", "caa", localized=False)),
    "random-sae": lambda: RandomControl(VectorMethod("sae", "sae", localized=True)),
    "random-austeer": lambda: RandomControl(AUSteer(localized=False)),
    "random-austeer-f": lambda: RandomControl(AUSteer(localized=True)),
}


def make_method(key: str, *, vector_renorm: bool = True) -> Method:
    """The method ``key`` of :data:`METHODS`. ``vector_renorm``: whether CAA and SAE vectors are steered
    with ReNorm (Eq. 3; on in the paper's benchmark configurations) or as ``h + alpha v`` (Eq. 2 without it,
    how a vector whose ``renorm`` is false had its alpha range validated). AUSteer keeps its ReNorm."""
    if key not in METHODS:
        raise TadaError(f"unknown method {key!r}; accepted: {', '.join(METHODS)}")
    method = METHODS[key]()
    for m in (method, getattr(method, "parent", None)):
        if isinstance(m, VectorMethod):
            m.renorm = bool(vector_renorm)
    return method


__all__ = ["Method", "Context", "MethodUnavailable", "METHODS", "make_method", "VectorMethod", "PCI",
           "TextEmbeddings", "TokenEmbeddings", "FreeSliders", "AUSteer", "austeer_mask", "Sliders", "RandomControl",
           "random_like"]
