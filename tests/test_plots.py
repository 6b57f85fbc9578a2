"""The figures: heatmap colours follow the values (NaN grey), bands sit on their bounds, axes carry units,
spectrograms share one dB scale and keep the app's button band, and scripts/figures.py redraws every
committed figure from the committed data."""

import ast
import importlib.util
import math
import threading
from pathlib import Path

import numpy as np
import pytest
from matplotlib import colormaps
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgb

from tada_core import TadaError
from tada_core.evaluation import plots
from tada_core.evaluation.plots import Panel, Series

ROOT = Path(__file__).resolve().parents[1]


def pixel(image: np.ndarray, ax, x: float, y: float) -> np.ndarray:
    """RGB (0-1) of the rendered ``image`` at data coordinates (x, y) of ``ax``."""
    px, py = ax.transData.transform((x, y))
    return image[int(round(image.shape[0] - py)), int(round(px)), :3] / 255.0


def luminance(rgb) -> float:
    return float(np.dot(rgb, [0.299, 0.587, 0.114]))


def test_heatmap_cell_colours_are_ordered_by_value_clipped_at_the_scale_and_nan_is_grey():
    values = np.array([[0.0, 0.25, 0.5, 0.75, 1.0],
                       [np.nan, 1.3, -0.2, 0.5, 0.1]])
    fig = plots.heatmap_figure(values, ["a", "b"], [str(i) for i in range(5)], title="t")
    image = np.asarray(plots.to_image(fig))
    ax = fig.axes[0]

    def cell(i, j):   # off the cell's centre, where its value is printed
        return pixel(image, ax, j - 0.3, i - 0.3)

    row = [luminance(cell(0, j)) for j in range(5)]
    assert all(a < b - 0.05 for a, b in zip(row, row[1:])), row
    viridis = colormaps["viridis"]
    for j, v in enumerate(values[0]):
        assert np.allclose(cell(0, j), viridis(v)[:3], atol=0.02), (v, cell(0, j))
    assert np.allclose(cell(1, 1), cell(0, 4), atol=0.01) and np.allclose(cell(1, 2), cell(0, 0), atol=0.01)
    assert np.allclose(cell(1, 0), to_rgb(plots.STYLE.missing), atol=0.01)       # NaN: grey, not a viridis colour
    texts = {t.get_text() for t in ax.texts}
    assert {"0.25", "1.30", "-0.20", "n/a"} <= texts
    bar = fig.axes[1]
    assert "I(l, c)" in bar.get_ylabel() and bar.get_ylim() == (0.0, 1.0)
    assert "layer" in ax.get_xlabel() and ax.get_ylabel() == "concept"
    # the app's image: the same figure as a Pillow RGBA image
    pil = plots.heatmap_image(values, ["a", "b"], [str(i) for i in range(5)], title="t")
    assert pil.mode == "RGBA" and pil.size == (image.shape[1], image.shape[0])
    with pytest.raises(TadaError, match="does not match 2 x 4 labels"):
        plots.heatmap_figure(values, ["a", "b"], list("wxyz"))


def test_a_band_is_drawn_exactly_between_the_given_bounds():
    x = [0.0, 2.0, 1.0, 3.0]                  # a curve that turns back, as benchmark sweeps can
    y, lo, hi = [1.0, 3.0, 2.0, 4.0], [0.5, 2.0, 1.5, 3.0], [1.5, 3.5, 2.2, 5.0]
    fig = plots.line_panels_figure([Panel("p", [Series("with band", x, y, lo, hi), ("no band", x, [0.0] * 4)],
                                          y_label="value (units)")], x_label="x (s)")
    (ax,) = fig.axes
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1
    vertices = {tuple(np.round(v, 9)) for path in bands[0].get_paths() for v in path.vertices}
    assert {(a, b) for a, b in zip(x, lo)} | {(a, b) for a, b in zip(x, hi)} <= vertices
    ys = [v[1] for v in vertices]
    assert min(ys) == min(lo) and max(ys) == max(hi)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["with band"].get_ydata()) == y
    # series differ in line style and marker, not only in colour (greyscale prints)
    a, b = lines["with band"], lines["no band"]
    assert a.get_linestyle() != b.get_linestyle() and a.get_marker() != b.get_marker()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["with band", "no band", "95% interval (shaded)"]
    assert ax.get_xlabel() == "x (s)" and ax.get_ylabel() == "value (units)"
    with pytest.raises(TadaError, match="one low and one high bound per x"):
        plots.line_panels_figure([("p", [Series("s", x, y, lo[:2], hi)])])


def test_layer_axes_get_whole_number_ticks():
    fig = plots.line_panels_figure([("layers", [("effect", [0, 1, 2, 3], [1.0, -2.0, 0.5, 3.0])]),
                                    ("lambda", [("effect", [-0.5, 0.0, 0.25], [1.0, 2.0, 3.0])])])
    layers, lam = fig.axes
    lo, hi = layers.get_xlim()
    ticks = [t for t in layers.get_xticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert not all(float(t).is_integer() for t in lam.get_xticks())


def test_spectrograms_share_one_db_scale_axes_in_seconds_and_hz_and_a_free_band_on_top():
    sr, f = 16000, 1000.0
    t = np.arange(sr) / sr
    loud = 0.5 * np.sin(2 * np.pi * f * t)
    quiet = loud / 100                                           # -40 dB: half-way down the 80 dB scale
    images = plots.spectrogram_images([np.stack([loud, loud]), quiet], sr, height=160, width=480)
    m = plots._SPEC_MARGINS
    assert [im.size for im in images] == [(480 + m["left"] + m["right"], 160 + m["top"] + m["bottom"])] * 2
    loud_px, quiet_px = (np.asarray(im)[..., :3] / 255.0 for im in images)
    assert (loud_px[:m["top"] - 8] == 1.0).all()                 # the widget's buttons go there: nothing drawn
    f_lo, f_hi = 0.004 * sr / 2, sr / 2
    row = m["top"] + round(160 * (1 - math.log(f / f_lo) / math.log(f_hi / f_lo)))
    col = m["left"] + 240
    viridis = colormaps["viridis"]
    assert np.allclose(loud_px[row, col], viridis(1.0)[:3], atol=0.08)      # the loudest bin: 0 dB
    assert np.allclose(quiet_px[row, col], viridis(0.5)[:3], atol=0.08)     # 40 dB below it, on the same scale
    # the axes and the colour bar say their units
    rows = plots._log_rows(plots.log_spectrograms([loud])[0], 160, 0.004)
    fig = plots._spectrogram_figure(rows, 1.0, f_lo, f_hi, 80.0, 480, 160)
    ax, bar = fig.axes
    assert ax.get_xlabel() == "time (s)" and ax.get_ylabel() == "frequency (Hz)" and "dB" in bar.get_ylabel()
    plain = plots.spectrogram_images([loud], height=40, width=100)   # no sample rate: the bare picture
    assert plain[0].size == (100, 40)


def test_benchmark_curves_label_both_axes_with_units_and_pass_the_bands(monkeypatch):
    figures = load_figures_script()
    result = figures.load_result(ROOT / "results" / "organism_benchmark" / "tempo" / "result.json")
    pci = next(m for m in result.methods if m.key == "pci")
    pci.curves["pos"]["delta_lo"] = [v - 1 for v in pci.curves["pos"]["delta"]]
    pci.curves["pos"]["delta_hi"] = [v + 1 for v in pci.curves["pos"]["delta"]]
    seen = {}
    from tada_core.evaluation.benchmark import runner

    monkeypatch.setattr(runner, "line_panels", lambda panels, path, **kw: seen.update(panels=panels, **kw))
    runner.curves_png([result], "unused.png")
    assert "(dB)" in seen["x_label"] and "P_max" in seen["x_label"]
    assert all("BPM" in p.y_label for p in seen["panels"])
    first = seen["panels"][0].series[0]
    assert first.label == "PCI" and first.lo == pci.curves["pos"]["delta_lo"]
    assert all(s.lo is None for s in seen["panels"][1].series)


def test_the_module_never_imports_pyplot_and_renders_from_several_threads():
    tree = ast.parse((ROOT / "tada_core" / "evaluation" / "plots.py").read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any("pyplot" in (name or "") for name in imported)
    values = [np.full((2, 3), v) for v in (0.1, 0.9)]
    alone = [np.asarray(plots.heatmap_image(v, ["a", "b"], ["0", "1", "2"])) for v in values]
    first, second = (plots.heatmap_figure(v, ["a", "b"], ["0", "1", "2"]) for v in values)   # no figure is reused
    assert np.array_equal(np.asarray(plots.to_image(first)), alone[0])
    got = {}

    def draw(k):
        got[k] = np.asarray(plots.heatmap_image(values[k % 2], ["a", "b"], ["0", "1", "2"]))

    threads = [threading.Thread(target=draw, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(np.array_equal(got[k], alone[k % 2]) for k in range(4))


def load_figures_script():
    spec = importlib.util.spec_from_file_location("figures_script", ROOT / "scripts" / "figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_figures_script_redraws_every_committed_figure_from_the_committed_data(tmp_path, monkeypatch):
    """Every PNG under results/ is written again from the JSON next to it, every plot axis has both labels.
    Drawing is stubbed (the tests above render; `python scripts/figures.py` renders them all in about 20 s)."""
    figures = load_figures_script()
    monkeypatch.setattr(figures, "N_BOOT", 20)                                     # the bands' draws: speed only
    drawn = []
    monkeypatch.setattr(plots, "_render", lambda fig, dpi=None: drawn.append(fig) or np.zeros((2, 2, 4), np.uint8))
    assert figures.main(["--out", str(tmp_path)]) == 0
    committed = {p.relative_to(ROOT / "results") for p in (ROOT / "results").rglob("*.png")}
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*.png")}
    assert committed and written == committed and len(drawn) == len(committed)
    for fig in drawn:
        for ax in fig.axes:
            if not hasattr(ax, "_colorbar"):
                assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()
    curves = figures.load_result(ROOT / "results" / "organism_benchmark" / "drums" / "result.json")
    figures.add_bands(curves, ROOT / "results" / "organism_benchmark" / "drums")
    for m in (m for m in curves.methods if m.available):
        for name in ("pos", "neg"):
            c = m.curves[name]
            assert len(c["delta_lo"]) == len(c["delta"]) == len(c["delta_hi"])
            assert c["delta_lo"][0] == c["delta_hi"][0] == 0.0            # alpha 0: no change, in every draw
            assert all(lo <= d + 1e-9 and d <= hi + 1e-9 for lo, d, hi in zip(c["delta_lo"], c["delta"], c["delta_hi"]))
