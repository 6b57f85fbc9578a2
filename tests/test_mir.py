"""The MIR preservation axes (the reference's definitions, librosa features, mir_eval scores) on constructed music
whose answer is known: a transposed copy moves harmony and melody, not rhythm; a faster copy moves rhythm, not
harmony; the clip itself is at distance 0 on every axis."""

import numpy as np
import pytest

from tada_core.errors import TadaError
from tada_core.evaluation.benchmark.distance import MIR_DISTANCES, make_distance

SR = 22050


def music(bpm=120.0, shift=0, seconds=6.0):
    """A I-vi-IV-V progression, one chord per beat, a melody note per beat on top, a click on every beat."""
    t = np.arange(int(SR * seconds)) / SR
    beat = 60.0 / bpm
    chords = [(60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)]
    melody = [72, 76, 74, 71]
    y = np.zeros_like(t)
    for k in range(int(seconds / beat)):
        start, stop = int(k * beat * SR), int((k + 1) * beat * SR)
        tt = t[start:stop] - t[start]
        env = np.exp(-3 * tt)
        for note in chords[k % 4]:
            y[start:stop] += 0.15 * env * np.sin(2 * np.pi * 440 * 2 ** ((note + shift - 69) / 12) * tt)
        y[start:stop] += 0.3 * env * np.sin(2 * np.pi * 440 * 2 ** ((melody[k % 4] + shift - 69) / 12) * tt)
        y[start:start + 200] += np.random.default_rng(k).normal(0, 0.5, 200) * np.exp(-np.arange(200) / 40)
    return y.astype(np.float32)[None, None]      # [batch, channels, samples]


@pytest.fixture(scope="module")
def clips():
    return {"base": music(), "transposed": music(shift=3), "faster": music(bpm=150)}


def distance(axis, a, b, sr=SR):
    return float(make_distance(axis)(a, b, sr)[0])


def test_identical_clips_are_at_zero_on_every_axis(clips):
    for axis in MIR_DISTANCES:
        assert distance(axis, clips["base"], clips["base"]) == pytest.approx(0.0, abs=1e-6), axis


def test_a_transposed_copy_moves_harmony_and_melody_not_rhythm(clips):
    base, moved = clips["base"], clips["transposed"]
    assert distance("harmony", moved, base) > 0.3
    assert distance("melody", moved, base) > 0.6          # most voiced frames 3 semitones off: beyond 50 cents
    assert distance("rhythm", moved, base) < 0.05


def test_a_faster_copy_moves_rhythm_not_harmony_as_much(clips):
    base, faster = clips["base"], clips["faster"]
    assert distance("rhythm", faster, base) > 0.4
    assert distance("harmony", faster, base) < distance("harmony", clips["transposed"], base)


def test_the_sample_rate_is_taken_into_account(clips):
    """A clip at 16 kHz and its own 22.05 kHz original are the same music."""
    import librosa

    low = librosa.resample(clips["base"][0, 0], orig_sr=SR, target_sr=16000)[None, None]
    low_t = librosa.resample(clips["transposed"][0, 0], orig_sr=SR, target_sr=16000)[None, None]
    assert distance("harmony", low_t, low, sr=16000) == pytest.approx(distance("harmony", clips["transposed"],
                                                                               clips["base"]), abs=0.05)


def test_unknown_axis_is_refused():
    with pytest.raises(TadaError, match="accepted: mel .*harmony, melody, rhythm, ssm"):
        make_distance("timbre")
