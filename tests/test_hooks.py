import contextlib
import pytest
import torch

from tada_core import TadaError, patch, record, renorm, steer

from .conftest import all_hooks

PROMPT, OTHER = "fast techno with drums", "slow sad piano ballad"


def vector(model, layer=0, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(model.layers[layer].width, generator=g) * scale


# ----- steer --------------------------------------------------------------------------
def test_alpha_zero_is_bit_identical(model):
    base = model.generate([PROMPT, OTHER], seeds=[0, 1]).audio
    with steer(model, vector(model), alpha=0.0, layers=[0]):
        zero = model.generate([PROMPT, OTHER], seeds=[0, 1]).audio
    with steer(model, vector(model), alpha=[0.0, 0.0], layers=[0], use_renorm=True, branch="both"):
        zero_renorm = model.generate([PROMPT, OTHER], seeds=[0, 1]).audio
    assert torch.equal(base, zero) and torch.equal(base, zero_renorm)


def test_per_sample_alphas_equal_separate_runs(model):
    v = vector(model, scale=3.0)
    with steer(model, v, alpha=[0.0, 4.0, -4.0], layers=[0], use_renorm=False):
        batch = model.generate([PROMPT] * 3, seeds=[7, 7, 7]).audio
    separate = []
    for a in (0.0, 4.0, -4.0):
        with steer(model, v, alpha=a, layers=[0], use_renorm=False):
            separate.append(model.generate([PROMPT], seeds=[7]).audio[0])
    separate = torch.stack(separate)
    torch.testing.assert_close(batch, separate, atol=1e-4, rtol=0)
    # the steering did something, in both signs, so this test can fail
    assert (batch[1] - batch[0]).abs().max() > 1e-2 and (batch[2] - batch[0]).abs().max() > 1e-2


def test_renorm_keeps_token_norms():
    h = torch.randn(2, 5, 8)
    v = torch.randn(8)
    out = renorm(h + 3.0 * v, h)
    torch.testing.assert_close(out.norm(dim=-1), h.norm(dim=-1))
    assert not torch.allclose(out, h)
    # ... and each token points where the steered token h + 3v points (cosine 1): Eq. 3 rescales, never turns
    cos = torch.nn.functional.cosine_similarity(out, h + 3.0 * v, dim=-1)
    torch.testing.assert_close(cos, torch.ones(2, 5))


def test_renorm_inside_generation_keeps_norms(model):
    """At step 0 the steered layer sees the same input with and without steering, so
    with ReNorm its output tokens keep their norms; without ReNorm they do not."""
    layer, frames = 1, 10_000
    v = vector(model, layer, scale=5.0)

    def unsteered():
        with record(model, [layer], mode="tokens", tokens=frames, seed=0) as rec:
            model.generate(PROMPT, seeds=0)
        return rec.activations[layer][0]

    def steered(use_renorm):
        # steer is entered first, so its hook runs before record's and record sees the steered output
        with steer(model, v, alpha=2.0, layers=[layer], use_renorm=use_renorm):
            with record(model, [layer], mode="tokens", tokens=frames, seed=0) as rec:
                model.generate(PROMPT, seeds=0)
        return rec.activations[layer][0]

    base = unsteered()
    with_renorm, without = steered(True), steered(False)
    torch.testing.assert_close(with_renorm.norm(dim=-1), base.norm(dim=-1), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(without.norm(dim=-1), base.norm(dim=-1), atol=1e-3)
    # the values: without ReNorm each token is h + alpha v (Eq. 2), with it that token rescaled to |h| (Eq. 3)
    torch.testing.assert_close(without, base + 2.0 * v, atol=1e-4, rtol=1e-4)
    cos = torch.nn.functional.cosine_similarity(with_renorm, base + 2.0 * v, dim=-1)
    torch.testing.assert_close(cos, torch.ones_like(cos), atol=1e-5, rtol=0)


def test_branch_selection(models):
    m = models("tiny-stable-audio")  # CFG batch [uncond, cond]
    v = vector(m, 0, scale=3.0)
    out = {}
    for branch in ("cond", "uncond", "both"):
        with steer(m, v, alpha=2.0, layers=[0], branch=branch, use_renorm=False):
            out[branch] = m.generate(PROMPT, seeds=0, guidance=3.0).audio
    assert not torch.allclose(out["cond"], out["uncond"]) and not torch.allclose(out["cond"], out["both"])
    # which rows moved: layer 0's output at the first step, read by a hook placed after the steering hook
    def first_output():
        seen = []
        h = m.layers[0].module.register_forward_hook(lambda module, args, output: seen.append(output.clone()))
        try:
            m.generate(PROMPT, seeds=0, guidance=3.0)
        finally:
            h.remove()
        return seen[0]

    plain = first_output()
    assert plain.shape[0] == 2
    for branch, moved in (("cond", [False, True]), ("uncond", [True, False]), ("both", [True, True])):
        with steer(m, v, alpha=2.0, layers=[0], branch=branch, use_renorm=False):
            rows = first_output()
        assert [not torch.equal(rows[r], plain[r]) for r in (0, 1)] == moved, branch   # rows [uncond, cond]
    # without CFG there is no unconditional branch: steering it changes nothing
    base = m.generate(PROMPT, seeds=0, guidance=1.0).audio
    with steer(m, v, alpha=2.0, layers=[0], branch="uncond", use_renorm=False):
        assert torch.equal(m.generate(PROMPT, seeds=0, guidance=1.0).audio, base)


def test_per_step_vectors(models):
    m = models("tiny-ace-step")
    width = m.layers[0].width
    zeros_then_v = torch.zeros(4, width)
    zeros_then_v[3] = vector(m, 0, scale=5.0)
    base = m.generate(PROMPT, seeds=0).audio
    with steer(m, {0: torch.zeros(4, width)}, alpha=5.0):
        assert torch.equal(m.generate(PROMPT, seeds=0).audio, base)
    with steer(m, {0: zeros_then_v}, alpha=5.0):
        assert not torch.allclose(m.generate(PROMPT, seeds=0).audio, base)
    with steer(m, {0: zeros_then_v}, alpha=5.0):
        with pytest.raises(TadaError, match="4 steps"):
            m.generate(PROMPT, seeds=0, steps=6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(layers=[99]), "out of range"),
    (dict(layers=[-1]), "out of range"),
    (dict(alpha=float("nan")), "NaN"),
    (dict(alpha=float("inf")), "NaN or inf"),
    (dict(alpha=[1.0, float("-inf")]), r"alpha\[1\]"),
    (dict(branch="negative"), "branch"),
    (dict(vectors="wrong-width"), r"needs \["),
    (dict(vectors="nan"), "NaN"),
    (dict(vectors={}), "empty"),
])
def test_bad_steer_input(models, kwargs, message):
    m = models("tiny-ace-step")
    v = vector(m)
    special = {"wrong-width": torch.randn(v.numel() + 1), "nan": torch.full_like(v, float("nan"))}
    vec = kwargs.pop("vectors", v)
    vec = special.get(vec, vec) if isinstance(vec, str) else vec
    kwargs.setdefault("alpha", 1.0)
    with pytest.raises(TadaError, match=message):
        with steer(m, vec, **kwargs):
            pass


def test_alpha_count_must_match_batch(models):
    m = models("tiny-ace-step")
    with steer(m, vector(m), alpha=[1.0, 2.0], layers=[0]):
        with pytest.raises(TadaError, match="2 alphas for a batch of 3"):
            m.generate([PROMPT] * 3)


# ----- patch --------------------------------------------------------------------------
def test_patch_no_layers_equals_source_and_all_layers_equals_target(model):
    source = model.generate(PROMPT, seeds=3).audio
    target = model.generate(OTHER, seeds=3).audio
    assert (source - target).abs().max() > 1e-3  # the two prompts differ, so the test can fail
    with patch(model, [], OTHER):
        assert torch.equal(model.generate(PROMPT, seeds=3).audio, source)
    with patch(model, None, OTHER):
        patched_all = model.generate(PROMPT, seeds=3).audio
    torch.testing.assert_close(patched_all, target, atol=2e-4, rtol=0)
    with patch(model, [0], OTHER):
        patched_one = model.generate(PROMPT, seeds=3).audio
    assert not torch.allclose(patched_one, source) and not torch.allclose(patched_one, target)


def test_patch_batches_pairs(models):
    m = models("tiny-stable-audio")
    sources, targets = [PROMPT, OTHER], [OTHER, PROMPT]
    with patch(m, None, targets):
        swapped = m.generate(sources, seeds=[1, 1]).audio
    plain = m.generate(targets, seeds=[1, 1]).audio
    torch.testing.assert_close(swapped, plain, atol=2e-4, rtol=0)
    with patch(m, [0], [OTHER] * 3):
        with pytest.raises(TadaError, match="3 target prompts for 2 source prompts"):
            m.generate(sources)


def test_the_capture_pass_stops_at_the_last_patched_layer(model):
    """Patching layer 0 needs only its keys and values: no later layer computes during the capture pass,
    and the patched generation is what it was with the full capture pass (same conditioning)."""
    before = all_hooks(model)
    calls = []
    handles = [layer.module.register_forward_hook(lambda *a, i=layer.index: calls.append(i)) for layer in model.layers]
    try:
        found = model.capture_conditioning([OTHER], model.resolve_settings(), [0])
    finally:
        for h in handles:
            h.remove()
    assert set(found) == {0} and calls == []
    first, last = model.layers[0].index, model.layers[-1].index
    both = model.capture_conditioning([OTHER], model.resolve_settings(), [last, first])
    assert torch.equal(both[first].states, found[first].states) and set(both) == {first, last}
    assert all_hooks(model) == before


def test_patch_bad_input(models):
    m = models("tiny-ace-step")
    with pytest.raises(TadaError, match="non-empty"):
        with patch(m, [0], ""):
            pass
    with pytest.raises(TadaError, match="out of range"):
        with patch(m, [len(m.layers)], OTHER):
            pass


# ----- record -------------------------------------------------------------------------
def test_recorded_shapes(model):
    steps, n = 4, 2
    widths = {layer.index: layer.width for layer in model.layers}
    with record(model, None) as rec:
        model.generate([PROMPT, OTHER], seeds=[0, 1], steps=steps)
    assert set(rec.activations) == set(widths)
    for layer, acts in rec.activations.items():
        assert acts.shape == (steps, n, widths[layer])
    with record(model, [0, len(model.layers) - 1], mode="tokens", tokens=3) as rec:
        model.generate([PROMPT, OTHER], seeds=[0, 1], steps=steps)
    for layer, acts in rec.activations.items():
        assert acts.shape == (steps, n, 3, widths[layer])


def test_record_mean_is_conditional_branch_frame_average(models):
    """The recorded mean equals the frame-average of the conditional rows of the raw output."""
    m = models("tiny-ace-step")  # CFG batch [cond, uncond]
    raw = []
    handle = m.layers[1].module.register_forward_hook(lambda mod, a, out: raw.append(out.detach().clone()))
    try:
        with record(m, [1]) as rec:
            m.generate(PROMPT, seeds=0, guidance=3.0)
    finally:
        handle.remove()
    assert raw[0].shape[0] == 2  # CFG doubled the batch
    torch.testing.assert_close(rec.activations[1][0, 0], raw[0][0].mean(dim=0))
    assert not torch.allclose(rec.activations[1][0, 0], raw[0][1].mean(dim=0))


def test_record_sink_streams(models):
    m = models("tiny-ace-step")
    got = []
    with record(m, [0], sink=lambda layer, step, t: got.append((layer, step, tuple(t.shape)))) as rec:
        m.generate(PROMPT, seeds=0, steps=3)
    assert got == [(0, s, (1, m.layers[0].width)) for s in range(3)]
    assert rec.activations == {}


def test_record_bad_input(models):
    m = models("tiny-ace-step")
    with pytest.raises(TadaError, match="mode"):
        with record(m, [0], mode="max"):
            pass
    with pytest.raises(TadaError, match="tokens"):
        with record(m, [0], mode="tokens", tokens=0):
            pass


# ----- exception safety ------------------------------------------------------------------
class Boom(Exception):
    pass


@pytest.mark.parametrize("kind", ["record", "patch", "steer", "nested"])
def test_exception_leaves_no_hooks_and_model_is_clean(models, kind):
    m = models("tiny-ace-step")
    reference = m.generate(PROMPT, seeds=9).audio
    foreign = m.layers[0].module.register_forward_hook(lambda *a: None)  # someone else's hook
    before = all_hooks(m)
    contexts = {
        "record": lambda: record(m, None),
        "patch": lambda: patch(m, None, OTHER),
        "steer": lambda: steer(m, vector(m, 0, scale=5.0), alpha=3.0, layers=[0, 1]),
    }
    try:
        with pytest.raises(Boom):
            if kind == "nested":
                with contexts["record"](), contexts["patch"](), contexts["steer"]():
                    m.generate(PROMPT, seeds=9)
                    raise Boom
            else:
                with contexts[kind]():
                    m.generate(PROMPT, seeds=9)
                    raise Boom
        assert all_hooks(m) == before
        assert m.run is None and not m._before_generate
        assert torch.equal(m.generate(PROMPT, seeds=9).audio, reference)
    finally:
        foreign.remove()


def test_exception_inside_generation_cleans_up(models):
    m = models("tiny-ace-step")
    before = all_hooks(m)
    width = m.layers[0].width
    with steer(m, {0: torch.zeros(2, width)}, alpha=1.0):  # too few steps: the hook raises mid-run
        with pytest.raises(TadaError):
            m.generate(PROMPT, steps=4)
    assert all_hooks(m) == before and m.run is None


def test_patch_and_steer_compose_in_either_nesting_order(models):
    """A patch nested inside a steer used to recompute the patched rows over the steered output (the steering
    was lost); now the swap always runs first on a layer and steering on top of it, in both orders."""
    m = models("tiny-stable-audio")   # CFG batch [uncond, cond]
    v = vector(m, 0, scale=3.0)
    kw = dict(seeds=[0, 0], guidance=3.0)
    with steer(m, v, alpha=[0.0, 2.0], layers=[0], use_renorm=False):
        with patch(m, [0], "a march with drums"):
            inner_patch = m.generate([PROMPT] * 2, **kw).audio
    with patch(m, [0], "a march with drums"):
        with steer(m, v, alpha=[0.0, 2.0], layers=[0], use_renorm=False):
            inner_steer = m.generate([PROMPT] * 2, **kw).audio
        patched_only = m.generate([PROMPT] * 2, **kw).audio
    torch.testing.assert_close(inner_patch, inner_steer, atol=1e-6, rtol=0)
    assert torch.allclose(inner_patch[0], patched_only[0], atol=1e-6)           # alpha 0: the patch alone
    assert (inner_patch[1] - patched_only[1]).abs().max() > 1e-3                 # alpha 2: steered on top


def test_record_sees_what_the_layer_passes_on_in_every_nesting_order(models):
    """record / patch / steer entered in all six orders: the recording is the same (patched, then steered)."""
    import itertools

    m = models("tiny-stable-audio")
    v = vector(m, 0, scale=3.0)
    kw = dict(seeds=[0], guidance=3.0)
    before = all_hooks(m)

    def run(order):
        with contextlib.ExitStack() as stack:
            rec = None
            for kind in order:
                if kind == "record":
                    rec = stack.enter_context(record(m, [0], mode="mean"))
                elif kind == "steer":
                    stack.enter_context(steer(m, v, alpha=2.0, layers=[0], use_renorm=False))
                else:
                    stack.enter_context(patch(m, [0], "a march with drums"))
            m.generate([PROMPT], **kw)
        return rec.activations[0]

    results = [run(order) for order in itertools.permutations(("record", "steer", "patch"))]
    for r in results[1:]:
        torch.testing.assert_close(r, results[0], atol=1e-6, rtol=0)
    with record(m, [0], mode="mean") as plain:
        m.generate([PROMPT], **kw)
    assert (plain.activations[0] - results[0]).abs().max() > 1e-3      # the interventions are in the recording
    assert all_hooks(m) == before
