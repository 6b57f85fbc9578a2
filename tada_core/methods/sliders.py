"""Training Concept Sliders (Gandikota et al., 2024, Sec. 3, Eq. 3-4) through the model adapter.

For a neutral prompt c_t ("a pop song"), a positive c+ ("a fast pop song") and a negative c- ("a slow pop
song"), the slider theta (a LoRA on chosen cross-attention projections, :mod:`tada_core.artifacts.slider`)
is trained so that the adapted model's prediction for the neutral prompt moves toward c+ and away from c-:

    eps_theta(x_t, c_t, t)  ->  eps(x_t, c_t, t) + eta (eps(x_t, c+, t) - eps(x_t, c-, t))      (Eq. 4)

with eps the frozen model (here: the family's prediction, noise or velocity) and L2 regression. x_t comes
from the model's own sampling: the neutral prompt is generated with the pipeline's scheduler and guidance on
the fitting seeds, and at every diffusion step the conditional branch's denoiser inputs are captured and the
three frozen predictions made (the positive and negative conditionings are given to every cross-attention
layer, as FreeSliders does at inference). Training then re-runs the captured inputs through the adapted
denoiser (:meth:`ModelAdapter.replaying`), so it costs a few generations plus ``steps`` forward and
backward passes, and works on every diffusion family the adapter supports.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from tada_core.adapters.base import Conditioning, Run, hook_handles
from tada_core.adapters.settings import GenerationSettings
from tada_core.artifacts.slider import ADAPTER_NAME, ConceptSlider, lora, projections
from tada_core.errors import TadaError

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SliderTraining:
    """Hyperparameters of :func:`train_slider`: LoRA ``rank`` and ``lora_alpha``, the guidance ``eta`` of Eq. 4,
    ``steps`` of AdamW at learning rate ``lr`` (one captured batch of base prompts per step), ``seed`` of the
    batch order, ``fit_seeds``: the seeds the neutral prompts are generated with for x_t (never a benchmark's)."""

    rank: int = 4
    lora_alpha: float = 4.0
    eta: float = 1.0
    steps: int = 300
    lr: float = 2e-3
    seed: int = 0
    fit_seeds: tuple[int, ...] = (0, 1, 2, 3)

    def __post_init__(self) -> None:
        for name in ("rank", "steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise TadaError(f"{name} must be a positive integer; got {v!r}")
        for name in ("lora_alpha", "lr", "eta"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or v != v or v == float("inf"):
                raise TadaError(f"{name} must be a positive finite number; got {v!r}")
        if not self.fit_seeds:
            raise TadaError("fit_seeds is empty; give at least one seed")
        object.__setattr__(self, "fit_seeds", tuple(int(s) for s in self.fit_seeds))


@dataclasses.dataclass
class _Sample:
    """One captured denoiser call (conditional rows) and its Eq. 4 target."""

    run: Run
    args: tuple
    kwargs: dict[str, Any]
    target: torch.Tensor


def _tensor(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        return output[0]
    if hasattr(output, "sample"):
        return output.sample
    raise TadaError(f"cannot read the denoiser's output of type {type(output).__name__}")


def _detached(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, tuple):
        return tuple(_detached(v) for v in x)
    if isinstance(x, list):
        return [_detached(v) for v in x]
    if isinstance(x, dict):
        return {k: _detached(v) for k, v in x.items()}
    return x


def slider_targets(adapter, triples: Sequence[tuple[str, str, str]], *, eta: float, seeds: Sequence[int],
                   settings: GenerationSettings | None = None) -> list[_Sample]:
    """Eq. 4's targets on the model's own trajectories: for each seed, the neutral prompts of ``triples``
    ((neutral, positive, negative) per base) are generated, and at every diffusion step the conditional rows'
    denoiser inputs are kept with target eps(neutral) + eta (eps(positive) - eps(negative)) of the frozen model."""
    if not adapter.supports_patching:
        raise TadaError(f"{adapter.name} has no cross-attention conditioning to swap (its layers are "
                        f"{adapter.layer_kind}s); Concept Sliders are for the diffusion families")
    settings = adapter.resolve_settings(settings)
    n = len(triples)
    neutral = [t[0] for t in triples]
    layer_ids = [layer.index for layer in adapter.layers]
    got = adapter.capture_conditioning([t[1] for t in triples] + [t[2] for t in triples], settings, layer_ids)
    sides = {"pos": {i: Conditioning(c.states[:n], None if c.mask is None else c.mask[:n]) for i, c in got.items()},
             "neg": {i: Conditioning(c.states[n:], None if c.mask is None else c.mask[n:]) for i, c in got.items()}}
    state: dict[str, Any] = {"swap": None}
    samples: list[_Sample] = []

    def swap_hook(layer: int):
        def hook(module, args, kwargs):
            if state["swap"] is None:
                return None
            c = sides[state["swap"]][layer]
            kwargs = dict(kwargs)
            kwargs[adapter.conditioning_kwarg] = c.states
            kwargs[adapter.conditioning_mask_kwarg] = c.mask
            return args, kwargs
        return hook

    def capture(module, args, kwargs):
        run = adapter.run
        if run is None or run.capture:
            return None
        hidden = args[0] if args else kwargs["hidden_states"]
        rows = hidden.shape[0]
        cond, _ = adapter.branch_rows(rows)
        c_args, c_kwargs = adapter.denoiser_rows(args, kwargs, rows, cond)
        preds = {}
        try:
            for side in (None, "pos", "neg"):
                state["swap"] = side
                preds[side] = _tensor(module.forward(*c_args, **c_kwargs)).float()
        finally:
            state["swap"] = None
        target = preds[None] + eta * (preds["pos"] - preds["neg"])        # Eq. 4
        samples.append(_Sample(run=run, args=_detached(c_args), kwargs=_detached(c_kwargs), target=target.detach()))
        return None

    with hook_handles() as add:
        for i in layer_ids:
            add(adapter.layers[i].module.register_forward_pre_hook(swap_hook(i), with_kwargs=True))
        add(adapter.denoiser.register_forward_pre_hook(capture, with_kwargs=True))
        for seed in seeds:
            adapter.generate(neutral, seeds=[int(seed)] * n, settings=settings)
    return samples


def _bank_loss(adapter, samples: Sequence[_Sample]) -> float:
    """Mean Eq. 4 loss of the adapted denoiser over every captured call (no gradient)."""
    total = 0.0
    with torch.no_grad():
        for sample in samples:
            with adapter.replaying(sample.run):
                pred = _tensor(adapter.denoiser(*sample.args, **sample.kwargs)).float()
            total += float(torch.nn.functional.mse_loss(pred, sample.target))
    return total / len(samples)


def train_slider(adapter, concept: str, triples: Sequence[tuple[str, str, str]], *, layers: Sequence[int] | None,
                 training: SliderTraining | None = None, settings: GenerationSettings | None = None,
                 progress: bool = False, command: str | None = None) -> ConceptSlider:
    """A Concept Slider for ``concept`` on ``layers`` (None: every cross-attention layer), trained with Eq. 4 on
    ``triples`` ((neutral, positive, negative) prompt per base) at the fitting seeds of ``training``.

    The model is left as it was (the LoRA layers exist only during training); the slider's config records the
    hyperparameters, seeds, prompts and the loss at every step."""
    training = training or SliderTraining()
    if not triples:
        raise TadaError("no prompts to train the slider on; give (neutral, positive, negative) triples")
    settings = adapter.resolve_settings(settings)
    layer_ids = list(adapter.resolve_layers(layers))
    targets = projections(adapter, layer_ids)
    started = time.perf_counter()
    samples = slider_targets(adapter, triples, eta=training.eta, seeds=training.fit_seeds, settings=settings)
    captured = time.perf_counter() - started
    denoiser = adapter.denoiser
    gen = torch.Generator().manual_seed(training.seed)
    losses: list[float] = []
    with lora(denoiser, targets, training.rank, training.lora_alpha) as _:
        params = [p for name, p in denoiser.named_parameters() if "lora_" in name and ADAPTER_NAME in name]
        before = _bank_loss(adapter, samples)                  # B = 0: the adapted model is the frozen one
        for p in params:
            p.requires_grad_(True)
        optimizer = torch.optim.AdamW(params, lr=training.lr, weight_decay=0.0)
        bar = tqdm(range(training.steps), desc=f"slider {concept}", unit="step", disable=not progress)
        for _ in bar:
            sample = samples[int(torch.randint(len(samples), (1,), generator=gen))]
            with adapter.replaying(sample.run), torch.enable_grad():
                pred = _tensor(denoiser(*sample.args, **sample.kwargs)).float()
                loss = torch.nn.functional.mse_loss(pred, sample.target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.4g}", refresh=False)
        after = _bank_loss(adapter, samples)
        from peft import get_peft_model_state_dict

        weights = {k: v.detach().clone() for k, v in get_peft_model_state_dict(denoiser, adapter_name=ADAPTER_NAME).items()}
    seconds = time.perf_counter() - started
    logger.info("slider %s on layers %s: mean loss over the %d captured calls %.4g -> %.4g in %d steps (%.0f s, "
                "%.0f s of it capturing targets)", concept, layer_ids, len(samples), before, after, training.steps,
                seconds, captured)
    return ConceptSlider(
        weights=weights, concept=concept, model=adapter.name, layers=layer_ids,
        layer_paths={i: adapter.layers[i].path for i in layer_ids}, target_modules=targets, rank=training.rank,
        lora_alpha=training.lora_alpha, scale_range=(-2.0, 2.0),
        training={"objective": "eps(neutral) + eta (eps(positive) - eps(negative)), Gandikota et al. 2024 Eq. 4",
                  "eta": training.eta, "steps": training.steps, "lr": training.lr, "optimizer": "AdamW",
                  "batch_seed": training.seed, "seeds": list(training.fit_seeds), "samples": len(samples),
                  "settings": settings.to_dict(), "prompts": [list(t) for t in triples],
                  "loss_before": float(f"{before:.6g}"), "loss_after": float(f"{after:.6g}"),
                  "loss": [float(f"{x:.6g}") for x in losses], "seconds": round(seconds, 1)},
        command=command)


__all__ = ["SliderTraining", "train_slider", "slider_targets"]
