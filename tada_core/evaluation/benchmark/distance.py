"""Preservation distances d(alpha) between a steered clip and its unsteered (alpha = 0) clip.

* :class:`MelDistance` (the offline default, ``mel``): multi-resolution log-mel L1 distance in
  dB: for three STFT sizes (about 32, 64 and 128 ms), 64 mel bands, the mean absolute
  difference of 10 log10 mel power, averaged over resolutions. 0 for identical clips. It is
  *not* LPAPS, and its numbers are not comparable with the paper's.
* :class:`LPAPS` (``lpaps:CHECKPOINT``): the learned perceptual audio patch similarity of
  Iashin & Rahtu (2021) that TADA uses: a VGG-like network ("VGGish-ish", 13 convolutions on an
  80-band log-mel spectrogram at 22.05 kHz), unit-normalized features of five stages, squared
  differences weighted by 1x1 convolutions, averaged over time and frequency and summed.
  The network is written here; its weights come from a safetensors checkpoint you provide.
* The four MIR preservation axes of the reference implementation (``luk-st/steer-audio``,
  ``src/steering/eval/mir_preservation.py``), each a distance in [0, 1] between the steered clip
  and its alpha-0 clip, on mono audio at 22.05 kHz, with librosa features and mir_eval's scores:
  ``harmony`` (:class:`HarmonyDistance`): 1 - mean per-frame cosine of the two CQT chromagrams;
  ``melody`` (:class:`MelodyDistance`): 1 - mir_eval's raw pitch accuracy of the steered pYIN F0
  contour (C2-C7) against the alpha-0 one; ``rhythm`` (:class:`RhythmDistance`): 1 - mir_eval's
  beat F-measure between librosa's beat times (NaN when either clip has no beat); ``ssm``
  (:class:`StructureDistance`): 1 - max(0, Pearson r) of the two chroma self-similarity matrices
  (upper triangles). ``tada benchmark --distance harmony`` etc.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tada_core.errors import TadaError
from tada_core.evaluation.scoring import mono
from tada_core.runtime.io import read_tensors


class Distance(abc.ABC):
    """A distance between two batches of clips, one value per pair (0 for identical clips)."""

    name: str = "distance"
    label: str = "distance"

    @abc.abstractmethod
    def __call__(self, a, b, sample_rate: int) -> np.ndarray:
        """One float64 per clip of ``a`` and ``b`` ([batch, channels, samples] or [batch, samples])."""


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    x, y = mono(a), mono(b)
    if x.shape != y.shape:
        raise TadaError(f"clips differ in shape: {x.shape} vs {y.shape}")
    return x, y


class MelDistance(Distance):
    """Multi-resolution log-mel L1 distance in dB (see the module docstring)."""

    name, label = "mel", "multi-resolution log-mel L1 distance (dB)"

    def __init__(self, n_mels: int = 64, windows_ms: tuple[float, ...] = (32, 64, 128)):
        self.n_mels, self.windows_ms = n_mels, windows_ms
        self._banks: dict[tuple[int, int], torch.Tensor] = {}

    def _mel_db(self, x: np.ndarray, sample_rate: int, n_fft: int) -> torch.Tensor:
        import librosa

        key = (sample_rate, n_fft)
        if key not in self._banks:
            self._banks[key] = torch.from_numpy(librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=self.n_mels))
        spec = torch.stft(torch.from_numpy(x), n_fft, hop_length=n_fft // 4, window=torch.hann_window(n_fft),
                          return_complex=True).abs() ** 2
        return 10 * torch.log10((self._banks[key] @ spec).clamp_min(1e-10))

    def __call__(self, a, b, sample_rate: int) -> np.ndarray:
        x, y = _pair(a, b)
        out = np.zeros(len(x))
        used = 0
        for ms in self.windows_ms:
            n_fft = 2 ** int(round(np.log2(sample_rate * ms / 1000)))
            if n_fft > x.shape[-1]:
                continue
            out += (self._mel_db(x, sample_rate, n_fft) - self._mel_db(y, sample_rate, n_fft)).abs().mean((1, 2)).double().numpy()
            used += 1
        if not used:
            raise TadaError(f"clips of {x.shape[-1]} samples are too short for the mel distance")
        return out / used


# --------------------------------------------------------------------------------------
# LPAPS
# --------------------------------------------------------------------------------------
VGGISHISH = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
STAGES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))   # feature-layer ranges ending at relu1_2 ... relu5_3
CHANNELS = (64, 128, 256, 512, 512)
LPAPS_SAMPLE_RATE, LPAPS_MELS = 22050, 80


class _Lin(nn.Module):
    """A 1x1 convolution to one channel (LPIPS's NetLinLayer; index 1 as in its checkpoints, after dropout)."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        c = 1
        for v in VGGISHISH:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
                c = v
        for i, (lo, hi) in enumerate(STAGES):
            self.add_module(f"slice{i + 1}", nn.Sequential())
            for j in range(lo, hi):
                getattr(self, f"slice{i + 1}").add_module(str(j), layers[j])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i in range(len(STAGES)):
            x = getattr(self, f"slice{i + 1}")(x)
            out.append(x)
        return out


class _Scaling(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.zeros(1, 1, LPAPS_MELS, 1))
        self.register_buffer("scale", torch.ones(1, 1, LPAPS_MELS, 1))


class LPAPS(Distance, nn.Module):
    """LPAPS (Iashin & Rahtu, 2021) with weights from a checkpoint; see the module docstring.

    The checkpoint holds ``net.slice{1-5}.*`` (the convolutions), ``lin{0-4}.model.1.weight`` and
    ``scaling_layer.shift`` / ``scale`` (per-band mean and std of the spectrogram in [-1, 1]).
    """

    name, label = "lpaps", "LPAPS"

    def __init__(self):
        nn.Module.__init__(self)
        self.scaling_layer = _Scaling()
        self.net = _Net()
        for i, c in enumerate(CHANNELS):
            self.add_module(f"lin{i}", _Lin(c))
        self.eval()
        self._bank: torch.Tensor | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "LPAPS":
        path = Path(path)
        if not path.is_file():
            raise TadaError(f"no LPAPS checkpoint at {path.name!r}; give the path of the file (safetensors or .pt)")
        if path.suffix != ".safetensors":
            raise TadaError(f"{path.name!r}: LPAPS weights are read from safetensors only (this project never "
                            f"unpickles); convert a PyTorch checkpoint to safetensors once, on a machine you "
                            f"trust (docs/steering-benchmark.md shows how)")

        state = read_tensors(path)
        model = cls()
        expected = set(model.state_dict())
        missing = sorted(expected - set(state))
        if missing:
            raise TadaError(f"{path.name!r} is not an LPAPS checkpoint: it lacks {', '.join(missing[:4])}"
                            + (f" and {len(missing) - 4} more" if len(missing) > 4 else ""))
        model.load_state_dict({k: state[k] for k in expected})
        return model

    def spectrogram(self, x: np.ndarray, sample_rate: int) -> torch.Tensor:
        """SpecVQGAN's input: 80-band magnitude mel (22.05 kHz, FFT 1024, hop 256, 125-7600 Hz), 20 log10,
        mapped from [-100, 0] dB to [0, 1], then to [-1, 1]; shape [batch, 1, 80, frames]."""
        import librosa

        if sample_rate != LPAPS_SAMPLE_RATE:
            x = librosa.resample(x, orig_sr=sample_rate, target_sr=LPAPS_SAMPLE_RATE, axis=-1)
        if self._bank is None:
            self._bank = torch.from_numpy(librosa.filters.mel(sr=LPAPS_SAMPLE_RATE, n_fft=1024, n_mels=LPAPS_MELS,
                                                              fmin=125, fmax=7600))
        spec = torch.stft(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), 1024, hop_length=256,
                          window=torch.hann_window(1024), return_complex=True).abs()
        db = 20 * torch.log10((self._bank @ spec).clamp_min(1e-5))
        s = ((db - 20 + 100) / 100).clamp(0, 1)
        return (2 * s - 1)[:, None]

    @torch.no_grad()
    def distance_of_spectrograms(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        f0 = self.net((s0 - self.scaling_layer.shift) / self.scaling_layer.scale)
        f1 = self.net((s1 - self.scaling_layer.shift) / self.scaling_layer.scale)
        total = torch.zeros(s0.shape[0])
        for i, (a, b) in enumerate(zip(f0, f1)):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total += getattr(self, f"lin{i}").model((a - b) ** 2).mean((1, 2, 3))
        return total

    def __call__(self, a, b, sample_rate: int) -> np.ndarray:  # type: ignore[override]
        x, y = _pair(a, b)
        return self.distance_of_spectrograms(self.spectrogram(x, sample_rate),
                                             self.spectrogram(y, sample_rate)).double().numpy()


# --------------------------------------------------------------------------------------
# The MIR preservation axes (the reference's definitions; see the module docstring)
# --------------------------------------------------------------------------------------
MIR_SAMPLE_RATE = 22050


class MirDistance(Distance):
    """A distance computed from per-clip librosa features of mono audio at 22.05 kHz."""

    def features(self, y: np.ndarray) -> Any:
        raise NotImplementedError

    def compare(self, base: Any, steered: Any) -> float:
        raise NotImplementedError

    def __call__(self, a, b, sample_rate: int) -> np.ndarray:
        import librosa

        x, y = _pair(a, b)      # a: steered clips, b: their alpha-0 clips

        def prep(clip: np.ndarray) -> np.ndarray:
            clip = clip.astype(np.float32)
            return librosa.resample(clip, orig_sr=sample_rate, target_sr=MIR_SAMPLE_RATE) \
                if sample_rate != MIR_SAMPLE_RATE else clip

        return np.array([self.compare(self.features(prep(base)), self.features(prep(steered)))
                         for steered, base in zip(x, y)], dtype=np.float64)


def _chroma(y: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.feature.chroma_cqt(y=y, sr=MIR_SAMPLE_RATE)    # [12, frames]


class HarmonyDistance(MirDistance):
    """1 - mean per-frame cosine similarity of the two chromagrams (harmony, the reference's ``harmony`` axis)."""

    name, label = "harmony", "harmony distance (1 - chroma cosine)"

    def features(self, y):
        return _chroma(y)

    def compare(self, base, steered):
        n = min(base.shape[1], steered.shape[1])
        b, s = base[:, :n], steered[:, :n]
        cos = (b * s).sum(0) / (np.linalg.norm(b, axis=0) * np.linalg.norm(s, axis=0) + 1e-9)
        return 1.0 - float(cos.mean())


class StructureDistance(MirDistance):
    """1 - max(0, Pearson r) of the chroma self-similarity matrices (structure, the reference's ``ssm`` axis)."""

    name, label = "ssm", "structure distance (1 - SSM correlation)"

    def features(self, y):
        return _chroma(y)

    def compare(self, base, steered):
        n = min(base.shape[1], steered.shape[1])
        b = base[:, :n] / (np.linalg.norm(base[:, :n], axis=0) + 1e-9)
        s = steered[:, :n] / (np.linalg.norm(steered[:, :n], axis=0) + 1e-9)
        upper = np.triu_indices(n, k=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.corrcoef((b.T @ b)[upper], (s.T @ s)[upper])[0, 1] if len(upper[0]) > 1 else np.nan
        return 1.0 - max(float(r) if np.isfinite(r) else 0.0, 0.0)


class RhythmDistance(MirDistance):
    """1 - mir_eval's beat F-measure of the steered clip's beats against the alpha-0 clip's (the ``rhythm`` axis)."""

    name, label = "rhythm", "rhythm distance (1 - beat F-measure)"

    def features(self, y):
        import librosa

        _, frames = librosa.beat.beat_track(y=y, sr=MIR_SAMPLE_RATE)
        return librosa.frames_to_time(frames, sr=MIR_SAMPLE_RATE)

    def compare(self, base, steered):
        import mir_eval

        if len(base) == 0 or len(steered) == 0:
            return float("nan")
        return 1.0 - float(mir_eval.beat.f_measure(base, steered))


class MelodyDistance(MirDistance):
    """1 - mir_eval's raw pitch accuracy of the steered pYIN F0 contour against the alpha-0 one (``melody``)."""

    name, label = "melody", "melody distance (1 - raw pitch accuracy)"

    def features(self, y):
        import librosa

        return librosa.pyin(y, fmin=librosa.note_to_hz("C2"), fmax=librosa.note_to_hz("C7"), sr=MIR_SAMPLE_RATE)[0]

    def compare(self, base, steered):
        import mir_eval

        n = min(len(base), len(steered))
        fb, fs = base[:n], steered[:n]
        voiced_b, voiced_s = ~np.isnan(fb), ~np.isnan(fs)
        if not voiced_b.any():
            return float("nan")          # no reference melody to keep
        cb, cs = mir_eval.melody.hz2cents(np.nan_to_num(fb)), mir_eval.melody.hz2cents(np.nan_to_num(fs))
        return 1.0 - float(mir_eval.melody.raw_pitch_accuracy(voiced_b, cb, voiced_s, cs))


MIR_DISTANCES = {cls.name: cls for cls in (HarmonyDistance, MelodyDistance, RhythmDistance, StructureDistance)}
DISTANCES = ("mel (multi-resolution log-mel L1, offline default), lpaps:CHECKPOINT, or a MIR axis: "
             + ", ".join(MIR_DISTANCES))


def make_distance(spec: str | None) -> Distance:
    """``mel`` (default), ``lpaps:PATH`` (a checkpoint file of the LPAPS network), or a MIR axis: ``harmony``,
    ``melody``, ``rhythm``, ``ssm``."""
    kind, _, arg = (spec or "mel").partition(":")
    if kind == "mel" and not arg:
        return MelDistance()
    if kind in MIR_DISTANCES and not arg:
        return MIR_DISTANCES[kind]()
    if kind == "lpaps":
        if not arg:
            raise TadaError("give the LPAPS checkpoint: --distance lpaps:PATH")
        return LPAPS.from_checkpoint(arg)
    raise TadaError(f"unknown distance {spec!r}; accepted: {DISTANCES}")


__all__ = ["Distance", "MelDistance", "LPAPS", "HarmonyDistance", "MelodyDistance", "RhythmDistance",
           "StructureDistance", "MIR_DISTANCES", "make_distance", "DISTANCES"]
