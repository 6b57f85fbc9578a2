"""Editing a user's clip (tada_core.editing, `tada edit`): edit-friendly inversion reconstructs at alpha 0,
strength 0 keeps the encoding, steering moves the edit, and every bad input is a one-line error."""

import numpy as np
import pytest
import soundfile as sf
import torch

from tada_core import TadaError, load_model
from tada_core.adapters.settings import GenerationSettings
from tada_core.artifacts.vectors import SteeringVector, load_vector
from tada_core.audio import check_clip, read_clip
from tada_core.editing import edit, start_step
from tada_core.organism import codec

FAST = GenerationSettings(duration=4.0, steps=6, guidance=3.0)
PROMPT = "a waltz played on piano"


@pytest.fixture(scope="module")
def organism():
    m = load_model("tada-organism", device="cpu")
    m.set_progress_bar(False)
    return m


@pytest.fixture(scope="module")
def clip(organism):
    """A clip of the organism's, as a user would hand it over: [samples] at 16 kHz."""
    return organism.generate(PROMPT, seeds=8500, settings=FAST).audio[0, 0].numpy()


def centroid(x: torch.Tensor, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x.reshape(-1).numpy())) ** 2
    f = np.fft.rfftfreq(x.reshape(-1).shape[0], 1 / sr)
    return float((spec * f).sum() / spec.sum())


def test_codec_encodes_its_own_decoding_to_the_same_latent():
    """encode_clip inverts the analytic decoder on a 4.0 s clip; the two frames past its end repeat frame 61."""
    rng = np.random.default_rng(0)
    z = rng.uniform(3, 12, size=(1, codec.N_CHANNELS, codec.N_FRAMES)).astype(np.float32)
    audio = codec.decode(z)[:, :64000]
    back = codec.encode_clip(audio, codec.SR)
    assert back.shape == z.shape
    np.testing.assert_allclose(back[..., :62], z[..., :62], atol=2e-3)
    np.testing.assert_array_equal(back[..., 62], back[..., 61])
    with pytest.raises(ValueError, match="16000 Hz"):
        codec.encode_clip(audio, 44100)


def test_alpha_zero_full_inversion_reconstructs_the_encoding(organism, clip):
    """A regenerated row at alpha 0 lands on the clip's own encoding (edit-friendly noise maps), while a fresh
    generation of the same prompt is far from it; steering moves the edit away."""
    vec = load_vector("vectors/tada-organism-brightness-caa")
    r = edit(organism, clip, 16000, steer=vec, alpha=[0.0, 2.0], prompt=PROMPT, settings=FAST, seed=3)
    assert r.audio.shape == (2, 1, 64000) and r.alphas == (0.0, 2.0) and r.start_step == 0
    rms = float(r.encoded.pow(2).mean().sqrt())
    assert float((r.audio[0] - r.encoded).abs().max()) < 1e-3 * float(r.encoded.abs().max())
    # the autoencoder's own loss: the codec is exact in its span (the last 64 ms repeat a frame)
    assert float((r.encoded - r.original)[..., :62 * 1024].pow(2).mean().sqrt()) < 0.02 * rms
    fresh = organism.generate(PROMPT, seeds=8501, settings=FAST).audio[0]
    assert float((fresh - r.original).pow(2).mean().sqrt()) > 0.5 * rms
    assert float((r.audio[1] - r.audio[0]).pow(2).mean().sqrt()) > 0.1 * rms
    assert centroid(r.audio[1], 16000) > centroid(r.audio[0], 16000)   # the brightness vector brightens


def test_strength_zero_returns_the_input_encoding_and_partial_edits_change_less(organism, clip):
    vec = load_vector("vectors/tada-organism-brightness-caa")
    keep = edit(organism, clip, 16000, steer=vec, alpha=[2.0], prompt=PROMPT, settings=FAST, strength=0.0)
    assert keep.start_step == FAST.steps
    torch.testing.assert_close(keep.audio[0], keep.encoded, atol=1e-6, rtol=0)
    half = edit(organism, clip, 16000, steer=vec, alpha=[2.0], prompt=PROMPT, settings=FAST, strength=0.5)
    full = edit(organism, clip, 16000, steer=vec, alpha=[2.0], prompt=PROMPT, settings=FAST, strength=1.0)
    assert half.start_step == 3
    d_half = float((half.audio[0] - half.encoded).pow(2).mean())
    d_full = float((full.audio[0] - full.encoded).pow(2).mean())
    assert 0 < d_half < d_full
    assert start_step(0.25, 20) == 15 and start_step(1.0, 20) == 0


def test_the_edit_leaves_no_hook_or_scheduler_patch_behind(organism, clip):
    sched = organism.pipeline.scheduler
    before = organism.generate(PROMPT, seeds=1, settings=FAST).audio
    with pytest.raises(TadaError, match="alpha needs a steering vector"):
        edit(organism, clip, 16000, alpha=[1.0], settings=FAST)
    edit(organism, clip, 16000, alpha=[0.0], settings=FAST)
    assert "step" not in sched.__dict__
    torch.testing.assert_close(organism.generate(PROMPT, seeds=1, settings=FAST).audio, before)


@pytest.mark.parametrize("name", ["tiny-stable-audio", "tiny-audioldm2"])
def test_the_diffusion_families_reconstruct_their_encoding_at_alpha_zero(name):
    """Stable Audio's Oobleck encoder (stereo) and AudioLDM 2's mel + VAE (DDIM): random weights, so only the
    inversion is tested: regenerated rows at alpha 0 land on the clip's own encoding."""
    m = load_model(name, device="cpu")
    m.set_progress_bar(False)
    rng = np.random.default_rng(1)
    audio = rng.normal(0, 0.3, size=(1, 20000)).astype(np.float32)   # mono 8 kHz in: resampled, channels, trimmed
    r = edit(m, audio, 8000, alpha=[0.0, 0.0], prompt="x", steps=5)
    n = int(round(m.defaults.duration * m.sample_rate))
    assert r.original.shape == (m.audio_channels, n) and r.audio.shape[1] == m.audio_channels
    assert float(r.encoded.abs().max()) > 0
    torch.testing.assert_close(r.audio[0], r.encoded, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(r.audio[1], r.encoded, atol=1e-4, rtol=1e-3)


def random_vector(model, scale: float = 4.0) -> SteeringVector:
    g = torch.Generator().manual_seed(0)
    return SteeringVector({i: scale * torch.randn(layer.width, generator=g) for i, layer in enumerate(model.layers)},
                          "x", model.name, {layer.index: layer.path for layer in model.layers})


def test_ace_step_inverts_on_its_own_shifted_sigmas():
    """ACE-Step's flow-matching pipeline: the edit noises the VAE latent along the pipeline's shifted sigmas
    (rectified-flow interpolation); alpha 0 lands on the encoding, a steered row departs from it."""
    from tada_core.adapters.ace_step import SHIFT

    m = load_model("tiny-ace-step", device="cpu")
    m.set_progress_bar(False)
    sched = m.edit_scheduler(4)
    t = np.linspace(1, 0, 5)[:-1]
    np.testing.assert_allclose(sched.sigmas[:-1].numpy(), SHIFT * t / (1 + (SHIFT - 1) * t), atol=1e-6)
    assert float(sched.sigmas[-1]) == 0.0
    rng = np.random.default_rng(1)
    audio = rng.normal(0, 0.3, size=(1, 20000)).astype(np.float32)
    r = edit(m, audio, 8000, steer=random_vector(m), alpha=[0.0, 4.0], prompt="x", steps=4)
    assert r.original.shape == (2, 800) and r.audio.shape == (2, 2, 800)
    assert float(r.encoded.abs().max()) > 0.5
    torch.testing.assert_close(r.audio[0], r.encoded, atol=1e-5, rtol=0)
    assert float((r.audio[1] - r.encoded).abs().max()) > 0.05
    with pytest.raises(TadaError, match="strength must be between 0") as e:
        edit(m, audio, 8000, prompt="x", steps=4, strength=2.0)
    assert "\n" not in str(e.value)
    keep = edit(m, audio, 8000, steer=random_vector(m), alpha=[4.0], prompt="x", steps=4, strength=0.0)
    torch.testing.assert_close(keep.audio[0], keep.encoded, atol=1e-5, rtol=0)


# ----- input handling -------------------------------------------------------------------------------------

@pytest.mark.parametrize("audio, sr, message", [
    (np.zeros((1, 0), np.float32), 16000, r"empty \(0 samples\)"),
    (np.zeros(16000, np.float32), 16000, "silent .*-80 dBFS"),
    (np.full(16000, np.nan, np.float32), 16000, "NaN or infinite"),
    (np.ones((3, 16000), np.float32) * 0.1, 16000, "3 channels; accepted: mono or stereo"),
    (np.ones(16000, np.float32) * 0.1, 100, "sample rate must be an integer from 4000 to 192000"),
    (np.ones(4001 * 601, np.float32) * 0.1, 4001, "at most 600s"),
    (np.array(["a", "b"]), 16000, "audio must be numbers"),
])
def test_bad_clips_are_one_line_errors_naming_the_limit(audio, sr, message):
    with pytest.raises(TadaError, match=message) as e:
        check_clip(audio, sr)
    assert "\n" not in str(e.value)


def test_int16_and_samples_by_channels_are_accepted():
    x = (np.sin(np.arange(8000) / 5) * 10000).astype(np.int16)
    out = check_clip(np.stack([x, x], 1), 8000)      # [samples, channels] as audio widgets give it
    assert out.shape == (2, 8000) and out.dtype == np.float32 and 0.29 < np.abs(out).max() < 0.31


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
def test_files_of_every_accepted_format_any_rate_are_read(tmp_path, fmt):
    sr = 44100 if fmt != "ogg" else 22050
    t = np.arange(sr) / sr
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], 1) * 0.5
    path = tmp_path / f"x.{fmt}"
    sf.write(path, stereo, sr)
    audio, rate = read_clip(path)
    assert rate == sr and audio.shape[0] == 2 and abs(audio.shape[1] - sr) < 2000


def test_bad_files_are_one_line_errors(tmp_path, monkeypatch):
    import tada_core.audio as audio_mod

    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 100)
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    cases = [(tmp_path / "x.txt", "not an accepted audio file; accepted: .wav, .flac, .ogg, .mp3"),
             (tmp_path / "missing.wav", "no such file"),
             (empty, r"empty \(0 bytes\)"),
             (text, "could not be read as audio")]
    for path, message in cases:
        with pytest.raises(TadaError, match=message):
            read_clip(path)
    big = tmp_path / "big.wav"
    sf.write(big, np.ones(2000) * 0.1, 8000)
    monkeypatch.setattr(audio_mod, "MAX_FILE_BYTES", 1000)
    with pytest.raises(TadaError, match="at most 0 MB"):
        read_clip(big)


def test_bad_edit_arguments(organism, clip):
    for kwargs, message in [({"strength": 1.5}, "strength must be between 0"), ({"alpha": []}, "empty list"),
                            ({"prompt": " "}, "prompt must be a non-empty string"), ({"seed": -1}, "seed must be")]:
        with pytest.raises(TadaError, match=message):
            edit(organism, clip, 16000, settings=FAST, **kwargs)


# ----- the command --------------------------------------------------------------------------------------

def test_cli_writes_one_file_per_alpha_from_one_call(tmp_path, cli, clip):
    src = tmp_path / "in.flac"
    sf.write(src, clip, 16000)
    out = tmp_path / "out.wav"
    code, stdout, err = cli("edit", "--audio", src, "--steer", "vectors/tada-organism-brightness-caa",
                            "--alpha", "0", "2", "-2", "--prompt", PROMPT, "--steps", "4", "--out", out, "--encoded")
    assert code == 0, err
    names = sorted(p.name for p in tmp_path.glob("out*.wav"))
    assert names == ["out_a+0.wav", "out_a+2.wav", "out_a-2.wav", "out_encoded.wav"]
    a0, sr = sf.read(tmp_path / "out_a+0.wav")
    enc, _ = sf.read(tmp_path / "out_encoded.wav")
    assert sr == 16000 and a0.shape == (64000,) and np.abs(a0 - enc).max() < 1e-3
    assert stdout.count("wrote") == 4


def test_cli_bad_input_is_one_line_exit_2(tmp_path, cli):
    bad = tmp_path / "x.wav"
    bad.write_text("nope")
    for args, message in [(["--audio", bad], "could not be read as audio"),
                          (["--audio", tmp_path / "y.mp3"], "no such file"),
                          (["--audio", bad, "--alpha", "1"], "--alpha other than 0 needs --steer"),
                          (["--audio", bad, "--strength", "2"], "strength must be between 0")]:
        code, _, err = cli("edit", *args, "--out", tmp_path / "o.wav")
        assert code == 2 and message in err and err.count("\n") == 1, err


# ----- MusicGen: continuation from the clip's codec tokens -------------------------------------------------

@pytest.fixture(scope="module")
def musicgen_organism():
    m = load_model("musicgen-organism", device="cpu")
    m.set_progress_bar(False)
    return m


def test_musicgen_keeps_the_clips_tokens_and_continues_them_steered(musicgen_organism):
    """The organism's EnCodec encodes the clip; the output's first half is the codec's copy of the clip, the
    alpha-0 row is the unsteered continuation (the same as without a vector), the steered row differs only after
    the kept frames, and the continuation depends on the clip it continues."""
    m = musicgen_organism
    hop = round(m.sample_rate / m.frame_rate)
    clip = m.generate(PROMPT, seeds=8500).audio[0, 0].numpy()
    vec = load_vector("vectors/musicgen-organism-brightness-diffmean")
    r = edit(m, clip, 16000, steer=vec, alpha=[0.0, 2.0], prompt=PROMPT, seed=4, strength=0.5)
    frames = m.steps_for(m.defaults.duration) - m.codebooks + 1
    assert r.method == "continuation" and r.start_step == round(0.5 * frames) == 32
    assert r.audio.shape == (2, 1, frames * hop) and r.alphas == (0.0, 2.0)
    rms = float(r.original.pow(2).mean().sqrt())
    assert float((r.encoded - r.original).pow(2).mean().sqrt()) < 0.05 * rms    # the codec keeps its own clip
    kept = (r.start_step - 1) * hop     # the last kept frame cross-fades into the first generated one
    for row in r.audio:
        torch.testing.assert_close(row[:, :kept], r.encoded[:, :kept], atol=1e-4, rtol=0)
    assert float((r.audio[1] - r.audio[0])[:, kept:].pow(2).mean().sqrt()) > 0.1 * rms
    plain = edit(m, clip, 16000, alpha=[0.0], prompt=PROMPT, seed=4, strength=0.5)
    torch.testing.assert_close(plain.audio[0], r.audio[0], atol=1e-4, rtol=0)
    other = edit(m, m.generate("a fast march played on drums", seeds=3).audio[0, 0].numpy(), 16000, alpha=[0.0],
                 prompt=PROMPT, seed=4, strength=0.5)
    assert float((other.audio[0] - r.audio[0])[:, kept:].pow(2).mean().sqrt()) > 0.1 * rms


def test_musicgen_continuation_on_the_tiny_fixture_and_its_one_line_errors():
    m = load_model("tiny-musicgen-melody", device="cpu")
    audio = np.random.default_rng(1).normal(0, 0.3, size=(1, 8000)).astype(np.float32)
    r = edit(m, audio, 8000, steer=random_vector(m), alpha=[0.0, 4.0], prompt="x", strength=0.25)
    assert r.start_step == 47 and r.audio.shape == (2, 1, 4000)      # 63 frames at 125 /s, 3/4 of them kept
    kept = 46 * 64
    torch.testing.assert_close(r.audio[:, :, :kept], r.encoded[None, :, :kept].expand(2, 1, kept), atol=1e-5, rtol=0)
    assert float((r.audio[1] - r.audio[0]).abs().max()) > 0
    assert edit(m, audio, 8000, prompt="x").strength == 0.5      # the family's default
    for strength, message in [(1.0, "between 0 and 1, exclusive"), (0.0, "between 0 and 1, exclusive"),
                              (0.001, "keeps 63 of the clip's 63 codec frames"), (2.0, "strength must be between")]:
        with pytest.raises(TadaError, match=message) as e:
            edit(m, audio, 8000, prompt="x", strength=strength)
        assert "\n" not in str(e.value)


def test_cli_continues_a_clip_with_musicgen(tmp_path, cli, musicgen_organism):
    clip = musicgen_organism.generate(PROMPT, seeds=8501).audio[0, 0].numpy()
    src = tmp_path / "in.wav"
    sf.write(src, clip, 16000)
    out = tmp_path / "out.wav"
    code, stdout, err = cli("edit", "--model", "musicgen-organism", "--audio", src, "--steer",
                            "vectors/musicgen-organism-brightness-diffmean", "--alpha", "0", "2", "--strength", "0.25",
                            "--prompt", PROMPT, "--out", out, "--encoded")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.glob("out*.wav")) == ["out_a+0.wav", "out_a+2.wav", "out_encoded.wav"]
    a0, sr = sf.read(tmp_path / "out_a+0.wav")
    a2, _ = sf.read(tmp_path / "out_a+2.wav")
    assert sr == 16000 and a0.shape == a2.shape == (64 * 1024,)
    np.testing.assert_allclose(a0[:40 * 1024], a2[:40 * 1024], atol=1e-3)     # 48 of 64 frames kept
    assert np.abs(a0[49 * 1024:] - a2[49 * 1024:]).max() > 1e-2
    assert "keeping the clip's first 48 codec frames" in err
