"""AudioLDM2 through diffusers' ``AudioLDM2Pipeline``.

Layers: every ``attn2`` module of the UNet that is a true cross-attention
(``is_cross_attention``; AudioLDM2 also has ``attn2`` modules that attend to the
hidden states themselves, which are skipped), in execution order: down blocks,
then the mid block, then up blocks, each in module order. The TADA paper counts
64 such layers on the full model and numbers them from 1 in this order, so its
functional layers {45, 46, 51, 52} are indices (44, 45, 50, 51). CFG batch is
[uncond, cond].

Quirk: with transformers >= 5, ``GPT2Model`` no longer carries the generation
helper the pipeline calls (diffusers issue #12630); the adapter binds
``GenerationMixin._update_model_kwargs_for_generation`` onto that one instance.
"""

from __future__ import annotations

import types

import numpy as np
import torch

from .base import CrossAttentionLayer, ModelAdapter, output_width

_SECTION_ORDER = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}


class AudioLDM2Adapter(ModelAdapter):
    family = "audioldm2"
    pipeline_class_name = "AudioLDM2Pipeline"
    default_hub_id = "cvssp/audioldm2-music"
    denoiser_attr = "unet"
    cond_first = False
    paper_layer_count = 64
    paper_functional_layers = (44, 45, 50, 51)

    def __init__(self, pipeline, **kwargs) -> None:
        lm = pipeline.language_model
        if not hasattr(lm, "_update_model_kwargs_for_generation"):
            from transformers.generation.utils import GenerationMixin

            lm._update_model_kwargs_for_generation = types.MethodType(
                GenerationMixin._update_model_kwargs_for_generation, lm)
        super().__init__(pipeline, **kwargs)

    @classmethod
    def find_layers(cls, pipeline) -> list[CrossAttentionLayer]:
        found = [
            (name, module) for name, module in pipeline.unet.named_modules()
            if name.endswith("attn2") and getattr(module, "is_cross_attention", False)
        ]
        # named_modules() visits up_blocks before mid_block; the UNet runs down -> mid -> up.
        found.sort(key=lambda item: _SECTION_ORDER[item[0].split(".")[0]])
        return [CrossAttentionLayer(i, f"unet.{name}", module, output_width(module))
                for i, (name, module) in enumerate(found)]

    def family_defaults(self) -> dict[str, float]:
        return {"duration": 10.0, "steps": 200, "guidance": 3.5}

    @property
    def sample_rate(self) -> int:
        return int(self.pipeline.vocoder.config.sampling_rate)

    def _call_pipeline(self, prompts, generators, duration, steps, guidance) -> torch.Tensor:
        audio = self.pipeline(
            prompt=prompts, audio_length_in_s=duration, num_inference_steps=steps,
            guidance_scale=guidance, generator=generators, output_type="np",
        ).audios
        return torch.from_numpy(np.asarray(audio))
