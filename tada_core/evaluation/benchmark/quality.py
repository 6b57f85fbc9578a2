"""Audio quality of steered clips (TADA Sec. 5.1 "Average Quality"; higher is better).

* :class:`Typicality` (the offline default, ``typicality``): how far a clip lies from the
  model's own unsteered output distribution. Each clip is embedded as the mean and standard
  deviation over time of its 64-band log-mel spectrogram (dB); a Gaussian with Ledoit-Wolf
  shrunk covariance is fitted on unsteered clips of the same model (``fit``); the quality of a
  clip is minus its Mahalanobis distance to that Gaussian, divided by the square root of the
  embedding size (0 at the centre, about -1 for a typical unsteered clip). It ranks noise and
  distortion below clean output (tested); it is not Audiobox Aesthetics.
* :class:`AudioboxAesthetics` (``audiobox:CHECKPOINT``): the paper's measure, the mean of
  Content Enjoyment, Content Usefulness, Production Complexity and Production Quality. Needs
  the optional ``audiobox_aesthetics`` package (``pip install 'tada-steer[eval]'``).
"""

from __future__ import annotations

import abc
import torch

import numpy as np

from tada_core.errors import TadaError
from tada_core.evaluation.scoring import mono


class Quality(abc.ABC):
    name: str = "quality"
    label: str = "quality"
    needs_reference: bool = False

    def fit(self, audio, sample_rate: int) -> None:
        """Fit on unsteered clips of the model (only for measures with ``needs_reference``)."""
        self.fit_embeddings(logmel_stats(audio, sample_rate))

    def fit_embeddings(self, embeddings: np.ndarray) -> None:
        """Fit on the :func:`logmel_stats` of unsteered clips (what the benchmark journals)."""

    @abc.abstractmethod
    def __call__(self, audio, sample_rate: int) -> np.ndarray:
        """One float64 per clip; higher is better."""


def logmel_stats(audio, sample_rate: int, n_mels: int = 64) -> np.ndarray:
    """[clips, 2 * n_mels]: mean and std over time of the log-mel spectrogram (dB, 64 ms window)."""
    import librosa

    x = mono(audio)
    n_fft = 2 ** int(round(np.log2(sample_rate * 0.064)))
    mel = librosa.feature.melspectrogram(y=x, sr=sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels)
    db = 10 * np.log10(np.maximum(mel, 1e-10))
    return np.concatenate([db.mean(-1), db.std(-1)], axis=-1).astype(np.float64)


class Typicality(Quality):
    """Minus the scaled Mahalanobis distance to unsteered clips, in log-mel statistics (see the module docstring)."""

    name, label, needs_reference = "typicality", "typicality (-Mahalanobis to unsteered clips)", True

    def __init__(self):
        self.mean: np.ndarray | None = None
        self.precision: np.ndarray | None = None

    def fit_embeddings(self, embeddings: np.ndarray) -> None:
        from sklearn.covariance import LedoitWolf

        e = np.asarray(embeddings, dtype=np.float64)
        if len(e) < 4:
            raise TadaError(f"the typicality measure needs at least 4 unsteered clips to fit; got {len(e)}")
        lw = LedoitWolf().fit(e)
        self.mean, self.precision = lw.location_, lw.precision_

    def __call__(self, audio, sample_rate: int) -> np.ndarray:
        return self.score_embeddings(logmel_stats(audio, sample_rate))

    def score_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """The quality of clips given by their :func:`logmel_stats` (what the journals keep)."""
        if self.mean is None:
            raise TadaError("the typicality measure is not fitted; call fit() on unsteered clips first")
        z = np.asarray(embeddings, dtype=np.float64) - self.mean
        d2 = np.einsum("ij,jk,ik->i", z, self.precision, z)
        return -np.sqrt(np.maximum(d2, 0) / z.shape[1])


class AudioboxAesthetics(Quality):
    """Mean of Audiobox Aesthetics' CE, CU, PC and PQ (Tjandra et al., 2025)."""

    name, label = "audiobox", "Audiobox Aesthetics (mean of CE, CU, PC, PQ)"

    def __init__(self, checkpoint: str | None = None):
        try:
            from audiobox_aesthetics.infer import initialize_predictor
        except ImportError:
            raise TadaError("the audiobox quality needs the optional 'audiobox_aesthetics' package: pip install "
                            "audiobox_aesthetics (or 'tada-steer[eval]'); or use --quality typicality") from None
        self.predictor = initialize_predictor(checkpoint) if checkpoint else initialize_predictor()

    def __call__(self, audio, sample_rate: int) -> np.ndarray:

        x = mono(audio)
        rows = self.predictor.forward([{"path": torch.from_numpy(c[None]), "sample_rate": sample_rate} for c in x])
        return np.array([np.mean([r[k] for k in ("CE", "CU", "PC", "PQ")]) for r in rows], dtype=np.float64)


QUALITIES = "typicality (offline default) or audiobox[:CHECKPOINT]"


def make_quality(spec: str | None) -> Quality:
    kind, _, arg = (spec or "typicality").partition(":")
    if kind == "typicality" and not arg:
        return Typicality()
    if kind == "audiobox":
        return AudioboxAesthetics(arg or None)
    raise TadaError(f"unknown quality measure {spec!r}; accepted: {QUALITIES}")


__all__ = ["Quality", "Typicality", "AudioboxAesthetics", "make_quality", "logmel_stats", "QUALITIES"]
