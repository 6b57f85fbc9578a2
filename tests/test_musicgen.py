"""MusicGen: the residual-stream family, DiffMean (Facchiano et al. 2025), its injection strategies and metrics."""

import functools
import json

import numpy as np
import pytest
import torch

from tada_core import TadaError, steer
from tada_core.adapters.musicgen import MUSICGEN_CONCEPTS
from tada_core.concepts import BASE_PROMPTS, diffmean_prompts
from tada_core.methods.diffmean import cosine_matrix, diffmean, layer_scan, with_strategy
from tada_core.interventions.hooks import patch
from tada_core.evaluation.metrics import frechet_audio_distance, frechet_distance, spectral_centroid, tempo_bpm

from .conftest import all_hooks

M = "tiny-musicgen-melody"


@pytest.fixture(scope="module")
def mg(models):
    return models(M)


@pytest.fixture(scope="module")
def vec(mg):
    pos, neg = diffmean_prompts(MUSICGEN_CONCEPTS["tempo"], BASE_PROMPTS, 12)
    return diffmean(mg, pos, neg, concept="tempo", source_layer=2, progress=False)


def test_the_family_speaks_the_models_interface(mg):
    assert [layer.path for layer in mg.layers] == [f"decoder.model.decoder.layers.{i}" for i in range(4)]
    assert {layer.width for layer in mg.layers} == {32} and mg.default_branch == "both"
    assert mg.layer_kind.startswith("residual stream") and mg.step_kind == "autoregressive step"
    s = mg.resolve_settings(duration=0.5)
    assert s.steps == 63 + 1     # ceil(0.5 s x 125 frames/s) + the delay pattern's K - 1
    g = mg.generate(["a fast song", "a slow sad piano song"], seeds=[0, 1])
    assert g.sample_rate == 8000 and g.audio.shape == (2, 1, 4000)
    assert torch.equal(mg.generate(["a fast song"], seeds=[0]).audio, mg.generate(["a fast song"], seeds=[0]).audio)
    assert not torch.allclose(g.audio[0], mg.generate(["a fast song"], seeds=[5]).audio[0])   # seeds matter
    with pytest.raises(TadaError, match="no cross-attention keys and values to patch"):
        with patch(mg, [0], "a march"):
            pass


PADDED = (["a fast song", "a slow sad piano song with drums"], [0, 1])   # row 0 is padded in the batch


def _generate(mg, use_cache: bool = True) -> torch.Tensor:
    prompts, seeds = PADDED
    model = mg.pipeline.model
    stock = model.generate
    model.generate = functools.partial(stock, use_cache=use_cache)
    try:
        return mg.generate(prompts, seeds=seeds).audio
    finally:
        del model.generate


def test_the_text_mask_reaches_every_cached_step(mg):
    """A padded prompt computed step by step with the cache equals the same prompt recomputed in full at every
    step, where the decoder builds the mask itself from its documented ``encoder_attention_mask``; the newest
    transformers renamed the cache argument the mask hook used to read (5.24), which this catches."""
    prompts, _ = PADDED
    lengths = [len(mg.pipeline.tokenizer(p)["input_ids"]) for p in prompts]
    assert lengths[0] < lengths[1]
    cached, full = _generate(mg), _generate(mg, use_cache=False)
    for row in range(len(prompts)):
        assert torch.allclose(cached[row], full[row], atol=1e-5), row


def test_without_the_text_mask_a_padded_prompt_sounds_different(mg, monkeypatch):
    """The mask matters: the stock decoder attends to the padded text positions (zeroed, but attended)."""
    masked = _generate(mg)
    monkeypatch.setattr(type(mg), "_family_hooks", lambda self, run, add: None)
    stock = _generate(mg)
    assert not torch.allclose(masked[0], stock[0], atol=1e-3)       # the padded row
    assert torch.allclose(masked[1], stock[1], atol=1e-5)           # the longest prompt has no padding


def test_with_a_fixed_text_length_a_prompt_sounds_as_it_does_alone(mg, monkeypatch):
    """As the MusicGen organism generates: every prompt padded to one length, padding masked."""
    monkeypatch.setattr(mg.pipeline, "text_length", 16)
    prompts, seeds = PADDED
    batch = mg.generate(prompts, seeds=seeds).audio
    for row, (p, s) in enumerate(zip(prompts, seeds)):
        assert torch.allclose(batch[row], mg.generate([p], seeds=[s]).audio[0], atol=1e-5), row


def test_lambda_zero_is_bit_identical_and_batches_equal_separate_runs(mg, vec):
    prompts, seeds = ["a song"] * 3, [3, 3, 3]
    base = mg.generate(prompts, seeds=seeds).audio
    with vec.apply(mg, alpha=[0.0, 0.0, 0.0]):
        assert torch.equal(mg.generate(prompts, seeds=seeds).audio, base)
    with vec.apply(mg, alpha=[0.0, 3.0, -3.0]):
        batch = mg.generate(prompts, seeds=seeds).audio
    assert torch.equal(batch[0], base[0])
    for i, a in enumerate((0.0, 3.0, -3.0)):
        with vec.apply(mg, alpha=a):
            alone = mg.generate(prompts[:1], seeds=seeds[:1]).audio[0]
        assert torch.allclose(batch[i], alone, atol=1e-5), a
    assert (batch[1] - batch[0]).abs().max() > 1e-3 and (batch[2] - batch[0]).abs().max() > 1e-3


def test_one_to_all_and_all_to_all(mg, vec):
    one = vec.injected([0, 1, 2, 3])
    assert all(torch.equal(one[i], vec.vectors[2]) for i in range(4))
    every = with_strategy(vec, "all-to-all").injected([0, 1, 2, 3])
    assert all(torch.equal(every[i], vec.vectors[i]) for i in range(4))
    # applying One-to-All is steering every layer with the source layer's direction
    with vec.apply(mg, alpha=[0.0, 4.0]):
        a = mg.generate(["a song"] * 2, seeds=[1, 1]).audio
    with steer(mg, {i: vec.vectors[2] for i in range(4)}, alpha=[0.0, 4.0], use_renorm=False):
        b = mg.generate(["a song"] * 2, seeds=[1, 1]).audio
    assert torch.equal(a, b)
    with pytest.raises(TadaError, match="strategy must be one of"):
        with_strategy(vec, "some-to-some")
    with pytest.raises(TadaError, match="needs a source_layer"):
        with_strategy(vec, "one-to-all", 9)


def _layer1_at_step0(mg) -> torch.Tensor:
    """Layer 1's output at the first step of one generation (a hook placed after any steering hook)."""
    seen = []
    h = mg.layers[1].module.register_forward_hook(lambda module, args, output: seen.append(output[0].clone()))
    try:
        mg.generate(["a song"], seeds=[0])
    finally:
        h.remove()
    return seen[0]


def test_branch_selection_changes_only_the_chosen_rows(mg, vec):
    plain = _layer1_at_step0(mg)
    for branch in ("cond", "uncond", "both", None):
        with steer(mg, {1: vec.vectors[1]}, alpha=5.0, branch=branch, use_renorm=False):
            steered = _layer1_at_step0(mg)
        changed = [not torch.equal(steered[r], plain[r]) for r in (0, 1)]   # [cond, uncond] rows
        assert changed == {"cond": [True, False], "uncond": [False, True], "both": [True, True],
                           None: [True, True]}[branch], branch


def test_eos_read_out_is_right_for_a_padded_batch(mg):
    prompts = ["a song", "a slow sad piano song with drums"]
    batch = mg.prompt_states(prompts)
    alone = torch.stack([mg.prompt_states([p])[:, 0] for p in prompts], dim=1)
    assert torch.allclose(batch, alone, atol=1e-5)
    # the position is the EOS token's, after the chroma frames: compare with transformers' own hidden states
    model, tok = mg.pipeline.model, mg.pipeline.tokenizer
    inputs = tok([prompts[1]], return_tensors="pt")
    n = int(inputs["attention_mask"].sum())
    assert inputs["input_ids"][0, n - 1] == tok.eos_token_id
    with torch.no_grad():
        out = model(**inputs, decoder_input_ids=torch.full((2, 1), 32), output_hidden_states=True)
    chroma = model.config.chroma_length
    assert len(out.hidden_states) == 5      # the embeddings, then each layer's output
    for layer in range(3):                  # (the last entry may be taken after the final layer norm)
        assert torch.allclose(out.hidden_states[layer + 1][0, chroma + n - 1], batch[layer, 1], atol=1e-5)


def test_diffmean_is_the_difference_of_means(mg, vec):
    pos, neg = vec.prompts["positive"], vec.prompts["negative"]
    assert len(pos) == 12 and all(p.startswith("fast") for p in pos) and all(q.startswith("slow") for q in neg)
    h_pos, h_neg = mg.prompt_states(pos), mg.prompt_states(neg)
    direct = h_pos.mean(1) - h_neg.mean(1)
    for layer in range(4):
        assert torch.allclose(vec.vectors[layer], direct[layer], atol=1e-6)
    # without a source layer, l_best defaults to the largest ||Delta|| relative to the mean residual norm
    relative = direct.norm(dim=-1) / torch.cat([h_pos, h_neg], 1).norm(dim=-1).mean(1)
    assert relative.max() - relative.sort().values[-2] > 1e-4          # a winner beyond float rounding
    auto = diffmean(mg, pos, neg, concept="tempo", progress=False)
    assert auto.strategy == {"name": "one-to-all", "source_layer": int(relative.argmax())}
    assert vec.method == "diffmean" and vec.strategy == {"name": "one-to-all", "source_layer": 2}
    assert vec.renorm is False and vec.extra["kind"] == "residual-stream"
    cos = cosine_matrix(vec)
    assert cos.shape == (4, 4) and np.allclose(np.diag(cos), 1.0)
    for i in range(4):   # every entry is the cosine of two layers' directions (not, e.g., their correlation)
        for j in range(4):
            expected = torch.nn.functional.cosine_similarity(vec.vectors[i].double(), vec.vectors[j].double(), dim=0)
            assert cos[i, j] == pytest.approx(float(expected), abs=1e-9)
    # these layers' directions are nearly parallel; directions at known angles: e0, e0 + e1, -e0, 3 e1
    import dataclasses

    e = torch.eye(32)
    hand = dataclasses.replace(vec, vectors={0: e[0], 1: e[0] + e[1], 2: -e[0], 3: 3 * e[1]}, strategy=None)
    r = 2 ** -0.5
    assert np.allclose(cosine_matrix(hand), [[1, r, -1, 0], [r, 1, -r, r], [-1, -r, 1, 0], [0, r, 0, 1]], atol=1e-12)


def test_diffmean_prompts_are_deterministic_and_paired():
    pos, neg = diffmean_prompts(MUSICGEN_CONCEPTS["brightness"], BASE_PROMPTS, 100)
    assert len(pos) == len(neg) == 100 and len(set(pos)) == 100
    assert pos[0] == "bright a song" and neg[0] == "dark a song" and pos[60].endswith(", instrumental")
    assert diffmean_prompts(MUSICGEN_CONCEPTS["brightness"], BASE_PROMPTS, 100) == (pos, neg)
    with pytest.raises(TadaError, match="at most 400"):
        diffmean_prompts(MUSICGEN_CONCEPTS["brightness"], BASE_PROMPTS, 401)


def test_bad_input_is_one_clear_message(mg, vec):
    with pytest.raises(TadaError, match="out of range"):
        with steer(mg, {7: vec.vectors[0]}, alpha=1.0):
            pass
    with pytest.raises(TadaError, match=r"needs \[32\]"):
        with steer(mg, {0: torch.ones(5)}, alpha=1.0):
            pass
    with pytest.raises(TadaError, match="alpha must be a finite number"):
        with vec.apply(mg, alpha=float("nan")):
            pass
    with pytest.raises(TadaError, match="strategy must be one of"):
        diffmean(mg, ["a"], ["b"], concept="x", strategy="sideways")
    with pytest.raises(TadaError, match="DiffMean reads an autoregressive model"):
        from tada_core import load_model

        diffmean(load_model("tiny-stable-audio"), ["a"], ["b"], concept="x")


def test_an_exception_inside_leaves_no_hook(mg, vec):
    before = all_hooks(mg)
    with pytest.raises(RuntimeError, match="boom"):
        with vec.apply(mg, alpha=1.0):
            assert all_hooks(mg) != before
            raise RuntimeError("boom")
    assert all_hooks(mg) == before


def test_layer_scan_records_l_best(mg, vec):
    scan = layer_scan(mg, vec, spectral_centroid, ["a song"], lam=4.0, seeds=[0], layers=[1, 3],
                      measure_label="centroid", progress=False)
    assert set(scan.effect) == {1, 3} and scan.n == 1 and scan.best() in (1, 3)
    assert scan.effect[scan.best()] == max(scan.effect.values())
    # layer 1's entry by hand: its direction added to every layer at -lambda, 0 and +lambda (One-to-All, no ReNorm)
    with steer(mg, {i: vec.vectors[1] for i in range(4)}, alpha=[-4.0, 0.0, 4.0], use_renorm=False):
        audio = mg.generate(["a song"] * 3, seeds=[0, 0, 0])
    down, base, up = spectral_centroid(audio.audio, audio.sample_rate)
    assert abs(up - down) > 0.1                                   # the direction moves the centroid
    assert scan.down[1] == pytest.approx(down) and scan.up[1] == pytest.approx(up)
    assert scan.baseline == pytest.approx(base) and scan.effect[1] == pytest.approx(up - down)


def test_metrics_against_signals_with_known_answers():
    sr = 22050
    t = np.arange(sr * 6) / sr
    import librosa

    clicks = librosa.clicks(times=np.arange(0, 6, 0.5), sr=sr, length=len(t))   # 120 BPM
    assert abs(tempo_bpm(clicks[None, None], sr)[0] - 120) < 3
    tone = np.sin(2 * np.pi * 1000 * t)[None, None]
    assert abs(spectral_centroid(tone, sr)[0] - 1000) < 50
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 4)), rng.normal(size=(400, 4))
    assert frechet_distance(a, b) < 0.2 and frechet_distance(a, b + 2) > 15
    # a set and its affine image 2a + 3: covariance 4 S and mean 2 mu + 3, so the distance is
    # |mu + 3|^2 + tr(S + 4 S - 2 (4 S^2)^(1/2)) = |mu + 3|^2 + tr(S), with the sample mean and covariance of a
    expected = ((a.mean(0) + 3) ** 2).sum() + np.trace(np.cov(a, rowvar=False))
    assert frechet_distance(a, 2 * a + 3) == pytest.approx(expected, rel=1e-6)
    quiet = 0.1 * rng.normal(size=(4, 1, 16000))
    assert frechet_audio_distance(quiet, quiet, 16000) < 1e-6
    assert frechet_audio_distance(quiet, quiet + 0.3 * np.sin(2 * np.pi * 3000 * np.arange(16000) / 16000), 16000) > 1


def test_cli_diffmean_generate_and_sweep(tmp_path, cli):
    code, out, err = cli("diffmean", "compute", "--model", M, "--concept", "tempo", "--prompts", "8",
                         "--alpha-range", "-2", "2", "--out", tmp_path / "tempo")
    assert code == 0, err
    cfg = json.loads((tmp_path / "tempo" / "config.json").read_text())
    assert cfg["method"] == "diffmean" and cfg["strategy"]["name"] == "one-to-all" and cfg["extra"]["kind"] == \
        "residual-stream"
    code, _, err = cli("generate", "--model", M, "--steer", tmp_path / "tempo", "--alpha", "1.25", "--prompt",
                       "a song", "--out", tmp_path / "x.wav")
    assert code == 0 and "without ReNorm" in err and (tmp_path / "x.wav").stat().st_size > 1000
    code, out, err = cli("sweep", tmp_path / "tempo", "--scorer", "librosa", "--seeds", "0", "--prompts", "1",
                         "--out", tmp_path / "sweep")
    assert code == 0, err
    assert "tempo (BPM, librosa beat tracker)" in (tmp_path / "sweep.md").read_text()
    code, out, err = cli("diffmean", "scan", tmp_path / "tempo", "--measure", "centroid", "--prompts", "a song",
                         "--seeds", "0", "--layers", "0", "1", "--out", tmp_path / "scan", "--write-back")
    assert code == 0, err
    assert (tmp_path / "scan" / "cosine.png").is_file() and (tmp_path / "scan" / "effect.png").is_file()
    best = json.loads((tmp_path / "scan" / "scan.json").read_text())["best_layer"]
    assert json.loads((tmp_path / "tempo" / "config.json").read_text())["strategy"]["source_layer"] == best


def test_cli_fad_against_unsteered_clips(tmp_path, cli):
    code, _, err = cli("diffmean", "compute", "--model", M, "--concept", "brightness", "--prompts", "8",
                       "--out", tmp_path / "v")
    assert code == 0, err
    code, out, err = cli("diffmean", "fad", tmp_path / "v", "--lambdas", "1e-6", "50", "--prompts", "a song",
                         "a tune", "--seeds", "0", "1", "--out", tmp_path / "fad")
    assert code == 0, err
    fad = {float(k): v for k, v in json.loads((tmp_path / "fad" / "fad.json").read_text())["fad"].items()}
    # a lambda too small to change a token leaves the clips as they were (FAD ~ 0); a large one does not
    # (the random-weight fixture makes no claim about how FAD grows in between)
    assert set(fad) == {1e-6, 50.0} and fad[1e-6] < 1e-3 < 0.1 < fad[50.0]
    assert (tmp_path / "fad" / "fad.png").is_file()
    code, _, err = cli("diffmean", "fad", tmp_path / "v", "--embedding", "vggish", "--out", tmp_path / "x")
    assert code == 2 and "FAD embedding must be" in err
