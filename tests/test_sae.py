"""TopK SAE (Eq. 4-5), training, sparsify layout, TF-IDF features (Eq. 6-7)."""

import json

import numpy as np

import pytest
import torch

from tada_core import GenerationSettings, steer
from tada_core.errors import TadaError
from tada_core.artifacts.sae import SaeConfig, TopKSAE
from tada_core.methods.sae import evaluate_sae, sae_vector, select_features, tfidf_scores, train_sae


def sparse_data(n=4096, d=16, atoms=64, active=3, seed=0):
    """Tokens that are sums of `active` of `atoms` fixed directions: an SAE can learn them."""
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.nn.functional.normalize(torch.randn(atoms, d, generator=g), dim=1)
    idx = torch.stack([torch.randperm(atoms, generator=g)[:active] for _ in range(n)])
    coef = torch.rand(n, active, generator=g) + 0.5
    return torch.einsum("na,nad->nd", coef, dictionary[idx]) + 0.3


def test_topk_keeps_exactly_k_nonzeros_per_token():
    sae = TopKSAE(SaeConfig(d_in=16, expansion_factor=4, k=5), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        sae.encoder.bias.fill_(1.0)           # every pre-activation positive: TopK alone decides
        f = sae.dense_latents(torch.randn(50, 16))
    assert ((f != 0).sum(dim=1) == 5).all()
    acts, idx = sae.encode(torch.randn(7, 16))
    assert acts.shape == idx.shape == (7, 5)
    # Eq. 4 by hand: pre = ReLU(W_enc (x - b_pre) + b_enc); each token keeps its 5 largest in place, the rest is 0.
    # A bias of -2 leaves most tokens fewer than 5 positive latents: ReLU's zeros fill their top 5
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, 16, generator=g)
    with torch.no_grad():
        sae.b_dec.copy_(torch.randn(16, generator=g))
        for bias in (1.0, -2.0):
            sae.encoder.bias.fill_(bias)
            pre = torch.relu((x - sae.b_dec) @ sae.encoder.weight.T + bias)
            fifth = pre.sort(dim=1, descending=True).values[:, 4:5]
            expected = torch.where(pre >= fifth, pre, torch.zeros(()))
            torch.testing.assert_close(sae.dense_latents(x), expected)
            acts, idx = sae.encode(x)
            torch.testing.assert_close(acts, pre.gather(1, idx))
        assert ((pre > 0).sum(1) < 5).any()


def test_training_reduces_fvu_and_keeps_unit_norm_decoder():
    x = sparse_data()
    cfg = SaeConfig(d_in=16, expansion_factor=4, k=4)
    batches = lambda: x.split(256)  # noqa: E731
    untrained = evaluate_sae(TopKSAE(cfg, generator=torch.Generator().manual_seed(0)), batches())
    sae = train_sae(batches, cfg, epochs=8, lr=3e-3, progress=False)
    m = evaluate_sae(sae, batches())
    assert m.fvu < 0.3 < untrained.fvu and m.tokens == 4096
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(64), atol=1e-5)
    assert 0 <= m.dead_fraction < 1 and 0 <= m.high_freq_fraction <= 1
    # the metrics by hand, on an SAE with eight latents that can never fire: FVU is the squared error over the
    # squared deviation from the mean token; a latent is dead when it is in no token's top k, high-frequency
    # when it is in the top k of more than 10% of the tokens
    with torch.no_grad():
        sae.encoder.bias[:8] = -1e3
        out = sae(x)
    share = (out.latent_indices[..., None] == torch.arange(64)).any(1).float().mean(0)
    m = evaluate_sae(sae, batches())
    assert m.dead_fraction == 8 / 64 and (share[:8] == 0).all()
    assert m.fvu == pytest.approx(float((out.sae_out - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()), rel=1e-4)
    assert m.high_freq_fraction == float((share > 0.1).float().mean()) and 0 < m.high_freq_fraction
    assert ((share > 0.01) & (share <= 0.1)).any()    # a threshold off by a factor of 10 would count these


def test_training_is_deterministic_per_seed():
    x = sparse_data(n=1024)
    cfg = SaeConfig(d_in=16, expansion_factor=2, k=4)
    a = train_sae(lambda: x.split(256), cfg, epochs=2, progress=False)
    b = train_sae(lambda: x.split(256), cfg, epochs=2, progress=False)
    assert torch.equal(a.W_dec, b.W_dec) and torch.equal(a.encoder.weight, b.encoder.weight)


def test_sparsify_layout_round_trip_and_hand_built_folder(tmp_path):
    sae = TopKSAE(SaeConfig(d_in=16, expansion_factor=2, k=3), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        sae.b_dec.normal_()
    folder = sae.save(tmp_path / "transformer.transformer_blocks.6.attn2")
    again = TopKSAE.load(folder)
    x = torch.randn(9, 16)
    assert torch.equal(again(x).sae_out, sae(x).sae_out)
    # a folder as sparsify writes it: its cfg.json fields and tensor names, built by hand
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(2)
    W_enc, b_enc = torch.randn(32, 16, generator=g), torch.randn(32, generator=g)
    W_dec, b_dec = torch.nn.functional.normalize(torch.randn(32, 16, generator=g), dim=1), torch.randn(16, generator=g)
    hp = tmp_path / "sparsify" / "layers.6"
    hp.mkdir(parents=True)
    save_file({"encoder.weight": W_enc, "encoder.bias": b_enc, "W_dec": W_dec, "b_dec": b_dec},
              str(hp / "sae.safetensors"))
    (hp / "cfg.json").write_text(json.dumps({"expansion_factor": 2, "normalize_decoder": True, "num_latents": 0,
                                             "k": 3, "multi_topk": False, "skip_connection": False,
                                             "transcode": False, "d_in": 16}))
    loaded = TopKSAE.load(hp)
    pre = torch.relu((x - b_dec) @ W_enc.T + b_enc)
    acts, idx = pre.topk(3, dim=-1)
    expected = torch.einsum("tk,tkd->td", acts, W_dec[idx]) + b_dec
    assert torch.allclose(loaded(x).sae_out, expected, atol=1e-6)


def _hand_built(folder, cfg, d=16, m=32, seed=2):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True)
    save_file({"encoder.weight": torch.randn(m, d, generator=g), "encoder.bias": torch.randn(m, generator=g),
               "W_dec": torch.randn(m, d, generator=g), "b_dec": torch.randn(d, generator=g)},
              str(folder / "sae.safetensors"))
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return folder


@pytest.mark.parametrize("cfg, message", [
    ({"activation": "groupmax"}, "activation='groupmax'"),
    ({"transcode": True}, "transcode=true"),
    ({"skip_connection": True}, "skip_connection=true"),
    ({"signed": True}, "signed=true"),
    ({"jumprelu_threshold": 0.1}, "unknown fields \\['jumprelu_threshold'\\]"),
    ({"input_unit_norm": "yes"}, "input_unit_norm must be true or false"),
])
def test_configs_it_cannot_compute_are_refused(tmp_path, cfg, message):
    base = {"expansion_factor": 2, "k": 3, "d_in": 16, "normalize_decoder": True}
    hp = _hand_built(tmp_path / "layers.6", {**base, **cfg})
    with pytest.raises(TadaError, match=message):
        TopKSAE.load(hp)
    # the same folder with plain TopK values loads
    (hp / "cfg.json").write_text(json.dumps({**base, "activation": "topk", "transcode": False}))
    assert TopKSAE.load(hp).cfg.k == 3


def test_load_many_and_load_from_hub(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from .test_hub import _populate_cache

    root = tmp_path / "saes"
    for hp in ("transformer.transformer_blocks.6.attn2", "transformer.transformer_blocks.8.attn2"):
        _hand_built(root / hp, {"expansion_factor": 2, "k": 3, "d_in": 16})
    many = TopKSAE.load_many(root)
    assert sorted(many) == ["transformer.transformer_blocks.6.attn2", "transformer.transformer_blocks.8.attn2"]
    with pytest.raises(TadaError, match="no hookpoints"):
        TopKSAE.load_many(root, hookpoints=["transformer.transformer_blocks.7.attn2"])
    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    _populate_cache(cache, "tada-org/saes", root)
    one = TopKSAE.load_from_hub("tada-org/saes", "transformer.transformer_blocks.8.attn2")
    assert torch.equal(one.W_dec, many["transformer.transformer_blocks.8.attn2"].W_dec)
    assert sorted(TopKSAE.load_many("tada-org/saes")) == sorted(many)


def test_eq6_tfidf_on_constructed_means_and_eq7_vector():
    mu_pos = torch.tensor([1.0, 1.0, 0.0, 2.0])
    mu_neg = torch.tensor([0.0, 1.0, 1.0, 3.0])
    s = tfidf_scores(mu_pos, mu_neg, eps=1e-6)
    assert s[0] == pytest.approx(torch.log1p(torch.tensor(1e6)).item(), rel=1e-5)   # fires only for c
    assert s[1] == pytest.approx(torch.log(torch.tensor(2.0)).item(), rel=1e-5)
    assert s[2] == 0
    assert s[3] == pytest.approx(2 * torch.log1p(torch.tensor(1 / 3)).item(), rel=1e-5)
    assert select_features(s, 3) == [0, 1, 3]   # log 2 = 0.69 > 2 log(4/3) = 0.58 > 0
    sae = TopKSAE(SaeConfig(d_in=16, expansion_factor=2, k=3), generator=torch.Generator().manual_seed(1))
    assert torch.allclose(sae_vector(sae, [0, 3]), sae.W_dec[0] + sae.W_dec[3])
    with pytest.raises(TadaError, match="tau must be"):
        select_features(s, 9)
    with pytest.raises(TadaError, match="do not exist"):
        sae_vector(sae, [99])


def test_sae_vector_steers_through_the_core_intervention(models):
    """Eq. 8: h + alpha * v_SAE, applied by the same steer hook as CAA."""
    model = models("tada-organism")
    sae = TopKSAE(SaeConfig(d_in=model.layers[6].width, expansion_factor=2, k=8),
                  generator=torch.Generator().manual_seed(0))
    v = sae_vector(sae, [1, 2, 3])
    with steer(model, {6: v}, alpha=[0.0, 2.0]):
        out = model.generate(["a waltz"] * 2, seeds=[0, 0]).audio
    plain = model.generate(["a waltz"] * 2, seeds=[0, 0]).audio   # same batch layout: bit-comparable
    assert torch.equal(out[0], plain[0]) and not torch.allclose(out[1], plain[0])


def test_bad_configs():
    with pytest.raises(TadaError, match="k=99 exceeds"):
        TopKSAE(SaeConfig(d_in=4, expansion_factor=2, k=99))
    with pytest.raises(TadaError, match="expansion_factor must be"):
        SaeConfig(d_in=4, expansion_factor=0).check()
    with pytest.raises(TadaError, match="yielded no batches"):
        train_sae(lambda: [], SaeConfig(d_in=4, expansion_factor=2, k=2), progress=False)


def test_resumed_cache_equals_uninterrupted(models, tmp_path):
    from tada_core.interventions.cache import ActivationCache, cache_activations

    model = models("tada-organism")
    prompts = ["a waltz", "a fast march", "a sad tune", "a pop song with drums", "a dark melody"]
    kw = dict(layers=[6, 8], tokens=4, settings=GenerationSettings(batch_size=2), progress=False)
    full = cache_activations(model, prompts, tmp_path / "full", **kw)
    assert len(full.shards) == 3 and full.n_tokens == 5 * 4 * model.defaults.steps
    original, calls = model.generate, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    model.generate = failing
    try:
        with pytest.raises(KeyboardInterrupt):
            cache_activations(model, prompts, tmp_path / "cut", **kw)
    finally:
        del model.generate
    assert len(ActivationCache(tmp_path / "cut").shards) == 1 and not list((tmp_path / "cut").glob("*.tmp"))
    resumed = cache_activations(model, prompts, tmp_path / "cut", **kw)
    for layer in (6, 8):
        for a, b in zip(full.shard_tensors(layer), resumed.shard_tensors(layer), strict=True):
            assert torch.equal(a, b)
    batches = list(resumed.batches(6, batch_tokens=32))
    assert sum(len(x) for x in batches) == resumed.n_tokens and batches[0].shape == (32, 128)
    with pytest.raises(TadaError, match="different cache .*tokens"):
        cache_activations(model, prompts, tmp_path / "cut", **{**kw, "tokens": 8})
    with pytest.raises(TadaError, match="has layers \\[6, 8\\], not 3"):
        next(resumed.batches(3))


def test_concept_features_vector_and_browser(models, tmp_path):
    from tada_core.methods.features import browse, concept_vector, prompt_activations
    from tada_core.artifacts.hub import load_vector

    model = models("tada-organism")
    sae = TopKSAE(SaeConfig(d_in=128, expansion_factor=2, k=8), generator=torch.Generator().manual_seed(0))
    pos, neg = ["a waltz with drums", "a march with drums"], ["a waltz without drums", "a march without drums"]
    vec, chosen = concept_vector(model, {6: sae}, pos, neg, concept="drums", tau=5, seeds=[0, 1])
    feats = chosen[6].features
    assert len(feats) == 5 and torch.allclose(vec.vectors[6], sae.W_dec[feats].sum(0))
    rows_pos = prompt_activations(model, {6: sae}, pos, seeds=[0, 1])[6]
    assert rows_pos.shape == (2, 256) and torch.allclose(rows_pos.mean(0), chosen[6].mu_pos, atol=1e-6)
    # each row: the prompt's TopK latents averaged over every frame and step, from layer 6's recorded output
    from tada_core.interventions.hooks import record

    with record(model, [6], mode="frames") as rec:
        model.generate(pos, seeds=[0, 1])
    frames = rec.activations[6]                                   # [steps, prompts, frames, width]
    latents = sae.dense_latents(frames.reshape(-1, 128)).reshape(*frames.shape[:3], 256)
    torch.testing.assert_close(rows_pos, latents.mean((0, 2)), atol=1e-6, rtol=1e-5)
    # Eq. 6 (positive prompts' means against the negative ones') ranks the chosen features first
    mu_pos, mu_neg = chosen[6].mu_pos, chosen[6].mu_neg
    torch.testing.assert_close(chosen[6].scores, mu_pos * torch.log(1 + 1 / (mu_neg + 1e-6)))
    assert set(feats) == set(chosen[6].scores.topk(5).indices.tolist())
    again = load_vector(vec.save(tmp_path / "drums-sae"))
    assert again.method == "sae" and again.extra["features"]["6"] == feats
    info = browse(feats[0], rows_pos, pos, {"drums": chosen[6]})
    assert [p for p, _ in info["top_prompts"]][0] in pos and info["concept_scores"]["drums"] > 0
    with pytest.raises(TadaError, match="does not exist"):
        browse(999, rows_pos, pos)
    with pytest.raises(TadaError, match="reads 16-dim"):
        prompt_activations(model, {6: TopKSAE(SaeConfig(d_in=16, expansion_factor=2, k=2))}, pos)


def test_held_out_signs_keep_only_features_more_active_on_the_positive_side():
    from tada_core.methods.features import held_out_signs

    rng = np.random.default_rng(0)
    pos = torch.tensor(rng.uniform(0, 1, size=(12, 4)))
    neg = pos.clone()
    neg[:, 0] -= 0.5                          # feature 0: clearly higher on c than on c-tilde
    neg[:, 1] += 0.5                          # feature 1: higher on c-tilde (a reversed feature)
    neg[:, 2] += torch.tensor(rng.normal(scale=0.3, size=12))   # feature 2: no consistent sign
    kept, report = held_out_signs(pos, neg, [0, 1, 2, 3], groups=list(range(12)))
    assert kept == [0]
    assert report[0][0] == pytest.approx(0.5) and report[0][1] > 0
    assert report[1][2] < 0 and report[2][1] < 0 < report[2][2] and report[3] == [0.0, 0.0, 0.0]


def test_the_held_out_check_drops_generic_features_and_is_recorded(models):
    from tada_core.methods.features import concept_vector, prompt_activations

    model = models("tada-organism")
    sae = TopKSAE(SaeConfig(d_in=128, expansion_factor=2, k=8), generator=torch.Generator().manual_seed(0))
    pos, neg = ["a waltz with drums", "a march with drums"], ["a waltz without drums", "a march without drums"]
    held = (pos * 2, neg * 2, [7, 7, 8, 8])
    vec, chosen = concept_vector(model, {6: sae}, pos, neg, concept="drums", tau=8, seeds=[0, 1], held_out=held)
    record = vec.extra["held_out"]
    assert record["seeds"] == [7, 8]
    kept, dropped = record["layers"]["6"]["kept"], record["layers"]["6"]["dropped"]
    assert sorted(kept + dropped) == sorted(set(kept + dropped)) and len(kept + dropped) == 8
    # kept = exactly the selected features whose held-out paired difference is above 0 at the 95% level
    hp = prompt_activations(model, {6: sae}, held[0], seeds=held[2])[6]
    hn = prompt_activations(model, {6: sae}, held[1], seeds=held[2])[6]
    for j in kept:
        assert (hp[:, j] - hn[:, j]).mean() > 0
    assert chosen[6].features == [f for f in chosen[6].features if f in kept]
    if kept:
        assert torch.allclose(vec.vectors[6], sae.W_dec[kept].sum(0))
    with pytest.raises(TadaError, match="also fitting seeds"):
        concept_vector(model, {6: sae}, pos, neg, concept="drums", seeds=[0, 1], held_out=(pos, neg, [1, 9]))


def test_per_step_selection_is_the_references(models):
    """The reference's variant: Eq. 6 on pre-TopK ReLU activations averaged per step, a feature set per step."""
    from tada_core.methods.features import concept_vector, prompt_activations

    model = models("tada-organism")
    sae = TopKSAE(SaeConfig(d_in=128, expansion_factor=2, k=8), generator=torch.Generator().manual_seed(0))
    pos, neg = ["a waltz with drums", "a march with drums"], ["a waltz without drums", "a march without drums"]
    vec, chosen = concept_vector(model, {6: sae}, pos, neg, concept="drums", tau=5, seeds=[0, 1],
                                 selection="per-step")
    steps = model.defaults.steps
    rows = prompt_activations(model, {6: sae}, pos, seeds=[0, 1], per_step=True)[6]
    assert rows.shape == (2, steps, 256)
    per_step = chosen[6].per_step
    assert len(per_step) == steps and vec.vectors[6].shape == (steps, 128)
    mu_pos, mu_neg = chosen[6].mu_pos, chosen[6].mu_neg                          # [steps, latents]
    assert torch.allclose(mu_pos, rows.mean(0)) and mu_pos.shape == (steps, 256)
    torch.testing.assert_close(chosen[6].scores, mu_pos * torch.log(1 + 1 / (mu_neg + 1e-6)))   # Eq. 6 per step
    for t in range(steps):
        assert set(per_step[t]) == set(chosen[6].scores[t].topk(5).indices.tolist())
        assert torch.allclose(vec.vectors[6][t], sae.W_dec[per_step[t]].sum(0))
    # pre-TopK activations: denser than the TopK latents the global selection averages
    dense = prompt_activations(model, {6: sae}, pos, seeds=[0, 1])[6]
    assert (rows.mean(1) > 0).sum() >= (dense > 0).sum()
    assert vec.extra["selection"] == "per-step" and vec.extra["features"]["6"] == per_step
    with pytest.raises(TadaError, match="selection must be one of"):
        concept_vector(model, {6: sae}, pos, neg, concept="drums", selection="stepwise")


def test_sweep_orders_by_the_papers_rule():
    from tada_core.methods.sae import sweep_saes

    x = sparse_data(n=2048)
    entries = sweep_saes(lambda: x[:1536].split(256), lambda: x[1536:].split(256), 16, expansions=(2, 4),
                         ks=(4, 64), epochs=2, lr=3e-3, progress=False)
    assert [(e.cfg.expansion_factor, e.cfg.k) for e in entries].count((2, 64)) == 0   # k > latents: skipped
    assert len(entries) == 3
    # m = 4, k = 64: all 64 latents fire on every token, so its high-frequency fraction is 1 and it ranks last
    assert (entries[-1].cfg.expansion_factor, entries[-1].cfg.k) == (4, 64)
    assert entries[-1].metrics.high_freq_fraction == 1.0
    for e in entries:   # each entry's score is the paper's rule on an independent evaluation of its SAE
        m = evaluate_sae(e.sae, x[1536:].split(256))
        assert e.badness == pytest.approx(m.fvu + m.dead_fraction + m.high_freq_fraction)


def test_cli_sae_cache_train_features(tmp_path, capsys):
    from tada_core.cli import main
    from tada_core.artifacts.hub import load_vector, scan

    settings = ["--steps", "4", "--duration", "2"]
    cache = tmp_path / "cache"
    assert main(["sae", "cache", "--layers", "6", "--prompts", "6", "--tokens", "8", "--batch-size", "3",
                 "--out", str(cache)] + settings) == 0
    saes = tmp_path / "saes" / "organism-topk"
    assert main(["sae", "train", str(cache), "--expansions", "2", "--ks", "4", "8", "--epochs", "1",
                 "--batch-tokens", "64", "--out", str(saes)]) == 0
    table = capsys.readouterr().out
    assert table.count("| 6 | 2 |") == 2 and "**chosen**" in table
    sae = TopKSAE.load(saes / "transformer.transformer_blocks.6.attn2")
    assert sae.cfg.d_in == 128 and sae.cfg.expansion_factor == 2
    (row,) = scan(tmp_path / "saes")
    assert row["kind"] == "sae" and row["model"] == "tada-organism"
    out = tmp_path / "drums-sae"
    assert main(["sae", "features", str(saes), "--concept", "drums", "--tau", "3", "--seeds", "0",
                 "--out", str(out)] + settings) == 0
    vec = load_vector(out)
    assert vec.method == "sae" and vec.layers == [6] and len(vec.extra["features"]["6"]) == 3
    # the feature atlas the app browses: every latent's Eq. 6 score equals a direct computation
    assert main(["sae", "atlas", str(saes), "--prompts", "4", "--concepts", "drums", "tempo"] + settings) == 0
    from tada_core import load_model
    from tada_core.methods.features import load_atlas, load_saes, prompt_activations
    from tada_core.organism.concepts import ORGANISM_CONCEPT_SET, captions
    from tada_core.artifacts.sae import validate_sae_folder

    (atlas,) = load_atlas(saes).values()
    assert atlas.layer == 6 and atlas.prompts == captions()[:4] and set(atlas.scores) == {"drums", "tempo"}
    assert atlas.rows.shape == (4, 256) and validate_sae_folder(saes)  # the atlas does not disturb the SAE layout
    model = load_model("tada-organism")
    model.set_progress_bar(False)
    pos, neg = ORGANISM_CONCEPT_SET.get("drums").contrastive_prompts(ORGANISM_CONCEPT_SET.bases)
    gen = dict(settings=GenerationSettings(duration=2, steps=4))
    mu = {k: prompt_activations(model, load_saes(model, saes), ps, **gen)[6].mean(0) for k, ps in
          (("pos", pos), ("neg", neg))}
    torch.testing.assert_close(atlas.scores["drums"], tfidf_scores(mu["pos"], mu["neg"]))
    best, score = atlas.top_features("drums", 1)[0]
    assert score == float(atlas.scores["drums"].max()) and atlas.browse(best)["concept_scores"]["drums"] == score
    with pytest.raises(TadaError, match="has no feature atlas"):
        load_atlas(tmp_path / "cache")
    assert main(["sae", "train", str(tmp_path / "nothing"), "--out", str(saes)]) == 2
    assert "not an activation cache" in capsys.readouterr().err
