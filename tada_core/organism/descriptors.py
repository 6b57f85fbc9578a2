"""Concept descriptors and a small classifier: the organism's offline alignment scorers.

Weight-free descriptors, computed from the grid spectrogram (:func:`.codec.analyze`):

============== ========================= ===================================================
descriptor     concept                   what it measures
============== ========================= ===================================================
onset_rate     tempo (fast > slow)       beats per second: shortest strong period of the
                                         spectral-flux autocorrelation
centroid       brightness (bright > dark) centroid in Hz of the tonal power above 370 Hz
major_minor    mood (happy > sad)        best major minus best minor triad correlation of
                                         the 370-1400 Hz tonal chroma over 0.5 s windows
percussive     drums (with > without)    energy-weighted spectral flatness above 1.5 kHz
                                         (snare and hats are noise, instruments are partials)
low_voice      vocal gender (male > fem.) share of power between 90 and 270 Hz, where only a
                                         low voice sings
============== ========================= ===================================================

Each descriptor has a threshold fitted on synthetic clips (midpoint of the two class
medians). Instruments cannot be told apart by one number, so a softmax classifier over
spectral and envelope statistics is trained on synthetic clips (round-tripped through
the codec, which is what the model's decoder produces). Both ship with the checkpoint
as ``scorer.safetensors`` + ``scorer.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from . import synth
from .codec import analyze

DESCRIPTORS: dict[str, str] = {
    "tempo": "onset_rate", "brightness": "centroid", "mood": "major_minor", "drums": "percussive",
    "vocal_gender": "low_voice",
}
# sign: +1 when a larger descriptor means the concept's positive value
SIGNS = {"tempo": 1, "brightness": 1, "mood": 1, "drums": 1, "vocal_gender": -1}

_FREQS = np.arange(1, synth.N_BINS + 1) * synth.GRID_HZ
_MIDI = 69 + 12 * np.log2(_FREQS / 440.0)


def _as_batch(audio, sample_rate: int) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 3:       # [B, channels, samples] -> mono
        x = x.mean(1)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"audio must be [samples], [B, samples] or [B, channels, samples]; got {x.shape}")
    if sample_rate != synth.SR:
        n = int(round(x.shape[-1] * synth.SR / sample_rate))
        t = np.arange(n) * sample_rate / synth.SR
        x = np.stack([np.interp(t, np.arange(x.shape[-1]), row) for row in x])
    return x


def _triads() -> np.ndarray:
    t = []
    for third in (4, 3):          # major, minor
        for root in range(12):
            v = np.zeros(12)
            v[[root, (root + third) % 12, (root + 7) % 12]] = 1
            t.append(v - v.mean())
    t = np.array(t)
    return t / np.linalg.norm(t, axis=1, keepdims=True)


_TRIADS = _triads()


def _median_filter(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    pad = [(0, 0)] * x.ndim
    pad[axis] = (size // 2, size // 2)
    xp = np.pad(x, pad, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(xp, size, axis=axis)
    return np.median(windows, axis=-1)


def _beat_rate(flux: np.ndarray) -> float:
    """Beats per second: the shortest flux period whose autocorrelation is near the strongest one."""
    f = flux - flux.mean()
    ac = np.correlate(f, f, mode="full")[len(f) - 1:]
    ac = ac / (ac[0] + 1e-12)
    lags = np.arange(4, 21)
    strong = ac[lags] >= 0.7 * ac[lags].max()
    peak = [l for l, s in zip(lags, strong) if s and ac[l] >= ac[l - 1] and ac[l] >= ac[l + 1]]
    lag = peak[0] if peak else lags[np.argmax(ac[lags])]
    return synth.SR / synth.HOP / float(lag)


def descriptors(audio, sample_rate: int = synth.SR) -> dict[str, np.ndarray]:
    """Weight-free descriptors of each clip: ``{name: array [B]}`` (see the module table)."""
    amps = analyze(_as_batch(audio, sample_rate))            # [B, 256, T]
    out = {k: [] for k in ("onset_rate", "centroid", "major_minor", "percussive", "low_voice")}
    for a in amps:
        p = a ** 2
        total = p.sum() + 1e-12
        seconds = a.shape[1] * synth.HOP / synth.SR
        log_a = np.log(1e-3 + a)
        flux = np.clip(np.diff(log_a, axis=1), 0, None).sum(0)
        out["onset_rate"].append(_beat_rate(flux))
        harm = _median_filter(p, 9, axis=1)
        perc = _median_filter(p, 17, axis=0)
        tonal = np.where((perc <= 2 * harm) & (_FREQS[:, None] >= 370), p, 0.0)
        out["centroid"].append(float((_FREQS[:, None] * tonal).sum() / (tonal.sum() + 1e-12)))
        band = (_FREQS >= 370) & (_FREQS <= 1400)
        chroma = np.zeros((12, a.shape[1]))
        np.add.at(chroma, np.round(_MIDI[band]).astype(int) % 12, tonal[band])
        window = np.ones(8)             # half a second: broken chords add up to triads
        chroma = np.stack([np.convolve(c, window, mode="same") for c in chroma])
        energy = chroma.sum(0)
        chroma = chroma - chroma.mean(0, keepdims=True)
        chroma /= np.linalg.norm(chroma, axis=0, keepdims=True) + 1e-12
        corr = _TRIADS @ chroma                                # [24, T]
        diff = corr[:12].max(0) - corr[12:].max(0)
        out["major_minor"].append(float((diff * energy).sum() / (energy.sum() + 1e-12)))
        # snare and hats are noise: they lift the median bin above 1.5 kHz, sparse partials do not
        out["percussive"].append(float(np.median(a[_FREQS >= 1500], axis=0).mean()))
        low = (_FREQS >= 90) & (_FREQS <= 270)
        out["low_voice"].append(float(p[low].sum() / total))
    return {k: np.array(v) for k, v in out.items()}


def clip_features(audio, sample_rate: int = synth.SR) -> np.ndarray:
    """Per-clip feature vector for the classifier: band log-energy mean/std/|delta| and the descriptors."""
    amps = analyze(_as_batch(audio, sample_rate))
    bands = amps.reshape(amps.shape[0], 32, 8, amps.shape[-1])
    log_e = np.log(1e-4 + (bands ** 2).sum(2))                 # [B, 32, T]
    log_e = log_e - log_e.mean((1, 2), keepdims=True)
    delta = np.abs(np.diff(log_e, axis=2))
    env = np.log(1e-4 + (amps[:, 23:] ** 2).sum(1))            # >= 370 Hz
    d_env = np.diff(env, axis=1)
    d = descriptors(audio, sample_rate)
    extra = np.stack([d["onset_rate"], d["centroid"] / 1000, d["major_minor"], d["percussive"], d["low_voice"],
                      np.clip(d_env, 0, None).mean(1), np.clip(d_env, None, 0).mean(1),
                      (d_env < 0).mean(1)], axis=1)
    return np.concatenate([log_e.mean(2), log_e.std(2), delta.mean(2), extra], axis=1).astype(np.float32)


class Scorer:
    """Descriptor thresholds plus the instrument classifier; ``predict`` labels clips for every concept."""

    def __init__(self, thresholds: dict[str, float], weight: np.ndarray, bias: np.ndarray, mean: np.ndarray,
                 std: np.ndarray, classes: Sequence[str] = synth.INSTRUMENTS):
        self.thresholds, self.weight, self.bias = dict(thresholds), weight, bias
        self.mean, self.std, self.classes = mean, std, tuple(classes)

    def instrument_probs(self, audio, sample_rate: int = synth.SR) -> np.ndarray:
        """Softmax over :data:`synth.INSTRUMENTS`, ``[B, 4]``."""
        x = (clip_features(audio, sample_rate) - self.mean) / self.std
        logits = x @ self.weight.T + self.bias
        logits -= logits.max(1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(1, keepdims=True)

    def predict(self, audio, sample_rate: int = synth.SR) -> dict[str, np.ndarray]:
        """``{concept: 1 if the clip shows the concept's positive value else 0}`` plus ``instrument`` names."""
        d = descriptors(audio, sample_rate)
        out = {c: (SIGNS[c] * (d[name] - self.thresholds[c]) > 0).astype(int) for c, name in DESCRIPTORS.items()}
        probs = self.instrument_probs(audio, sample_rate)
        out["instrument"] = np.array([self.classes[i] for i in probs.argmax(1)])
        return out

    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save_file

        folder = Path(folder)
        save_file({"weight": self.weight, "bias": self.bias, "mean": self.mean, "std": self.std},
                  str(folder / "scorer.safetensors"))
        (folder / "scorer.json").write_text(json.dumps(
            {"thresholds": self.thresholds, "classes": list(self.classes), "descriptors": DESCRIPTORS},
            indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> "Scorer":
        from safetensors.numpy import load_file

        folder = Path(folder)
        t = load_file(str(folder / "scorer.safetensors"))
        meta = json.loads((folder / "scorer.json").read_text())
        return cls(meta["thresholds"], t["weight"], t["bias"], t["mean"], t["std"], meta["classes"])


def synthetic_set(n: int, seed: int, roundtrip: bool = True):
    """(attributes, audio [n, samples]) of ``n`` synthetic clips, optionally through the codec and decoder."""
    from .codec import build_decoder, decode, encode

    items = synth.dataset(n, seed=seed)
    audio = np.stack([synth.synthesize(a, s) for a, _, s in items])
    if roundtrip:
        vae = build_decoder()
        audio = np.concatenate([decode(encode(audio[i:i + 50]), vae) for i in range(0, n, 50)])
    return [a for a, _, _ in items], audio


def fit_scorer(attrs: Sequence[synth.Attributes], audio, sample_rate: int = synth.SR, steps: int = 500,
               seed: int = 0) -> Scorer:
    """Fit descriptor thresholds (midpoint of class medians) and the instrument classifier."""
    import torch

    d = descriptors(audio, sample_rate)
    thresholds = {}
    for concept, name in DESCRIPTORS.items():
        y = synth.label(attrs, concept)
        thresholds[concept] = float((np.median(d[name][y == 1]) + np.median(d[name][y == 0])) / 2)
    x = clip_features(audio, sample_rate)
    mean, std = x.mean(0), x.std(0) + 1e-6
    y = torch.tensor([synth.INSTRUMENTS.index(a.instrument) for a in attrs])
    xt = torch.tensor((x - mean) / std)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lin = torch.nn.Linear(x.shape[1], len(synth.INSTRUMENTS))
    opt = torch.optim.Adam(lin.parameters(), lr=0.05, weight_decay=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin(xt), y).backward()
        opt.step()
    return Scorer(thresholds, lin.weight.detach().numpy(), lin.bias.detach().numpy(), mean, std)


def agreement(scorer: Scorer, attrs: Sequence[synth.Attributes], audio,
              sample_rate: int = synth.SR) -> dict[str, float]:
    """Accuracy of ``scorer`` against ground truth, per concept (clips without the concept's values skipped)."""
    pred = scorer.predict(audio, sample_rate)
    acc = {}
    for concept in DESCRIPTORS:
        y = synth.label(attrs, concept)
        keep = y >= 0
        acc[concept] = float((pred[concept][keep] == y[keep]).mean())
    truth = np.array([a.instrument for a in attrs])
    acc["instrument"] = float((pred["instrument"] == truth).mean())
    return acc
