"""The steering benchmark (TADA Sec. 5.1): protocol arithmetic on hand-computed cases, each baseline's
mechanics on tiny models, the distances and the quality measure, resumable runs and bad input."""

import json
import math

import numpy as np
import pytest
import torch

from tada_core.adapters.base import hook_handles
from tada_core.evaluation.benchmark import protocol
from tada_core.evaluation.benchmark.distance import LPAPS, MelDistance, make_distance
from tada_core.evaluation.benchmark.methods import (PCI, AUSteer, Context, FreeSliders, MethodUnavailable, TextEmbeddings,
                                         TokenEmbeddings, austeer_mask, make_method)
from tada_core.evaluation.benchmark.quality import Typicality, make_quality
from tada_core.evaluation.benchmark.runner import run_benchmark
from tada_core.concepts import Concept, ConceptSet
from tada_core.errors import TadaError
from tada_core.interventions.hooks import patch

from .conftest import Energy

CONCEPT = Concept("tempo", "a fast {base}", "a slow {base}")
CONCEPTS = ConceptSet("test", {"tempo": CONCEPT}, ("song", "waltz"), ("a song", "a waltz"), neutral="a {base}")


def sweep(alphas, delta, distance, quality=None):
    return protocol.ordered(alphas, delta, distance, quality)


# ----- protocol ------------------------------------------------------------------------
def test_auc_is_the_trapezoid_over_preservation():
    s = sweep([1, 2], [1, 2], [1, 2])          # alpha 0 (0, 0) is added
    assert s.alphas.tolist() == [0, 1, 2]
    assert protocol.auc(protocol.truncate(s, 10)) == pytest.approx(0.5 + 1.5)


def test_truncation_adds_the_interpolated_boundary_point():
    s = protocol.truncate(sweep([0, 1, 2, 3], [0, 1, 3, 5], [0, 1, 3, 5]), 2.0)
    assert s.distance.tolist() == [0, 1, 2]
    assert s.delta.tolist() == [0, 1, 2]       # halfway between (1, 1) and (3, 3)
    assert s.alphas.tolist() == [0, 1, 2]      # the boundary takes the alpha of the first point beyond
    assert protocol.auc(s) == pytest.approx(0.5 + 1.5)
    # a sweep wholly below P_max is kept as is
    assert protocol.truncate(sweep([1], [1], [1]), 5).distance.tolist() == [0, 1]
    # off-centre: P_max = 2 lies a third of the way from d = 1 to d = 4, so the boundary takes a third of each
    # step (Delta a 1 -> 7 gives 3, quality 10 -> 4 gives 8), not two thirds (5 and 6)
    s = protocol.truncate(sweep([1, 2, 3], [1, 7, 9], [1, 4, 5], [10, 4, 2]), 2.0)
    assert s.alphas.tolist() == [0, 1, 2] and s.distance.tolist() == [0, 1, 2]
    assert s.delta.tolist() == pytest.approx([0, 1, 3]) and s.quality[1:].tolist() == pytest.approx([10, 8])
    assert protocol.auc(s) == pytest.approx(1 * (0 + 1) / 2 + 1 * (1 + 3) / 2)


def test_points_are_taken_in_abs_alpha_order_and_backtracking_loses_area():
    s = sweep([-2, 0, -1], [2, 0, 1], [0.5, 0, 1])
    assert s.alphas.tolist() == [0, -1, -2]
    assert protocol.auc(s) == pytest.approx(0.5 - 0.75)
    # sorted by distance instead, the same points would give a positive area
    assert protocol.auc(sweep([1, 2], [2, 1], [0.5, 1])) > 0


def test_smoothness_is_the_std_of_normalized_gaps():
    s = sweep([1, 2, 3], [1, 2, 4], [1, 2, 3])
    assert protocol.smoothness(s) == pytest.approx(math.sqrt(1 / 72))
    assert protocol.smoothness(sweep([1, 2, 3], [1, 2, 3], [1, 2, 3])) == pytest.approx(0.0)
    assert math.isnan(protocol.smoothness(sweep([1, 2], [-1, -2], [1, 2])))   # never the right direction
    assert math.isnan(protocol.smoothness(protocol.truncate(sweep([1, 2], [1, 2], [5, 6]), 2.0)))  # one gap only


def test_quality_grid_interpolates_and_drops_points_out_of_range():
    full = sweep([0, 1, 2], [0, 0, 0], [0, 1, 2], [10, 8, 6])
    grid = protocol.quality_grid(full, 2.0)
    assert len(grid) == 15 and grid.mean() == pytest.approx(8.0)
    assert np.allclose(grid, 10 - 2 * np.linspace(0, 2, 15))                      # linear along the sweep
    # a sweep that backtracks (d 0 -> 2 -> 1): the grid is interpolated over the points sorted by distance, as the
    # reference does: (0, 10), (1, 9), (2, 6), so 10 - d on [0, 1] and 9 - 3 (d - 1) on [1, 2] (walking the sweep in
    # |alpha| order would give 10 - 2 d)
    back = protocol.quality_grid(sweep([0, 1, 2], [0, 0, 0], [0, 2, 1], [10, 6, 9]), 2.0)
    g = np.linspace(0, 2, 15)
    assert np.allclose(back, np.where(g <= 1, 10 - g, 9 - 3 * (g - 1)))
    short = sweep([0, 1], [0, 0], [0, 1], [10, 8])
    grid = protocol.quality_grid(short, 2.0)
    assert len(grid) == 8 and grid.mean() == pytest.approx(9.0)       # grid points 0, 1/7, ..., 1 only
    # the mean of the two directions' means (the reference's), not of the 23 pooled grid values
    assert protocol.average_quality(full, short, 2.0, 2.0) == pytest.approx((8.0 + 9.0) / 2)


def test_p_max_is_the_smaller_pci_maximum():
    assert protocol.p_max([3.0, 2.0]) == 2.0
    assert protocol.p_max([3.0, float("nan")]) == 3.0
    with pytest.raises(TadaError, match="PCI"):
        protocol.p_max([])
    with pytest.raises(TadaError, match="positive"):
        protocol.truncate(sweep([1], [1], [1]), 0.0)


# ----- distances and quality --------------------------------------------------------------
def tones(n, seed, sr=16000, seconds=1.0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    out = []
    for _ in range(n):
        f = rng.uniform(200, 600)
        x = sum(rng.uniform(0.2, 1) / k * np.sin(2 * np.pi * k * f * t) for k in range(1, 5))
        out.append(0.2 * x * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(1, 4) * t)))
    return torch.tensor(np.stack(out)[:, None], dtype=torch.float32)


def test_mel_distance_is_zero_for_identical_clips_and_grows_with_change():
    d = MelDistance()
    a = tones(3, 0)
    assert np.allclose(d(a, a, 16000), 0)
    small = d(a, a + 0.001 * torch.randn_like(a), 16000)
    large = d(a, a + 0.1 * torch.randn_like(a), 16000)
    assert np.all(large > small) and np.all(small > 0)
    # doubling a clip raises every mel band's power by 10 log10(4) = 6.02 dB, at every resolution, so the mean
    # over resolutions is that too (white noise: no band near the 1e-10 floor)
    noise = 0.1 * torch.randn(2, 1, 16000, generator=torch.Generator().manual_seed(0))
    assert d(noise, 2 * noise, 16000) == pytest.approx([10 * math.log10(4)] * 2, abs=1e-3)
    assert make_distance(None).name == "mel"
    with pytest.raises(TadaError, match="accepted"):
        make_distance("l2")


def test_lpaps_network_on_random_weights(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = LPAPS()
    for name, p in net.named_parameters():
        if name.startswith("lin"):           # LPIPS's linear weights are non-negative
            torch.nn.init.uniform_(p, 0.0, 0.05)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "lpaps.safetensors"))
    loaded = make_distance(f"lpaps:{tmp_path / 'lpaps.safetensors'}")
    a, b = tones(2, 1), tones(2, 2)
    same = loaded(a, a, 16000)
    ab, ba = loaded(a, b, 16000), loaded(b, a, 16000)
    assert np.allclose(same, 0) and np.all(ab > 0) and np.allclose(ab, ba, rtol=1e-5)
    assert loaded.spectrogram(a.numpy()[:, 0], 16000).shape[:3] == (2, 1, 80)
    save_file({"net.slice1.0.weight": torch.zeros(64, 1, 3, 3)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(TadaError, match="not an LPAPS checkpoint"):
        LPAPS.from_checkpoint(tmp_path / "bad.safetensors")
    with pytest.raises(TadaError, match="no LPAPS checkpoint"):
        LPAPS.from_checkpoint(tmp_path / "missing.safetensors")
    (tmp_path / "lpaps.pt").write_bytes(b"not read")
    with pytest.raises(TadaError, match="safetensors only"):
        LPAPS.from_checkpoint(tmp_path / "lpaps.pt")


def test_typicality_ranks_noise_and_distortion_below_clean_clips():
    q = Typicality()
    with pytest.raises(TadaError, match="not fitted"):
        q(tones(1, 0), 16000)
    q.fit(tones(48, 1), 16000)
    clean = q(tones(8, 2), 16000)
    noise = q(0.2 * torch.randn(8, 1, 16000), 16000)
    distorted = q(torch.clamp(20 * tones(8, 2), -0.3, 0.3), 16000)
    assert clean.min() > noise.max()
    assert clean.min() > distorted.max()
    # the value: minus the Mahalanobis distance to the fitted Gaussian (Ledoit-Wolf covariance), over sqrt(dims)
    from scipy.spatial.distance import mahalanobis
    from sklearn.covariance import LedoitWolf

    from tada_core.evaluation.benchmark.quality import logmel_stats

    reference = logmel_stats(tones(48, 1), 16000)
    inverse = np.linalg.inv(LedoitWolf().fit(reference).covariance_)
    expected = [-mahalanobis(e, reference.mean(0), inverse) / math.sqrt(reference.shape[1])
                for e in logmel_stats(tones(8, 2), 16000)]
    assert clean == pytest.approx(expected, rel=1e-6)
    assert make_quality(None).name == "typicality"
    with pytest.raises(TadaError, match="accepted"):
        make_quality("mos")


def test_audiobox_without_its_package_is_a_clear_error():
    try:
        import audiobox_aesthetics  # noqa: F401
        pytest.skip("audiobox_aesthetics is installed here")
    except ImportError:
        pass
    with pytest.raises(TadaError, match="pip install"):
        make_quality("audiobox")


# ----- methods on tiny models ----------------------------------------------------------------
@pytest.fixture
def tiny(models):
    return models("tiny-stable-audio")


def ctx_for(m, functional=(1,)):
    return Context(adapter=m, concept=CONCEPT, items=[("a song", "a fast song", "a slow song"),
                                                       ("a waltz", "a fast waltz", "a slow waltz")],
                   functional=list(functional), settings=m.resolve_settings(None), fit_seeds=(0, 1))


def steered(m, method, ctx, strengths, bases=(0, 0), seeds=(5, 5)):
    with method.apply(ctx, list(bases), list(strengths)):
        return m.generate(method.prompts(ctx, list(bases)), seeds=list(seeds)).audio


@pytest.mark.parametrize("key", ["pci", "pci-f", "text-emb", "text-emb-f", "token-emb", "token-emb-f", "freesliders",
                                 "freesliders-f", "austeer", "austeer-f", "random-austeer-f"])
def test_strength_zero_is_the_unsteered_run(tiny, key):
    ctx = ctx_for(tiny)
    method = make_method(key)
    method.setup(ctx)
    plain = tiny.generate(method.prompts(ctx, [0, 0]), seeds=[5, 5]).audio     # the same batch, unsteered
    out = steered(tiny, method, ctx, [0.0, method.grid(ctx, 2)[-1]])
    assert torch.equal(out[0], plain[0])
    assert not torch.allclose(out[1], plain[0], atol=1e-4)       # the other sample is steered: the test can fail


@pytest.mark.parametrize("name", ["tiny-ace-step", "tiny-audioldm2"])
def test_baselines_run_on_the_other_families(models, name):
    m = models(name)
    ctx = ctx_for(m)
    for key in ("pci", "text-emb", "freesliders-f", "austeer"):
        method = make_method(key)
        method.setup(ctx)
        plain = m.generate(method.prompts(ctx, [0, 0]), seeds=[5, 5]).audio
        out = steered(m, method, ctx, [0.0, method.grid(ctx, 2)[-1]])
        assert torch.equal(out[0], plain[0]), key
        assert not torch.allclose(out[1], plain[1], atol=1e-5), key
    # word positions are not mapped in these families' conditioning: said, not silently wrong
    with pytest.raises(MethodUnavailable, match="token-level methods are not available"):
        TokenEmbeddings().setup(ctx)


def test_pci_full_swap_is_the_concept_prompt_run(tiny):
    ctx = ctx_for(tiny)
    method = PCI(localized=False)
    method.setup(ctx)
    t = ctx.settings.steps
    out = steered(tiny, method, ctx, [t, -t])
    target = tiny.generate(["a fast song", "a slow song"], seeds=[5, 5]).audio
    torch.testing.assert_close(out, target, atol=2e-4, rtol=0)
    late = steered(tiny, method, ctx, [1, -1])           # injected only at the last step: close to neutral
    assert (late - target).abs().max() > 1e-3


def test_localized_pci_patches_only_the_functional_layers(tiny):
    ctx = ctx_for(tiny, functional=(1,))
    method = PCI(localized=True)
    method.setup(ctx)
    t = ctx.settings.steps
    out = steered(tiny, method, ctx, [t], bases=[0], seeds=[5])
    with patch(tiny, [1], "a fast song"):
        manual = tiny.generate("a song", seeds=5).audio
    assert torch.equal(out, manual)
    full = tiny.generate("a fast song", seeds=5).audio
    assert (out - full).abs().max() > 1e-3


def test_freesliders_with_equal_prompts_is_the_neutral_run(tiny):
    ctx = ctx_for(tiny)
    ctx.items = [("a song", "a calm song", "a calm song")]
    method = FreeSliders(localized=False)
    method.setup(ctx)
    plain = tiny.generate("a song", seeds=5).audio
    out = steered(tiny, method, ctx, [1.5], bases=[0], seeds=[5])
    torch.testing.assert_close(out, plain, atol=1e-6, rtol=0)
    # eps(neutral) + alpha (eps(positive) - eps(negative)): with the negative prompt as the neutral one and
    # alpha 1 the prediction is eps(positive) at every step, the positive prompt's run; alpha -1 from the
    # positive prompt gives the negative prompt's run (a slider with its sides swapped gives neither)
    ctx.items = [("a slow song", "a fast song", "a slow song"), ("a fast song", "a fast song", "a slow song")]
    out = steered(tiny, method, ctx, [1.0, -1.0], bases=[0, 1], seeds=[5, 5])
    target = tiny.generate(["a fast song", "a slow song"], seeds=[5, 5]).audio
    assert (target[0] - target[1]).abs().max() > 1e-2          # the two prompts differ: the test can fail
    torch.testing.assert_close(out, target, atol=2e-4, rtol=0)


def test_localized_freesliders_swaps_conditioning_only_in_functional_layers(tiny):
    ctx = ctx_for(tiny, functional=(1,))
    method = FreeSliders(localized=True)
    method.setup(ctx)
    seen: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(tiny.layers))}

    def spy(i):
        def hook(module, args, kwargs):
            if tiny.run is None or tiny.run.capture:      # the method's own conditioning capture
                return
            seen[i].append(kwargs[tiny.conditioning_kwarg].detach().clone())
        return hook

    with method.apply(ctx, [0], [1.0]):
        with hook_handles() as add:          # registered after the method's own hooks: sees what they pass on
            for layer in tiny.layers:
                add(layer.module.register_forward_pre_hook(spy(layer.index), with_kwargs=True))
            tiny.generate("a song", seeds=5)
    settings = tiny.resolve_settings(None)
    neutral0 = tiny.capture_conditioning(["a song"], settings, [0])[0].states
    fast1 = tiny.capture_conditioning(["a fast song", "a slow song"], settings, [1])[1].states[:1]

    def matches(states, c):
        return states.shape[1:] == c.shape[1:] and any(torch.equal(states[r:r + 1], c) for r in range(len(states)))

    assert all(matches(s, neutral0) for s in seen[0])               # layer 0 never sees another prompt
    assert any(matches(s, fast1) for s in seen[1])                  # layer 1 gets the positive prompt in a pass


def test_austeer_mask_keeps_exactly_k_per_step():
    torch.manual_seed(0)
    beta = {0: torch.randn(3, 8), 2: torch.randn(3, 8)}
    masked = austeer_mask(beta, 5)
    kept = torch.stack([masked[0], masked[2]], 1).ne(0).sum((1, 2))
    assert kept.tolist() == [5, 5, 5]
    top = torch.stack([beta[0], beta[2]], 1).abs().reshape(3, -1).topk(5).values.min(1).values
    for i in (0, 2):
        nz = masked[i] != 0
        assert torch.all(masked[i][nz].abs() >= top[:, None].expand_as(masked[i])[nz] - 1e-7)
        assert torch.equal(masked[i][nz], beta[i][nz])


def test_austeer_direction_is_bounded_and_sparse(tiny):
    ctx = ctx_for(tiny)
    method = AUSteer(localized=False, k=6)
    method.setup(ctx)
    stacked = torch.stack([method.vectors[i] for i in sorted(method.vectors)], 1)
    assert stacked.ne(0).sum((1, 2)).eq(6).all() and stacked.abs().max() <= 1.0
    assert method.max_strength > 0
    # beta from the fitting pairs' frames: +P(m > 0) where positive differences are the more frequent, else
    # -P(m < 0), m = positive - negative activation per pair and frame; the kept entries are the largest |beta|
    from tada_core.interventions.hooks import record

    layers = sorted(method.vectors)
    pos = [p for _, p, _ in ctx.items for _ in ctx.fit_seeds]
    neg = [n for _, _, n in ctx.items for _ in ctx.fit_seeds]
    seeds = [s for _ in ctx.items for s in ctx.fit_seeds]
    assert len(pos) <= ctx.settings.batch_size // 2      # the method fits them in one call, as here
    with record(tiny, layers, mode="frames") as rec:
        tiny.generate(pos + neg, seeds=seeds + seeds, settings=ctx.settings)
    beta = []
    for i in layers:
        acts = rec.activations[i]                          # [steps, pairs + pairs, frames, width]
        m = acts[:, :len(pos)] - acts[:, len(pos):]
        up, down = (m > 0).double().mean((1, 2)), (m < 0).double().mean((1, 2))
        beta.append(torch.where(up >= down, up, -down))
    beta = torch.stack(beta, 1).float()                     # [steps, layers, width]
    kept = stacked != 0
    torch.testing.assert_close(stacked[kept], beta[kept], atol=1e-6, rtol=0)
    for step in range(len(beta)):
        assert beta[step][kept[step]].abs().min() >= beta[step][~kept[step]].abs().max()
    # the top 6 are dimensions where every frame agrees (|beta| = 1); keeping every entry shows the rest too
    everything = AUSteer(localized=False, k=10 ** 6)
    everything.setup(ctx)
    assert (beta.abs() < 1).any()
    torch.testing.assert_close(torch.stack([everything.vectors[i] for i in layers], 1), beta, atol=1e-6, rtol=0)


def test_austeer_keeps_its_direction_for_a_resume(tiny, tmp_path):
    ctx = ctx_for(tiny)
    ctx.cache = tmp_path
    first = AUSteer(localized=True, k=4)
    first.setup(ctx)
    assert (tmp_path / "austeer-f.safetensors").is_file()
    again = AUSteer(localized=True, k=4)
    again.setup(ctx)
    assert again.max_strength == first.max_strength
    assert all(torch.equal(again.vectors[i], first.vectors[i]) for i in first.vectors)


def test_token_embeddings_find_the_concept_word(tiny):
    ctx = ctx_for(tiny)
    method = TokenEmbeddings()
    method.setup(ctx)
    ids_pos, ids_neg = tiny.prompt_token_ids("a fast song"), tiny.prompt_token_ids("a slow song")
    assert ids_pos != ids_neg
    assert all(v.norm() > 0 for v in method.direction.values())
    # d = mean over bases of (state of the concept word in the positive prompt - state at its positions in the
    # negative prompt); here the prompts have one length, so the word is where their token ids differ
    layers = list(range(len(tiny.layers)))
    expected = {i: 0.0 for i in layers}
    for _, pos, neg in ctx.items:
        ip, ineg = tiny.prompt_token_ids(pos), tiny.prompt_token_ids(neg)
        assert len(ip) == len(ineg)
        word = [j for j in range(len(ip)) if ip[j] != ineg[j]]            # "fast" vs "slow": two tokens each
        assert len(word) == 2
        got = tiny.capture_conditioning([pos, neg], ctx.settings, layers)
        for i in layers:
            s = got[i].states.float()
            expected[i] += (s[0, word] - s[1, word]).mean(0) / len(ctx.items)
    for i in layers:
        torch.testing.assert_close(method.direction[i], expected[i], atol=1e-5, rtol=1e-5)
    assert method.prompts(ctx, [1]) == ["a waltz music"]


def test_text_embeddings_at_strength_one_moves_toward_the_positive_prompt(tiny):
    ctx = ctx_for(tiny)
    method = TextEmbeddings()
    plain = tiny.generate("a song", seeds=5).audio
    pos = tiny.generate("a fast song", seeds=5).audio
    out = steered(tiny, method, ctx, [1.0], bases=[0], seeds=[5])
    assert not torch.allclose(out, plain, atol=1e-4)
    # neutral + alpha (positive - negative) with the negative prompt as the neutral one and alpha 1 is the
    # positive prompt's conditioning: its run, exactly up to rounding (the prompts have one token length)
    ctx.items = [("a slow song", "a fast song", "a slow song")]
    out = steered(tiny, method, ctx, [1.0], bases=[0], seeds=[5])
    neg = tiny.generate("a slow song", seeds=5).audio
    assert (neg - pos).abs().max() > 1e-2                      # the two prompts differ: the test can fail
    torch.testing.assert_close(out, pos, atol=2e-4, rtol=0)


def test_localized_prompt_embeddings_steer_only_the_functional_layers(tiny):
    from tada_core.interventions.hooks import record

    ctx = ctx_for(tiny, functional=(1,))

    def first_step(method, strength):           # every layer's output at the first diffusion step
        prompt = method.prompts(ctx, [0])[0]
        with method.apply(ctx, [0], [strength]), record(tiny, [0, 1, 2], mode="frames") as rec:
            tiny.generate(prompt, seeds=5)
        return {i: a[0] for i, a in rec.activations.items()}

    for key in ("text-emb", "token-emb"):
        local, everywhere = make_method(f"{key}-f"), make_method(key)
        local.setup(ctx)
        everywhere.setup(ctx)
        assert local.layers == [1] and everywhere.layers is None
        plain, steered_f, steered_all = first_step(local, 0.0), first_step(local, 1.0), first_step(everywhere, 1.0)
        assert torch.equal(steered_f[0], plain[0]), key             # before the functional layer: untouched
        assert not torch.equal(steered_all[0], plain[0]), key       # (where the all-layer variant already acts)
        assert not torch.allclose(steered_f[1], plain[1], atol=1e-5), key   # the functional layer is steered
    with pytest.raises(MethodUnavailable, match="no functional layer"):
        make_method("text-emb-f").setup(ctx_for(tiny, functional=()))


def test_random_directions_keep_the_norm_per_layer_and_step_and_are_fixed_by_the_seed():
    from tada_core.evaluation.benchmark.methods import random_like

    v = {0: torch.tensor([3.0, 4.0]), 2: torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]])}
    r = random_like(v, 7)
    assert r[0].norm().item() == pytest.approx(5.0)
    assert r[2].norm(dim=1).tolist() == pytest.approx([1.0, 0.0, 2.0])     # a zero step stays zero
    assert torch.equal(r[0], random_like(v, 7)[0]) and not torch.equal(r[0], random_like(v, 8)[0])
    cos = float(r[0] @ v[0]) / 25.0
    assert abs(cos) < 1.0                                                 # not the direction itself


def test_a_control_draws_per_base_prompt_and_sweeps_its_parents_strengths(tiny, tmp_path):
    from tada_core.evaluation.benchmark.methods import random_like
    from tada_core.interventions.hooks import steer
    from tada_core.methods.caa import compute_caa

    vec = compute_caa(tiny, ["a fast song"] * 2, ["a slow song"] * 2, concept="tempo", seeds=[0, 1],
                      functional_layers=[1], alpha_range=(-1.0, 1.0), progress=False)
    vec.save(tmp_path / "tiny-stable-audio-tempo-caa")
    where = str(tmp_path / "{model}-{concept}-{kind}")
    ctx = ctx_for(tiny)
    ctx.vectors = where
    control = make_method("random-caa", vector_renorm=False)
    control.setup(ctx)
    assert control.follows == "caa" and control.layers == [1] and control.renorm is False
    out = steered(tiny, control, ctx, [0.0, 2.0, 2.0], bases=[0, 0, 1], seeds=[5, 5, 5])
    for b, row in ((0, 1), (1, 2)):                           # base b is steered with draw b (seed b)
        draw = random_like({1: vec.vectors[1]}, b)
        assert draw[1].norm().item() == pytest.approx(vec.vectors[1].norm().item(), rel=1e-5)
        with steer(tiny, draw, alpha=2.0, use_renorm=False):
            alone = tiny.generate(ctx.items[b][0], seeds=5).audio
        torch.testing.assert_close(out[row:row + 1], alone, atol=1e-5, rtol=0)
    assert torch.equal(out[0], tiny.generate(["a song", "a song", "a waltz"], seeds=[5, 5, 5]).audio[0])
    result = bench(tiny, None, methods=["pci", "caa", "random-caa"], vectors=where, vector_renorm=False)
    caa, rnd = result.methods[1:]
    assert rnd.available and rnd.grid == caa.grid and rnd.label == "CAA(F) random"
    assert result.control_verdict("caa") in ("yes", "no", "below") and result.control_verdict("pci") == ""
    alone = bench(tiny, None, methods=["pci", "random-caa"], vectors=where, calibrate=False).methods[1]
    assert not alone.available and "not in this run" in alone.reason


def test_methods_can_be_added_to_a_finished_folder_without_redoing_its_calls(tiny, tmp_path):
    first = bench(tiny, tmp_path / "b", methods=["pci", "text-emb"])
    before = (tmp_path / "b" / "clips.jsonl").read_text()
    grown = bench(tiny, tmp_path / "b", methods=["pci", "text-emb", "text-emb-f"])
    after = (tmp_path / "b" / "clips.jsonl").read_text()
    assert after.startswith(before)                              # the old calls stay, none is redone
    new_units = [json.loads(line)["unit"] for line in after[len(before):].splitlines()]
    assert new_units and all("text-emb-f" in u[:2] for u in new_units)
    assert json.loads((tmp_path / "b" / "spec.json").read_text())["methods"] == ["pci", "text-emb", "text-emb-f"]
    assert [m.key for m in grown.methods] == ["pci", "text-emb", "text-emb-f"]
    assert grown.methods[1].auc == first.methods[1].auc
    with pytest.raises(TadaError, match="differs in: methods"):        # dropping a method is still refused
        bench(tiny, tmp_path / "b", methods=["pci"])
    with pytest.raises(TadaError, match="differs in: methods, reference_seeds"):   # and any other change with it
        run_benchmark(tiny, CONCEPT, Energy(), concepts=CONCEPTS, methods=["pci", "text-emb", "text-emb-f", "token-emb"],
                      distance=MelDistance(), quality=Typicality(), functional=[1], seeds=[300], strengths=2,
                      reference_seeds=range(10_000, 10_004), out=tmp_path / "b", progress=False)


# ----- the run ---------------------------------------------------------------------------
def bench(m, out, methods=("pci", "text-emb", "freesliders"), on_unit=None, **kw):
    return run_benchmark(m, CONCEPT, Energy(), concepts=CONCEPTS, methods=list(methods),
                         distance=MelDistance(), quality=Typicality(), functional=[1], seeds=[300],
                         strengths=2, reference_seeds=range(10_000, 10_006), out=out, progress=False,
                         on_unit=on_unit, **kw)


def test_resumed_run_equals_an_uninterrupted_one(tiny, tmp_path):
    whole = bench(tiny, tmp_path / "whole")
    calls = []

    def stop(done, total):
        calls.append(done)
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bench(tiny, tmp_path / "cut", on_unit=stop)
    lines = (tmp_path / "cut" / "clips.jsonl").read_text().splitlines()
    assert 0 < len(lines) < 1 + 3 * 2 * 1
    resumed = bench(tiny, tmp_path / "cut")
    plain = {k: v for k, v in whole.to_dict().items() if k != "compute_s"}      # timing differs, numbers must not
    assert {k: v for k, v in resumed.to_dict().items() if k != "compute_s"} == plain
    table = json.loads((tmp_path / "cut" / "table.json").read_text())
    assert [m["key"] for m in table[0]["methods"]] == ["pci", "text-emb", "freesliders"]
    assert (tmp_path / "cut" / "curves.png").is_file() and (tmp_path / "cut" / "table.csv").is_file()
    text = whole.methods[1]            # its range was calibrated: one of the probed multiples of the nominal 2
    assert text.grid["pos"][-1] in [float(f"{2 * f:.6g}") for f in (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1, 2, 4)]
    pci = whole.methods[0]
    assert whole.p_max["pos"] == pytest.approx(max(pci.curves["pos"]["distance"]))
    with pytest.raises(TadaError, match="differs in: strengths_per_direction"):
        run_benchmark(tiny, CONCEPT, Energy(), concepts=CONCEPTS, methods=["pci", "text-emb", "freesliders"],
                      distance=MelDistance(), quality=Typicality(), functional=[1], seeds=[300], strengths=3,
                      reference_seeds=range(10_000, 10_006), out=tmp_path / "cut", progress=False)


def test_a_method_range_that_is_not_finite_is_refused(tiny, monkeypatch):
    from tada_core.evaluation.benchmark import methods

    monkeypatch.setitem(methods.METHODS, "text-emb", lambda: TextEmbeddings(max_strength=float("nan")))
    with pytest.raises(TadaError, match="text-emb: its strengths .* are not positive finite"):
        bench(tiny, None, methods=["pci", "text-emb"], calibrate=False)


def test_a_changed_method_range_is_refused_before_any_new_work(tiny, tmp_path, monkeypatch):
    from tada_core.evaluation.benchmark import methods

    bench(tiny, tmp_path / "b", methods=["pci", "text-emb"], calibrate=False)
    lines = (tmp_path / "b" / "clips.jsonl").read_text()
    monkeypatch.setitem(methods.METHODS, "text-emb", lambda: TextEmbeddings(max_strength=0.5))
    with pytest.raises(TadaError, match="strengths of text-emb in the folder differ"):
        bench(tiny, tmp_path / "b", methods=["pci", "text-emb"], calibrate=False)
    assert (tmp_path / "b" / "clips.jsonl").read_text() == lines


def test_leakage_is_measured_in_units_of_the_other_concepts_prompt_gap(tiny):
    mood = Concept("mood", "a happy {base}", "a sad {base}")
    result = bench(tiny, None, methods=["pci", "text-emb"], specificity=[CONCEPT, mood])
    assert list(result.other_gaps) == ["mood"] and result.other_gaps["mood"] > 0
    text = result.methods[1]
    assert list(text.leakage_by_concept) == ["mood"] and math.isfinite(text.leakage) and text.leakage >= 0


def test_caa_runs_in_the_benchmark_and_every_method_is_compared_with_it(tiny, tmp_path):
    from tada_core.methods.caa import compute_caa

    vec = compute_caa(tiny, ["a fast song"] * 2, ["a slow song"] * 2, concept="tempo", seeds=[0, 1],
                      functional_layers=[1], alpha_range=(-1.0, 1.0), progress=False)
    vec.save(tmp_path / "tiny-stable-audio-tempo-caa")
    result = bench(tiny, None, methods=["pci", "caa"], vectors=str(tmp_path / "{model}-{concept}-{kind}"))
    pci, caa = result.methods
    assert caa.available and caa.layers == [1] and caa.hyperparameters["renorm"] is True
    assert caa.vs_reference[0] == 0.0
    diff, lo, hi = pci.vs_reference
    assert diff == pytest.approx(pci.auc["avg"] - caa.auc["avg"]) and lo <= hi


def test_vectors_can_be_benchmarked_without_renorm_and_a_folder_keeps_its_setting(tiny, tmp_path):
    from tada_core.methods.caa import compute_caa

    vec = compute_caa(tiny, ["a fast song"] * 2, ["a slow song"] * 2, concept="tempo", seeds=[0, 1],
                      functional_layers=[1], alpha_range=(-1.0, 1.0), progress=False)
    vec.save(tmp_path / "tiny-stable-audio-tempo-caa")
    where = str(tmp_path / "{model}-{concept}-{kind}")
    on = bench(tiny, tmp_path / "a", methods=["pci", "caa"], vectors=where, calibrate=False).methods[1]
    off = bench(tiny, tmp_path / "b", methods=["pci", "caa"], vectors=where, calibrate=False,
                vector_renorm=False).methods[1]
    assert on.hyperparameters["renorm"] is True and off.hyperparameters["renorm"] is False and on.grid == off.grid

    def steered(folder):  # the journal's distances of every strength, before truncation at P_max
        recs = [json.loads(line) for line in (folder / "clips.jsonl").read_text().splitlines()]
        return [r["distance"] for r in recs if r["unit"][0] == "caa"]

    assert steered(tmp_path / "a") != steered(tmp_path / "b")     # the setting reaches the hook
    with pytest.raises(TadaError, match="vector_renorm"):   # the folder was made without ReNorm
        bench(tiny, tmp_path / "b", methods=["pci", "caa"], vectors=where, calibrate=False)


def test_unavailable_methods_are_reported_not_fatal(tiny, tmp_path):
    result = bench(tiny, None, methods=["pci", "caa", "pci-f"], vectors=str(tmp_path / "{concept}-{kind}"))
    caa = [m for m in result.methods if m.key == "caa"][0]
    assert not caa.available and "no CAA vector" in caa.reason
    # a concept without functional layers: the localized variants are n/a, the rest runs
    result = run_benchmark(tiny, CONCEPT, Energy(), concepts=CONCEPTS, methods=["pci", "pci-f"],
                           distance=MelDistance(), quality=Typicality(), functional=[], seeds=[300], strengths=1,
                           reference_seeds=range(10_000, 10_006), progress=False)
    pci_f = result.methods[1]
    assert result.methods[0].available and not pci_f.available and "no functional layer" in pci_f.reason


@pytest.mark.parametrize("kwargs, message", [
    ({"methods": ["pci", "nope"]}, "unknown method 'nope'"),
    ({"strengths": 0}, "strengths per direction"),
    ({"seeds": [0]}, "held-out seeds"),
    ({"seeds": []}, "seeds is empty"),
])
def test_bad_spec_is_a_one_line_error(tiny, kwargs, message):
    args = dict(concepts=CONCEPTS, methods=["pci"], distance=MelDistance(), quality=Typicality(), functional=[1],
                seeds=[300], strengths=2, progress=False)
    args.update(kwargs)
    with pytest.raises(TadaError, match=message) as e:
        run_benchmark(tiny, CONCEPT, Energy(), **args)
    assert "\n" not in str(e.value)


def test_a_scorer_that_does_not_fit_is_refused(models):
    organism = models("tada-organism")
    with pytest.raises(TadaError, match="organism scorer knows"):
        run_benchmark(organism, Concept("jazz", "a jazz {base}", "a rock {base}"), organism.entry.scorer(),
                      concepts=CONCEPTS, methods=["pci"], distance=MelDistance(), quality=Typicality(),
                      functional=[], seeds=[300], progress=False)


def test_cli_benchmark_on_the_organism(cli, tmp_path):
    code, out, err = cli("benchmark", "--concept", "mood", "--methods", "pci", "text-emb", "--prompts", "2",
                         "--strengths", "1", "--functional", "4", "--specificity", "--duration", "1", "--steps",
                         "4", "--no-vector-renorm", "--out", tmp_path / "b")
    assert code == 0, err
    assert "| mood | PCI | all |" in out and "| mood | Text Embeddings |" in out
    assert (tmp_path / "b" / "table.md").is_file() and (tmp_path / "b" / "mood" / "result.json").is_file()
    assert "CAA and SAE without ReNorm" in out
    assert json.loads((tmp_path / "b" / "mood" / "spec.json").read_text())["vector_renorm"] is False
    code, _, err = cli("benchmark", "--concept", "mood", "--methods", "bogus", "--out", tmp_path / "c")
    assert code == 2 and "unknown method 'bogus'" in err
    (tmp_path / "b" / "table.md").unlink()      # a partial run's combined tables, rebuilt from its concepts' results
    code, out, err = cli("benchmark", "table", "--rebuild", tmp_path / "b")
    assert code == 0 and "| mood | PCI | all |" in (tmp_path / "b" / "table.md").read_text()
    assert "CAA and SAE without ReNorm" in out
    code, _, err = cli("benchmark", "table", "--rebuild", tmp_path)
    assert code == 2 and "no concept folder with a result.json" in err


def test_cli_interrupt_is_a_message_not_a_traceback(cli, monkeypatch, tmp_path):
    from tada_core.cli import benchmark as command

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "run_benchmark", interrupted)
    code, _, err = cli("benchmark", "--concept", "mood", "--out", tmp_path / "b")
    assert code == 130 and "interrupted" in err and "resumes" in err and "Traceback" not in err


def test_verdicts_against_localized_caa_follow_the_paired_intervals(tmp_path):
    from tada_core.evaluation.benchmark.runner import BenchmarkResult, MethodResult, verdicts, write_tables

    def method(key, label, vs, available=True):
        return MethodResult(key=key, label=label, available=available, layers=[3],
                            auc={"pos": 1.0, "neg": 1.0, "avg": 1.0}, auc_ci={"avg": [0.5, 1.5]},
                            smoothness={"pos": 0.1, "neg": 0.1}, grid={"pos": [1.0], "neg": [-1.0]},
                            kept={"pos": 1, "neg": 1}, vs_reference=vs, reason="" if available else "no vector")

    def result(concept, methods):
        return BenchmarkResult(concept=concept, model="m", scorer="s", measure_label="x", distance="d", quality="q",
                               n_items=6, p_max={"pos": 1.0, "neg": 1.0}, gap=1.0, functional=[3], methods=methods)

    ms = [method("caa", "CAA(F)", [0.0, 0.0, 0.0]), method("pci", "PCI", [2.0, 0.5, 3.0]),
          method("text-emb", "Text Embeddings", [-1.0, -2.0, 0.1]), method("austeer", "AUSteer", [-1.0, -2.0, -0.1]),
          method("sae", "SAE(F)", [], available=False)]
    assert verdicts(result("tempo", ms)) == {"beats": ["PCI"], "ties": ["Text Embeddings"], "loses": ["AUSteer"]}
    no_caa = [method("caa", "CAA(F)", [], available=False), ms[1]]
    assert verdicts(result("drums", no_caa)) == {"beats": [], "ties": [], "loses": []}
    write_tables([result("tempo", ms), result("drums", no_caa)], tmp_path)
    text = (tmp_path / "table.md").read_text()
    assert "| tempo | 3 | PCI | Text Embeddings | AUSteer |" in text
    assert "| drums | - | no comparison: no vector |" in text
    assert "random control" not in text                     # no control in these runs: no controls block


def test_a_method_clears_its_control_only_when_the_intervals_separate(tmp_path):
    from tada_core.evaluation.benchmark.runner import BenchmarkResult, MethodResult, write_tables

    def method(key, ci):
        return MethodResult(key=key, label=key.upper(), available=True, layers=[3],
                            auc={"pos": 1.0, "neg": 1.0, "avg": sum(ci) / 2}, auc_ci={"avg": list(ci)},
                            smoothness={"pos": 0.1, "neg": 0.1}, grid={"pos": [1.0], "neg": [-1.0]},
                            kept={"pos": 1, "neg": 1})

    def result(ms):
        return BenchmarkResult(concept="tempo", model="m", scorer="s", measure_label="x", distance="d", quality="q",
                               n_items=6, p_max={"pos": 1.0, "neg": 1.0}, gap=1.0, functional=[3], methods=ms)

    r = result([method("caa", (2.0, 3.0)), method("random-caa", (0.0, 1.9)), method("sae", (1.0, 2.0)),
                method("random-sae", (1.5, 2.5)), method("austeer", (-1.0, 0.0)), method("random-austeer", (0.5, 1.0)),
                method("pci", (0.0, 1.0))])
    assert [r.control_verdict(k) for k in ("caa", "sae", "austeer", "pci")] == ["yes", "no", "below", ""]
    assert r.table_rows()[0][6] == "yes" and r.table_rows()[-1][6] == ""
    write_tables([r], tmp_path)
    text = (tmp_path / "table.md").read_text()
    assert "| tempo | CAA | 2.500 [2.000, 3.000] | 0.950 [0.000, 1.900] | yes |" in text
