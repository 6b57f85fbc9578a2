"""Concept Sliders (Gandikota et al., 2024): low-rank adapters on the denoiser's cross-attention projections.

A slider is a LoRA (Hu et al., 2022) on the linear projections (query, key, value, output) of chosen
cross-attention layers, trained per concept (:mod:`tada_core.methods.sliders`); its scale is the steering
strength: W' = W + scale (alpha / r) B A on every adapted projection, scale 0 the model itself, positive
scales toward the concept's positive prompt, negative ones toward its negative prompt. ``peft`` builds
and runs the adapters; this module owns the folder format and the context in which a slider acts.

A slider folder is also a valid Hugging Face Hub model repo (``tada push`` uploads it)::

    slider.safetensors     the LoRA weights, peft's names relative to the denoiser
                           ("transformer_blocks.3.attn2.to_q.lora_A.weight", ...)
    config.json            what it is, what it may be applied to, how it was trained (loss curve included)
    README.md              model card with a usage snippet

Nothing here executes code from an artifact: tensors are safetensors, metadata is JSON.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import nn

from tada_core.errors import TadaError
from tada_core.runtime.io import atomic_write_text, read_json, read_tensors, resolve, save_tensors, write_json
from tada_core.version import __version__

SLIDER_FILE = "slider.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
SLIDER_KIND = "tada-concept-slider"
FORMAT_VERSION = 1
LIBRARY = "tada-steer"
ADAPTER_NAME = "tada_slider"   # the peft adapter name while a slider is applied
CONFIG_KEYS = frozenset({"kind", "format_version", "concept", "base_model", "base_model_revision", "layers",
                         "target_modules", "rank", "lora_alpha", "scale_range", "training", "command",
                         "tada_version", "extra"})


def projections(adapter, layers: Sequence[int]) -> list[str]:
    """Module names, relative to the denoiser, of every linear projection inside the cross-attention modules of
    ``layers`` (diffusers' ``to_q``, ``to_k``, ``to_v``, ``to_out.0``; whatever the family's attention has)."""
    prefix = f"{adapter.denoiser_attr}."
    names = []
    for i in adapter.resolve_layers(layers):
        layer = adapter.layers[i]
        if not layer.path.startswith(prefix):
            raise TadaError(f"{adapter.name}: layer {i} ({layer.path}) is not inside the denoiser "
                            f"{adapter.denoiser_attr!r}; a slider adapts the denoiser's projections")
        base = layer.path[len(prefix):]
        found = [f"{base}.{n}" for n, m in layer.module.named_modules() if n and isinstance(m, nn.Linear)]
        if not found:
            raise TadaError(f"{adapter.name}: layer {i} ({layer.path}) has no linear projection to adapt")
        names += found
    return names


@dataclasses.dataclass
class ConceptSlider:
    """A trained slider: LoRA ``weights`` (peft's state-dict names, relative to the denoiser) and what it is for.

    ``layers``: the cross-attention layers it adapts (0-based), ``layer_paths`` their module paths;
    ``target_modules``: the adapted projections; ``rank`` and ``lora_alpha``: the LoRA shape (scaling
    lora_alpha / rank at scale 1); ``scale_range``: the scales it is meant for; ``training``: how it was trained
    (objective, eta, steps, learning rate, seeds, prompts, loss curve).
    """

    weights: dict[str, torch.Tensor]
    concept: str
    model: str
    layers: list[int]
    layer_paths: dict[int, str]
    target_modules: list[str]
    rank: int
    lora_alpha: float
    scale_range: tuple[float, float] | None = None
    training: dict[str, Any] = dataclasses.field(default_factory=dict)
    model_revision: str | None = None
    command: str | None = None
    tada_version: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.weights:
            raise TadaError("a concept slider needs LoRA weights; got none")
        self.weights = {str(k): v.detach().to("cpu", torch.float32).contiguous() for k, v in self.weights.items()}
        self.layers = sorted(int(x) for x in self.layers)
        self.layer_paths = {int(k): str(v) for k, v in self.layer_paths.items()}
        self.target_modules = [str(t) for t in self.target_modules]
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise TadaError(f"rank must be a positive integer; got {self.rank!r}")
        if not math.isfinite(float(self.lora_alpha)) or float(self.lora_alpha) <= 0:
            raise TadaError(f"lora_alpha must be a positive number; got {self.lora_alpha!r}")
        missing = sorted(set(self.layers) - set(self.layer_paths))
        if missing:
            raise TadaError(f"layer_paths lacks layers {missing}; every adapted layer needs its module path")
        expected = {f"{t}.lora_{ab}.weight" for t in self.target_modules for ab in ("A", "B")}
        if set(self.weights) != expected:
            extra, lack = sorted(set(self.weights) - expected), sorted(expected - set(self.weights))
            raise TadaError(f"the slider's weights do not match its target modules: "
                            + "; ".join(([f"unexpected {extra}"] if extra else []) + ([f"missing {lack}"] if lack else [])))
        for k, v in self.weights.items():
            if not torch.isfinite(v).all():
                raise TadaError(f"slider weight {k} has NaN or inf values")

    # ----- applying -------------------------------------------------------------------
    def check_compatible(self, adapter) -> None:
        """Raise :class:`TadaError` unless ``adapter`` is the model this slider was trained on, layer by layer."""
        if self.model not in (adapter.name, adapter.source):
            raise TadaError(f"this {self.concept!r} slider was trained on model {self.model!r}; {adapter.name!r} is "
                            f"another model. A slider only steers the model it was trained on: train one for it")
        by_index = {layer.index: layer for layer in adapter.layers}
        for i in self.layers:
            if i not in by_index or by_index[i].path != self.layer_paths[i]:
                raise TadaError(f"slider layer {i} was {self.layer_paths[i]!r}; in {adapter.name!r} it is "
                                f"{by_index[i].path if i in by_index else 'missing'!r}")
        modules = dict(adapter.denoiser.named_modules())
        for name in self.target_modules:
            if not isinstance(modules.get(name), nn.Linear):
                raise TadaError(f"{adapter.name!r} has no linear projection {name!r} to adapt (is another slider "
                                f"applied? one slider at a time)")
            a = self.weights[f"{name}.lora_A.weight"]
            b = self.weights[f"{name}.lora_B.weight"]
            if a.shape != (self.rank, modules[name].in_features) or b.shape != (modules[name].out_features, self.rank):
                raise TadaError(f"slider weights for {name} have shapes {tuple(a.shape)} / {tuple(b.shape)}; the "
                                f"projection is {modules[name].in_features} -> {modules[name].out_features} at rank "
                                f"{self.rank}")

    @contextlib.contextmanager
    def apply(self, adapter, scale: float | Sequence[float]) -> Iterator[None]:
        """Steer ``adapter`` with this slider at ``scale`` (one float, or one per sample of each batch).

        Inside, every adapted projection computes W x + scale (lora_alpha / rank) B A x. A sample whose scale
        is 0 gets exactly its unsteered output (the LoRA term is multiplied by 0 and added, which changes no
        bit); on exit, also after an error, the model's own modules are back in place and nothing else of the
        model is touched.
        """
        self.check_compatible(adapter)
        scales = _scales(scale)
        with lora(adapter.denoiser, self.target_modules, self.rank, self.lora_alpha, self.weights) as lora_b:
            def hook(module, args, output):
                run = adapter.run
                if run is None:
                    factor = scales[0] if len(scales) == 1 else None
                    if factor is None:
                        raise TadaError(f"a slider applied with {len(scales)} scales acts only inside "
                                        f"adapter.generate (one scale per sample)")
                    return output * factor
                per = scales * run.n_samples if len(scales) == 1 else scales
                if len(per) != run.n_samples:
                    raise TadaError(f"the slider got {len(scales)} scales for a batch of {run.n_samples} samples; "
                                    f"give one scale per sample or a single float")
                rows = output.shape[0]
                if rows % run.n_samples:
                    raise TadaError(f"{adapter.name}: a projection saw {rows} rows for {run.n_samples} samples")
                # both CFG halves repeat the samples in order, whichever comes first
                factor = torch.tensor(per * (rows // run.n_samples), dtype=output.dtype, device=output.device)
                return output * factor.view((-1,) + (1,) * (output.ndim - 1))

            handles = [m.register_forward_hook(hook) for m in lora_b]
            try:
                yield
            finally:
                for h in handles:
                    h.remove()

    # ----- the folder -----------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"kind": SLIDER_KIND, "format_version": FORMAT_VERSION, "concept": self.concept,
                "base_model": self.model, "base_model_revision": self.model_revision,
                "layers": [{"index": i, "path": self.layer_paths[i]} for i in self.layers],
                "target_modules": list(self.target_modules), "rank": self.rank, "lora_alpha": float(self.lora_alpha),
                "scale_range": list(self.scale_range) if self.scale_range else None, "training": self.training,
                "command": self.command, "tada_version": self.tada_version, "extra": self.extra}

    def save(self, folder: str | Path, *, card: bool = True) -> Path:
        """Write the folder (safetensors + config.json + README.md); returns its path. Provenance (``command``)
        is what this object carries, set by the caller."""
        if self.scale_range is not None and (len(self.scale_range) != 2 or not all(
                math.isfinite(float(a)) for a in self.scale_range)):
            raise TadaError(f"scale_range must be two finite numbers (min, max); got {self.scale_range!r}")
        if self.tada_version is None:
            self.tada_version = __version__
        folder = Path(folder)
        save_tensors(folder / SLIDER_FILE, {k: self.weights[k] for k in sorted(self.weights)},
                     metadata={"kind": SLIDER_KIND})
        write_json(folder / CONFIG_FILE, self.config())
        if card:
            where = str(folder) if not folder.is_absolute() else folder.name
            atomic_write_text(folder / CARD_FILE, model_card(self.config(), folder.name, where))
        return folder

    @classmethod
    def load(cls, source: str | Path, revision: str | None = None) -> "ConceptSlider":
        """:func:`load_slider`."""
        return load_slider(source, revision)

    @classmethod
    def load_from_hub(cls, repo_id: str, revision: str | None = None) -> "ConceptSlider":
        """A slider from its Hub repo (``org/name``), downloaded once into the Hub cache."""
        return load_slider(repo_id, revision)


def _scales(scale: float | Sequence[float]) -> list[float]:
    values = [scale] if isinstance(scale, (int, float)) and not isinstance(scale, bool) else scale
    try:
        out = [float(x) for x in values]
    except (TypeError, ValueError):
        raise TadaError(f"scale must be a number or one number per sample; got {scale!r}") from None
    if not out or not all(math.isfinite(x) for x in out) or any(isinstance(x, bool) for x in values):
        raise TadaError(f"scale must be finite numbers (one, or one per sample); got {scale!r}")
    return out


@contextlib.contextmanager
def lora(denoiser: nn.Module, target_modules: Sequence[str], rank: int, lora_alpha: float,
         weights: Mapping[str, torch.Tensor] | None = None) -> Iterator[list[nn.Module]]:
    """peft LoRA layers on exactly ``target_modules`` of ``denoiser`` (``weights``: peft's state dict to load;
    None: peft's initialisation, B = 0), yielding the ``lora_B`` modules; on exit the original modules are put
    back and peft's bookkeeping on the model is removed, also after an error."""
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict

    modules = dict(denoiser.named_modules())
    taken = [t for t in target_modules if not isinstance(modules.get(t), nn.Linear)]
    if taken:
        raise TadaError(f"cannot adapt {taken}: not linear projections of the denoiser (another slider applied? "
                        f"one slider at a time)")
    originals = {t: modules[t] for t in target_modules}
    had_config = "peft_config" in vars(denoiser)
    trainable = {name: p.requires_grad for name, p in denoiser.named_parameters()}   # peft freezes the rest
    try:
        config = LoraConfig(r=int(rank), lora_alpha=float(lora_alpha), target_modules=list(target_modules),
                            lora_dropout=0.0, bias="none")
        inject_adapter_in_model(config, denoiser, adapter_name=ADAPTER_NAME)
        if weights is not None:
            result = set_peft_model_state_dict(denoiser, dict(weights), adapter_name=ADAPTER_NAME)
            unexpected = list(getattr(result, "unexpected_keys", []) or [])
            if unexpected:
                raise TadaError(f"slider weights not used by the model: {unexpected[:4]}")
        now = dict(denoiser.named_modules())
        yield [now[f"{t}.lora_B.{ADAPTER_NAME}"] for t in target_modules]
    finally:
        for name, original in originals.items():
            parent_name, _, attr = name.rpartition(".")
            parent = denoiser.get_submodule(parent_name) if parent_name else denoiser
            setattr(parent, attr, original)
        if not had_config and "peft_config" in vars(denoiser):
            del denoiser.peft_config
        for name, p in denoiser.named_parameters():
            if name in trainable:
                p.requires_grad_(trainable[name])


def load_slider(source: str | Path, revision: str | None = None) -> ConceptSlider:
    """Load and validate a slider folder or Hub repo id (``org/name``, optional revision)."""
    folder = resolve(source, revision, allow_patterns=[CONFIG_FILE, SLIDER_FILE, CARD_FILE])
    config = read_json(folder / CONFIG_FILE)
    name = Path(str(source)).name
    if not isinstance(config, dict) or config.get("kind") != SLIDER_KIND:
        raise TadaError(f"{name}/{CONFIG_FILE} is not a {SLIDER_KIND} config")
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise TadaError(f"{name}/{CONFIG_FILE} has fields this tada does not know: {', '.join(unknown)} (known: "
                        f"{', '.join(sorted(CONFIG_KEYS))}); was it written by a newer tada? Upgrade {LIBRARY}")
    version = config.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version > FORMAT_VERSION:
        raise TadaError(f"{name} uses format version {version!r}; this tada reads up to {FORMAT_VERSION}")
    layers = config.get("layers")
    if not isinstance(layers, list) or not all(isinstance(e, dict) and {"index", "path"} <= set(e) for e in layers):
        raise TadaError(f"{CONFIG_FILE}: 'layers' must be a list of {{index, path}}; got {layers!r}")
    scale = config.get("scale_range")
    return ConceptSlider(weights=read_tensors(folder / SLIDER_FILE), concept=str(config.get("concept")),
                         model=str(config.get("base_model")), layers=[int(e["index"]) for e in layers],
                         layer_paths={int(e["index"]): e["path"] for e in layers},
                         target_modules=list(config.get("target_modules") or []), rank=config.get("rank"),
                         lora_alpha=config.get("lora_alpha"), scale_range=tuple(scale) if scale else None,
                         training=config.get("training") or {}, model_revision=config.get("base_model_revision"),
                         command=config.get("command"), tada_version=config.get("tada_version"),
                         extra=config.get("extra") or {})


def model_card(config: Mapping[str, Any], name: str, source: str | None = None) -> str:
    """A Hub model card for a slider folder: YAML front matter, what it is, how it was trained, a usage snippet."""
    base = config["base_model"]
    layers = ", ".join(str(e["index"]) for e in config["layers"])
    t = config.get("training") or {}
    scale = config.get("scale_range")
    top = max(abs(float(a)) for a in scale) if scale else 1.0
    front = ["---", f"library_name: {LIBRARY}", "license: apache-2.0", "tags:", "- tada", "- concept-slider",
             "- lora", "- text-to-audio"] + ([f"base_model: {base}"] if "/" in base else []) + ["---"]
    lines = [f"# {name}: {config['concept']} concept slider", "",
             f"A Concept Slider (Gandikota et al., 2024) for **{config['concept']}** on `{base}`, made with "
             f"`{LIBRARY}`: a rank-{config['rank']} LoRA (lora_alpha {config['lora_alpha']:g}) on the "
             f"cross-attention projections of layers {layers} (0-based; {len(config['target_modules'])} "
             f"projections). Its scale is the steering strength: 0 is the model itself, positive toward the "
             f"concept's positive prompt, negative toward its negative prompt."]
    if t:
        curve = t.get("loss") or []
        lines.append(f"Trained with the sliders objective (the adapted model's prediction for the neutral prompt "
                     f"regresses to eps(neutral) + eta (eps(positive) - eps(negative)) of the frozen model, eta "
                     f"{t.get('eta')}) for {t.get('steps')} steps at learning rate {t.get('lr')}, on fitting seeds "
                     f"{t.get('seeds')}" + (f"; mean loss over the captured calls {t['loss_before']:.4g} -> "
                                            f"{t['loss_after']:.4g}" if "loss_after" in t else "")
                     + (f" ({len(curve)} steps in config.json)" if curve else "") + ".")
    if scale:
        lines.append(f"Meant for scales in [{scale[0]:g}, {scale[1]:g}].")
    lines += ["", "```python", "from tada_core import load_model",
              "from tada_core.artifacts.slider import load_slider", "",
              f"slider = load_slider({(source or name)!r})   # this folder, or its Hub repo id",
              "model = load_model(slider.model)",
              f"with slider.apply(model, scale=[0.0, {top:g}]):   # original and steered, one batch",
              "    pair = model.generate([\"a pop song\"] * 2, seeds=[0, 0])", "```", "",
              (f"Made by: `{config['command']}`" if config.get("command") else "Made with the Python API")
              + f" (tada {config.get('tada_version') or '?'}).",
              "Files: `slider.safetensors` (peft's LoRA names), `config.json` (model, layers, target modules, rank,",
              "training and its loss curve). No pickles."]
    return "\n".join(front) + "\n\n" + "\n".join(lines) + "\n"


__all__ = ["ConceptSlider", "load_slider", "lora", "projections", "model_card", "SLIDER_FILE", "SLIDER_KIND"]
