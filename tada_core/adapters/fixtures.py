"""Tiny random-weight versions of each supported pipeline, built in code, offline.

They exercise the real diffusers pipelines end to end (prompt encoding, CFG batching,
schedulers, decoders) in well under a second on a CPU, so that the tests and the CLI
(``--model tiny-ace-step``) never need a download. Tokenizers are trained here
(:mod:`tada_core.adapters.text`); weights are seeded and the caller's global RNG is left
untouched. Their registry entries are in :mod:`tada_core.registry`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from tada_core.adapters.text import build_tokenizer


def _seeded(build: Callable[[], Any], seed: int = 0) -> Any:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def tiny_ace_step(num_layers: int = 4):
    """AceStepPipeline with a 4-layer DiT (32 wide), CFG enabled (not turbo), 800 Hz audio."""
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
        vae = AutoencoderOobleck(encoder_hidden_size=6, downsampling_ratios=[2, 4], decoder_channels=4,
                                 decoder_input_channels=8, audio_channels=2, channel_multiples=[2, 4],
                                 sampling_rate=800)
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0)
        return AceStepPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer,
                               condition_encoder=condition_encoder, scheduler=scheduler)

    return _seeded(build)


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

    return _seeded(build)


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

    return _seeded(build)


def tiny_clap(folder: str | Path) -> Path:
    """Save a random-weight ``ClapModel`` + ``ClapProcessor`` (1 s windows at 48 kHz) to ``folder``.

    For testing :class:`tada_core.evaluation.scoring.ClapScorer` offline through ``from_pretrained``.
    """
    from transformers import (
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        RobertaTokenizerFast,
    )

    tok = build_tokenizer(RobertaTokenizerFast)
    text = dict(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=37, max_position_embeddings=80, projection_dim=16)
    audio = dict(hidden_size=32, patch_embeds_hidden_size=16, depths=[1, 1], num_attention_heads=[2, 2],
                 window_size=4, spec_size=64, num_mel_bins=64, patch_size=4, patch_stride=[4, 4], projection_dim=16)
    model = _seeded(lambda: ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=16)))
    extractor = ClapFeatureExtractor(feature_size=64, sampling_rate=48000, max_length_s=1, truncation="rand_trunc",
                                     hop_length=1024, fft_window_size=1024)
    folder = Path(folder)
    model.save_pretrained(folder)
    ClapProcessor(feature_extractor=extractor, tokenizer=tok).save_pretrained(folder)
    return folder


__all__ = ["tiny_ace_step", "tiny_stable_audio", "tiny_audioldm2", "audioldm2_clap", "tiny_clap", "build_tokenizer"]


def tiny_musicgen_melody(num_layers: int = 4):
    """MusicgenMelodyForConditionalGeneration with a 4-layer decoder (32 wide), 2 codebooks of 32 codes,
    a tiny T5 and a tiny EnCodec (8 kHz, 125 frames/s), and a tokenizer built here."""
    from transformers import (
        EncodecConfig,
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
        T5Config,
        T5TokenizerFast,
    )

    from tada_core.adapters.musicgen import MusicGenPipeline

    def build():
        tokenizer = build_tokenizer(T5TokenizerFast, model_max_length=32)
        text = T5Config(vocab_size=len(tokenizer), d_model=16, d_ff=32, d_kv=8, num_heads=2, num_layers=2)
        codec = EncodecConfig(hidden_size=8, compress=1, num_filters=2, codebook_size=32, codebook_dim=8,
                              sampling_rate=8000, audio_channels=1, upsampling_ratios=[4, 4, 4],
                              target_bandwidths=[1.25], num_residual_layers=1, num_lstm_layers=1)
        decoder = MusicgenMelodyDecoderConfig(
            vocab_size=32, hidden_size=32, num_hidden_layers=num_layers, num_attention_heads=4, ffn_dim=64,
            pad_token_id=32, decoder_start_token_id=32, bos_token_id=32, num_codebooks=2, tie_word_embeddings=False,
            max_position_embeddings=1024)
        config = MusicgenMelodyConfig(text_encoder=text, audio_encoder=codec, decoder=decoder, chroma_length=4,
                                      num_chroma=12)
        model = MusicgenMelodyForConditionalGeneration(config).eval()
        with torch.no_grad():   # EnCodec's codebooks start as zeros (filled by k-means in training): give them values
            for layer in model.audio_encoder.quantizer.layers:
                layer.codebook.embed.normal_()
                layer.codebook.inited.fill_(True)
        return MusicGenPipeline(model, tokenizer)

    return _seeded(build)
