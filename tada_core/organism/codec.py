"""The organism's audio representation and its exact, weight-free decoder.

Latent: for each 64 ms frame (HOP = 1024 samples at 16 kHz) and each grid frequency
``k * 15.625 Hz`` (k = 1..128, up to 2 kHz), a compressed amplitude ``z``. Because
every grid sinusoid completes a whole number of cycles per hop, overlap-adding
Hann-windowed grid sinusoids with amplitude ``A(z)`` reconstructs a steady tone exactly
and keeps phase across frames: the decoder is linear in ``A`` and needs no training.

The decoder *is* a diffusers ``AutoencoderOobleck`` whose weights are set analytically
(:func:`build_decoder`), so the organism is a stock ``StableAudioPipeline``:

* ``decoder.conv1``: identity (centre tap of the 7-tap kernel);
* ``block[0].snake1``: Snake ``x + sin(a x)^2 / b`` with ``a = pi / (2 Z_MAX)`` and
  ``1 / b = 1 / LEAK``: the amplitude curve ``A(z) = LEAK * z + sin(pi z / (2 Z_MAX))^2``
  scaled by ``LEAK`` in the next layer, monotone on ``[0, Z_MAX]``;
* ``block[0].conv_t1``: the synthesis filterbank, ``LEAK * hann(j) * sin(2 pi k (j - 512) / 1024 + phi_k)``
  with fixed pseudo-random phases ``phi_k``
  (kernel 2048, stride 1024);
* residual units zeroed (identity), final Snake with a vanishing ``a`` (identity),
  ``conv2`` identity.

The encoder of that autoencoder is unused by text-to-audio generation and left at a
minimal random initialization; :func:`encode` is the analysis transform.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .synth import HOP, N_BINS, N_FRAMES, N_SAMPLES, SR

Z_MAX = 20.0
LEAK = 0.001
_PAD = HOP // 2   # ConvTranspose1d(kernel 2 * HOP, stride HOP, padding ceil(HOP / 2)): frame t covers
                  # samples [t * HOP - 512, t * HOP + 1536)


def amplitude(z: np.ndarray | torch.Tensor):
    """The decoder's amplitude curve ``A(z)``: what a latent value sounds like, linear in output."""
    lib = torch if isinstance(z, torch.Tensor) else np
    return LEAK * z + lib.sin(math.pi / (2 * Z_MAX) * z) ** 2


_Z_TABLE = np.linspace(0.0, Z_MAX, 20001)
_A_TABLE = amplitude(_Z_TABLE)


def _window() -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(2 * HOP) / (2 * HOP))  # periodic Hann, sums to 1 at 50%


def analyze(audio: np.ndarray) -> np.ndarray:
    """Grid amplitudes ``[..., N_BINS, frames]`` of mono audio ``[..., samples]`` (steady tone of amplitude a -> a)."""
    audio = np.asarray(audio, dtype=np.float64)
    n = audio.shape[-1]
    frames = -(-n // HOP)
    padded = np.zeros(audio.shape[:-1] + (frames * HOP + 2 * HOP,))
    padded[..., _PAD:_PAD + n] = audio
    idx = np.arange(frames)[:, None] * HOP + np.arange(2 * HOP)[None, :]
    spec = np.fft.rfft(padded[..., idx] * _window(), axis=-1)      # [..., frames, 1025]
    amps = np.abs(spec[..., 2:2 * N_BINS + 1:2]) / (HOP / 2)         # grid bins k = 1..N_BINS
    return np.swapaxes(amps, -1, -2).astype(np.float32)


def latent(amps: np.ndarray) -> np.ndarray:
    """Amplitudes -> latent values: the inverse of :func:`amplitude` on ``[0, Z_MAX]``."""
    return np.interp(amps, _A_TABLE, _Z_TABLE).astype(np.float32)


def encode(audio: np.ndarray) -> np.ndarray:
    """Audio ``[..., N_SAMPLES]`` -> latent ``[..., N_BINS, N_FRAMES]`` (inverse of the decoder's curve)."""
    return latent(analyze(audio)[..., :N_FRAMES])


def build_decoder(sampling_rate: int = SR):
    """An ``AutoencoderOobleck`` whose decoder is the exact synthesis of :func:`encode`'s latents."""
    from diffusers import AutoencoderOobleck

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        vae = AutoencoderOobleck(encoder_hidden_size=1, downsampling_ratios=[HOP], channel_multiples=[N_BINS],
                                 decoder_channels=1, decoder_input_channels=N_BINS, audio_channels=1,
                                 sampling_rate=sampling_rate)
    dec = vae.decoder
    with torch.no_grad():
        _set_weight_norm(dec.conv1, _identity_kernel(N_BINS, 7))
        dec.conv1.bias.zero_()
        block = dec.block[0]
        block.snake1.alpha.fill_(math.log(math.pi / (2 * Z_MAX)))
        block.snake1.beta.fill_(math.log(LEAK))
        j = np.arange(2 * HOP)
        k = np.arange(1, N_BINS + 1)
        phase = np.random.default_rng(0).uniform(0, 2 * np.pi, N_BINS)   # fixed; spreads the peaks
        basis = LEAK * _window()[None, :] * np.sin(2 * np.pi * k[:, None] * (j[None, :] - _PAD) / HOP
                                                   + phase[:, None])
        _set_weight_norm(block.conv_t1, torch.tensor(basis, dtype=torch.float32)[:, None, :])
        block.conv_t1.bias.zero_()
        for unit in (block.res_unit1, block.res_unit2, block.res_unit3):
            unit.conv2.weight_g.zero_()
            unit.conv2.bias.zero_()
        dec.snake1.alpha.fill_(-20.0)   # sin(e^-20 x)^2 ~ 1e-18 x^2: identity
        dec.snake1.beta.fill_(0.0)
        _set_weight_norm(dec.conv2, _identity_kernel(1, 7))
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
    """Latents ``[B, N_BINS, frames]`` -> audio ``[B, frames * HOP]`` through the Oobleck decoder."""
    vae = vae or build_decoder()
    z = torch.as_tensor(np.asarray(latents), dtype=torch.float32)
    with torch.no_grad():
        return vae.decode(z).sample[:, 0].numpy()


__all__ = ["Z_MAX", "LEAK", "amplitude", "analyze", "encode", "decode", "build_decoder", "N_SAMPLES", "SR"]
