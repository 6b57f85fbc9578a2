"""The organism's audio representation and its exact, weight-free decoder.

Latent: for each 64 ms frame (``HOP`` = 1024 samples at 16 kHz) and each of 128 channels,
a compressed amplitude ``z``. Channel ``i`` is one grid frequency ``K[i] * 15.625 Hz``
(``GRID_HZ = SR / HOP``), chosen from the grid up to 8 kHz: every harmonic of the notes
the generator plays (:mod:`.synth`), the voices' harmonics, the kick drum's two low
partials, and 64 more spread over 0.6-8 kHz for noise (drums, attacks, breath).

Every grid sinusoid completes whole cycles per hop, so a steady tone keeps its phase
across frames. Frames are cross-faded with complementary raised-cosine ramps of ``RAMP``
samples inside the ``2 * HOP`` synthesis kernel: a note starts within 32 ms of its frame,
and a steady tone is reconstructed exactly. The synthesis is linear in the amplitudes
``A(z)``, and :func:`encode` inverts it exactly for any signal in its span (a least-squares
fit of each frame's flat middle), so ``encode(decode(z)) == z`` up to float rounding
(wherever ``A(z)`` is not vanishingly small; near zero the curve is flat, as it is meant to be).

Tuning. A grid frequency can be at most 7.8 Hz from a wanted pitch; that is within 10
cents of equal temperament (A4 = 440 Hz) only above about 1.3 kHz, or for a few lucky
lower pitches. The generator therefore plays its instruments between E-flat 6 and E-flat
7 (1.24-2.49 kHz, every pitch within 8 cents) and sings its voices on E-flat 3 and
E-flat 4 (156.25 and 312.5 Hz, 7.6 cents sharp), all in E-flat major or minor.

The decoder *is* a diffusers ``AutoencoderOobleck`` whose weights are set analytically
(:func:`build_decoder`), so the organism is a stock ``StableAudioPipeline``. Its first block
(stride 1) turns each latent into an amplitude, its second (stride ``HOP``) synthesizes:

* ``decoder.conv1``: identity (centre tap of the 7-tap kernel);
* ``block[0].snake1``: Snake ``x + sin(a x)^2 / b`` with ``a = pi / (2 Z_MAX)`` and ``1 / b = 1 / LEAK``,
  scaled by ``LEAK^2`` in ``block[0].conv_t1`` (one tap, identity across channels): ``LEAK a(z)`` with
  ``a(z) = LEAK z + sin(pi z / (2 Z_MAX))^2``;
* ``block[1].snake1``: Snake with ``a = C / LEAK`` and ``b = 1``: the amplitude
  ``A(z) = LEAK a(z) + sin(C a(z))^2``, monotone on ``[0, Z_MAX]`` and growing as ``z^4`` near silence,
  so that the small negative values classifier-free guidance writes into channels that should be
  silent stay near silent (see :func:`amplitude`);
* ``block[1].conv_t1``: the synthesis filterbank, ``w(j) * sin(2 pi K_i (j - 512) / 1024 + phi_i)``
  with the cross-fade window ``w`` and fixed pseudo-random phases ``phi_i`` (kernel 2048, stride 1024);
* residual units zeroed (identity), final Snake with a vanishing ``a`` (identity), ``conv2`` a plain gain
  ``OUTPUT_GAIN``, so that amplitudes can use the whole latent range while the audio stays within [-1, 1].

A stride-1 Oobleck block drops the last frame, so the decoder returns ``(frames - 1) * HOP``
samples (4.032 s of a 4.096 s latent); the organism's clips are 4 s.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

SR = 16000
HOP = 1024
GRID_HZ = SR / HOP                # 15.625 Hz
N_FRAMES = 64
N_SAMPLES = N_FRAMES * HOP        # 4.096 s
N_CHANNELS = 128
RAMP = 512                        # cross-fade length in samples (32 ms)
Z_MAX = 15.0
LEAK = 0.001
_C = math.pi / (2 * (LEAK * Z_MAX + 1))   # the second stage reaches its peak at Z_MAX
CURVE = f"two-stage: LEAK a + sin(C a)^2, a = LEAK z + sin(pi z / {2 * Z_MAX:g})^2"   # recorded by training
OUTPUT_GAIN = 0.15                # the decoder's final gain: amplitudes near 1 (the top of the latent range)
                                  # stay well inside [-1, 1] however many partials sound at once

TONIC = 87                        # MIDI E-flat 6 (D#6), the key of every clip
KICK_BINS = (3, 5)                # 46.9 and 78.1 Hz
VOICE_F0_BINS = {"male": 10, "female": 20}   # E-flat 3 and E-flat 4
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
MAX_BIN = 511                     # below 8 kHz


def grid_bin(midi: float) -> int:
    """The grid bin nearest to an equal-tempered pitch (A4 = 440 Hz)."""
    return int(round(440.0 * 2 ** ((midi - 69) / 12) / GRID_HZ))


def cents_off(midi: float) -> float:
    """How far the nearest grid frequency is from the equal-tempered pitch, in cents."""
    return 1200 * math.log2(grid_bin(midi) * GRID_HZ / (440.0 * 2 ** ((midi - 69) / 12)))


def voice_harmonics() -> tuple[int, ...]:
    """The harmonics a voice sings: those whose prime factors are 2 and 3 (octaves and fifths of the
    tonic), so a sung E-flat says nothing about major or minor."""
    return tuple(h for h in range(1, 40) if _smooth(h))


def _smooth(h: int) -> bool:
    while h % 2 == 0:
        h //= 2
    while h % 3 == 0:
        h //= 3
    return h == 1


def instrument_pitches() -> tuple[int, ...]:
    """MIDI pitches the instruments play: E-flat major and minor between E-flat 6 and E-flat 7."""
    pcs = set(MAJOR) | set(MINOR)
    return tuple(TONIC + i for i in range(13) if i % 12 in pcs)


@functools.lru_cache(maxsize=None)
def bins() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(all 128 grid bins in ascending order, the 64 of them used for noise)."""
    tonal = set(KICK_BINS)
    for m in instrument_pitches():
        k = grid_bin(m)
        tonal.update(h * k for h in range(1, MAX_BIN // k + 1))
    for k0 in VOICE_F0_BINS.values():
        tonal.update(h * k0 for h in voice_harmonics() if h * k0 <= MAX_BIN)
    free = [int(k) for k in np.unique(np.round(np.geomspace(38, MAX_BIN, 600)).astype(int)) if k not in tonal]
    n_noise = N_CHANNELS - len(tonal)
    noise = [free[i] for i in np.round(np.linspace(0, len(free) - 1, n_noise)).astype(int)]
    return tuple(sorted(int(k) for k in tonal | set(noise))), tuple(sorted(noise))


def channel(k: int) -> int:
    """The latent channel of grid bin ``k``."""
    return _channels()[int(k)]


@functools.lru_cache(maxsize=None)
def _channels() -> dict[int, int]:
    return {k: i for i, k in enumerate(bins()[0])}


def window() -> np.ndarray:
    """The ``2 * HOP`` synthesis window: flat over the frame's middle, raised-cosine ramps at its edges,
    complementary with its neighbours' (they sum to 1)."""
    j = np.arange(2 * HOP, dtype=np.float64)
    a, b = HOP // 2 - RAMP // 2, 3 * HOP // 2 - RAMP // 2
    w = np.zeros(2 * HOP)
    up = (j >= a) & (j < a + RAMP)
    w[up] = 0.5 - 0.5 * np.cos(np.pi * (j[up] - a) / RAMP)
    w[(j >= a + RAMP) & (j < b)] = 1.0
    down = (j >= b) & (j < b + RAMP)
    w[down] = 0.5 + 0.5 * np.cos(np.pi * (j[down] - b) / RAMP)
    return w


@functools.lru_cache(maxsize=None)
def _phases() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 2 * np.pi, N_CHANNELS)   # fixed; spreads the peaks


@functools.lru_cache(maxsize=None)
def _basis() -> np.ndarray:
    """[channels, 2 * HOP]: each channel's windowed sinusoid (its phase continues across frames)."""
    j = np.arange(2 * HOP)
    k = np.array(bins()[0])
    return window()[None] * np.sin(2 * np.pi * k[:, None] * (j[None] - HOP // 2) / HOP + _phases()[:, None])


@functools.lru_cache(maxsize=None)
def _analysis() -> np.ndarray:
    """Least-squares inverse of one frame's flat middle: [channels, flat samples]."""
    a = HOP // 2 - RAMP // 2 + RAMP            # first fully flat kernel sample
    b = 3 * HOP // 2 - RAMP // 2               # end of the flat part
    return np.linalg.pinv(_basis()[:, a:b].T)


def amplitude(z: np.ndarray | torch.Tensor):
    """The decoder's amplitude curve ``A(z) = LEAK a + sin(C a)^2`` of ``a = LEAK z + sin(pi z / (2 Z_MAX))^2``:
    what a latent value sounds like, linear in output.

    Two Snake stages in a row: near silence ``A(z)`` grows as ``z^4``, on both sides of zero (no
    smooth activation can silence one side only). Classifier-free guidance pushes the channels that
    the unconditional prediction fills and the prompt leaves empty below zero, by ``(guidance - 1)``
    times that prediction; a curve that grows as ``z^2`` (one stage) made those channels audible.
    Monotone on ``[0, Z_MAX]``, from 0 to about 1."""
    lib = torch if isinstance(z, torch.Tensor) else np
    a = LEAK * z + lib.sin(math.pi / (2 * Z_MAX) * z) ** 2
    return LEAK * a + lib.sin(_C * a) ** 2


_Z_TABLE = np.linspace(0.0, Z_MAX, 20001)
_A_TABLE = amplitude(_Z_TABLE)


def latent(amps: np.ndarray) -> np.ndarray:
    """Amplitudes -> latent values: the inverse of :func:`amplitude` on ``[0, Z_MAX]``."""
    return np.interp(amps, _A_TABLE, _Z_TABLE).astype(np.float32)


def synthesize_amplitudes(amps: np.ndarray) -> np.ndarray:
    """Amplitudes ``[..., N_CHANNELS, frames]`` -> audio ``[..., frames * HOP]`` (the decoder's math, in numpy)."""
    amps = np.asarray(amps, dtype=np.float64)
    frames = amps.shape[-1]
    out = np.zeros(amps.shape[:-2] + ((frames + 1) * HOP,))
    basis = _basis()
    for t in range(frames):
        out[..., t * HOP:t * HOP + 2 * HOP] += np.einsum("...c,cj->...j", amps[..., t], basis)
    return OUTPUT_GAIN * out[..., HOP // 2:HOP // 2 + frames * HOP]


def analyze(audio: np.ndarray) -> np.ndarray:
    """Audio ``[..., samples]`` -> amplitudes ``[..., N_CHANNELS, frames]``; exact for audio in the codec's span."""
    audio = np.asarray(audio, dtype=np.float64)
    frames = audio.shape[-1] // HOP
    a = HOP // 2 - RAMP // 2 + RAMP
    b = 3 * HOP // 2 - RAMP // 2
    start = np.arange(frames) * HOP - HOP // 2 + a          # each frame's flat part, in audio samples
    idx = start[:, None] + np.arange(b - a)[None]
    segs = audio[..., idx] / OUTPUT_GAIN                    # [..., frames, flat]
    return np.swapaxes(segs @ _analysis().T, -1, -2).astype(np.float32)


def encode(audio: np.ndarray) -> np.ndarray:
    """Audio ``[..., N_SAMPLES]`` -> latent ``[..., N_CHANNELS, N_FRAMES]`` (inverse of the decoder)."""
    return latent(np.clip(analyze(audio)[..., :N_FRAMES], 0.0, None))


def encode_clip(audio: np.ndarray, sample_rate: int = SR) -> np.ndarray:
    """A user's clip ``[channels, samples]`` (or ``[samples]``) at ``SR`` -> latent ``[1, N_CHANNELS, N_FRAMES]``.

    :func:`encode` of the mono mix; frames whose flat middle reaches past the clip's end (the organism's
    4.0 s clips end inside frame 62) repeat the last complete frame instead of reading silence.
    Audio outside the codec's span (any real recording) is projected onto it: the least-squares fit
    keeps the energy at the 128 grid frequencies and loses everything else (see docs/editing.md)."""
    if int(sample_rate) != SR:
        raise ValueError(f"the organism's codec encodes {SR} Hz audio; got {sample_rate} Hz")
    y = np.asarray(audio, dtype=np.float64)
    y = y.mean(0) if y.ndim == 2 else y
    n = y.shape[-1]
    padded = np.zeros(N_SAMPLES + HOP)
    padded[:min(n, N_SAMPLES)] = y[:N_SAMPLES]
    z = encode(padded)
    complete = (n - (HOP // 2 + RAMP // 2)) // HOP + 1   # frames t whose flat part ends at t HOP + 768 <= n
    if 0 < complete < N_FRAMES:
        z[:, complete:] = z[:, complete - 1:complete]
    return z[None].astype(np.float32)


def build_decoder(sampling_rate: int = SR):
    """An ``AutoencoderOobleck`` whose decoder is the exact synthesis of :func:`encode`'s latents.

    Two decoder blocks: the first (stride 1) applies the amplitude curve's two Snake stages to each
    channel, the second (stride ``HOP``) is the synthesis filterbank. A stride-1 block of
    ``AutoencoderOobleck`` drops the last latent frame, so ``frames`` latent frames decode to
    ``(frames - 1) * HOP`` samples (4.032 s for the 64 frames the organism generates; its clips are 4 s).
    """
    from diffusers import AutoencoderOobleck

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        vae = AutoencoderOobleck(encoder_hidden_size=1, downsampling_ratios=[HOP, 1],
                                 channel_multiples=[N_CHANNELS, N_CHANNELS], decoder_channels=1,
                                 decoder_input_channels=N_CHANNELS, audio_channels=1, sampling_rate=sampling_rate)
    dec = vae.decoder
    curve, synthesis = dec.block
    with torch.no_grad():
        _set_weight_norm(dec.conv1, _identity_kernel(N_CHANNELS, 7))
        dec.conv1.bias.zero_()
        # stage 1: z + sin(a z)^2 / LEAK = a(z) / LEAK; scaled by LEAK^2 into LEAK a(z)
        curve.snake1.alpha.fill_(math.log(math.pi / (2 * Z_MAX)))
        curve.snake1.beta.fill_(math.log(LEAK))
        taps = torch.zeros(N_CHANNELS, N_CHANNELS, 2)
        taps[:, :, 1] = LEAK ** 2 * torch.eye(N_CHANNELS)     # stride 1: output n = input n
        _set_weight_norm(curve.conv_t1, taps)
        curve.conv_t1.bias.zero_()
        # stage 2: LEAK a + sin((C / LEAK) LEAK a)^2 = A(z)
        synthesis.snake1.alpha.fill_(math.log(_C / LEAK))
        synthesis.snake1.beta.fill_(0.0)
        _set_weight_norm(synthesis.conv_t1, torch.tensor(_basis(), dtype=torch.float32)[:, None, :])
        synthesis.conv_t1.bias.zero_()
        for block in dec.block:
            for unit in (block.res_unit1, block.res_unit2, block.res_unit3):
                unit.conv2.weight_g.zero_()
                unit.conv2.bias.zero_()
        dec.snake1.alpha.fill_(-20.0)   # sin(e^-20 x)^2 ~ 1e-18 x^2: identity
        dec.snake1.beta.fill_(0.0)
        _set_weight_norm(dec.conv2, OUTPUT_GAIN * _identity_kernel(1, 7))
    return vae.eval()


def _identity_kernel(channels: int, size: int) -> torch.Tensor:
    w = torch.zeros(channels, channels, size)
    w[torch.arange(channels), torch.arange(channels), size // 2] = 1.0
    return w


def _set_weight_norm(module: torch.nn.Module, weight: torch.Tensor) -> None:
    """Make a ``weight_norm``-wrapped conv compute with exactly ``weight`` (norm over all dims but 0)."""
    module.weight_v.copy_(weight)
    norm = weight.flatten(1).norm(dim=1).reshape((-1,) + (1,) * (weight.dim() - 1))
    module.weight_g.copy_(norm)


def decode(latents: np.ndarray | torch.Tensor, vae=None) -> np.ndarray:
    """Latents ``[B, N_CHANNELS, frames]`` -> audio ``[B, (frames - 1) * HOP]`` through the Oobleck decoder."""
    vae = vae or build_decoder()
    z = torch.as_tensor(np.asarray(latents), dtype=torch.float32)
    with torch.no_grad():
        return vae.decode(z).sample[:, 0].numpy()


__all__ = ["CURVE", "SR", "HOP", "GRID_HZ", "N_FRAMES", "N_SAMPLES", "N_CHANNELS", "Z_MAX", "LEAK", "TONIC",
           "amplitude", "latent", "analyze", "encode", "encode_clip",
           "decode", "build_decoder", "synthesize_amplitudes", "bins",
           "channel", "grid_bin", "cents_off", "instrument_pitches", "voice_harmonics"]
