"""The app's Mix tab (several steering vectors in one generation, tada_core.compose) at the handler level, on the
shipped organism with short clips; and its page wiring without a browser."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.test_app import client  # noqa: F401 - the launched public app, shared with the Steer tests

from tada_core import TadaError
from tada_app import AppConfig, Handlers
from tada_app.config import ROOT
from tada_app.handlers import EFFECTS_LABEL, INTERFERENCE_LABEL, MIX_ROWS, alpha_limit
from tada_app.sources import scrub

ORG = "tada-organism"
TEMPO, DRUMS = "tada-organism-tempo-caa", "tada-organism-drums-caa"
TEMPO_LAYER = 3       # tempo's functional layer (results/organism_localization)
PROMPT = "a waltz with piano"
FAST = (0, 1.0, 6)    # seed, duration, steps: short clips keep the suite fast


@pytest.fixture(scope="module")
def h():
    return Handlers(AppConfig.from_env({"TADA_TEST_FIXTURES": "1"}))


def mix(h, names, alphas, renorm=None, prompt=PROMPT):
    return h.mix(ORG, prompt, *FAST, list(names), list(alphas), renorm)


def test_the_rows_are_the_models_shipped_vectors_with_their_limits(h):
    c = h.mix_choices(ORG)
    assert c["names"] == h.vector_choices(ORG, "any")[:MIX_ROWS] and TEMPO in c["names"] and DRUMS in c["names"]
    labels = dict(zip(c["names"], c["labels"]))
    assert labels[DRUMS] == "drums (CAA)" and labels["tada-organism-tempo-sae"] == "tempo (SAE)"
    # two tempo CAA vectors: their shared label says which is which
    assert labels[TEMPO] == f"tempo (CAA): {TEMPO}"
    assert c["limits"][c["names"].index(TEMPO)] == alpha_limit(h.vector(TEMPO)) == 2.0
    assert c["renorm"] is False         # every shipped organism vector was validated without ReNorm
    assert h.mix_choices("tiny-ace-step") == {"names": [], "labels": [], "limits": [], "renorm": False}
    assert set(h.mix_choices("musicgen-organism")["names"]) <= set(h.vector_choices("musicgen-organism"))


def test_original_is_unsteered_and_one_slider_is_the_steer_tab(h):
    """One non-zero slider: exactly the Steer tab's output for that vector at that alpha (the same batched call:
    compose with one vector is vector.apply); its original is the unsteered clip of the same seed."""
    (sr, orig), (_, mixed), spec0, spec1, caption, table = mix(h, [TEMPO, DRUMS], [1.0, 0.0])
    (_, s_orig), (_, s_steered), t0, t1, _ = h.steer(ORG, PROMPT, *FAST, TEMPO, "", [TEMPO_LAYER], 1.0)
    assert np.array_equal(orig, s_orig) and np.array_equal(mixed, s_steered)
    assert spec0.tobytes() == t0.tobytes() and spec1.tobytes() == t1.tobytes()
    assert np.abs(orig.astype(int) - mixed).max() > 30
    assert caption.startswith(f"mix of tempo (CAA) alpha 1 on layers [{TEMPO_LAYER}];") and "drums" not in caption
    assert "without ReNorm, once after the sum (as the chosen vectors were validated)" in caption
    # the original is the unsteered clip: alpha 0 in the Steer tab, up to the one level its batch shares
    (_, a0), *_ = h.steer(ORG, PROMPT, *FAST, TEMPO, "", [TEMPO_LAYER], 0.0)
    scale = np.abs(orig).max() / max(np.abs(a0).max(), 1)
    assert np.abs(orig - a0 * scale).max() <= 3
    assert len(table) == 9 and all(len(row) == 3 for row in table)
    assert table[0][0] == "tempo: tempo (BPM, librosa beat tracker)"


def test_two_sliders_mix_both_and_the_order_changes_nothing(h):
    (_, orig), (_, both), *_, caption, table = mix(h, [TEMPO, DRUMS], [1.0, -1.0])
    tempo_only = mix(h, [TEMPO, DRUMS], [1.0, 0.0])[1][1]
    drums_only = mix(h, [DRUMS], [-1.0])[1][1]
    for alone in (tempo_only, drums_only):
        assert np.abs(both.astype(int) - alone).max() > 30
    assert "tempo (CAA) alpha 1 on layers [3] + drums (CAA) alpha -1 on layers [0, 1, 2" in caption
    (_, orig2), (_, both2), *_ = mix(h, [DRUMS, TEMPO], [-1.0, 1.0])        # the sum is formed in a fixed order
    assert np.array_equal(both, both2) and np.array_equal(orig, orig2)
    assert [row[0] for row in table] == [row[0] for row in mix(h, [DRUMS], [-1.0])[5]]


@pytest.mark.parametrize("names, alphas, renorm, message", [
    ([TEMPO, DRUMS], [0.0, 0.0], None, "set at least one slider away from 0"),
    ([], [], None, "set at least one slider away from 0"),
    ([TEMPO], [2.5], None, r"alpha of tada-organism-tempo-caa must be a number in \[-2, 2\]; got 2.5"),
    ([TEMPO], [float("nan")], None, r"alpha of tada-organism-tempo-caa must be a number in \[-2, 2\]; got nan"),
    ([TEMPO], [10 ** 400], None, "alpha of tada-organism-tempo-caa must be a number"),
    ([TEMPO], ["1"], None, "alpha of tada-organism-tempo-caa must be a number .*got str"),
    ([TEMPO, DRUMS], [1.0], None, "alphas must be a list of 2 numbers, one per entry of names"),
    ([TEMPO], 1.0, None, "alphas must be a list of 1 numbers"),
    (["no-such-vector"], [1.0], None, "names entry must be one of tada-organism-brightness-caa"),
    (["musicgen-organism-tempo-diffmean"], [0.1], None,
     "musicgen-organism-tempo-diffmean is a vector of musicgen-organism, not of tada-organism"),
    (["vectors/" + TEMPO], [1.0], None, "names entry must be one of"),
    (["/etc/passwd"], [1.0], None, "names entry must be one of"),
    (["someone/a-vector"], [1.0], None, "names entry must be one of"),
    ([TEMPO, TEMPO], [1.0, 1.0], None, "names lists 'tada-organism-tempo-caa' twice"),
    (TEMPO, [1.0], None, "names must be a list of names"),
    ([TEMPO] * (MIX_ROWS + 1), [1.0] * (MIX_ROWS + 1), None, f"names must list at most {MIX_ROWS} names"),
    ([TEMPO], [1.0], "yes", "renorm must be true, false or null"),
])
def test_bad_mix_input_is_one_line(h, names, alphas, renorm, message):
    with pytest.raises(TadaError, match=message) as e:
        h.mix(ORG, PROMPT, *FAST, names, alphas, renorm)
    shown = scrub(str(e.value))
    assert "\n" not in shown and str(ROOT) not in shown and "/etc" not in shown.split("got")[0]


def test_a_model_without_vectors_and_bad_settings_are_refused(h):
    with pytest.raises(TadaError, match="tiny-ace-step has no shipped steering vectors to mix"):
        h.mix("tiny-ace-step", PROMPT, *FAST, [], [], None)
    with pytest.raises(TadaError, match=r"duration \(seconds\) must be a number"):
        h.mix(ORG, PROMPT, 0, 0.05, 6, [TEMPO], [1.0], None)
    with pytest.raises(TadaError, match="model must be one of"):
        h.mix("/etc", PROMPT, *FAST, [TEMPO], [1.0], None)


def _vectors_root(tmp_path, folders: dict) -> Handlers:
    """A vectors/ root with copies of shipped vectors under new names, each with config changes; its index lists
    them all for the organism."""
    root = tmp_path / "vectors"
    index = []
    for name, (source, changes) in folders.items():
        shutil.copytree(ROOT / "vectors" / source, root / name)
        config = json.loads((root / name / "config.json").read_text())
        config.update(changes)
        (root / name / "config.json").write_text(json.dumps(config))
        index.append({"name": name, "kind": "steering-vector", "model": ORG})
    (root / "index.json").write_text(json.dumps(index))
    return root


def test_renorm_the_vectors_disagree_on_is_chosen_by_the_box(h, tmp_path):
    root = _vectors_root(tmp_path, {"tempo": (TEMPO, {}), "drums-renorm": (DRUMS, {"renorm": True}),
                                    "other-model": ("musicgen-organism-tempo-diffmean", {})})
    mine = Handlers(dataclasses.replace(h.config, vectors=root), h.cache)
    assert mine.mix_choices(ORG)["renorm"] is False        # on only if every vector was validated with it
    with pytest.raises(TadaError, match="validated with different ReNorm settings .*choose: the ReNorm box, on or "
                                        "off") as e:
        mine.mix(ORG, PROMPT, *FAST, ["tempo", "drums-renorm"], [1.0, -1.0], None)
    assert "\n" not in str(e.value)
    *_, caption, _ = mine.mix(ORG, PROMPT, *FAST, ["tempo", "drums-renorm"], [1.0, -1.0], False)
    assert "without ReNorm, once after the sum (chosen; the chosen vectors were validated with different settings)" \
        in caption
    # a folder that the index lists for the organism but that was made for another model: compose refuses it
    with pytest.raises(TadaError, match="made for model 'musicgen-organism'") as e:
        mine.mix(ORG, PROMPT, *FAST, ["tempo", "other-model"], [1.0, 0.1], False)
    assert "\n" not in str(e.value) and str(tmp_path) not in scrub(str(e.value))


def test_the_heatmap_is_built_from_verify_results_and_absent_without(h, tmp_path):
    from tada_core.evaluation.verification import artifact_sha256

    nothing = Handlers(dataclasses.replace(h.config, results=tmp_path / "none"), h.cache)
    assert nothing.mix_effect_rows(ORG) is None
    image, note = nothing.mix_effects(ORG)
    assert image is None and note.startswith("No `tada verify` results")

    def effect(pos, neg):
        return {"toward_positive": {"value": pos}, "toward_negative": {"value": neg}}

    artifacts = [
        {"name": TEMPO, "sha256": artifact_sha256(ROOT / "vectors" / TEMPO),
         "effect": {"tempo": effect(0.9, 0.8), "drums": effect(-0.1, 0.05)}},
        {"name": DRUMS, "sha256": "0" * 64, "effect": {"tempo": effect(0.0, 0.0), "drums": effect(1.0, 1.0)}},
        {"name": "musicgen-organism-tempo-diffmean", "sha256": "1" * 64, "effect": {"tempo": effect(0.5, 0.5)}},
    ]
    (tmp_path / "verification").mkdir()
    (tmp_path / "verification" / "verification.json").write_text(json.dumps(
        {"kind": "tada-verification", "seeds": [7, 8], "artifacts": artifacts}))
    found = Handlers(dataclasses.replace(h.config, results=tmp_path), h.cache)
    data = found.mix_effect_rows(ORG)
    label = f"tempo (CAA): {TEMPO}"
    assert data["rows"] == [f"{label} +max", f"{label} -max"] and data["concepts"] == ["tempo", "drums"]
    assert data["values"] == [[0.9, -0.1], [0.8, 0.05]] and data["seeds"] == [7, 8]
    assert data["changed"] == [DRUMS] and TEMPO not in data["not_verified"]    # its files differ from the verified
    assert len(data["not_verified"]) == len(found.mix_choices(ORG)["names"]) - 2
    image, note = found.mix_effects(ORG)
    assert image.size[0] > 200 and note.startswith(EFFECTS_LABEL)
    assert f"changed since verified (not shown): {DRUMS}" in note and str(ROOT) not in note
    # a model none of whose vectors was verified: no picture, a note that says so
    image, note = found.mix_effects("musicgen-organism")
    assert image is None and note.startswith("No vector of musicgen-organism is among the verified artifacts")


def test_the_interference_heatmap_shows_measured_pairs_of_current_vectors_only(h, tmp_path):
    from tada_core.evaluation.verification import artifact_sha256

    nothing = Handlers(dataclasses.replace(h.config, results=tmp_path / "none"), h.cache)
    image, note = nothing.mix_interference(ORG)
    assert image is None and note.startswith("No `tada interference` results for tada-organism")
    bright = "tada-organism-brightness-caa"
    vectors = [{"name": TEMPO, "concept": "tempo", "sha256": artifact_sha256(ROOT / "vectors" / TEMPO)},
               {"name": bright, "concept": "brightness", "sha256": artifact_sha256(ROOT / "vectors" / bright)},
               {"name": DRUMS, "concept": "drums", "sha256": "0" * 64}]          # changed since: left out

    def pair(a, b, on_a, on_b):
        return {"a": a, "b": b, "orthogonalized": False, "worst_interaction_a": on_a, "worst_interaction_b": on_b}

    result = {"kind": "tada-interference", "model": ORG, "seeds": [5, 6],
              "groups": [{"method": "caa", "vectors": vectors,
                          "pairs": [pair(TEMPO, bright, -0.4, 0.1), pair(TEMPO, DRUMS, 0.9, 0.9),
                                    pair(bright, DRUMS, 0.9, 0.9)]}]}
    (tmp_path / "interference").mkdir()
    (tmp_path / "interference" / "interference.json").write_text(json.dumps(result))
    found = Handlers(dataclasses.replace(h.config, results=tmp_path), h.cache)
    from tada_core.evaluation.interference import interaction_rows

    names = set(found.mix_choices(ORG)["names"])
    data = interaction_rows(result, lambda v: v["name"] in names and v["sha256"] != "0" * 64)
    assert data["rows"] == ["tempo CAA", "brightness CAA"] and data["concepts"] == ["tempo", "brightness", "drums"]
    assert np.allclose(data["values"], [[np.nan, -0.4, np.nan], [0.1, np.nan, np.nan]], equal_nan=True)
    image, note = found.mix_interference(ORG)
    assert image.size[0] > 200 and note.startswith(INTERFERENCE_LABEL) and str(ROOT) not in note
    image, note = found.mix_interference("musicgen-organism")
    assert image is None and "musicgen-organism" in note


def test_mix_through_the_api(client):
    """/mix from a fresh session: named downloads, the caption and the measure table; bad input is one message
    without a server path; scripts/app_fuzz.py's quick set finds nothing on it."""
    import importlib.util

    c, _ = client
    orig, mixed, _, _, caption, table = c.predict(ORG, PROMPT, 0, 1.0, 4, [TEMPO, DRUMS], [1.0, -1.0], None,
                                                  api_name="/mix")
    assert Path(orig).name == "tada-organism_a-waltz-with-piano_original.wav"
    assert Path(mixed).name == "tada-organism_a-waltz-with-piano_mix_tempo-caa-p1-0_drums-caa-m1-0.wav"
    assert caption.startswith("mix of tempo (CAA) alpha 1") and len(table["data"]) == 9
    for names, alphas, message in [([TEMPO], [0.0], "set at least one slider away from 0"),
                                   (["/etc/passwd"], [1.0], "names entry must be one of")]:
        with pytest.raises(Exception, match=message) as e:
            c.predict(ORG, PROMPT, 0, 1.0, 4, names, alphas, None, api_name="/mix")
        assert str(ROOT) not in str(e.value) and "internal error" not in str(e.value)
    spec = importlib.util.spec_from_file_location("app_fuzz", ROOT / "scripts" / "app_fuzz.py")
    fuzz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz)
    counts = fuzz.run(c.src, quick=True, timeout=60, endpoints=["/mix"], log=print)
    assert counts["failures"] == 0, counts["failure_list"][:10]
    assert counts["requests"] == 16 * 8 and counts["refused"] > 90
