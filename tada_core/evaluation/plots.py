"""Figures on matplotlib's object API: the layer-impact heatmap of Fig. 3, line panels with 95% bands,
and log-magnitude spectrograms (the app shows original and steered clips on one colour scale).

Only :class:`matplotlib.figure.Figure` and the Agg canvas are used, never ``pyplot``: pyplot keeps a
global registry of open figures, which the app's concurrent requests would share (and leak).
matplotlib does not promise thread safety (text layout shares caches), so drawing holds one module
lock; building a figure touches no shared state. Every figure takes its fonts, grid, resolution and
colours from :data:`STYLE`: viridis, whose lightness rises monotonically, so the order survives a
greyscale print, and series that differ in line style and marker as well as in colour.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from pathlib import Path
from typing import NamedTuple, Sequence
from PIL import Image
import torch

import numpy as np

from tada_core.errors import TadaError


@dataclasses.dataclass(frozen=True)
class Style:
    """The one look of every figure. Sizes given in pixels are at ``dpi``; PNG files are written at ``save_dpi``."""

    dpi: int = 100
    save_dpi: int = 150
    font: float = 9.0          # axis labels, legend, colour bar label
    small: float = 8.0         # tick labels, values printed in cells
    title: float = 9.5
    cmap: str = "viridis"
    missing: str = "#b0b0b0"   # NaN cells (also printed "n/a", so they stay apart in greyscale)
    grid_colour: str = "#dddddd"
    grid_width: float = 0.6
    line_width: float = 1.4
    marker_size: float = 4.0
    band_alpha: float = 0.18
    markers: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")
    dashes: tuple[str, ...] = ("-", "--", "-.", ":")
    colour_span: float = 0.85  # series colours from the first 85% of the map: its yellow end is faint on white


STYLE = Style()
LAYER_AXIS = "cross-attention layer (0-based module index)"
IMPACT_LABEL = "impact I(l, c) (Eq. 9)"
_RENDER = threading.Lock()


def _figure(width_px: float, height_px: float, *, layout: str | None = "constrained"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / STYLE.dpi, height_px / STYLE.dpi), dpi=STYLE.dpi, layout=layout,
                 facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def _plain(text) -> str:
    """``text`` shown as written: a ``$`` in a concept name or prompt must not switch on mathtext."""
    return str(text).replace("$", r"\$")


def _wrap(text, width_px: float, size: float = STYLE.font) -> str:
    """``text`` (made :func:`_plain`) broken into lines that fit ``width_px`` at font ``size``."""
    import textwrap

    chars = max(12, int(width_px / (0.6 * size * STYLE.dpi / 72)))
    return "\n".join(textwrap.fill(line, chars, break_on_hyphens=False) for line in _plain(text).split("\n"))


def _cmap(name: str | None = None):
    import matplotlib

    return matplotlib.colormaps[name or STYLE.cmap].with_extremes(bad=STYLE.missing)


def _style_axes(ax) -> None:
    ax.tick_params(labelsize=STYLE.small)
    ax.grid(True, color=STYLE.grid_colour, linewidth=STYLE.grid_width)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _render(fig, dpi: float | None = None) -> np.ndarray:
    """``fig`` drawn by Agg (at ``dpi``, default its own) into an RGBA array [height, width, 4]."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    with _RENDER:
        canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
        if dpi is not None:
            fig.set_dpi(dpi)
        canvas.draw()   # one draw: savefig would lay a constrained figure out in a second one
        return np.array(canvas.buffer_rgba())


def to_image(fig):
    """``fig`` rendered to an RGBA Pillow image (at the figure's own ``dpi``)."""

    return Image.fromarray(_render(fig))


def save_png(fig, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` as a PNG at ``STYLE.save_dpi``: 256 colours, no dithering (a tenth of the bytes
    of full colour, the anti-aliased edges and overlapping bands barely change), no software version in it
    (a rerun writes the same bytes)."""

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(_render(fig, STYLE.save_dpi)[..., :3])
    rgb.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(path, format="png")
    return path


# --------------------------------------------------------------------------------------
# heatmap (Fig. 3)
# --------------------------------------------------------------------------------------
def heatmap_figure(values: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], title: str = "",
                   cell: int = 44, *, x_label: str = LAYER_AXIS, y_label: str = "concept",
                   colorbar_label: str = IMPACT_LABEL, vmin: float = 0.0, vmax: float = 1.0):
    """A heatmap of ``values`` [rows, cols], each value printed in its cell; colours span [``vmin``, ``vmax``]
    (values beyond take the end colours and the colour bar shows an arrow), NaN cells are grey and read "n/a".
    ``cell``: the side of a cell in pixels at ``STYLE.dpi``."""
    from matplotlib.colors import Normalize

    values = np.asarray(values, dtype=float)
    if values.shape != (len(row_labels), len(col_labels)):
        raise TadaError(f"values shape {values.shape} does not match {len(row_labels)} x {len(col_labels)} labels")
    if not vmin < vmax:
        raise TadaError(f"vmin {vmin!r} must be below vmax {vmax!r}")
    n_rows, n_cols = values.shape
    label_px = 6.5 * max((len(str(r)) for r in row_labels), default=4)
    col_px = 6.5 * max((len(str(c)) for c in col_labels), default=1)
    vertical = col_px > 0.9 * cell          # column labels wider than a cell stand upright
    width = n_cols * cell + label_px + 150
    title = _wrap(title, width - 20, STYLE.title) if title else ""
    fig = _figure(width, n_rows * cell + 62 + 23 * len(title.splitlines()) + (col_px if vertical else 0))
    ax = fig.add_subplot()
    norm = Normalize(vmin, vmax)
    cmap = _cmap()
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    size = STYLE.small * min(1.0, cell / 44)
    for (i, j), v in np.ndenumerate(values):
        if math.isfinite(v):
            r, g, b, _ = cmap(norm(v))
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color=ink, fontsize=size)
        else:
            ax.text(j, i, "n/a", ha="center", va="center", color="black", fontsize=size)
    ax.set_xticks(range(n_cols), labels=[_plain(c) for c in col_labels], rotation=90 if vertical else 0)
    ax.set_yticks(range(n_rows), labels=[_plain(r) for r in row_labels])
    ax.set_xticks(np.arange(n_cols + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n_rows + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    ax.tick_params(which="major", labelsize=STYLE.small, length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel(_plain(x_label), fontsize=STYLE.font)
    ax.set_ylabel(_plain(y_label), fontsize=STYLE.font)
    if title:
        ax.set_title(title, fontsize=STYLE.title, loc="left")
    finite = values[np.isfinite(values)]
    eps = 1e-9 * (vmax - vmin)   # a cosine of 1 + 1e-16 is not "beyond the scale"
    low, high = bool((finite < vmin - eps).any()), bool((finite > vmax + eps).any())
    bar = fig.colorbar(image, ax=ax, extend="both" if low and high else "min" if low else "max" if high else "neither",
                       fraction=0.05, pad=0.02)
    bar.set_label(_plain(colorbar_label), fontsize=STYLE.font)
    bar.ax.tick_params(labelsize=STYLE.small)
    return fig


def heatmap_png(values: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], path: str | Path,
                title: str = "", cell: int = 44, **labels) -> Path:
    """Write :func:`heatmap_figure` to ``path`` (PNG); ``labels``: its keyword arguments (axis labels, range)."""
    return save_png(heatmap_figure(values, row_labels, col_labels, title=title, cell=cell, **labels), path)


def heatmap_image(values: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], title: str = "",
                  cell: int = 44, **labels):
    """:func:`heatmap_figure` as an RGBA Pillow image (the app shows it)."""
    return to_image(heatmap_figure(values, row_labels, col_labels, title=title, cell=cell, **labels))


# --------------------------------------------------------------------------------------
# spectrograms
# --------------------------------------------------------------------------------------
def log_spectrograms(clips: Sequence[np.ndarray], n_fft: int = 512, floor_db: float = 80.0) -> list[np.ndarray]:
    """Log-magnitude spectrograms [freq, frames] in [0, 1] of mono-mixed ``clips`` ([channels, samples] or
    [samples]), on one shared dB scale (0 dB = the loudest bin of all clips, ``floor_db`` below it = 0),
    so that differences between the clips are differences in the pictures."""

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


def _log_rows(spec: np.ndarray, rows: int, min_fraction: float) -> np.ndarray:
    """``spec`` [freq, frames] resampled to ``rows`` log-spaced frequencies from ``min_fraction`` of Nyquist
    to Nyquist, top row = highest."""
    bins = spec.shape[0] - 1
    pos = np.geomspace(min_fraction * bins, bins, rows)[::-1]  # fractional bin of each row
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, bins)
    w = (pos - lo)[:, None]
    return (1 - w) * spec[lo] + w * spec[hi]


# a free band on top: the app's image widget draws its buttons over the top right corner
_SPEC_MARGINS = {"left": 60, "right": 86, "top": 44, "bottom": 36}   # pixels at STYLE.dpi
_HZ_TICKS = (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)


def spectrogram_images(clips: Sequence[np.ndarray], sample_rate: int | None = None, height: int = 160,
                       width: int = 480, min_fraction: float = 0.004, floor_db: float = 80.0) -> list:
    """:func:`log_spectrograms` as viridis Pillow images, one per clip: time left to right,
    frequency bottom to top on a log axis from ``min_fraction`` of Nyquist (where music is) to
    Nyquist. With ``sample_rate``: a matplotlib figure (RGBA) whose ``width`` x ``height`` pixel plot
    has axes in seconds and Hz and a colour bar in dB relative to the loudest bin of all clips (one
    scale for all of them), with a free band on top; without: the bare ``width`` x ``height`` RGB picture."""

    cmap = _cmap()
    out = []
    for clip, spec in zip(clips, log_spectrograms(clips, floor_db=floor_db)):
        rows = _log_rows(spec, height, min_fraction)
        if not sample_rate:
            rgb = cmap(np.clip(rows, 0, 1), bytes=True)[..., :3]
            out.append(Image.fromarray(rgb).resize((width, height), Image.BILINEAR))
            continue
        seconds = np.asarray(clip).shape[-1] / sample_rate
        out.append(to_image(_spectrogram_figure(rows, seconds, min_fraction * sample_rate / 2, sample_rate / 2,
                                                floor_db, width, height)))
    return out


def _spectrogram_figure(rows: np.ndarray, seconds: float, f_lo: float, f_hi: float, floor_db: float,
                        width: int, height: int):
    """``rows`` (log-frequency rows in [0, 1], top = high) as a ``width`` x ``height`` pixel plot with a
    time axis (s), a log frequency axis (Hz) and a dB colour bar, margins fixed in pixels."""
    from matplotlib.ticker import FixedLocator, FixedFormatter

    m = _SPEC_MARGINS
    w, h = width + m["left"] + m["right"], height + m["top"] + m["bottom"]
    fig = _figure(w, h, layout=None)
    ax = fig.add_axes((m["left"] / w, m["bottom"] / h, width / w, height / h))
    # the y axis is log10(Hz): the rows are already log-spaced, so the image needs no non-linear transform
    image = ax.imshow(rows * floor_db - floor_db, cmap=_cmap(), vmin=-floor_db, vmax=0.0, aspect="auto",
                      interpolation="bilinear", extent=(0.0, max(seconds, 1e-9), math.log10(f_lo), math.log10(f_hi)))
    ticks = [f for f in _HZ_TICKS if f_lo <= f <= f_hi]
    ax.yaxis.set_major_locator(FixedLocator([math.log10(f) for f in ticks]))
    ax.yaxis.set_major_formatter(FixedFormatter([f"{f // 1000}k" if f >= 1000 else str(f) for f in ticks]))
    ax.set_xlabel("time (s)", fontsize=STYLE.small, labelpad=1)
    ax.set_ylabel("frequency (Hz)", fontsize=STYLE.small, labelpad=1)
    ax.tick_params(labelsize=STYLE.small, pad=1.5)
    cax = fig.add_axes(((m["left"] + width + 10) / w, m["bottom"] / h, 12 / w, height / h))
    bar = fig.colorbar(image, cax=cax, ticks=np.linspace(-floor_db, 0.0, 5))
    bar.set_label("dB re. loudest bin", fontsize=STYLE.small, labelpad=2)
    bar.ax.tick_params(labelsize=STYLE.small, pad=1.5)
    return fig


# --------------------------------------------------------------------------------------
# line panels
# --------------------------------------------------------------------------------------
def _shades(n: int) -> list[float]:
    """Positions on the colour map for ``n`` series: evenly spread over its first ``STYLE.colour_span``; from six
    series on, handed out with a stride so that neighbours in the legend get far-apart colours."""
    even = [STYLE.colour_span * i / max(1, n - 1) for i in range(n)]
    if n < 6:
        return even
    stride = next(k for k in range(n // 2, n) if math.gcd(k, n) == 1)
    return [even[(i * stride) % n] for i in range(n)]


class Series(NamedTuple):
    """One line of a panel; with ``lo`` and ``hi`` (one bound per x) a band between them is drawn under it."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    lo: Sequence[float] | None = None
    hi: Sequence[float] | None = None


class Panel(NamedTuple):
    """One subplot: a title and its series (``Series`` or ``(label, xs, ys)``); axis labels override the figure's."""

    title: str
    series: Sequence
    x_label: str | None = None
    y_label: str | None = None


def line_panels_figure(panels: Sequence, x_label: str = "", y_label: str = "", size: tuple[int, int] = (420, 300),
                       columns: int = 2, *, band_label: str = "95% interval (shaded)"):
    """Panels of line plots (``Panel`` or ``(title, series)``), one style per series label across panels, a shared
    legend below them. ``size``: one panel's pixels at ``STYLE.dpi``. An axis whose values are all whole numbers
    (layers) gets integer ticks."""
    import matplotlib
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    panels = [Panel(*p) for p in panels]
    if not panels:
        raise TadaError("no panels to draw")
    panels = [p._replace(series=[Series(*s) for s in p.series]) for p in panels]
    labels = list(dict.fromkeys(s.label for p in panels for s in p.series))
    cmap = matplotlib.colormaps[STYLE.cmap]
    shade = _shades(len(labels))
    look = {label: dict(color=cmap(shade[i]), linestyle=STYLE.dashes[i % len(STYLE.dashes)],
                        marker=STYLE.markers[i % len(STYLE.markers)]) for i, label in enumerate(labels)}
    banded = any(s.lo is not None and s.hi is not None for p in panels for s in p.series)
    entries = len(labels) + banded if len(labels) + banded > 1 else 0   # a lone line needs no legend
    columns = max(1, min(columns, len(panels)))
    n_rows = math.ceil(len(panels) / columns)
    legend_cols = min(4, max(1, entries))
    legend_px = 18 * math.ceil(entries / legend_cols) + 14 if entries else 0
    fig = _figure(size[0] * columns, size[1] * n_rows + legend_px)
    axes = fig.subplots(n_rows, columns, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.remove()
    for ax, panel in zip(axes, panels):
        _style_axes(ax)
        xs_all = []
        n_bands = sum(1 for s in panel.series if s.lo is not None and s.hi is not None)
        alpha = STYLE.band_alpha * min(1.0, 3 / max(1, n_bands))   # many overlapping bands: each one fainter
        for s in panel.series:
            x, y = np.asarray(s.x, dtype=float), np.asarray(s.y, dtype=float)
            if x.shape != y.shape:
                raise TadaError(f"series {s.label!r}: {len(x)} x values for {len(y)} y values")
            xs_all.append(x[np.isfinite(x)])
            st = look[s.label]
            if s.lo is not None and s.hi is not None:
                lo, hi = np.asarray(s.lo, dtype=float), np.asarray(s.hi, dtype=float)
                if lo.shape != x.shape or hi.shape != x.shape:
                    raise TadaError(f"series {s.label!r}: its band needs one low and one high bound per x value")
                order = np.argsort(x, kind="stable")   # a band is a function of x, even where a curve turns back
                ax.fill_between(x[order], lo[order], hi[order], color=st["color"], alpha=alpha, linewidth=0)
            ax.plot(x, y, label=_plain(s.label), linewidth=STYLE.line_width, markersize=STYLE.marker_size, **st)
        xs_all = np.concatenate(xs_all) if xs_all else np.array([])
        if len(xs_all) and np.all(xs_all == np.round(xs_all)):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        low, high = ax.get_ylim()
        if low < 0 < high:
            ax.axhline(0.0, color="#808080", linewidth=0.8, zorder=1)
        ax.set_title(_wrap(panel.title, size[0] - 20, STYLE.title), fontsize=STYLE.title, loc="left")
        ax.set_xlabel(_wrap(panel.x_label if panel.x_label is not None else x_label, size[0] - 60), fontsize=STYLE.font)
        ax.set_ylabel(_wrap(panel.y_label if panel.y_label is not None else y_label, size[1] - 60), fontsize=STYLE.font)
    handles = [Line2D([], [], linewidth=STYLE.line_width, markersize=STYLE.marker_size, **look[label])
               for label in labels]
    names = [_plain(label) for label in labels]
    if banded:
        handles.append(Patch(color="black", alpha=STYLE.band_alpha, linewidth=0))
        names.append(_plain(band_label))
    if entries:
        fig.legend(handles, names, loc="outside lower center", ncols=legend_cols, fontsize=STYLE.font, frameon=False)
    return fig


def line_panels(panels: Sequence, path: str | Path, x_label: str = "", y_label: str = "",
                size: tuple[int, int] = (420, 300), columns: int = 2, **options) -> Path:
    """Write :func:`line_panels_figure` to ``path`` (PNG): panels ``(title, [(label, xs, ys), ...])`` or
    :class:`Panel` / :class:`Series` (with bands and per-panel axis labels)."""
    return save_png(line_panels_figure(panels, x_label, y_label, size, columns, **options), path)


__all__ = ["STYLE", "Style", "LAYER_AXIS", "IMPACT_LABEL", "Series", "Panel", "heatmap_figure", "heatmap_png",
           "heatmap_image", "log_spectrograms", "spectrogram_images", "line_panels_figure", "line_panels",
           "to_image", "save_png"]
