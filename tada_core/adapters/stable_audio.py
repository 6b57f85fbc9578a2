"""Stable Audio Open through diffusers' ``StableAudioPipeline``.

Layers: ``transformer.transformer_blocks[i].attn2``; the TADA paper's functional
layers {12, 13} (counted from 1) are indices (11, 12). CFG batch is [uncond, cond].
The DiT always denoises its full ``sample_size``; the pipeline crops to ``duration``.
Its scheduler (CosineDPMSolverMultistepScheduler) needs ``torchsde``.
"""

from __future__ import annotations

import torch

from .base import CrossAttentionLayer, ModelAdapter, output_width


class StableAudioAdapter(ModelAdapter):
    family = "stable-audio"
    pipeline_class_name = "StableAudioPipeline"
    default_hub_id = "stabilityai/stable-audio-open-1.0"
    denoiser_attr = "transformer"
    layer_path_template = "transformer.transformer_blocks.{i}.attn2"
    cond_first = False
    paper_layer_count = 24
    paper_functional_layers = (11, 12)

    @classmethod
    def find_layers(cls, pipeline) -> list[CrossAttentionLayer]:
        return [
            CrossAttentionLayer(i, f"transformer.transformer_blocks.{i}.attn2", block.attn2,
                                output_width(block.attn2))
            for i, block in enumerate(pipeline.transformer.transformer_blocks)
        ]

    def family_defaults(self) -> dict[str, float]:
        return {"duration": min(10.0, self.max_duration()), "steps": 100, "guidance": 7.0}

    def max_duration(self) -> float:
        vae = self.pipeline.vae
        downsample = 1
        for r in vae.config.downsampling_ratios:
            downsample *= r
        return self.pipeline.transformer.config.sample_size * downsample / vae.config.sampling_rate

    @property
    def sample_rate(self) -> int:
        return int(self.pipeline.vae.config.sampling_rate)

    def _call_pipeline(self, prompts, generators, duration, steps, guidance) -> torch.Tensor:
        return self.pipeline(
            prompt=prompts, audio_end_in_s=duration, num_inference_steps=steps,
            guidance_scale=guidance, generator=generators,
        ).audios
