"""Third-party audio measures: how the organism's concepts are heard by tools nobody here wrote.

Each function takes audio ``[batch, samples]`` (or ``[batch, channels, samples]``, mixed to
mono) at ``sample_rate`` and returns one value per clip, computed with librosa (and scipy
filters); nothing here is fitted on the organism:

================ =========================================== =========================================
concept          measure                                      how
================ =========================================== =========================================
tempo            :func:`tempo_bpm` (BPM)                      ``librosa.beat.beat_track(y=..., sr=...)``,
                                                              librosa's defaults
mood             :func:`mode_score` (correlation)             Krumhansl-Kessler key profiles against
                                                              ``librosa.feature.chroma_cqt``: best major
                                                              key minus best minor key
brightness       :func:`harmonic_centroid` (Hz)               ``librosa.feature.spectral_centroid`` of the
                                                              harmonic part of ``librosa.decompose.hpss``
drums            :func:`percussive_share` (0..1)              energy share of the percussive part of
                                                              ``librosa.decompose.hpss``
vocal gender     :func:`voice_pitch` (octaves re 220 Hz)      ``librosa.pyin`` on the 100-600 Hz band
                                                              (Butterworth, scipy); 0 without a voice
instruments      :func:`timbre_features`                      MFCCs, spectral contrast and flatness,
                                                              envelope statistics (the organism's
                                                              classifier reads these)
================ =========================================== =========================================

:func:`note_pitch` is pYIN at a 48 kHz resampling with 2-cent resolution, for checking that
the generator's notes are in tune; :func:`essentia_key` is essentia's ``KeyExtractor``
(optional: used as a second key estimator when the package is installed).
"""

from __future__ import annotations

import numpy as np

from tada_core.evaluation import scoring
from tada_core.errors import TadaError

# Krumhansl-Kessler major and minor key profiles (Krumhansl 1990), tonic first
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
VOICE_BAND = (100.0, 600.0)       # Hz: both voices, none of the instruments (>= 1.2 kHz) or the kick (<= 78 Hz)
VOICE_GATE = 5e-4                 # share of the clip's energy in the voice band below which there is no voice
PITCH_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def mono(audio) -> np.ndarray:
    """``[batch, samples]`` float32 (:func:`tada_core.evaluation.scoring.mono`), long enough to measure."""
    x = scoring.mono(audio)
    if x.shape[-1] < 2048:
        raise TadaError(f"clips of {x.shape[-1]} samples are too short to measure; they need at least 2048")
    return x


def tempo_bpm(audio, sample_rate: int) -> np.ndarray:
    """librosa's beat tracker, with its defaults: the tempo of each clip in BPM (0 if it finds no beat)."""
    import librosa

    return np.array([float(np.atleast_1d(librosa.beat.beat_track(y=y, sr=sample_rate)[0])[0])
                     for y in mono(audio)])


def key_profiles(chroma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correlation of a 12-bin chroma vector with the 12 major and 12 minor Krumhansl-Kessler profiles."""
    major = np.array([np.corrcoef(chroma, np.roll(KK_MAJOR, t))[0, 1] for t in range(12)])
    minor = np.array([np.corrcoef(chroma, np.roll(KK_MINOR, t))[0, 1] for t in range(12)])
    return major, minor


def estimate_key(audio, sample_rate: int) -> list[tuple[str, str, float]]:
    """(tonic, "major" or "minor", correlation) per clip: the best Krumhansl-Kessler key of its mean CQT chroma."""
    import librosa

    out = []
    for y in mono(audio):
        major, minor = key_profiles(librosa.feature.chroma_cqt(y=y, sr=sample_rate).mean(1))
        if major.max() >= minor.max():
            out.append((PITCH_NAMES[int(major.argmax())], "major", float(major.max())))
        else:
            out.append((PITCH_NAMES[int(minor.argmax())], "minor", float(minor.max())))
    return out


def mode_score(audio, sample_rate: int) -> np.ndarray:
    """Best major-key correlation minus best minor-key correlation (> 0: the clip reads as major)."""
    import librosa

    out = []
    for y in mono(audio):
        major, minor = key_profiles(librosa.feature.chroma_cqt(y=y, sr=sample_rate).mean(1))
        out.append(float(major.max() - minor.max()))
    return np.array(out)


def essentia_key(audio, sample_rate: int) -> list[tuple[str, str, float]] | None:
    """essentia's key estimation per clip: (tonic, scale, strength), or None if essentia is not installed.

    essentia's ``SpectralPeaks`` -> ``HPCP`` (36 bins, no harmonic weighting, 25 Hz-5 kHz) -> ``Key``
    (Krumhansl profile). ``KeyExtractor`` with its defaults (peaks up to 3.5 kHz, band-split
    weighting) reads the organism's clips little better than chance; this chain covers the band
    where their notes are (1.2-2.5 kHz, harmonics above).
    """
    try:
        import essentia
        import essentia.standard as es
    except ImportError:
        return None
    essentia.log.infoActive = False
    window, spectrum = es.Windowing(type="blackmanharris62"), es.Spectrum()
    peaks = es.SpectralPeaks(sampleRate=sample_rate, maxPeaks=60, minFrequency=25, maxFrequency=5000,
                             magnitudeThreshold=1e-5, orderBy="magnitude")
    hpcp = es.HPCP(size=36, referenceFrequency=440, harmonics=0, bandPreset=False, minFrequency=25,
                   maxFrequency=5000, weightType="cosine", nonLinear=False, windowSize=1.0, sampleRate=sample_rate)
    key = es.Key(profileType="krumhansl", numHarmonics=1, pcpSize=36)
    out = []
    for y in mono(audio):
        frames = [hpcp(*peaks(spectrum(window(f))))
                  for f in es.FrameGenerator(np.ascontiguousarray(y), frameSize=4096, hopSize=1024, startFromZero=True)]
        tonic, scale, strength, _ = key(np.mean(frames, 0).astype(np.float32))
        out.append((tonic, scale, float(strength)))
    return out


def _hpss(y: np.ndarray):
    import librosa

    spec = np.abs(librosa.stft(y, n_fft=1024, hop_length=256))
    return librosa.decompose.hpss(spec)


def harmonic_centroid(audio, sample_rate: int) -> np.ndarray:
    """Mean spectral centroid (Hz) of each clip's harmonic part (librosa HPSS): drums do not move it."""
    import librosa

    out = []
    for y in mono(audio):
        harmonic, _ = _hpss(y)
        out.append(float(librosa.feature.spectral_centroid(S=harmonic, sr=sample_rate, n_fft=1024).mean()))
    return np.array(out)


def percussive_share(audio, sample_rate: int) -> np.ndarray:
    """Share of each clip's spectral energy in the percussive part of librosa's HPSS (0..1)."""
    out = []
    for y in mono(audio):
        harmonic, percussive = _hpss(y)
        p, h = float((percussive ** 2).sum()), float((harmonic ** 2).sum())
        out.append(p / (p + h) if p + h > 0 else 0.0)
    return np.array(out)


def voice_pitch(audio, sample_rate: int) -> np.ndarray:
    """Median pYIN F0 of the 100-600 Hz band, in octaves above 220 Hz (male < 0 < female); 0 when the band
    holds less than ``VOICE_GATE`` of the clip's energy or pYIN hears no voiced frame."""
    import librosa
    import scipy.signal as ss

    sos = ss.butter(6, VOICE_BAND, "bandpass", fs=sample_rate, output="sos")
    out = []
    for y in mono(audio):
        band = ss.sosfiltfilt(sos, y).astype(np.float32)
        total = float((y.astype(np.float64) ** 2).sum())
        if total <= 0 or float((band.astype(np.float64) ** 2).sum()) / total < VOICE_GATE:
            out.append(0.0)
            continue
        up = librosa.resample(band, orig_sr=sample_rate, target_sr=2 * sample_rate)
        f0, voiced, _ = librosa.pyin(up, fmin=VOICE_BAND[0], fmax=VOICE_BAND[1], sr=2 * sample_rate,
                                     frame_length=4096, resolution=0.05)
        out.append(float(np.log2(np.nanmedian(f0[voiced]) / 220.0)) if voiced.sum() >= 4 else 0.0)
    return np.array(out)


def note_pitch(audio, sample_rate: int, fmin: float, fmax: float, seconds: float = 0.5) -> np.ndarray:
    """Median pYIN F0 (Hz) of the middle ``seconds`` of each clip (a steady note), at a 48 kHz resampling
    and 2-cent resolution (for tuning checks: at 16 kHz a 2 kHz period is only 8 samples long)."""
    import librosa

    out = []
    for y in mono(audio):
        mid, half = len(y) // 2, int(seconds * sample_rate) // 2
        up = librosa.resample(y[mid - half:mid + half], orig_sr=sample_rate, target_sr=48000)
        f0, voiced, _ = librosa.pyin(up, fmin=fmin, fmax=fmax, sr=48000, frame_length=4096, resolution=0.02)
        out.append(float(np.nanmedian(f0[voiced])) if voiced.any() else float("nan"))
    return np.array(out)


def cents(f: np.ndarray | float, midi: np.ndarray | float) -> np.ndarray:
    """How far frequency ``f`` is from the equal-tempered pitch ``midi`` (A4 = 440 Hz), in cents."""
    return 1200 * np.log2(np.asarray(f, dtype=np.float64) / (440.0 * 2 ** ((np.asarray(midi) - 69) / 12)))


def timbre_features(audio, sample_rate: int) -> np.ndarray:
    """[batch, 60] librosa timbre statistics: MFCC means and deviations, spectral contrast, flatness,
    and the loudness envelope's decay and 4-9 Hz tremolo."""
    import librosa

    rows = []
    for y in mono(audio):
        spec = np.abs(librosa.stft(y, n_fft=1024, hop_length=256))
        mel = librosa.feature.melspectrogram(S=spec ** 2, sr=sample_rate)
        mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=20)
        contrast = librosa.feature.spectral_contrast(S=spec, sr=sample_rate)
        flat = librosa.feature.spectral_flatness(S=spec)
        rms = librosa.feature.rms(S=spec, frame_length=1024)[0]
        step = np.diff(np.log(rms + 1e-5))
        mod = np.abs(np.fft.rfft(rms - rms.mean()))
        freqs = np.fft.rfftfreq(len(rms), 256 / sample_rate)
        tremolo = mod[(freqs > 4) & (freqs < 9)].sum() / (mod[freqs > 0.5].sum() + 1e-9)
        rows.append(np.concatenate([mfcc.mean(1), mfcc.std(1), contrast.mean(1), contrast.std(1),
                                    [flat.mean(), flat.std(), tremolo, np.clip(step, 0, None).mean(),
                                     np.clip(step, None, 0).mean(), (step < 0).mean()]]))
    return np.array(rows, dtype=np.float32)
