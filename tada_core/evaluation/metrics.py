"""The MusicGen paper's metrics (Facchiano et al. 2025, Sec. 4.1), with librosa and a Frechet distance.

* :func:`tempo_bpm`: tempo in BPM by librosa's beat tracker (``librosa.beat.beat_track``);
* :func:`spectral_centroid`: the mean spectral centroid in Hz (``librosa.feature.spectral_centroid``);
* :func:`frechet_audio_distance` (their Fig. 7): the Frechet distance between Gaussians fitted to
  embeddings of two sets of clips, with a pluggable embedding (:func:`tada_core.evaluation.scoring.make_embedding`):
  ``clap:PATH_OR_ID`` (a pretrained CLAP audio encoder through transformers) or the offline
  default ``logmel``: 64-band log-mel frames, each frame one embedding vector. The default is
  a documented stand-in (no pretrained weights can be downloaded here): it tracks spectral
  change, and its values are not comparable with VGGish FAD figures in the literature.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from tada_core.errors import TadaError
from tada_core.audio import mono, resample


def tempo_bpm(audio, sample_rate: int) -> np.ndarray:
    """Tempo of each clip (BPM), librosa's beat tracker."""
    import librosa

    return np.array([float(np.atleast_1d(librosa.beat.beat_track(y=y, sr=sample_rate)[0])[0])
                     for y in mono(audio).astype(np.float32)])


def spectral_centroid(audio, sample_rate: int) -> np.ndarray:
    """Mean spectral centroid of each clip (Hz), librosa."""
    import librosa

    out = []
    for y in mono(audio).astype(np.float32):
        n_fft = min(2048, 1 << max(4, int(np.log2(max(len(y), 16))) - 1))
        out.append(float(librosa.feature.spectral_centroid(y=y, sr=sample_rate, n_fft=n_fft).mean()))
    return np.array(out)


MEASURES: dict[str, tuple[Callable, str]] = {
    "bpm": (tempo_bpm, "tempo (BPM, librosa beat tracker)"),
    "centroid": (spectral_centroid, "spectral centroid (Hz, librosa)"),
}


def measure(name: str) -> tuple[Callable, str]:
    if name not in MEASURES:
        raise TadaError(f"measure must be one of {', '.join(MEASURES)}; got {name!r}")
    return MEASURES[name]


# ---------------------------------------------------------------------------- FAD

class LogMelEmbedding:
    """The offline default: every 64-band log-mel frame (16 kHz, 25 ms windows, 10 ms hop) is one vector."""

    name = "logmel"

    def __call__(self, audio, sample_rate: int) -> np.ndarray:
        import librosa

        frames = []
        for y in resample(mono(audio), sample_rate, 16000):
            mel = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=400, hop_length=160, n_mels=64)
            frames.append(np.log(mel + 1e-6).T)
        return np.concatenate(frames).astype(np.float64)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between Gaussians fitted to rows of ``a`` and ``b``."""
    from scipy import linalg

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise TadaError(f"the Frechet distance needs two sets of >= 2 embedding vectors of one width; got "
                        f"{a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean, _ = linalg.sqrtm(s_a @ s_b, disp=False)
    if not np.isfinite(covmean).all():
        eps = 1e-6 * np.eye(len(s_a))
        covmean = linalg.sqrtm((s_a + eps) @ (s_b + eps))
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


def frechet_audio_distance(reference, steered, sample_rate: int, embedding=None) -> float:
    """FAD between two sets of clips ([clips, channels, samples]) under ``embedding`` (default: log-mel frames)."""
    embed = embedding or LogMelEmbedding()
    return frechet_distance(embed(reference, sample_rate), embed(steered, sample_rate))


__all__ = ["tempo_bpm", "spectral_centroid", "MEASURES", "measure", "LogMelEmbedding", "frechet_distance",
           "frechet_audio_distance"]
