"""The full-size denoisers on a GPU: what steering, patching, a localization sweep, an activation cache and
SAE training cost, in float32 and bfloat16, as ratios measured in one run.

    python benchmarks/gpu.py [--families stable-audio ace-step audioldm2] [--dtypes float32 bfloat16] [--save]

Each denoiser is built from its committed config (``tada_core/configs/``, with provenance) with random
weights, inside its real diffusers pipeline; the pipeline's other parts (text encoders, VAE, vocoder)
are small random models whose output widths match the denoiser, so nearly all the time is the
denoiser's, as with the real checkpoints (whose weights cannot be downloaded here). Measured per family
and dtype:

* steered / unsteered: time per denoiser forward (timed around the denoiser, synchronized) and per
  generation, steering every layer with ReNorm; target <= 1.02;
* patched / unsteered per generation, patching the first layer and the last one (the capture pass
  stops after the last patched layer, so patching early layers costs less);
* the localization sweep (``tada_core.methods.localize``) batched vs one clip per call; target >= 3x on a GPU;
* activation cache (``tada sae cache``) throughput in recorded tokens/s;
* TopK SAE training tokens/s on that cache, ours and EleutherAI sparsify's ``SparseCoder`` on the same
  batches when sparsify is installed (``pip install eai-sparsify``);
* peak memory (GPU: ``torch.cuda.max_memory_allocated``; CPU: the process's peak resident set).

Without a GPU it runs at reduced size (``--layers 2``, short windows: every number is then a CPU
smoke figure, not a GPU result) and says so; CI runs it that way (tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import time
from pathlib import Path

import torch
from common import machine, null_scorer, run_benchmark

from tada_core import GenerationSettings, patch, steer
from tada_core.interventions.cache import cache_activations
from tada_core.concepts import Concept
from tada_core.adapters.fixtures import audioldm2_clap, seeded
from tada_core.methods.localize import localize
from tada_core.artifacts.sae import SaeConfig
from tada_core.methods.sae import train_sae
from tada_core.adapters.text import build_tokenizer

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "tada_core" / "configs"
FAMILIES = {"stable-audio": "stable_audio_open_1_0_transformer.json",
            "ace-step": "ace_step_xl_base_transformer.json",   # the base XL: CFG on, the worst case for steering
            "audioldm2": "audioldm2_music_unet.json",
            "audioldm2-large": "audioldm2_large_unet.json"}


def _config(family: str, layers: int | None) -> dict:
    config = {k: v for k, v in json.loads((CONFIGS / FAMILIES[family]).read_text()).items()
              if not k.startswith("_")}
    if layers is not None:
        key = {"stable-audio": "num_layers", "ace-step": "num_hidden_layers"}.get(family)
        if key is not None:
            config[key] = min(layers, config[key])
        else:   # a UNet: keep its block structure, one layer per block
            config["layers_per_block"] = 1
    return config


def stable_audio(layers: int | None, window: int | None):
    from diffusers import (AutoencoderOobleck, CosineDPMSolverMultistepScheduler, StableAudioDiTModel,
                           StableAudioPipeline, StableAudioProjectionModel)
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    config = _config("stable-audio", layers)
    if window is not None:
        config["sample_size"] = window

    def build():
        tokenizer = build_tokenizer(T5TokenizerFast, model_max_length=64)
        transformer = StableAudioDiTModel(**config)
        text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=32, d_ff=64, d_kv=8, num_heads=4,
                                               num_layers=1))
        # 1024 latents x hop 2 at 128 Hz: the window is about 16 s of 128 Hz audio, the denoiser's full 1024 frames
        vae = AutoencoderOobleck(encoder_hidden_size=6, downsampling_ratios=[1, 2], decoder_channels=3,
                                 decoder_input_channels=config["in_channels"], audio_channels=2,
                                 channel_multiples=[2, 4], sampling_rate=128)
        projection = StableAudioProjectionModel(text_encoder_dim=32, conditioning_dim=config["cross_attention_dim"],
                                                min_value=0, max_value=512)
        scheduler = CosineDPMSolverMultistepScheduler(solver_order=2, prediction_type="v_prediction",
                                                      sigma_data=1.0, sigma_schedule="exponential")
        return StableAudioPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   projection_model=projection, transformer=transformer, scheduler=scheduler)

    from tada_core.adapters import StableAudioAdapter

    # duration: the family default, the whole window (Stable Audio always denoises all of it), from the decoder
    return StableAudioAdapter, seeded(build), {"steps": 8, "guidance": 7.0}


def ace_step(layers: int | None, window: int | None):
    from diffusers import AceStepPipeline, AutoencoderOobleck, FlowMatchEulerDiscreteScheduler
    from diffusers.models.transformers.ace_step_transformer import AceStepTransformer1DModel
    from diffusers.pipelines.ace_step import AceStepConditionEncoder
    from transformers import Qwen3Config, Qwen3Model

    config = _config("ace-step", layers)
    enc = config["encoder_hidden_size"]

    def build():
        tokenizer = build_tokenizer(model_max_length=512)
        transformer = AceStepTransformer1DModel(**config)
        text_encoder = Qwen3Model(Qwen3Config(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                              num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                                              vocab_size=len(tokenizer), max_position_embeddings=512))
        condition_encoder = AceStepConditionEncoder(
            hidden_size=enc, intermediate_size=256, text_hidden_dim=32,
            timbre_hidden_dim=config["audio_acoustic_hidden_dim"], num_lyric_encoder_hidden_layers=1,
            num_timbre_encoder_hidden_layers=1, num_attention_heads=16, num_key_value_heads=4,
            head_dim=enc // 16, rope_theta=10000.0, sliding_window=128)
        # hop 8 at 200 Hz: 25 latent frames per second, the real model's rate
        vae = AutoencoderOobleck(encoder_hidden_size=6, downsampling_ratios=[2, 4], decoder_channels=4,
                                 decoder_input_channels=config["audio_acoustic_hidden_dim"], audio_channels=2,
                                 channel_multiples=[2, 4], sampling_rate=200)
        return AceStepPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer,
                               condition_encoder=condition_encoder,
                               scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0))

    from tada_core.adapters import AceStepAdapter

    seconds = 30.0 if window is None else window / 25
    return AceStepAdapter, seeded(build), {"duration": seconds, "steps": 8, "guidance": 7.0}


def audioldm2(layers: int | None, window: int | None, large: bool = False):
    from diffusers import (AudioLDM2Pipeline, AudioLDM2ProjectionModel, AudioLDM2UNet2DConditionModel,
                           AutoencoderKL, DDIMScheduler)
    from transformers import (ClapFeatureExtractor, GPT2Config, GPT2Model, RobertaTokenizerFast, SpeechT5HifiGan,
                              SpeechT5HifiGanConfig, T5Config, T5EncoderModel, T5TokenizerFast)

    config = _config("audioldm2-large" if large else "audioldm2", layers)
    lm_dim, t5_dim = config["cross_attention_dim"][0][1:]

    def build():
        tokenizer = build_tokenizer(RobertaTokenizerFast, model_max_length=64)
        tokenizer_2 = build_tokenizer(T5TokenizerFast, model_max_length=64)
        vocab = len(tokenizer)
        unet = AudioLDM2UNet2DConditionModel(**config)
        # three blocks: latents are a quarter of the mel frames and bins, as in the real VAE
        vae = AutoencoderKL(block_out_channels=[8, 16, 16], in_channels=1, out_channels=1,
                            down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
                            latent_channels=config["in_channels"], norm_num_groups=8)
        clap = audioldm2_clap(vocab, max_positions=80)
        t5 = T5EncoderModel(T5Config(vocab_size=vocab, d_model=t5_dim, d_ff=64, d_kv=64, num_heads=t5_dim // 64,
                                     num_layers=1))
        language_model = GPT2Model(GPT2Config(n_embd=lm_dim, n_head=lm_dim // 64, n_layer=1, vocab_size=vocab,
                                              n_ctx=160, n_positions=160, bos_token_id=1, eos_token_id=2))
        language_model.config.max_new_tokens = 8
        projection = AudioLDM2ProjectionModel(text_encoder_dim=16, text_encoder_1_dim=t5_dim,
                                              langauge_model_dim=lm_dim)
        # 64 mel bins, 100 frames per second (hop 4 at 400 Hz): the real model's latent grid
        vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
            model_in_dim=64, sampling_rate=400, upsample_initial_channel=16, upsample_rates=[2, 2],
            upsample_kernel_sizes=[4, 4], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3, 5]],
            normalize_before=False, initializer_range=0.1))
        scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  clip_sample=False, set_alpha_to_one=False)
        return AudioLDM2Pipeline(vae=vae, text_encoder=clap, text_encoder_2=t5, projection_model=projection,
                                 language_model=language_model, tokenizer=tokenizer, tokenizer_2=tokenizer_2,
                                 feature_extractor=ClapFeatureExtractor(), unet=unet, scheduler=scheduler,
                                 vocoder=vocoder)

    from tada_core.adapters import AudioLDM2Adapter

    seconds = 10.0 if window is None else window / 25
    return AudioLDM2Adapter, seeded(build), {"duration": seconds, "steps": 8, "guidance": 3.5}


BUILDERS = {"stable-audio": stable_audio, "ace-step": ace_step, "audioldm2": audioldm2,
            "audioldm2-large": lambda layers, window: audioldm2(layers, window, large=True)}


class DenoiserClock:
    """Seconds spent inside the denoiser's forward calls (synchronized on a GPU), via its own hooks."""

    def __init__(self, module: torch.nn.Module, cuda: bool):
        self.total, self.calls, self._t, self.cuda = 0.0, 0, 0.0, cuda
        self._handles = [module.register_forward_pre_hook(self._start), module.register_forward_hook(self._stop)]

    def _sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def _start(self, *_):
        self._sync()
        self._t = time.perf_counter()

    def _stop(self, *_):
        self._sync()
        self.total += time.perf_counter() - self._t
        self.calls += 1

    def close(self):
        for h in self._handles:
            h.remove()


def peak_memory_gb(cuda: bool) -> float:
    if cuda:
        return torch.cuda.max_memory_allocated() / 2 ** 30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20   # KiB on Linux


def timed(fn, cuda: bool) -> float:
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t


def sparsify_tokens_per_s(batches, d_in: int, m: int, k: int, device) -> float | None:
    try:
        from sparsify import SaeConfig as SpConfig, SparseCoder
    except ImportError:
        return None
    coder = SparseCoder(d_in, SpConfig(expansion_factor=m, k=k), device=device)
    opt = torch.optim.Adam(coder.parameters(), lr=2e-4 / math.sqrt(d_in * m / 2 ** 14), eps=6.25e-10)
    tokens, start = 0, None
    for i, x in enumerate(batches):
        if i == 1:
            start, tokens = time.perf_counter(), 0
        out = coder(x.to(device).float())
        loss = out.fvu + out.auxk_loss / 32
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tokens += x.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return tokens / (time.perf_counter() - start) if start else None


def measure(family: str, dtype: torch.dtype, device: torch.device, args, workdir: Path) -> dict:
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with torch.device(device):          # initialize on the GPU: ACE-Step XL's 4B random weights take minutes on a CPU
        adapter_cls, pipeline, defaults = BUILDERS[family](args.layers, args.window)
    pipeline.to(device=device, dtype=dtype)
    model = adapter_cls(pipeline, name=f"{family} (full-size denoiser, random weights)", source=FAMILIES[family],
                        defaults=defaults)
    model.set_progress_bar(False)
    n_layers = len(model.layers)
    params = sum(p.numel() for p in model.denoiser.parameters())
    prompts = ["a fast techno track with drums", "a slow sad piano ballad"] * (args.batch // 2)
    seeds = list(range(len(prompts)))
    settings = GenerationSettings(steps=args.steps)
    vectors = {layer.index: torch.nn.functional.normalize(torch.randn(layer.width), dim=0) for layer in model.layers}

    def plain():
        model.generate(prompts, seeds=seeds, settings=settings)

    def steered():
        with steer(model, vectors, 0.5):
            plain()

    def patched(layer):
        def run():
            with patch(model, [layer], prompts=prompts[::-1]):
                plain()
        return run

    plain()   # warm-up
    clock = DenoiserClock(model.denoiser, cuda)
    runs = {"plain": plain, "steered": steered, "patch first": patched(0), "patch last": patched(n_layers - 1)}
    gen = {k: [] for k in runs}
    fwd = {k: [] for k in runs}
    try:
        for _ in range(args.repeats):      # interleaved, so that drift hits every variant alike
            for key, fn in runs.items():
                clock.total = clock.calls = 0
                gen[key].append(timed(fn, cuda))
                fwd[key].append(clock.total / max(clock.calls, 1))
    finally:
        clock.close()
    med = {k: statistics.median(v) for k, v in gen.items()}
    med_fwd = {k: statistics.median(v) for k, v in fwd.items()}

    # the localization sweep: 2 pairs x 2 seeds over 2 layers, batched vs one clip per call
    pairs = [("a fast techno track", "a slow techno track"), ("a happy pop song", "a sad pop song")]
    sweep_layers = [0, n_layers - 1]

    def sweep(batch_size):
        concept = Concept("tempo", "a fast {base}", "a slow {base}")
        return lambda: localize(model, concept, pairs, null_scorer(), seeds=[0, 1], layers=sweep_layers,
                                settings=GenerationSettings(steps=args.steps, batch_size=batch_size),
                                progress=False)
    sweep_batched = timed(sweep(len(pairs) * 2), cuda)
    sweep_single = timed(sweep(1), cuda)

    # activation cache and SAE training on it
    cache_dir = workdir / f"{family}-{str(dtype).split('.')[-1]}"
    layer = n_layers // 2
    t = time.perf_counter()
    cache = cache_activations(model, prompts * 2, cache_dir, layers=[layer], tokens=args.tokens,
                              settings=GenerationSettings(steps=args.steps, batch_size=args.batch), progress=False)
    if cuda:
        torch.cuda.synchronize()
    cache_tps = cache.n_tokens / (time.perf_counter() - t)
    width = cache.width(layer)
    batches = [x.to(device) for x in cache.batches(layer, args.sae_batch)] * args.sae_epochs
    cfg = SaeConfig(d_in=width, expansion_factor=args.sae_m, k=args.sae_k)
    t = time.perf_counter()
    train_sae(lambda: iter(batches), cfg, progress=False)
    ours_tps = sum(x.shape[0] for x in batches) / (time.perf_counter() - t)
    theirs_tps = sparsify_tokens_per_s(batches, width, args.sae_m, args.sae_k, device)
    row = {"family": family, "dtype": str(dtype).split(".")[-1], "layers": n_layers,
           "denoiser_params_M": round(params / 1e6, 1), "batch": len(prompts), "steps": args.steps,
           "forward_s": med_fwd["plain"], "steered_forward": med_fwd["steered"] / med_fwd["plain"],
           "generation_s": med["plain"], "steered_generation": med["steered"] / med["plain"],
           "patch_first": med["patch first"] / med["plain"], "patch_last": med["patch last"] / med["plain"],
           "sweep_batched_vs_single": sweep_single / sweep_batched, "cache_tokens_per_s": cache_tps,
           "sae_tokens_per_s": ours_tps, "sparsify_tokens_per_s": theirs_tps, "peak_memory_gb": peak_memory_gb(cuda)}
    del model, pipeline
    return row


def table(rows: list[dict]) -> str:
    head = ("| family | dtype | layers | denoiser params (M) | forward (s) | steered / plain, forward | "
            "steered / plain, generation | patch first / plain | patch last / plain | sweep batched vs single | "
            "cache tokens/s | SAE tokens/s (ours) | SAE tokens/s (sparsify) | peak memory (GB) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        sp = f"{r['sparsify_tokens_per_s']:.0f}" if r["sparsify_tokens_per_s"] else "not installed"
        lines.append(f"| {r['family']} | {r['dtype']} | {r['layers']} | {r['denoiser_params_M']} | "
                     f"{r['forward_s']:.4f} | {r['steered_forward']:.3f} | {r['steered_generation']:.3f} | "
                     f"{r['patch_first']:.3f} | {r['patch_last']:.3f} | {r['sweep_batched_vs_single']:.2f}x | "
                     f"{r['cache_tokens_per_s']:.0f} | {r['sae_tokens_per_s']:.0f} | {sp} | "
                     f"{r['peak_memory_gb']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    import tempfile
    import warnings

    warnings.filterwarnings("ignore", message="Should have t[ab]", module="torchsde")   # Stable Audio's scheduler
    warnings.filterwarnings("ignore", message="All-NaN slice")      # Eq. 9 of the null scorer's flat sweep
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--families", nargs="+", choices=list(BUILDERS), default=["stable-audio", "ace-step", "audioldm2"])
    p.add_argument("--dtypes", nargs="+", choices=["float32", "bfloat16"], default=["float32", "bfloat16"])
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu (reduced size)")
    p.add_argument("--layers", type=int, default=None, help="keep only this many denoiser layers (default: all on "
                                                            "a GPU, 2 on a CPU)")
    p.add_argument("--window", type=int, default=None, help="latent frames (default: the model's on a GPU, 32 on a "
                                                            "CPU)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps per generation (default 8 GPU, 2 CPU)")
    p.add_argument("--batch", type=int, default=None, help="clips per call, even (default 8 GPU, 2 CPU)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved timing repeats (default 5 GPU, 1 CPU)")
    p.add_argument("--tokens", type=int, default=64, help="cached frames per step and clip")
    p.add_argument("--sae-m", type=int, default=8)
    p.add_argument("--sae-k", type=int, default=32)
    p.add_argument("--sae-batch", type=int, default=1024)
    p.add_argument("--sae-epochs", type=int, default=None, help="passes over the cache (default 20 GPU, 1 CPU)")
    p.add_argument("--smoke", action="store_true", help="the smallest run (1 layer, window 16, 1 step): CI's check "
                                                        "that the script works end to end")
    args = p.parse_args()
    if args.smoke:
        args.layers, args.window, args.steps, args.tokens, args.sae_m, args.sae_k = 1, 16, 1, 16, 2, 8
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    gpu = device.type == "cuda"
    small = not gpu
    args.layers = args.layers if args.layers is not None else (2 if small else None)
    args.window = args.window if args.window is not None else (32 if small else None)
    args.steps = args.steps or (2 if small else 8)
    args.batch = args.batch or (2 if small else 8)
    args.repeats = args.repeats or (1 if small else 5)
    args.sae_epochs = args.sae_epochs or (1 if small else 20)
    if args.batch % 2:
        p.error(f"--batch must be even; got {args.batch}")
    print(machine())
    print(f"device: {torch.cuda.get_device_name(device) if gpu else 'cpu'}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families:
            for name in args.dtypes:
                rows.append(measure(family, getattr(torch, name), device, args, Path(tmp)))
                print(f"  done: {family} {name}", flush=True)
    print()
    if gpu:
        print(f"## GPU table ({torch.cuda.get_device_name(device)}; full-size denoisers, random weights, batch "
              f"{args.batch}, {args.steps} steps)\n")
        print(table(rows))
        bad = [r for r in rows if r["steered_forward"] > 1.02 or r["sweep_batched_vs_single"] < 3]
        print(f"\ntargets (steered / plain per forward <= 1.02, sweep >= 3x): "
              f"{'all met' if not bad else 'missed by ' + ', '.join(r['family'] + ' ' + r['dtype'] for r in bad)}")
    else:
        print("## GPU table\n\nempty: no GPU on this machine. The figures below are a CPU smoke run at reduced size "
              f"({args.layers} layers, window {args.window}, batch {args.batch}, {args.steps} steps): they show that "
              "the script runs end to end, not what a GPU does. Peak memory on a CPU is the process's peak resident "
              "set so far (it only grows from row to row).\n")
        print(table(rows))


if __name__ == "__main__":
    run_benchmark(main)
