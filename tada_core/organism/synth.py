"""Synthetic music with known concepts: the ground truth of the model organism.

Every clip is 4.096 s of mono 16 kHz audio made from a few attributes that mirror the
TADA paper's concept families in miniature:

========== ======================================= =======================================
concept    values                                  what changes in the audio
========== ======================================= =======================================
tempo      slow (62-78 BPM), fast (134-156 BPM)    one note onset per beat
mood       happy (E-flat major), sad (E-flat minor) scale and chords (I-IV-V-I / i-iv-v-i)
brightness bright, dark                            how fast upper harmonics fall off
instrument piano, flute, violin, trumpet           harmonic recipe, decay, tremolo, attack noise
drums      with, without                           kick on strong beats, snare, hi-hat
voice      none, male (low), female (high)         a sung vowel on E-flat 3 or E-flat 4
style      pop, waltz, folk, march                 meter, accompaniment pattern, motifs
========== ======================================= =======================================

The music is written directly in the codec's representation (:mod:`.codec`): an amplitude
per grid partial and 64 ms frame, so the codec's round trip is exact and every note is in
tune (within 8 cents of equal temperament: the instruments play between E-flat 6 and
E-flat 7, the voices sing E-flat 3 and E-flat 4). Beats fall on whole frames (a beat lasts
6 or 7 frames when fast, 12 to 15 when slow), so the pulse is exact. Each note starts with a
short broadband attack (its onset is audible in every band, as with real instruments);
drums add a kick (47 and 78 Hz), a snare and a hi-hat (noise partials).

Captions (:func:`caption`) are drawn from the attributes with synonyms, optional
omissions and varied word order, so that templates like "a fast {base}" or
"{base} with female vocals" mean something to a model trained on them.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from tada_core.errors import TadaError
from tada_core.organism import codec
from tada_core.organism.codec import HOP, N_CHANNELS, N_FRAMES, N_SAMPLES, SR, TONIC

TEMPOS = ("slow", "fast")
MOODS = ("happy", "sad")
BRIGHTNESS = ("bright", "dark")
INSTRUMENTS = ("piano", "flute", "violin", "trumpet")
VOICES = ("none", "male", "female")
STYLES = ("pop", "waltz", "folk", "march")
BEAT_FRAMES = {"slow": (12, 13, 14, 15), "fast": (6, 7)}   # frames per beat: 78-62.5 and 156-134 BPM

# Concept name -> the attribute it reads and its (positive, negative) values.
CONCEPTS: dict[str, tuple[str, object, object]] = {
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


def bpm_of(beat_frames: int) -> float:
    """The tempo of a beat that lasts ``beat_frames`` frames of 64 ms."""
    return 60.0 * SR / (beat_frames * HOP)


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
    beat_frames: int = 14

    def __post_init__(self):
        for name, allowed in (("tempo", TEMPOS), ("mood", MOODS), ("brightness", BRIGHTNESS),
                              ("instrument", INSTRUMENTS), ("voice", VOICES), ("style", STYLES)):
            if getattr(self, name) not in allowed:
                raise TadaError(f"{name} must be one of {allowed}; got {getattr(self, name)!r}")
        if self.beat_frames not in BEAT_FRAMES[self.tempo]:
            raise TadaError(f"a {self.tempo} beat lasts {BEAT_FRAMES[self.tempo]} frames; got {self.beat_frames!r}")

    @property
    def bpm(self) -> float:
        return bpm_of(self.beat_frames)


def random_attributes(rng: np.random.Generator, **fixed) -> Attributes:
    """Draw attributes uniformly; keyword arguments pin any of them."""
    tempo = fixed.pop("tempo", None) or TEMPOS[rng.integers(2)]
    frames = BEAT_FRAMES[tempo]
    values = dict(
        tempo=tempo,
        mood=MOODS[rng.integers(2)],
        brightness=BRIGHTNESS[rng.integers(2)],
        instrument=INSTRUMENTS[rng.integers(4)],
        drums=bool(rng.integers(2)),
        voice=VOICES[rng.integers(3)],
        style=STYLES[rng.integers(4)],
        beat_frames=int(frames[rng.integers(len(frames))]),
    )
    values.update(fixed)
    return Attributes(**values)


# ---------------------------------------------------------------------------- music

_PROGRESSION = (0, 3, 4, 0)       # I-IV-V-I (major) / i-iv-v-i (natural minor), as scale degrees
# Melodies as scale degrees above the tonic, one per beat; two per style.
_MOTIFS = {"pop": [(0, 2, 4, 2, 3, 5, 4, 1), (4, 2, 0, 2, 5, 3, 1, 4)],
           "waltz": [(4, 2, 0, 5, 3, 1, 4, 2, 0), (0, 2, 4, 1, 3, 5, 0, 4, 2)],
           "folk": [(0, 0, 4, 4, 5, 3, 4, 2), (2, 1, 0, 2, 3, 5, 4, 4)],
           "march": [(0, 4, 0, 4, 3, 5, 4, 1), (4, 4, 2, 0, 5, 3, 1, 0)]}
# Amplitude of each note's broadband attack, per instrument (a hammer, a chiff, a bow, a tongue).
_ATTACK = {"piano": 0.015, "flute": 0.008, "violin": 0.01, "trumpet": 0.012}
_VOICE_GAIN = 0.06
_PEDAL = 0.15                     # the tonic and its third, under each bar's first chord
_KICK = 0.8
_LEVEL = 0.6                      # every clip's level: its loudest partials reach the top of the latent's range
_VOWEL = ((730, 1090, 2440), (90, 110, 170))     # formants (Hz) and bandwidths of the sung vowel "ah"
# The spectral shape of every noise event (drums, attacks, breath): fixed amplitudes over the noise partials,
# which the codec gives fixed random phases, so each event is a short burst of noise with a known spectrum.
_NOISE_SHAPE = np.random.default_rng(1).rayleigh(size=len(codec.bins()[1])) / np.sqrt(np.pi / 2)


def harmonics(instrument: str, brightness: str, k0: int) -> list[tuple[int, float]]:
    """(channel, relative amplitude) of each harmonic of a note on grid bin ``k0``."""
    m = np.arange(1, 9)
    if instrument == "piano":
        amps = 1.0 / m
    elif instrument == "flute":
        amps = np.exp(-(m - 1) * 0.7)
    elif instrument == "violin":
        amps = 1.0 / m * (1 + 0.5 * (m % 2 == 0))
    else:  # trumpet: a formant-like bump around the 2nd harmonic
        amps = m * np.exp(-m / 1.6)
    # bright lifts the upper harmonics, dark leaves little above the fundamental
    tilt = m * np.exp(-(m - 1) / 6.0) if brightness == "bright" else np.exp(-(m - 1) / 0.6)
    amps = amps * tilt
    amps = amps / amps.max()
    channels = set(codec.bins()[0])
    return [(codec.channel(int(h * k0)), float(a)) for h, a in zip(m, amps) if h * k0 in channels]


def _envelope(instrument: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """A note's amplitude per frame."""
    t = np.arange(n, dtype=np.float64)
    if instrument == "piano":
        return np.exp(-t / 4.0)
    if instrument == "flute":
        return np.minimum((t + 1) / 2, 1.0)
    if instrument == "violin":
        return np.minimum((t + 1) / 3, 1.0) * (1 + 0.35 * np.sin(2 * np.pi * t / 2.6 + rng.uniform(0, 6)))
    return 1 + 0.6 * (t == 0)


def render(attrs: Attributes, seed: int = 0) -> np.ndarray:
    """The clip as codec amplitudes ``[N_CHANNELS, N_FRAMES]`` at a fixed level (its audio peaks below 0.95)."""
    rng = np.random.default_rng(seed)
    amps = np.zeros((N_CHANNELS, N_FRAMES))
    noise = np.array([codec.channel(k) for k in codec.bins()[1]])
    scale = codec.MAJOR if attrs.mood == "happy" else codec.MINOR
    period = attrs.beat_frames
    meter = 3 if attrs.style == "waltz" else 4
    motif = _MOTIFS[attrs.style][rng.integers(2)]
    offset = int(rng.integers(0, period))

    def pitch(degree: int) -> int:
        return TONIC + 12 * (degree // 7) + scale[degree % 7]

    for b in range(N_FRAMES):
        start = offset + b * period
        if start >= N_FRAMES:
            break
        pos = b % meter
        chord = [pitch(_PROGRESSION[(b // meter) % 4] + i) for i in (0, 2, 4)]
        chord = [c - 12 if c > TONIC + 12 else c for c in chord]          # voiced inside E-flat 6..7
        if attrs.style == "pop" or (attrs.style == "march" and pos % 2 == 1):
            notes = chord
        elif attrs.style == "waltz":
            notes = chord[:2] if pos == 0 else chord[1:]
        elif attrs.style == "march":
            notes = chord[:2]
        else:  # folk: broken chord, one chord tone per beat
            notes = [chord[b % 3]]
        melody = pitch(motif[b % len(motif)])
        while melody > TONIC + 12:
            melody -= 12
        length = min(period * (2 if pos == meter - 1 else 1), N_FRAMES - start)
        env = _envelope(attrs.instrument, length, rng)
        # each bar opens on the tonic and its third: the key and its mode are in every bar
        pedal = [(TONIC, _PEDAL), (TONIC + scale[2], _PEDAL)] if pos == 0 else []
        voices = [(melody, 0.5)] + [(c, 0.22) for c in notes] + pedal
        for midi, gain in voices:
            for ch, a in harmonics(attrs.instrument, attrs.brightness, codec.grid_bin(midi)):
                amps[ch, start:start + length] += gain * a * env
        amps[noise, start] += _ATTACK[attrs.instrument] * _NOISE_SHAPE
        if attrs.instrument == "flute":   # breath: a soft band of noise partials under the note
            amps[noise[20:40], start:start + length] += 0.006 * _NOISE_SHAPE[20:40, None]
        if attrs.drums:
            _drums(amps, start, pos, noise)
    if attrs.voice != "none":
        sing(amps, attrs.voice)
    amps = amps * _LEVEL
    peak = np.abs(codec.synthesize_amplitudes(amps)).max()
    return amps / max(1.0, peak / 0.95)     # a fixed level; only a rare loud clip is turned down


def _drums(amps: np.ndarray, start: int, pos: int, noise: np.ndarray) -> None:
    end = min(start + 3, N_FRAMES)
    decay = np.array([1.0, 0.4, 0.1])[:end - start]
    if pos % 2 == 0:   # kick
        amps[codec.channel(codec.KICK_BINS[1]), start:end] += _KICK * decay
        amps[codec.channel(codec.KICK_BINS[0]), start:end] += _KICK / 2 * decay
    else:              # snare: every noise partial
        amps[noise, start] += 0.25 * _NOISE_SHAPE
        if start + 1 < N_FRAMES:
            amps[noise, start + 1] += 0.08 * _NOISE_SHAPE
    amps[noise[-16:], start] += 0.12 * _NOISE_SHAPE[-16:]   # hi-hat, on every beat


def sing(amps: np.ndarray, voice: str) -> None:
    """A sung vowel held on the tonic through the clip, with a gentle 5.6 Hz tremolo."""
    k0 = codec.VOICE_F0_BINS[voice]
    shift = 1.0 if voice == "male" else 1.15
    t = np.arange(N_FRAMES)
    env = np.minimum((t + 1) / 2, 1) * (1 + 0.1 * np.sin(2 * np.pi * t / 2.8))
    harmonics = [h for h in codec.voice_harmonics() if h * k0 <= codec.MAX_BIN]
    f = np.array(harmonics) * k0 * codec.GRID_HZ
    level = sum(np.exp(-0.5 * ((f - shift * fc) / bw) ** 2) for fc, bw in zip(*_VOWEL))
    level = level + 0.8 / np.array(harmonics) ** 1.5     # a strong fundamental, as in real voices
    level = level / level.max()
    for h, a in zip(harmonics, level):
        amps[codec.channel(h * k0)] += _VOICE_GAIN * a * env


def synthesize(attrs: Attributes, seed: int = 0) -> np.ndarray:
    """Render ``attrs`` to 4.096 s of mono float32 audio at 16 kHz, deterministic per ``seed``."""
    return codec.synthesize_amplitudes(render(attrs, seed)).astype(np.float32)


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
