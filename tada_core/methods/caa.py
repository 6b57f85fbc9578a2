"""Contrastive Activation Addition (TADA Eq. 2; applied with Eq. 2-3 through :func:`tada_core.interventions.hooks.steer`).

For N contrastive prompt pairs (P_c^(i), P_c-tilde^(i)), each generated with the same seed,
record the cross-attention outputs averaged over frames (h-bar) at every layer, and take

    v_c = 1/N sum_i (h-bar_c^(i) - h-bar_c-tilde^(i)),      v_c^CAA = v_c / ||v_c||_2     (Eq. 2)

By default h-bar is also averaged over the diffusion steps, giving one [width] vector per
layer that works at any step count; ``per_step=True`` keeps one unit vector per step
([steps, width], as the paper's public code stores them). Vectors are computed for every
layer in ``layers`` at once (one recording), so steering any subset later is free; the
vector remembers the concept's functional layers and steers only those by default.
"""

from __future__ import annotations

from typing import Sequence

import torch
from tqdm.auto import tqdm

from tada_core.runtime.distributed import Processes
from tada_core.errors import TadaError, check_prompts
from tada_core.interventions.hooks import record
from tada_core.adapters.settings import GenerationSettings
from tada_core.artifacts.vectors import SteeringVector


def caa_vector(h_pos: torch.Tensor, h_neg: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Eq. 2 of the TADA paper on recorded activations.

    ``h_pos``, ``h_neg``: [N, width] (frame-averaged outputs per pair) or [steps, N, width]
    (per diffusion step). Returns the unit-norm mean difference, [width] or [steps, width]
    (each step's vector normalized on its own).
    """
    if h_pos.shape != h_neg.shape:
        raise TadaError(f"positive and negative activations differ in shape: {tuple(h_pos.shape)} vs "
                        f"{tuple(h_neg.shape)}")
    if h_pos.ndim not in (2, 3) or h_pos.shape[-2] == 0:
        raise TadaError(f"activations must be [N, width] or [steps, N, width] with N >= 1; got {tuple(h_pos.shape)}")
    v = (h_pos.double() - h_neg.double()).mean(dim=-2)
    norm = v.norm(dim=-1, keepdim=True)
    if (norm <= eps).any():
        raise TadaError("positive and negative prompts give identical mean activations; the concept has no "
                        "direction here (are the prompt lists the same?)")
    return (v / norm).float()


def record_pairs(adapter, positive: Sequence[str], negative: Sequence[str], *, layers: Sequence[int] | None = None,
                 seeds: Sequence[int] | None = None, settings: GenerationSettings | None = None,
                 progress: bool = True, processes: Processes | None = None,
                 ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """Frame-averaged cross-attention outputs for each pair: two dicts layer -> [steps, N, width].

    Pair i runs P_c^(i) and P_c-tilde^(i) with the same seed (``seeds[i]``, default i), in
    the same batch (``settings.batch_size`` clips per call, so ``batch_size // 2`` pairs),
    so the difference is the prompt's and not the noise's. ``processes``: a multi-process
    run (:func:`tada_core.runtime.distributed.launched`) deals the batches across processes and
    gathers them back in order, so every process returns what one process would.
    """

    pos = check_prompts(positive, "positive prompts")
    neg = check_prompts(negative, "negative prompts")
    if len(pos) != len(neg):
        raise TadaError(f"{len(pos)} positive but {len(neg)} negative prompts; CAA pairs them in order, so give as "
                        f"many of each")
    seeds = list(range(len(pos))) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != len(pos):
        raise TadaError(f"{len(seeds)} seeds for {len(pos)} prompt pairs; give one seed per pair")
    settings = adapter.resolve_settings(settings)
    if settings.batch_size < 2:
        raise TadaError(f"batch_size must be an integer >= 2 (a pair per call at least); got {settings.batch_size!r}")
    layer_ids = adapter.resolve_layers(layers)
    per_call = settings.batch_size // 2
    processes = processes or Processes()
    starts = processes.share(list(range(0, len(pos), per_call)))
    got: dict[int, dict[int, torch.Tensor]] = {}          # batch start -> layer -> [steps, 2m, width]
    for k in tqdm(starts, desc=f"CAA pairs{processes.label()}", unit="batch",
                  disable=not progress or not processes.main):
        p, n, s = pos[k:k + per_call], neg[k:k + per_call], seeds[k:k + per_call]
        with record(adapter, layers=layer_ids, mode="mean") as rec:
            adapter.generate(p + n, seeds=s + s, settings=settings)
        got[k] = dict(rec.activations)
    if processes.distributed:
        got = {k: v for part in processes.gather(got) for k, v in part.items()}
    order = sorted(got)
    return ({i: torch.cat([got[k][i][:, :len(pos[k:k + per_call])] for k in order], dim=1) for i in layer_ids},
            {i: torch.cat([got[k][i][:, len(pos[k:k + per_call]):] for k in order], dim=1) for i in layer_ids})


def compute_caa(adapter, positive: Sequence[str], negative: Sequence[str], *, concept: str,
                layers: Sequence[int] | None = None, functional_layers: Sequence[int] | None = None,
                seeds: Sequence[int] | None = None, per_step: bool = False, settings: GenerationSettings | None = None,
                alpha_range: tuple[float, float] | None = None, progress: bool = True,
                processes: Processes | None = None) -> SteeringVector:
    """CAA steering vectors (Eq. 2) for ``concept`` at ``layers`` (default: all), as one artifact.

    ``functional_layers``: where the vector steers by default (e.g. from
    :func:`tada_core.methods.localize.localize`); ``per_step``: keep one vector per diffusion step;
    ``processes``: a multi-process run records its share of the pairs (every process returns the vector).
    Save it with ``.save("vectors/<name>")``; apply it with ``.apply(model, alpha)``.
    """
    settings = adapter.resolve_settings(settings)
    h_pos, h_neg = record_pairs(adapter, positive, negative, layers=layers, seeds=seeds, settings=settings,
                                progress=progress, processes=processes)
    vectors = {}
    for layer in h_pos:
        hp, hn = h_pos[layer], h_neg[layer]
        vectors[layer] = caa_vector(hp, hn) if per_step else caa_vector(hp.mean(0), hn.mean(0))
    return SteeringVector(
        vectors=vectors, concept=concept, model=adapter.name,
        layer_paths={layer: adapter.layers[layer].path for layer in vectors}, method="caa",
        prompts={"positive": list(positive), "negative": list(negative)}, alpha_range=alpha_range,
        functional_layers=list(functional_layers) if functional_layers else None,
        extra={"seeds": list(range(len(positive))) if seeds is None else [int(s) for s in seeds],
               "per_step": per_step, "steps": settings.steps, "guidance": settings.guidance,
               "duration": settings.duration, **adapter.options()})


__all__ = ["caa_vector", "record_pairs", "compute_caa"]
