"""Interventions on cross-attention layers: ``record``, ``patch`` and ``steer`` (``steer_sum``: several at once).

Each is a context manager over a :class:`~tada_core.adapters.ModelAdapter`. It
registers forward hooks on the chosen layers when entered and removes exactly those
hooks when left, also when an exception escapes, so contexts nest and hooks that
other code placed on the model survive. All three compose in any nesting order: on a layer,
the conditioning swap (``patch`` / ``condition``) always runs first, steering on top of it,
and ``record`` last, so a recording holds what the layer passes on (:func:`_add_output_hook`).
Hooks act only inside ``adapter.generate``; they read the diffusion step and the CFG layout
from ``adapter.run``.

Layer indices are 0-based module indices (see each adapter for how they map to the
papers' numbering, which counts from 1).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import numbers
from collections import defaultdict
from typing import Callable, Iterator, Literal, Mapping, Sequence

import torch

from tada_core.adapters.base import Conditioning, ModelAdapter, Run, hook_handles
from tada_core.errors import TadaError, check_finite, check_prompts

Branch = Literal["cond", "uncond", "both"]
BRANCHES = ("cond", "uncond", "both")


# The order of the interventions' output hooks on one layer, whatever order they were entered in; hooks that
# other code placed on the layer keep their place between steering and recording.
_ORDER = {"patch": 0, "steer": 1, "other": 1.5, "record": 2}


def _add_output_hook(module: torch.nn.Module, hook: Callable, kind: str, with_kwargs: bool = False):
    """Register ``hook`` as a forward hook of ``module`` at its place in :data:`_ORDER`; returns its handle.

    PyTorch runs a module's forward hooks in the order of ``module._forward_hooks`` (its own
    ``prepend`` moves one to the front); this sorts that dict stably by each hook's place, so
    hooks of one kind keep their registration order (the outer context's first)."""
    hook._tada_order = _ORDER[kind]
    handle = module.register_forward_hook(hook, with_kwargs=with_kwargs)
    hooks = module._forward_hooks
    ordered = sorted(hooks.items(), key=lambda item: getattr(item[1], "_tada_order", _ORDER["other"]))
    hooks.clear()
    hooks.update(ordered)
    return handle


def _active_run(adapter: ModelAdapter) -> Run | None:
    run = adapter.run
    return None if run is None or run.capture else run


# --------------------------------------------------------------------------------------
# record
# --------------------------------------------------------------------------------------
@dataclasses.dataclass
class Recording:
    """Cross-attention outputs captured by :func:`record`, conditional branch only.

    ``mode="mean"``: ``activations[layer]`` is [steps, samples, width], the output
    averaged over frames (the h-bar of TADA Eq. 2). ``mode="tokens"``: it is
    [steps, samples, tokens, width], a random subsample of frames per step. ``mode="frames"``:
    [steps, samples, frames, width], every frame in order (for statistics per frame, e.g.
    AUSteer's; best streamed through a ``sink``).
    """

    mode: str
    layers: tuple[int, ...]
    _steps: dict[int, list[torch.Tensor]] = dataclasses.field(default_factory=lambda: defaultdict(list))

    @property
    def activations(self) -> dict[int, torch.Tensor]:
        return {layer: torch.stack(self._steps[layer]) for layer in self.layers if self._steps[layer]}

    def clear(self) -> None:
        self._steps.clear()


Sink = Callable[[int, int, torch.Tensor], None]


@contextlib.contextmanager
def record(adapter: ModelAdapter, layers: Sequence[int] | None = None, *, mode: str = "mean",
           tokens: int = 16, seed: int = 0, sink: Sink | None = None) -> Iterator[Recording]:
    """Record cross-attention outputs at ``layers`` for every diffusion step.

    ``mode`` is ``"mean"`` (average over frames), ``"tokens"`` (``tokens`` frames drawn
    per step and sample with a generator seeded by ``seed``; all frames if fewer) or
    ``"frames"`` (every frame, in order).
    ``sink(layer, step, tensor)``, if given, receives each step's tensor instead of the
    in-memory :class:`Recording` (for streaming to disk).
    """
    if mode not in ("mean", "tokens", "frames"):
        raise TadaError(f"record mode must be 'mean', 'tokens' or 'frames'; got {mode!r}")
    if mode == "tokens" and (isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1):
        raise TadaError(f"tokens must be an integer >= 1; got {tokens!r}")
    layer_ids = adapter.resolve_layers(layers)
    recording = Recording(mode=mode, layers=layer_ids)
    rng = torch.Generator().manual_seed(seed)

    def make_hook(layer: int):
        def hook(module, args, output):
            run = _active_run(adapter)
            if run is None:
                return None
            output = adapter.layer_output(output)
            cond, _ = adapter.branch_rows(output.shape[0])
            h = output[cond].detach()
            if mode == "mean":
                value = h.float().mean(dim=1).cpu()
            elif mode == "frames":
                value = h.float().cpu()
            else:
                n_frames = h.shape[1]
                k = min(tokens, n_frames)
                idx = torch.stack([torch.randperm(n_frames, generator=rng)[:k] for _ in range(h.shape[0])])
                value = torch.gather(h, 1, idx.to(h.device)[..., None].expand(-1, -1, h.shape[-1])).float().cpu()
            if sink is not None:
                sink(layer, run.step, value)
            else:
                recording._steps[layer].append(value)
            return None
        return hook

    with hook_handles() as add:
        for i in layer_ids:
            add(_add_output_hook(adapter.layers[i].module, make_hook(i), "record"))
        yield recording


# --------------------------------------------------------------------------------------
# patch
# --------------------------------------------------------------------------------------
def _start_steps(from_step: int | Sequence[int]) -> list[int] | int:
    if isinstance(from_step, (int,)) and not isinstance(from_step, bool):
        steps: list[int] | int = from_step
        check = [from_step]
    else:
        steps = [s for s in from_step]
        check = steps
        if not steps:
            raise TadaError("from_step is an empty list; give an int or one int per sample")
    for s in check:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise TadaError(f"from_step must be a non-negative integer (a diffusion step); got {s!r}")
    return steps


@contextlib.contextmanager
def condition(adapter: ModelAdapter, layers: Sequence[int] | None,
              provide: Callable[[Run], Mapping[int, Conditioning]], *,
              from_step: int | Sequence[int] = 0) -> Iterator[None]:
    """Give ``layers`` other keys and values: the conditional branch attends to ``provide(run)[layer]``.

    The general form of :func:`patch`, used by the prompt-level baselines of the steering
    benchmark (PCI, Text and Token Embeddings): ``provide(run)`` is called once before each
    ``adapter.generate`` and returns, per layer, the conditioning (states [n_samples, tokens,
    dim] and mask) its conditional rows get instead of the prompt's. ``from_step``: the first
    diffusion step (0-based) at which the replacement acts, one int for all samples or one per
    sample; earlier steps, the unconditional branch and the other layers are untouched, and a
    sample whose ``from_step`` is beyond the last step is left bit-identical.
    """
    if not adapter.supports_patching:
        raise TadaError(f"{adapter.name} has no cross-attention keys and values to patch (its layers are "
                        f"{adapter.layer_kind}s); patching is for the diffusion families")
    layer_ids = adapter.resolve_layers(layers) if layers is None or len(layers) else ()
    starts = _start_steps(from_step)
    cached: dict[int, Conditioning] = {}

    def prepare(run: Run) -> None:
        cached.clear()
        if not layer_ids:
            return
        if isinstance(starts, list) and len(starts) != run.n_samples:
            raise TadaError(f"from_step has {len(starts)} values for a batch of {run.n_samples} samples; "
                            f"give one per sample or a single int")
        given = provide(run)
        for i in layer_ids:
            if i not in given:
                raise TadaError(f"no conditioning for layer {i}")
            c = given[i]
            if c.states.shape[0] != run.n_samples:
                raise TadaError(f"conditioning for layer {i} has {c.states.shape[0]} rows for {run.n_samples} "
                                f"samples")
            cached[i] = c

    def make_hook(layer: int):
        def hook(module, args, kwargs, output):
            run = _active_run(adapter)
            if run is None:
                return None
            active = [run.step >= s for s in (starts if isinstance(starts, list) else [starts] * run.n_samples)]
            if not any(active):
                return None
            hidden = args[0] if args else kwargs["hidden_states"]
            cond, _ = adapter.branch_rows(hidden.shape[0])
            target = cached[layer]
            call_kwargs = {k: v for k, v in kwargs.items() if k != "hidden_states"}
            call_kwargs[adapter.conditioning_kwarg] = target.states.to(hidden.device, hidden.dtype)
            call_kwargs[adapter.conditioning_mask_kwarg] = \
                None if target.mask is None else target.mask.to(hidden.device)
            # module.forward, not module(...): recompute without re-entering hooks.
            patched = module.forward(hidden[cond], *args[1:], **call_kwargs).to(output.dtype)
            out = output.clone()
            if all(active):
                out[cond] = patched
            else:
                keep = torch.tensor(active, device=out.device)[:, None, None]
                out[cond] = torch.where(keep, patched, output[cond])
            return out
        return hook

    remove_prepare = adapter.add_before_generate(prepare)
    try:
        with hook_handles() as add:
            for i in layer_ids:
                # the conditioning swap recomputes the layer's output: it runs before steering and recording
                add(_add_output_hook(adapter.layers[i].module, make_hook(i), "patch", with_kwargs=True))
            yield
    finally:
        remove_prepare()
        cached.clear()


@contextlib.contextmanager
def patch(adapter: ModelAdapter, layers: Sequence[int] | None, prompts: str | Sequence[str], *,
          from_step: int | Sequence[int] = 0) -> Iterator[None]:
    """Activation patching (TADA Sec. 3, Fig. 2): ``layers`` get the keys and values of ``prompts``.

    Inside the block, each ``adapter.generate(source_prompts, ...)`` first caches the
    conditioning that ``prompts`` (the target run) feed to the chosen layers, then
    generates the source prompts with those layers' conditional branch computing K and V
    from the target conditioning; every other layer, and the unconditional branch, keep
    the source prompt. ``prompts`` is one target prompt per source prompt, or a single
    prompt used for all. ``layers=[]`` patches nothing; ``None`` patches all layers.
    ``from_step`` (one int, or one per sample): patch from this diffusion step on (PCI,
    prompt concept injection, is patching every layer from step T - |alpha|).
    """
    targets = check_prompts(prompts, "patch prompts")
    layer_ids = adapter.resolve_layers(layers) if layers is None or len(layers) else ()

    def provide(run: Run) -> dict[int, Conditioning]:
        if len(targets) not in (1, run.n_samples):
            raise TadaError(f"patch has {len(targets)} target prompts for {run.n_samples} source prompts; "
                            f"give one target per source prompt, or a single target")
        batch = targets * run.n_samples if len(targets) == 1 else targets
        return adapter.capture_conditioning(batch, run.settings, layer_ids)

    with condition(adapter, layer_ids, provide, from_step=from_step):
        yield


# --------------------------------------------------------------------------------------
# steer
# --------------------------------------------------------------------------------------
def renorm(steered: torch.Tensor, original: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """ReNorm (TADA Eq. 3): rescale each token of ``steered`` to the L2 norm it had in ``original``."""
    return steered / steered.norm(dim=-1, keepdim=True).clamp_min(eps) * original.norm(dim=-1, keepdim=True)


def _steering_tensors(adapter: ModelAdapter, vectors: torch.Tensor | Mapping[int, torch.Tensor],
                      layers: Sequence[int] | None) -> dict[int, torch.Tensor]:
    if isinstance(vectors, torch.Tensor):
        layer_ids = adapter.resolve_layers(layers)
        per_layer = {i: vectors for i in layer_ids}
    elif isinstance(vectors, Mapping):
        if not vectors:
            raise TadaError("steer got an empty mapping of vectors; give at least one layer -> vector")
        keys = adapter.resolve_layers(list(vectors))
        layer_ids = adapter.resolve_layers(layers) if layers is not None else keys
        missing = [i for i in layer_ids if i not in vectors]
        if missing:
            raise TadaError(f"no steering vector for layers {missing}; vectors exist for layers {list(keys)}")
        per_layer = {i: vectors[i] for i in layer_ids}
    else:
        raise TadaError(f"vectors must be a tensor or a mapping layer -> tensor; got {type(vectors).__name__}")
    out = {}
    for i, v in per_layer.items():
        v = torch.as_tensor(v)
        width = adapter.layers[i].width
        if v.ndim not in (1, 2) or v.shape[-1] != width:
            raise TadaError(f"steering vector for layer {i} has shape {tuple(v.shape)}; layer {i} of "
                            f"{adapter.name} needs [{width}] or [steps, {width}]")
        if not torch.isfinite(v).all():
            raise TadaError(f"steering vector for layer {i} contains NaN or inf")
        out[i] = v.detach()
    return out


def _alphas(alpha: float | Sequence[float], name: str) -> tuple[list[float], bool]:
    """``alpha`` as a list of finite floats, and whether it is one per sample (a sequence) or one for all."""
    if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
        return [check_finite(name, alpha)], False
    try:
        values = list(alpha) if not isinstance(alpha, (bool, str, bytes)) else None
    except TypeError:
        values = None
    if values is None:
        raise TadaError(f"{name} must be a float or one float per sample; got {alpha!r}")
    alphas = [check_finite(f"{name}[{i}]", a) for i, a in enumerate(values)]
    if not alphas:
        raise TadaError(f"{name} is an empty list; give a float or one float per sample")
    return alphas, True


@dataclasses.dataclass
class _Term:
    """One summand of the steering at its layers: ``alphas`` (one, or one per sample) times ``vectors[layer]``."""

    vectors: dict[int, torch.Tensor]
    alphas: list[float]
    per_sample: bool

    def key(self) -> str:
        return term_digest(self.vectors, self.alphas if self.per_sample else self.alphas[0])


def term_digest(vectors: Mapping[int, torch.Tensor], alpha: float | Sequence[float]) -> str:
    """SHA-256 of what a steering term adds (its layers, vectors and alpha): sums of terms are formed in the order
    of this digest, so that the order the terms were given in changes no bit of the result."""
    h = hashlib.sha256()
    for layer in sorted(vectors):
        v = torch.as_tensor(vectors[layer]).detach().to("cpu", torch.float64).contiguous()
        h.update(f"{layer}:{tuple(v.shape)}:".encode())
        h.update(v.numpy().tobytes())
    h.update(repr(alpha if isinstance(alpha, numbers.Real) else [float(a) for a in alpha]).encode())
    return h.hexdigest()


@contextlib.contextmanager
def _steer_terms(adapter: ModelAdapter, terms: Sequence[_Term], *, use_renorm: bool,
                 branch: Branch | None) -> Iterator[None]:
    """One steering hook per layer that any term steers: h' = ReNorm(h + sum_k alpha_k * v_k, h) (see steer_sum).

    Everything is checked before the first hook is placed."""
    branch = adapter.default_branch if branch is None else branch
    if branch not in BRANCHES:
        raise TadaError(f"branch must be one of {', '.join(BRANCHES)}; got {branch!r}")
    counts = sorted({len(t.alphas) for t in terms if t.per_sample})
    if len(counts) > 1:
        raise TadaError(f"the steering terms give {' and '.join(map(str, counts))} alphas per sample; give every "
                        f"term one alpha per sample of the batch (the same number), or a single float")
    steps: dict[int, int] = {}
    for t in terms:
        for layer, v in t.vectors.items():
            if v.ndim == 2:
                steps.setdefault(int(v.shape[0]), layer)
    if len(steps) > 1:
        found = ", ".join(f"{n} (layer {layer})" for n, layer in sorted(steps.items()))
        raise TadaError(f"per-step steering vectors must cover the same diffusion steps; these cover {found}")
    # the sum is formed in one order fixed by the terms' content, so the order they were given in changes no bit
    ordered = sorted(terms, key=_Term.key) if len(terms) > 1 else list(terms)
    by_layer: dict[int, list[_Term]] = defaultdict(list)
    for t in ordered:
        for layer in t.vectors:
            by_layer[layer].append(t)

    def row_alphas(t: _Term, n_rows: int, n_samples: int) -> list[float]:
        """Alpha of every row of a denoiser batch (0 for rows of branches not steered)."""
        if t.per_sample and len(t.alphas) != n_samples:
            raise TadaError(f"steer got {len(t.alphas)} alphas for a batch of {n_samples} samples; "
                            f"give one alpha per sample or a single float")
        a = t.alphas if t.per_sample else t.alphas * n_samples
        cond, uncond = adapter.branch_rows(n_rows)
        rows = [0.0] * n_rows
        if branch in ("cond", "both"):
            rows[cond] = a
        if uncond is not None and branch in ("uncond", "both"):
            rows[uncond] = a
        return rows

    # Per call, the rows' alphas as a tensor and each vector (per step) on the output's device are made once:
    # an autoregressive model calls every hook once per token, so this is what steering costs there.
    cache: dict = {}

    def make_hook(layer: int):
        parts = [(t.vectors[layer], t) for t in by_layer[layer]]
        per_step = any(v.ndim == 2 for v, _ in parts)

        def hook(module, args, raw_output):
            run = _active_run(adapter)
            if run is None:
                return None
            output = adapter.layer_output(raw_output)
            for vector, _ in parts:
                if vector.ndim == 2:
                    if vector.shape[0] > run.settings.steps:
                        raise TadaError(f"layer {layer} has per-step vectors for {vector.shape[0]} steps, but this "
                                        f"generation runs {run.settings.steps}; use as many steps as the vector has")
                    if run.step >= vector.shape[0]:
                        raise TadaError(f"layer {layer} has per-step vectors for {vector.shape[0]} steps, but "
                                        f"generation is at step {run.step}; use as many steps as the vector has")
            key = (layer, run.step if per_step else None, output.device, output.dtype, run.n_samples,
                   output.shape[0])
            prepared = cache.get(key)
            if prepared is None:
                active, steered_rows = [], None
                for vector, t in parts:
                    v = vector if vector.ndim == 1 else vector[run.step]
                    rows = row_alphas(t, output.shape[0], run.n_samples)
                    if not (any(rows) and bool(v.any())):   # adds nothing anywhere: skipped, which is exact
                        continue
                    a = torch.tensor(rows, dtype=output.dtype, device=output.device)[:, None, None]
                    active.append((v.to(output.device, output.dtype), a))
                    steered_rows = (a != 0) if steered_rows is None else steered_rows | (a != 0)
                prepared = (active, steered_rows)
                if len(cache) > 4096:
                    cache.clear()
                cache[key] = prepared
            active, steered_rows = prepared
            if not active:   # nothing to add: leave the output bit-identical
                return None
            # rows with alpha 0 add 0 * v = 0 exactly (v is finite), so they keep their exact values, and a term
            # with alpha 0 leaves the sum of the others exactly as it was
            steered = output
            for v, a in active:
                steered = torch.addcmul(steered, a, v)
            if use_renorm:   # ... but ReNorm would round them: keep them as they were
                steered = torch.where(steered_rows, renorm(steered, output), output)
            return adapter.with_layer_output(raw_output, steered)
        return hook

    with hook_handles() as add:
        for i in sorted(by_layer):
            add(_add_output_hook(adapter.layers[i].module, make_hook(i), "steer"))
        yield


@contextlib.contextmanager
def steer(adapter: ModelAdapter, vectors: torch.Tensor | Mapping[int, torch.Tensor],
          alpha: float | Sequence[float], *, layers: Sequence[int] | None = None,
          use_renorm: bool = True, branch: Branch | None = None) -> Iterator[None]:
    """Activation steering: h' = ReNorm(h + alpha * v, h) at the chosen layers (TADA Eq. 2-3; Eq. 8 without ReNorm).

    ``vectors``: one tensor for all ``layers``, or a mapping layer -> tensor; a tensor is
    [width] (every step) or [steps, width] (one vector per diffusion step).
    ``alpha``: a float, or one float per sample of the batch, so that an alpha sweep or
    an original-vs-steered pair (alpha 0 and alpha a) is a single batched call; samples
    with alpha 0 are left bit-identical. Signed: negative alpha removes the concept.
    ``use_renorm``: apply ReNorm (Eq. 3) per token. On by default: the paper steers CAA
    with it (Eq. 2-3), and every number it reports (CAA, SAE and AUSteer in Table 3) was
    made with it on (the reference code's benchmark configurations), although the
    reference code's own default is off and Eq. 8 adds SAE vectors without it; pass False
    for Eq. 8 literally, or to match the reference code's defaults.
    ``branch``: which CFG branch to steer: ``"cond"`` (the diffusion families' default, as in the
    TADA paper's code; the effect is then amplified by the guidance scale), ``"uncond"``, or
    ``"both"`` (MusicGen's default, as in Facchiano et al.); None: the family's default
    (``adapter.default_branch``).
    Several vectors at once, each with its own alpha: :func:`steer_sum`.
    """
    if branch is not None and branch not in BRANCHES:
        raise TadaError(f"branch must be one of {', '.join(BRANCHES)}; got {branch!r}")
    alphas, per_sample = _alphas(alpha, "alpha")
    steering = _steering_tensors(adapter, vectors, layers)
    with _steer_terms(adapter, [_Term(steering, alphas, per_sample)], use_renorm=use_renorm, branch=branch):
        yield


@contextlib.contextmanager
def steer_sum(adapter: ModelAdapter,
              terms: Sequence[tuple[torch.Tensor | Mapping[int, torch.Tensor], float | Sequence[float]]], *,
              use_renorm: bool = True, branch: Branch | None = None) -> Iterator[None]:
    """Several steering vectors at once: h' = ReNorm(h + sum_k alpha_k * v_k, h) (TADA Eq. 2-3 with a sum of
    steering terms; Eq. 8 summed without ReNorm).

    ``terms``: ``(vectors, alpha)`` pairs, each as in :func:`steer` (``vectors``: a mapping layer -> [width] or
    [steps, width] tensor, steering exactly those layers, or one tensor for every layer; ``alpha``: a float or one
    per sample). A layer gets the terms that steer it, all in one hook; the others are untouched.
    Exact properties (tested bit for bit):

    - the order of ``terms`` changes nothing: the terms are added one after another in an order fixed by their
      content (layers, vectors, alphas), not by their place in the list;
    - a term whose alpha is 0 (for a sample) adds exactly nothing (to it): ``[(A, 0), (B, b)]`` is ``B`` alone,
      and one term is :func:`steer`;
    - ReNorm (``use_renorm``) applies once, after the whole sum, to the rows at least one term steers.

    Per-sample alphas must be as many for every term; per-step vectors must cover the same steps.
    ``branch``: as in :func:`steer`, one for all terms.
    """
    if branch is not None and branch not in BRANCHES:
        raise TadaError(f"branch must be one of {', '.join(BRANCHES)}; got {branch!r}")
    if isinstance(terms, (str, bytes)) or not isinstance(terms, Sequence) or not terms:
        raise TadaError(f"steer_sum needs a non-empty list of (vectors, alpha) pairs; got {terms!r}")
    built = []
    for k, term in enumerate(terms):
        if not isinstance(term, (tuple, list)) or len(term) != 2:
            raise TadaError(f"term {k} of steer_sum must be a (vectors, alpha) pair; got {term!r}")
        vectors, alpha = term
        alphas, per_sample = _alphas(alpha, f"alpha of term {k}")
        built.append(_Term(_steering_tensors(adapter, vectors, None), alphas, per_sample))
    with _steer_terms(adapter, built, use_renorm=use_renorm, branch=branch):
        yield


__all__ = ["record", "patch", "condition", "steer", "steer_sum", "term_digest", "renorm", "Recording", "BRANCHES"]
