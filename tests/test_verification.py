"""`tada verify`: verdict rules, statistics on known effects, the panel on ground truth, the docs generated from
the committed results, and a small real run on the organism (resumed without generating)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tada_core.errors import TadaError
from tada_core.evaluation import verification as ver
from tada_core.evaluation.stats import crossed_intervals

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "verification"
DOCS = [ROOT / "README.md", ROOT / "docs" / "results.md", ROOT / "docs" / "verification.md"]


@pytest.mark.parametrize("ci, verdict", [
    ((0.25, 0.9), "steers"), ((0.3, 0.5), "steers"), ((-0.9, -0.25), "reverses"), ((-0.1, 0.2), "no effect"),
    ((0.1, 0.4), "unclear"), ((-0.3, 0.1), "unclear"), ((-0.5, 0.5), "unclear"), ((float("nan"), 0.3), "unclear"),
    ((-0.2, 0.249), "no effect")])
def test_direction_verdicts_need_the_whole_interval_on_one_side_of_the_threshold(ci, verdict):
    assert ver.direction_verdict(ci) == verdict


def test_monotonic_leak_and_summary_verdicts():
    assert ver.monotonic_verdict((0.5, 0.9)) == "monotonic"
    assert ver.monotonic_verdict((0.1, 0.49)) == "not monotonic"
    assert ver.monotonic_verdict((0.3, 0.7)) == "unclear"
    assert ver.leak_verdict([(0.3, 0.6), (-0.1, 0.1)]) == "leaks"
    assert ver.leak_verdict([(-0.1, 0.1), (-0.8, -0.3)]) == "leaks"
    assert ver.leak_verdict([(-0.1, 0.1), (-0.2, 0.2)]) == "clean"
    assert ver.leak_verdict([(-0.1, 0.1), (-0.2, 0.4)]) == "unclear"
    assert ver.summary_verdict("steers", "steers") == "steers both ways"
    assert ver.summary_verdict("steers", "no effect", ("fast", "slow")) == "steers toward fast only"
    assert ver.summary_verdict("unclear", "steers", ("fast", "slow")) == "steers toward slow only"
    assert ver.summary_verdict("reverses", "reverses") == "reversed both ways"
    assert ver.summary_verdict("no effect", "no effect") == "does not steer"
    assert ver.summary_verdict("no effect", "unclear") == "unclear"


def test_spearman_rows():
    x = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    y = np.array([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1], [2, 2, 2, 2, 2], [1, 3, 2, 4, 5]], dtype=float)
    rho = ver.spearman_rows(x, y)
    assert rho[:3].tolist() == [1.0, -1.0, 0.0]
    assert rho[3] == pytest.approx(0.9)


def test_the_crossed_bootstrap_resamples_both_factors():
    rng = np.random.default_rng(0)
    by_col = np.tile(rng.normal(size=8), (10, 1))        # rows identical: only the columns vary
    by_row = by_col.T.copy()                              # columns identical: only the rows vary
    for data in (by_col, by_row):
        lo, hi = crossed_intervals(lambda r, c: np.array([data[np.ix_(r, c)].mean()]), *data.shape)[0]
        assert lo < data.mean() < hi and hi - lo > 0.2


def _fake(n_p=12, n_s=4, own_effect=(0.6, 0.6), leak=0.0, noise=0.05, seed=0):
    """Arrays for two concepts: 'own' (gap 10) moved by ``own_effect`` of its gap at +max / -max, 'other'
    (gap 2) moved by ``leak`` of its gap at +max only."""
    rng = np.random.default_rng(seed)
    alphas = [-1.0, -0.5, 0.0, 0.5, 1.0]
    base = {c: rng.normal(size=(n_p, 1)) * 0.1 + rng.normal(size=(1, n_s)) * 0.1 for c in ("own", "other")}
    neutral = {c: base[c] + noise * rng.normal(size=(n_p, n_s)) for c in base}
    positive = {"own": neutral["own"] + 5, "other": neutral["other"] + 1}
    negative = {"own": neutral["own"] - 5, "other": neutral["other"] - 1}
    shift_own = np.array([-own_effect[1] * 10, -own_effect[1] * 5, 0, own_effect[0] * 5, own_effect[0] * 10])
    shift_other = np.array([0, 0, 0, leak, 2 * leak])
    steered = {"own": neutral["own"][..., None] + shift_own + noise * rng.normal(size=(n_p, n_s, 5)),
               "other": neutral["other"][..., None] + shift_other + noise * rng.normal(size=(n_p, n_s, 5))}
    for c in steered:
        steered[c][..., 2] = neutral[c]
    target = {"name": "x", "model": "m", "concept": "own", "method": "caa", "alphas": alphas}
    return target, neutral, positive, negative, steered


def test_statistics_recover_a_known_effect_and_its_leak():
    target, neutral, pos, neg, steered = _fake(own_effect=(0.6, 0.4), leak=1.0)
    a = ver.artifact_statistics(target, ["own", "other"], neutral, pos, neg, steered, n_boot=300)
    own = a["effect"]["own"]
    assert own["toward_positive"]["value"] == pytest.approx(0.6, abs=0.02)
    assert own["toward_negative"]["value"] == pytest.approx(0.4, abs=0.02)
    assert own["toward_positive"]["ci"][0] < 0.6 < own["toward_positive"]["ci"][1]
    assert a["gap"]["own"]["value"] == pytest.approx(10, abs=0.01) and a["gap"]["own"]["clear"]
    assert a["verdict"] == "steers both ways" and a["rho"]["verdict"] == "monotonic"
    assert a["effect"]["other"]["toward_positive"]["value"] == pytest.approx(1.0, abs=0.05)
    assert a["leakage"] == {"other": "leaks"} and a["leaks_onto"] == ["other"]


def test_statistics_read_a_reversed_and_a_null_artifact():
    target, neutral, pos, neg, steered = _fake(own_effect=(-0.5, -0.5))
    a = ver.artifact_statistics(target, ["own", "other"], neutral, pos, neg, steered, n_boot=300)
    assert a["verdict"] == "reversed both ways" and a["rho"]["value"] < -0.9
    assert a["leakage"] == {"other": "clean"}
    target, neutral, pos, neg, steered = _fake(own_effect=(0.0, 0.0))
    a = ver.artifact_statistics(target, ["own", "other"], neutral, pos, neg, steered, n_boot=300)
    assert a["verdict"] == "does not steer"


def test_a_concept_whose_prompts_do_not_differ_has_no_gap():
    target, neutral, pos, neg, steered = _fake()
    neg["own"] = pos["own"] + np.random.default_rng(1).normal(size=pos["own"].shape)
    a = ver.artifact_statistics(target, ["own", "other"], neutral, pos, neg, steered, n_boot=300)
    assert a["verdict"] == "no gap" and not a["gap"]["own"]["clear"]


# ---------------------------------------------------------------------------- the committed results and the docs
@pytest.fixture(scope="module")
def committed():
    return ver.read_results(RESULTS)


def test_every_shipped_vector_is_verified_as_it_is_now(committed):
    from tada_core.artifacts.hub import read_index

    shipped = [r["name"] for r in read_index(ROOT / "vectors") if r["kind"] == "steering-vector"]
    assert shipped
    for name in shipped:
        a = ver.find(committed, name, ver.artifact_sha256(ROOT / "vectors" / name))
        assert a is not None, f"{name} is shipped but not verified as it is now: rerun `tada verify`"
        assert set(a["effect"]) >= {"tempo", "mood", "brightness", "drums", "vocal_gender", "piano"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_docs_state_exactly_the_verdicts_of_the_committed_results(doc, committed):
    """Every generated verdict block equals what the results file says now (`tada verify --docs` rewrites them)."""
    from tada_core.registry import get_entry

    sets = {m: get_entry(m).concepts for m in {a["model"] for a in committed["artifacts"]}}
    assert ver.sync_docs(doc, committed, "results/verification/verification.json", sets, write=False), \
        f"{doc.name}'s verdicts differ from results/verification: run `tada verify --out results/verification --docs ...`"


def test_every_shipped_card_states_its_verified_effect(committed):
    from tada_core.artifacts.hub import read_index

    for r in read_index(ROOT / "vectors"):
        if r["kind"] == "steering-vector":
            folder = ROOT / "vectors" / r["name"]
            assert ver.sync_card(folder, committed, write=False), \
                f"{r['name']}'s card is not current: run `tada verify --out results/verification --cards`"
            assert "verified on fresh seeds" in (folder / "README.md").read_text()


def test_a_doc_that_states_another_verdict_fails_the_check(tmp_path, committed):
    doc = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text()
    a = committed["artifacts"][0]
    assert f"**{a['verdict']}**" in text
    doc.write_text(text.replace(f"**{a['verdict']}**", "**steers both ways, perfectly**", 1))
    assert not ver.sync_docs(doc, committed, "results/verification/verification.json", write=False)
    with pytest.raises(TadaError, match="no `<!-- tada verify"):
        (tmp_path / "plain.md").write_text("no block here")
        ver.sync_docs(tmp_path / "plain.md", committed, "x")


def test_vector_info_shows_the_verified_effect_and_refuses_a_changed_artifact(cli, tmp_path, committed):
    name = committed["artifacts"][0]["name"]
    code, out, _ = cli("vector", "info", name, "--vectors", ROOT / "vectors", "--verification", RESULTS)
    assert code == 0 and "verified on fresh seeds" in out and committed["artifacts"][0]["verdict"] in out
    copy = tmp_path / name
    shutil.copytree(ROOT / "vectors" / name, copy)
    cfg = json.loads((copy / "config.json").read_text())
    cfg["alpha_range"] = [x * 2 for x in cfg["alpha_range"]]
    (copy / "config.json").write_text(json.dumps(cfg))
    code, out, _ = cli("vector", "info", copy, "--verification", RESULTS)
    assert code == 0 and "not verified: it changed since" in out


def test_verify_refuses_unknown_artifacts_and_models_without_a_panel(cli, tmp_path):
    code, _, err = cli("verify", "no-such-vector", "--vectors", ROOT / "vectors", "--out", tmp_path / "v")
    assert code == 2 and "unknown artifact 'no-such-vector'" in err
    code, _, err = cli("verify", "--seeds", "3", "3", "--out", tmp_path / "v")
    assert code == 2 and "at least two distinct seeds" in err


# ---------------------------------------------------------------------------- the panel and a real run
def test_the_octave_rule():
    from tada_core.organism.panel import fold_tempo

    assert fold_tempo(np.array([0.0, 40.0, 70.0, 150.0, 179.0, 180.0, 300.0, 400.0])).tolist() == \
        [0.0, 80.0, 70.0, 150.0, 179.0, 90.0, 150.0, 100.0]


@pytest.fixture(scope="module")
def panel():
    from tada_core.organism.panel import build

    return build(clips=120)


def test_the_panel_reads_the_synthesizers_ground_truth(panel):
    from tada_core.organism.panel import panel_check

    check = panel_check(panel, clips=24, seed=77)
    for concept in ("tempo", "brightness", "drums", "vocal_gender", "piano"):
        assert check[concept]["separation"] >= 0.9, (concept, check[concept])
    assert check["mood"]["separation"] >= 0.8 and check["instrument"]["accuracy"] >= 0.8
    assert check["tempo"]["within_8_percent"] >= 0.9


def test_verify_runs_on_the_organism_and_resumes_without_generating(cli, tmp_path, monkeypatch):
    out = tmp_path / "v"
    args = ["verify", "tada-organism-brightness-caa", "--vectors", ROOT / "vectors", "--seeds", "900001", "900002",
            "--prompts", "2", "--no-check", "--out", out]
    code, stdout, err = cli(*args)
    assert code == 0, err
    result = ver.read_results(out)
    (a,) = result["artifacts"]
    assert a["name"] == "tada-organism-brightness-caa" and a["clips"] == 2 * 2 * 5 and result["seeds"] == [900001, 900002]
    assert np.isfinite(a["effect"]["brightness"]["toward_positive"]["value"])
    assert a["gap"]["brightness"]["value"] > 0        # "a bright waltz" is brighter than "a dark waltz"
    assert (out / "verification.md").is_file() and (out / "effects.png").is_file()
    assert "tada-organism-brightness-caa" in stdout
    from tada_core.adapters.base import ModelAdapter

    def refuse(*a, **k):
        raise AssertionError("a resumed verification generated audio")
    monkeypatch.setattr(ModelAdapter, "generate", refuse)
    code, _, err = cli(*args[:-2], "--out", out)
    assert code == 0, err
    assert ver.read_results(out)["artifacts"][0] == a


def test_prompt_adherence_counts_paired_wins_and_confusions():
    rng = np.random.default_rng(0)
    pos = rng.normal(size=(6, 3)) + 1.0
    neg = pos - np.where(np.arange(18).reshape(6, 3) < 15, 1.0, -1.0)    # 15 of 18 pairs in the gap's direction
    arrays = {"concepts": ["c"], "positive": {"c": pos}, "negative": {"c": neg}}
    spec = {"class_prompts": {"m": {"a": ["x", "y"], "b": ["z", "w"]}}}
    done = {("classes", "m", 1): {"labels": ["a", "a", "a", "b"]}, ("classes", "m", 2): {"labels": ["a", "b", "b", "b"]}}
    out = ver.prompt_adherence(arrays, spec, done, "m", [1, 2], n_boot=200)
    assert out["c"]["accuracy"] == pytest.approx(15 / 18) and out["c"]["ci"][0] < 15 / 18 < out["c"]["ci"][1]
    assert out["classes"]["accuracy"] == pytest.approx(6 / 8)
    assert out["classes"]["confusion"] == {"a": {"a": 3, "b": 1}, "b": {"a": 1, "b": 3}}
    assert out["classes"]["per_class"] == {"a": 0.75, "b": 0.75}


def test_compare_runs_flags_a_contradicted_verdict():
    import copy

    target, neutral, pos, neg, steered = _fake(own_effect=(0.6, 0.6))
    a = ver.artifact_statistics(target | {"sha256": "s"}, ["own", "other"], neutral, pos, neg, steered, n_boot=200)
    old = {"artifacts": [a]}
    table, ok = ver.compare_runs({"artifacts": [copy.deepcopy(a)]}, old)
    assert ok and table.count("| yes |") == 2
    flipped = copy.deepcopy(a)
    flipped["effect"]["own"]["toward_negative"].update(value=-0.6, ci=[-0.7, -0.5], verdict="reverses")
    table, ok = ver.compare_runs({"artifacts": [flipped]}, old)
    assert not ok and "| **no** |" in table
