"""The MusicGen organism: a stock transformers ``MusicgenMelodyForConditionalGeneration`` over the organism's music.

Components, all built here from small configs:

* the text side: the diffusion organism's BPE tokenizer (its caption vocabulary) and a
  2-layer T5 encoder, both copied from the diffusion organism's checkpoint when it is there
  (a pretrained, then fine-tuned, text encoder, as MusicGen's is a pretrained T5);
* the codec: :mod:`.encodec`, a stock ``EncodecModel`` with analytic weights and RVQ
  codebooks fitted on the generator's frames (4 codebooks of 1024 entries, 15.625 frames/s);
* the decoder: a ``MusicgenMelodyForCausalLM`` (``decoder.model.decoder.layers[i]`` are the
  residual-stream layers the MusicGen adapter reads and steers), conditioned the Melody way:
  a chroma prefix (empty: no melody) and the projected text states are prepended to the audio
  tokens.

Sampling defaults (4.096 s, guidance 3) are saved with the checkpoint in ``tada_sampling.json``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from tada_core.organism.codec import HOP, N_FRAMES, SR
from tada_core.adapters.musicgen import MusicGenPipeline
from tada_core.organism import encodec
from tada_core.organism.model import OrganismConfig, build_pipeline, checkpoint_path

MUSICGEN_CHECKPOINT = Path(__file__).parent / "musicgen_checkpoint"
MUSICGEN_NAME = "musicgen-organism"
MUSICGEN_SAMPLING = {"duration": N_FRAMES * HOP / SR, "guidance": 3.0}
CHROMA_LENGTH = 4
TEXT_LENGTH = 24      # every prompt is padded to this many tokens in generation (the longest caption has 23;
                      # training batches are padded to their longest, about 21), so its audio always starts at the
                      # decoder positions the model was trained on, alone or in any batch


@dataclasses.dataclass
class MusicGenOrganismConfig:
    layers: int = 4
    width: int = 256
    heads: int = 4
    ffn: int = 1024
    codebooks: int = 4
    codebook_size: int = 1024
    max_positions: int = 256


def build_model(codebooks: torch.Tensor, config: MusicGenOrganismConfig | None = None, seed: int = 0,
                text_from: str | Path | None = None):
    """A fresh (untrained decoder) MusicGen organism as a :class:`~tada_core.adapters.musicgen.MusicGenPipeline`.

    ``codebooks``: the codec's RVQ codebooks ``[K, size, 128]`` (:func:`.encodec.fit_codebooks`).
    ``text_from``: a diffusion organism folder whose tokenizer and text encoder to start from
    (default: the shipped one; a fresh tokenizer and encoder when it is missing).
    """
    from transformers import (
        AutoTokenizer,
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
        T5Config,
        T5EncoderModel,
    )


    c = config or MusicGenOrganismConfig()
    if codebooks.shape[0] != c.codebooks or codebooks.shape[1] != c.codebook_size:
        raise ValueError(f"codebooks {tuple(codebooks.shape)} do not match the config's {c.codebooks} x "
                         f"{c.codebook_size}")
    source = Path(text_from or checkpoint_path())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if (source / "text_encoder").is_dir():
            tokenizer = AutoTokenizer.from_pretrained(source / "tokenizer")
            text = T5EncoderModel.from_pretrained(source / "text_encoder", use_safetensors=True, dtype=torch.float32)
        else:
            pipe = build_pipeline(OrganismConfig(), seed=seed)
            tokenizer, text = pipe.tokenizer, pipe.text_encoder
        codec = encodec.build_codec(codebooks)
        pad = c.codebook_size
        decoder = MusicgenMelodyDecoderConfig(
            vocab_size=c.codebook_size, hidden_size=c.width, num_hidden_layers=c.layers, num_attention_heads=c.heads,
            ffn_dim=c.ffn, num_codebooks=c.codebooks, pad_token_id=pad, decoder_start_token_id=pad,
            bos_token_id=pad, max_position_embeddings=c.max_positions, tie_word_embeddings=False, dropout=0.0,
            attention_dropout=0.0, activation_dropout=0.0, layerdrop=0.0)
        text_config = T5Config.from_dict(text.config.to_dict())
        full = MusicgenMelodyConfig(text_encoder=text_config, audio_encoder=codec.config, decoder=decoder,
                                    chroma_length=CHROMA_LENGTH, num_chroma=12)
        model = MusicgenMelodyForConditionalGeneration(full)
        model.text_encoder.load_state_dict(text.state_dict())
        model.audio_encoder.load_state_dict(codec.state_dict())
    model.generation_config.pad_token_id = pad
    model.generation_config.decoder_start_token_id = pad
    model.generation_config.bos_token_id = pad
    model.config.tada_text_length = TEXT_LENGTH
    return MusicGenPipeline(model.eval(), tokenizer, text_length=TEXT_LENGTH)


def musicgen_checkpoint_path() -> str:
    """The shipped MusicGen organism folder; override with ``TADA_MUSICGEN_ORGANISM_PATH``."""
    return os.environ.get("TADA_MUSICGEN_ORGANISM_PATH", str(MUSICGEN_CHECKPOINT))


__all__ = ["MusicGenOrganismConfig", "build_model", "musicgen_checkpoint_path", "MUSICGEN_NAME",
           "MUSICGEN_SAMPLING", "CHROMA_LENGTH", "TEXT_LENGTH"]
