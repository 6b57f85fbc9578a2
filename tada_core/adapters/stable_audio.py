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

from tada_core.adapters.base import CrossAttentionLayer, ModelAdapter, Run, indexed_layers


class StableAudioAdapter(ModelAdapter):
    family = "stable-audio"
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

    def _call_pipeline(self, run: Run, generators) -> torch.Tensor:
        s = run.settings
        return self.pipeline(
            prompt=run.prompts, audio_end_in_s=s.duration, num_inference_steps=s.steps,
            guidance_scale=s.guidance, generator=generators,
        ).audios
