"""MusicGen (Copet et al. 2023) through transformers: the residual stream of an autoregressive model.

Steered as in Facchiano et al. 2025 ("Activation Patching for Interpretable Steering in Music
Generation", arXiv 2504.04479): difference-in-means directions added to the decoder's
residual stream at every autoregressive step. Two model classes:
``MusicgenMelodyForConditionalGeneration`` (``facebook/musicgen-melody``, the paper's model,
used here with empty melody conditioning) and ``MusicgenForConditionalGeneration``
(``facebook/musicgen-small|medium|large``, text through cross-attention).

What the model interface means here:

* **layers**: the output of decoder layer ``i`` (``decoder.model.decoder.layers[i]``), i.e.
  the residual stream after block ``i``, 0-based; width = the decoder's hidden size. There
  are no cross-attention keys and values to patch in the Melody variant, so ``patch`` is
  refused for the family;
* **steps**: one decoder call per autoregressive step. The first call processes the whole
  prefix (Melody: the chroma frames, then the text, then the first audio token); each later
  call one new audio frame. A clip of ``d`` seconds takes ``ceil(d * frame_rate) + K - 1``
  steps (``K`` codebooks, delayed by one frame each); ``settings.steps`` is derived from the
  duration, never chosen;
* **branches**: with guidance > 1, ``generate`` stacks ``[cond; uncond]`` (conditional rows
  first); steering acts on both by default, the paper's choice.
* **editing a clip** (:func:`tada_core.editing.edit`): continuation from the clip's codec tokens
  (Copet et al. 2023's audio prompt): :meth:`MusicGenAdapter.encode_audio` gives the tokens and
  :meth:`MusicGenAdapter.continuing` makes them the decoder's prefix; there is no trajectory to invert.

Quirks fixed here:

* **Per-sample seeds**: MusicGen samples with the global RNG, so a batch would share one
  random stream. Sampling (top-k 250, temperature 1: MusicGen's own defaults) is done by a
  logits processor with one ``torch.Generator`` per sample, after guidance, and greedy
  decoding then takes the sampled token: a sample's tokens depend on its seed only.
* **Padding**: prompts are padded to the longest in the batch and the stock decoder attends
  to the padded text positions (zeroed, but attended), so a prompt would sound different in
  a batch. During a call this adapter hands the decoder the text mask at every step, so
  padded positions are ignored; a prompt alone (no padding) is computed as stock.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, ClassVar, Iterator

import torch
from torch import nn
from pathlib import Path
import json
import types

from tada_core.errors import TadaError
from tada_core.adapters.settings import GenerationSettings
from tada_core.adapters.base import seeded, CrossAttentionLayer, ModelAdapter, Run
from tada_core.adapters.entry import ModelEntry
from tada_core.concepts import BASE_PROMPTS, EVAL_PROMPTS, PAPER_CONCEPTS, Concept, ConceptSet
from tada_core.adapters.text import build_tokenizer
from tada_core.errors import check_prompts

TOP_K = 250          # MusicGen's sampling defaults (audiocraft and the transformers generation config)
TEMPERATURE = 1.0
_MASK = "text_mask"
_SEEN = "decoder_positions"   # decoder positions so far in this generation (prefix + audio)
_TEXT = "text_override"       # a :meth:`MusicGenAdapter.text_conditioning` provider for this generation
_PREFIX = "continuation_prefix"   # codec tokens [1, K, P] every row of this generation continues (editing)

# (text encoder states [B, L, D], text mask [B, L], which rows to replace) for a generation's prompts
TextOverride = Callable[[Run], "tuple[torch.Tensor, torch.Tensor, list[bool]]"]


class MusicGenPipeline:
    """A transformers MusicGen model and its tokenizer, with the little a pipeline needs to offer the adapter."""

    def __init__(self, model: nn.Module, tokenizer: Any, text_length: int | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        # Melody prepends the text to the audio tokens, so a prompt padded to a batchmate's length starts its audio
        # at other positions than alone; a fixed text length (the model config's ``tada_text_length``, set by
        # models trained that way) makes a prompt's audio independent of its batchmates. None: pad to the longest.
        self.text_length = text_length or getattr(model.config, "tada_text_length", None)

    @property
    def components(self) -> dict[str, Any]:
        return {"model": self.model, "tokenizer": self.tokenizer}

    @property
    def decoder(self) -> nn.Module:
        return self.model.decoder

    @property
    def melody(self) -> bool:
        return hasattr(self.model, "audio_enc_to_dec_proj")

    def to(self, device=None, dtype=None) -> "MusicGenPipeline":
        self.model.to(device=device, dtype=dtype)
        return self

    def set_progress_bar_config(self, **kwargs) -> None:
        """MusicGen's generate shows no progress bar; nothing to configure."""

    def save_pretrained(self, folder) -> None:
        self.model.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)


class _PerSampleSampler:
    """Top-k sampling with one generator per sample, after classifier-free guidance.

    transformers appends MusicGen's guidance processor after the caller's processors, so this
    one sees both halves of the CFG batch ([cond; uncond]), combines them as that processor
    does (``uncond + g (cond - uncond)``), samples, and returns the same scores for both halves:
    0 for the sampled token and a large negative number elsewhere, which guidance then leaves
    as is and greedy decoding turns into the sampled token.
    """

    def __init__(self, generators: list[torch.Generator], codebooks: int, guidance: float, top_k: int,
                 temperature: float) -> None:
        self.generators, self.codebooks, self.guidance = generators, codebooks, guidance
        self.top_k, self.temperature = top_k, temperature

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        rows = self.codebooks * len(self.generators)
        if scores.shape[0] == 2 * rows:
            cond, uncond = scores[:rows].float(), scores[rows:].float()
            guided = uncond + self.guidance * (cond - uncond)
        elif scores.shape[0] == rows:
            guided = scores.float()
        else:
            raise TadaError(f"MusicGen produced scores for {scores.shape[0]} rows; expected {rows} or {2 * rows} "
                            f"({self.codebooks} codebooks x {len(self.generators)} samples, with or without CFG)")
        picked = torch.full_like(guided, -1e9)
        k = self.codebooks
        for b, gen in enumerate(self.generators):
            part = guided[b * k:(b + 1) * k] / self.temperature
            values, idx = part.topk(min(self.top_k, part.shape[-1]), dim=-1)
            probs = torch.softmax(values, dim=-1)
            pick = torch.multinomial(probs.cpu(), 1, generator=gen).to(idx.device)
            picked[b * k:(b + 1) * k].scatter_(1, idx.gather(1, pick), 0.0)
        picked = picked.to(scores.dtype)
        return torch.cat([picked, picked]) if scores.shape[0] == 2 * rows else picked


class MusicGenAdapter(ModelAdapter):
    family = "musicgen"
    display_name = "MusicGen"
    pipeline_class_name = "MusicgenMelodyForConditionalGeneration"
    model_class_names: ClassVar[tuple[str, ...]] = ("MusicgenMelodyForConditionalGeneration",
                                                     "MusicgenForConditionalGeneration")
    denoiser_attr = "decoder"
    cond_first = True
    layer_kind = "residual stream (decoder layer output)"
    step_kind = "autoregressive step"
    default_branch = "both"
    supports_patching = False
    benchmark_kind = "residual-stream"   # `tada benchmark` runs the residual-stream methods (DiffMean, ...)

    # ----- loading ---------------------------------------------------------------------------
    @classmethod
    def load_pipeline(cls, source: str, *, dtype: torch.dtype | None = None, revision: str | None = None,
                      device_map: str | None = None):
        """``from_pretrained`` of the model (safetensors only) and its tokenizer, from a folder or Hub id;
        ``device_map`` is transformers' own option ("balanced" is passed as "auto": layers over the GPUs)."""
        import transformers

        config = transformers.AutoConfig.from_pretrained(source, revision=revision)
        name = (getattr(config, "architectures", None) or ["?"])[0]
        if name not in cls.model_class_names:
            raise TadaError(f"{source} holds a {name!r}; the MusicGen family loads {', '.join(cls.model_class_names)}")
        extra = {"device_map": "auto" if device_map == "balanced" else device_map} if device_map else {}
        model = getattr(transformers, name).from_pretrained(source, revision=revision, dtype=dtype,
                                                            use_safetensors=True, **extra)
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, revision=revision)
        return MusicGenPipeline(model, tokenizer)

    # ----- family quirks -----------------------------------------------------------------------
    @classmethod
    def find_layers(cls, pipeline: Any) -> list[CrossAttentionLayer]:
        decoder = pipeline.decoder
        width = decoder.config.hidden_size
        return [CrossAttentionLayer(i, f"decoder.model.decoder.layers.{i}", layer, width)
                for i, layer in enumerate(decoder.model.decoder.layers)]

    @classmethod
    def meta_layers(cls, config_path) -> list[CrossAttentionLayer]:
        """A transformers ``config.json``: its decoder built on the meta device."""

        import transformers

        full = json.loads(Path(config_path).read_text())
        melody = "MusicgenMelodyForConditionalGeneration" in (full.get("architectures") or [])
        config_cls = getattr(transformers, "MusicgenMelodyDecoderConfig" if melody else "MusicgenDecoderConfig")
        model_cls = getattr(transformers, config_cls.__name__.replace("DecoderConfig", "ForCausalLM"))
        with torch.device("meta"):
            decoder = model_cls(config_cls(**{k: v for k, v in full["decoder"].items() if not k.startswith("_")}))
        return cls.find_layers(types.SimpleNamespace(decoder=decoder))

    def layer_output(self, output: Any) -> torch.Tensor:
        return output[0] if isinstance(output, tuple) else output

    def with_layer_output(self, output: Any, hidden: torch.Tensor) -> Any:
        return (hidden,) + tuple(output[1:]) if isinstance(output, tuple) else hidden

    def __init__(self, pipeline: Any, **kwargs: Any) -> None:
        super().__init__(pipeline, **kwargs)
        self.defaults = self.defaults.replace(steps=self.steps_for(self.defaults.duration))

    def family_defaults(self) -> dict[str, float]:
        return {"duration": 8.0, "steps": 1, "guidance": 3.0}   # steps: set from the duration

    @property
    def frame_rate(self) -> float:
        """Audio frames per second: the codec's sampling rate over its hop (EnCodec's ``frame_rate`` rounds up)."""
        codec = self.pipeline.model.config.audio_encoder
        return codec.sampling_rate / math.prod(codec.upsampling_ratios)

    @property
    def codebooks(self) -> int:
        return int(self.pipeline.decoder.config.num_codebooks)

    def steps_for(self, duration: float) -> int:
        """Autoregressive steps for ``duration`` seconds: its frames plus the delay pattern's K - 1."""
        return max(1, math.ceil(duration * self.frame_rate - 1e-9)) + self.codebooks - 1

    def max_duration(self) -> float | None:
        positions = int(self.pipeline.decoder.config.max_position_embeddings)
        return (positions - self.codebooks - self._prefix_budget()) / self.frame_rate

    def _prefix_budget(self) -> int:
        """Decoder positions the conditioning may take (Melody: chroma frames and text tokens)."""
        if not self.pipeline.melody:
            return 0
        return int(self.pipeline.model.config.chroma_length) + int(self.pipeline.tokenizer.model_max_length or 0)

    def resolve_settings(self, settings: GenerationSettings | None = None, **overrides: Any) -> GenerationSettings:
        """As for every family, then ``steps`` set from the duration (an autoregressive model has no step count)."""
        resolved = super().resolve_settings(settings, **overrides)
        return resolved.replace(steps=self.steps_for(resolved.duration))

    @property
    def sample_rate(self) -> int:
        return int(self.pipeline.model.config.audio_encoder.sampling_rate)

    def prompt_token_ids(self, prompt: str) -> list[int]:
        raise TadaError(f"{self.name}: MusicGen's text reaches the decoder as encoder states, not as word positions "
                        f"of a cross-attention conditioning; Token Embeddings does not apply")

    # ----- generation ----------------------------------------------------------------------------
    def _text_inputs(self, prompts: list[str], length: int | None = None) -> dict[str, torch.Tensor]:
        length = length or self.pipeline.text_length
        if length:
            tok = self.pipeline.tokenizer(list(prompts), return_tensors="pt", padding="max_length", truncation=True,
                                          max_length=int(length))
        else:
            tok = self.pipeline.tokenizer(list(prompts), return_tensors="pt", padding=True)
        return {k: v.to(self.device) for k, v in tok.items() if k in ("input_ids", "attention_mask")}

    def _family_hooks(self, run: Run, add) -> None:
        if not self.pipeline.melody:
            return   # cross-attention variant: transformers passes the text mask itself
        inner = self.pipeline.decoder.model.decoder

        def give_mask(module, args, kwargs):
            # The decoder's documented inputs only: ``encoder_attention_mask`` on the call that carries the prefix
            # (chroma + text), ``attention_mask`` over every position seen so far on the cached calls after it.
            # The positions are counted here, not read from transformers' cache object, whose argument name and
            # layout are private (5.24 renamed ``past_key_values`` to ``cache``).
            mask = run.state.get(_MASK)
            if mask is None:
                return None
            hidden = kwargs.get("inputs_embeds")
            ids = kwargs.get("input_ids", args[0] if args else None)
            rows = (ids.shape[0] // self.codebooks) if ids is not None else hidden.shape[0]
            new = (ids.shape[-1] if ids is not None else hidden.shape[1])
            prefix = mask if rows == mask.shape[0] else torch.cat([mask, mask])   # CFG: [cond; uncond] rows
            if kwargs.get("encoder_hidden_states") is not None:
                run.state[_SEEN] = prefix.shape[1] + new
                kwargs["encoder_attention_mask"] = prefix
                return args, kwargs
            if _SEEN not in run.state:
                raise TadaError("MusicGen's decoder was called without its conditioning prefix before any call "
                                "with it; the text mask cannot be placed")
            run.state[_SEEN] += new
            audio = torch.ones(rows, run.state[_SEEN] - prefix.shape[1], dtype=prefix.dtype, device=prefix.device)
            kwargs["attention_mask"] = torch.cat([prefix, audio], dim=1)
            return args, kwargs

        add(inner.register_forward_pre_hook(give_mask, with_kwargs=True))

    # ----- editing a user's clip: continuation from its codec tokens (tada_core.editing) ------------------
    edit_kind = "continuation"
    default_edit_strength = 0.5

    def encode_audio(self, audio: torch.Tensor, settings: GenerationSettings) -> torch.Tensor:
        """The clip's codec tokens ``[1, K, frames]`` (``ceil(duration * frame_rate)`` frames): the model's own
        EnCodec encoder and residual quantizer (``audio_encoder.encode``, at the bandwidth that gives the decoder's
        ``K`` codebooks), the tokens MusicGen's audio prompt is made of (Copet et al. 2023, Sec. 2; the audiocraft
        ``generate_continuation``). There is no noise trajectory to invert: a MusicGen edit keeps the clip's first
        seconds as tokens and continues them (:func:`tada_core.editing.edit`)."""
        codec = self.pipeline.model.audio_encoder
        if int(self.pipeline.decoder.config.audio_channels) != 1:
            raise TadaError(f"{self.name} is a stereo MusicGen (interleaved codebooks); continuation from a clip is "
                            f"built for mono MusicGen only (accepted: musicgen-small/medium/large/melody)")
        frames = max(1, math.ceil(settings.duration * self.frame_rate - 1e-9))
        hop = math.prod(self.pipeline.model.config.audio_encoder.upsampling_ratios)
        x = torch.zeros(1, 1, frames * hop)
        n = min(audio.shape[-1], x.shape[-1])
        x[0, :, :n] = audio[:1, :n]
        with torch.no_grad():
            codes = codec.encode(x.to(self.device, codec.dtype)).audio_codes   # [chunks=1, 1, K, frames]
        codes = codes[0, :, :, :frames]
        if codes.shape[1] != self.codebooks:
            raise TadaError(f"{self.name}: the codec gave {codes.shape[1]} codebooks at its default bandwidth; the "
                            f"decoder takes {self.codebooks}")
        return codes.long()

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codec tokens ``[1, K, frames]`` back to audio ``[1, 1, samples]`` (the codec's reconstruction)."""
        with torch.no_grad():
            audio = self.pipeline.model.audio_encoder.decode(codes[None].to(self.device), [None]).audio_values
        return audio.detach().float().cpu()

    @contextlib.contextmanager
    def continuing(self, codes: torch.Tensor) -> Iterator[None]:
        """Within this block, every generation continues ``codes`` ``[1, K, P]`` (the same prefix for every row):
        they are the decoder's input after its start token, MusicGen's audio prompt, and the sampler generates the
        remaining ``ceil(duration * frame_rate) - P`` frames. The returned audio is the whole token sequence
        decoded: the prefix as the codec reconstructs it, then the continuation."""
        if codes.ndim != 3 or codes.shape[0] != 1 or codes.shape[1] != self.codebooks or codes.shape[2] < 1:
            raise TadaError(f"a continuation prefix must be codes [1, {self.codebooks}, frames >= 1]; got "
                            f"{tuple(codes.shape)}")

        def prepare(run: Run) -> None:
            run.state[_PREFIX] = codes

        remove = self.add_before_generate(prepare)
        try:
            yield
        finally:
            remove()

    def _call_pipeline(self, run: Run, generators: list[torch.Generator]) -> torch.Tensor:
        from transformers import LogitsProcessorList

        s = run.settings
        override = run.state.get(_TEXT)
        replaced = None
        if override is None:
            inputs = self._text_inputs(run.prompts)
        else:
            states, mask, rows = override(run)
            inputs = self._text_inputs(run.prompts, length=int(states.shape[1]))
            if len(rows) != len(run.prompts) or inputs["input_ids"].shape[1] != states.shape[1]:
                raise TadaError(f"a text override gave {len(rows)} rows of {states.shape[1]} tokens for "
                                f"{len(run.prompts)} prompts of {inputs['input_ids'].shape[1]} tokens; give one row "
                                f"per prompt at the prompts' token length")
            replaced = torch.tensor(list(rows), dtype=torch.bool, device=self.device)
            inputs["attention_mask"] = torch.where(replaced[:, None], mask.to(self.device, inputs["attention_mask"].dtype),
                                                   inputs["attention_mask"])
        if self.pipeline.melody:
            chroma = int(self.pipeline.model.config.chroma_length)
            ones = torch.ones(len(run.prompts), chroma, dtype=inputs["attention_mask"].dtype, device=self.device)
            run.state[_MASK] = torch.cat([ones, inputs["attention_mask"]], dim=1)
        cpu_generators = [torch.Generator().manual_seed(seed) for seed in run.seeds]
        sampler = _PerSampleSampler(cpu_generators, self.codebooks, s.guidance, TOP_K, TEMPERATURE)
        handle = None
        if replaced is not None:
            new_states = states

            def swap_text(module, args, output):
                # the text encoder's output of the replaced rows becomes the override's (before the projection
                # into the decoder, the padding mask and the unconditional branch's zeros, all of which follow)
                hidden = output.last_hidden_state
                output.last_hidden_state = torch.where(replaced[:, None, None], new_states.to(hidden), hidden)
                return output

            handle = self.pipeline.model.text_encoder.register_forward_hook(swap_text)
        extra, new_tokens = {}, s.steps
        prefix = run.state.get(_PREFIX)
        if prefix is not None:   # continuation (:meth:`continuing`): the prefix frames are given, not generated
            frames = prefix.shape[-1]
            if frames >= s.steps - self.codebooks + 1:
                raise TadaError(f"a continuation prefix of {frames} frames leaves nothing to generate in "
                                f"{s.duration:g}s ({s.steps - self.codebooks + 1} frames)")
            extra["decoder_input_ids"] = prefix.to(self.device).expand(len(run.prompts), -1, -1).reshape(
                len(run.prompts) * self.codebooks, frames)
            new_tokens = s.steps - frames
        try:
            audio = self.pipeline.model.generate(**inputs, do_sample=False, guidance_scale=s.guidance,
                                                 max_new_tokens=new_tokens,
                                                 logits_processor=LogitsProcessorList([sampler]), **extra)
        finally:
            if handle is not None:
                handle.remove()
        samples = round(s.duration * self.sample_rate)
        return audio[..., :samples]

    # ----- the text conditioning (prompt-level baselines of the benchmark) ----------------------------------
    def encode_text(self, prompts: list[str], length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The text encoder's output ``E(prompt)`` [prompts, tokens, width] (before MusicGen's projection into the
        decoder) and the text mask [prompts, tokens], as ``generate`` tokenizes them (``length``: pad to this many
        tokens instead of the model's fixed text length or the batch's longest)."""
        prompts = check_prompts(prompts, "prompts")
        inputs = self._text_inputs(prompts, length=length)
        with torch.no_grad(), self._lock:
            states = self.pipeline.model.text_encoder(**inputs).last_hidden_state
        return states.detach(), inputs["attention_mask"]

    @contextlib.contextmanager
    def text_conditioning(self, provide: TextOverride) -> Iterator[None]:
        """Within this block, ``provide(run)`` gives each generation's text conditioning: states ``[B, L, D]`` at the
        text encoder's output, their mask ``[B, L]`` and a flag per prompt; the flagged prompts are conditioned on
        these states and mask, the others exactly as without the block (bit-identical). ``L`` must be the prompts'
        token length (:meth:`encode_text` of the same prompts gives it)."""

        def prepare(run: Run) -> None:
            run.state[_TEXT] = provide

        remove = self.add_before_generate(prepare)
        try:
            yield
        finally:
            remove()

    # ----- the paper's read-out ----------------------------------------------------------------------
    def prompt_states(self, prompts: list[str]) -> torch.Tensor:
        """[layers, prompts, width]: each decoder layer's output at the prompt's EOS position (Facchiano et al. Sec. 3).

        Melody: the text is prepended to the decoder input after the chroma frames, so the EOS
        token of a prompt sits at ``chroma_length + (its token count) - 1`` of the decoder
        sequence; the text mask of a padded batch says where. The cross-attention variant has no
        text positions in the decoder: its read-out is the first decoder position (the start
        token, which has attended to the text).
        """
        prompts = check_prompts(prompts, "DiffMean prompts")
        inputs = self._text_inputs(prompts)
        k = self.codebooks
        start = int(self.pipeline.decoder.config.decoder_start_token_id)
        decoder_ids = torch.full((len(prompts) * k, 1), start, dtype=torch.long, device=self.device)
        outputs: dict[int, torch.Tensor] = {}

        def grab(index: int):
            def hook(module, args, output):
                outputs[index] = self.layer_output(output).detach()
            return hook

        run = Run(prompts=list(prompts), seeds=[0] * len(prompts), settings=self.resolve_settings())
        handles = [layer.module.register_forward_hook(grab(layer.index)) for layer in self.layers]
        previous, self._run = self._run, run
        try:
            with torch.no_grad(), self._lock:
                if self.pipeline.melody:
                    chroma = int(self.pipeline.model.config.chroma_length)
                    mask = inputs["attention_mask"]
                    run.state[_MASK] = torch.cat([torch.ones(len(prompts), chroma, dtype=mask.dtype,
                                                             device=self.device), mask], dim=1)
                    with _hooked(self, run):
                        self.pipeline.model(**inputs, decoder_input_ids=decoder_ids)
                    position = chroma + mask.sum(dim=1) - 1
                else:
                    self.pipeline.model(**inputs, decoder_input_ids=decoder_ids)
                    position = torch.zeros(len(prompts), dtype=torch.long)
        finally:
            self._run = previous
            for h in handles:
                h.remove()
        rows = torch.arange(len(prompts))
        return torch.stack([outputs[layer.index][rows, position.cpu()].float().cpu() for layer in self.layers])


class _hooked:
    """The family hooks of ``adapter`` for one forward pass outside ``generate``."""

    def __init__(self, adapter: MusicGenAdapter, run: Run) -> None:
        self.adapter, self.run, self.handles = adapter, run, []

    def __enter__(self):
        self.adapter._family_hooks(self.run, self.handles.append)
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()

# Facchiano et al. (MusicGen) steer tempo and timbre (bright / dark, measured by spectral centroid)
MUSICGEN_CONCEPTS: dict[str, Concept] = {**PAPER_CONCEPTS, "brightness": Concept(
    "brightness", "bright {base}", "dark {base}", keywords=("bright", "brilliant", "crisp"),
    exclude=("dark", "muffled", "warm"), replacements={"bright": "dark", "brilliant": "dull", "crisp": "muffled"},
    query="bright timbre music")}
MUSICGEN_CONCEPT_SET = ConceptSet("musicgen", MUSICGEN_CONCEPTS, BASE_PROMPTS, EVAL_PROMPTS)


# ----- registry entries: the checkpoints of this family, and its tiny test fixture ----------------------


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

    return seeded(build)


ENTRIES = (
    ModelEntry("musicgen-melody", MusicGenAdapter, MUSICGEN_CONCEPT_SET, hub_id="facebook/musicgen-melody",
               description="MusicGen Melody 1.5B (the model of Facchiano et al.; empty melody conditioning)",
               notes="autoregressive: layers are residual-stream decoder outputs, steered with DiffMean "
                     "(`tada diffmean`)"),
    ModelEntry("musicgen-small", MusicGenAdapter, MUSICGEN_CONCEPT_SET, hub_id="facebook/musicgen-small",
               description="MusicGen small 300M (text through cross-attention)"),
    ModelEntry("musicgen-medium", MusicGenAdapter, MUSICGEN_CONCEPT_SET, hub_id="facebook/musicgen-medium",
               description="MusicGen medium 1.5B"),
    ModelEntry("musicgen-large", MusicGenAdapter, MUSICGEN_CONCEPT_SET, hub_id="facebook/musicgen-large",
               description="MusicGen large 3.3B"),
    ModelEntry("tiny-musicgen-melody", MusicGenAdapter, MUSICGEN_CONCEPT_SET, build=tiny_musicgen_melody,
               defaults={"duration": 0.5, "guidance": 3.0}, description="random weights, 4 layers (tests)",
               listed=False),
)


__all__ = ["MusicGenAdapter", "tiny_musicgen_melody", "ENTRIES", "MUSICGEN_CONCEPTS", "MUSICGEN_CONCEPT_SET"]
