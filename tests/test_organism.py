"""The model organism: generator, codec, descriptors, shipped checkpoint, training script."""

import numpy as np
import pytest
import torch

from tada_core import DEFAULT_MODEL, TadaError, load_model
from tada_core.organism import codec, synth, train
from tada_core.organism.descriptors import (
    DESCRIPTORS,
    DescriptorClassifier,
    agreement,
    synthetic_set,
)
from tada_core.organism.model import checkpoint_path


def test_codec_reconstructs_a_grid_tone_exactly():
    n = np.arange(synth.N_SAMPLES)
    tone = 0.5 * np.sin(2 * np.pi * 40 * n / synth.HOP)            # 625 Hz, on the grid
    z = codec.encode(tone[None])
    assert z.shape == (1, synth.N_BINS, synth.N_FRAMES)
    mid = z[0, :, 4:-4]
    assert np.allclose(codec.amplitude(mid[39]), 0.5, atol=1e-3)    # bin k=40 holds the amplitude
    assert np.abs(np.delete(mid, 39, axis=0)).max() < 1e-3           # and nothing else
    out = codec.decode(z)
    assert np.allclose(codec.analyze(out)[0, :, 4:-4], codec.analyze(tone[None])[0, :, 4:-4], atol=1e-3)


def test_generator_is_deterministic_and_captions_tell_the_truth():
    rng = np.random.default_rng(0)
    a = synth.random_attributes(rng)
    assert np.array_equal(synth.synthesize(a, 3), synth.synthesize(a, 3))
    assert not np.array_equal(synth.synthesize(a, 3), synth.synthesize(a, 4))
    opposite = {"fast": synth.TEMPO_WORDS["slow"], "slow": synth.TEMPO_WORDS["fast"],
                "happy": synth.MOOD_WORDS["sad"], "sad": synth.MOOD_WORDS["happy"]}
    for attrs, text, _ in synth.dataset(300, seed=1):
        words = set(text.replace(",", "").split())
        assert not words & set(opposite[attrs.tempo]) and not words & set(opposite[attrs.mood]), text
        assert "female" not in words or attrs.voice == "female", text
        assert "male" not in words or attrs.voice == "male", text
        negated = "without drums" in text or "no percussion" in text
        rest = text.replace("without drums", "").replace("no percussion", "")
        assert not (attrs.drums and negated) and not (not attrs.drums and ("drum" in rest or "percussion" in rest))
    with pytest.raises(TadaError, match="tempo must be one of"):
        synth.Attributes(tempo="medium")


def test_descriptors_agree_with_the_generators_ground_truth():
    scorer = DescriptorClassifier.load(checkpoint_path())
    attrs, audio = synthetic_set(96, seed=4242, roundtrip=False)
    acc = agreement(scorer, attrs, audio)
    floors = {"tempo": 0.85, "brightness": 0.8, "mood": 0.6, "drums": 0.75, "vocal_gender": 0.9}
    for concept in DESCRIPTORS:
        assert acc["descriptor"][concept] >= floors[concept], (concept, acc)
    assert acc["classifier"]["instrument"] >= 0.6, acc


def test_the_shipped_model_is_the_default_and_generates_deterministically():
    assert DEFAULT_MODEL == "tada-organism"
    m = load_model(device="cpu")
    m.set_progress_bar(False)
    assert len(m.layers) >= 8 and m.sample_rate == synth.SR
    a = m.generate(["a fast pop song with drums", "a slow sad waltz on violin"], seeds=[0, 1], steps=4,
                   duration=2.0).audio
    b = m.generate(["a fast pop song with drums", "a slow sad waltz on violin"], seeds=[0, 1], steps=4,
                   duration=2.0).audio
    assert a.shape == (2, 1, 2 * synth.SR) and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1])
    assert a.abs().max() > 1e-3          # not silence


def _tiny_train(out, steps, **kw):
    return train.train(out, clips=8, steps=steps, batch=4, workers=1, save_every=2, progress=False, **kw)


def test_training_smoke_run_writes_a_loadable_pipeline(tmp_path):
    summary = _tiny_train(tmp_path / "run", steps=2)
    assert summary["steps"] == 2 and np.isfinite(summary["final_loss"])
    m = load_model(str(tmp_path / "run"), device="cpu")
    m.set_progress_bar(False)
    assert m.defaults.steps == 20          # the sampling defaults were saved with the checkpoint
    audio = m.generate(["a fast tune"], seeds=[0], steps=2, duration=1.0).audio
    assert audio.shape == (1, 1, synth.SR) and torch.isfinite(audio).all()
    assert not (tmp_path / "run" / "_train_state.safetensors").exists()


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    _tiny_train(tmp_path / "straight", steps=4)
    calls = {"n": 0}
    real_loss = train.diffusion_loss

    def dies_at_third_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(train, "diffusion_loss", dies_at_third_step)
    with pytest.raises(KeyboardInterrupt):
        _tiny_train(tmp_path / "resumed", steps=4)
    assert (tmp_path / "resumed" / "_train_state.safetensors").exists()
    monkeypatch.setattr(train, "diffusion_loss", real_loss)
    with pytest.raises(TadaError, match="different training run .*lr"):
        _tiny_train(tmp_path / "resumed", steps=4, lr=5e-4)       # other settings: refused, not mixed
    _tiny_train(tmp_path / "resumed", steps=4)
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "straight" / "transformer" / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "transformer" / "diffusion_pytorch_model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_organism_scorer_writes_its_own_report_and_never_the_shipped_checkpoint(tmp_path, cli):
    from tada_core.cli import build_parser

    default_out = build_parser().parse_args(["organism", "scorer"]).out
    assert "checkpoint" not in default_out     # refitting never overwrites the shipped scorer by default
    report = tmp_path / "scorer.md"
    code, out, err = cli("organism", "scorer", "--clips", 40, "--held-out", 16, "--out", tmp_path / "s",
                         "--report", report)
    assert code == 0, err
    text = report.read_text()
    assert text.startswith("# Organism scorers") and "`tada organism scorer --clips 40" in text
    rows = [line for line in text.splitlines() if line.startswith("| held-out")]
    assert len(rows) == 6
    values = [float(c) for row in rows for c in row.strip("|").split("|")[2:] if c.strip() != "-"]
    assert values and all(0 <= v <= 1 for v in values)
    assert DescriptorClassifier.load(tmp_path / "s").heads.keys() >= {"tempo", "instrument"}


def test_cli_organism_adherence_report(tmp_path, cli):
    out = tmp_path / "adherence"
    code, stdout, err = cli("organism", "adherence", "--seeds", 0, "--steps", 2, "--duration", 1, "--out", out)
    assert code == 0, err
    import json

    report = json.loads(out.with_suffix(".json").read_text())
    assert set(report["concepts"]) == {"tempo", "mood", "brightness", "drums", "vocal_gender", "instrument"}
    assert report["concepts"]["tempo"]["n"] == 24 and report["steps"] == 2
    assert "| tempo | `a fast {base}` / `a slow {base}` | 24 |" in out.with_suffix(".md").read_text()
