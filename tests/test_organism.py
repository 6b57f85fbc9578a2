"""The model organism: codec, generator, third-party measures, scorer, shipped checkpoint, training, CLI."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from tada_core import DEFAULT_MODEL, TadaError, load_model
from tada_core.organism import codec, measures, synth, train
from tada_core.organism.model import checkpoint_path
from tada_core.organism.scorer import OrganismScorer, ScorerWeights, agreement, synthetic_clips, tuning


def test_codec_round_trip_is_exact_through_the_oobleck_decoder():
    rng = np.random.default_rng(0)
    z = rng.uniform(0, 8, (2, codec.N_CHANNELS, codec.N_FRAMES)).astype(np.float32)
    audio = codec.decode(z)                                 # the stock AutoencoderOobleck, weights set analytically
    assert audio.shape == (2, codec.N_SAMPLES - codec.HOP)   # its stride-1 block drops the last frame
    full = codec.synthesize_amplitudes(codec.amplitude(z.astype(np.float64)))
    kept = audio.shape[-1] - codec.RAMP // 2                # the last frame's fade-in is what is lost
    np.testing.assert_allclose(audio[:, :kept], full[:, :kept], atol=1e-5)
    back = codec.encode(np.pad(audio, ((0, 0), (0, codec.HOP))))[..., :-2]
    np.testing.assert_allclose(codec.amplitude(back.astype(np.float64)),
                               codec.amplitude(z[..., :-2].astype(np.float64)), atol=1e-5)
    np.testing.assert_allclose(back[z[..., :-2] > 1], z[..., :-2][z[..., :-2] > 1], atol=1e-3)
    # a steady grid tone is exactly one channel's amplitude, and nothing else
    amps = np.zeros((codec.N_CHANNELS, codec.N_FRAMES))
    amps[codec.channel(codec.grid_bin(91))] = 0.3            # G6
    got = codec.analyze(codec.synthesize_amplitudes(amps))
    np.testing.assert_allclose(got, amps, atol=1e-6)


def test_negative_latents_are_near_silent():
    """Guidance pushes channels below zero by (guidance - 1) times the unconditional prediction; the
    two-stage curve keeps such a channel about 20 dB quieter (relative to a voice-level partial) than a
    one-stage sin^2 curve would, which made the female voice's sub-octave audible."""
    voice = codec.latent(np.array([0.04]))[0]                # a voice's fundamental
    leak = -0.57 * voice                                     # what guidance 4 left in the male F0 channel
    assert codec.amplitude(np.float64(leak)) / codec.amplitude(np.float64(voice)) < 0.12
    # and the Oobleck decoder itself sounds the leak that quietly (the curve is its weights, not just numpy)
    z = np.zeros((2, codec.N_CHANNELS, 4), dtype=np.float32)
    z[0, codec.channel(10), :], z[1, codec.channel(20), :] = leak, voice
    amps = codec.analyze(np.pad(codec.decode(z), ((0, 0), (0, codec.HOP))))[:, :, 1]
    assert abs(amps[0, codec.channel(10)]) / amps[1, codec.channel(20)] < 0.12
    z = np.linspace(0, codec.Z_MAX, 1001)
    assert np.all(np.diff(codec.amplitude(z)) > 0) and codec.amplitude(np.float64(0.0)) == 0.0


def test_every_generator_pitch_is_within_10_cents_after_the_round_trip():
    """Every note the instruments play and both voices, through encode and the decoder, measured by pYIN."""
    rows = tuning(seconds=0.25)
    assert len(rows) == len(codec.instrument_pitches()) + 2
    assert {r["source"] for r in rows} == {"instrument", "male voice", "female voice"}
    for r in rows:
        assert abs(r["cents"]) <= 10, r
    voices = {r["source"]: r["measured_hz"] for r in rows if "voice" in r["source"]}
    assert voices["female voice"] == pytest.approx(2 * voices["male voice"], rel=0.01)


def test_generator_is_deterministic_and_captions_tell_the_truth():
    rng = np.random.default_rng(0)
    a = synth.random_attributes(rng)
    assert np.array_equal(synth.synthesize(a, 3), synth.synthesize(a, 3))
    assert not np.array_equal(synth.synthesize(a, 3), synth.synthesize(a, 4))
    assert np.abs(synth.synthesize(a, 3)).max() <= 0.9 + 1e-6
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
    with pytest.raises(TadaError, match="a fast beat lasts"):
        synth.Attributes(tempo="fast", beat_frames=14)


def test_librosa_hears_the_generators_tempo_and_voices():
    """Third-party measures, no threshold fitted: librosa's beat tracker separates slow from fast clips
    and pYIN finds the voices an octave apart."""
    rng = np.random.default_rng(11)
    clips = [synth.random_attributes(rng, tempo=t, voice=v) for t in ("slow", "fast") for v in ("male", "female")
             for _ in range(3)]
    audio = np.stack([synth.synthesize(a, i) for i, a in enumerate(clips)])
    bpm = measures.tempo_bpm(audio, synth.SR)
    slow, fast = bpm[:6], bpm[6:]
    assert np.median(fast) > 120 > 90 > np.median(slow), bpm
    assert (fast > slow.max()).mean() >= 0.8
    pitch = measures.voice_pitch(audio, synth.SR)          # octaves above 220 Hz
    male = pitch[[i for i, a in enumerate(clips) if a.voice == "male"]]
    female = pitch[[i for i, a in enumerate(clips) if a.voice == "female"]]
    np.testing.assert_allclose(male, np.log2(156.25 / 220), atol=0.02)
    np.testing.assert_allclose(female, np.log2(312.5 / 220), atol=0.02)
    silent = measures.voice_pitch(synth.synthesize(dataclasses.replace(clips[0], voice="none"), 0), synth.SR)
    assert silent[0] == 0.0


def test_the_key_estimators_read_the_mode():
    rng = np.random.default_rng(3)
    clips = [synth.random_attributes(rng, mood=m, drums=False, voice="none") for m in ("happy", "sad") for _ in range(4)]
    audio = np.stack([synth.synthesize(a, i) for i, a in enumerate(clips)])
    keys = measures.estimate_key(audio, synth.SR)
    assert [k[0] for k in keys] == ["D#"] * 8
    assert [k[1] for k in keys] == ["major"] * 4 + ["minor"] * 4
    assert (measures.mode_score(audio, synth.SR)[:4] > 0).all() and (measures.mode_score(audio, synth.SR)[4:] < 0).all()
    essentia = measures.essentia_key(audio, synth.SR)
    if essentia is not None:   # the optional second estimator
        assert sum((k[1] == "major") == (a.mood == "happy") for k, a in zip(essentia, clips)) >= 6


def test_the_shipped_scorer_agrees_with_the_generators_ground_truth():
    scorer = OrganismScorer()
    attrs, audio = synthetic_clips(24, seed=4242)
    acc = agreement(scorer, attrs, audio)
    floors = {"tempo": 0.85, "mood": 0.85, "brightness": 0.95, "drums": 0.85, "vocal_gender": 0.95, "instrument": 0.85}
    for concept, floor in floors.items():
        assert acc[concept]["accuracy"] >= floor, (concept, acc[concept])
        lo, hi = acc[concept]["ci"]
        assert lo <= acc[concept]["accuracy"] <= hi
    with pytest.raises(TadaError, match="no scorer.json"):
        ScorerWeights.load(checkpoint_path() + "/transformer")


def test_jittered_fitting_clips_are_seeded_and_keep_their_ground_truth():
    """The scorer is also fitted on clips decoded from noisy latents (any model's kind of error):
    they are deterministic per seed, differ from the clean clips, and the shipped scorer still reads them."""
    attrs, clean = synthetic_clips(24, seed=4343)
    j_attrs, jittered = synthetic_clips(24, seed=4343, jitter=1.0)
    assert attrs == j_attrs and not np.allclose(clean, jittered, atol=1e-3)
    assert np.array_equal(jittered, synthetic_clips(24, seed=4343, jitter=1.0)[1])
    acc = agreement(OrganismScorer(), j_attrs, jittered)
    for concept in ("tempo", "mood", "brightness", "drums", "vocal_gender", "instrument"):
        assert acc[concept]["accuracy"] >= 0.6, (concept, acc[concept])   # chance: 0.5 (instrument 0.25)


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
    # the decoder's stride-1 block drops a frame: the longest clip is 63 frames, and it is all there
    assert m.max_duration() == (codec.N_FRAMES - 1) * codec.HOP / codec.SR
    full = m.generate("a waltz", seeds=0, steps=2, duration=m.max_duration()).audio
    assert full.shape[-1] == (codec.N_FRAMES - 1) * codec.HOP


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
    monkeypatch.setattr(train, "CURVE", "one-stage: sin(pi z / 40)^2")   # a folder begun with another codec
    with pytest.raises(TadaError, match="different training run .*codec"):
        _tiny_train(tmp_path / "resumed", steps=4)
    monkeypatch.setattr(train, "CURVE", codec.CURVE)
    _tiny_train(tmp_path / "resumed", steps=4)
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "straight" / "transformer" / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "transformer" / "diffusion_pytorch_model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_organism_scorer_writes_its_own_report_and_never_the_shipped_checkpoint(tmp_path, cli, monkeypatch):
    from tada_core.cli import build_parser
    from tada_core.organism import scorer

    default_out = build_parser().parse_args(["organism", "scorer"]).out
    assert "checkpoint" not in default_out     # refitting never overwrites the shipped scorer by default
    monkeypatch.setattr(scorer, "tuning", lambda: [])   # measured in its own test above
    report = tmp_path / "scorer"
    code, out, err = cli("organism", "scorer", "--clips", 32, "--held-out", 12, "--out", tmp_path / "s",
                         "--report", report)
    assert code == 0, err
    text = report.with_suffix(".md").read_text()
    assert text.startswith("# The organism's scorer") and "`tada organism scorer --clips 32" in text
    data = json.loads(report.with_suffix(".json").read_text())
    assert set(data["agreement"]) == {"tempo", "mood", "brightness", "drums", "vocal_gender", "instrument"}
    assert all(0 <= r["ci"][0] <= r["accuracy"] <= r["ci"][1] <= 1 for r in data["agreement"].values())
    assert ScorerWeights.load(tmp_path / "s").weight.shape[0] == 4


def test_cli_organism_adherence_report(tmp_path, cli):
    out = tmp_path / "adherence"
    code, stdout, err = cli("organism", "adherence", "--seeds", 0, "--steps", 2, "--duration", 2, "--out", out)
    assert code == 0, err
    report = json.loads(out.with_suffix(".json").read_text())
    assert set(report["concepts"]) == {"tempo", "mood", "brightness", "drums", "vocal_gender", "instrument"}
    assert report["concepts"]["tempo"]["n"] == 24 and report["steps"] == 2
    assert "| tempo | `a fast {base}` / `a slow {base}` | 24 | tempo (BPM, librosa beat tracker) |" in \
        out.with_suffix(".md").read_text()
