"""ACE-Step 1.5 through diffusers' ``AceStepPipeline``.

Layers: ``transformer.layers[i].cross_attn`` for i = 0..N-1 (XL: 32 layers of width 2560;
2B: 24 of width 2048). The TADA paper's ACE-Step results (functional layers {7, 8},
counted from 1) are for ACE-Step v1 (3.5B, ``transformer_blocks[i].cross_attn``, 24
layers of width 2560), a different model that diffusers does not ship; on 1.5 the
functional layers are what ``tada localize`` finds.

CFG: the pipeline stacks [cond, uncond] and runs CFG only for guidance > 1, only on
non-turbo checkpoints, and only inside its ``cfg_interval``; other steps have no
unconditional rows, which ``branch_rows`` handles by row count.

Padding quirk, fixed here: the pipeline pads each prompt's text, lyrics and timbre
tokens to the longest in the batch, and its condition encoder returns the padding mask,
but the transformer calls cross-attention without it. A prompt's audio would then
depend on its batchmates' token lengths. During a call, this adapter records the mask
the condition encoder returns and hands it to every cross-attention layer, so padded
keys are ignored: a prompt sounds the same in any batch (to float rounding), and a
prompt alone (no padding) is computed exactly as the stock pipeline computes it.

Options (:meth:`AceStepAdapter.configure`, ``--lyrics`` / ``--cfg-interval`` on the command line):
``lyrics``, the lyric text of every clip, by default the instrumental token ``[inst]`` as the
TADA reference code generates instrumental music (an empty string is not the same condition);
``cfg_interval`` = (start, end), the fraction of the denoising trajectory where CFG runs
(the pipeline's ``cfg_interval_start`` / ``cfg_interval_end``; default (0, 1), everywhere).
"""

from __future__ import annotations

import math

import torch

from tada_core.errors import TadaError
from tada_core.adapters.base import FamilyOption, seeded, CrossAttentionLayer, ModelAdapter, Run, indexed_layers
from tada_core.adapters.entry import TINY_DEFAULTS, ModelEntry, ReferenceModel, committed_config
from tada_core.concepts import PAPER_CONCEPT_SET
from tada_core.adapters.text import build_tokenizer

_MASK = "encoder_attention_mask"
INSTRUMENTAL = "[inst]"      # the instrumental lyric token the TADA reference code passes
SHIFT = 3.0                  # the pipeline's default sigma shift, passed explicitly so the edit's schedule is the same


class AceStepAdapter(ModelAdapter):
    family = "ace-step"
    display_name = "ACE-Step"
    option_specs = (
        FamilyOption("lyrics", "the lyric text of every clip (default [inst], instrumental, as the TADA reference code)"),
        FamilyOption("cfg_interval", "the part of the trajectory where CFG runs, 0 <= START <= END <= 1 (default 0 1)",
                     nargs=2, metavar=("START", "END"), type=float),
    )
    pipeline_class_name = "AceStepPipeline"
    denoiser_attr = "transformer"
    cond_first = True
    gpu_dtype = torch.bfloat16   # the XL transformer alone is 16.7 GB in float32

    @classmethod
    def find_layers(cls, pipeline) -> list[CrossAttentionLayer]:
        return indexed_layers("transformer.layers.{i}.cross_attn", pipeline.transformer.layers, "cross_attn")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lyrics: str = INSTRUMENTAL
        self.cfg_interval: tuple[float, float] = (0.0, 1.0)

    def options(self) -> dict:
        return {"lyrics": self.lyrics, "cfg_interval": list(self.cfg_interval)}

    def configure(self, *, lyrics: str | None = None, cfg_interval=None, **others) -> None:
        """``lyrics``: the lyric text of every clip (default ``[inst]``, instrumental); ``cfg_interval``:
        (start, end) in [0, 1], start <= end, the part of the trajectory where CFG runs."""
        super().configure(**others)
        if lyrics is not None:
            if not isinstance(lyrics, str) or len(lyrics) > 4096:
                raise TadaError(f"lyrics must be a string of at most 4096 characters; got {str(lyrics)[:40]!r}")
            self.lyrics = lyrics
        if cfg_interval is not None:
            try:
                start, end = (float(x) for x in cfg_interval)
            except (TypeError, ValueError):
                raise TadaError(f"cfg_interval must be two numbers (start, end); got {cfg_interval!r}") from None
            if not 0.0 <= start <= end <= 1.0:
                raise TadaError(f"cfg_interval must satisfy 0 <= start <= end <= 1; got ({start:g}, {end:g})")
            self.cfg_interval = (start, end)

    def family_defaults(self) -> dict[str, float]:
        # Turbo checkpoints are guidance-distilled: the pipeline ignores guidance > 1 there.
        turbo = bool(getattr(self.pipeline, "is_turbo", False))
        return {"duration": 30.0, "steps": 8 if turbo else 30, "guidance": 1.0 if turbo else 7.0}

    @property
    def sample_rate(self) -> int:
        return int(self.pipeline.sample_rate)

    def _family_hooks(self, run: Run, add) -> None:
        def keep_mask(module, args, output):
            # text2music calls the condition encoder once; keep the first (conditional) mask
            run.state.setdefault(_MASK, output[1])

        def give_mask(module, args, kwargs):
            mask = run.state.get(_MASK)
            if mask is None or kwargs.get("attention_mask") is not None:
                return None
            hidden = args[0] if args else kwargs["hidden_states"]
            keys = kwargs.get("encoder_hidden_states")
            if keys is None or keys.shape[1] != mask.shape[1]:
                return None
            rows = hidden.shape[0] // mask.shape[0]      # 2 with CFG: [cond, uncond] share the layout
            # [rows, 1, 1, keys]: True = attend. The unconditional rows repeat one learned
            # null embedding over every position, so masking them changes nothing either.
            keep = mask.to(torch.bool).repeat(rows, 1)[:, None, None, :]
            return args, {**kwargs, "attention_mask": keep}

        add(self.pipeline.condition_encoder.register_forward_hook(keep_mask))
        for layer in self.layers:
            # prepend: interventions' pre-hooks (patch's capture) see the mask too
            add(layer.module.register_forward_pre_hook(give_mask, with_kwargs=True, prepend=True))

    def prompt_token_ids(self, prompt: str) -> list[int]:
        # The condition encoder packs lyric and timbre tokens before the text, and the text is wrapped in an
        # instruction template: a word's token index is not its position in the conditioning.
        raise TadaError(f"{self.name}: word positions in ACE-Step's packed conditioning (lyrics, timbre, then the "
                        f"templated text) are not mapped, so token-level methods are not available")

    # ----- editing a user's clip (tada_core.editing) -----------------------------------------------
    @property
    def audio_channels(self) -> int:
        return int(self.pipeline.vae.config.audio_channels)

    def edit_scheduler(self, steps: int):
        """The pipeline's flow-matching scheduler on ACE-Step's own sigmas: ``linspace(1, 0, steps + 1)`` shifted by
        ``s t / (1 + (s - 1) t)`` (s = :data:`SHIFT`), the terminal 0 dropped, passed as ``set_timesteps(sigmas=...)``
        exactly as the pipeline does (its scheduler is registered with ``num_train_timesteps=1``, so the scheduler's
        own ``set_timesteps(steps)`` would put every step at sigma 1). The edit noises ``x_0`` along these sigmas with
        the scheduler's ``scale_noise``, ``(1 - sigma) x_0 + sigma eps``: the rectified-flow interpolation (Liu et
        al., ICLR 2023) the DiT was trained on."""
        scheduler = type(self.pipeline.scheduler).from_config(self.pipeline.scheduler.config)
        sigmas = self.pipeline._get_timestep_schedule(num_inference_steps=steps, shift=SHIFT, dtype=torch.float32)
        scheduler.set_timesteps(sigmas=sigmas.tolist())
        return scheduler

    def encode_audio(self, audio: torch.Tensor, settings) -> torch.Tensor:
        """The clip through the pipeline's Oobleck VAE (the mean of its latent distribution; the pipeline's own
        audio-to-audio path samples it), in the DiT's layout ``[1, frames, channels]`` with
        ``ceil(duration * latents_per_second)`` frames, as ``prepare_latents`` shapes the noise. The context latents
        (silence latents and an all-ones chunk mask for text-to-music) are the pipeline's own and are left to it:
        the edit regenerates as a text-to-music call that starts from the inverted latents."""
        vae = self.pipeline.vae
        frames = math.ceil(settings.duration * self.pipeline.latents_per_second)
        x = torch.zeros(1, self.audio_channels, frames * int(vae.hop_length))
        n = min(audio.shape[-1], x.shape[-1])
        x[0, :, :n] = audio[:, :n]
        with torch.no_grad():
            latent = vae.encode(x.to(self.device, vae.dtype)).latent_dist.mode()
        return latent[..., :frames].transpose(1, 2).to(self.device, self.denoiser.dtype)

    def _call_pipeline(self, run: Run, generators) -> torch.Tensor:
        s = run.settings
        extra = {}
        if "initial_latents" in run.state:   # an edit (tada_core.editing): the flow starts at sigma 1, unscaled
            extra["latents"] = run.state["initial_latents"]
        return self.pipeline(
            prompt=run.prompts, lyrics=[self.lyrics] * run.n_samples, audio_duration=s.duration,
            num_inference_steps=s.steps, guidance_scale=s.guidance, generator=generators,
            cfg_interval_start=self.cfg_interval[0], cfg_interval_end=self.cfg_interval[1], shift=SHIFT, **extra,
        ).audios

ACE_STEP_V1 = ReferenceModel(
    hub_id="ACE-Step/ACE-Step-v1-3.5B", path="transformer_blocks.{i}.cross_attn", layers=24, width=2560,
    note="ACE-Step v1 (3.5B; transformer_blocks[i].cross_attn, 24 layers of width 2560), the model the TADA "
         "reference code runs; this project's 'ace-step' is ACE-Step 1.5, a different model")
AceStepAdapter.reference_checkpoints = (ACE_STEP_V1,)


# ----- registry entries: the checkpoints of this family, and its tiny test fixture ----------------------


def tiny_ace_step(num_layers: int = 4):
    """AceStepPipeline with a 4-layer DiT (32 wide), CFG enabled (not turbo), 800 Hz stereo audio; the VAE's encoder
    makes the 8-channel latents its decoder takes (encoder width 2 x 8: mean and scale), so clips can be edited."""
    from diffusers import (
        AceStepPipeline,
        AutoencoderOobleck,
        FlowMatchEulerDiscreteScheduler,
    )
    from diffusers.models.transformers.ace_step_transformer import (
        AceStepTransformer1DModel,
    )
    from diffusers.pipelines.ace_step import AceStepConditionEncoder
    from transformers import Qwen3Config, Qwen3Model

    def build():
        tokenizer = build_tokenizer(model_max_length=512)
        transformer = AceStepTransformer1DModel(
            hidden_size=32, intermediate_size=64, num_hidden_layers=num_layers, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, in_channels=24, audio_acoustic_hidden_dim=8, patch_size=2,
            rope_theta=10000.0, sliding_window=16)
        text_encoder = Qwen3Model(Qwen3Config(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, vocab_size=len(tokenizer), max_position_embeddings=512))
        condition_encoder = AceStepConditionEncoder(
            hidden_size=32, intermediate_size=64, text_hidden_dim=32, timbre_hidden_dim=8,
            num_lyric_encoder_hidden_layers=1, num_timbre_encoder_hidden_layers=1, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, rope_theta=10000.0, sliding_window=16)
        vae = AutoencoderOobleck(encoder_hidden_size=16, downsampling_ratios=[2, 4], decoder_channels=4,
                                 decoder_input_channels=8, audio_channels=2, channel_multiples=[2, 4],
                                 sampling_rate=800)
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0)
        return AceStepPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer,
                               condition_encoder=condition_encoder, scheduler=scheduler)

    return seeded(build)


ENTRIES = (
    ModelEntry("ace-step", AceStepAdapter, PAPER_CONCEPT_SET, hub_id="ACE-Step/acestep-v15-xl-turbo-diffusers",
               description="ACE-Step 1.5 XL turbo (4.2B parameters)",
               denoiser_config=committed_config("ace_step_xl_turbo_transformer.json"),
               notes="the paper's ACE-Step layers {7, 8} belong to ACE-Step v1 (3.5B, not in diffusers); "
                     "find 1.5's with `tada localize`"),
    ModelEntry("tiny-ace-step", AceStepAdapter, PAPER_CONCEPT_SET, build=tiny_ace_step, defaults=TINY_DEFAULTS,
               description="random weights, 4 layers (tests)", listed=False),
)


__all__ = ["AceStepAdapter", "tiny_ace_step", "ENTRIES", "ACE_STEP_V1"]
