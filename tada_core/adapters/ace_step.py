"""ACE-Step 1.5 through diffusers' ``AceStepPipeline``.

Layers: ``transformer.layers[i].cross_attn`` for i = 0..N-1; index i here is block i,
so the TADA paper's functional layers {7, 8} (counted from 1) are indices (6, 7).
CFG: the pipeline stacks [cond, uncond] and runs CFG only for guidance > 1, only on
non-turbo checkpoints, and only inside its ``cfg_interval``; other steps have no
unconditional rows, which ``branch_rows`` handles by row count.
"""

from __future__ import annotations

import torch

from .base import CrossAttentionLayer, ModelAdapter, output_width


class AceStepAdapter(ModelAdapter):
    family = "ace-step"
    pipeline_class_name = "AceStepPipeline"
    default_hub_id = "ACE-Step/acestep-v15-xl-turbo-diffusers"
    denoiser_attr = "transformer"
    layer_path_template = "transformer.layers.{i}.cross_attn"
    cond_first = True
    paper_layer_count = 24
    paper_functional_layers = (6, 7)

    @classmethod
    def find_layers(cls, pipeline) -> list[CrossAttentionLayer]:
        return [
            CrossAttentionLayer(i, f"transformer.layers.{i}.cross_attn", block.cross_attn,
                                output_width(block.cross_attn))
            for i, block in enumerate(pipeline.transformer.layers)
            if getattr(block, "cross_attn", None) is not None
        ]

    def family_defaults(self) -> dict[str, float]:
        # Turbo checkpoints are guidance-distilled: the pipeline ignores guidance > 1 there.
        turbo = bool(getattr(self.pipeline, "is_turbo", False))
        return {"duration": 30.0, "steps": 8 if turbo else 30, "guidance": 1.0 if turbo else 7.0}

    @property
    def sample_rate(self) -> int:
        return int(self.pipeline.sample_rate)

    def _call_pipeline(self, prompts, generators, duration, steps, guidance) -> torch.Tensor:
        return self.pipeline(
            prompt=prompts, lyrics=[""] * len(prompts), audio_duration=duration,
            num_inference_steps=steps, guidance_scale=guidance, generator=generators,
        ).audios
