"""The TADA reference implementation's published real-model measurements, read as data.

The reference code (``luk-st/steer-audio``) publishes its raw per-strength measurements on
ACE-Step, Stable Audio Open and AudioLDM2 (a verbatim copy ships in ``tada_core/data/steer_audio``
with its provenance): for every method cell x concept x preservation axis x strength the distance
to the alpha-0 clip and the MuQ / CLAP alignment, the four Audiobox Aesthetics axes per strength,
and the per-layer impact of the localization sweep. :func:`read_published` reads and validates
them; :func:`table3` rebuilds the paper's Table 3 (and the MIR preservation tables) from them with
this project's protocol code (:mod:`tada_core.evaluation.benchmark.protocol`), and
:func:`localization_table` the layer-impact tables.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tada_core.errors import TadaError
from tada_core.evaluation.benchmark import protocol
from tada_core.runtime.io import read_json

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "data" / "steer_audio"
STEERING_FILE, QUALITY_FILE, IMPACT_FILE, SOURCE_FILE = ("steering_metrics.csv", "quality_metrics.csv",
                                                         "localization_impact.csv", "source.json")
# method cells in the paper's Table 3 order, with the paper's labels
CELLS: dict[str, str] = {
    "pci_all": "PCI", "pci_loc": "PCI (loc.)", "textemb_all": "Text Embeddings",
    "textemb_loc": "Text Embeddings (loc.)", "tokemb_all": "Token Embeddings", "tokemb_loc": "Token Embeddings (loc.)",
    "freesliders_all": "FreeSliders", "freesliders_loc": "FreeSliders (loc.)", "cs_all": "Concept Sliders",
    "cs_loc": "Concept Sliders (loc.)", "austeer_all": "AUSteer", "austeer_loc": "AUSteer (loc.)", "caa_all": "CAA",
    "caa_loc": "CAA (loc.)", "sae": "SAE (loc.)",
}
# the paper's nine benchmark concepts, in its order
CONCEPTS = ("piano", "mood", "tempo", "vocal_gender", "vocal_style", "violin", "guitar_electronic", "rock_genre",
            "electronic_music")
AXES = ("lpaps", "harmony", "melody", "rhythm", "ssm")   # LPAPS and the four MIR preservation axes
ALIGNMENTS = ("muqt", "clap")                             # MuQ-MuLan and CLAP text-audio similarity
QUALITY_AXES = ("content_enjoyment", "content_usefulness", "production_complexity", "production_quality")
PCI_CELLS = ("pci_all", "pci_loc")                        # they set P_max (Sec. 5.1)
MODELS = {"ace": "ACE-Step", "stableaudio": "Stable Audio Open", "audioldm2": "AudioLDM2"}


@dataclasses.dataclass(frozen=True)
class Source:
    """Where the data comes from: repository, commit, license, and the SHA-256 of each file (checked on load)."""

    repository: str
    commit: str
    license: str
    files: dict[str, str]

    def describe(self) -> str:
        return f"{self.repository} @ {self.commit[:12]} ({self.license} license)"


@dataclasses.dataclass(frozen=True)
class Measurements:
    """One method cell x concept x axis: strengths (ascending), distances and alignment values per strength."""

    alphas: np.ndarray
    distance: np.ndarray
    alignment: dict[str, np.ndarray]


@dataclasses.dataclass
class Published:
    """The published measurements, validated: ``steering[(cell, concept, axis)]``, ``quality[(cell, concept)]``
    (alpha -> the four aesthetics axes) and ``impact`` rows (model, metric, concept, block, attn, impact)."""

    source: Source
    steering: dict[tuple[str, str, str], Measurements]
    quality: dict[tuple[str, str], dict[float, np.ndarray]]
    impact: list[tuple[str, str, str, str, int, float]]

    def sweep(self, cell: str, concept: str, axis: str, alignment: str, sign: int,
              with_quality: bool = False) -> protocol.Sweep:
        """One direction (``sign`` +1: alpha >= 0; -1: alpha <= 0) as a protocol sweep: the sign-corrected
        alignment gain Delta a = sign (a(alpha) - a(0)) against the distance, in |alpha| order."""
        m = self.measurements(cell, concept, axis)
        keep = m.alphas >= 0 if sign > 0 else m.alphas <= 0
        a, d, v = m.alphas[keep], m.distance[keep], m.alignment[alignment][keep]
        delta = sign * (v - v[np.argmin(np.abs(a))])
        quality = None
        if with_quality:
            q = self.quality[(cell, concept)]
            quality = np.array([float(np.mean(q[float(x)])) for x in a])
        return protocol.ordered(a, delta, d, quality)

    def measurements(self, cell: str, concept: str, axis: str) -> Measurements:
        key = (cell, concept, axis)
        if key not in self.steering:
            raise TadaError(f"no published measurements for cell {cell!r}, concept {concept!r}, axis {axis!r}")
        return self.steering[key]

    def p_max(self, concept: str, axis: str, sign: int) -> float:
        """P_max of one direction: the smaller of the two PCI cells' largest distances (Sec. 5.1)."""
        return protocol.p_max([float(np.max(self.sweep(c, concept, axis, ALIGNMENTS[0], sign).distance))
                               for c in PCI_CELLS])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rows(path: Path, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise TadaError(f"{path.name} is missing from {path.parent}")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or list(reader.fieldnames) != list(columns):
            raise TadaError(f"{path.name}: columns must be {','.join(columns)}; got {','.join(reader.fieldnames or [])}")
        return [(line, row) for line, row in enumerate(reader, start=2)]


def _number(path: Path, line: int, row: Mapping[str, str], column: str) -> float:
    try:
        value = float(row[column])
    except (TypeError, ValueError):
        raise TadaError(f"{path.name} line {line}: {column} is {row[column]!r}, not a number") from None
    if not math.isfinite(value):
        raise TadaError(f"{path.name} line {line}: {column} is {row[column]}; every measurement must be finite")
    return value


def _known(path: Path, line: int, what: str, value: str, accepted: Sequence[str]) -> None:
    if value not in accepted:
        raise TadaError(f"{path.name} line {line}: unknown {what} {value!r}; accepted: {', '.join(accepted)}")


def read_published(folder: str | Path = DEFAULT_DIR) -> Published:
    """Read and validate the published tables in ``folder`` (default: the copy shipped with tada).

    Refused with a message naming the file and line: an unknown method cell, concept, axis or model, a
    value that is not a finite number, a repeated strength, a cell without its alpha-0 row, a steering
    strength without its quality row; and a file whose SHA-256 differs from ``source.json``'s.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TadaError(f"{folder} is not a folder of published results (it needs {STEERING_FILE}, {QUALITY_FILE}, "
                        f"{IMPACT_FILE} and {SOURCE_FILE})")
    meta = read_json(folder / SOURCE_FILE)
    try:
        source = Source(str(meta["repository"]), str(meta["commit"]), str(meta.get("license", "?")),
                        {str(k): str(v) for k, v in meta["files"].items()})
    except (KeyError, TypeError, AttributeError):
        raise TadaError(f"{SOURCE_FILE} needs repository, commit and files (name -> sha256)") from None
    for name in (STEERING_FILE, QUALITY_FILE, IMPACT_FILE):
        if name not in source.files:
            raise TadaError(f"{SOURCE_FILE} lists no sha256 for {name}")
        if (folder / name).is_file() and _sha256(folder / name) != source.files[name]:
            raise TadaError(f"{name} differs from the published file ({SOURCE_FILE} records its sha256); it was "
                            f"edited or truncated")

    path = folder / STEERING_FILE
    points: dict[tuple[str, str, str], dict[float, tuple[float, float, float]]] = {}
    for line, row in _rows(path, ("cell", "concept", "axis", "alpha", "lpaps", "muqt", "clap")):
        _known(path, line, "method cell", row["cell"], list(CELLS))
        _known(path, line, "concept", row["concept"], CONCEPTS)
        _known(path, line, "axis", row["axis"], AXES)
        alpha = _number(path, line, row, "alpha")
        key = (row["cell"], row["concept"], row["axis"])
        if alpha in points.setdefault(key, {}):
            raise TadaError(f"{path.name} line {line}: a second row for {'/'.join(key)} at alpha {alpha:g}")
        points[key][alpha] = tuple(_number(path, line, row, c) for c in ("lpaps", "muqt", "clap"))
    steering = {}
    for key, by_alpha in points.items():
        if 0.0 not in by_alpha:
            raise TadaError(f"{path.name}: {'/'.join(key)} has no alpha 0 row (the unsteered reference)")
        alphas = np.array(sorted(by_alpha))
        values = np.array([by_alpha[a] for a in alphas])
        steering[key] = Measurements(alphas, values[:, 0], {"muqt": values[:, 1], "clap": values[:, 2]})

    path = folder / QUALITY_FILE
    quality: dict[tuple[str, str], dict[float, np.ndarray]] = {}
    for line, row in _rows(path, ("cell", "concept", "alpha", *QUALITY_AXES)):
        _known(path, line, "method cell", row["cell"], list(CELLS))
        _known(path, line, "concept", row["concept"], CONCEPTS)
        alpha = _number(path, line, row, "alpha")
        quality.setdefault((row["cell"], row["concept"]), {})[alpha] = np.array(
            [_number(path, line, row, c) for c in QUALITY_AXES])
    for (cell, concept, axis), m in steering.items():
        missing = [a for a in m.alphas if float(a) not in quality.get((cell, concept), {})]
        if axis == "lpaps" and missing:
            raise TadaError(f"{QUALITY_FILE}: {cell}/{concept} lacks the strengths {missing[:3]} that "
                            f"{STEERING_FILE} measures")

    path = folder / IMPACT_FILE
    impact = []
    for line, row in _rows(path, ("model", "metric", "concept", "block", "attn", "impact")):
        _known(path, line, "model", row["model"], list(MODELS))
        impact.append((row["model"], row["metric"], row["concept"], row["block"],
                       int(_number(path, line, row, "attn")), _number(path, line, row, "impact")))
    return Published(source, steering, quality, impact)


# ---------------------------------------------------------------------------------------------- Table 3
@dataclasses.dataclass
class Table3Row:
    """One method cell on one concept (or averaged): AUC and smoothness per alignment measure (each the mean of
    the two directions), average quality (LPAPS axis only)."""

    cell: str
    auc: dict[str, float]
    smoothness: dict[str, float]
    quality: float | None

    @property
    def label(self) -> str:
        return CELLS[self.cell]


@dataclasses.dataclass
class Table3:
    """Table 3 on one preservation axis: per concept the P_max of each direction and one row per method cell;
    ``average``: each column's mean over the concepts (NaN cells left out)."""

    axis: str
    p_max: dict[str, tuple[float, float]]
    rows: dict[str, list[Table3Row]]
    average: list[Table3Row]


def _mean2(a: float, b: float) -> float:
    return (a + b) / 2 if math.isfinite(a) and math.isfinite(b) else float("nan")


def table3(published: Published, axis: str = "lpaps", concepts: Sequence[str] = CONCEPTS) -> Table3:
    """Rebuild Table 3 (``axis`` "lpaps") or a MIR preservation table (harmony, melody, rhythm, ssm: no quality
    column) from the published measurements with the protocol of :mod:`tada_core.evaluation.benchmark.protocol`:
    P_max per direction from the PCI cells, truncation with the interpolated boundary point, the |alpha|-ordered
    trapezoid, smoothness on the measured points within P_max, the 15-point quality grid."""
    if axis not in AXES:
        raise TadaError(f"axis must be one of {', '.join(AXES)}; got {axis!r}")
    p_max, rows = {}, {}
    for concept in concepts:
        if concept not in CONCEPTS:
            raise TadaError(f"unknown concept {concept!r}; the published concepts are {', '.join(CONCEPTS)}")
        cut = {s: published.p_max(concept, axis, s) for s in (1, -1)}
        p_max[concept] = (cut[1], cut[-1])
        rows[concept] = []
        for cell in CELLS:
            auc, smooth = {}, {}
            for metric in ALIGNMENTS:
                per = [protocol.truncate(published.sweep(cell, concept, axis, metric, s), cut[s]) for s in (1, -1)]
                auc[metric] = _mean2(*(protocol.auc(sw) for sw in per))
                smooth[metric] = _mean2(*(protocol.smoothness(sw) for sw in per))
            quality = None
            if axis == "lpaps":
                whole = [published.sweep(cell, concept, axis, ALIGNMENTS[0], s, with_quality=True) for s in (1, -1)]
                quality = protocol.average_quality(whole[0], whole[1], cut[1], cut[-1])
            rows[concept].append(Table3Row(cell, auc, smooth, quality))
    average = []
    for i, cell in enumerate(CELLS):
        cells = [rows[c][i] for c in concepts]

        def mean(values: list[float]) -> float:
            kept = [v for v in values if v is not None and math.isfinite(v)]
            return float(np.mean(kept)) if kept else float("nan")

        average.append(Table3Row(cell, {m: mean([r.auc[m] for r in cells]) for m in ALIGNMENTS},
                                 {m: mean([r.smoothness[m] for r in cells]) for m in ALIGNMENTS},
                                 mean([r.quality for r in cells]) if axis == "lpaps" else None))
    return Table3(axis, p_max, rows, average)


def _fmt(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.3f}"


def _section(rows: Sequence[Table3Row], with_quality: bool) -> list[str]:
    head = "| Method | AUC MuQ | AUC CLAP | Smooth MuQ | Smooth CLAP |" + (" Quality |" if with_quality else "")
    out = [head, "|" + "---|" * (6 if with_quality else 5)]
    for r in rows:
        cells = [r.auc["muqt"], r.auc["clap"], r.smoothness["muqt"], r.smoothness["clap"]]
        cells += [r.quality] if with_quality else []
        out.append(f"| {r.label} | " + " | ".join(_fmt(v) for v in cells) + " |")
    return out


AXIS_TITLES = {"lpaps": "LPAPS", "harmony": "harmony (1 - chroma cosine)", "melody": "melody (1 - raw pitch accuracy)",
               "rhythm": "rhythm (1 - beat F-measure)", "ssm": "structure (1 - chroma SSM correlation)"}


def table3_markdown(table: Table3) -> str:
    """The table in the reference's published layout (``results/tables_<axis>.md``): the average over the
    concepts, then one section per concept headed with its P_max per direction."""
    q = table.axis == "lpaps"
    lines = [f"# Benchmark tables — preservation: {AXIS_TITLES[table.axis] if not q else 'LPAPS'}", "",
             f"## Averaged over the {_count_word(len(table.rows))} concepts", "", *_section(table.average, q), ""]
    for concept, rows in table.rows.items():
        pos, neg = table.p_max[concept]
        lines += [f"## {concept}  (cutoff pos={pos:.3f}, neg={neg:.3f})", "", *_section(rows, q), ""]
    return "\n".join(lines) + "\n"


def _count_word(n: int) -> str:
    words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}
    return words.get(n, str(n))


def parse_table3_markdown(text: str) -> dict[str, dict[str, list[str]]]:
    """Section title -> method label -> the printed cells of a table in :func:`table3_markdown`'s layout (the
    reference's ``tables_<axis>.md`` too), for cell-by-cell comparison."""
    out: dict[str, dict[str, list[str]]] = {}
    section = None
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].split("  (")[0].strip()
            out[section] = {}
        elif section and line.startswith("| ") and not line.startswith("| Method"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            out[section][cells[0]] = cells[1:]
    return out


def benchmark_results(published: Published, alignment: str = "muqt", axis: str = "lpaps",
                      concepts: Sequence[str] = CONCEPTS) -> list[Any]:
    """The published measurements as the result objects ``tada benchmark`` writes
    (:class:`~tada_core.evaluation.benchmark.runner.BenchmarkResult`, one per concept, for one alignment measure),
    reduced by the same protocol: so a published concept and a run of ours render with the same tables and plots
    (``curves_png``). Method keys are the published cells'; quality is on the LPAPS axis only."""
    from tada_core.evaluation.benchmark.runner import BenchmarkResult, MethodResult

    if alignment not in ALIGNMENTS:
        raise TadaError(f"alignment must be one of {', '.join(ALIGNMENTS)}; got {alignment!r}")
    if axis not in AXES:
        raise TadaError(f"axis must be one of {', '.join(AXES)}; got {axis!r}")
    out = []
    for concept in concepts:
        cut = {"pos": published.p_max(concept, axis, 1), "neg": published.p_max(concept, axis, -1)}
        methods = []
        for cell, label in CELLS.items():
            m = MethodResult(cell, label, True)
            whole = {}
            for name, sign in (("pos", 1), ("neg", -1)):
                whole[name] = published.sweep(cell, concept, axis, alignment, sign, with_quality=axis == "lpaps")
                sw = protocol.truncate(whole[name], cut[name])
                m.grid[name] = [float(a) for a in whole[name].alphas[1:]]
                m.kept[name] = int(np.sum(whole[name].distance[1:] <= cut[name] + 1e-9))
                m.auc[name] = protocol.auc(sw)
                m.smoothness[name] = protocol.smoothness(sw)
                m.curves[name] = {"alpha": sw.alphas.tolist(), "delta": sw.delta.tolist(),
                                  "distance": sw.distance.tolist()}
            m.auc["avg"] = (m.auc["pos"] + m.auc["neg"]) / 2
            if axis == "lpaps":
                m.quality = protocol.average_quality(whole["pos"], whole["neg"], cut["pos"], cut["neg"])
            methods.append(m)
        out.append(BenchmarkResult(concept=concept, model=f"ACE-Step ({published.source.describe()})",
                                   scorer=alignment, measure_label=f"{alignment} similarity", distance=axis,
                                   quality="audiobox (mean of CE, CU, PC, PQ)" if axis == "lpaps" else "-",
                                   n_items=0, p_max=cut, gap=float("nan"), functional=[], methods=methods))
    return out


# ---------------------------------------------------------------------------------------------- localization
def localization_table(published: Published) -> dict[str, list[tuple[str, int, float]]]:
    """Per model, every cross-attention layer (block, attention index) with I(l) averaged over the concepts
    (each concept measured with one alignment metric), sorted by impact, largest first; equal impacts by block
    name as text, then attention index (the reference's order: ``up2tf1``, ``up2tf10``, ``up2tf2``)."""
    out: dict[str, list[tuple[str, int, float]]] = {}
    for model in sorted(MODELS):
        sums: dict[tuple[str, int], list[float]] = {}
        order: list[tuple[str, int]] = []
        for m, _, _, block, attn, value in published.impact:
            if m != model:
                continue
            if (block, attn) not in sums:
                order.append((block, attn))
            sums.setdefault((block, attn), []).append(value)
        layers = [(b, a, float(np.mean(sums[(b, a)]))) for b, a in order]
        out[model] = sorted(layers, key=lambda x: (-round(x[2], 12), x[0], x[1]))
    return out


def localization_markdown(table: Mapping[str, Sequence[tuple[str, int, float]]]) -> str:
    lines = ["# Layer impact I(l), averaged over concepts", ""]
    for model, layers in table.items():
        lines += [f"## {model}", "", "| block | attn | I(l) |", "|---|---|---|"]
        lines += [f"| {b} | {a} | {v:.3f} |" for b, a, v in layers] + [""]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- side by side
# this project's benchmark method keys -> the published cells they implement
METHOD_CELLS = {"pci": "pci_all", "pci-f": "pci_loc", "text-emb": "textemb_all", "text-emb-f": "textemb_loc",
                "token-emb": "tokemb_all", "token-emb-f": "tokemb_loc", "freesliders": "freesliders_all",
                "freesliders-f": "freesliders_loc", "sliders": "cs_all", "sliders-f": "cs_loc", "austeer": "austeer_all",
                "austeer-f": "austeer_loc", "caa-all": "caa_all", "caa": "caa_loc", "sae": "sae"}


@dataclasses.dataclass
class Comparison:
    """The method ranking of the published real-model Table 3 (average AUC MuQ) next to a ``tada benchmark`` run's
    (mean nAUC over its concepts: AUC in units of the prompt gap times P_max, comparable across concepts), on the
    methods both have; ``rho``: Spearman's rank correlation of the two orders."""

    rows: list[tuple[str, float, int, float, int]]   # label, published AUC, its rank, our mean nAUC, its rank
    rho: float
    ours: str

    def markdown(self) -> str:
        lines = [f"| method | published AUC MuQ (ACE-Step, 9 concepts) | rank | {self.ours}: mean nAUC | rank |",
                 "|---|---|---|---|---|"]
        lines += [f"| {label} | {a:.3f} | {ra} | {b:.3f} | {rb} |" for label, a, ra, b, rb in self.rows]
        return "\n".join(lines) + f"\n\nSpearman rho of the two rankings: {self.rho:.2f} over {len(self.rows)} methods.\n"


def compare(published: Published, run: str | Path) -> Comparison:
    """Put a ``tada benchmark --out DIR`` run (its ``table.json``) next to the published Table 3."""
    from scipy.stats import spearmanr

    path = Path(run) / "table.json" if Path(run).is_dir() else Path(run)
    results = read_json(path)
    if not isinstance(results, list) or not results or not all(isinstance(r, dict) and "methods" in r for r in results):
        raise TadaError(f"{path} is not the table.json of a `tada benchmark` run")
    ours: dict[str, list[float]] = {}
    for r in results:
        for m in r["methods"]:
            v = m.get("nauc")
            if m.get("available") and m["key"] in METHOD_CELLS and isinstance(v, (int, float)) and math.isfinite(v):
                ours.setdefault(m["key"], []).append(float(v))
    avg = {row.cell: row.auc["muqt"] for row in table3(published).average}
    keys = [k for k in METHOD_CELLS if k in ours]
    if len(keys) < 2:
        raise TadaError(f"{path}: fewer than two methods in common with the published table")
    theirs_v = [avg[METHOD_CELLS[k]] for k in keys]
    ours_v = [float(np.mean(ours[k])) for k in keys]

    def ranks(v: list[float]) -> list[int]:
        order = sorted(range(len(v)), key=lambda i: -v[i])
        out = [0] * len(v)
        for r, i in enumerate(order, start=1):
            out[i] = r
        return out

    ra, rb = ranks(theirs_v), ranks(ours_v)
    rows = sorted(((CELLS[METHOD_CELLS[k]], theirs_v[i], ra[i], ours_v[i], rb[i]) for i, k in enumerate(keys)),
                  key=lambda x: x[2])
    return Comparison(rows, float(spearmanr(theirs_v, ours_v)[0]), ours=results[0].get("model", "ours"))


def run_markdown(run: str | Path) -> str:
    """A ``tada benchmark`` run in the layout of the paper's Table 3 (the published ``tables_lpaps.md``): one section
    per concept headed with its P_max per direction, the methods in the paper's order and names, AUC avg,
    smoothness (the mean of the two directions, undefined if either is) and quality; a run has one alignment
    measure (its scorer) where the paper has MuQ and CLAP. The average over concepts is of nAUC (AUC in units of
    the prompt gap x P_max), since raw AUCs of different concepts have different units."""
    from tada_core.evaluation.benchmark.runner import BenchmarkResult

    path = Path(run) / "table.json" if Path(run).is_dir() else Path(run)
    raw = read_json(path)
    if not isinstance(raw, list) or not raw:
        raise TadaError(f"{path} is not the table.json of a `tada benchmark` run")
    results = [BenchmarkResult.from_dict(r) for r in raw]
    order = {cell: i for i, cell in enumerate(CELLS)}
    by_cell = {METHOD_CELLS[k]: k for k in METHOD_CELLS}

    def rows(r):
        got = {METHOD_CELLS[m.key]: m for m in r.methods if m.key in METHOD_CELLS and m.available}
        return [(cell, got[cell]) for cell in sorted(got, key=order.get)]

    def smooth(m) -> float:
        return _mean2(m.smoothness.get("pos", float("nan")), m.smoothness.get("neg", float("nan")))

    model = results[0].model
    lines = [f"# Benchmark tables — {model}, preservation: {results[0].distance}, alignment: {results[0].scorer}", "",
             f"## Averaged over the {_count_word(len(results))} concepts (nAUC)", "",
             "| Method | nAUC | Smooth | Quality |", "|---|---|---|---|"]
    for cell in CELLS:
        if cell not in by_cell:
            continue
        ms = [m for r in results for c, m in rows(r) if c == cell]
        if not ms:
            continue

        def mean(values: list[float]) -> float:
            kept = [v for v in values if math.isfinite(v)]
            return float(np.mean(kept)) if kept else float("nan")

        lines.append(f"| {CELLS[cell]} | {_fmt(mean([m.nauc for m in ms]))} | {_fmt(mean([smooth(m) for m in ms]))} | "
                     f"{_fmt(mean([m.quality for m in ms]))} |")
    for r in results:
        lines += ["", f"## {r.concept}  (cutoff pos={r.p_max['pos']:.3f}, neg={r.p_max['neg']:.3f}; "
                      f"{r.measure_label})", "", "| Method | AUC | Smooth | Quality |", "|---|---|---|---|"]
        lines += [f"| {CELLS[cell]} | {_fmt(m.auc.get('avg'))} | {_fmt(smooth(m))} | {_fmt(m.quality)} |"
                  for cell, m in rows(r)]
    return "\n".join(lines) + "\n"


def describe(published: Published) -> dict[str, Any]:
    """Counts and provenance, for a report header."""
    return {"source": published.source.describe(), "cells": len({k[0] for k in published.steering}),
            "concepts": len({k[1] for k in published.steering}), "axes": len({k[2] for k in published.steering}),
            "impact_rows": len(published.impact)}


__all__ = ["read_published", "Published", "Source", "Measurements", "table3", "Table3", "Table3Row",
           "table3_markdown", "parse_table3_markdown", "localization_table", "localization_markdown", "CELLS",
           "CONCEPTS", "AXES", "MODELS", "DEFAULT_DIR", "describe", "compare", "Comparison", "METHOD_CELLS", "run_markdown", "benchmark_results"]
