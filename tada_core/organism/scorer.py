"""The organism's built-in scorer: third-party measures (:mod:`.measures`) with fitted decision thresholds,
and a timbre classifier for the four instruments.

For each two-sided concept the scorer's ``measure`` is a librosa measure with a unit (BPM,
Hz, a key-profile correlation, a share of energy, octaves); a threshold turns it into a
label. Two thresholds are fixed by the measure's meaning (mood: 0, major and minor equally
likely; vocal gender: 220 Hz, between the voices); the other three are fitted on synthetic
clips (the midpoint of the two classes' medians; tempo in log BPM). Instruments have no
third-party detector, so a linear softmax classifier over librosa timbre statistics
(:func:`.measures.timbre_features`) is fitted on synthetic clips; its probability is the
instruments' measure. Everything ships with the checkpoint as ``scorer.json`` +
``scorer.safetensors`` and is refitted by ``tada organism scorer``, which also reports how
well each measure agrees with the generator's ground truth on held-out clips
(``results/organism_scorer.md``).

It measures the organism's synthetic music: the registry offers it only for ``tada-organism``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from tada_core.concepts import Concept
from tada_core.errors import TadaError
from tada_core.runtime.io import read_json, read_tensors, save_tensors, write_json
from tada_core.evaluation.scoring import Scorer
from tada_core.organism import codec, measures, synth
from tada_core.evaluation.stats import bootstrap_ci
from tada_core.organism.model import checkpoint_path

# concept -> (measure, label, how its threshold is set)
MEASURES: dict[str, tuple[Callable, str, str]] = {
    "tempo": (measures.tempo_bpm, "tempo (BPM, librosa beat tracker)", "fitted, in log BPM"),
    "mood": (measures.mode_score, "major - minor key correlation (Krumhansl-Kessler, librosa chroma)", "fixed: 0"),
    "brightness": (measures.harmonic_centroid, "harmonic spectral centroid (Hz, librosa HPSS)", "fitted"),
    "drums": (measures.percussive_share, "percussive energy share (librosa HPSS)", "fitted, in log share"),
    "vocal_gender": (measures.voice_pitch, "voice pitch (octaves above 220 Hz, pYIN)", "fixed: 0 (220 Hz)"),
}
FIXED = {"mood": 0.0, "vocal_gender": 0.0}
LOG = ("tempo", "drums")           # thresholds set and compared on a log scale (ratio-scale measures)
TWO_SIDED = tuple(MEASURES)
JITTER = 1.0                       # latent noise (std, at most) of the jittered fitting clips


@dataclasses.dataclass
class ScorerWeights:
    """Decision thresholds of the two-sided concepts and the instrument classifier (standardized features)."""

    thresholds: dict[str, float]
    mean: np.ndarray
    std: np.ndarray
    weight: np.ndarray          # [instruments, features]
    bias: np.ndarray            # [instruments]

    def instrument_probs(self, features: np.ndarray) -> np.ndarray:
        logits = ((features - self.mean) / self.std) @ self.weight.T + self.bias
        logits = logits - logits.max(1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(1, keepdims=True)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        save_tensors(folder / "scorer.safetensors", {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
                                                     for k, v in (("mean", self.mean), ("std", self.std),
                                                                  ("instrument.weight", self.weight),
                                                                  ("instrument.bias", self.bias))})
        write_json(folder / "scorer.json", {
            "thresholds": self.thresholds, "measures": {c: MEASURES[c][1] for c in TWO_SIDED},
            "threshold_rule": {c: MEASURES[c][2] for c in TWO_SIDED},
            "instrument_classes": list(synth.INSTRUMENTS), "features": "tada_core.organism.measures.timbre_features"})
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "ScorerWeights":
        folder = Path(folder)
        if not (folder / "scorer.json").is_file():
            raise TadaError(f"no scorer.json in {folder.name!r}; fit one with `tada organism scorer --out DIR`")
        meta = read_json(folder / "scorer.json")
        t = {k: v.numpy().astype(np.float64) for k, v in read_tensors(folder / "scorer.safetensors").items()}
        missing = sorted(set(TWO_SIDED) - set(meta.get("thresholds", {})))
        if missing:
            raise TadaError(f"scorer.json has no thresholds for {missing}; refit it with `tada organism scorer`")
        return cls({k: float(v) for k, v in meta["thresholds"].items()}, t["mean"], t["std"],
                   t["instrument.weight"], t["instrument.bias"])


class OrganismScorer(Scorer):
    """The organism's concepts measured by third-party tools (see the module docstring)."""

    name = "organism"

    def __init__(self, folder: str | Path | None = None):
        self.weights = ScorerWeights.load(folder or checkpoint_path())

    def check(self, concept: Concept) -> None:
        if concept.name not in MEASURES and concept.name not in synth.INSTRUMENTS:
            raise TadaError(f"the organism scorer knows concepts {', '.join(list(MEASURES) + list(synth.INSTRUMENTS))}; "
                            f"got {concept.name!r}")

    def label(self, concept: Concept) -> str:
        self.check(concept)
        return MEASURES[concept.name][1] if concept.name in MEASURES else f"P({concept.name}) (timbre classifier)"

    def measure(self, audio, sample_rate: int, concept: Concept) -> np.ndarray:
        self.check(concept)
        if concept.name in MEASURES:
            return np.asarray(MEASURES[concept.name][0](audio, sample_rate), dtype=np.float64)
        probs = self.weights.instrument_probs(measures.timbre_features(audio, sample_rate))
        return probs[:, synth.INSTRUMENTS.index(concept.name)].astype(np.float64)

    def decide(self, audio, sample_rate: int, concept: str) -> np.ndarray:
        """Labels: 1 where the clip shows the concept's positive side; for "instrument", the instrument's name."""
        if concept == "instrument":
            probs = self.weights.instrument_probs(measures.timbre_features(audio, sample_rate))
            return np.array([synth.INSTRUMENTS[i] for i in probs.argmax(1)])
        values = MEASURES[concept][0](audio, sample_rate)
        if concept in LOG:
            values = np.log(np.maximum(values, 1e-6))
        return (values > self.weights.thresholds[concept]).astype(int)


def fit(attrs: Sequence[synth.Attributes], audio: np.ndarray, steps: int = 600, seed: int = 0) -> ScorerWeights:
    """Thresholds (midpoints of the class medians) and the instrument classifier, from synthetic clips."""
    thresholds = dict(FIXED)
    for concept in ("tempo", "brightness", "drums"):
        values = MEASURES[concept][0](audio, synth.SR)
        if concept in LOG:
            values = np.log(np.maximum(values, 1e-6))
        y = synth.label(attrs, concept)
        thresholds[concept] = float((np.median(values[y == 1]) + np.median(values[y == 0])) / 2)
    x = measures.timbre_features(audio, synth.SR).astype(np.float64)
    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.tensor((x - mean) / std, dtype=torch.float32)
    y = torch.tensor([synth.INSTRUMENTS.index(a.instrument) for a in attrs])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lin = torch.nn.Linear(x.shape[1], len(synth.INSTRUMENTS))
    opt = torch.optim.Adam(lin.parameters(), lr=0.05, weight_decay=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin(xt), y).backward()
        opt.step()
    return ScorerWeights(thresholds, mean, std, lin.weight.detach().double().numpy(),
                         lin.bias.detach().double().numpy())


# --------------------------------------------------------------------------------------
# fitting and the agreement report
# --------------------------------------------------------------------------------------
def synthetic_clips(n: int, seed: int, jitter: float = 0.0) -> tuple[list[synth.Attributes], np.ndarray]:
    """``n`` generator clips (attributes, audio [n, samples]) drawn with the training distribution.

    ``jitter`` > 0 renders every clip through an imperfect synthesis: Gaussian noise of standard
    deviation ``u * jitter`` (``u`` uniform in [0, 1], one per clip) is added to the clip's latent
    before the decoder, the kind of small error any generative model makes in every channel and
    frame. The scorer is fitted on clean and jittered clips alike, so that it reads timbre, tempo and
    brightness rather than the exactness of the synthesis; nothing is fitted on a model's output.
    """
    items = synth.dataset(n, seed=seed)
    attrs = [a for a, _, _ in items]
    if jitter <= 0:
        return attrs, np.stack([synth.synthesize(a, s) for a, _, s in items])
    rng = np.random.default_rng(seed + 1)
    out = []
    for a, _, s in items:
        z = codec.latent(synth.render(a, s))
        z = z + rng.normal(size=z.shape) * rng.uniform(0, jitter)
        out.append(codec.synthesize_amplitudes(codec.amplitude(z)).astype(np.float32))
    return attrs, np.stack(out)


def agreement(scorer: "OrganismScorer", attrs: Sequence[synth.Attributes], audio: np.ndarray) -> dict[str, dict]:
    """Per concept (and "instrument"): accuracy against the generator's ground truth, with its 95% interval."""
    out = {}
    for concept in TWO_SIDED + ("instrument",):
        if concept == "instrument":
            truth = np.array([a.instrument for a in attrs])
            keep = np.ones(len(attrs), dtype=bool)
        else:
            truth = synth.label(attrs, concept)
            keep = truth >= 0
        pred = scorer.decide(audio[keep], synth.SR, concept)
        hits = (pred == truth[keep]).astype(np.float64)
        lo, hi = bootstrap_ci(hits)
        out[concept] = {"accuracy": float(hits.mean()), "ci": [lo, hi], "n": int(keep.sum())}
    return out


def essentia_agreement(attrs: Sequence[synth.Attributes], audio: np.ndarray) -> dict | None:
    """essentia's key estimator on the same clips (mode against the ground truth), if essentia is installed."""
    keys = measures.essentia_key(audio, synth.SR)
    if keys is None:
        return None
    hits = np.array([(scale == "major") == (a.mood == "happy") for a, (_, scale, _) in zip(attrs, keys)], float)
    return {"accuracy": float(hits.mean()), "ci": list(bootstrap_ci(hits)), "n": len(hits)}


def tuning(seconds: float = 0.5) -> list[dict]:
    """Every pitch the generator plays or sings, as a steady note through the codec's round trip (synthesis,
    :func:`.codec.encode`, the Oobleck decoder) and measured with pYIN at 1-cent resolution."""
    rows = []
    decoder = codec.build_decoder()
    notes = [("instrument", m, codec.grid_bin(m)) for m in codec.instrument_pitches()]
    notes += [(f"{voice} voice", None, k) for voice, k in codec.VOICE_F0_BINS.items()]
    for source, midi, k0 in notes:
        amps = np.zeros((codec.N_CHANNELS, codec.N_FRAMES))
        if midi is None:
            synth.sing(amps, source.split()[0])
            midi = round(69 + 12 * np.log2(k0 * codec.GRID_HZ / 440.0))
        else:
            for ch, a in synth.harmonics("piano", "bright", k0):
                amps[ch] = 0.1 * a
        audio = codec.decode(codec.encode(codec.synthesize_amplitudes(amps))[None], decoder)
        f0 = float(measures.note_pitch(audio, codec.SR, 0.5 * k0 * codec.GRID_HZ, 2 * k0 * codec.GRID_HZ,
                                       seconds=seconds)[0])
        rows.append({"source": source, "note": f"{measures.PITCH_NAMES[midi % 12]}{midi // 12 - 1}",
                     "equal_tempered_hz": 440.0 * 2 ** ((midi - 69) / 12), "grid_hz": k0 * codec.GRID_HZ,
                     "measured_hz": f0, "cents": float(measures.cents(f0, midi))})
    return rows


def fit_and_report(clips: int = 400, seed: int = 7, held_out: int = 400,
                   jitter: float = JITTER) -> tuple[ScorerWeights, dict]:
    """Fit the scorer on ``clips`` clean and ``clips`` jittered generator clips (see
    :func:`synthetic_clips`); measure its agreement with the ground truth on ``held_out`` new clean
    clips and as many new jittered ones (and essentia's key estimator's, when installed); measure
    every pitch's tuning."""
    attrs, audio = synthetic_clips(clips, seed)
    j_attrs, j_audio = synthetic_clips(clips, seed + 500, jitter)
    weights = fit(attrs + j_attrs, np.concatenate([audio, j_audio]))
    scorer = OrganismScorer.__new__(OrganismScorer)
    scorer.weights = weights
    h_attrs, h_audio = synthetic_clips(held_out, seed + 1000)
    hj_attrs, hj_audio = synthetic_clips(held_out, seed + 1500, jitter)
    return weights, {"agreement": agreement(scorer, h_attrs, h_audio),
                     "agreement_jittered": agreement(scorer, hj_attrs, hj_audio),
                     "essentia_mood": essentia_agreement(h_attrs, h_audio), "tuning": tuning(),
                     "thresholds": weights.thresholds, "clips": clips, "held_out": held_out, "seed": seed,
                     "jitter": jitter}


def report_markdown(report: dict) -> str:
    """:func:`fit_and_report`'s report as Markdown tables."""
    thresholds = report["thresholds"]
    jittered = report.get("agreement_jittered", {})
    lines = ["| concept | measure | threshold | accuracy on held-out generator clips | 95% interval | clips "
             "| jittered clips: accuracy | 95% interval |",
             "|---|---|---|---|---|---|---|---|"]
    for concept, r in report["agreement"].items():
        if concept == "instrument":
            measure, threshold = "timbre classifier (librosa features), 4-way", "-"
        else:
            measure = MEASURES[concept][1]
            t = thresholds[concept]
            shown = np.exp(t) if concept in LOG else t
            threshold = f"{shown:.4g} ({MEASURES[concept][2]})"
        j = jittered.get(concept)
        j_cells = f"{j['accuracy']:.3f} | [{j['ci'][0]:.3f}, {j['ci'][1]:.3f}]" if j else "- | -"
        lines.append(f"| {concept} | {measure} | {threshold} | {r['accuracy']:.3f} | "
                     f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | {r['n']} | {j_cells} |")
    e = report.get("essentia_mood")
    if e is not None:
        lines.append(f"| mood (cross-check) | essentia: HPCP (25 Hz-5 kHz) and `Key` (Krumhansl profile), major vs minor | - | "
                     f"{e['accuracy']:.3f} | [{e['ci'][0]:.3f}, {e['ci'][1]:.3f}] | {e['n']} | - | - |")
    lines += ["", "Every pitch the generator uses, as a steady note through the codec's round trip (synthesis, "
              "encode, the Oobleck decoder), measured with pYIN (48 kHz resampling, 2-cent resolution):", "",
              "| source | note | equal-tempered Hz | codec grid Hz | measured Hz | cents off |", "|---|---|---|---|---|---|"]
    for r in report["tuning"]:
        lines.append(f"| {r['source']} | {r['note']} | {r['equal_tempered_hz']:.2f} | {r['grid_hz']:.2f} | "
                     f"{r['measured_hz']:.2f} | {r['cents']:+.1f} |")
    return "\n".join(lines)
