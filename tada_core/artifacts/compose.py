"""Composed steering: several steering vectors in one generation (:func:`compose`), and concept arithmetic, a new
vector from a weighted sum of saved ones (:func:`combine`, ``tada vector combine``). See docs/composition.md.

Both add, at each layer, what each vector would add there on its own (its own layers, its One-to-All strategy,
its per-step vectors), so ``combine([(A, a), (B, b)])`` at alpha 1 steers as ``compose(model, [(A, a), (B, b)])``
does. ReNorm (TADA Eq. 3), when on, rescales each steered token once, after the whole sum.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from typing import Any, Iterator, Mapping, Sequence

import torch

from tada_core.artifacts.vectors import SteeringVector
from tada_core.errors import TadaError, check_finite
from tada_core.interventions.hooks import Branch, steer_sum, term_digest

COMBINED = "combined"   # the method of a vector made by combine


def _label(vec: SteeringVector, k: int) -> str:
    return f"vector {k} ({vec.concept!r}, {vec.method})"


def _check_items(items: Any, what: str) -> list[tuple[SteeringVector, Any]]:
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence) or not items:
        raise TadaError(f"{what} needs a non-empty list of (SteeringVector, {'weight' if what == 'combine' else 'alpha'})"
                        f" pairs; got {items!r}")
    out = []
    for k, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[0], SteeringVector):
            raise TadaError(f"item {k} of {what} must be a (SteeringVector, number) pair; got {item!r}")
        out.append((item[0], item[1]))
    return out


def _per_item_layers(layers: Any, n: int) -> list[Sequence[int] | None]:
    """``layers`` of :func:`compose` as one entry per vector: None (each its default), one list of layer indices for
    every vector, or one entry (a list, or None for its default) per vector."""
    if layers is None:
        return [None] * n
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise TadaError(f"layers must be None, a list of layer indices, or one list (or None) per vector; "
                        f"got {layers!r}")
    if all(isinstance(x, int) and not isinstance(x, bool) for x in layers):
        return [list(layers)] * n
    if all(x is None or (isinstance(x, Sequence) and not isinstance(x, (str, bytes))) for x in layers):
        if len(layers) != n:
            raise TadaError(f"layers gives {len(layers)} per-vector entries for {n} vectors; give one per vector "
                            f"(None: that vector's default layers) or a single list of layer indices for all")
        return [None if x is None else list(x) for x in layers]
    raise TadaError(f"layers must be None, a list of layer indices, or one list (or None) per vector; got {layers!r}")


def steered_layers(vec: SteeringVector, model_layers: Sequence[int] | None = None,
                   layers: Sequence[int] | None = None) -> list[int]:
    """Where ``vec`` steers: ``layers`` if given, else its default, as :meth:`SteeringVector.apply` chooses.

    A One-to-All vector (DiffMean) steers every layer of the model (``model_layers``, the adapter's layer indices);
    without a model, every layer it records, which for DiffMean is every layer of its model."""
    if layers is not None:
        return sorted(set(int(x) for x in layers))
    if vec.strategy and vec.strategy["name"] == "one-to-all":
        return sorted(model_layers) if model_layers is not None else vec.layers
    return vec.default_layers()


def composed_renorm(vectors: Sequence[SteeringVector], use_renorm: bool | None,
                    choose: str = "use_renorm=True or False (CLI: --renorm or --no-renorm)") -> bool:
    """The ReNorm setting of a composition: ``use_renorm`` if given, else the setting every vector was validated
    with (:meth:`SteeringVector.default_renorm`); vectors that disagree are refused (ReNorm applies once, after the
    sum, so it cannot be on for one vector and off for another)."""
    if use_renorm is not None:
        if not isinstance(use_renorm, bool):
            raise TadaError(f"use_renorm must be True, False or None; got {use_renorm!r}")
        return use_renorm
    settings = {vec.default_renorm() for vec in vectors}
    if len(settings) > 1:
        which = ", ".join(f"{_label(vec, k)}: ReNorm {'on' if vec.default_renorm() else 'off'}"
                          for k, vec in enumerate(vectors))
        raise TadaError(f"these vectors were validated with different ReNorm settings ({which}); ReNorm applies "
                        f"once to the sum, so choose: {choose}")
    return settings.pop()


@contextlib.contextmanager
def compose(adapter, items: Sequence[tuple[SteeringVector, float | Sequence[float]]], *,
            layers: Sequence[int] | Sequence[Sequence[int] | None] | None = None,
            use_renorm: bool | None = None, branch: Branch | None = None,
            orthogonalize: bool = False) -> Iterator[None]:
    """Steer ``adapter`` with several vectors at once: h' = ReNorm(h + sum_k alpha_k * v_k, h) (TADA Eq. 2-3 with
    a sum of steering terms; :func:`~tada_core.interventions.hooks.steer_sum`).

    ``items``: ``(vector, alpha)`` pairs; ``alpha`` is a float or one float per sample (every per-sample list of
    the same length), so a grid of strengths is one batched call. Each vector steers where
    :meth:`SteeringVector.apply` would (its functional layers, else every layer it has; One-to-All: its source
    layer's vector into every layer; per-step vectors per step), unless ``layers`` says otherwise: one list of
    layer indices for every vector, or one entry per vector (None: that vector's default).
    ``use_renorm``: ReNorm (Eq. 3), once, after the sum; default: the setting the vectors were validated with,
    which must then be the same for all (:func:`composed_renorm`). ``branch``: as in ``steer``.
    ``orthogonalize``: on every layer that two or more vectors steer, steer with :func:`orthogonalized` versions
    of them (mutually orthogonal there, each of its own norm); vectors whose alpha is 0 for every sample take no
    part, so strength 0 stays absent.

    Exact, bit for bit: the order of ``items`` changes nothing; a vector at alpha 0 adds nothing (``[(A, 0),
    (B, b)]`` is ``B.apply(model, b)``), and one item is ``vector.apply``. Everything is checked before any hook is
    placed (every vector made for this model, widths, alpha counts, per-step lengths); the hooks are removed on
    leaving the block, also on an error, and no others.
    """
    pairs = _check_items(items, "compose")
    per_item = _per_item_layers(layers, len(pairs))
    for vec, _ in pairs:
        vec.check_compatible(adapter)
    counts = {}
    for k, (vec, alpha) in enumerate(pairs):
        if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
            check_finite(f"the alpha of {_label(vec, k)}", alpha)
            continue
        try:
            values = list(alpha) if not isinstance(alpha, (bool, str, bytes)) else None
        except TypeError:
            values = None
        if not values:
            raise TadaError(f"the alpha of {_label(vec, k)} must be a float or one float per sample; got {alpha!r}")
        for i, a in enumerate(values):
            check_finite(f"the alpha of {_label(vec, k)}[{i}]", a)
        counts[k] = len(values)
    if len(set(counts.values())) > 1:
        which = ", ".join(f"{_label(pairs[k][0], k)} has {n}" for k, n in counts.items())
        raise TadaError(f"per-sample alphas must be as many for every vector (one per sample of the batch): {which}")
    renorm_on = composed_renorm([vec for vec, _ in pairs], use_renorm)
    terms = []
    for (vec, alpha), chosen in zip(pairs, per_item):
        where = steered_layers(vec, [layer.index for layer in adapter.layers], chosen)
        terms.append((vec.injected(where), alpha))
    if orthogonalize:
        active = [k for k, (_, alpha) in enumerate(pairs) if _nonzero(alpha)]
        made = orthogonalized([terms[k][0] for k in active])
        for k, vectors in zip(active, made):
            terms[k] = (vectors, terms[k][1])
    with steer_sum(adapter, terms, use_renorm=renorm_on, branch=branch):
        yield


def _nonzero(alpha: Any) -> bool:
    return any(float(a) != 0 for a in alpha) if not isinstance(alpha, numbers.Real) else float(alpha) != 0


MIN_GRAM_EIGENVALUE = 1e-3   # below it the vectors on a layer are (anti)parallel to 3 decimals: no orthogonal basis


def orthogonalized(terms: Sequence[Mapping[int, torch.Tensor]]) -> list[dict[int, torch.Tensor]]:
    """The steering vectors of several terms made mutually orthogonal on every layer two or more of them steer,
    each keeping its norm there (per step, for per-step vectors).

    On such a layer the unit directions u_k = v_k / |v_k| are replaced by Loewdin's symmetric orthogonalization
    W = (U U^T)^(-1/2) U (Loewdin 1950): the orthonormal set closest to them in the least-squares sense, which
    treats every vector alike (Gram-Schmidt would keep the first vector and bend the others, so the result would
    depend on their order); then v_k' = |v_k| w_k. Layers that one term steers alone are untouched. A [width] vector
    on a layer with per-step vectors is orthogonalized per step (it becomes per-step there). The computation runs
    in float64, in an order fixed by the terms' content, so the order they are given in changes no bit.
    Refused when the vectors on a layer are nearly parallel (the smallest eigenvalue of U U^T below
    ``MIN_GRAM_EIGENVALUE``): no nearby orthogonal set exists.
    """
    order = sorted(range(len(terms)), key=lambda k: term_digest(terms[k], 0.0))
    out = [dict(t) for t in terms]
    layers = sorted({layer for t in terms for layer in t})
    for layer in layers:
        ks = [k for k in order if layer in terms[k]]
        if len(ks) < 2:
            continue
        raw = [torch.as_tensor(terms[k][layer]).detach() for k in ks]
        steps = {int(v.shape[0]) for v in raw if v.dim() == 2}
        if len(steps) > 1:
            raise TadaError(f"layer {layer}: per-step vectors cover different numbers of steps {sorted(steps)}")
        n_steps = steps.pop() if steps else None
        stack = torch.stack([(v if v.dim() == 2 else v.expand(n_steps, -1)) if n_steps else v.unsqueeze(0)
                             for v in raw]).to(torch.float64)                      # [terms, steps, width]
        norms = stack.norm(dim=-1, keepdim=True)                                   # [terms, steps, 1]
        if bool((norms == 0).any()):
            raise TadaError(f"layer {layer}: a steering vector is zero there; nothing to orthogonalize against")
        unit = (stack / norms).transpose(0, 1)                                     # [steps, terms, width]
        gram = unit @ unit.transpose(1, 2)
        eigval, eigvec = torch.linalg.eigh(gram)
        if float(eigval.min()) < MIN_GRAM_EIGENVALUE:
            raise TadaError(f"layer {layer}: the steering vectors there are nearly parallel (smallest Gram eigenvalue "
                            f"{float(eigval.min()):.2g} < {MIN_GRAM_EIGENVALUE}); they cannot be orthogonalized")
        inv_sqrt = eigvec @ torch.diag_embed(eigval.rsqrt()) @ eigvec.transpose(1, 2)
        ortho = (inv_sqrt @ unit).transpose(0, 1) * norms                          # [terms, steps, width]
        for j, k in enumerate(ks):
            v = ortho[j] if n_steps else ortho[j, 0]
            out[k][layer] = v.to(raw[j].dtype)
    return out


# --------------------------------------------------------------------------------------
# concept arithmetic
# --------------------------------------------------------------------------------------
def combined_alpha_range(terms: Sequence[tuple[SteeringVector, float]]) -> tuple[float, float] | None:
    """The alphas at which every source's own strength, alpha * weight, stays inside the range it was validated
    over: the intersection over sources of {alpha : lo_k <= alpha * w_k <= hi_k}. None if a source with a non-zero
    weight has no range, or no alpha but 0 fits. It bounds each concept's strength, not the combination's effect,
    which nobody has measured yet (``tada verify`` on the combined vector does)."""
    lo, hi = -math.inf, math.inf
    for vec, w in terms:
        if w == 0:
            continue
        if vec.alpha_range is None:
            return None
        a, b = sorted(float(x) / w for x in vec.alpha_range)
        lo, hi = max(lo, a), min(hi, b)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        return None
    return (lo, hi)


def _expression(terms: Sequence[tuple[SteeringVector, float]]) -> str:
    """``1*tempo - 0.5*drums``: the concept name of a combination."""
    text = ""
    for k, (vec, w) in enumerate(terms):
        sign = "-" if w < 0 else "+"
        text += (("-" if w < 0 else "") if k == 0 else f" {sign} ") + f"{abs(w):g}*{vec.concept}"
    return text


def combine(terms: Sequence[tuple[SteeringVector, float]], *, concept: str | None = None,
            sources: Sequence[Mapping[str, Any]] | None = None, renorm: bool | None = None,
            command: str | None = None) -> SteeringVector:
    """Concept arithmetic: one vector from a weighted sum (or difference) of vectors of one model.

    ``terms``: ``(vector, weight)`` pairs, weights signed. Layer l of the result is the sum of w_k * v_k(l) over the
    sources that steer layer l by default (:func:`steered_layers`: their functional layers, else every layer they
    have; One-to-All: the source layer's vector at every layer the vector records); a source that does not steer
    layer l adds zero there. The result steers the union of those layers, so at alpha 1 it adds what
    ``compose(model, terms)`` adds (equal up to float rounding; tested). Per-step and per-layer vectors mix: a
    [width] vector counts at every step; per-step sources must cover the same steps.

    The result: method ``"combined"``, ``concept`` (default ``1*tempo - 0.5*drums``), ``renorm`` (default: the
    sources' common setting; sources that disagree are refused), ``alpha_range`` from
    :func:`combined_alpha_range`, and the recipe in ``extra["recipe"]``: per source, in the order given, its
    ``weight``, ``concept``, ``method`` and the ``layers`` it contributes, plus what ``sources[k]`` says about it
    (e.g. ``{"source": name or path, "sha256": its folder's digest}``, as ``tada vector combine`` records).
    Refused, with the reason: no terms, vectors of different models (or revisions, or module paths or widths on one
    layer), non-finite or all-zero weights.
    """
    pairs = _check_items(terms, "combine")
    if any(isinstance(w, bool) for _, w in pairs):
        raise TadaError("weights must be numbers, not True or False")
    weighted = [(vec, check_finite(f"weight of {_label(vec, k)}", w)) for k, (vec, w) in enumerate(pairs)]
    if all(w == 0 for _, w in weighted):
        raise TadaError("every weight is 0: the combination would be a zero vector; give at least one non-zero "
                        "weight")
    if sources is not None and len(sources) != len(weighted):
        raise TadaError(f"sources describes {len(sources)} vectors for {len(weighted)} terms; give one per term")
    first = weighted[0][0]
    for k, (vec, _) in enumerate(weighted[1:], 1):
        if vec.model != first.model:
            raise TadaError(f"cannot combine vectors of different models: {_label(first, 0)} was made for "
                            f"{first.model!r}, {_label(vec, k)} for {vec.model!r}; every source must be made for "
                            f"the same model")
        if vec.model_revision != first.model_revision:
            raise TadaError(f"cannot combine vectors of different revisions of {first.model!r}: "
                            f"{first.model_revision!r} ({_label(first, 0)}) and {vec.model_revision!r} "
                            f"({_label(vec, k)})")
    paths: dict[int, str] = {}
    widths: dict[int, int] = {}
    for k, (vec, _) in enumerate(weighted):
        for layer, path in vec.layer_paths.items():
            width = vec.widths()[layer]
            if paths.setdefault(layer, path) != path or widths.setdefault(layer, width) != width:
                raise TadaError(f"layer {layer} is {path!r} (width {width}) in {_label(vec, k)} but "
                                f"{paths[layer]!r} (width {widths[layer]}) in an earlier source; the sources "
                                f"disagree about the model")
    renorm_setting = renorm
    if renorm is None:
        # refuses sources that disagree
        composed_renorm([vec for vec, _ in weighted], None, "renorm=True or False (CLI: --renorm or --no-renorm)")
        recorded = {vec.renorm for vec, _ in weighted}
        renorm_setting = recorded.pop() if len(recorded) == 1 else weighted[0][0].default_renorm()
    elif not isinstance(renorm, bool):
        raise TadaError(f"renorm must be True, False or None; got {renorm!r}")

    contributions = [(vec, w, vec.injected(steered_layers(vec))) for vec, w in weighted]
    steps = {}
    for k, (vec, _, injected) in enumerate(contributions):
        for layer, v in injected.items():
            if v.ndim == 2:
                steps.setdefault(int(v.shape[0]), _label(vec, k))
    if len(steps) > 1:
        found = ", ".join(f"{n} ({who})" for n, who in sorted(steps.items()))
        raise TadaError(f"per-step sources must cover the same diffusion steps; these cover {found}")
    # summed in an order fixed by content (as the steering hook does), so the order of terms changes no bit
    ordered = sorted(contributions, key=lambda c: term_digest(c[2], c[1]))
    summed: dict[int, torch.Tensor] = {}
    for vec, w, injected in ordered:
        for layer, v in injected.items():
            term = w * v
            summed[layer] = term if layer not in summed else summed[layer] + term
    recipe = []
    for k, (vec, w, injected) in enumerate(contributions):
        entry: dict[str, Any] = {"weight": w, "concept": vec.concept, "method": vec.method,
                                 "layers": sorted(injected)}
        if sources is not None:
            entry.update(dict(sources[k]))
        recipe.append(entry)
    alpha_range = combined_alpha_range(weighted)
    return SteeringVector(vectors=summed, concept=concept or _expression(weighted), model=first.model,
                          layer_paths={layer: paths[layer] for layer in summed}, method=COMBINED,
                          model_revision=first.model_revision, alpha_range=alpha_range, command=command,
                          extra={"recipe": recipe}, renorm=renorm_setting)


__all__ = ["compose", "combine", "composed_renorm", "combined_alpha_range", "orthogonalized", "steered_layers", "COMBINED"]
