"""Stable Audio Open through diffusers' ``StableAudioPipeline``.

Layers: ``transformer.transformer_blocks[i].attn2`` (Stable Audio Open 1.0: 24 blocks of
width 1536); the TADA paper's functional layers {12, 13} (counted from 1) are indices
(11, 12) of stable-audio-open-1.0. CFG batch is [uncond, cond]. The DiT always denoises
its full ``sample_size``; the pipeline crops to ``duration``. Its scheduler
(CosineDPMSolverMultistepScheduler) needs ``torchsde``.
"""

from __future__ import annotations

import math

import torch

from tada_core.adapters.base import seeded, CrossAttentionLayer, ModelAdapter, Run, indexed_layers
from tada_core.adapters.entry import PAPER_LAYERS, TINY_DEFAULTS, LayerPreset, ModelEntry, committed_config
from tada_core.concepts import PAPER_CONCEPT_SET
from tada_core.adapters.text import build_tokenizer


class StableAudioAdapter(ModelAdapter):
    family = "stable-audio"
    display_name = "Stable Audio"
    steer_audio_entry = "stable-audio"
    pipeline_class_name = "StableAudioPipeline"
    denoiser_attr = "transformer"
    cond_first = False

    @classmethod
    def find_layers(cls, pipeline) -> list[CrossAttentionLayer]:
        return indexed_layers("transformer.transformer_blocks.{i}.attn2", pipeline.transformer.transformer_blocks,
                              "attn2")

    def family_defaults(self) -> dict[str, float]:
        return {"duration": min(10.0, self.max_duration()), "steps": 100, "guidance": 7.0}

    def max_duration(self) -> float:
        """Seconds the decoder makes of the DiT's ``sample_size`` frames. Each Oobleck decoder block of stride
        ``s`` (a transposed conv of kernel ``2 s``, padding ``ceil(s / 2)``) turns ``L`` frames into
        ``L s + s - 2 ceil(s / 2)`` samples: ``L s`` for even strides (Stable Audio Open), one frame fewer
        for a stride-1 block (the organism's amplitude stage)."""
        vae = self.pipeline.vae
        length = self.pipeline.transformer.config.sample_size
        for s in reversed(vae.config.downsampling_ratios):
            length = length * s + s - 2 * math.ceil(s / 2)
        return length / vae.config.sampling_rate

    @property
    def sample_rate(self) -> int:
        return int(self.pipeline.vae.config.sampling_rate)

    @property
    def audio_channels(self) -> int:
        return int(self.pipeline.vae.config.audio_channels)

    def encode_audio(self, audio: torch.Tensor, settings) -> torch.Tensor:
        """The clip through the Oobleck encoder (the mean of its latent distribution), zero-padded to the
        DiT's ``sample_size`` frames as the pipeline's own audio-to-audio path pads; a registry entry with
        its own ``encode_audio`` (the organism: the codec's analytic inverse) is used instead."""
        vae, frames = self.pipeline.vae, int(self.pipeline.transformer.config.sample_size)
        own = getattr(self.entry, "encode_audio", None)
        if own is not None:
            latent = torch.as_tensor(own(audio.numpy(), self.sample_rate), dtype=torch.float32)
        else:
            x = torch.zeros(1, self.audio_channels, frames * vae.hop_length)
            n = min(audio.shape[-1], x.shape[-1])
            x[0, :, :n] = audio[:, :n]
            with torch.no_grad():
                latent = vae.encode(x.to(self.device, vae.dtype)).latent_dist.mode()
        latent = latent.reshape(1, -1, latent.shape[-1])[..., :frames]
        return latent.to(self.device, self.denoiser.dtype)

    def _call_pipeline(self, run: Run, generators) -> torch.Tensor:
        s = run.settings
        extra = {}
        if "initial_latents" in run.state:   # an edit (tada_core.editing): the pipeline scales them back
            extra["latents"] = run.state["initial_latents"] / self.pipeline.scheduler.init_noise_sigma
        return self.pipeline(
            prompt=run.prompts, audio_end_in_s=s.duration, num_inference_steps=s.steps,
            guidance_scale=s.guidance, generator=generators, **extra,
        ).audios

# ----- registry entries: the checkpoints of this family, and its tiny test fixture ----------------------


def tiny_stable_audio(num_layers: int = 4):
    """StableAudioPipeline with a 4-block DiT, 128 Hz stereo audio, at most 255 samples (1.99 s: its
    stride-1 decoder block drops one)."""
    from diffusers import (
        AutoencoderOobleck,
        CosineDPMSolverMultistepScheduler,
        StableAudioDiTModel,
        StableAudioPipeline,
        StableAudioProjectionModel,
    )
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    def build():
        tokenizer = build_tokenizer(T5TokenizerFast, model_max_length=16)
        transformer = StableAudioDiTModel(
            sample_size=128, in_channels=3, num_layers=num_layers, attention_head_dim=4,
            num_key_value_attention_heads=2, out_channels=3, cross_attention_dim=4, time_proj_dim=8,
            global_states_input_dim=8, cross_attention_input_dim=4)
        text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=16, d_ff=32, d_kv=8,
                                               num_heads=2, num_layers=2))
        vae = AutoencoderOobleck(encoder_hidden_size=6, downsampling_ratios=[1, 2], decoder_channels=3,
                                 decoder_input_channels=3, audio_channels=2, channel_multiples=[2, 4],
                                 sampling_rate=128)
        projection = StableAudioProjectionModel(text_encoder_dim=16, conditioning_dim=4, min_value=0, max_value=32)
        scheduler = CosineDPMSolverMultistepScheduler(solver_order=2, prediction_type="v_prediction",
                                                      sigma_data=1.0, sigma_schedule="exponential")
        return StableAudioPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   projection_model=projection, transformer=transformer, scheduler=scheduler)

    return seeded(build)


ENTRIES = (
    ModelEntry("stable-audio", StableAudioAdapter, PAPER_CONCEPT_SET, hub_id="stabilityai/stable-audio-open-1.0",
               description="Stable Audio Open 1.0",
               presets=(LayerPreset((11, 12), "stable-audio-open-1.0", f"{PAPER_LAYERS}: layers 12, 13 counted from 1"),),
               denoiser_config=committed_config("stable_audio_open_1_0_transformer.json")),
    ModelEntry("tiny-stable-audio", StableAudioAdapter, PAPER_CONCEPT_SET, build=tiny_stable_audio,
               defaults=TINY_DEFAULTS, description="random weights, 4 layers (tests)", listed=False),
)


__all__ = ["StableAudioAdapter", "tiny_stable_audio", "ENTRIES"]
