"""Writing generated audio to disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import TadaError


def check_wav_path(path: str | Path) -> Path:
    """Return ``path`` as a Path if it ends in .wav, else raise :class:`TadaError`."""
    path = Path(path)
    if path.suffix.lower() != ".wav":
        raise TadaError(f"output file must end in .wav; got {str(path)!r}")
    return path


def save_wav(path: str | Path, audio: torch.Tensor | np.ndarray, sample_rate: int) -> Path:
    """Write one clip, shaped [channels, samples] or [samples], as 16-bit PCM WAV."""
    import soundfile as sf

    path = check_wav_path(path)
    data = np.asarray(audio.detach().cpu() if isinstance(audio, torch.Tensor) else audio, dtype=np.float32)
    if data.ndim == 2:
        data = data.T  # soundfile wants [samples, channels]
    elif data.ndim != 1:
        raise TadaError(f"audio must be [channels, samples] or [samples]; got shape {data.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(data, -1.0, 1.0), int(sample_rate), subtype="PCM_16")
    return path
