"""Alignment scorers: the organism's, CLAP through transformers (tiny, offline), MuQ's clear error."""

import builtins

import numpy as np
import pytest
import torch

from tada_core.concepts import PAPER_CONCEPTS, Concept
from tada_core.errors import TadaError
from tada_core.organism.scorer import OrganismScorer
from tada_core.registry import REGISTRY
from tada_core.evaluation.scoring import ClapScorer, make_scorer


def test_clap_scorer_is_the_cosine_of_claps_own_embeddings(tmp_path):
    from transformers import ClapModel, ClapProcessor

    from tada_core.adapters.fixtures import tiny_clap

    folder = tiny_clap(tmp_path / "clap")
    scorer = make_scorer(f"clap:{folder}", REGISTRY["ace-step"])
    assert isinstance(scorer, ClapScorer)
    audio = torch.randn(3, 1, 48000, generator=torch.Generator().manual_seed(0)) * 0.1
    sim = scorer.similarity(audio, 48000, PAPER_CONCEPTS["tempo"])
    model, proc = ClapModel.from_pretrained(folder).eval(), ClapProcessor.from_pretrained(folder)
    with torch.no_grad():
        a = model.get_audio_features(**proc(audio=list(audio[:, 0].numpy()), sampling_rate=48000,
                                            return_tensors="pt")).pooler_output
        t = model.get_text_features(**proc(text=["a fast track"], return_tensors="pt")).pooler_output
    expected = torch.nn.functional.cosine_similarity(a, t).numpy()
    assert sim.shape == (3,) and np.allclose(sim, expected, atol=1e-5)
    assert scorer.sign(PAPER_CONCEPTS["tempo"]) == 1 and "a fast track" in scorer.label(PAPER_CONCEPTS["tempo"])
    # 16 kHz input is resampled to CLAP's 48 kHz, not misread: tones below 400 Hz sampled at 16 kHz score as the
    # same tones sampled at 48 kHz (read as 48 kHz, the 16 kHz clips would be a third as long, three times as high)
    rng = np.random.default_rng(0)
    t = np.arange(48000) / 48000
    tones = torch.tensor(np.stack([sum(rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * rng.uniform(100, 400) * t
                                                                       + rng.uniform(0, 6)) for _ in range(4))
                                   for _ in range(3)])[:, None], dtype=torch.float32)
    at_48k = scorer.similarity(tones, 48000, PAPER_CONCEPTS["tempo"])
    at_16k = scorer.similarity(tones[:, :, ::3], 16000, PAPER_CONCEPTS["tempo"])
    assert at_16k.shape == (3,) and np.allclose(at_16k, at_48k, atol=5e-4)


def test_muq_without_the_package_says_how_to_install(monkeypatch):
    real = builtins.__import__

    def no_muq(name, *args, **kwargs):
        if name == "muq" or name.startswith("muq."):
            raise ImportError("No module named 'muq'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_muq)
    with pytest.raises(TadaError, match="pip install muq"):
        make_scorer("muq", REGISTRY["ace-step"])


def test_scorer_specs_fit_the_model_and_unknown_concepts(tmp_path):
    with pytest.raises(TadaError, match="scorer 'clip' does not fit tada-organism; accepted: organism"):
        make_scorer("clip", REGISTRY["tada-organism"])
    with pytest.raises(TadaError, match="give the CLAP checkpoint"):
        make_scorer("clap", REGISTRY["ace-step"])
    with pytest.raises(TadaError, match="cannot load a CLAP model"):
        make_scorer(f"clap:{tmp_path / 'missing'}", REGISTRY["ace-step"])
    # the real checkpoints have no built-in scorer: the organism's measures of synthetic music would be garbage
    for name in ("ace-step", "stable-audio", "audioldm2", "audioldm2-large"):
        with pytest.raises(TadaError, match=f"{name} has no built-in scorer; choose one with --scorer clap"):
            make_scorer(None, REGISTRY[name])
        with pytest.raises(TadaError, match="does not fit"):
            make_scorer("organism", REGISTRY[name])
    assert isinstance(make_scorer(None, REGISTRY["tada-organism"]), OrganismScorer)
    scorer = OrganismScorer()
    with pytest.raises(TadaError, match="organism scorer knows concepts"):
        scorer.similarity(torch.zeros(1, 1, 16000), 16000, Concept("jazz", "jazz {base}", "{base}"))


def test_organism_scorer_reads_the_generators_ground_truth():
    from tada_core.organism import synth
    from tada_core.organism.concepts import ORGANISM_CONCEPTS

    rng = np.random.default_rng(0)
    fast = [synth.random_attributes(rng, tempo="fast", drums=True, voice="female") for _ in range(4)]
    slow = [synth.random_attributes(rng, tempo="slow", drums=False, voice="male") for _ in range(4)]
    audio = torch.from_numpy(np.stack([synth.synthesize(a, seed=i) for i, a in enumerate(fast + slow)]))[:, None]
    scorer = OrganismScorer()
    tempo = scorer.measure(audio, synth.SR, ORGANISM_CONCEPTS["tempo"])
    assert tempo[:4].min() > 120 > 90 > tempo[4:].max()                    # librosa's BPM
    drums = scorer.similarity(audio, synth.SR, ORGANISM_CONCEPTS["drums"])
    assert drums[:4].min() > 0.1 > 0.02 > drums[4:].max()                  # percussive energy share
    voice = scorer.measure(audio, synth.SR, ORGANISM_CONCEPTS["vocal_gender"])
    assert (voice[:4] > 0.5).all() and (voice[4:] < -0.4).all()            # octaves above 220 Hz: 312 vs 156 Hz
    assert "BPM" in scorer.label(ORGANISM_CONCEPTS["tempo"]) and "pYIN" in scorer.label(ORGANISM_CONCEPTS["vocal_gender"])
    assert scorer.sign(ORGANISM_CONCEPTS["vocal_gender"]) == 1
    assert list(scorer.decide(audio, synth.SR, "tempo")) == [1] * 4 + [0] * 4
