"""Composed steering (several vectors in one generation) and concept arithmetic (``combine``): the exact
properties bit for bit (order, strength 0, one item = ``apply``), a batched grid of strengths, the combined vector
against the composition it records, the refusals, and the CLI (``tada generate --steer A --alpha a --steer B ...``,
``tada vector combine``)."""

import dataclasses
import itertools
import json
import re
from pathlib import Path

import pytest
import torch

from tada_core import SteeringVector, TadaError, combine, compose, load_vector, steer_sum
from tada_core.artifacts.compose import combined_alpha_range
from tada_core.evaluation.verification import artifact_sha256

from .conftest import all_hooks

ROOT = Path(__file__).resolve().parents[1]
M = "tada-organism"
PROMPT = "a waltz with piano"
TEMPO, DRUMS = ROOT / "vectors/tada-organism-tempo-caa", ROOT / "vectors/tada-organism-drums-caa"
BRIGHT_SAE = ROOT / "vectors/tada-organism-brightness-sae"


@pytest.fixture(scope="module")
def org(models):
    return models(M)


@pytest.fixture(scope="module")
def tempo():
    return load_vector(TEMPO)      # functional layer 3, validated without ReNorm


@pytest.fixture(scope="module")
def drums():
    return load_vector(DRUMS)      # no functional layers: steers all 10


def gen(model, n=1, seed=3):
    return model.generate([PROMPT] * n, seeds=[seed] * n).audio


def synthetic(model, concept, *, layers=None, steps=None, scale=2.0, seed=0, **kw):
    """A vector made in the test: random directions at ``layers`` (default all) of ``model``."""
    g = torch.Generator().manual_seed(seed)
    layers = range(len(model.layers)) if layers is None else layers
    shape = lambda i: (steps, model.layers[i].width) if steps else (model.layers[i].width,)   # noqa: E731
    return SteeringVector(vectors={i: scale * torch.randn(*shape(i), generator=g) for i in layers}, concept=concept,
                          model=model.name, layer_paths={i: model.layers[i].path for i in layers}, **kw)


# ----- the exact properties ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("renorm", [False, True])
def test_strength_zero_for_one_is_the_other_alone(org, tempo, drums, renorm):
    with drums.apply(org, alpha=-1.0, use_renorm=renorm):
        drums_alone = gen(org)
    with tempo.apply(org, alpha=1.0, use_renorm=renorm):
        tempo_alone = gen(org)
    with compose(org, [(tempo, 0.0), (drums, -1.0)], use_renorm=renorm):
        assert torch.equal(gen(org), drums_alone)
    with compose(org, [(tempo, 1.0), (drums, 0.0)], use_renorm=renorm):
        assert torch.equal(gen(org), tempo_alone)
    with compose(org, [(tempo, 1.0), (drums, -1.0)], use_renorm=renorm):
        both = gen(org)
    # both terms act, so the two equalities above could fail
    assert (both - drums_alone).abs().max() > 1e-3 and (both - tempo_alone).abs().max() > 1e-3


@pytest.mark.parametrize("renorm", [False, True])
def test_composition_order_changes_no_bit(org, tempo, drums, renorm):
    bright = load_vector(BRIGHT_SAE)
    items = [(tempo, [1.0, 0.0, -1.0]), (drums, [-1.0, 0.5, 1.0]), (bright, 0.4)]
    outs = []
    for order in itertools.permutations(items):
        with compose(org, list(order), use_renorm=renorm):
            outs.append(gen(org, 3))
    assert all(torch.equal(outs[0], o) for o in outs[1:])
    # ... also nested in other hooks' company: a steer_sum of the same terms, given in another order, agrees
    terms = [(vec.injected(vec.default_layers()), alpha) for vec, alpha in items]
    with steer_sum(org, terms[::-1], use_renorm=renorm):
        assert torch.equal(gen(org, 3), outs[0])


def test_one_item_is_apply(org, tempo, drums):
    for vec, alpha, layers in [(tempo, [0.0, 1.0], None), (drums, -1.0, [2, 5]), (tempo, 0.7, [3, 4])]:
        with vec.apply(org, alpha=alpha, layers=layers, use_renorm=True):
            alone = gen(org, 2 if isinstance(alpha, list) else 1)
        with compose(org, [(vec, alpha)], layers=layers, use_renorm=True):
            assert torch.equal(gen(org, 2 if isinstance(alpha, list) else 1), alone)


def test_per_item_layers(org, tempo, drums):
    """``layers`` per item: None keeps that vector's default; the result is each vector at its own layers."""
    with compose(org, [(tempo, 1.0), (drums, -1.0)], layers=[None, [1, 2]]):
        mixed = gen(org)
    with compose(org, [(tempo, 1.0), (drums, 0.0)], layers=[[3], [1, 2]]):
        assert not torch.equal(gen(org), mixed)            # drums at [1, 2] acts
    with steer_sum(org, [(tempo.injected([3]), 1.0), (drums.injected([1, 2]), -1.0)], use_renorm=False):
        assert torch.equal(gen(org), mixed)


# ----- a batched grid -------------------------------------------------------------------------------------------
def test_a_grid_of_strengths_is_one_batched_call(org, tempo, drums):
    grid = [(0.0, 0.0), (1.0, 0.0), (0.0, -1.0), (1.0, -1.0), (-1.0, 1.0)]
    a, b = [p[0] for p in grid], [p[1] for p in grid]
    with compose(org, [(tempo, a), (drums, b)]):
        batch = gen(org, len(grid))
    # exact within one batch of the same size: a row with both strengths 0 is the unsteered row, a row with one
    # strength 0 is the other vector's row
    unsteered = gen(org, len(grid))
    with tempo.apply(org, alpha=a):
        tempo_rows = gen(org, len(grid))
    with drums.apply(org, alpha=b):
        drums_rows = gen(org, len(grid))
    assert torch.equal(batch[0], unsteered[0])
    assert torch.equal(batch[1], tempo_rows[1]) and torch.equal(batch[2], drums_rows[2])
    # every row is the composition with that row's pair alone (another batch size: float rounding differs)
    for k, (ak, bk) in enumerate(grid):
        with compose(org, [(tempo, ak), (drums, bk)]):
            torch.testing.assert_close(batch[k], gen(org)[0], atol=1e-5, rtol=0)
    assert (batch[3] - batch[1]).abs().max() > 1e-3 and (batch[4] - batch[3]).abs().max() > 1e-3


# ----- One-to-All (DiffMean) on MusicGen, and per-step vectors -------------------------------------------------
def test_one_to_all_vectors_compose_on_musicgen(models):
    mg = models("tiny-musicgen-melody")
    s1 = synthetic(mg, "tempo", scale=0.5, seed=1, strategy={"name": "one-to-all", "source_layer": 2}, renorm=False)
    s2 = synthetic(mg, "brightness", scale=0.5, seed=2, strategy={"name": "one-to-all", "source_layer": 1},
                   renorm=False)

    def run():
        return mg.generate(["a song", "a song"], seeds=[0, 0], duration=0.1).audio
    with s2.apply(mg, alpha=[1.0, -1.0]):
        alone = run()
    with compose(mg, [(s1, 0.0), (s2, [1.0, -1.0])]):
        assert torch.equal(run(), alone)
    with compose(mg, [(s1, 1.0), (s2, [1.0, -1.0])]):
        both = run()
    with compose(mg, [(s2, [1.0, -1.0]), (s1, 1.0)]):
        assert torch.equal(run(), both)
    assert not torch.equal(both, alone)
    # combine materializes each source layer's vector at every layer: alpha 1 adds what the composition adds
    summed = combine([(s1, 1.0), (s2, 1.0)])
    assert summed.layers == [0, 1, 2, 3] and summed.strategy is None
    torch.testing.assert_close(summed.vectors[0], s1.vectors[2] + s2.vectors[1], atol=0, rtol=0)
    with summed.apply(mg, alpha=1.0):
        first = run()[0]
    torch.testing.assert_close(first, both[0], atol=1e-5, rtol=0)


def test_per_step_vectors_compose_with_constant_ones(org, tempo):
    steps = org.defaults.steps
    per_step = synthetic(org, "ramp", layers=[3], steps=steps, scale=0.5, seed=4, renorm=False)
    per_step.vectors[3][:2] = 0                       # acts only from step 2 on
    with compose(org, [(tempo, 1.0), (per_step, 1.0)]):
        both = gen(org)
    with compose(org, [(per_step, 1.0), (tempo, 1.0)]):
        assert torch.equal(gen(org), both)
    with tempo.apply(org, alpha=1.0):
        assert not torch.equal(gen(org), both)
    other = synthetic(org, "short", layers=[4], steps=steps - 1, renorm=False)
    before = all_hooks(org)
    with pytest.raises(TadaError, match=rf"same diffusion steps; these cover {steps - 1} \(layer 4\), {steps} "):
        with compose(org, [(per_step, 1.0), (other, 1.0)]):
            pass
    assert all_hooks(org) == before
    summed = combine([(tempo, 1.0), (per_step, 2.0)])
    assert summed.vectors[3].shape == (steps, 128)
    torch.testing.assert_close(summed.vectors[3], tempo.vectors[3] + 2.0 * per_step.vectors[3], atol=0, rtol=0)


# ----- refusals, and the hooks --------------------------------------------------------------------------------
def test_refusals_name_the_problem_and_leave_no_hooks(org, models, tempo, drums):
    other_model = synthetic(models("tiny-stable-audio"), "tempo", layers=[0])
    wrong_width = SteeringVector(vectors={3: torch.ones(64)}, concept="tempo", model=M,
                                 layer_paths={3: org.layers[3].path})
    on = dataclasses.replace(drums, renorm=True)
    cases = [
        ([(tempo, 1.0), (other_model, 1.0)], {}, "made for model 'tiny-stable-audio'"),
        ([(tempo, 1.0), (wrong_width, 1.0)], {}, "vector layer 3 has width 64; 'tada-organism' layer 3 has width 128"),
        ([(tempo, [1.0, 2.0, 3.0]), (drums, [1.0, 2.0])], {}, "has 3, vector 1 .'drums', caa. has 2"),
        ([(tempo, 1.0), (on, 1.0)], {}, r"different ReNorm settings .*ReNorm off, .*ReNorm on.*use_renorm=True or False"),
        ([(tempo, 1.0), (drums, 1.0)], {"layers": [[3]]}, "1 per-vector entries for 2 vectors"),
        ([(tempo, float("nan"))], {}, "NaN"),
        ([], {}, "non-empty list"),
        ([tempo], {}, "must be a .SteeringVector, number. pair"),
    ]
    before = all_hooks(org)
    for items, kw, message in cases:
        with pytest.raises(TadaError, match=message):
            with compose(org, items, **kw):
                pytest.fail("entered")
        assert all_hooks(org) == before
    # an explicit setting resolves mixed ReNorm defaults
    with compose(org, [(tempo, 1.0), (on, 0.0)], use_renorm=False):
        assert len(all_hooks(org)) > len(before)
    # an error inside the block removes the composition's hooks, and only those
    with tempo.apply(org, alpha=1.0):
        outer = all_hooks(org)
        with pytest.raises(RuntimeError):
            with compose(org, [(tempo, 1.0), (drums, 1.0)]):
                raise RuntimeError("boom")
        assert all_hooks(org) == outer
    with compose(org, [(tempo, [1.0, 2.0]), (drums, [1.0, 2.0])]):   # 2 alphas, 3 samples: refused at generate
        with pytest.raises(TadaError, match="2 alphas for a batch of 3"):
            gen(org, 3)
    assert all_hooks(org) == before


# ----- concept arithmetic -------------------------------------------------------------------------------------
def test_combined_vector_is_the_composition_it_records(org, tempo, drums, tmp_path):
    made = combine([(tempo, 1.0), (drums, -0.5)], sources=[{"source": "t"}, {"source": "d"}], command="test")
    # by hand: tempo steers only its functional layer 3, drums every layer
    assert made.layers == list(range(10)) and made.default_layers() == list(range(10))
    torch.testing.assert_close(made.vectors[3], tempo.vectors[3] - 0.5 * drums.vectors[3], atol=0, rtol=0)
    torch.testing.assert_close(made.vectors[0], -0.5 * drums.vectors[0], atol=0, rtol=0)
    assert made.method == "combined" and made.concept == "1*tempo - 0.5*drums" and made.renorm is False
    assert made.alpha_range == (-1.0, 1.0)      # tempo [-1, 1] at weight 1; drums [-1, 1] at -0.5 allows [-2, 2]
    assert made.extra["recipe"] == [
        {"weight": 1.0, "concept": "tempo", "method": "caa", "layers": [3], "source": "t"},
        {"weight": -0.5, "concept": "drums", "method": "caa", "layers": list(range(10)), "source": "d"}]
    # the order of the terms changes no bit of the sum
    flipped = combine([(drums, -0.5), (tempo, 1.0)])
    assert all(torch.equal(made.vectors[i], flipped.vectors[i]) for i in made.layers)
    # alpha 1 adds what composing the sources at their weights adds (h + (a + b) against (h + a) + b: float
    # rounding, amplified through 4 denoising steps, stays ~1e-5; the steering itself moves the audio by > 1e-2)
    with made.apply(org, alpha=[1.0, 0.5]):
        applied = gen(org, 2)
    with compose(org, [(tempo, [1.0, 0.5]), (drums, [-0.5, -0.25])]):
        composed = gen(org, 2)
    torch.testing.assert_close(applied, composed, atol=1e-4, rtol=0)
    assert (applied[0] - gen(org)[0]).abs().max() > 1e-2
    # round trip: save and load keep every tensor and field
    back = load_vector(made.save(tmp_path / "mix"))
    assert back.config() == made.config()
    assert all(torch.equal(back.vectors[i], made.vectors[i]) for i in made.layers)
    assert "1 x tempo (`t`), -0.5 x drums (`d`)" in (tmp_path / "mix" / "README.md").read_text()


def test_combined_alpha_range_by_hand(org):
    a = synthetic(org, "a", layers=[0], alpha_range=(-1.0, 2.0))
    b = synthetic(org, "b", layers=[0], alpha_range=(-3.0, 1.0))
    # a at weight 2: 2 * alpha in [-1, 2] -> alpha in [-0.5, 1]; b at weight -1: -alpha in [-3, 1] -> [-1, 3]
    assert combined_alpha_range([(a, 2.0), (b, -1.0)]) == (-0.5, 1.0)
    assert combined_alpha_range([(a, 2.0), (b, 0.0)]) == (-0.5, 1.0)      # weight 0 bounds nothing
    assert combined_alpha_range([(a, 1.0), (synthetic(org, "c", layers=[0]), 1.0)]) is None   # no range known


def test_combine_refusals(org, models, tempo, drums):
    other_model = synthetic(models("tiny-stable-audio"), "x", layers=[0])
    revised = dataclasses.replace(drums, model_revision="abc")
    on = dataclasses.replace(drums, renorm=True)
    short = synthetic(org, "s", layers=[3], steps=3)
    long = synthetic(org, "l", layers=[3], steps=4)
    cases = [
        ([(tempo, 1.0), (other_model, 1.0)], {}, "different models: vector 0 .'tempo', caa. was made for "
                                                 "'tada-organism', vector 1 .'x', caa. for 'tiny-stable-audio'"),
        ([(tempo, 1.0), (revised, 1.0)], {}, "different revisions"),
        ([(tempo, 0.0), (drums, 0.0)], {}, "every weight is 0"),
        ([(tempo, float("inf"))], {}, "weight of vector 0"),
        ([(tempo, True)], {}, "not True or False"),
        ([(tempo, 1.0), (on, 1.0)], {}, "different ReNorm settings.*renorm=True or False"),
        ([(short, 1.0), (long, 1.0)], {}, "same diffusion steps"),
        ([(tempo, 1.0)], {"sources": []}, "0 vectors for 1 terms"),
        ([], {}, "non-empty list"),
    ]
    for terms, kw, message in cases:
        with pytest.raises(TadaError, match=message) as e:
            combine(terms, **kw)
        assert "\n" not in str(e.value)
    assert combine([(tempo, 1.0), (on, 1.0)], renorm=True).renorm is True


# ----- the command line -----------------------------------------------------------------------------------------
def test_cli_generate_composes_and_strength_zero_is_the_other_alone(cli, tmp_path):
    kw = ["--prompt", "a waltz", "--duration", "1", "--steps", "4"]
    code, _, err = cli("generate", *kw, "--steer", TEMPO, "--alpha", "0", "--steer", DRUMS, "--alpha", "-1",
                       "--out", tmp_path / "zero.wav")
    assert code == 0, err
    assert "steering 'tempo' at layers [3] alpha 0, 'drums' at layers [0, 1, 2" in err and "without ReNorm" in err
    code, _, err = cli("generate", *kw, "--steer", DRUMS, "--alpha", "-1", "--out", tmp_path / "drums.wav")
    assert code == 0, err
    assert (tmp_path / "zero.wav").read_bytes() == (tmp_path / "drums.wav").read_bytes()
    code, _, err = cli("generate", *kw, "--steer", DRUMS, "--alpha", "-1", "--steer", TEMPO, "--alpha", "1",
                       "--steer-layers", "0", "1", "--steer-layers", "3", "--out", tmp_path / "both.wav")
    assert code == 0 and "'drums' at layers [0, 1] alpha -1, 'tempo' at layers [3] alpha 1" in err, err
    assert (tmp_path / "both.wav").read_bytes() != (tmp_path / "drums.wav").read_bytes()


@pytest.mark.parametrize("args, message", [
    (["--steer", TEMPO, "--alpha", "1", "--steer", DRUMS], "got 2 --steer and 1 --alpha: give one --alpha per"),
    (["--steer", TEMPO, "--alpha", "1", "--alpha", "2"], "got 1 --steer and 2 --alpha"),
    (["--steer", TEMPO, "--alpha", "1", "--steer", DRUMS, "--alpha", "1", "--steer-layers", "3"],
     "got 2 --steer and 1 --steer-layers"),
    (["--steer", TEMPO, "--alpha", "1", "--steer", DRUMS, "--alpha", "1", "--revision", "main"],
     "got 2 --steer and 1 --revision"),
    (["--steer", TEMPO], "--steer needs --alpha"),
    (["--steer", TEMPO, "--alpha", "1", "--steer", "OTHER", "--alpha", "1"], "different models .*tiny-stable-audio"),
])
def test_cli_generate_refuses_unmatched_steering_in_one_line(cli, tmp_path, models, args, message):
    other = synthetic(models("tiny-stable-audio"), "x", layers=[0]).save(tmp_path / "other")
    args = [str(other) if a == "OTHER" else a for a in args]
    code, _, err = cli("generate", "--prompt", "x", "--out", tmp_path / "x.wav", *args)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err


def test_cli_vector_combine_records_its_recipe(cli, tmp_path, org, tempo, drums):
    code, out, err = cli("vector", "combine", "tada-organism-tempo-caa:1", f"{DRUMS}:-0.5", "--out", tmp_path / "mix",
                         "--vectors", ROOT / "vectors")
    assert code == 0, err
    assert "'1*tempo - 0.5*drums' on tada-organism" in out and "alpha range -1.0 .. 1.0" in out
    cfg = json.loads((tmp_path / "mix" / "config.json").read_text())
    assert cfg["method"] == "combined" and cfg["command"].startswith("tada vector combine tada-organism-tempo-caa:1")
    assert [(r["source"], r["sha256"], r["weight"]) for r in cfg["extra"]["recipe"]] == [
        ("tada-organism-tempo-caa", artifact_sha256(TEMPO), 1.0), (str(DRUMS), artifact_sha256(DRUMS), -0.5)]
    made = load_vector(tmp_path / "mix")
    expected = combine([(tempo, 1.0), (drums, -0.5)])
    assert all(torch.equal(made.vectors[i], expected.vectors[i]) for i in expected.layers)
    code, out, err = cli("vector", "info", tmp_path / "mix", "--vectors", ROOT / "vectors")
    assert code == 0 and "recipe: -0.5 x " in out, err
    code, _, err = cli("vector", "combine", f"{TEMPO}:1", f"{tmp_path / 'mix'}:1", "--out", tmp_path / "mix")
    assert code == 2 and "is the source" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("term", ["tada-organism-tempo-caa", "tada-organism-tempo-caa:x", ":1",
                                  "tada-organism-tempo-caa:nan"])
def test_cli_vector_combine_refuses_bad_terms_before_loading(cli, tmp_path, term):
    with pytest.raises(SystemExit) as e:
        cli("vector", "combine", term, "--out", tmp_path / "x")
    assert e.value.code == 2


def test_cli_vector_combine_refuses_other_models_in_one_line(cli, tmp_path, models):
    other = synthetic(models("tiny-stable-audio"), "x", layers=[0]).save(tmp_path / "other")
    code, _, err = cli("vector", "combine", f"{TEMPO}:1", f"{other}:1", "--out", tmp_path / "x")
    assert code == 2 and "different models" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x").exists()
