"""The one interface the rest of tada_core uses to talk to a diffusers audio pipeline.

A :class:`ModelAdapter` owns a diffusers pipeline and knows the family's quirks:
which modules are the cross-attention layers (in execution order), how the pipeline
batches classifier-free guidance (CFG), how to call the pipeline, and any hook the
family needs during a call (ACE-Step's cross-attention padding mask). Everything else
(recording, patching, steering) is written once against this interface.

Run state. Interventions must know, inside a hook, which diffusion step is running
and which rows of the batch are the conditional branch. ``generate`` opens a
:class:`Run` for the duration of one pipeline call; a pre-hook on the denoiser
counts its calls (one per diffusion step for all supported pipelines). The CFG
layout is read from the row count of each call, because a pipeline may switch
CFG on and off between steps (ACE-Step's ``cfg_interval``).
"""

from __future__ import annotations

import hashlib

import contextlib
import dataclasses
import json
import threading
import types
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Sequence

import torch
from torch import nn

from tada_core.errors import TadaError, check_layers, check_prompts
from tada_core.adapters.settings import GenerationSettings


@dataclasses.dataclass(frozen=True)
class CrossAttentionLayer:
    """One cross-attention module. ``index`` is the 0-based index used everywhere in the API."""

    index: int
    path: str  # module path inside the pipeline, e.g. "transformer.layers.6.cross_attn"
    module: nn.Module
    width: int  # feature width of the module's output (what a steering vector must match)


@dataclasses.dataclass(frozen=True)
class Generation:
    """Waveforms from one batched call: ``audio`` is float32 on CPU, shaped [batch, channels, samples]."""

    audio: torch.Tensor
    sample_rate: int
    prompts: tuple[str, ...]
    seeds: tuple[int, ...]


@dataclasses.dataclass
class Run:
    """State of one pipeline call, visible to intervention hooks through ``adapter.run``."""

    prompts: list[str]
    seeds: list[int]
    settings: GenerationSettings  # resolved: no None fields
    capture: bool = False  # True for the short conditioning-capture pass of `patch`
    step: int = -1  # index of the denoiser call now running (0-based diffusion step)
    state: dict[str, Any] = dataclasses.field(default_factory=dict)  # the family's own per-call state

    @property
    def n_samples(self) -> int:
        return len(self.prompts)


class _StopCapture(Exception):
    """Raised from a hook to end a capture pass after the first denoiser call."""


@dataclasses.dataclass(frozen=True)
class Conditioning:
    """What one cross-attention layer received as key/value input, for the conditional rows."""

    states: torch.Tensor  # [n_samples, tokens, dim]
    mask: torch.Tensor | None  # as the module received it, sliced to the conditional rows


class ModelAdapter:
    """Base class: a diffusers text-to-audio pipeline with ordered cross-attention layers.

    Subclasses set the class attributes and implement ``find_layers``, ``family_defaults``,
    ``sample_rate`` and ``_call_pipeline``; nothing outside the subclass knows the family's quirks.
    """

    family: ClassVar[str]
    pipeline_class_name: ClassVar[str]
    denoiser_attr: ClassVar[str]  # "transformer" or "unet"
    cond_first: ClassVar[bool]  # True if the CFG batch is [cond, uncond]
    conditioning_kwarg: ClassVar[str] = "encoder_hidden_states"
    conditioning_mask_kwarg: ClassVar[str] = "attention_mask"
    # What "layers", "steps" and "branches" mean in this family (diffusion defaults; MusicGen overrides):
    layer_kind: ClassVar[str] = "cross-attention output"   # the point a layer index names
    step_kind: ClassVar[str] = "diffusion step"            # what one denoiser call is
    default_branch: ClassVar[str] = "cond"                 # which CFG rows steering acts on by default
    supports_patching: ClassVar[bool] = True               # cross-attention keys/values can be patched
    benchmark_kind: ClassVar[str] = "cross-attention"      # which method table `tada benchmark` runs on it
    gpu_dtype: ClassVar[torch.dtype | None] = None         # default weights dtype on a GPU (None: as saved)
    display_name: ClassVar[str]                            # the family as people write it ("ACE-Step")
    # Options of this family that change the audio besides the settings; the CLI offers each as --NAME
    # (underscores as dashes) and passes what the user gave to :meth:`configure`.
    option_specs: ClassVar[tuple["FamilyOption", ...]] = ()
    # Checkpoints of this family that the TADA reference code ran and no adapter loads (their layer paths
    # appear in its files), and the registry entry its files' module paths (``transformer.`` / ``unet.``) mean.
    reference_checkpoints: ClassVar[tuple[Any, ...]] = ()
    steer_audio_entry: ClassVar[str | None] = None

    def __init__(self, pipeline: Any, *, name: str, source: str,
                 defaults: GenerationSettings | dict[str, Any] | None = None) -> None:
        self.pipeline = pipeline
        for component in pipeline.components.values():
            if isinstance(component, nn.Module):
                component.eval()  # models built in code start in train mode, with dropout on
        self.name = name
        self.source = source
        if isinstance(defaults, dict):
            defaults = GenerationSettings.from_dict(defaults)
        self.defaults: GenerationSettings = GenerationSettings(**self.family_defaults()).replace(
            **(defaults.to_dict() if defaults else {}))
        self.entry: Any = None  # the registry entry this model was loaded through (set by load_model)
        self._layers = tuple(self.find_layers(pipeline))
        if not self._layers:
            raise TadaError(f"{name}: found no cross-attention layers in {source}")
        self._lock = threading.RLock()
        self._run: Run | None = None
        self._before_generate: list[Callable[[Run], None]] = []

    # ----- family quirks -----------------------------------------------------------
    @classmethod
    def load_pipeline(cls, source: str, *, dtype: torch.dtype | None = None, revision: str | None = None,
                      device_map: str | None = None) -> Any:
        """The family's pipeline from a folder or Hub id: diffusers' ``from_pretrained``, safetensors only;
        ``device_map`` ("balanced": the components spread over the visible GPUs) is diffusers' own option."""
        import diffusers

        pipeline_cls = getattr(diffusers, cls.pipeline_class_name)
        extra = {"device_map": device_map} if device_map is not None else {}
        return pipeline_cls.from_pretrained(source, torch_dtype=dtype, revision=revision, use_safetensors=True,
                                            **extra)

    @classmethod
    def find_layers(cls, pipeline: Any) -> list[CrossAttentionLayer]:
        """The cross-attention layers of ``pipeline`` (anything with the denoiser attribute), in execution order."""
        raise NotImplementedError

    @classmethod
    def denoiser_class(cls, class_name: str) -> type:
        """The denoiser class a committed ``config.json`` names (``_class_name``): diffusers' own."""
        import diffusers

        return getattr(diffusers, class_name)

    @classmethod
    def meta_layers(cls, config_path: str | Path) -> list[CrossAttentionLayer]:
        """The layers of the denoiser that ``config_path`` (its ``config.json``) describes, built on the meta
        device: real layer counts and widths without any weights."""
        config = {k: v for k, v in json.loads(Path(config_path).read_text()).items()
                  if not k.startswith("_") or k == "_class_name"}
        model_cls = cls.denoiser_class(config.pop("_class_name"))
        with torch.device("meta"):
            denoiser = model_cls.from_config(config)
        return cls.find_layers(types.SimpleNamespace(**{cls.denoiser_attr: denoiser}))

    def prompt_states(self, prompts: list[str]) -> torch.Tensor:
        """The residual stream of every layer for each prompt, [layers, prompts, width] (DiffMean's input);
        only an autoregressive family has one to read."""
        raise TadaError(f"{self.name} is a {self.family} model; DiffMean reads an autoregressive model's "
                        f"residual stream (MusicGen). For diffusion models use `tada caa`")

    def _call_pipeline(self, run: Run, generators: list[torch.Generator]) -> torch.Tensor:
        """Run the pipeline for ``run`` (prompts, resolved settings); return audio [batch, channels, samples]."""
        raise NotImplementedError

    def _family_hooks(self, run: Run, add: Callable[[Any], Any]) -> None:
        """Register hooks this family needs during every pipeline call (``add`` removes them after); none here."""

    def family_defaults(self) -> dict[str, float]:
        """Default duration (s), steps and guidance for this family."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """Family options that change the audio besides the settings (ACE-Step: ``lyrics``, ``cfg_interval``);
        every resumable job records them in its spec. None here."""
        return {}

    def configure(self, **options: Any) -> None:
        """Set family options (see :meth:`options`); unknown ones are refused, naming the accepted ones."""
        accepted = sorted(self.options())
        unknown = sorted(k for k, v in options.items() if v is not None and k not in accepted)
        if unknown:
            raise TadaError(f"{self.name} ({self.family}) has no option {', '.join(unknown)}; accepted: "
                            f"{', '.join(accepted) or 'none'}")

    def layer_output(self, output: Any) -> torch.Tensor:
        """The activation a layer hook sees, [rows, positions, width], from the layer module's output."""
        return output

    def with_layer_output(self, output: Any, hidden: torch.Tensor) -> Any:
        """The layer module's output with its activation replaced by ``hidden`` (what a steering hook returns)."""
        return hidden

    def max_duration(self) -> float | None:
        """Longest duration the model can produce, if it has a hard limit."""
        return None

    @property
    def sample_rate(self) -> int:
        raise NotImplementedError

    # ----- editing a user's clip (tada_core.editing) -----------------------------------------------
    # How this family edits a clip: "inversion" (edit-friendly inversion of the denoiser's trajectory, the diffusion
    # families) or "continuation" (an autoregressive model continues the clip's codec tokens: MusicGen)
    edit_kind: ClassVar[str] = "inversion"
    default_edit_strength: ClassVar[float] = 1.0   # ``strength`` of an edit when none is given

    @property
    def audio_channels(self) -> int:
        """Channels of the audio the pipeline generates (an edited clip is converted to this)."""
        return 1

    def encode_audio(self, audio: torch.Tensor, settings: GenerationSettings) -> torch.Tensor:
        """A clip ([channels, samples] at :attr:`sample_rate`, ``settings.duration`` long) as the denoiser's
        clean latent ``x_0``, [1, ...] (what :func:`tada_core.editing.edit` inverts). Families that can
        encode override this; the pipeline's ``_call_pipeline`` then starts from ``run.state["initial_latents"]``."""
        raise TadaError(f"{self.name} ({self.family}) cannot edit a clip yet: its adapter does not encode audio "
                        f"(accepted: the organism, Stable Audio, AudioLDM 2, ACE-Step; MusicGen by continuation; "
                        f"see docs/editing.md)")

    def edit_scheduler(self, steps: int) -> Any:
        """A fresh copy of the pipeline's scheduler with the timesteps / sigmas the pipeline samples on for ``steps``
        steps: what :func:`tada_core.editing.trajectory` noises the clip's latent along. Here the scheduler's own
        ``set_timesteps(steps)``; a pipeline that passes its own schedule (ACE-Step's shifted sigmas) overrides it."""
        scheduler = type(self.pipeline.scheduler).from_config(self.pipeline.scheduler.config)
        scheduler.set_timesteps(steps)
        return scheduler

    @classmethod
    def cfg_batch(cls) -> str:
        """How the pipeline stacks the CFG batch, for display."""
        return "[cond, uncond]" if cls.cond_first else "[uncond, cond]"

    # ----- public interface ---------------------------------------------------------
    @property
    def denoiser(self) -> nn.Module:
        return getattr(self.pipeline, self.denoiser_attr)

    @property
    def layers(self) -> tuple[CrossAttentionLayer, ...]:
        return self._layers

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    @property
    def run(self) -> Run | None:
        """The pipeline call in progress, or None outside ``generate``."""
        return self._run

    def resolve_layers(self, layers: Sequence[int] | None) -> tuple[int, ...]:
        """Validate 0-based layer indices (None = all layers) against this model."""
        return check_layers(layers, len(self._layers), self.name)

    def to(self, device: str | torch.device) -> "ModelAdapter":
        self.pipeline.to(device)
        return self

    def set_progress_bar(self, enabled: bool) -> None:
        self.pipeline.set_progress_bar_config(disable=not enabled)

    def branch_rows(self, n_rows: int) -> tuple[slice, slice | None]:
        """Rows of a denoiser batch that hold the conditional and unconditional branch.

        With CFG the batch has 2 * n_samples rows, ordered by ``cond_first``; without
        CFG (guidance <= 1, or outside ACE-Step's cfg interval) every row is conditional.
        """
        run = self._run
        if run is None:
            raise TadaError("interventions act only inside adapter.generate(); no generation is running")
        n = run.n_samples
        if n_rows == n:
            return slice(0, n), None
        if n_rows == 2 * n:
            first, second = slice(0, n), slice(n, 2 * n)
            return (first, second) if self.cond_first else (second, first)
        raise TadaError(
            f"{self.name}: a cross-attention call had {n_rows} rows for {n} samples; "
            f"expected {n} (no CFG) or {2 * n} (CFG)"
        )

    def resolve_settings(self, settings: GenerationSettings | None = None, **overrides: Any) -> GenerationSettings:
        """``settings`` (and any non-None ``overrides``) with this model's defaults filled in, validated."""
        s = (settings or GenerationSettings()).replace(**overrides)
        return s.resolved(self.defaults, self.max_duration(), self.name)

    def check_seeds(self, prompts: str | Sequence[str],
                    seeds: int | Sequence[int] | None) -> tuple[list[str], list[int]]:
        """Prompts as a list and one seed per prompt (an int ``s`` means ``s, s+1, ...``; None means 0, 1, ...)."""
        prompts = check_prompts(prompts)
        if seeds is None:
            seeds = list(range(len(prompts)))
        elif isinstance(seeds, int) and not isinstance(seeds, bool):
            seeds = [seeds + i for i in range(len(prompts))]
        seeds = list(seeds)
        if len(seeds) != len(prompts):
            raise TadaError(f"got {len(seeds)} seeds for {len(prompts)} prompts; give one seed per prompt")
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise TadaError(f"seeds must be non-negative integers; got {s!r}")
        return prompts, seeds

    def generate(self, prompts: str | Sequence[str], *, seeds: int | Sequence[int] | None = None,
                 settings: GenerationSettings | None = None, duration: float | None = None,
                 steps: int | None = None, guidance: float | None = None) -> Generation:
        """Generate one waveform per prompt, each from its own seed. Same seed, same audio.

        ``seeds`` is one int per prompt (an int ``s`` means ``s, s+1, ...``). ``settings``
        default to this model's; ``duration`` (seconds), diffusion ``steps`` and CFG
        ``guidance`` given directly take precedence over it. Active interventions
        (``record``, ``patch``, ``steer``) apply to this call.
        """
        prompts, seeds = self.check_seeds(prompts, seeds)
        resolved = self.resolve_settings(settings, duration=duration, steps=steps, guidance=guidance)
        with self._lock:
            run = Run(prompts=prompts, seeds=seeds, settings=resolved)
            for prepare in list(self._before_generate):
                prepare(run)
            audio = self._run_pipeline(run)
        return Generation(audio=audio, sample_rate=self.sample_rate, prompts=tuple(prompts), seeds=tuple(seeds))

    def capture_conditioning(self, prompts: Sequence[str], settings: GenerationSettings,
                             layers: Sequence[int]) -> dict[int, Conditioning]:
        """Key/value inputs of the given layers for ``prompts``, under resolved ``settings``.

        Runs the pipeline's own prompt encoding and the first denoiser call up to the last of
        ``layers`` (the forward is stopped before that layer computes): this is the cached
        "target run" of activation patching (TADA Sec. 3, Fig. 2a).
        """
        prompts = check_prompts(prompts, "patch prompts")
        run = Run(prompts=list(prompts), seeds=[0] * len(prompts), settings=settings, capture=True)
        found: dict[int, Conditioning] = {}
        wanted = set(layers)

        def grab(index: int):
            def hook(module, args, kwargs):
                cond, _ = self.branch_rows(_batch_rows(args, kwargs))
                states = kwargs.get(self.conditioning_kwarg)
                if states is None:
                    raise TadaError(f"{self.name}: layer {index} received no {self.conditioning_kwarg}")
                mask = kwargs.get(self.conditioning_mask_kwarg)
                found[index] = Conditioning(states[cond].detach(), None if mask is None else mask[cond].detach())
                if wanted <= found.keys():
                    raise _StopCapture   # every patched layer's inputs are here: the rest of the forward is waste
            return hook

        def stop(module, args, kwargs, output):
            raise _StopCapture

        with hook_handles() as add:
            for i in layers:
                add(self._layers[i].module.register_forward_pre_hook(grab(i), with_kwargs=True))
            add(self.denoiser.register_forward_hook(stop, with_kwargs=True))
            with self._lock:
                try:
                    self._run_pipeline(run)
                except _StopCapture:
                    pass
        missing = [i for i in layers if i not in found]
        if missing:
            raise TadaError(f"{self.name}: layers {missing} were not called during the first denoiser step")
        return found

    # ----- internals ----------------------------------------------------------------------
    def _run_pipeline(self, run: Run) -> torch.Tensor:
        gen_device = "cpu" if self.device.type == "mps" else self.device
        generators = [torch.Generator(device=gen_device).manual_seed(seed) for seed in run.seeds]

        def count_step(module, args):
            run.step += 1

        previous, self._run = self._run, run
        try:
            with hook_handles() as add:
                add(self.denoiser.register_forward_pre_hook(count_step))
                self._family_hooks(run, add)
                with torch.no_grad():
                    audio = self._call_pipeline(run, generators)
        finally:
            self._run = previous
        audio = torch.as_tensor(audio).detach().float().cpu()
        if audio.ndim == 2:
            audio = audio[:, None, :]
        return audio

    @contextlib.contextmanager
    def replaying(self, run: Run) -> Iterator[None]:
        """Denoiser calls made inside, outside the pipeline, see ``run`` as the pipeline call in progress, with
        the family's hooks on: a trainer that re-runs denoiser inputs captured during ``run`` (Concept Sliders)
        gets what the pipeline's own calls got."""
        with self._lock:
            previous, self._run = self._run, run
            try:
                with hook_handles() as add:
                    self._family_hooks(run, add)
                    yield
            finally:
                self._run = previous

    def add_before_generate(self, fn: Callable[[Run], None]) -> Callable[[], None]:
        """Register ``fn(run)`` to be called before each pipeline call; returns its remover."""
        self._before_generate.append(fn)

        def remove() -> None:
            if fn in self._before_generate:
                self._before_generate.remove(fn)
        return remove

    unbatched_denoiser_kwargs: ClassVar[tuple[str, ...]] = ()  # denoiser inputs never sliced by row

    def denoiser_rows(self, args: tuple, kwargs: dict, n_rows: int, rows: slice) -> tuple[tuple, dict]:
        """The denoiser call's inputs restricted to ``rows`` of its ``n_rows``-row batch.

        Tensors whose first dimension is the batch are sliced; everything else (timesteps of
        shape [1], rotary tables, flags, and the kwargs named in ``unbatched_denoiser_kwargs``)
        is passed as is. Used to re-run the denoiser on the conditional rows (FreeSliders).
        """
        def cut(name: str | None, v: Any) -> Any:
            if name in self.unbatched_denoiser_kwargs:
                return v
            if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == n_rows:
                return v[rows]
            return v
        return tuple(cut(None, a) for a in args), {k: cut(k, v) for k, v in kwargs.items()}

    def prompt_token_ids(self, prompt: str) -> list[int]:
        """Token ids of ``prompt`` as the pipeline's tokenizer makes them (special tokens included).

        Position ``i`` of this list is position ``i`` of the conditioning the cross-attention
        layers receive (true for Stable Audio and the organism, whose text tokens come first;
        families where it is not true override this and raise); the Token Embeddings baseline
        finds concept words with it.
        """
        tokenizer = getattr(self.pipeline, "tokenizer", None)
        if tokenizer is None:
            raise TadaError(f"{self.name}: the pipeline has no tokenizer to locate words in a prompt")
        return list(tokenizer(prompt)["input_ids"])

    def weights_fingerprint(self) -> str:
        """A short hash of the denoiser's weights (every tensor's name, shape and first 64 values).

        Resumable jobs keep it in their spec, so a folder computed on other weights under the
        same model name (a retrained organism, another revision) is refused, never mixed in.
        Cheap on any model size: it reads 64 values per tensor.
        """
        h = hashlib.sha256()
        denoiser = getattr(self.pipeline, self.denoiser_attr)
        for name, tensor in denoiser.state_dict().items():
            h.update(f"{name}{tuple(tensor.shape)}".encode())
            h.update(tensor.detach().reshape(-1)[:64].to("cpu", torch.float32).numpy().tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """Plain-data summary: family, source, defaults, sample rate, layer paths and widths."""
        return {
            "name": self.name, "family": self.family, "source": self.source, "defaults": self.defaults.to_dict(),
            "sample_rate": self.sample_rate, "cfg_batch": self.cfg_batch(),
            "layers": [{"index": layer.index, "path": layer.path, "width": layer.width} for layer in self._layers],
        }


def _batch_rows(args: tuple, kwargs: dict) -> int:
    hidden = args[0] if args else kwargs["hidden_states"]
    return hidden.shape[0]


def output_width(module: nn.Module) -> int:
    """Width of an attention module's output: the out-features of its first output projection."""
    to_out = getattr(module, "to_out", None)
    first = to_out[0] if isinstance(to_out, nn.ModuleList) else to_out
    if isinstance(first, nn.Linear):
        return first.out_features
    raise TadaError(f"cannot tell the output width of {type(module).__name__}")


def indexed_layers(path_template: str, blocks: Sequence[nn.Module], attr: str) -> list[CrossAttentionLayer]:
    """Layer i = ``getattr(blocks[i], attr)`` at ``path_template.format(i=i)``, for blocks that have one."""
    return [CrossAttentionLayer(i, path_template.format(i=i), getattr(block, attr),
                                output_width(getattr(block, attr)))
            for i, block in enumerate(blocks) if getattr(block, attr, None) is not None]


@contextlib.contextmanager
def hook_handles() -> Iterator[Callable[[Any], Any]]:
    """Collect hook handles; remove exactly those on exit, even when an exception escapes."""
    handles: list[Any] = []

    def add(handle: Any) -> Any:
        handles.append(handle)
        return handle

    try:
        yield add
    finally:
        for handle in reversed(handles):
            handle.remove()


def seeded(build: Callable[[], Any], seed: int = 0) -> Any:
    """``build()`` under a fixed torch seed, leaving the caller's global RNG untouched (the tiny fixtures)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


@dataclasses.dataclass(frozen=True)
class FamilyOption:
    """One family option as the command line offers it (``--lyrics``): its :meth:`ModelAdapter.configure`
    keyword, help text, and argparse ``nargs`` / ``metavar`` / value type."""

    name: str
    help: str
    nargs: int | None = None
    metavar: tuple[str, ...] | str | None = None
    type: Callable[[str], Any] = str
