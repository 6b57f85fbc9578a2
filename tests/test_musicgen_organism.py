"""The MusicGen organism: its EnCodec codec, its training, the shipped model and a shipped DiffMean vector."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tada_core import load_model
from tada_core.organism import codec, encodec, synth
from tada_core.organism.measures import cents, note_pitch
from tada_core.organism.musicgen_model import MusicGenOrganismConfig, musicgen_checkpoint_path
from tada_core.organism.musicgen_train import delayed, train

ROOT = Path(__file__).resolve().parents[1]
TINY = MusicGenOrganismConfig(layers=1, width=32, heads=2, ffn=64, codebooks=2, codebook_size=32, max_positions=128)


def _amps(n, seed):
    items = synth.dataset(n, seed=seed)
    return [a for a, _, _ in items], np.stack([synth.render(a, s) for a, _, s in items]).astype(np.float32)


def test_the_codec_is_the_synthesis_in_encodecs_layers():
    _, amps = _amps(3, 5)
    audio = codec.synthesize_amplitudes(amps).astype(np.float32)
    model = encodec.build_codec(torch.randn(2, 16, codec.N_CHANNELS))
    emb = encodec.frames_of(amps).reshape(3, -1, codec.N_CHANNELS).transpose(0, 2, 1)
    with torch.no_grad():
        enc = model.encoder(torch.from_numpy(audio)[:, None]).numpy()
        dec = model.decoder(torch.from_numpy(np.ascontiguousarray(emb)))[:, 0].numpy()
    assert np.abs(enc - emb).max() < 1e-4 * np.abs(emb).max()              # the analysis, exactly
    assert np.abs(dec - audio).max() < 1e-5                                # the synthesis, exactly
    codes = model.encode(torch.from_numpy(audio)[:, None]).audio_codes[0]
    assert torch.equal(codes, encodec.tokens(model, amps))                 # the stock encoder = the token path


def test_a_grid_signal_survives_the_quantized_round_trip_in_tune():
    """Held notes of the generator, through EnCodec's own encode -> RVQ codes -> decode, with codebooks
    fitted on them: every pitch within 10 cents of equal temperament by pYIN."""
    pitches = codec.instrument_pitches()[::4]
    notes = np.zeros((len(pitches), codec.N_CHANNELS, codec.N_FRAMES), dtype=np.float32)
    for i, m in enumerate(pitches):
        for ch, a in synth.harmonics("flute", "dark", codec.grid_bin(m)):
            notes[i, ch] = 0.3 * a
    books = encodec.fit_codebooks(notes, codebooks=2, size=4, iters=4, progress=False)
    model = encodec.build_codec(books)
    audio = codec.synthesize_amplitudes(notes).astype(np.float32)
    codes = model.encode(torch.from_numpy(audio)[:, None]).audio_codes[0]
    back = encodec.decode(model, codes)
    assert back.shape == audio.shape
    f0 = note_pitch(back, codec.SR, 1000, 3000)
    assert np.all(np.abs(cents(f0, np.array(pitches))) < 10)              # pYIN: within 10 cents after the trip


def test_delay_pattern_is_what_generate_builds():
    tokens = torch.arange(2 * 3 * 5).reshape(2, 3, 5) % 7
    seq = delayed(tokens, pad=99)
    assert seq.shape == (2, 3, 8)
    assert seq[0, 0].tolist() == [99, 0, 1, 2, 3, 4, 99, 99]
    assert seq[0, 2, :3].tolist() == [99, 99, 99] and seq[0, 2, 3:].tolist() == tokens[0, 2].tolist()


def _tiny_run(folder, **kw):
    return train(folder, clips=24, fit_clips=24, steps=6, batch=4, warmup=2, save_every=2, progress=False,
                 config=TINY, kmeans_iters=2, **kw)


def test_training_resumes_bit_identically_and_the_result_loads_and_generates(tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    _tiny_run(whole)
    stopped = _tiny_run(parts, stop_after=3)
    assert stopped["stopped_at"] == 3 and (parts / "_train_state.safetensors").exists()
    _tiny_run(parts)                                                       # rerun: resumes at step 3
    from safetensors.torch import load_file

    a, b = load_file(whole / "model.safetensors"), load_file(parts / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (parts / "_train_state.safetensors").exists()
    model = load_model(str(whole))
    assert model.family == "musicgen" and model.sample_rate == codec.SR and len(model.layers) == 1
    assert model.frame_rate == 15.625
    clip = model.generate("a fast pop song", seeds=0, duration=1.024)
    assert clip.audio.shape == (1, 1, 16384) and torch.isfinite(clip.audio).all()


SHIPPED = Path(musicgen_checkpoint_path())
needs_shipped = pytest.mark.skipif(not (SHIPPED / "model.safetensors").exists(), reason="no shipped checkpoint")


@needs_shipped
def test_the_shipped_model_loads_offline_within_budget_and_generates_deterministically():
    size = sum(p.stat().st_size for p in SHIPPED.iterdir() if p.suffix == ".safetensors")
    assert size <= 20 * 2 ** 20
    model = load_model("musicgen-organism")
    assert model.entry.scorer_name == "organism" and model.defaults.duration == pytest.approx(4.096)
    a = model.generate(["a fast pop song", "a slow waltz"], seeds=[3, 4])
    b = model.generate(["a slow waltz"], seeds=[4])
    assert a.audio.shape == (2, 1, 65536)
    assert torch.allclose(a.audio[1], b.audio[0], atol=1e-5)


def _steered_means(concept, measure, prompts):
    from tada_core.artifacts.vectors import SteeringVector

    model = load_model("musicgen-organism")
    vec = SteeringVector.load(ROOT / "vectors" / f"musicgen-organism-{concept}-diffmean")
    lam = max(vec.alpha_range)                  # the organism's lambda, chosen on the fitting seeds
    lams = [-lam, 0.0, lam]
    with vec.apply(model, alpha=[x for _ in prompts for x in lams], use_renorm=False):
        g = model.generate([p for p in prompts for _ in lams], seeds=[7000 + i for i in range(len(prompts))
                                                                      for _ in lams])
    return measure(g.audio, g.sample_rate).reshape(len(prompts), 3).mean(0)


PROMPTS = ["a pop song played on piano", "a waltz played on violin", "a folk tune", "a march played on flute"]


@needs_shipped
def test_a_shipped_brightness_vector_moves_librosas_centroid_with_the_sign_of_lambda():
    from tada_core.evaluation.metrics import spectral_centroid

    hz = _steered_means("brightness", spectral_centroid, PROMPTS)
    assert hz[0] < hz[1] < hz[2], hz


@needs_shipped
@pytest.mark.xfail(strict=True, reason="the MusicGen organism does not follow tempo prompts (adherence 0.59, "
                                       "results/musicgen_organism/adherence.md) and its tempo vector does not steer "
                                       "(results/musicgen_organism/README.md); strict: passing means it was fixed")
def test_a_shipped_tempo_vector_moves_librosas_bpm_with_the_sign_of_lambda():
    from tada_core.evaluation.metrics import tempo_bpm

    bpm = _steered_means("tempo", tempo_bpm, PROMPTS)
    assert bpm[0] < bpm[1] < bpm[2], bpm
