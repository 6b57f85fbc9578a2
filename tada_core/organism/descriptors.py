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

from ..errors import TadaError
from ..io import read_json
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
        raise TadaError(f"audio must be [samples], [B, samples] or [B, channels, samples]; got {x.shape}")
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
    lags = np.arange(4, min(21, len(f) - 1))
    if len(lags) == 0:
        return float("nan")  # under ~0.3 s: too short to have a beat period
    strong = ac[lags] >= 0.7 * ac[lags].max()
    peak = [l for l, s in zip(lags, strong) if s and ac[l] >= ac[l - 1] and ac[l] >= ac[l + 1]]
    lag = peak[0] if peak else lags[np.argmax(ac[lags])]
    return synth.SR / synth.HOP / float(lag)


def descriptors(audio, sample_rate: int = synth.SR) -> dict[str, np.ndarray]:
    """Weight-free descriptors of each clip: ``{name: array [B]}`` (see the module table)."""
    amps = analyze(_as_batch(audio, sample_rate))            # [B, N_BINS, T]
    out = {k: [] for k in ("onset_rate", "centroid", "major_minor", "percussive", "low_voice")}
    for a in amps:
        p = a ** 2
        total = p.sum() + 1e-12
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
        out["percussive"].append(float(np.median(a[_FREQS >= 1200], axis=0).mean()))
        low = (_FREQS >= 90) & (_FREQS <= 270)
        out["low_voice"].append(float(p[low].sum() / total))
    return {k: np.array(v) for k, v in out.items()}


def clip_features(audio, sample_rate: int = synth.SR, desc: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Per-clip feature vector for the classifier: band log-energy mean/std/|delta| and the descriptors.

    ``desc``: this audio's :func:`descriptors`, when the caller already has them.
    """
    amps = analyze(_as_batch(audio, sample_rate))
    bands = amps.reshape(amps.shape[0], synth.N_BINS // 8, 8, amps.shape[-1])
    log_e = np.log(1e-4 + (bands ** 2).sum(2))                 # [B, 32, T]
    log_e = log_e - log_e.mean((1, 2), keepdims=True)
    step = np.diff(log_e, axis=2)
    delta = np.abs(step)
    # tremolo flips the sign of consecutive changes; decays and swells keep it
    wobble = (step[..., 1:] * step[..., :-1]).mean(2) / ((step ** 2).mean(2) + 1e-6)
    env = np.log(1e-4 + (amps[:, 23:] ** 2).sum(1))            # >= 370 Hz
    d_env = np.diff(env, axis=1)
    d = desc if desc is not None else descriptors(audio, sample_rate)
    extra = np.stack([d["onset_rate"], d["centroid"] / 1000, d["major_minor"], d["percussive"], d["low_voice"],
                      np.clip(d_env, 0, None).mean(1), np.clip(d_env, None, 0).mean(1),
                      (d_env < 0).mean(1)], axis=1)
    return np.concatenate([log_e.mean(2), log_e.std(2), delta.mean(2), wobble, extra], axis=1).astype(np.float32)


HEADS = ("tempo", "mood", "brightness", "drums", "vocal_gender", "instrument")


class DescriptorClassifier:
    """Descriptor thresholds plus a linear classifier per concept over :func:`clip_features`.

    ``descriptor_labels`` is weight-free apart from one threshold per concept;
    ``classifier_probs`` is the trained classifier (the only scorer for instruments).
    """

    def __init__(self, thresholds: dict[str, float], heads: dict[str, tuple[np.ndarray, np.ndarray]],
                 mean: np.ndarray, std: np.ndarray):
        self.thresholds, self.heads, self.mean, self.std = dict(thresholds), dict(heads), mean, std

    def descriptor_labels(self, audio, sample_rate: int = synth.SR,
                          desc: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """``{concept: 1 where the descriptor says the positive value, else 0}``."""
        d = desc if desc is not None else descriptors(audio, sample_rate)
        return {c: (SIGNS[c] * (d[name] - self.thresholds[c]) > 0).astype(int) for c, name in DESCRIPTORS.items()}

    def classifier_probs(self, audio, sample_rate: int = synth.SR,
                         desc: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """``{concept: P(positive) [B]}`` and ``{"instrument": softmax [B, 4]}`` over :data:`synth.INSTRUMENTS`."""
        x = (clip_features(audio, sample_rate, desc) - self.mean) / self.std
        out = {}
        for head, (w, b) in self.heads.items():
            logits = x @ w.T + b
            if head == "instrument":
                logits = logits - logits.max(1, keepdims=True)
                e = np.exp(logits)
                out[head] = e / e.sum(1, keepdims=True)
            else:
                out[head] = 1 / (1 + np.exp(-logits[:, 0]))
        return out

    def predict(self, audio, sample_rate: int = synth.SR,
                desc: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Classifier labels: ``{concept: 0/1}`` and ``{"instrument": names}``."""
        probs = self.classifier_probs(audio, sample_rate, desc)
        out = {c: (p > 0.5).astype(int) for c, p in probs.items() if c != "instrument"}
        out["instrument"] = np.array([synth.INSTRUMENTS[i] for i in probs["instrument"].argmax(1)])
        return out

    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"mean": self.mean, "std": self.std}
        for head, (w, b) in self.heads.items():
            tensors[f"{head}.weight"], tensors[f"{head}.bias"] = w, b
        save_file(tensors, str(folder / "scorer.safetensors"))
        (folder / "scorer.json").write_text(json.dumps(
            {"thresholds": self.thresholds, "descriptors": DESCRIPTORS, "heads": list(self.heads),
             "instrument_classes": list(synth.INSTRUMENTS)}, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> "DescriptorClassifier":
        from safetensors.numpy import load_file

        folder = Path(folder)
        if not (folder / "scorer.json").is_file():
            raise TadaError(f"no scorer.json in {str(folder)!r}; fit one with `tada organism scorer --out {folder}`")
        t = load_file(str(folder / "scorer.safetensors"))
        meta = read_json(folder / "scorer.json")
        heads = {h: (t[f"{h}.weight"], t[f"{h}.bias"]) for h in meta["heads"]}
        return cls(meta["thresholds"], heads, t["mean"], t["std"])


def synthetic_set(n: int, seed: int, roundtrip: bool = True, floor: float = 0.0):
    """(attributes, audio [n, samples]) of ``n`` synthetic clips, optionally through the codec and decoder.

    ``floor`` > 0 adds, per clip, a stationary noise floor of random partials with a
    Rayleigh amplitude whose scale is drawn from U(0, floor): the residue a weakly
    trained diffusion model leaves in bins that should be silent. Scorers fitted with
    it judge a model's clips by their music, not by their floor.
    """
    from .codec import amplitude, build_decoder, decode, encode, latent

    items = synth.dataset(n, seed=seed)
    audio = np.stack([synth.synthesize(a, s) for a, _, s in items])
    if roundtrip or floor > 0:
        rng = np.random.default_rng(seed + 99)
        vae = build_decoder()
        chunks = []
        for i in range(0, n, 50):
            z = encode(audio[i:i + 50])
            if floor > 0:
                scale = rng.uniform(0, floor, size=(len(z), 1, 1))
                noise = scale * rng.rayleigh(size=z.shape)
                z = latent(np.sqrt(amplitude(z.astype(np.float64)) ** 2 + noise ** 2))
            chunks.append(decode(z, vae))
        audio = np.concatenate(chunks)
    return [a for a, _, _ in items], audio


def fit_scorer(attrs: Sequence[synth.Attributes], audio, sample_rate: int = synth.SR, steps: int = 400,
               seed: int = 0, threshold_clips: int | None = None) -> DescriptorClassifier:
    """Fit descriptor thresholds (midpoint of the class medians) and one linear head per concept.

    Thresholds use the first ``threshold_clips`` clips (default all): pass the clean ones.
    """
    import torch

    d = descriptors(audio, sample_rate)
    thresholds = {}
    n = threshold_clips or len(attrs)
    for concept, name in DESCRIPTORS.items():
        y = synth.label(attrs[:n], concept)
        v = d[name][:n]
        thresholds[concept] = float((np.median(v[y == 1]) + np.median(v[y == 0])) / 2)
    x = clip_features(audio, sample_rate, d)
    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.tensor((x - mean) / std)
    heads = {}
    for head in HEADS:
        if head == "instrument":
            y = torch.tensor([synth.INSTRUMENTS.index(a.instrument) for a in attrs])
            keep = torch.ones(len(attrs), dtype=torch.bool)
        else:
            lab = synth.label(attrs, head)
            keep = torch.tensor(lab >= 0)
            y = torch.tensor(lab).clamp(min=0).float()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            lin = torch.nn.Linear(x.shape[1], 4 if head == "instrument" else 1)
        opt = torch.optim.Adam(lin.parameters(), lr=0.05, weight_decay=1e-3)
        for _ in range(steps):
            opt.zero_grad()
            logits = lin(xt[keep])
            loss = (torch.nn.functional.cross_entropy(logits, y[keep]) if head == "instrument" else
                    torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], y[keep]))
            loss.backward()
            opt.step()
        heads[head] = (lin.weight.detach().numpy(), lin.bias.detach().numpy())
    return DescriptorClassifier(thresholds, heads, mean, std)


def agreement(scorer: DescriptorClassifier, attrs: Sequence[synth.Attributes], audio,
              sample_rate: int = synth.SR) -> dict[str, dict[str, float]]:
    """Accuracy against ground truth per concept: ``{"descriptor": {...}, "classifier": {...}}``."""
    d = descriptors(audio, sample_rate)
    by_desc = scorer.descriptor_labels(audio, sample_rate, d)
    by_clf = scorer.predict(audio, sample_rate, d)
    out = {"descriptor": {}, "classifier": {}}
    for concept in DESCRIPTORS:
        y = synth.label(attrs, concept)
        keep = y >= 0
        out["descriptor"][concept] = float((by_desc[concept][keep] == y[keep]).mean())
        out["classifier"][concept] = float((by_clf[concept][keep] == y[keep]).mean())
    truth = np.array([a.instrument for a in attrs])
    out["classifier"]["instrument"] = float((by_clf["instrument"] == truth).mean())
    return out


# (row name, through the codec?, with a noise floor?)
ROWS = (("held-out synthetic clips, through the codec", True, False),
        ("held-out synthetic clips, raw audio", False, False),
        ("held-out synthetic clips, noise floor up to {floor}", True, True))


def fit_and_report(clips: int = 800, seed: int = 7, floor: float = 0.004,
                   held_out: int = 400) -> tuple[DescriptorClassifier, dict[str, dict[str, dict[str, float]]]]:
    """Fit the scorer on ``clips`` synthetic clips (half with a noise floor up to ``floor``) and measure its
    agreement with the generator's ground truth on ``held_out`` new clips per row of :data:`ROWS`."""
    clean_attrs, clean = synthetic_set(clips // 2, seed)
    floor_attrs, floored = synthetic_set(clips - clips // 2, seed + 1, floor=floor)
    scorer = fit_scorer(clean_attrs + floor_attrs, np.concatenate([clean, floored]), threshold_clips=len(clean))
    rows = {}
    for name, roundtrip, noisy in ROWS:
        h_attrs, h_audio = synthetic_set(held_out, seed + 1000, roundtrip=roundtrip, floor=floor if noisy else 0.0)
        rows[name.format(floor=floor)] = agreement(scorer, h_attrs, h_audio)
    return scorer, rows


def report_table(rows: dict[str, dict[str, dict[str, float]]]) -> str:
    """:func:`fit_and_report`'s agreement as a Markdown table (rows x concepts)."""
    lines = ["| clips | scorer | " + " | ".join(HEADS) + " |", "|---|---|" + "---|" * len(HEADS)]
    for name, acc in rows.items():
        for kind in ("descriptor", "classifier"):
            cells = [f"{acc[kind][h]:.2f}" if h in acc[kind] else "-" for h in HEADS]
            lines.append(f"| {name} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
