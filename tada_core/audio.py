"""Writing generated audio to disk, and the one level policy of the CLI and the app.

Level policy (:func:`level`): the clips of one call (an original and its steered version,
an alpha sweep, A / B / patched) share one gain. If the loudest sample of any of them
exceeds 0.99 full scale, all are scaled by the same factor so that none does; otherwise
they are left as generated. Nothing is clipped and quiet clips are never boosted, so a
loudness change that steering causes stays audible side by side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import soundfile as sf

from tada_core.errors import TadaError


def mono(audio: torch.Tensor | np.ndarray) -> np.ndarray:
    x = np.asarray(audio.detach().cpu() if isinstance(audio, torch.Tensor) else audio, dtype=np.float32)
    if x.ndim == 3:
        x = x.mean(1)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise TadaError(f"audio must be [batch, channels, samples] or [batch, samples]; got shape {x.shape}")
    return x


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Linear-interpolation resampling of [batch, samples] (enough for embedding models)."""
    if src == dst:
        return x
    n = int(round(x.shape[-1] * dst / src))
    t = np.arange(n) * (src / dst)
    return np.stack([np.interp(t, np.arange(x.shape[-1]), row) for row in x]).astype(np.float32)


HEADROOM = 0.99


def check_finite_audio(audio: torch.Tensor, what: str = "the generation") -> None:
    """Refuse audio with NaN or inf samples (e.g. steering far outside a vector's range)."""
    if not torch.isfinite(audio).all():
        raise TadaError(f"{what} produced NaN or infinite samples (steering too strong for this model?); "
                        f"use a smaller alpha")


def level(audio: torch.Tensor) -> torch.Tensor:
    """The clips of one call ([clips, ...]) with one shared gain so that none exceeds 0.99 full scale."""
    check_finite_audio(audio)
    peak = float(audio.abs().max()) if audio.numel() else 0.0
    return audio * (HEADROOM / peak) if peak > HEADROOM else audio


def to_int16(clip: torch.Tensor) -> np.ndarray:
    """One leveled clip [channels, samples] as int16 [samples, channels] (what audio widgets play as is)."""
    data = clip.detach().float().cpu().numpy().T
    return np.ascontiguousarray(np.round(np.clip(data, -1.0, 1.0) * 32767).astype(np.int16))


def check_wav_path(path: str | Path) -> Path:
    """Return ``path`` as a Path if it ends in .wav, else raise :class:`TadaError`."""
    path = Path(path)
    if path.suffix.lower() != ".wav":
        raise TadaError(f"output file must end in .wav; got {str(path)!r}")
    return path


def save_wav(path: str | Path, audio: torch.Tensor | np.ndarray, sample_rate: int) -> Path:
    """Write one clip, shaped [channels, samples] or [samples], as 16-bit PCM WAV."""

    path = check_wav_path(path)
    data = np.asarray(audio.detach().cpu() if isinstance(audio, torch.Tensor) else audio, dtype=np.float32)
    if data.ndim == 2:
        data = data.T  # soundfile wants [samples, channels]
    elif data.ndim != 1:
        raise TadaError(f"audio must be [channels, samples] or [samples]; got shape {data.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(data, -1.0, 1.0), int(sample_rate), subtype="PCM_16")
    return path
