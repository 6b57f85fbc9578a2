"""`tada benchmark` on the MusicGen organism: the residual-stream methods, the random control, the control
comparison, and a resumed run (docs/musicgen.md#the-steering-benchmark)."""

import json

import pytest
import torch

from tada_core import load_model
from tada_core.adapters import MusicGenAdapter, StableAudioAdapter
from tada_core.errors import TadaError
from tada_core.evaluation.benchmark import controls, make_distance, make_quality
from tada_core.evaluation.benchmark.methods import METHODS, Context
from tada_core.evaluation.benchmark.residual import (RESIDUAL_METHODS, PromptSwap, RandomControl, TextDifference,
                                                     make_method_for, method_table, random_like)
from tada_core.evaluation.benchmark.runner import BenchmarkConfig, run_benchmark, write_tables


@pytest.fixture(scope="module")
def model():
    return load_model("musicgen-organism")


def _ctx(model, concept="brightness", n=3, duration=0.5):
    cs = model.entry.concepts
    c = cs.get(concept)
    items = [(cs.neutral.format(base=b), c.positive.format(base=b), c.negative.format(base=b))
             for b in list(cs.bases)[:n]]
    return Context(adapter=model, concept=c, items=items, functional=[],
                   settings=model.resolve_settings(duration=duration))


def test_the_families_declare_their_method_tables(model):
    assert MusicGenAdapter.benchmark_kind == "residual-stream"
    assert StableAudioAdapter.benchmark_kind == "cross-attention"
    assert method_table(model) is RESIDUAL_METHODS
    with pytest.raises(TadaError, match="unknown method 'caa'.*accepted: diffmean, diffmean-all, pci"):
        make_method_for(model, "caa")
    assert list(RESIDUAL_METHODS) == ["diffmean", "diffmean-all", "pci", "text-emb", "random"]
    assert make_method_for(model, "pci").label == "Prompt swap" and METHODS["pci"]().label == "PCI"


@pytest.mark.parametrize("key", list(RESIDUAL_METHODS))
def test_every_method_at_strength_0_is_the_unsteered_run(model, key):
    ctx = _ctx(model)
    method = make_method_for(model, key)
    method.setup(ctx)
    top = method.grid(ctx, 2)[-1] * (4 if key != "pci" else 1)    # a strength that surely moves the clip
    bases, strengths, seeds = [0, 0, 1], [0.0, top, 0.0], [5, 5, 6]
    with method.apply(ctx, bases, strengths):
        steered = model.generate(method.prompts(ctx, bases), seeds=seeds, settings=ctx.settings).audio
    plain = model.generate([ctx.items[b][0] for b in bases], seeds=seeds, settings=ctx.settings).audio
    assert torch.equal(steered[0], plain[0]) and torch.equal(steered[2], plain[2])
    assert not torch.equal(steered[1], plain[1])


def test_the_prompt_swap_and_the_text_difference_by_hand():
    e = torch.arange(3 * 3 * 2 * 1, dtype=torch.float32).reshape(3, 3, 2, 1)     # (neutral, pos, neg) x 3 rows
    m = torch.tensor([[[1, 0]] * 3, [[1, 1]] * 3, [[1, 1]] * 3])
    a = torch.tensor([0.25, 1.0, -1.0])
    states, mask = PromptSwap().states(e, m, a)
    assert torch.allclose(states[0], 0.75 * e[0, 0] + 0.25 * e[1, 0])          # toward the positive prompt
    assert torch.equal(states[1], e[1, 1]) and torch.equal(states[2], e[2, 2])  # w = 1: the target's own states
    assert mask[0].tolist() == [1, 1]                                           # masks united below the swap
    states, _ = TextDifference().states(e, m, torch.tensor([0.5, 0.0, -2.0]))
    assert torch.allclose(states[0], e[0, 0] + 0.5 * (e[1, 0] - e[2, 0]))
    assert torch.equal(states[1], e[0, 1])
    assert torch.allclose(states[2], e[0, 2] - 2.0 * (e[1, 2] - e[2, 2]))
    assert PromptSwap().grid(None, 4) == [0.25, 0.5, 0.75, 1.0]                 # the last weight is the full swap


def test_random_directions_have_the_stated_norm_per_layer():
    injected = {0: torch.full((8,), 1.0), 1: torch.full((8,), 3.0)}             # norms sqrt(8), 3 sqrt(8)
    shared = random_like(injected, 1, shared=True)
    own = random_like(injected, 1, shared=False)
    for d in (shared, own):
        assert [round(float(d[i].norm()), 5) for i in (0, 1)] == [round(8 ** 0.5, 5), round(3 * 8 ** 0.5, 5)]
    cos = torch.nn.functional.cosine_similarity
    assert float(cos(shared[0], shared[1], dim=0)) == pytest.approx(1.0)        # one direction in every layer
    assert abs(float(cos(own[0], own[1], dim=0))) < 0.99
    assert torch.equal(random_like(injected, 1, shared=True)[0], shared[0])    # fixed by its seed
    assert not torch.equal(random_like(injected, 2, shared=True)[0], shared[0])
    assert abs(float(cos(shared[0], injected[0], dim=0))) < 0.99


def test_the_random_control_matches_diffmean_one_to_all(model):
    ctx = _ctx(model)
    control = RandomControl(draws=3)
    control.setup(ctx)
    source = control.vector.strategy["source_layer"]
    norm = float(control.vector.vectors[source].norm())
    assert len(control.directions) == 3
    for d in control.directions:
        assert sorted(d) == [layer.index for layer in model.layers]
        assert all(float(v.norm()) == pytest.approx(norm, rel=1e-5) for v in d.values())
    assert [control.draw(b) for b in range(5)] == [0, 1, 2, 0, 1]
    assert control.max_strength == pytest.approx(4 * max(abs(x) for x in control.vector.alpha_range))


def _config(model, concept):
    cs = model.entry.concepts
    return BenchmarkConfig(concepts=cs, methods=["diffmean", "random"], distance=make_distance("mel"),
                           quality=make_quality("typicality"), functional=(), seeds=(300,),
                           bases=list(cs.bases)[:3], strengths=1, reference_seeds=(10000, 10001, 10002, 10003), calibrate=False,
                           settings=model.resolve_settings(duration=0.5))


def test_a_run_resumes_and_states_the_control_comparison(model, tmp_path):
    concept = model.entry.concepts.get("brightness")
    scorer = model.entry.scorer()
    whole = run_benchmark(model, concept, scorer, _config(model, concept), out=tmp_path / "a" / concept.name,
                          progress=False)

    class Stop(Exception):
        pass

    def stop_after(done, total):
        if done >= 4:
            raise Stop

    with pytest.raises(Stop):
        run_benchmark(model, concept, scorer, _config(model, concept), out=tmp_path / "b" / concept.name,
                      progress=False, on_unit=stop_after)
    seen = []
    resumed = run_benchmark(model, concept, scorer, _config(model, concept), out=tmp_path / "b" / concept.name,
                            progress=False, on_unit=lambda done, total: seen.append(done))
    assert seen[0] == 4 and seen[-1] > 4                      # it went on from the journal, not from the start
    a, b = whole.to_dict(), resumed.to_dict()
    a.pop("compute_s"), b.pop("compute_s")
    assert a == b                                             # the numbers of an uninterrupted run
    assert [m.label for m in whole.methods] == ["Prompt swap", "DiffMean(1→all)", "Random control"]

    write_tables([whole], tmp_path / "a")
    rows = controls.write(tmp_path / "a", [whole], scorer, [concept])
    rows = controls.write(tmp_path / "a", [whole], scorer, [concept])   # rewritten, never a second section
    text = (tmp_path / "a" / "table.md").read_text()
    assert text.count("## Against the random control") == 1
    assert [r.method for r in rows] == ["pci", "diffmean"]
    for r in rows:
        assert r.clears == (r.auc_ci[0] > r.control_ci[1])
        section = text.split("## Against the random control")[1]
        line = next(x for x in section.splitlines() if x.startswith(f"| brightness | {r.label} |"))
        assert f"| {'yes' if r.clears else 'no'} |" in line and r.verdict in line
    saved = json.loads((tmp_path / "a" / "controls.json").read_text())
    assert saved[0]["verdict"] == rows[0].verdict and saved[0]["difference"][0] == pytest.approx(
        rows[0].auc - rows[0].control_auc)


def test_cli_refuses_a_diffusion_method_on_musicgen_naming_the_accepted_ones(cli, tmp_path):
    code, _, err = cli("benchmark", "--model", "musicgen-organism", "--concept", "tempo", "--methods", "caa",
                       "--out", tmp_path / "b")
    assert code == 2 and "'caa' does not apply to musicgen-organism" in err
    assert "diffmean, diffmean-all, pci, text-emb, random" in err
    assert not (tmp_path / "b" / "tempo").exists()
