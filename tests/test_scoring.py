"""Alignment scorers: the organism's, CLAP through transformers (tiny, offline), MuQ's clear error."""

import builtins

import numpy as np
import pytest
import torch

from tada_core.concepts import PAPER_CONCEPTS, Concept
from tada_core.errors import TadaError
from tada_core.scoring import ClapScorer, OrganismScorer, make_scorer


def test_clap_scorer_is_the_cosine_of_claps_own_embeddings(tmp_path):
    from transformers import ClapModel, ClapProcessor

    from tada_core.fixtures import tiny_clap

    folder = tiny_clap(tmp_path / "clap")
    scorer = make_scorer(f"clap:{folder}")
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
    # 16 kHz input is resampled to CLAP's 48 kHz, not misread
    assert scorer.similarity(audio[:, :, ::3], 16000, PAPER_CONCEPTS["tempo"]).shape == (3,)


def test_muq_without_the_package_says_how_to_install(monkeypatch):
    real = builtins.__import__

    def no_muq(name, *args, **kwargs):
        if name == "muq" or name.startswith("muq."):
            raise ImportError("No module named 'muq'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_muq)
    with pytest.raises(TadaError, match="pip install muq"):
        make_scorer("muq")


def test_scorer_specs_and_unknown_concepts():
    with pytest.raises(TadaError, match="unknown scorer 'clip'"):
        make_scorer("clip")
    with pytest.raises(TadaError, match="give the CLAP checkpoint"):
        make_scorer("clap")
    scorer = OrganismScorer()
    with pytest.raises(TadaError, match="organism scorer knows concepts"):
        scorer.similarity(torch.zeros(1, 1, 16000), 16000, Concept("jazz", "jazz {base}", "{base}"))


def test_organism_scorer_reads_the_generators_ground_truth():
    from tada_core.organism import synth
    from tada_core.organism.concepts import ORGANISM_CONCEPTS

    rng = np.random.default_rng(0)
    fast = [synth.random_attributes(rng, tempo="fast", drums=True) for _ in range(4)]
    slow = [synth.random_attributes(rng, tempo="slow", drums=False) for _ in range(4)]
    audio = torch.from_numpy(np.stack([synth.synthesize(a, seed=i) for i, a in enumerate(fast + slow)]))[:, None]
    scorer = OrganismScorer()
    tempo = scorer.measure(audio, synth.SR, ORGANISM_CONCEPTS["tempo"])
    assert tempo[:4].min() > tempo[4:].max()            # beats per second
    drums = scorer.similarity(audio, synth.SR, ORGANISM_CONCEPTS["drums"])
    assert drums[:4].min() > 0.5 > drums[4:].max()      # P(drums)
    assert scorer.label(ORGANISM_CONCEPTS["vocal_gender"]) == "low_voice"
    assert scorer.sign(ORGANISM_CONCEPTS["vocal_gender"]) == -1
