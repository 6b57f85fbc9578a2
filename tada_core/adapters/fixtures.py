"""Tiny random-weight models built in code, offline, for the tests and the CLI (``--model tiny-ace-step``).

Each family's tiny pipeline lives in its adapter module beside its registry entries (``tiny_ace_step`` in
:mod:`tada_core.adapters.ace_step`, ...); they exercise the real diffusers pipelines end to end (prompt
encoding, CFG batching, schedulers, decoders) in well under a second on a CPU. Tokenizers are trained
here (:mod:`tada_core.adapters.text`); weights are seeded and the caller's global RNG is left untouched.
This module re-exports them and adds the tiny CLAP scorer model.
"""

from __future__ import annotations

from pathlib import Path

from tada_core.adapters.ace_step import tiny_ace_step
from tada_core.adapters.audioldm2 import audioldm2_clap, tiny_audioldm2
from tada_core.adapters.base import seeded
from tada_core.adapters.musicgen import tiny_musicgen_melody
from tada_core.adapters.stable_audio import tiny_stable_audio
from tada_core.adapters.text import build_tokenizer


def tiny_clap(folder: str | Path) -> Path:
    """Save a random-weight ``ClapModel`` + ``ClapProcessor`` (1 s windows at 48 kHz) to ``folder``.

    For testing :class:`tada_core.evaluation.scoring.ClapScorer` offline through ``from_pretrained``.
    """
    from transformers import (
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        RobertaTokenizerFast,
    )

    tok = build_tokenizer(RobertaTokenizerFast)
    text = dict(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=37, max_position_embeddings=80, projection_dim=16)
    audio = dict(hidden_size=32, patch_embeds_hidden_size=16, depths=[1, 1], num_attention_heads=[2, 2],
                 window_size=4, spec_size=64, num_mel_bins=64, patch_size=4, patch_stride=[4, 4], projection_dim=16)
    model = seeded(lambda: ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=16)))
    extractor = ClapFeatureExtractor(feature_size=64, sampling_rate=48000, max_length_s=1, truncation="rand_trunc",
                                     hop_length=1024, fft_window_size=1024)
    folder = Path(folder)
    model.save_pretrained(folder)
    ClapProcessor(feature_extractor=extractor, tokenizer=tok).save_pretrained(folder)
    return folder


__all__ = ["tiny_ace_step", "tiny_stable_audio", "tiny_audioldm2", "tiny_musicgen_melody", "audioldm2_clap", "tiny_clap",
           "build_tokenizer", "seeded"]
