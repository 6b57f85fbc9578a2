"""The reference's published real-model measurements: the reader, and Table 3 / the layer-impact tables rebuilt by
this project's protocol code, cell for cell against the reference's own published tables."""

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from tada_core.errors import TadaError
from tada_core.evaluation.benchmark import protocol
from tada_core.evaluation.published import (CELLS, CONCEPTS, DEFAULT_DIR, localization_markdown, localization_table,
                                            parse_table3_markdown, read_published, table3, table3_markdown)

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def published():
    return read_published()


def test_table3_equals_the_published_table_in_every_printed_cell(published):
    """750 cells (15 methods x 5 columns x 9 concepts + the average) and the P_max in each heading, byte for byte."""
    ours = table3_markdown(table3(published))
    theirs = (DATA / "steer_audio_tables_lpaps.md").read_text(encoding="utf-8")
    a, b = parse_table3_markdown(ours), parse_table3_markdown(theirs)
    differ = [(s, m, j) for s in b for m in b[s] for j, cell in enumerate(b[s][m]) if a[s][m][j] != cell]
    assert sum(len(cells) for rows in b.values() for cells in rows.values()) == 750
    assert not differ, differ[:10]
    assert ours == theirs


def test_layer_impact_tables_equal_the_published_ones(published):
    ours = localization_markdown(localization_table(published))
    assert ours == (DATA / "steer_audio_tables_localization.md").read_text(encoding="utf-8")


def test_mir_axes_have_no_quality_column_and_their_own_cutoffs(published):
    lp, rh = table3(published, "lpaps", ["piano"]), table3(published, "rhythm", ["piano"])
    assert rh.rows["piano"][0].quality is None and "Quality" not in table3_markdown(rh)
    assert rh.p_max["piano"] != lp.p_max["piano"]
    with pytest.raises(TadaError, match="axis must be one of lpaps, harmony"):
        table3(published, "timbre")


def test_reader_records_the_source_and_every_cell(published):
    assert published.source.repository == "luk-st/steer-audio" and published.source.commit.startswith("e5995fd2")
    assert {k[0] for k in published.steering} == set(CELLS) and {k[1] for k in published.steering} == set(CONCEPTS)
    m = published.measurements("caa_loc", "piano", "lpaps")
    assert len(m.alphas) == 31 and m.distance[m.alphas == 0] == 0


def _copy(tmp_path, edit=None, file="steering_metrics.csv"):
    folder = tmp_path / "pub"
    shutil.copytree(DEFAULT_DIR, folder)
    if edit is not None:
        path = folder / file
        path.write_text(edit(path.read_text()))
        meta = json.loads((folder / "source.json").read_text())
        meta["files"][file] = hashlib.sha256(path.read_bytes()).hexdigest()   # a dataset of its own
        (folder / "source.json").write_text(json.dumps(meta))
    return folder


def test_bad_rows_are_refused_naming_the_file_and_line(tmp_path):
    with pytest.raises(TadaError, match="line 2: unknown method cell 'magic'"):
        read_published(_copy(tmp_path, lambda t: t.replace("pci_all,piano", "magic,piano", 1)))
    shutil.rmtree(tmp_path / "pub")
    with pytest.raises(TadaError, match="line 2: lpaps is nan"):
        read_published(_copy(tmp_path, lambda t: t.replace("-30.0,3.543369", "-30.0,nan", 1)))
    shutil.rmtree(tmp_path / "pub")
    with pytest.raises(TadaError, match="no alpha 0 row"):
        read_published(_copy(tmp_path, lambda t: "\n".join(
            line for line in t.splitlines() if not line.startswith("pci_all,piano,lpaps,0.0,")) + "\n"))
    shutil.rmtree(tmp_path / "pub")
    with pytest.raises(TadaError, match="unknown concept 'banjo'"):
        read_published(_copy(tmp_path, lambda t: t.replace("pci_all,piano,-30.0", "pci_all,banjo,-30.0", 1),
                             file="quality_metrics.csv"))


def test_an_edited_file_is_refused_by_its_hash(tmp_path):
    folder = _copy(tmp_path)
    path = folder / "steering_metrics.csv"
    path.write_text(path.read_text().replace("3.543369", "3.543368", 1))
    with pytest.raises(TadaError, match="differs from the published file"):
        read_published(folder)


# The four rules where the protocol once differed from the reference; each sweep is built so that only the
# reference's rule gives the expected number.
def sweep(alphas, delta, distance, quality=None):
    return protocol.ordered(alphas, delta, distance, quality)


def test_smoothness_uses_the_measured_points_only():
    s = protocol.truncate(sweep([1, 2, 3], [1.0, 3.0, 4.0], [1.0, 2.0, 4.0]), 3.0)
    assert s.delta.tolist() == [0.0, 1.0, 3.0, 3.5]          # the boundary point (d 3, 3.5) is in the AUC ...
    assert protocol.auc(s) == pytest.approx(0.5 + 2.0 + 3.25)
    assert protocol.smoothness(s) == pytest.approx(float(np.std([1 / 3, 2 / 3])))   # ... not in S (0, 1, 3 over 3)
    assert math.isnan(protocol.smoothness(sweep([1], [1.0], [1.0])))   # one gap: no spread to measure


def test_truncation_keeps_measured_points_below_p_max_after_one_beyond():
    s = protocol.truncate(sweep([1, 2, 3], [1.0, 3.0, 2.0], [1.0, 3.0, 1.5]), 2.0)
    # |alpha| 3 comes back below P_max after |alpha| 2 went beyond: kept; the boundary lies between the farthest
    # point within (d 1.5, Delta a 2) and the nearest beyond (d 3, Delta a 3), with the alpha of the one beyond
    assert s.alphas.tolist() == [0, 1, 2, 3] and s.distance.tolist() == [0, 1, 2.0, 1.5]
    assert s.delta[2] == pytest.approx(2 + (2.0 - 1.5) / (3 - 1.5) * (3 - 2))


def test_quality_grid_interpolates_over_points_sorted_by_distance():
    s = sweep([1, 2, 3], [0, 0, 0], [1.0, 3.0, 2.0], [4.0, 10.0, 6.0])   # distance not monotone in |alpha|
    grid = protocol.quality_grid(s, 3.0, points=7)           # d 0, 0.5, ..., 3; d 0 has no quality: from d 1 on
    assert grid.tolist() == pytest.approx([4.0, 5.0, 6.0, 8.0, 10.0])
    # at d 2.5, sorted by distance: between (2, 6) and (3, 10) -> 8; walking |alpha| order would give 8.5


def test_average_quality_is_the_mean_of_the_two_directions_means():
    pos = sweep([1, 2], [0, 0], [1.0, 2.0], [8.0, 8.0])
    neg = sweep([1], [0], [1.0], [10.0])
    n_pos = len(protocol.quality_grid(pos, 2.0))             # grid points from d 1 to 2: 8 of 15
    assert n_pos == 8 and protocol.quality_grid(neg, 2.0).tolist() == [10.0]
    assert protocol.average_quality(pos, neg, 2.0, 2.0) == pytest.approx((8.0 + 10.0) / 2)   # not (8*8 + 10) / 9


def test_cli_rebuilds_the_published_tables(cli, tmp_path):
    code, out, err = cli("benchmark", "table", "--out", tmp_path, "--all-axes")
    assert code == 0, err
    assert (tmp_path / "tables_lpaps.md").read_text(encoding="utf-8") == \
        (DATA / "steer_audio_tables_lpaps.md").read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"tables_{a}.md" for a in sorted(
        ("lpaps", "harmony", "melody", "rhythm", "ssm"))]
    assert "luk-st/steer-audio @ e5995fd244cb" in err
    code, out, _ = cli("benchmark", "table", "--localization")
    assert code == 0 and out.startswith("# Layer impact I(l), averaged over concepts")
    code, _, err = cli("benchmark", "table", "--from-published", tmp_path)
    assert code == 2 and "source.json" in err
    code, _, err = cli("benchmark", "--out", tmp_path / "x")
    assert code == 2 and "give --concept" in err


def test_a_run_of_ours_is_ranked_next_to_the_published_table(published, cli):
    from scipy.stats import spearmanr

    from tada_core.evaluation.published import compare

    root = Path(__file__).resolve().parents[1]
    c = compare(published, root / "results" / "organism_benchmark_no_renorm")
    assert [r[0] for r in c.rows][:3] == ["SAE (loc.)", "CAA (loc.)", "AUSteer (loc.)"]   # the published order
    n = len(c.rows)                    # the cells of Table 3 the committed run has (all 15 once it is complete)
    assert n >= 11 and sorted(r[2] for r in c.rows) == list(range(1, n + 1)) == sorted(r[4] for r in c.rows)
    assert c.rho == pytest.approx(spearmanr([r[1] for r in c.rows], [r[3] for r in c.rows])[0])
    code, out, _ = cli("benchmark", "table", "--compare", root / "results" / "organism_benchmark_no_renorm")
    assert code == 0 and "Spearman rho" in out
    code, _, err = cli("benchmark", "table", "--compare", root / "results" / "organism_localization")
    assert code == 2


def test_a_run_of_ours_in_the_papers_layout():
    import json

    from tada_core.evaluation.published import run_markdown

    root = Path(__file__).resolve().parents[1] / "results" / "organism_benchmark_no_renorm"
    tables = parse_table3_markdown(run_markdown(root))
    runs = json.loads((root / "table.json").read_text())
    assert list(tables)[1:] == [r["concept"] for r in runs]
    sae = [m["nauc"] for r in runs for m in r["methods"] if m["key"] == "sae" and m["available"]]
    assert tables["Averaged over the six concepts (nAUC)"]["SAE (loc.)"][0] == f"{np.mean(sae):.3f}"
    tempo_caa = next(m for m in runs[0]["methods"] if m["key"] == "caa")
    assert tables["tempo"]["CAA (loc.)"][0] == f"{tempo_caa['auc']['avg']:.3f}"
    from tada_core.evaluation.published import CELLS

    paper = list(CELLS.values())
    assert list(tables["tempo"])[0] == "PCI"
    assert list(tables["tempo"]) == sorted(tables["tempo"], key=paper.index)            # the paper's order
    assert "Random" not in " ".join(tables["tempo"]) and "random" not in " ".join(tables["tempo"])   # controls are ours


def test_published_measurements_as_benchmark_results(published):
    """The same result objects (and so the same tables and plots) as a run of ours, with Table 3's numbers."""
    from tada_core.evaluation.benchmark.runner import BenchmarkResult
    from tada_core.evaluation.published import benchmark_results

    results = benchmark_results(published, "clap", concepts=["violin"])
    table = table3(published, concepts=["violin"])
    by_key = {m.key: m for m in results[0].methods}
    for row in table.rows["violin"]:
        m = by_key[row.cell]
        assert m.auc["avg"] == pytest.approx(row.auc["clap"], abs=1e-12)
        assert (m.smoothness["pos"] + m.smoothness["neg"]) / 2 == pytest.approx(row.smoothness["clap"], nan_ok=True)
        assert m.quality == pytest.approx(row.quality)
    assert BenchmarkResult.from_dict(results[0].to_dict()) == results[0]
    with pytest.raises(TadaError, match="alignment must be one of"):
        benchmark_results(published, "lpaps")
