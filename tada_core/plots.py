"""Small figures drawn with Pillow (no plotting stack needed): the layer-impact heatmap of Fig. 3
and log-magnitude spectrograms (the app shows original and steered clips on one colour scale)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import TadaError

# viridis, sampled at 6 stops; linear interpolation between them
_VIRIDIS = np.array([[68, 1, 84], [65, 68, 135], [42, 120, 142], [34, 168, 132], [122, 209, 81], [253, 231, 37]],
                    dtype=float)


def _colour(v: float) -> tuple[int, int, int]:
    if not math.isfinite(v):
        return (200, 200, 200)
    x = min(max(v, 0.0), 1.0) * (len(_VIRIDIS) - 1)
    i = min(int(x), len(_VIRIDIS) - 2)
    c = _VIRIDIS[i] + (x - i) * (_VIRIDIS[i + 1] - _VIRIDIS[i])
    return tuple(int(round(t)) for t in c)


def heatmap_png(values: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], path: str | Path,
                title: str = "", cell: int = 44) -> Path:
    """Write :func:`heatmap_image` to ``path`` (PNG)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    heatmap_image(values, row_labels, col_labels, title=title, cell=cell).save(path)
    return path


def heatmap_image(values: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], title: str = "",
                  cell: int = 44):
    """A heatmap of ``values`` [rows, cols] in [0, 1] (clipped for colour; NaN is grey), values printed."""
    from PIL import Image, ImageDraw, ImageFont

    values = np.asarray(values, dtype=float)
    if values.shape != (len(row_labels), len(col_labels)):
        raise TadaError(f"values shape {values.shape} does not match {len(row_labels)} x {len(col_labels)} labels")
    font = ImageFont.load_default()
    left = 12 + 7 * max((len(r) for r in row_labels), default=4)
    top = 46 if title else 24
    w = left + cell * len(col_labels) + 70
    h = top + cell * len(row_labels) + 40
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    if title:
        d.text((8, 6), title, fill="black", font=font)
    for j, c in enumerate(col_labels):
        d.text((left + j * cell + cell // 2 - 3 * len(str(c)), top - 16), str(c), fill="black", font=font)
    for i, r in enumerate(row_labels):
        d.text((6, top + i * cell + cell // 2 - 6), str(r), fill="black", font=font)
        for j in range(len(col_labels)):
            v = values[i, j]
            x0, y0 = left + j * cell, top + i * cell
            d.rectangle([x0, y0, x0 + cell - 2, y0 + cell - 2], fill=_colour(v))
            text = "-" if not math.isfinite(v) else f"{v:.2f}"
            ink = "black" if math.isfinite(v) and v > 0.6 else "white"
            d.text((x0 + cell // 2 - 3 * len(text), y0 + cell // 2 - 6), text, fill=ink, font=font)
    d.text((left, top + cell * len(row_labels) + 8), "cross-attention layer (0-based module index)",
           fill="black", font=font)
    bar_x = left + cell * len(col_labels) + 16
    for k in range(cell * len(row_labels)):
        v = 1 - k / max(1, cell * len(row_labels) - 1)
        d.line([bar_x, top + k, bar_x + 14, top + k], fill=_colour(v))
    d.text((bar_x + 18, top - 4), "1", fill="black", font=font)
    d.text((bar_x + 18, top + cell * len(row_labels) - 10), "0", fill="black", font=font)
    return img


def log_spectrograms(clips: Sequence[np.ndarray], n_fft: int = 512, floor_db: float = 80.0) -> list[np.ndarray]:
    """Log-magnitude spectrograms [freq, frames] in [0, 1] of mono-mixed ``clips`` ([channels, samples] or
    [samples]), on one shared dB scale (0 dB = the loudest bin of all clips, ``floor_db`` below it = 0),
    so that differences between the clips are differences in the pictures."""
    import torch

    specs = []
    for clip in clips:
        x = torch.as_tensor(np.asarray(clip, dtype=np.float32))
        x = x.mean(0) if x.dim() == 2 else x
        n = min(n_fft, max(16, 1 << (int(x.numel()).bit_length() - 2)))  # short clips: a shorter window
        if x.numel() < n:
            x = torch.nn.functional.pad(x, (0, n - x.numel()))
        mag = torch.stft(x, n, hop_length=n // 4, window=torch.hann_window(n), return_complex=True).abs()
        specs.append(20 * torch.log10(mag + 1e-8))
    top = max(float(s.max()) for s in specs)
    return [((s - top + floor_db) / floor_db).clamp(0, 1).numpy() for s in specs]


def spectrogram_images(clips: Sequence[np.ndarray], height: int = 160, width: int = 480,
                       min_fraction: float = 0.004) -> list:
    """:func:`log_spectrograms` as viridis Pillow images, one per clip: time left to right,
    frequency bottom to top on a log axis from ``min_fraction`` of Nyquist (where music is)."""
    from PIL import Image

    out = []
    for spec in log_spectrograms(clips):
        bins = spec.shape[0] - 1
        pos = np.geomspace(min_fraction * bins, bins, height)[::-1]  # fractional bin of each row, top = high
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, bins)
        w = (pos - lo)[:, None]
        spec = (1 - w) * spec[lo] + w * spec[hi]
        x = spec * (len(_VIRIDIS) - 1)
        i = np.minimum(x.astype(int), len(_VIRIDIS) - 2)
        rgb = _VIRIDIS[i] + (x - i)[..., None] * (_VIRIDIS[i + 1] - _VIRIDIS[i])
        img = Image.fromarray(np.round(rgb).astype(np.uint8), "RGB")
        out.append(img.resize((width, height), Image.BILINEAR))
    return out
