"""The organism as a stock diffusers ``StableAudioPipeline``, built from a small config.

Components: a T5 text encoder and BPE tokenizer trained here, Stable Audio's projection
model (text + seconds conditioning), a ``StableAudioDiTModel`` with ``num_layers``
cross-attention layers over the codec's 128-channel latent, the analytic Oobleck decoder
from :mod:`.codec`, and ``CosineDPMSolverMultistepScheduler`` (v-prediction). The
training objective in :mod:`.train` uses the scheduler's own preconditioning, so the
pipeline samples exactly the model that was trained.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from tada_core.adapters.text import MUSIC_WORDS, build_tokenizer
from tada_core.organism import synth
from tada_core.organism.codec import N_CHANNELS, N_FRAMES, build_decoder

CHECKPOINT = Path(__file__).parent / "checkpoint"
NAME = "tada-organism"
# Sampling defaults, saved with the checkpoint as tada_sampling.json (see tada_core.registry).
SAMPLING = {"duration": 4.0, "steps": 20, "guidance": 4.0}


@dataclasses.dataclass
class OrganismConfig:
    num_layers: int = 10
    heads: int = 4
    head_dim: int = 32
    kv_heads: int = 2
    text_dim: int = 128
    text_layers: int = 2
    vocab_size: int = 800
    max_tokens: int = 32
    sigma_min: float = 0.02
    sigma_max: float = 80.0
    sigma_data: float = 1.0


def vocabulary() -> list[str]:
    """Words the organism's tokenizer learns whole: every caption word plus the papers' template words."""
    words = set()
    for table in (synth.TEMPO_WORDS, synth.MOOD_WORDS, synth.BRIGHT_WORDS, synth.INSTRUMENT_WORDS,
                  synth.VOICE_PHRASES):
        for phrases in table.values():
            for p in phrases:
                words.update(p.split())
    for phrase in synth.base_phrases():
        words.update(phrase.split())
    words.update("a an the with and on played no without drums drum beat percussion instrumental vocals singer "
                 "voice female male music song tune melody piece track pop waltz folk march".split())
    words.update(MUSIC_WORDS)
    return sorted(words)


def build_pipeline(config: OrganismConfig | None = None, seed: int = 0):
    """A freshly initialized (untrained) organism pipeline."""
    from diffusers import (
        CosineDPMSolverMultistepScheduler,
        StableAudioDiTModel,
        StableAudioPipeline,
        StableAudioProjectionModel,
    )
    from transformers import T5Config, T5EncoderModel

    c = config or OrganismConfig()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # A plain fast tokenizer: T5TokenizerFast insists on a Unigram model when reloaded.
        tokenizer = build_tokenizer(vocab_size=c.vocab_size, model_max_length=c.max_tokens,
                                    corpus=vocabulary())
        text_encoder = T5EncoderModel(T5Config(
            vocab_size=len(tokenizer), d_model=c.text_dim, d_ff=2 * c.text_dim, d_kv=c.text_dim // 4, num_heads=4,
            num_layers=c.text_layers, dropout_rate=0.0, pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id))
        projection = StableAudioProjectionModel(text_encoder_dim=c.text_dim, conditioning_dim=c.text_dim,
                                                min_value=0, max_value=8)
        transformer = StableAudioDiTModel(
            sample_size=N_FRAMES, in_channels=N_CHANNELS, num_layers=c.num_layers,
            attention_head_dim=c.head_dim, num_attention_heads=c.heads, num_key_value_attention_heads=c.kv_heads,
            out_channels=N_CHANNELS, cross_attention_dim=c.heads * c.head_dim, time_proj_dim=64,
            global_states_input_dim=2 * c.text_dim, cross_attention_input_dim=c.text_dim)
        scheduler = CosineDPMSolverMultistepScheduler(
            sigma_min=c.sigma_min, sigma_max=c.sigma_max, sigma_data=c.sigma_data, sigma_schedule="exponential",
            solver_order=2, prediction_type="v_prediction")
        pipe = StableAudioPipeline(vae=build_decoder(), text_encoder=text_encoder, tokenizer=tokenizer,
                                   projection_model=projection, transformer=transformer, scheduler=scheduler)
    return pipe


def checkpoint_path() -> str:
    """The shipped checkpoint folder (a diffusers pipeline folder); override with ``TADA_ORGANISM_PATH``."""
    return os.environ.get("TADA_ORGANISM_PATH", str(CHECKPOINT))
