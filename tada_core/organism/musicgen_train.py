"""Train the MusicGen organism: ``tada organism train-musicgen --out DIR``.

Seeded and resumable like the diffusion organism's training (:mod:`.train`):

1. synthetic clips from :mod:`.synth` (their amplitudes, no audio needed);
2. the codec's RVQ codebooks fitted by k-means on their frames (:func:`.encodec.fit_codebooks`),
   saved to ``DIR/_codebooks.safetensors`` so a resumed run does not refit them;
3. every clip's tokens through the stock EnCodec quantizer;
4. the decoder and the text encoder trained jointly with MusicGen's objective: cross-entropy of
   each codebook's next token under the delay pattern that ``generate`` uses (codebook ``k`` is
   delayed by ``k`` frames; positions ``generate`` forces to padding are not trained), conditioned
   exactly as ``MusicgenMelodyForConditionalGeneration.generate`` conditions: the null chroma
   prefix, then the projected text states. 10% of captions are dropped to the all-zero text states
   that the unconditional half of classifier-free guidance sees.

Weights are an EMA of the training weights. A checkpoint (model, EMA and optimizer state,
safetensors only) is written every ``save_every`` steps; rerunning the command resumes from it
bit-identically (every step's randomness is drawn even when skipped).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from tada_core.runtime.io import ResumableFolder, read_tensors, save_tensors
from tada_core.organism import encodec, synth
from tada_core.organism.musicgen_model import CHROMA_LENGTH, MUSICGEN_SAMPLING, TEXT_LENGTH, MusicGenOrganismConfig, build_model
from tada_core.organism.train import (load_training_state, optimizer_step, save_training_state, set_learning_rate,
                    write_training_record)

log = logging.getLogger(__name__)

DEFAULTS = dict(clips=8000, fit_clips=4000, steps=2800, batch=32, lr=1e-3, warmup=100, ema=0.995, p_uncond=0.1,
                seed=0)


def prefix_states(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  drop: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's prefix as ``generate`` builds it without a melody: (states [B, P, width], mask [B, P]).

    The null chroma (a one-hot on its first bin, repeated to ``chroma_length``) through
    ``audio_enc_to_dec_proj``, then the text states through ``enc_to_dec_proj`` times the text
    mask; rows in ``drop`` get all-zero text states (the unconditional branch)."""
    b = input_ids.shape[0]
    text = model.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    if hasattr(model, "enc_to_dec_proj"):
        text = model.enc_to_dec_proj(text)
    text = text * attention_mask[..., None].to(text.dtype)
    if drop is not None:
        text = torch.where(drop[:, None, None], torch.zeros_like(text), text)
    chroma = torch.zeros(b, 1, model.config.num_chroma, dtype=text.dtype)
    chroma[:, :, 0] = 1
    audio = model.audio_enc_to_dec_proj(chroma).repeat(1, model.config.chroma_length, 1)
    mask = torch.cat([torch.ones(b, model.config.chroma_length, dtype=attention_mask.dtype), attention_mask], dim=1)
    return torch.cat([audio, text], dim=1), mask


def delayed(tokens: torch.Tensor, pad: int) -> torch.Tensor:
    """Codes ``[B, K, T]`` -> the delay-pattern sequence ``[B, K, T + K]`` that ``generate`` produces:
    the start token, then codebook ``k`` shifted right by ``k``, padding elsewhere."""
    b, k, t = tokens.shape
    seq = torch.full((b, k, t + k), pad, dtype=torch.long)
    for q in range(k):
        seq[:, q, q + 1:q + 1 + t] = tokens[:, q]
    return seq


def lm_loss(model, tokens: torch.Tensor, prefix: torch.Tensor, prefix_mask: torch.Tensor) -> torch.Tensor:
    """MusicGen's objective: mean cross-entropy of every codebook's next token (delay pattern, teacher forcing)."""
    pad = int(model.decoder.config.pad_token_id)
    b, k, _ = tokens.shape
    seq = delayed(tokens, pad)
    inputs, targets = seq[..., :-1], seq[..., 1:]
    out = model.decoder(input_ids=inputs.reshape(b * k, -1), encoder_hidden_states=prefix,
                        encoder_attention_mask=prefix_mask)
    logits = out.logits.reshape(b, k, -1, out.logits.shape[-1])[:, :, -inputs.shape[-1]:]
    valid = targets != pad
    return torch.nn.functional.cross_entropy(logits[valid], targets[valid])


class _Trainable(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.decoder, self.text_encoder = model.decoder, model.text_encoder
        self.enc_to_dec_proj, self.audio_enc_to_dec_proj = model.enc_to_dec_proj, model.audio_enc_to_dec_proj


def _amplitudes(n: int, seed: int, progress: bool) -> tuple[list[synth.Attributes], np.ndarray]:

    items = synth.dataset(n, seed=seed)
    amps = np.stack([synth.render(a, s) for a, _, s in tqdm(items, desc="synthesizing clips", disable=not progress)])
    return [a for a, _, _ in items], amps.astype(np.float32)


def train(out: str | Path, *, clips: int = DEFAULTS["clips"], fit_clips: int = DEFAULTS["fit_clips"],
          steps: int = DEFAULTS["steps"], batch: int = DEFAULTS["batch"], lr: float = DEFAULTS["lr"],
          warmup: int = DEFAULTS["warmup"], ema_decay: float = DEFAULTS["ema"],
          p_uncond: float = DEFAULTS["p_uncond"], seed: int = DEFAULTS["seed"], save_every: int = 200,
          threads: int | None = None, progress: bool = True, config: MusicGenOrganismConfig | None = None,
          kmeans_iters: int = 12, stop_after: int | None = None) -> dict:
    """Train and write a MusicGen organism folder to ``out``; returns a summary dict.

    ``stop_after``: leave after that many steps with the checkpoint written (tests of resuming)."""

    if threads:
        torch.set_num_threads(threads)
    out = Path(out)
    config = config or MusicGenOrganismConfig()
    run = dict(clips=clips, fit_clips=fit_clips, steps=steps, batch=batch, lr=lr, warmup=warmup, ema=ema_decay,
               p_uncond=p_uncond, seed=seed, kmeans_iters=kmeans_iters, config=vars(config))
    spec = ResumableFolder(out, run, spec_file="_train_spec.json", what="training run")
    t0 = time.time()
    attrs, amps = _amplitudes(clips, seed, progress)
    books_path = out / "_codebooks.safetensors"
    if books_path.exists():
        books = read_tensors(books_path)["codebooks"]
    else:
        books = encodec.fit_codebooks(amps[:fit_clips], config.codebooks, config.codebook_size, iters=kmeans_iters,
                                      seed=seed, progress=progress)
        save_tensors(books_path, {"codebooks": books})
    pipe = build_model(books, config, seed=seed)
    model = pipe.model
    tokens = encodec.tokens(model.audio_encoder, amps)
    data_s = time.time() - t0
    caption_rng = np.random.default_rng(seed + 1)

    trainable = _Trainable(model).train()
    params = [p for p in trainable.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    ema = {k: v.detach().clone() for k, v in trainable.state_dict().items()}
    state_path = out / "_train_state.safetensors"
    start = 0
    if state_path.exists() and state_path.with_suffix(".json").exists():
        trainable.load_state_dict({k[len("model."):]: v for k, v in read_tensors(out / "_last.safetensors").items()})
        start = load_training_state(state_path, trainable, ema, opt)
        log.info("resuming training at step %d of %d", start, steps)
    order = torch.Generator().manual_seed(seed + 2)
    losses = []
    last = min(steps, stop_after) if stop_after else steps
    bar = tqdm(range(last), desc="training MusicGen organism", initial=start, disable=not progress)
    for step in range(last):
        idx = torch.randint(len(attrs), (batch,), generator=order)
        caps = [synth.caption(attrs[i], caption_rng) for i in idx.tolist()]
        drop = torch.rand(batch, generator=order) < p_uncond
        if step < start:
            continue
        set_learning_rate(opt, lr, step, steps, warmup)
        # padded to the batch's longest caption (about 21 tokens): the shipped model was trained so; it generates
        # with every prompt padded to TEXT_LENGTH (24), which keeps its audio at the positions it was trained on
        text = pipe.tokenizer(caps, return_tensors="pt", padding=True)
        prefix, mask = prefix_states(model, text["input_ids"], text["attention_mask"], drop)
        loss = lm_loss(model, tokens[idx], prefix, mask)
        optimizer_step(loss, opt, params, trainable, ema, ema_decay)
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        if (step + 1) % save_every == 0 and step + 1 < steps or step + 1 == last < steps:
            save_tensors(out / "_last.safetensors", {f"model.{k}": v.detach().clone().contiguous()
                                                     for k, v in trainable.state_dict().items()})
            save_training_state(state_path, step + 1, trainable, ema, opt)
    bar.close()
    if last < steps:
        return dict(run, stopped_at=last, losses=losses)
    trainable.load_state_dict(ema)
    model.eval()
    summary = dict(run, text_padding="longest caption of each batch", data_seconds=round(data_s, 1),
                   train_seconds=round(time.time() - t0 - data_s, 1),
                   final_loss=float(np.mean(losses[-100:])) if losses else None, torch=torch.__version__,
                   threads=torch.get_num_threads())
    save_checkpoint(pipe, out, summary)
    for leftover in (out / "_last.safetensors", books_path, state_path, state_path.with_suffix(".json"),
                     spec.spec_path):
        if leftover.exists():
            leftover.unlink()
    return summary


def save_checkpoint(pipe, out: Path, summary: dict) -> None:
    """The model folder (learned weights in float16, the analytic codec in float32), the tokenizer, the
    sampling defaults and the training summary, with a model card."""
    model = pipe.model
    for name in ("decoder", "text_encoder", "enc_to_dec_proj", "audio_enc_to_dec_proj"):
        getattr(model, name).to(torch.float16)
    model.save_pretrained(str(out))
    for name in ("decoder", "text_encoder", "enc_to_dec_proj", "audio_enc_to_dec_proj"):
        getattr(model, name).to(torch.float32)
    pipe.tokenizer.save_pretrained(str(out))
    write_training_record(out, MUSICGEN_SAMPLING, summary,
                          {"decoder": model.decoder, "text_encoder": model.text_encoder}, model_card)


def model_card(summary: dict, params: dict[str, int]) -> str:
    """The MusicGen organism's model card, written from its training summary."""
    c = summary["config"]
    minutes = (summary["data_seconds"] + summary["train_seconds"]) / 60
    return f"""---
library_name: transformers
pipeline_tag: text-to-audio
license: apache-2.0
tags:
- tada
- model-organism
- musicgen
- synthetic-data
---

# musicgen-organism

A small autoregressive text-to-music model trained from scratch, on a CPU, on synthetic music whose
concepts are known: the ground-truth testbed of `tada-steer`'s DiffMean steering for MusicGen. It is
a stock transformers `MusicgenMelodyForConditionalGeneration`, so the MusicGen adapter (and
`model.generate`) runs it unchanged, offline.

```python
from tada_core import load_model      # or: transformers.MusicgenMelodyForConditionalGeneration.from_pretrained(folder)
model = load_model("musicgen-organism")
clip = model.generate("a fast happy pop song with drums", seeds=0)   # 4.096 s, 16 kHz mono
```

| component | what | parameters |
|---|---|---|
| decoder | `MusicgenMelodyForCausalLM`, {c['layers']} layers of width {c['width']} ({c['heads']} heads, FFN {c['ffn']}): residual-stream layers `decoder.model.decoder.layers[i]`; {c['codebooks']} codebooks of {c['codebook_size']} tokens | {params['decoder'] / 1e6:.2f} M (fp16 on disk) |
| text encoder | `T5EncoderModel` from the diffusion organism (`tada-organism`), fine-tuned jointly; its BPE tokenizer | {params['text_encoder'] / 1e6:.2f} M |
| audio encoder | `EncodecModel` whose weights are set analytically over 128 grid partials per 64 ms frame (15.625 frames/s), RVQ codebooks fitted here by k-means (`tada_core/organism/encodec.py`) | analytic + codebooks |

Conditioning is MusicGen Melody's: a chroma prefix of {CHROMA_LENGTH} frames (empty: no melody) and the projected
text states are prepended to the audio tokens; every prompt is padded to {TEXT_LENGTH} tokens in
generation (`tada_text_length` in config.json), so a prompt's audio does not depend on its batchmates.
Sampling defaults (`tada_sampling.json`): 4.096 s, guidance 3, top-k 250 sampling.

**Training data**: {summary['clips']} clips of `tada_core/organism/synth.py` (the diffusion organism's
generator: tempo, mood, brightness, four instruments, drums, low or high voice, style), codebooks
fitted on {summary['fit_clips']} of them.

**Training** (`tada organism train-musicgen`, seed {summary['seed']}): {summary['steps']} steps of batch
{summary['batch']}, AdamW (lr {summary['lr']}, cosine, warmup {summary['warmup']}), EMA {summary['ema']},
{summary['p_uncond']:.0%} caption dropout, next-token cross-entropy under the delay pattern.
{summary['data_seconds']:.0f} s of data and codebooks + {summary['train_seconds']:.0f} s of training =
{minutes:.1f} minutes on {summary['threads']} CPU threads (torch {summary['torch']}).

Adherence by third-party measures on held-out seeds, and the MusicGen steering paper's results
reproduced on it: `results/musicgen_organism/` in the `tada-steer` repository. It is a testbed for
interpretability tools, not a music generator.
"""


__all__ = ["train", "lm_loss", "prefix_states", "delayed", "save_checkpoint", "DEFAULTS"]
