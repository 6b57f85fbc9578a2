"""Synthetic music with known concepts: the ground truth of the model organism.

Every clip is 4.096 s of mono 16 kHz audio made from a few attributes that mirror the
TADA paper's concept families in miniature:

========== ===================================== =====================================
concept    values                                what changes in the audio
========== ===================================== =====================================
tempo      slow (66-84 BPM), fast (132-168 BPM)  one onset per beat, so onsets per second
mood       happy (major), sad (minor)            scale and chords
brightness bright, dark                          how fast upper harmonics fall off
instrument piano, flute, violin, trumpet         harmonic recipe, attack, decay, tremolo
drums      with, without                         kick / snare / hat bursts on the beats
voice      none, male (low), female (high)       a sung vowel at a low or high pitch
========== ===================================== =====================================

Every partial lies on a grid of multiples of ``GRID_HZ = SR / HOP`` (15.625 Hz) and
below 2 kHz (the codec's ceiling; drum and breath noise is band-limited to it too), so
the tonal part is exactly representable by the codec in :mod:`tada_core.organism.codec`
(one channel per grid frequency). Pitches are rounded to
that grid: at the registers used here (melody >= 523 Hz, chords >= 392 Hz) the
rounding is under 0.35 semitone, so keys and chords stay recognizable. Voices use
whole-grid fundamentals directly.

Captions (:func:`caption`) are drawn from the attributes with synonyms, optional
omissions and varied word order, so that templates like "fast {base}" or
"{base} with female vocals" mean something to a model trained on them.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from ..errors import TadaError

SR = 16000
HOP = 1024
GRID_HZ = SR / HOP
N_BINS = 128                     # grid frequencies k * GRID_HZ for k = 1..128 (up to 2 kHz)
N_FRAMES = 64
N_SAMPLES = N_FRAMES * HOP       # 4.096 s

TEMPOS = ("slow", "fast")
MOODS = ("happy", "sad")
BRIGHTNESS = ("bright", "dark")
INSTRUMENTS = ("piano", "flute", "violin", "trumpet")
VOICES = ("none", "male", "female")
STYLES = ("pop", "waltz", "folk", "march")

# Concept name -> the attribute it reads and its (positive, negative) values.
CONCEPTS: dict[str, tuple[str, str, str]] = {
    "tempo": ("tempo", "fast", "slow"),
    "mood": ("mood", "happy", "sad"),
    "brightness": ("brightness", "bright", "dark"),
    "drums": ("drums", True, False),
    "vocal_gender": ("voice", "female", "male"),
    "piano": ("instrument", "piano", None),
    "flute": ("instrument", "flute", None),
    "violin": ("instrument", "violin", None),
    "trumpet": ("instrument", "trumpet", None),
}


@dataclasses.dataclass(frozen=True)
class Attributes:
    """The ground truth of one clip."""

    tempo: str = "slow"
    mood: str = "happy"
    brightness: str = "bright"
    instrument: str = "piano"
    drums: bool = False
    voice: str = "none"
    style: str = "pop"
    bpm: float = 75.0
    key: int = 0                 # tonic pitch class, 0 = C

    def __post_init__(self):
        for name, allowed in (("tempo", TEMPOS), ("mood", MOODS), ("brightness", BRIGHTNESS),
                              ("instrument", INSTRUMENTS), ("voice", VOICES), ("style", STYLES)):
            if getattr(self, name) not in allowed:
                raise TadaError(f"{name} must be one of {allowed}; got {getattr(self, name)!r}")


def random_attributes(rng: np.random.Generator, **fixed) -> Attributes:
    """Draw attributes uniformly; keyword arguments pin any of them."""
    tempo = fixed.pop("tempo", None) or TEMPOS[rng.integers(2)]
    lo, hi = (66, 84) if tempo == "slow" else (132, 168)
    values = dict(
        tempo=tempo,
        mood=MOODS[rng.integers(2)],
        brightness=BRIGHTNESS[rng.integers(2)],
        instrument=INSTRUMENTS[rng.integers(4)],
        drums=bool(rng.integers(2)),
        voice=VOICES[rng.integers(3)],
        style=STYLES[rng.integers(4)],
        bpm=float(rng.uniform(lo, hi)),
        key=0,
    )
    values.update(fixed)
    return Attributes(**values)


# ---------------------------------------------------------------------------- audio

_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
# Progressions as scale degrees (0-based) of chord roots; chords are stacked thirds of the
# scale, so in major every chord here is a major triad (I, IV, V) and in natural minor
# every chord is a minor triad (i, iv, v): the mood is audible in every beat.
_PROGRESSION = (0, 3, 4, 0)
# Melodies as scale degrees above the tonic an octave up, one per beat; two per style.
# A small, fixed vocabulary keeps the organism learnable in minutes on a CPU: what
# varies between clips of the same attributes is the tempo within its range, the start
# offset, which of the two motifs plays, and the drum noise.
_MOTIFS = {"pop": [(0, 2, 4, 2, 3, 5, 4, 1), (4, 2, 0, 2, 5, 3, 1, 4)],
           "waltz": [(4, 2, 0, 5, 3, 1, 4, 2, 0), (0, 2, 4, 1, 3, 5, 0, 4, 2)],
           "folk": [(0, 0, 4, 4, 5, 3, 4, 2), (2, 1, 0, 2, 3, 5, 4, 4)],
           "march": [(0, 4, 0, 4, 3, 5, 4, 1), (4, 4, 2, 0, 5, 3, 1, 0)]}


def _grid_k(midi: float) -> int:
    return int(round(440.0 * 2 ** ((midi - 69) / 12) / GRID_HZ))


def _period(ks: np.ndarray, amps: np.ndarray) -> np.ndarray:
    """One 1024-sample period of a sum of grid partials: every grid sinusoid repeats each HOP."""
    n = np.arange(HOP)
    return (amps[:, None] * np.sin(2 * np.pi * ks[:, None] * n[None, :] / HOP)).sum(0)


def _instrument_partials(instrument: str, brightness: str, k0: int) -> tuple[np.ndarray, np.ndarray]:
    m = np.arange(1, max(1, N_BINS // k0) + 1)
    if instrument == "piano":
        amps = 1.0 / m
    elif instrument == "flute":
        amps = np.exp(-(m - 1) * 0.8)
    elif instrument == "violin":
        amps = 1.0 / m * (1 + 0.3 * (m % 2 == 0))
    else:  # trumpet: a formant-like bump around the 3rd harmonic
        amps = m * np.exp(-m / 2.2)
    # bright lifts the upper harmonics, dark leaves little above the fundamental
    tilt = m ** 0.9 * np.exp(-(m - 1) / 10.0) if brightness == "bright" else np.exp(-(m - 1) / 0.7)
    amps = amps * tilt
    return k0 * m, amps / amps.max()


def _envelope(instrument: str, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SR
    if instrument == "piano":
        env = np.minimum(t / 0.005, 1) * np.exp(-t / 0.45)
    elif instrument == "flute":
        env = np.minimum(t / 0.07, 1) * (1 + 0.12 * np.sin(2 * np.pi * 5.0 * t))
    elif instrument == "violin":
        env = np.minimum(t / 0.06, 1) * (1 + 0.12 * np.sin(2 * np.pi * 6.5 * t + rng.uniform(0, 6)))
    else:
        env = np.minimum(t / 0.03, 1) * (1 + 0.3 * np.exp(-t / 0.06))
    release = np.minimum((n - np.arange(n)) / (0.03 * SR), 1)
    return env * release


def _band_noise(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[(f < lo) | (f > hi)] = 0
    x = np.fft.irfft(spec, n)
    return x / (np.abs(x).max() + 1e-9)


def _add(out: np.ndarray, start: int, x: np.ndarray) -> None:
    end = min(len(out), start + len(x))
    if end > start:
        out[start:end] += x[: end - start]


def synthesize(attrs: Attributes, seed: int = 0) -> np.ndarray:
    """Render ``attrs`` to 4.096 s of mono float32 audio at 16 kHz, deterministic per ``seed``."""
    rng = np.random.default_rng(seed)
    out = np.zeros(N_SAMPLES)
    beat = int(round(60.0 / attrs.bpm * SR))
    meter = 3 if attrs.style == "waltz" else 4
    scale = _MAJOR if attrs.mood == "happy" else _MINOR
    prog = _PROGRESSION
    motif = _MOTIFS[attrs.style][rng.integers(2)]
    tonic = 60 + attrs.key                        # the scale's tonic near middle C
    offset = int(rng.integers(0, beat // 8 + 1))  # clips start at a random point of a beat
    n_beats = (N_SAMPLES - offset) // beat + 1

    def degree_midi(deg: int, base: int) -> int:
        return base + 12 * (deg // 7) + scale[deg % 7]

    for b in range(n_beats):
        start = offset + b * beat
        root = prog[(b // meter) % len(prog)]
        chord = [degree_midi(root + i, tonic) for i in (0, 2, 4)]
        chord = [c + 12 * int(np.ceil((67 - c) / 12)) if c < 67 else c for c in chord]
        pos = b % meter
        # accompaniment: one hit per beat, pattern by style
        if attrs.style == "pop" or (attrs.style == "march" and pos % 2 == 1):
            notes = chord
        elif attrs.style == "waltz":
            notes = chord[:1] if pos == 0 else chord[1:]
        elif attrs.style == "march":
            notes = chord[:1]
        else:  # folk: broken chord, one chord tone per beat
            notes = [chord[b % 3]]
        # melody: the motif, one note per beat, held for two beats at the end of each bar
        melody = degree_midi(7 + motif[b % len(motif)], tonic)
        while melody < 72:
            melody += 12
        dur = beat * (2 if pos == meter - 1 else 1)
        env = _envelope(attrs.instrument, dur, rng)
        for midi, gain in [(melody, 0.5)] + [(c, 0.22) for c in notes]:
            ks, amps = _instrument_partials(attrs.instrument, attrs.brightness, _grid_k(midi))
            keep = ks <= N_BINS
            tone = np.tile(_period(ks[keep], amps[keep]), dur // HOP + 2)[:dur]
            _add(out, start, gain * env * tone)
        if attrs.instrument == "flute":  # breath
            _add(out, start, 0.02 * env * _band_noise(rng, dur, 1200, 2000))
        if attrs.drums:
            _drum(out, start, "kick" if pos % 2 == 0 else "snare", rng)
            _drum(out, start, "hat", rng)   # on the beat too: onsets per second stay the tempo
    if attrs.voice != "none":
        _voice(out, attrs, offset, beat, meter, prog)
    out /= max(1.0, np.abs(out).max() / 0.9)
    return out.astype(np.float32)


def _drum(out: np.ndarray, start: int, kind: str, rng: np.random.Generator) -> None:
    if kind == "kick":
        n = int(0.25 * SR)
        t = np.arange(n) / SR
        tone = np.sin(2 * np.pi * 4 * GRID_HZ * t) + 0.5 * np.sin(2 * np.pi * 6 * GRID_HZ * t)
        _add(out, start, 0.8 * np.exp(-t / 0.06) * tone + 0.4 * np.exp(-t / 0.01) * _band_noise(rng, n, 60, 2000))
    elif kind == "snare":
        n = int(0.2 * SR)
        t = np.arange(n) / SR
        _add(out, start, 0.6 * np.exp(-t / 0.05) * _band_noise(rng, n, 600, 2000)
             + 0.2 * np.exp(-t / 0.03) * np.sin(2 * np.pi * 12 * GRID_HZ * t))
    else:
        n = int(0.06 * SR)
        t = np.arange(n) / SR
        _add(out, start, 0.3 * np.exp(-t / 0.015) * _band_noise(rng, n, 1400, 2000))


# formants (Hz) and bandwidths of the sung vowel "ah"
_VOWEL = ((730, 1090, 2440), (90, 110, 170))


def _voice(out, attrs, offset, beat, meter, prog) -> None:
    low, high = (7, 12) if attrs.voice == "male" else (18, 28)
    formants, widths = _VOWEL
    shift = 1.0 if attrs.voice == "male" else 1.15
    scale = _MAJOR if attrs.mood == "happy" else _MINOR
    length = 2 * beat
    for start in range(offset, N_SAMPLES, length):
        b = (start - offset) // beat
        root_pc = (attrs.key + scale[prog[(b // meter) % len(prog)] % 7]) % 12
        # the grid fundamental in the voice's range whose pitch class is nearest the chord root
        cands = np.arange(low, high + 1)
        pcs = (12 * np.log2(cands * GRID_HZ / 440.0) + 69) % 12
        dist = np.minimum(np.abs(pcs - root_pc), 12 - np.abs(pcs - root_pc))
        k0 = int(cands[np.argmin(dist)])
        m = np.arange(1, N_BINS // k0 + 1)
        f = k0 * m * GRID_HZ
        amps = sum(np.exp(-0.5 * ((f - shift * fc) / bw) ** 2) for fc, bw in zip(formants, widths))
        amps = amps + 0.8 / m ** 1.5      # a strong fundamental, as in real voices
        amps = amps / amps.max()
        t = np.arange(length) / SR
        env = np.minimum(t / 0.08, 1) * np.minimum((length - np.arange(length)) / (0.08 * SR), 1)
        env = env * (1 + 0.1 * np.sin(2 * np.pi * 5.5 * t))
        tone = np.tile(_period(k0 * m, amps), length // HOP + 2)[:length]
        _add(out, start, 0.35 * env * tone)


# ---------------------------------------------------------------------------- captions

_NOUNS = {"pop": ["pop song", "pop tune", "pop track"], "waltz": ["waltz"], "folk": ["folk tune", "folk song"],
          "march": ["march"]}
_GENERIC = ["song", "tune", "melody", "track", "piece"]
TEMPO_WORDS = {"fast": ["fast", "quick", "uptempo", "upbeat"], "slow": ["slow", "leisurely", "downtempo",
                                                                          "unhurried"]}
MOOD_WORDS = {"happy": ["happy", "cheerful", "joyful", "major-key"], "sad": ["sad", "melancholic", "gloomy",
                                                                            "minor-key"]}
BRIGHT_WORDS = {"bright": ["bright", "brilliant", "crisp"], "dark": ["dark", "mellow", "muffled"]}
INSTRUMENT_WORDS = {"piano": ["piano"], "flute": ["flute"], "violin": ["violin", "strings"],
                    "trumpet": ["trumpet", "brass"]}
VOICE_PHRASES = {"male": ["with male vocals", "with a male singer", "with a deep male voice"],
                 "female": ["with female vocals", "with a female singer", "with a high female voice"],
                 "none": ["instrumental"]}


def base_phrases(style: str | None = None) -> list[str]:
    """Base descriptions ("a pop song", "a tune", "music") for prompt templates."""
    nouns = _NOUNS[style] if style else sorted({n for v in _NOUNS.values() for n in v}) + _GENERIC
    return [_article(n) + n for n in nouns] + ([] if style else ["music"])


def _article(word: str) -> str:
    return "an " if word[0] in "aeiou" else "a "


def caption(attrs: Attributes, rng: np.random.Generator, p_mention: float = 0.9) -> str:
    """A caption for ``attrs``: each attribute is named with probability ``p_mention``."""
    pick = lambda words: words[rng.integers(len(words))]  # noqa: E731
    adjectives = []
    if rng.random() < p_mention:
        adjectives.append(pick(TEMPO_WORDS[attrs.tempo]))
    if rng.random() < p_mention:
        adjectives.append(pick(MOOD_WORDS[attrs.mood]))
    rng.shuffle(adjectives)
    noun = pick(_NOUNS[attrs.style]) if rng.random() < 0.7 else pick(_GENERIC)
    tail = []
    instrument = pick(INSTRUMENT_WORDS[attrs.instrument]) if rng.random() < 0.85 else None
    bright = pick(BRIGHT_WORDS[attrs.brightness]) if rng.random() < p_mention else None
    if instrument:
        tail.append(f"{pick(['with', 'played on', 'on'])} {bright + ' ' if bright else ''}{instrument}")
    elif bright:
        adjectives.insert(0, bright)
    if rng.random() < p_mention:
        tail.append(pick(["with drums", "with a drum beat", "with percussion"]) if attrs.drums
                    else pick(["without drums", "with no percussion"]))
    if attrs.voice != "none" and rng.random() < 0.9:
        tail.append(pick(VOICE_PHRASES[attrs.voice]))
    elif attrs.voice == "none" and rng.random() < 0.3:
        adjectives.append("instrumental")
    rng.shuffle(tail)
    head = " ".join(adjectives + [noun])
    text = _article(head) + head
    if tail:
        text += " " + (", ".join(tail[:-1]) + " and " + tail[-1] if len(tail) > 1 else tail[0])
    return text


def dataset(n: int, seed: int = 0) -> list[tuple[Attributes, str, int]]:
    """``n`` (attributes, caption, audio seed) triples, deterministic per ``seed``."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        attrs = random_attributes(rng)
        items.append((attrs, caption(attrs, rng), int(seed * 1_000_003 + i)))
    return items


def concept_values(concept: str) -> tuple[str, object, object]:
    """(attribute, positive value, negative value) of a concept; negative None = any other value."""
    if concept not in CONCEPTS:
        raise TadaError(f"unknown concept {concept!r}; known: {', '.join(CONCEPTS)}")
    return CONCEPTS[concept]


def label(attrs: Attributes | Sequence[Attributes], concept: str) -> np.ndarray:
    """1 where the clip has the concept's positive value, 0 where it has the negative one, -1 otherwise."""
    items = [attrs] if isinstance(attrs, Attributes) else list(attrs)
    field, pos, neg = concept_values(concept)
    out = []
    for a in items:
        v = getattr(a, field)
        out.append(1 if v == pos else (0 if neg is None or v == neg else -1))
    return np.array(out)
