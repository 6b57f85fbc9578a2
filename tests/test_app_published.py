"""The app's "Published results" tab: the reference's real-model measurements, offline, through the handlers."""

from pathlib import Path

import pytest

from tada_app.config import AppConfig
from tada_app.handlers import Handlers
from tada_core import TadaError
from tada_core.evaluation.published import parse_table3_markdown

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def h():
    return Handlers(AppConfig.from_env({}))


def test_table_rows_are_the_published_cells(h):
    published = parse_table3_markdown((DATA / "steer_audio_tables_lpaps.md").read_text(encoding="utf-8"))
    for concept, section in (("average", "Averaged over the nine concepts"), ("vocal_gender", "vocal_gender")):
        rows = h.published_table(concept, "lpaps")
        assert [r[0] for r in rows] == list(published[section])
        for row in rows:
            shown = ["-" if v is None else f"{v:.3f}" for v in row[1:]]
            assert shown == published[section][row[0]], (concept, row[0])
    assert all(r[5] is None for r in h.published_table("piano", "rhythm"))     # no quality on a MIR axis


def test_curves_stop_at_p_max_and_start_at_zero(h):
    data = h._published()
    rows = h.published_curves("tempo", "lpaps", "clap", "-")
    p_max = data.p_max("tempo", "lpaps", -1)
    by_method = {}
    for method, d, a in rows:
        by_method.setdefault(method, []).append((d, a))
    assert len(by_method) == 15
    for points in by_method.values():
        assert points[0] == (0.0, 0.0) and max(d for d, _ in points) <= p_max + 1e-4   # rounded to 4 places


def test_impact_heatmaps_of_the_three_models(h):
    ace, audioldm2 = h.published_impact("ace"), h.published_impact("audioldm2")
    assert audioldm2.size[0] > ace.size[0]          # 64 layers against 24
    assert "steer-audio" in h.published_source()


@pytest.mark.parametrize("call, message", [
    (lambda h: h.published_table("../../etc/passwd"), "concept must be one of average, piano"),
    (lambda h: h.published_table("piano", "lpips"), "axis must be one of lpaps, harmony"),
    (lambda h: h.published_curves("piano", "lpaps", "clap", "up"), "direction must be one of"),
    (lambda h: h.published_impact("musicgen"), "model must be one of ace"),
])
def test_bad_input_is_refused_naming_what_is_accepted(h, call, message):
    with pytest.raises(TadaError, match=message):
        call(h)


def test_the_tab_is_on_the_page(h):
    from tada_app.ui import build_app

    app = build_app(handlers=h)
    labels = [c.get("props", {}).get("label") for c in app.config["components"]]
    assert "Published results" in labels
