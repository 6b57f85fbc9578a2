"""Interference of composed vectors: the orthogonalization (exact properties), the statistics on known
interactions and cross-talk, the quality floor, the committed results and docs, and a small real run."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tada_core.artifacts.compose import compose, orthogonalized
from tada_core.errors import TadaError
from tada_core.evaluation import interference as itf

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "interference"


# ---------------------------------------------------------------------------- orthogonalization
def test_orthogonalized_vectors_are_orthogonal_keep_their_norms_and_leave_lone_layers_alone():
    g = torch.Generator().manual_seed(0)
    a = {3: torch.randn(16, generator=g), 5: torch.randn(16, generator=g)}
    b = {3: 0.6 * a[3] + torch.randn(16, generator=g), 4: torch.randn(16, generator=g)}
    c = {3: torch.randn(16, generator=g) * 4}
    oa, ob, oc = orthogonalized([a, b, c])
    for x, y in ((oa, ob), (oa, oc), (ob, oc)):
        assert abs(float(x[3] @ y[3])) < 1e-4 * float(x[3].norm() * y[3].norm())
    for orig, new in ((a, oa), (b, ob), (c, oc)):
        assert torch.allclose(new[3].norm(), orig[3].norm(), rtol=1e-5)
    assert torch.equal(oa[5], a[5]) and torch.equal(ob[4], b[4])      # one vector there: untouched
    # symmetric: each moves as little as the others (Gram-Schmidt would keep the first exactly)
    assert not torch.equal(oa[3], a[3]) and not torch.equal(ob[3], b[3])


def test_orthogonalization_does_not_depend_on_the_order_bit_for_bit():
    g = torch.Generator().manual_seed(1)
    terms = [{2: torch.randn(8, generator=g)} for _ in range(3)]
    ref = orthogonalized(terms)
    for perm in ([2, 0, 1], [1, 2, 0], [2, 1, 0]):
        out = orthogonalized([terms[k] for k in perm])
        for j, k in enumerate(perm):
            assert torch.equal(out[j][2], ref[k][2])


def test_orthogonalization_per_step_and_refusals():
    g = torch.Generator().manual_seed(2)
    per_step = {1: torch.randn(4, 8, generator=g)}
    flat = {1: torch.randn(8, generator=g)}
    o_step, o_flat = orthogonalized([per_step, flat])
    assert o_flat[1].shape == (4, 8)             # a [width] vector meets per-step ones per step
    assert torch.allclose((o_step[1] * o_flat[1]).sum(-1), torch.zeros(4), atol=1e-5)
    with pytest.raises(TadaError, match="nearly parallel"):
        orthogonalized([{0: torch.ones(8)}, {0: -2 * torch.ones(8)}])
    with pytest.raises(TadaError, match="different numbers of steps"):
        orthogonalized([{0: torch.randn(3, 8)}, {0: torch.randn(4, 8)}])


@pytest.fixture(scope="module")
def organism():
    from tada_core.registry import load_model

    m = load_model("tada-organism")
    m.set_progress_bar(False)
    return m


def _vector(model, layers, seed):
    from tada_core.artifacts.vectors import SteeringVector

    g = torch.Generator().manual_seed(seed)
    by = {layer.index: layer for layer in model.layers}
    return SteeringVector(vectors={l: torch.randn(by[l].width, generator=g) for l in layers},
                          layer_paths={l: by[l].path for l in layers}, model=model.name, concept=f"c{seed}",
                          method="caa", renorm=False)


def test_compose_orthogonalize_is_exact_where_it_must_change_nothing(organism):
    a, b, c = _vector(organism, [1, 2], 1), _vector(organism, [5], 2), _vector(organism, [2, 5], 3)
    kw = dict(seeds=[0, 1], duration=0.5, steps=3)
    prompts = ["a waltz", "a march"]

    def run(items, **opts):
        with compose(organism, items, **opts):
            return organism.generate(prompts, **kw).audio

    # no shared layer: the same as plain composition
    assert torch.equal(run([(a, 1.0), (b, -1.0)], orthogonalize=True), run([(a, 1.0), (b, -1.0)]))
    # a vector at alpha 0 takes no part: the other alone
    assert torch.equal(run([(a, 0.0), (c, 1.0)], orthogonalize=True), run([(c, 1.0)]))
    # the order does not matter, and a shared layer does change the result
    ac = run([(a, 1.0), (c, [1.0, -1.0])], orthogonalize=True)
    assert torch.equal(ac, run([(c, [1.0, -1.0]), (a, 1.0)], orthogonalize=True))
    assert not torch.equal(ac, run([(a, 1.0), (c, [1.0, -1.0])]))


# ---------------------------------------------------------------------------- statistics on known cases
@pytest.mark.parametrize("cis, verdict", [
    ([(-0.2, 0.2), (-0.1, 0.24)], "additive"), ([(-0.2, 0.25), (0.0, 0.1)], "unclear"),
    ([(0.25, 0.9), (-0.1, 0.1)], "interferes"), ([(-0.9, -0.3), (-0.5, 0.5)], "interferes"),
    ([(-0.3, 0.1)], "unclear")])
def test_band_verdicts(cis, verdict):
    assert itf.band_verdict(cis) == verdict


def test_pair_verdicts():
    assert itf.pair_verdict("additive", "additive", "no leak", "no leak") == "composes cleanly"
    assert itf.pair_verdict("additive", "interferes", "no leak", "no leak") == "interferes"
    assert itf.pair_verdict("additive", "additive", "leaks", "no leak") == "interferes"
    assert itf.pair_verdict("unclear", "additive", "no leak", "no leak") == "unclear"


def _arrays(joint_a=1.0, joint_b=1.0, leak_a_onto_b=0.0, n_p=6, n_s=4, noise=0.02, seed=0):
    """Two vectors "A" (concept x, gap 10) and "B" (concept y, gap 4), each moving its concept by its whole gap
    alone. In the pair, A's effect on x is ``joint_a`` of what it is alone (B's: ``joint_b``); A alone moves y
    by ``leak_a_onto_b`` of y's gap (which the pair keeps, so it is no interaction)."""
    rng = np.random.default_rng(seed)
    base = {c: rng.normal(size=(n_p, 1)) + rng.normal(size=(1, n_s)) for c in "xy"}
    gap = {"x": 10.0, "y": 4.0}

    def clip(dx, dy):
        return {"x": base["x"] + dx * gap["x"] + noise * rng.normal(size=(n_p, n_s)),
                "y": base["y"] + dy * gap["y"] + noise * rng.normal(size=(n_p, n_s))}

    values = {"none": {c: base[c].copy() for c in "xy"}}
    for d in (1, -1):
        values[("A", d)] = clip(d, d * leak_a_onto_b)
        values[("B", d)] = clip(0, d)
    for da in (1, -1):
        for db in (1, -1):
            values[("A", "B", 0, da, db)] = clip(da * joint_a, db * joint_b + da * leak_a_onto_b)
    quality = {k: np.full((n_p, n_s), -1.0) + 0.01 * rng.normal(size=(n_p, n_s)) for k in values}
    quality[("A", "B", 0, 1, 1)] -= 3          # one corner far from normal output
    arrays = {"values": values, "positive": {c: base[c] + gap[c] / 2 for c in "xy"},
              "negative": {c: base[c] - gap[c] / 2 for c in "xy"}, "quality": quality, "floor": -1.5}
    targets = [{"name": "A", "concept": "x", "layers": [3], "alphas": [-1, -0.5, 0, 0.5, 1]},
               {"name": "B", "concept": "y", "layers": [5], "alphas": [-2, -1, 0, 1, 2]}]
    return targets, arrays


def test_an_additive_pair_composes_cleanly_and_a_bad_corner_leaves_the_normal_range():
    targets, arrays = _arrays()
    g = itf.group_statistics("caa", targets, ["x", "y"], arrays, orthogonalize=False, n_boot=200)
    (p,) = g["pairs"]
    assert p["verdict"] == "composes cleanly", p
    for c in p["corners"]:
        assert c["interaction_a"]["value"] == pytest.approx(0.0, abs=0.02)
        assert c["joint_a"]["value"] == pytest.approx(1.0, abs=0.02)
        assert c["alone_b"]["value"] == pytest.approx(1.0, abs=0.02)   # signed toward the direction applied
    assert p["leaves_normal_range"] == [[1, 1]]
    assert g["vectors"][0]["own"]["toward_negative"]["value"] == pytest.approx(1.0, abs=0.02)


def test_a_pair_that_loses_half_of_a_effect_interferes_on_a_only():
    targets, arrays = _arrays(joint_a=0.5)
    (p,) = itf.group_statistics("caa", targets, ["x", "y"], arrays, orthogonalize=False, n_boot=200)["pairs"]
    assert p["on_a"] == "interferes" and p["on_b"] == "additive" and p["verdict"] == "interferes"
    assert p["worst_interaction_a"] == pytest.approx(-0.5, abs=0.03)


def test_cross_talk_is_not_an_interaction_but_fails_clean_composition():
    targets, arrays = _arrays(leak_a_onto_b=0.6)
    (p,) = itf.group_statistics("caa", targets, ["x", "y"], arrays, orthogonalize=False, n_boot=200)["pairs"]
    assert p["on_b"] == "additive"               # the leak is in the sum of single effects
    assert p["a_onto_b"] == "leaks" and p["b_onto_a"] == "no leak" and p["verdict"] == "interferes"


def test_typicality_folds_score_out_of_sample_and_set_the_floor():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(30, 4, 6))
    clips = np.stack([rng.normal(size=(3, 4, 6)), rng.normal(size=(3, 4, 6)) + 8])
    scores, floor = itf.typicality_folds(ref, clips)
    assert scores.shape == (2, 3, 4)
    assert scores[1].max() < floor < scores[0].mean()
    # cross-fitted: clips of seeds 0-1 are scored by the fit on seeds 2-3 and the other way round, so clips that
    # look exactly like their own seeds' reference clips (and unlike the other fold's) are atypical
    ref[:, :2] += 3
    clips = rng.normal(size=(1, 3, 4, 6))
    clips[:, :, :2] += 3
    scores, _ = itf.typicality_folds(ref, clips)
    assert scores[0, :, :2].mean() < -2 and scores[0, :, 2:].mean() < -2


# ---------------------------------------------------------------------------- the CLI and a small real run
def test_interference_refuses_two_vectors_of_one_concept(cli, tmp_path):
    code, _, err = cli("interference", "--vectors", ROOT / "vectors", "--method", "caa", "--seeds", "1", "2",
                       "--out", tmp_path / "x")
    assert code == 2 and "tada-organism-tempo-caa-all-layers" in err and "--exclude" in err
    code, _, err = cli("interference", "--vectors", ROOT / "vectors", "--exclude", "no-such", "--out", tmp_path / "y")
    assert code == 2 and "no-such" in err


def test_interference_runs_on_the_organism_and_resumes_without_generating(cli, tmp_path, monkeypatch):
    out = tmp_path / "itf"
    skip = ["tada-organism-tempo-caa-all-layers", "tada-organism-drums-caa", "tada-organism-piano-caa",
            "tada-organism-mood-caa"]
    args = ["interference", "--vectors", ROOT / "vectors", "--method", "caa", "--exclude", *skip,
            "--seeds", "900001", "900002", "--prompts", "1", "--out", out]
    code, stdout, err = cli(*args)
    assert code == 0, err
    result = json.loads((out / itf.RESULT_FILE).read_text())
    (g,) = result["groups"]
    (p,) = g["pairs"]                          # brightness [5] and tempo [3] share no layer: no orthogonalized run
    assert {p["a"], p["b"]} == {"tada-organism-brightness-caa", "tada-organism-tempo-caa"}
    assert not p["orthogonalized"] and len(p["corners"]) == 4
    assert np.isfinite(p["worst_interaction_a"]) and np.isfinite(g["quality"]["floor"])
    assert (out / "interaction-caa.png").is_file() and (out / "crosstalk.png").is_file()
    assert "brightness-caa" in stdout
    from tada_core.adapters.base import ModelAdapter

    def refuse(*a, **k):
        raise AssertionError("a resumed interference run generated audio")
    monkeypatch.setattr(ModelAdapter, "generate", refuse)
    code, _, err = cli(*args)
    assert code == 0, err
    assert json.loads((out / itf.RESULT_FILE).read_text())["groups"] == result["groups"]
    # an interrupted run's report (--partial): the pair's second seed missing, so the pair is listed as unfinished
    journal = out / "journal.jsonl"
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(l for l in lines if not (json.loads(l)["unit"][0] == "pair"
                                                             and json.loads(l)["unit"][-1] == 900002)) + "\n")
    code, _, err = cli(*args[:-2], "--partial", "--out", out)
    assert code == 0, err
    partial = json.loads((out / itf.RESULT_FILE).read_text())
    assert partial["groups"][0]["pairs"] == [] and partial["unfinished_pairs"] == [[p["a"], p["b"]]]
    assert "Unfinished run" in (out / "interference.md").read_text()
    code, _, err = cli(*args[:-2], "--partial", "--out", tmp_path / "nothing")
    assert code == 2 and "holds no interference run" in err


def test_the_shared_cosine_picks_which_pairs_are_measured_orthogonalized(organism):
    from tada_core.evaluation.verification import Target

    a, b = _vector(organism, [1, 2], 1), _vector(organism, [2, 5], 3)
    b.vectors[2] = -0.9 * a.vectors[2] + 0.1 * b.vectors[2]          # nearly opposite on the shared layer 2

    def target(v, layers):
        return Target(v.concept, "x", organism.name, v.concept, "caa", tuple(layers), (-1, 0, 1), "0" * 64)

    ta, tb = target(a, [1, 2]), target(b, [2, 5])
    cos = torch.nn.functional.cosine_similarity(a.vectors[2], b.vectors[2], dim=0)
    assert itf.shared_cosine(a, b, ta, tb) == pytest.approx(abs(float(cos)), abs=1e-6) and abs(float(cos)) > 0.9
    assert itf.shared_cosine(a, b, ta, target(b, [5])) == 0.0        # no shared layer


# ---------------------------------------------------------------------------- the committed results and the docs
DOCS = [ROOT / "docs" / "results.md", ROOT / "docs" / "composition.md"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_docs_state_exactly_the_committed_interference_results(doc):
    result = json.loads((RESULTS / itf.RESULT_FILE).read_text())
    assert itf.sync_docs(doc, result, "results/interference/interference.json", write=False), \
        f"{doc.name} differs from results/interference: run `tada interference ... --docs {doc.name}`"


def test_a_doc_that_states_another_interference_verdict_fails_the_check(tmp_path):
    result = json.loads((RESULTS / itf.RESULT_FILE).read_text())
    doc = tmp_path / "composition.md"
    doc.write_text((ROOT / "docs" / "composition.md").read_text())
    assert itf.sync_docs(doc, result, "results/interference/interference.json", write=False)
    pair = result["groups"][0]["pairs"][0]
    pair["verdict"] = "composes cleanly" if pair["verdict"] != "composes cleanly" else "interferes"
    assert not itf.sync_docs(doc, result, "results/interference/interference.json", write=False)


def test_the_committed_run_covers_every_shipped_pair_with_its_current_files():
    from tada_core.evaluation.verification import artifact_sha256

    result = json.loads((RESULTS / itf.RESULT_FILE).read_text())
    for g in result["groups"]:
        names = [v["name"] for v in g["vectors"]]
        plain = {(p["a"], p["b"]) for p in g["pairs"] if not p["orthogonalized"]}
        assert len(plain) == len(names) * (len(names) - 1) // 2, g["method"]
        for v in g["vectors"]:
            assert v["sha256"] == artifact_sha256(ROOT / "vectors" / v["name"]), \
                f"{v['name']} changed since the committed interference run: rerun it"
