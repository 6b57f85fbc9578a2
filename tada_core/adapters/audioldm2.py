"""AudioLDM2 through diffusers' ``AudioLDM2Pipeline``.

Layers: every ``attn2`` module of the UNet that is a true cross-attention
(``is_cross_attention``; AudioLDM2 also has ``attn2`` modules that attend to the
hidden states themselves, which are skipped), in execution order: down blocks,
then the mid block, then up blocks, each in module order. ``cvssp/audioldm2-music``
has 32 such layers (of 48 ``attn2`` modules; 10 x 256, 10 x 384, 12 x 640 wide) and
``cvssp/audioldm2-large`` has 64. The TADA paper's 64 layers and its functional
layers {45, 46, 51, 52} (counted from 1 in this order) are those of audioldm2-large,
indices (44, 45, 50, 51) there; they are no preset for audioldm2-music. CFG batch is
[uncond, cond].

Quirk: with transformers >= 5, ``GPT2Model`` no longer carries the generation
helper the pipeline calls (diffusers issue #12630); the adapter binds
``GenerationMixin._update_model_kwargs_for_generation`` onto that one instance.
"""

from __future__ import annotations

import types

import numpy as np
import torch

from tada_core.errors import TadaError
from tada_core.adapters.base import CrossAttentionLayer, ModelAdapter, Run, output_width

_SECTION_ORDER = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}


class AudioLDM2Adapter(ModelAdapter):
    family = "audioldm2"
    pipeline_class_name = "AudioLDM2Pipeline"
    denoiser_attr = "unet"
    cond_first = False

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

    def prompt_token_ids(self, prompt: str) -> list[int]:
        # Half of the cross-attention layers attend to GPT-2's generated sequence, which has no word positions.
        raise TadaError(f"{self.name}: AudioLDM2's cross-attention layers attend to GPT-2's generated sequence or "
                        f"to T5 states; word positions are not mapped, so token-level methods are not available")

    def _call_pipeline(self, run: Run, generators) -> torch.Tensor:
        s = run.settings
        audio = self.pipeline(
            prompt=run.prompts, audio_length_in_s=s.duration, num_inference_steps=s.steps,
            guidance_scale=s.guidance, generator=generators, output_type="np",
        ).audios
        return torch.from_numpy(np.asarray(audio))
