"""Steer a clip the user already has: encode it, invert it to the sampler's noise trajectory, regenerate steered.

The method is **edit-friendly DDPM inversion** (Huberman-Spiegelglas, Kadosh & Michaeli, CVPR 2024,
"An Edit Friendly DDPM Noise Space", Sec. 3, Eq. 6-7; applied to music by Manor & Michaeli, ICML 2024,
"Zero-Shot Unsupervised and Text-Based Audio Editing Using DDPM Inversion"), written against the
diffusers scheduler of the pipeline rather than a re-implemented sampler:

1. the clip is encoded by the model's own autoencoder / codec to ``x_0`` (:meth:`ModelAdapter.encode_audio`);
2. a trajectory ``x_i = noised(x_0, eps_i, sigma_i)`` is drawn with an *independent* Gaussian ``eps_i``
   per step (Eq. 6: not a diffusion trajectory, so every ``x_i`` is strongly tied to ``x_0``);
3. one batched pipeline call runs the sampler. Row 0 (the *anchor*, alpha 0) is evaluated at the
   trajectory points; at step ``i`` its residual ``r_i = x_{i+1} - step(x_i)`` is what the sampler's own
   update misses (Eq. 7: ``sigma_i z_i``, the stored noise map, here together with the scheduler's own
   stochastic term, which every row draws identically from one seed). Every other row takes the
   scheduler's update *plus the same* ``r_i``. A row at alpha 0 therefore lands exactly on ``x_0``
   (up to float rounding and the autoencoder); a steered row departs from it only as far as the steering
   changes the model's predictions. Steering hooks act per row (one alpha per row), so several alphas
   are one call, and the anchor row costs one extra clip in the batch instead of a second pass.

``strength`` in (0, 1] chooses where the regeneration departs: the first ``round((1 - strength) * steps)``
steps follow the inverted trajectory exactly (every row is set to ``x_{i+1}``), the rest are regenerated as
above. ``strength = 1`` is full inversion; smaller values keep more of the clip, like SDEdit (Meng et al.,
ICLR 2022) but with the edit-friendly noise maps of the skipped start (Huberman-Spiegelglas et al.'s
``T_skip``) instead of fresh noise; ``strength = 0`` returns the clip's own encoding, decoded.

Deterministic (ODE) samplers: the same construction holds (the residual is then the sampler's discretization
and the model's error instead of noise), so alpha 0 still reconstructs; no separate ODE inversion is needed.
For flow matching (ACE-Step: rectified flow, ``x_t = (1 - sigma) x_0 + sigma eps``) this is the Euler ODE with
its per-step error absorbed by the residuals; the adapter supplies the sigmas its pipeline samples on
(:meth:`ModelAdapter.edit_scheduler`).

Autoregressive codec-token models (MusicGen, ``adapter.edit_kind == "continuation"``) have no trajectory to
invert: :func:`continuation` keeps the clip's start as codec tokens and continues it steered (Copet et al. 2023).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from tada_core.adapters.settings import GenerationSettings
from tada_core.errors import TadaError, check_finite

logger = logging.getLogger(__name__)

DEFAULT_PROMPT = "music"   # neutral: names no concept the vectors steer; see docs/editing.md for why it matters


@dataclasses.dataclass(frozen=True)
class EditResult:
    """One edit: float32 CPU audio shaped [channels, samples] (``audio``: [alphas, channels, samples])."""

    original: torch.Tensor        # the input as the model hears it: resampled, channels matched, trimmed / padded
    encoded: torch.Tensor         # the input's encoding, decoded (the anchor row): what the autoencoder keeps
    audio: torch.Tensor           # one regenerated clip per alpha, in the order of ``alphas``
    alphas: tuple[float, ...]
    sample_rate: int
    prompt: str
    strength: float
    start_step: int               # first regenerated step (0: full inversion); a continuation: the kept frames
    seed: int
    settings: GenerationSettings
    method: str = "inversion"     # "inversion" (diffusion) or "continuation" (MusicGen: start_step frames kept)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data description (no audio)."""
        return {"alphas": list(self.alphas), "sample_rate": self.sample_rate, "prompt": self.prompt,
                "strength": self.strength, "start_step": self.start_step, "seed": self.seed,
                "settings": self.settings.to_dict(), "samples": int(self.original.shape[-1]), "method": self.method}


def check_strength(strength: float) -> float:
    """``strength`` as a float in [0, 1], else a :class:`TadaError` naming it."""
    s = check_finite("strength", strength)
    if not 0.0 <= s <= 1.0:
        raise TadaError(f"strength must be between 0 (keep the clip) and 1 (full inversion); got {strength!r}")
    return s


def start_step(strength: float, steps: int) -> int:
    """The first regenerated step for ``strength`` over ``steps`` sampler steps (``steps`` for strength 0)."""
    return int(round((1.0 - check_strength(strength)) * steps))


def noised(scheduler: Any, x0: torch.Tensor, noise: torch.Tensor, index: int) -> torch.Tensor:
    """``x_0`` noised to the level of step ``index`` of ``scheduler`` (after ``set_timesteps``), by its own rule.

    Karras-style schedulers with a ``sigma_data`` (Stable Audio's CosineDPMSolverMultistep, the EDM ones):
    ``x_0 + sigma_i eps`` (variance exploding); flow matching (``scale_noise``): ``(1 - sigma) x_0 + sigma eps``;
    DDPM-style (``alphas_cumprod``): the scheduler's ``add_noise`` at timestep ``t_i``.
    """
    if hasattr(scheduler.config, "sigma_data") and hasattr(scheduler, "sigmas"):
        return x0 + float(scheduler.sigmas[index]) * noise
    if hasattr(scheduler, "scale_noise"):
        return scheduler.scale_noise(x0, scheduler.timesteps[index:index + 1], noise)
    if hasattr(scheduler, "add_noise"):
        return scheduler.add_noise(x0, noise, scheduler.timesteps[index:index + 1])
    raise TadaError(f"cannot invert with the scheduler {type(scheduler).__name__}: it has no noise rule "
                    f"(accepted: Karras-style sigmas, flow matching, DDPM-style add_noise)")


def trajectory(adapter, x0: torch.Tensor, steps: int, seed: int) -> list[torch.Tensor]:
    """``[x_0 noised to step 0, ..., to step steps-1, x_0]``: the edit-friendly trajectory (Eq. 6), one
    independent Gaussian per step from a generator seeded with ``seed``."""
    scheduler = adapter.edit_scheduler(steps)   # the schedule the pipeline itself samples on (its adapter knows it)
    gen = torch.Generator().manual_seed(int(seed))
    points = [noised(scheduler, x0, torch.randn(x0.shape, generator=gen).to(x0), i) for i in range(steps)]
    return points + [x0]


@contextlib.contextmanager
def follow(scheduler: Any, points: Sequence[torch.Tensor], first_free: int) -> Iterator[dict[str, int]]:
    """Within the block, ``scheduler.step`` keeps row 0 on ``points`` and adds row 0's residual to every row.

    Step ``i`` (counted from 0 in this block) returns ``points[i + 1]`` for every row when ``i < first_free``;
    otherwise the scheduler's own update of each row plus ``points[i + 1] - update[0]`` (the edit-friendly
    noise map of step ``i``; see the module docstring). Only the attribute this block set is removed on exit.
    """
    original = scheduler.step
    state = {"step": 0}

    @functools.wraps(original)   # pipelines read step's signature to decide whether to pass the generator
    def step(model_output, timestep, sample, *args, **kwargs):
        out = original(model_output, timestep, sample, *args, **kwargs)
        prev = out[0] if isinstance(out, tuple) else out.prev_sample
        i = state["step"]
        state["step"] += 1
        if i + 1 >= len(points):
            raise TadaError(f"the sampler took more steps than the {len(points) - 1} inverted "
                            f"(a multi-evaluation scheduler is not supported by the edit)")
        target = points[i + 1].to(prev)
        new = target.expand_as(prev).clone() if i < first_free else prev + (target - prev[:1])
        new[:1] = target
        if isinstance(out, tuple):
            return (new, *out[1:])
        out.prev_sample = new
        return out

    scheduler.step = step   # an instance attribute over the class method
    try:
        yield state
    finally:
        if scheduler.__dict__.get("step") is step:
            del scheduler.step


def _steering(adapter, steer: Any, row_alphas: list[float]) -> contextlib.AbstractContextManager:
    """The steering context for one alpha per row: ``steer`` is anything with ``apply(adapter, alpha)``
    (a steering vector, an SAE feature, a concept slider), or a callable ``f(alphas) -> context``."""
    if steer is None:
        if any(a != 0 for a in row_alphas):
            raise TadaError("alpha needs a steering vector (steer=...); without one only alpha 0 is possible")
        return contextlib.nullcontext()
    if hasattr(steer, "apply"):
        return steer.apply(adapter, row_alphas)
    if callable(steer):
        return steer(row_alphas)
    raise TadaError(f"steer must be a steering vector (anything with .apply(model, alpha)) or a callable "
                    f"alphas -> context manager; got {type(steer).__name__}")


def _alphas(alpha: float | Sequence[float]) -> list[float]:
    values = [alpha] if isinstance(alpha, (int, float)) and not isinstance(alpha, bool) else list(alpha)
    if not values:
        raise TadaError("alpha is an empty list; give one or more steering strengths")
    return [check_finite(f"alpha[{i}]", a) for i, a in enumerate(values)]


def edit(adapter, audio: np.ndarray | torch.Tensor, sample_rate: int, *, steer: Any = None,
         alpha: float | Sequence[float] = 0.0, prompt: str | None = None, strength: float | None = None,
         seed: int = 0, settings: GenerationSettings | None = None, duration: float | None = None,
         steps: int | None = None, guidance: float | None = None) -> EditResult:
    """Edit ``audio`` (``[channels, samples]`` or ``[samples]`` at ``sample_rate``) with ``steer`` at each ``alpha``.

    Diffusion families (``adapter.edit_kind == "inversion"``): edit-friendly DDPM inversion
    (Huberman-Spiegelglas et al. 2024, Eq. 6-7; module docstring) on the adapter's own scheduler, the
    regeneration run inside ``steer.apply(adapter, alphas)`` with one alpha per row: every alpha is one row of
    one batched call, plus the alpha-0 anchor row; ``strength`` (0-1, default 1) chooses the step the
    regeneration departs from. Autoregressive families (``"continuation"``, MusicGen): :func:`continuation`,
    where ``strength`` is the fraction of the clip replaced by the steered continuation (default
    ``adapter.default_edit_strength``). ``prompt`` conditions both (default: :data:`DEFAULT_PROMPT`); ``seed``
    draws the trajectory's noise and the sampler's. The clip is resampled, its channels matched, and trimmed or
    padded to ``duration`` (:func:`prepare_clip`).
    """
    alphas = _alphas(alpha)
    prompt = DEFAULT_PROMPT if prompt is None else prompt
    if not isinstance(prompt, str) or not prompt.strip():
        raise TadaError(f"prompt must be a non-empty string; got {prompt!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TadaError(f"seed must be a non-negative integer; got {seed!r}")
    strength = adapter.default_edit_strength if strength is None else check_strength(strength)
    resolved = adapter.resolve_settings(settings, duration=duration, steps=steps, guidance=guidance)
    if adapter.edit_kind == "continuation":
        return continuation(adapter, audio, sample_rate, steer=steer, alphas=alphas, prompt=prompt,
                            strength=strength, seed=seed, settings=resolved)
    if adapter.edit_kind != "inversion":
        raise TadaError(f"{adapter.name}: unknown edit kind {adapter.edit_kind!r} (accepted: inversion, continuation)")
    first_free = start_step(strength, resolved.steps)
    clip = prepare_clip(audio, sample_rate, adapter, resolved.duration)
    x0 = adapter.encode_audio(clip, resolved)
    points = trajectory(adapter, x0, resolved.steps, seed)
    rows = [0.0, *alphas]
    n = len(rows)
    # the scheduler is patched for this call only: hold the model's lock so no other generation runs meanwhile
    with adapter._lock, _steering(adapter, steer, rows):
        with follow(adapter.pipeline.scheduler, points, first_free) as state:
            remove = adapter.add_before_generate(lambda run: run.state.update(initial_latents=points[0].expand(
                n, *points[0].shape[1:]).clone()))
            try:
                gen = adapter.generate([prompt] * n, seeds=[seed] * n, settings=resolved)
            finally:
                remove()
    if state["step"] != resolved.steps:
        raise TadaError(f"{adapter.name}: the sampler took {state['step']} steps for {resolved.steps} inverted")
    logger.info("edit: %d alphas, strength %g (regenerating from step %d of %d), prompt %r", len(alphas), strength,
                first_free, resolved.steps, prompt)
    n_out = gen.audio.shape[-1]
    original = torch.as_tensor(clip)[..., :n_out].float()
    if original.shape[-1] < n_out:
        original = torch.nn.functional.pad(original, (0, n_out - original.shape[-1]))
    return EditResult(original=original, encoded=gen.audio[0], audio=gen.audio[1:], alphas=tuple(alphas),
                      sample_rate=gen.sample_rate, prompt=prompt, strength=float(strength), start_step=first_free,
                      seed=seed, settings=resolved)


def continuation(adapter, audio: np.ndarray | torch.Tensor, sample_rate: int, *, steer: Any, alphas: list[float],
                 prompt: str, strength: float, seed: int, settings: GenerationSettings) -> EditResult:
    """Steer a clip through an autoregressive codec-token model: keep its first ``1 - strength`` as codec tokens
    and continue them, steered, for the rest of ``settings.duration`` (continuation from an audio prompt,
    Copet et al. 2023, "Simple and Controllable Music Generation", Sec. 2-3 / audiocraft's
    ``generate_continuation``).

    The adapter encodes the clip to its codec's tokens (:meth:`ModelAdapter.encode_audio`), and within
    ``adapter.continuing(prefix)`` every row of one batched call continues the same prefix from the same
    ``seed``, inside ``steer.apply(adapter, alphas)`` with one alpha per row: a row at alpha 0 is the
    unsteered continuation. The prefix is kept as the codec reconstructs it; the continuation follows the key,
    tempo and timbre the model infers from the prefix, not the clip's actual later content, so this is not an
    edit of the whole clip. ``encoded`` is the whole clip through the codec. No anchor row is needed (there is
    no trajectory to follow), so ``start_step`` is the number of kept frames.
    """
    if not 0.0 < strength < 1.0:
        raise TadaError(f"strength is the fraction of the clip {adapter.name} replaces by a continuation; it must be "
                        f"between 0 and 1, exclusive (0 keeps all of the clip, 1 none of it); got {strength!r}")
    clip = prepare_clip(audio, sample_rate, adapter, settings.duration)
    codes = adapter.encode_audio(clip, settings)
    frames = codes.shape[-1]
    keep = int(round((1.0 - strength) * frames))
    if not 1 <= keep < frames:
        raise TadaError(f"strength {strength:g} keeps {keep} of the clip's {frames} codec frames; it must keep at "
                        f"least 1 and replace at least 1 (accepted here: {1 / frames:.3g} to {1 - 1 / frames:.3g})")
    n = len(alphas)
    with adapter._lock, _steering(adapter, steer, alphas), adapter.continuing(codes[..., :keep]):
        gen = adapter.generate([prompt] * n, seeds=[seed] * n, settings=settings)
    n_out = gen.audio.shape[-1]
    encoded = adapter.decode_codes(codes)[0, ..., :n_out]
    if encoded.shape[-1] < n_out:
        encoded = torch.nn.functional.pad(encoded, (0, n_out - encoded.shape[-1]))
    logger.info("continuation: %d alphas, keeping %d of %d codec frames, prompt %r", n, keep, frames, prompt)
    original = torch.as_tensor(clip)[..., :n_out].float()
    if original.shape[-1] < n_out:
        original = torch.nn.functional.pad(original, (0, n_out - original.shape[-1]))
    return EditResult(original=original, encoded=encoded, audio=gen.audio, alphas=tuple(alphas),
                      sample_rate=gen.sample_rate, prompt=prompt, strength=float(strength), start_step=keep,
                      seed=seed, settings=settings, method="continuation")


# ----- the user's clip -----------------------------------------------------------------------------------

def prepare_clip(audio: np.ndarray | torch.Tensor, sample_rate: int, adapter, duration: float) -> torch.Tensor:
    """``audio`` as the model generates it: [channels, samples] float32 at the model's rate, with its channel
    count (mono is duplicated, stereo averaged), trimmed or zero-padded to ``duration`` seconds.
    Refuses what :func:`tada_core.audio.check_clip` refuses."""
    from tada_core.audio import check_clip, resample_clip

    x = check_clip(audio, sample_rate)
    x = resample_clip(x, sample_rate, adapter.sample_rate)
    want = adapter.audio_channels
    if x.shape[0] != want:
        x = np.repeat(x.mean(0, keepdims=True), want, axis=0)
    n = int(round(duration * adapter.sample_rate))
    if x.shape[1] < n:
        logger.info("the clip is %.2fs, shorter than the %.2fs the model makes: padded with silence",
                    x.shape[1] / adapter.sample_rate, duration)
        x = np.pad(x, ((0, 0), (0, n - x.shape[1])))
    return torch.from_numpy(np.ascontiguousarray(x[:, :n], dtype=np.float32))


__all__ = ["EditResult", "edit", "continuation", "prepare_clip", "trajectory", "follow", "noised", "start_step",
           "check_strength", "DEFAULT_PROMPT"]
