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
from tada_core.adapters.base import seeded, CrossAttentionLayer, ModelAdapter, Run, output_width
from tada_core.adapters.entry import PAPER_LAYERS, TINY_DEFAULTS, LayerPreset, ModelEntry, committed_config
from tada_core.concepts import PAPER_CONCEPT_SET
from tada_core.adapters.text import build_tokenizer

_SECTION_ORDER = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}


class AudioLDM2Adapter(ModelAdapter):
    family = "audioldm2"
    display_name = "AudioLDM2"
    steer_audio_entry = "audioldm2-large"  # the checkpoint of the paper's AudioLDM2 results

    @classmethod
    def denoiser_class(cls, class_name: str) -> type:
        """AudioLDM2's UNet class lives in its pipeline module, not at diffusers' top level."""
        from diffusers.pipelines import audioldm2

        return getattr(audioldm2, class_name)
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

    def encode_audio(self, audio: torch.Tensor, settings) -> torch.Tensor:
        """The clip as AudioLDM 2's VAE latent: a log-magnitude mel spectrogram in the vocoder's frame layout
        (HiFi-GAN's convention: ``model_in_dim`` mel bands, hop = the vocoder's upsampling, window 4 hops,
        natural log of the magnitude clamped at 1e-5; AudioLDM 2 itself: 64 bands, hop 160 at 16 kHz), padded to
        the height the pipeline generates for ``settings.duration``, through ``vae.encode`` (mean) times the
        VAE's scaling factor. The mel is computed here with librosa, not with the checkpoint's own STFT code, so
        the reconstruction is what the VAE and vocoder make of this mel."""
        import librosa

        pipe = self.pipeline
        voc = pipe.vocoder.config
        hop = int(np.prod(voc.upsample_rates))
        height = int(settings.duration / (hop / voc.sampling_rate))
        height = int(np.ceil(height / pipe.vae_scale_factor)) * pipe.vae_scale_factor
        y = audio.float().mean(0).numpy()
        mel = librosa.feature.melspectrogram(y=y, sr=int(voc.sampling_rate), n_fft=4 * hop, hop_length=hop,
                                             n_mels=int(voc.model_in_dim), power=1.0, fmin=0.0)
        mel = np.log(np.clip(mel, 1e-5, None)).T[:height]                      # [frames, bands]
        if mel.shape[0] < height:
            mel = np.pad(mel, ((0, height - mel.shape[0]), (0, 0)), constant_values=np.log(1e-5))
        x = torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))[None, None].to(self.device, pipe.vae.dtype)
        with torch.no_grad():
            latent = pipe.vae.encode(x).latent_dist.mode() * pipe.vae.config.scaling_factor
        return latent.to(self.denoiser.dtype)

    def _call_pipeline(self, run: Run, generators) -> torch.Tensor:
        s = run.settings
        extra = {}
        if "initial_latents" in run.state:   # an edit (tada_core.editing): the pipeline scales them back
            extra["latents"] = run.state["initial_latents"] / self.pipeline.scheduler.init_noise_sigma
        audio = self.pipeline(
            prompt=run.prompts, audio_length_in_s=s.duration, num_inference_steps=s.steps,
            guidance_scale=s.guidance, generator=generators, output_type="np", **extra,
        ).audios
        return torch.from_numpy(np.asarray(audio))

# ----- registry entries: the checkpoints of this family, and its tiny test fixture ----------------------


def audioldm2_clap(vocab: int, max_positions: int = 40):
    """The tiny CLAP text encoder of AudioLDM2 fixtures (projection width 16)."""
    from transformers import ClapAudioConfig, ClapConfig, ClapModel, ClapTextConfig

    text_config = ClapTextConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0, hidden_size=16,
                                 intermediate_size=37, num_attention_heads=2, num_hidden_layers=2,
                                 vocab_size=vocab, projection_dim=16, max_position_embeddings=max_positions)
    audio_config = ClapAudioConfig(spec_size=64, window_size=4, num_mel_bins=64, intermediate_size=37,
                                   depths=[2, 2], num_attention_heads=[2, 2], num_hidden_layers=2,
                                   hidden_size=192, projection_dim=16, patch_size=2, patch_stride=2,
                                   patch_embed_input_channels=4)
    return ClapModel(ClapConfig(text_config=text_config.to_dict(), audio_config=audio_config.to_dict(),
                                projection_dim=16))


def tiny_audioldm2():
    """AudioLDM2Pipeline with a 2-block UNet (12 true cross-attention layers), 1 kHz audio."""
    from diffusers import (
        AudioLDM2Pipeline,
        AudioLDM2ProjectionModel,
        AudioLDM2UNet2DConditionModel,
        AutoencoderKL,
        DDIMScheduler,
    )
    from transformers import (
        ClapFeatureExtractor,
        GPT2Config,
        GPT2Model,
        RobertaTokenizerFast,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
        T5Config,
        T5EncoderModel,
        T5TokenizerFast,
    )

    def build():
        tokenizer = build_tokenizer(RobertaTokenizerFast, model_max_length=32)
        tokenizer_2 = build_tokenizer(T5TokenizerFast, model_max_length=32)
        vocab = len(tokenizer)
        unet = AudioLDM2UNet2DConditionModel(
            block_out_channels=(16, 32), layers_per_block=2, sample_size=16, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=([None, 16, 32], [None, 16, 32]), norm_num_groups=8, attention_head_dim=4)
        vae = AutoencoderKL(block_out_channels=[8, 16], in_channels=1, out_channels=1,
                            down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                            latent_channels=4, norm_num_groups=8)
        clap = audioldm2_clap(vocab)
        t5 = T5EncoderModel(T5Config(vocab_size=vocab, d_model=32, d_ff=37, d_kv=8, num_heads=2, num_layers=2))
        language_model = GPT2Model(GPT2Config(n_embd=16, n_head=2, n_layer=2, vocab_size=vocab, n_ctx=99,
                                              n_positions=99, bos_token_id=1, eos_token_id=2))
        language_model.config.max_new_tokens = 8
        projection = AudioLDM2ProjectionModel(text_encoder_dim=16, text_encoder_1_dim=32, langauge_model_dim=16)
        vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
            model_in_dim=8, sampling_rate=1000, upsample_initial_channel=16, upsample_rates=[2, 2],
            upsample_kernel_sizes=[4, 4], resblock_kernel_sizes=[3, 7],
            resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]], normalize_before=False, initializer_range=0.1))
        scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  clip_sample=False, set_alpha_to_one=False)
        return AudioLDM2Pipeline(vae=vae, text_encoder=clap, text_encoder_2=t5, projection_model=projection,
                                 language_model=language_model, tokenizer=tokenizer, tokenizer_2=tokenizer_2,
                                 feature_extractor=ClapFeatureExtractor(), unet=unet, scheduler=scheduler,
                                 vocoder=vocoder)

    return seeded(build)


ENTRIES = (
    ModelEntry("audioldm2", AudioLDM2Adapter, PAPER_CONCEPT_SET, hub_id="cvssp/audioldm2-music",
               description="AudioLDM2 music",
               denoiser_config=committed_config("audioldm2_music_unet.json"),
               notes="the paper's AudioLDM2 layers belong to audioldm2-large; find -music's with `tada localize`"),
    ModelEntry("audioldm2-large", AudioLDM2Adapter, PAPER_CONCEPT_SET, hub_id="cvssp/audioldm2-large",
               description="AudioLDM2 large (the checkpoint of the paper's AudioLDM2 results)",
               presets=(LayerPreset((44, 45, 50, 51), "audioldm2-large",
                                    f"{PAPER_LAYERS}: layers 45, 46, 51, 52 counted from 1"),),
               denoiser_config=committed_config("audioldm2_large_unet.json")),
    ModelEntry("tiny-audioldm2", AudioLDM2Adapter, PAPER_CONCEPT_SET, build=tiny_audioldm2, defaults=TINY_DEFAULTS,
               description="random weights, 12 layers (tests)", listed=False),
)


__all__ = ["AudioLDM2Adapter", "audioldm2_clap", "tiny_audioldm2", "ENTRIES"]
