"""Writing generated audio to disk, and the one level policy of the CLI and the app.

Level policy (:func:`level`): the clips of one call (an original and its steered version,
an alpha sweep, A / B / patched) share one gain. If the loudest sample of any of them
exceeds 0.99 full scale, all are scaled by the same factor so that none does; otherwise
they are left as generated. Nothing is clipped and quiet clips are never boosted, so a
loudness change that steering causes stays audible side by side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import soundfile as sf

from tada_core.errors import TadaError


def mono(audio: torch.Tensor | np.ndarray) -> np.ndarray:
    x = np.asarray(audio.detach().cpu() if isinstance(audio, torch.Tensor) else audio, dtype=np.float32)
    if x.ndim == 3:
        x = x.mean(1)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise TadaError(f"audio must be [batch, channels, samples] or [batch, samples]; got shape {x.shape}")
    return x


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Linear-interpolation resampling of [batch, samples] (enough for embedding models)."""
    if src == dst:
        return x
    n = int(round(x.shape[-1] * dst / src))
    t = np.arange(n) * (src / dst)
    return np.stack([np.interp(t, np.arange(x.shape[-1]), row) for row in x]).astype(np.float32)


HEADROOM = 0.99


def check_finite_audio(audio: torch.Tensor, what: str = "the generation") -> None:
    """Refuse audio with NaN or inf samples (e.g. steering far outside a vector's range)."""
    if not torch.isfinite(audio).all():
        raise TadaError(f"{what} produced NaN or infinite samples (steering too strong for this model?); "
                        f"use a smaller alpha")


def level(audio: torch.Tensor) -> torch.Tensor:
    """The clips of one call ([clips, ...]) with one shared gain so that none exceeds 0.99 full scale."""
    check_finite_audio(audio)
    peak = float(audio.abs().max()) if audio.numel() else 0.0
    return audio * (HEADROOM / peak) if peak > HEADROOM else audio


def to_int16(clip: torch.Tensor) -> np.ndarray:
    """One leveled clip [channels, samples] as int16 [samples, channels] (what audio widgets play as is)."""
    data = clip.detach().float().cpu().numpy().T
    return np.ascontiguousarray(np.round(np.clip(data, -1.0, 1.0) * 32767).astype(np.int16))


def check_wav_path(path: str | Path) -> Path:
    """Return ``path`` as a Path if it ends in .wav, else raise :class:`TadaError`."""
    path = Path(path)
    if path.suffix.lower() != ".wav":
        raise TadaError(f"output file must end in .wav; got {str(path)!r}")
    return path


def save_wav(path: str | Path, audio: torch.Tensor | np.ndarray, sample_rate: int) -> Path:
    """Write one clip, shaped [channels, samples] or [samples], as 16-bit PCM WAV."""

    path = check_wav_path(path)
    data = np.asarray(audio.detach().cpu() if isinstance(audio, torch.Tensor) else audio, dtype=np.float32)
    if data.ndim == 2:
        data = data.T  # soundfile wants [samples, channels]
    elif data.ndim != 1:
        raise TadaError(f"audio must be [channels, samples] or [samples]; got shape {data.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(data, -1.0, 1.0), int(sample_rate), subtype="PCM_16")
    return path


# ----- a user's clip (``tada edit``, the app's Edit tab) ------------------------------------------------------

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
MAX_FILE_BYTES = 50 * 1024 * 1024     # a 5-minute 44.1 kHz stereo WAV is 53 MB; compressed files are far smaller
MAX_CLIP_SECONDS = 600.0              # decoded length (before trimming to what the model generates)
MAX_CHANNELS = 2
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4000, 192000
SILENCE = 1e-4                        # peak below -80 dBFS: nothing to edit


def check_clip(audio: np.ndarray | torch.Tensor, sample_rate: int) -> np.ndarray:
    """``audio`` ([samples], [channels, samples]) as float32 [channels, samples], or a one-line :class:`TadaError`
    naming the limit: 1-2 channels, a sample rate of 4-192 kHz, at most 600 s, finite, not empty, not silent."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or \
            not MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE:
        raise TadaError(f"sample rate must be an integer from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz; "
                        f"got {sample_rate!r}")
    x = np.asarray(audio.detach().cpu() if isinstance(audio, torch.Tensor) else audio)
    if x.dtype.kind not in "fiu":
        raise TadaError(f"audio must be numbers; got an array of {x.dtype}")
    if x.dtype.kind in "iu":   # integer PCM, as audio widgets hand it over
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    x = x.astype(np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise TadaError(f"audio must be [samples] or [channels, samples]; got shape {x.shape}")
    if x.shape[0] > MAX_CHANNELS and x.shape[1] <= MAX_CHANNELS:
        x = x.T   # [samples, channels], as soundfile and audio widgets give it
    if x.shape[0] > MAX_CHANNELS:
        raise TadaError(f"audio has {x.shape[0]} channels; accepted: mono or stereo (at most {MAX_CHANNELS})")
    if x.shape[1] == 0:
        raise TadaError("the audio is empty (0 samples)")
    seconds = x.shape[1] / int(sample_rate)
    if seconds > MAX_CLIP_SECONDS:
        raise TadaError(f"the audio is {seconds:.0f}s long; at most {MAX_CLIP_SECONDS:.0f}s are accepted "
                        f"(trim it first; the model edits only its first seconds anyway)")
    if not np.isfinite(x).all():
        raise TadaError("the audio has NaN or infinite samples; give finite audio")
    peak = float(np.abs(x).max())
    if peak < SILENCE:
        raise TadaError(f"the audio is silent (peak {peak:.1e}, below {SILENCE:g} = -80 dBFS); nothing to edit")
    return x


def resample_clip(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """[channels, samples] from ``src`` Hz to ``dst`` Hz (librosa's soxr resampler, band-limited)."""
    if int(src) == int(dst):
        return x
    import librosa

    return librosa.resample(x, orig_sr=int(src), target_sr=int(dst), axis=-1).astype(np.float32)


def read_clip(path: str | Path) -> tuple[np.ndarray, int]:
    """A user's audio file as ([channels, samples] float32, sample rate), checked by :func:`check_clip`.

    Accepted: .wav, .flac, .ogg, .mp3 (what the installed libsndfile decodes; librosa / audioread as a
    fallback for other codecs inside those containers), at most 50 MB."""
    path = Path(path)
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise TadaError(f"{str(path)!r}: not an accepted audio file; accepted: {', '.join(AUDIO_SUFFIXES)}")
    if not path.is_file():
        raise TadaError(f"{str(path)!r}: no such file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise TadaError(f"{str(path)!r} is {size / 2 ** 20:.0f} MB; at most {MAX_FILE_BYTES // 2 ** 20} MB are "
                        f"accepted")
    if size == 0:
        raise TadaError(f"{str(path)!r} is empty (0 bytes)")
    try:
        info = sf.info(str(path))
        if info.frames / max(info.samplerate, 1) > MAX_CLIP_SECONDS:
            raise TadaError(f"{str(path)!r} is {info.frames / info.samplerate:.0f}s long; at most "
                            f"{MAX_CLIP_SECONDS:.0f}s are accepted")
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        data = data.T
    except TadaError:
        raise
    except Exception:   # libsndfile could not read it: try audioread's decoders before giving up
        try:
            import librosa

            data, sr = librosa.load(str(path), sr=None, mono=False, duration=MAX_CLIP_SECONDS + 1)
        except Exception:
            raise TadaError(f"{str(path)!r} could not be read as audio; accepted: {', '.join(AUDIO_SUFFIXES)} "
                            f"files") from None
    return check_clip(data, int(sr)), int(sr)
