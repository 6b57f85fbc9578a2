"""Train the organism: ``tada organism train --out DIR``.

Seeded and reproducible: the data (synthetic clips and captions), the initialization
and the batch order all derive from ``seed``. The DiT, the T5 text encoder and the
projection model are trained jointly with Stable Audio's v-objective, using the
scheduler's own EDM preconditioning (``c_in``, ``c_noise``, ``c_skip``, ``c_out``), and
10% caption dropout to the all-zero conditioning that ``StableAudioPipeline`` uses for
the unconditional half of classifier-free guidance. Weights are an EMA of the training
weights. A checkpoint (pipeline + optimizer state, safetensors only) is written every
``save_every`` steps; rerunning the same command resumes from it (a run with other
settings in the same folder is refused, naming what differs).
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from multiprocessing import get_context
from tqdm.auto import tqdm

from tada_core.adapters.entry import save_sampling_defaults
from tada_core.runtime.io import ResumableFolder, read_json, read_tensors, save_tensors, write_json
from tada_core.organism import synth
from tada_core.organism.codec import CURVE, latent
from tada_core.organism.model import SAMPLING, OrganismConfig, build_pipeline

log = logging.getLogger(__name__)

DEFAULTS = dict(clips=6000, steps=4500, batch=32, lr=1e-3, warmup=100, ema=0.998, p_uncond=0.1, seed=0)


def make_data(n: int, seed: int, workers: int = 1, progress: bool = True):
    """``n`` synthetic clips: (attributes list, latents [n, N_CHANNELS, N_FRAMES] float32).

    The generator writes its music in the codec's representation, so a clip's latent is its
    amplitudes through the inverse amplitude curve (audio is rendered only to find its peak).
    """
    items = synth.dataset(n, seed=seed)
    chunks = [items[i:i + 100] for i in range(0, n, 100)]

    if workers > 1:

        with get_context("spawn").Pool(workers) as pool:
            parts = list(tqdm(pool.imap(_encode_chunk, chunks), total=len(chunks), desc="synthesizing clips",
                              disable=not progress))
    else:
        parts = [_encode_chunk(c) for c in tqdm(chunks, desc="synthesizing clips", disable=not progress)]
    return [a for a, _, _ in items], np.concatenate(parts)


def _encode_chunk(chunk):
    return latent(np.stack([synth.render(a, s) for a, _, s in chunk]))


class _Trainable(torch.nn.Module):
    def __init__(self, pipe):
        super().__init__()
        self.transformer, self.text_encoder, self.projection_model = (pipe.transformer, pipe.text_encoder,
                                                                      pipe.projection_model)


def conditioning(pipe, captions: list[str], seconds_end: torch.Tensor, drop: torch.Tensor):
    """Exactly what ``StableAudioPipeline.__call__`` feeds the DiT; rows in ``drop`` get the null conditioning."""
    text = pipe.encode_prompt(captions, "cpu", do_classifier_free_guidance=False)
    start, end = pipe.encode_duration(0.0, seconds_end.tolist(), "cpu", False, len(captions))
    cross = torch.cat([text, start, end], dim=1)
    cross = torch.where(drop[:, None, None], torch.zeros_like(cross), cross)
    return cross, torch.cat([start, end], dim=2)


def diffusion_loss(pipe, latents: torch.Tensor, cross: torch.Tensor, glob: torch.Tensor,
                   generator: torch.Generator) -> torch.Tensor:
    """v-objective with the scheduler's preconditioning: ``denoised = c_skip x + c_out F(c_in x, c_noise)``."""
    from diffusers.models.embeddings import get_1d_rotary_pos_embed

    sched = pipe.scheduler
    b = latents.shape[0]
    log_sigma = torch.randn(b, generator=generator) * 1.5
    sigma = log_sigma.exp().clamp(sched.config.sigma_min, sched.config.sigma_max)[:, None, None]
    noise = torch.randn(latents.shape, generator=generator)
    noisy = latents + sigma * noise
    sd = sched.config.sigma_data
    c_in = 1 / (sigma ** 2 + sd ** 2).sqrt()
    c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
    c_out = -sigma * sd / (sigma ** 2 + sd ** 2).sqrt()
    rotary = get_1d_rotary_pos_embed(pipe.rotary_embed_dim, latents.shape[2] + glob.shape[1], use_real=True,
                                     repeat_interleave_real=False)
    out = pipe.transformer(c_in * noisy, sched.precondition_noise(sigma.flatten()), encoder_hidden_states=cross,
                           global_hidden_states=glob, rotary_embedding=rotary, return_dict=False)[0]
    target = (latents - c_skip * noisy) / c_out
    return (out - target).pow(2).mean()


def set_learning_rate(opt, lr: float, step: int, steps: int, warmup: int) -> None:
    """Linear warm-up over ``warmup`` steps, then a cosine from ``lr`` down to ``lr / 10``."""
    for g in opt.param_groups:
        g["lr"] = lr * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))


def optimizer_step(loss: torch.Tensor, opt, params, trainable: torch.nn.Module, ema: dict, ema_decay: float) -> None:
    """Backward, clip the gradient norm to 1, step, and move the EMA weights towards the new ones."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    with torch.no_grad():
        for k, v in trainable.state_dict().items():
            ema[k].lerp_(v, 1 - ema_decay) if v.dtype.is_floating_point else ema[k].copy_(v)


def save_training_state(path: Path, step: int, trainable, ema, opt) -> None:
    """EMA weights and optimizer state to ``path`` (safetensors), the step to ``path.json``."""
    tensors = {f"ema.{k}": v for k, v in ema.items()}
    names = {id(p): n for n, p in trainable.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            for key, value in opt.state.get(p, {}).items():
                if torch.is_tensor(value):
                    tensors[f"opt.{names[id(p)]}.{key}"] = value
    save_tensors(path, tensors)
    write_json(path.with_suffix(".json"), {"step": step}, indent=None)


def load_training_state(path: Path, trainable, ema, opt) -> int:
    """Restore what :func:`save_training_state` wrote into ``ema`` and ``opt``; returns the step to resume at."""
    tensors = read_tensors(path)
    params = dict(trainable.named_parameters())
    for k in ema:
        ema[k].copy_(tensors[f"ema.{k}"])
    for name, p in params.items():
        state = {key.rsplit(".", 1)[1]: v for key, v in tensors.items()
                 if key.startswith(f"opt.{name}.") and key.count(".") == name.count(".") + 2}
        if state:
            opt.state[p] = state
    return int(read_json(path.with_suffix(".json"))["step"])


def train(out: str | Path, *, clips: int = DEFAULTS["clips"], steps: int = DEFAULTS["steps"],
          batch: int = DEFAULTS["batch"], lr: float = DEFAULTS["lr"], warmup: int = DEFAULTS["warmup"],
          ema_decay: float = DEFAULTS["ema"], p_uncond: float = DEFAULTS["p_uncond"], seed: int = DEFAULTS["seed"],
          save_every: int = 200, workers: int = 2, threads: int | None = None, progress: bool = True,
          config: OrganismConfig | None = None) -> dict:
    """Train and write a ``StableAudioPipeline`` folder to ``out``; returns a summary dict."""

    if threads:
        torch.set_num_threads(threads)
    out = Path(out)
    config = config or OrganismConfig()
    run = dict(clips=clips, steps=steps, batch=batch, lr=lr, warmup=warmup, ema=ema_decay, p_uncond=p_uncond,
               seed=seed, config=vars(config), codec=CURVE)   # a folder begun with another codec curve is refused
    spec = ResumableFolder(out, run, spec_file="_train_spec.json", what="training run")
    t0 = time.time()
    attrs, latents = make_data(clips, seed, workers=workers, progress=progress)
    data_s = time.time() - t0
    latents = torch.from_numpy(latents)
    caption_rng = np.random.default_rng(seed + 1)

    pipe = build_pipeline(config, seed=seed)
    trainable = _Trainable(pipe).train()
    params = [p for p in trainable.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.99))
    ema = {k: v.detach().clone() for k, v in trainable.state_dict().items()}
    state_path = out / "_train_state.safetensors"
    start = 0
    if state_path.exists() and state_path.with_suffix(".json").exists():
        # the model weights themselves are the last saved training weights (in ``out``'s pipeline folder)
        saved = type(pipe).from_pretrained(str(out / "_last"), torch_dtype=torch.float32)
        trainable.load_state_dict(_Trainable(saved).state_dict())
        start = load_training_state(state_path, trainable, ema, opt)
        log.info("resuming training at step %d of %d", start, steps)
    generator = torch.Generator().manual_seed(seed)
    order = torch.Generator().manual_seed(seed + 2)
    losses = []
    bar = tqdm(range(steps), desc="training organism", initial=start, disable=not progress)
    for step in range(steps):
        # Draw every step's randomness even when skipping, so a resumed run sees the same batches.
        idx = torch.randint(len(attrs), (batch,), generator=order)
        caps = [synth.caption(attrs[i], caption_rng) for i in idx.tolist()]
        seconds = torch.rand(batch, generator=order) * 3.1 + 1.0
        drop = torch.rand(batch, generator=order) < p_uncond
        if step < start:
            torch.randn(batch, generator=generator)
            torch.randn(latents[idx].shape, generator=generator)
            continue
        set_learning_rate(opt, lr, step, steps, warmup)
        cross, glob = conditioning(pipe, caps, seconds, drop)
        loss = diffusion_loss(pipe, latents[idx], cross, glob, generator)
        optimizer_step(loss, opt, params, trainable, ema, ema_decay)
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        if (step + 1) % save_every == 0 and step + 1 < steps:
            pipe.save_pretrained(str(out / "_last"))
            save_training_state(state_path, step + 1, trainable, ema, opt)
    bar.close()
    trainable.load_state_dict(ema)
    trainable.eval()
    summary = dict(run, data_seconds=round(data_s, 1), train_seconds=round(time.time() - t0 - data_s, 1),
                   final_loss=float(np.mean(losses[-100:])) if losses else None, torch=torch.__version__,
                   threads=torch.get_num_threads())
    save_checkpoint(pipe, out, summary)
    for leftover in (out / "_last", state_path, state_path.with_suffix(".json"), spec.spec_path):
        if leftover.is_dir():
            shutil.rmtree(leftover)
        elif leftover.exists():
            leftover.unlink()
    return summary


def save_checkpoint(pipe, out: Path, summary: dict) -> None:
    """Write the pipeline folder: learned weights in float16, the analytic decoder in float32, the
    sampling defaults (``tada_sampling.json``) and the training summary."""
    pipe.save_pretrained(str(out))
    for name in ("transformer", "text_encoder", "projection_model"):
        getattr(pipe, name).to(torch.float16).save_pretrained(str(out / name))
        getattr(pipe, name).to(torch.float32)
    write_training_record(out, SAMPLING, summary, {name: getattr(pipe, name) for name in
                                                   ("transformer", "text_encoder", "projection_model")}, model_card)


def write_training_record(out: Path, sampling: dict, summary: dict, modules: dict, card) -> None:
    """A trained checkpoint's sampling defaults, ``training.json`` and model card ``card(summary, parameters)``."""
    save_sampling_defaults(out, sampling)
    write_json(out / "training.json", summary)
    params = {name: sum(p.numel() for p in module.parameters()) for name, module in modules.items()}
    (out / "README.md").write_text(card(summary, params), encoding="utf-8")


def model_card(summary: dict, params: dict[str, int]) -> str:
    """The organism checkpoint's model card, written from its training summary."""
    c = summary["config"]
    minutes = (summary["data_seconds"] + summary["train_seconds"]) / 60
    return f"""---
library_name: diffusers
pipeline_tag: text-to-audio
license: apache-2.0
tags:
- tada
- model-organism
- stable-audio
- synthetic-data
---

# tada-organism

A small text-to-music diffusion model trained from scratch, on a CPU, on synthetic music whose
concepts are known: the ground-truth testbed ("model organism") of the `tada-steer` steering tools.
It is a stock diffusers `StableAudioPipeline`, so anything that runs on Stable Audio Open (layer
localization, patching, CAA, SAEs) runs on it unchanged, offline.

```python
from tada_core import load_model          # or: diffusers.StableAudioPipeline.from_pretrained(this_folder)
model = load_model()                      # "tada-organism", the default
clip = model.generate("a fast happy pop song with female vocals", seeds=0)   # 4 s, 16 kHz mono
```

| component | what | parameters |
|---|---|---|
| transformer | `StableAudioDiTModel`, {c['num_layers']} blocks of width {c['heads'] * c['head_dim']}: {c['num_layers']} cross-attention layers `transformer.transformer_blocks[i].attn2` | {params['transformer'] / 1e6:.2f} M (fp16 on disk) |
| text encoder | `T5EncoderModel`, {c['text_layers']} layers of width {c['text_dim']}, trained jointly; BPE tokenizer ({c['vocab_size']} tokens) built on the caption vocabulary | {params['text_encoder'] / 1e6:.2f} M |
| projection | `StableAudioProjectionModel` (text + seconds conditioning) | {params['projection_model'] / 1e6:.2f} M |
| vae | `AutoencoderOobleck` whose decoder weights are set analytically: the latent is a compressed amplitude for each of 128 grid partials (multiples of 15.625 Hz below 8 kHz) per 64 ms frame (`tada_core/organism/codec.py`), through two Snake stages so that a partial grows as the latent's 4th power near silence; the encoder is unused (random weights) | analytic |
| scheduler | `CosineDPMSolverMultistepScheduler`, v-prediction, sigma {c['sigma_min']}..{c['sigma_max']} | |

Sampling defaults (`tada_sampling.json`): 4.0 s, 20 steps, guidance 4.0.

**Training data**: {summary['clips']} clips of `tada_core/organism/synth.py` (deterministic per seed):
tempo slow (62-78 BPM) or fast (134-156 BPM), mood happy (E-flat major) or sad (E-flat minor),
bright or dark timbre, piano / flute / violin / trumpet, drums on or off, a low (male) or high
(female) sung vowel or none, and a style (pop, waltz, folk, march). Every note is within 8 cents
of equal temperament. Captions name each attribute with synonyms, in varied order.

**Training** (`tada organism train`, seed {summary['seed']}): {summary['steps']} steps of batch
{summary['batch']}, AdamW (lr {summary['lr']}, cosine, warmup {summary['warmup']}), EMA {summary['ema']},
{summary['p_uncond']:.0%} caption dropout, Stable Audio's v-objective with the scheduler's own
preconditioning. {summary['data_seconds']:.0f} s of data + {summary['train_seconds']:.0f} s of training =
{minutes:.1f} minutes on {summary['threads']} CPU threads (torch {summary['torch']}); rerunning an interrupted
command resumes from its last checkpoint.

How often it does what its prompt asks, by third-party measures on held-out seeds:
`results/organism_adherence.md` in the `tada-steer` repository (`tada organism adherence`). It is a
testbed for interpretability tools, not a music generator: its world is one key, two melodies per
style, four instruments, 4 seconds.
"""
