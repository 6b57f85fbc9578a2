"""Small figures drawn with Pillow (no plotting stack needed): the layer-impact heatmap of Fig. 3
and log-magnitude spectrograms (the app shows original and steered clips on one colour scale)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from tada_core.errors import TadaError

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


def spectrogram_images(clips: Sequence[np.ndarray], sample_rate: int | None = None, height: int = 160,
                       width: int = 480, min_fraction: float = 0.004, floor_db: float = 80.0) -> list:
    """:func:`log_spectrograms` as viridis Pillow images, one per clip: time left to right,
    frequency bottom to top on a log axis from ``min_fraction`` of Nyquist (where music is) to
    Nyquist. With ``sample_rate``: axes in seconds and Hz, and a colour bar in dB relative to
    the loudest bin of all clips (one scale for all of them)."""
    from PIL import Image

    out = []
    for clip, spec in zip(clips, log_spectrograms(clips, floor_db=floor_db)):
        bins = spec.shape[0] - 1
        pos = np.geomspace(min_fraction * bins, bins, height)[::-1]  # fractional bin of each row, top = high
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, bins)
        w = (pos - lo)[:, None]
        spec = (1 - w) * spec[lo] + w * spec[hi]
        img = Image.fromarray(_viridis(spec), "RGB").resize((width, height), Image.BILINEAR)
        if sample_rate:
            seconds = np.asarray(clip).shape[-1] / sample_rate
            img = _with_axes(img, seconds, min_fraction * sample_rate / 2, sample_rate / 2, floor_db)
        out.append(img)
    return out


def _viridis(values: np.ndarray) -> np.ndarray:
    x = np.clip(values, 0, 1) * (len(_VIRIDIS) - 1)
    i = np.minimum(x.astype(int), len(_VIRIDIS) - 2)
    return np.round(_VIRIDIS[i] + (x - i)[..., None] * (_VIRIDIS[i + 1] - _VIRIDIS[i])).astype(np.uint8)


def _with_axes(img, seconds: float, f_lo: float, f_hi: float, floor_db: float):
    """``img`` framed by a time axis (s), a log frequency axis (Hz) and a dB colour bar."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    # a free band on top: an image widget draws its buttons over the top right corner, where the 0 dB label is
    left, bottom, right, top = 52, 30, 70, 44
    w, h = img.size
    canvas = Image.new("RGB", (left + w + right, top + h + bottom), "white")
    canvas.paste(img, (left, top))
    d = ImageDraw.Draw(canvas)
    d.rectangle([left - 1, top - 1, left + w, top + h], outline="black")
    for f in (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000):
        if f_lo <= f <= f_hi:
            y = top + h - h * math.log(f / f_lo) / math.log(f_hi / f_lo)
            d.line([left - 4, y, left - 1, y], fill="black")
            d.text((4, y - 6), f"{f // 1000}k" if f >= 1000 else str(f), fill="black", font=font)
    d.text((4, top + h + 14), "Hz", fill="black", font=font)
    step = next(s for s in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 60) if seconds / s <= 8)
    t = 0.0
    while t <= seconds + 1e-9:
        x = left + w * t / max(seconds, 1e-9)
        d.line([x, top + h, x, top + h + 4], fill="black")
        d.text((x - 8, top + h + 6), f"{t:g}", fill="black", font=font)
        t += step
    d.text((left + w - 70, top + h + 17), "time (s)", fill="black", font=font)
    bar = Image.fromarray(_viridis(np.linspace(1, 0, h)[:, None].repeat(12, 1)), "RGB")
    canvas.paste(bar, (left + w + 10, top))
    for frac, label in ((0.0, "0 dB"), (0.5, f"-{floor_db / 2:g}"), (1.0, f"-{floor_db:g}")):
        d.text((left + w + 26, top + frac * (h - 10)), label, fill="black", font=font)
    return canvas


_LINE_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
                 (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (0, 0, 0), (255, 187, 120)]


def line_panels(panels: Sequence[tuple[str, Sequence[tuple[str, Sequence[float], Sequence[float]]]]],
                path: str | Path, x_label: str = "", y_label: str = "", size: tuple[int, int] = (420, 300),
                columns: int = 2) -> Path:
    """Panels of line plots, each ``(title, [(label, xs, ys), ...])``, one colour per label across panels (PNG)."""
    from PIL import Image, ImageDraw, ImageFont

    if not panels:
        raise TadaError("no panels to draw")
    font = ImageFont.load_default()
    labels = list(dict.fromkeys(label for _, series in panels for label, _, _ in series))
    colour = {label: _LINE_COLOURS[i % len(_LINE_COLOURS)] for i, label in enumerate(labels)}
    pw, ph = size
    rows = math.ceil(len(panels) / columns)
    legend_h = 16 * math.ceil(len(labels) / 4) + 10
    img = Image.new("RGB", (pw * columns, ph * rows + legend_h), "white")
    d = ImageDraw.Draw(img)
    for n, (title, series) in enumerate(panels):
        ox, oy = (n % columns) * pw, (n // columns) * ph
        left, top, right, bottom = ox + 52, oy + 24, ox + pw - 12, oy + ph - 34
        d.text((ox + 8, oy + 4), title, fill="black", font=font)
        xs = [x for _, sx, _ in series for x in sx if math.isfinite(x)]
        ys = [y for _, _, sy in series for y in sy if math.isfinite(y)]
        if not xs or not ys:
            continue
        x0, x1 = min(xs), max(xs)
        y0, y1 = min(ys + [0.0]), max(ys + [0.0])
        x1 = x1 if x1 > x0 else x0 + 1
        y1 = y1 if y1 > y0 else y0 + 1

        def at(x: float, y: float) -> tuple[float, float]:
            return (left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top))

        d.rectangle([left, top, right, bottom], outline=(160, 160, 160))
        d.line([at(x0, 0.0), at(x1, 0.0)], fill=(200, 200, 200))
        for v, anchor in ((y0, bottom), (y1, top)):
            d.text((ox + 4, anchor - 6), f"{v:.3g}", fill="black", font=font)
        d.text((left, bottom + 4), f"{x0:.3g}", fill="black", font=font)
        d.text((right - 30, bottom + 4), f"{x1:.3g}", fill="black", font=font)
        d.text((left + 60, bottom + 16), x_label, fill="black", font=font)
        d.text((ox + 4, top + (bottom - top) // 2), y_label[:8], fill="black", font=font)
        for label, sx, sy in series:
            pts = [at(x, y) for x, y in zip(sx, sy) if math.isfinite(x) and math.isfinite(y)]
            if len(pts) > 1:
                d.line(pts, fill=colour[label], width=2)
            for px, py in pts:
                d.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colour[label])
    for i, label in enumerate(labels):
        x, y = 10 + (i % 4) * (pw * columns // 4), ph * rows + 4 + 16 * (i // 4)
        d.rectangle([x, y + 3, x + 14, y + 9], fill=colour[label])
        d.text((x + 20, y), label, fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
