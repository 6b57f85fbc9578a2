"""The MusicGen organism's audio codec: a stock transformers ``EncodecModel`` over the organism's partials.

MusicGen generates EnCodec tokens, so the autoregressive organism needs a codec the stock
``MusicgenMelodyForConditionalGeneration`` can decode. This one is built on the same
representation as the diffusion organism's (:mod:`.codec`): an amplitude for each of 128
grid partials per 64 ms frame, synthesized with fixed phases and cross-faded frames, so every
note stays in tune after the round trip.

* **Embeddings are amplitudes.** A frame's EnCodec embedding is ``w * a``: the partials'
  amplitudes ``a`` times fixed per-channel weights ``w`` (:func:`channel_weights`), which make
  quiet but telling partials (voices, kick, noise) count in the codebooks' distances.
* **Codebooks are fitted here**: residual vector quantization, as EnCodec's, fitted by k-means
  on the generator's frames, one codebook on the residual of the ones before
  (:func:`fit_codebooks`). The RVQ sum is linear, and so is the decoder, so the tokens of the
  four codebooks add up to one frame's amplitudes.
* **Encoder and decoder weights are set analytically** (:func:`build_codec`): the decoder is the
  synthesis filterbank of :mod:`.codec` in EnCodec's layers (identity input conv, zeroed LSTM and
  residual units, the filterbank as the transposed convolution, a plain output gain); the encoder
  is the least-squares analysis of each frame's flat middle as its strided convolution. EnCodec
  puts ELUs between its layers; every signal crossing one is kept positive by a constant offset
  that a later layer removes (ELU is the identity on positive inputs), so both directions are
  exactly linear: ``decode(encode(x))`` is exact for any signal in the codec's span, up to the
  codebooks' quantization.

Frame rate: 16 kHz / 1024 = 15.625 frames per second (EnCodec's config rounds it up to 16 for
its bandwidth arithmetic; the MusicGen adapter uses the exact rate).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm.auto import tqdm

from tada_core.organism import codec
from tada_core.organism.codec import HOP, N_CHANNELS, OUTPUT_GAIN, SR

CODEBOOKS = 4
CODEBOOK_SIZE = 1024
# Up-sampling ratios: one stage of 16 (the filterbank, as 64 polyphase streams), then six stages of 2 that
# interleave the streams into audio. With one stage of 1024 the filterbank would be a dense 2048-tap kernel of
# 128 x 64 channels (17 M weights); as 64 streams of 32 taps it is 128 x 64 x 32 (0.26 M).
RATIOS = [16, 2, 2, 2, 2, 2, 2]
STREAMS = HOP // RATIOS[0]        # 64 polyphase streams after the first stage
AUDIO_OFFSET = 16.0               # keeps the streams positive through the ELUs (|audio| / gain < 7); a power of 2
INPUT_OFFSET = 2.0                # keeps the encoder's input positive (|audio| <= 1)
AMP_OFFSET = 4.0                  # keeps the encoder's amplitudes positive through its last ELU


def channel_weights() -> np.ndarray:
    """[N_CHANNELS] weights of the embedding space (embedding = weight * amplitude).

    The instruments' loudest harmonics reach amplitudes near 0.3; a voice's harmonics, the
    kick and the noise partials of drums and attacks are 3 to 20 times quieter but decide
    vocal gender, drums and the onsets a beat tracker hears. Weighting them up makes the
    codebooks spend their entries on those partials too.
    """
    w = np.ones(N_CHANNELS)
    for k0 in codec.VOICE_F0_BINS.values():
        for h in codec.voice_harmonics():
            if h * k0 <= codec.MAX_BIN and h * k0 in codec._channels():
                w[codec.channel(h * k0)] = 3.0
    for k in codec.KICK_BINS:
        w[codec.channel(k)] = 2.0
    for k in codec.bins()[1]:
        w[codec.channel(k)] = 4.0
    return w.astype(np.float32)


def frames_of(amps: np.ndarray) -> np.ndarray:
    """Amplitudes ``[clips, N_CHANNELS, frames]`` -> embedding-space frames ``[clips * frames, N_CHANNELS]``."""
    x = np.asarray(amps, dtype=np.float32).transpose(0, 2, 1).reshape(-1, N_CHANNELS)
    return x * channel_weights()[None]


def _nearest(x: torch.Tensor, centres: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    c2 = centres.pow(2).sum(1)
    out = []
    for i in range(0, len(x), chunk):
        xi = x[i:i + chunk]
        out.append((c2[None] - 2 * xi @ centres.T).argmin(1))
    return torch.cat(out)


def _kmeans(x: torch.Tensor, k: int, iters: int, generator: torch.Generator) -> torch.Tensor:
    """Lloyd's k-means from ``k`` distinct random rows; an empty cluster restarts on the worst-fitted row."""
    centres = x[torch.randperm(len(x), generator=generator)[:k]].clone()
    for _ in range(iters):
        assign = _nearest(x, centres)
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        empty = counts == 0
        centres = torch.where(empty[:, None], centres, sums / counts.clamp(min=1)[:, None])
        if empty.any():
            err = (x - centres[assign]).pow(2).sum(1)
            centres[empty] = x[err.topk(int(empty.sum())).indices]
    return centres


def fit_codebooks(amps: np.ndarray, codebooks: int = CODEBOOKS, size: int = CODEBOOK_SIZE, iters: int = 15,
                  seed: int = 0, progress: bool = True) -> torch.Tensor:
    """Residual vector quantization fitted by k-means on the frames of ``amps`` ``[clips, N_CHANNELS, frames]``:
    codebook ``q`` clusters what codebooks ``0..q-1`` leave. Returns ``[codebooks, size, N_CHANNELS]``
    in the embedding space (:func:`channel_weights`)."""

    x = torch.from_numpy(frames_of(amps))
    g = torch.Generator().manual_seed(seed)
    books = []
    residual = x
    for _ in tqdm(range(codebooks), desc="fitting codebooks", disable=not progress):
        centres = _kmeans(residual, size, iters, g)
        books.append(centres)
        residual = residual - centres[_nearest(residual, centres)]
    return torch.stack(books)


def encodec_config(codebooks: int = CODEBOOKS, size: int = CODEBOOK_SIZE):
    """The ``EncodecConfig`` of the organism's codec (:data:`RATIOS`, 128-dim embeddings, one filter)."""
    from transformers import EncodecConfig

    frame_rate = math.ceil(SR / HOP)        # EnCodec's own (rounded) frame rate, used for its bandwidth arithmetic
    bandwidth = codebooks * math.log2(size) * frame_rate / 1000
    return EncodecConfig(sampling_rate=SR, audio_channels=1, normalize=False, hidden_size=N_CHANNELS,
                         codebook_dim=N_CHANNELS, codebook_size=size, num_filters=N_CHANNELS // 2 ** len(RATIOS),
                         upsampling_ratios=list(RATIOS), num_residual_layers=0, num_lstm_layers=1, kernel_size=7,
                         last_kernel_size=7, residual_kernel_size=3, target_bandwidths=[bandwidth],
                         use_causal_conv=False, pad_mode="reflect", compress=2, trim_right_ratio=1.0)


def _centre(out: int, inp: int, diag: torch.Tensor | float, size: int = 7) -> torch.Tensor:
    k = torch.zeros(out, inp, size)
    n = min(out, inp)
    k[torch.arange(n), torch.arange(n), size // 2] = diag
    return k


def build_codec(codebooks: torch.Tensor):
    """An ``EncodecModel`` with analytically set weights and the given RVQ ``codebooks`` ``[K, size, 128]``.

    Decoder: ``conv(128 -> 128)`` divides by the channel weights; the zeroed LSTM is the identity;
    the first transposed convolution (kernel 32, stride 16) writes stream ``s`` of the filterbank,
    ``u_s[p] = sum_m sum_c a_c[m] basis_c[64 (p + 8 - 16 m) + s]`` plus :data:`AUDIO_OFFSET`; each
    2x stage interleaves two streams (``out_j[2m + b] = in_{j + b C/2}[m]``), so after six of them
    sample ``64 p + s`` is ``u_s[p]``; the last convolution applies the output gain and removes
    the offset. Encoder: the mirror image (six 2x polyphase splits, then the least-squares analysis
    of each frame's flat middle as a 32-tap, stride-16 convolution over the 64 streams).
    """
    from transformers import EncodecModel

    k, size, dim = codebooks.shape
    if dim != N_CHANNELS:
        raise ValueError(f"codebooks must be [codebooks, size, {N_CHANNELS}]; got {tuple(codebooks.shape)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = EncodecModel(encodec_config(k, size))
    w = torch.from_numpy(channel_weights())
    basis = torch.tensor(codec._basis(), dtype=torch.float64)            # [128, 2048]
    taps = 2 * RATIOS[0]
    # filterbank[c, s, i] = basis_c[64 i + s]
    bank = basis.reshape(N_CHANNELS, taps, STREAMS).transpose(1, 2)
    a, b = HOP // 2 - codec.RAMP // 2 + codec.RAMP, 3 * HOP // 2 - codec.RAMP // 2
    analysis = torch.zeros(N_CHANNELS, 2 * HOP, dtype=torch.float64)
    analysis[:, a:b] = torch.from_numpy(codec._analysis() / OUTPUT_GAIN)
    split = analysis.reshape(N_CHANNELS, taps, STREAMS).transpose(1, 2)     # [c, s, i] = A_c[64 i + s]
    with torch.no_grad():
        # -- encoder: conv(1 -> 1) | 6 x (ELU | split 2x) | ELU | conv(64 -> 128, 32 / 16) | LSTM | ELU | conv
        layers = list(model.encoder.layers)
        _set_conv(layers[0].conv, _centre(1, 1, 1.0), torch.tensor([INPUT_OFFSET]))
        convs = [m for m in layers[1:] if hasattr(m, "conv")]
        for conv in convs[:-2]:                     # polyphase splits: out_{j + b C}[m] = in_j[2m + b]
            c_in = conv.conv.in_channels
            kern = torch.zeros(2 * c_in, c_in, 4)
            kern[torch.arange(c_in), torch.arange(c_in), 1] = 1.0
            kern[torch.arange(c_in) + c_in, torch.arange(c_in), 2] = 1.0
            _set_conv(conv.conv, kern, torch.zeros(2 * c_in))
        strided, last = convs[-2], convs[-1]
        offset = -INPUT_OFFSET * analysis.sum(1) + AMP_OFFSET
        _set_conv(strided.conv, split.float(), offset.float())
        _zero_lstm(model.encoder.layers[-3].lstm)
        _set_conv(last.conv, _centre(N_CHANNELS, N_CHANNELS, w), -w * AMP_OFFSET)
        # -- decoder: conv(128 -> 128) | LSTM | ELU | filterbank (128 -> 64, 32 / 16) | 6 x (ELU | interleave)
        #    | ELU | conv
        layers = list(model.decoder.layers)
        _set_conv(layers[0].conv, _centre(N_CHANNELS, N_CHANNELS, 1.0 / w), torch.zeros(N_CHANNELS))
        _zero_lstm(layers[1].lstm)
        ups = [m for m in layers if type(m).__name__ == "EncodecConvTranspose1d"]
        _set_conv(ups[0].conv, bank.float(), torch.full((STREAMS,), AUDIO_OFFSET))
        for up in ups[1:]:                          # interleave: out_j[2m + b] = in_{j + b C/2}[m]
            c_out = up.conv.out_channels
            kern = torch.zeros(2 * c_out, c_out, 4)   # ConvTranspose1d weight: [in, out, kernel]
            kern[torch.arange(c_out), torch.arange(c_out), 1] = 1.0
            kern[torch.arange(c_out) + c_out, torch.arange(c_out), 2] = 1.0
            _set_conv(up.conv, kern, torch.zeros(c_out))
        _set_conv(layers[-1].conv, _centre(1, 1, OUTPUT_GAIN), torch.tensor([-OUTPUT_GAIN * AUDIO_OFFSET]))
        for layer, book in zip(model.quantizer.layers, codebooks):
            layer.codebook.embed.copy_(book)
            layer.codebook.embed_avg.copy_(book)
            layer.codebook.cluster_size.fill_(1.0)
            layer.codebook.inited.fill_(True)
    return model.eval()


def _set_conv(conv: torch.nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Make a weight-normed conv compute with exactly ``weight``: rows of zeros get g = 0 (v stays finite)."""
    param = conv.parametrizations.weight
    norm = weight.flatten(1).norm(dim=1).reshape((-1,) + (1,) * (weight.dim() - 1))
    param.original0.copy_(norm)
    param.original1.copy_(torch.where(norm > 0, weight, torch.ones_like(weight)))
    conv.bias.copy_(bias)


def _zero_lstm(lstm: torch.nn.LSTM) -> None:
    """All gates at 0.5 with a zero candidate: the LSTM outputs zeros and EnCodec's skip makes it the identity."""
    for p in lstm.parameters():
        p.zero_()


def tokens(model, amps: np.ndarray) -> torch.Tensor:
    """Amplitudes ``[clips, N_CHANNELS, frames]`` -> codes ``[clips, codebooks, frames]`` through the stock
    quantizer (what ``model.encode`` gives for the clips' audio, without synthesizing it)."""
    emb = torch.from_numpy(np.ascontiguousarray(frames_of(amps).reshape(len(amps), -1, N_CHANNELS)
                                                .transpose(0, 2, 1)))
    with torch.no_grad():
        return model.quantizer.encode(emb).transpose(0, 1)


def decode(model, codes: torch.Tensor) -> np.ndarray:
    """Codes ``[clips, codebooks, frames]`` -> audio ``[clips, frames * HOP]`` through the stock decoder."""
    with torch.no_grad():
        return model.decode(codes[None], [None]).audio_values[:, 0].numpy()


__all__ = ["CODEBOOKS", "CODEBOOK_SIZE", "RATIOS", "channel_weights", "fit_codebooks", "encodec_config", "build_codec",
           "tokens", "decode", "frames_of"]
