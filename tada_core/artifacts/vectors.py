"""Steering vectors: the type, its folder format, its model card. One format, symmetric save / load.

A steering-vector folder is also a valid Hugging Face Hub model repo::

    steering.safetensors   one tensor per layer, key "layers.<index>", [width] or [steps, width]
    config.json            what it is and what it may be applied to (see SteeringVector.config)
    README.md              model card: YAML front matter + a usage snippet that runs as written

Nothing here executes code from an artifact: tensors are safetensors, metadata is JSON.
A vector records the model it was made for (registry name or Hub id, revision) and every
layer's module path and width; :meth:`SteeringVector.check_compatible` refuses to apply
it to anything else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch

from tada_core.errors import TadaError
from tada_core.runtime.io import (
    atomic_write_text,
    read_json,
    read_tensors,
    resolve,
    save_tensors,
    write_json,
)
from tada_core.interventions.hooks import steer
from tada_core.version import __version__

VECTOR_FILE = "steering.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
VECTOR_KIND = "tada-steering-vector"
FORMAT_VERSION = 1
LIBRARY = "tada-steer"  # the pip package that reads these folders


def prompts_sha256(prompts: Mapping[str, Sequence[str]] | None) -> str | None:
    """A stable hash of the prompt lists, for artifacts that do not ship their prompts."""
    if prompts is None:
        return None
    blob = json.dumps({k: list(v) for k, v in sorted(prompts.items())}, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclasses.dataclass
class SteeringVector:
    """A steering vector per layer, plus what it was made from and for.

    ``vectors``: layer index (0-based module index) -> ``[width]`` or ``[steps, width]``.
    ``model``: the registry name or Hub id it was computed on (``tada-organism``,
    ``ace-step``, ``ACE-Step/acestep-v15-xl-turbo-diffusers``, ...); ``layer_paths``: the
    module path of each layer there. ``alpha_range``: the alphas it was validated over.
    ``functional_layers``: where :meth:`apply` steers by default (from localization).
    ``renorm``: whether its ``alpha_range`` was validated with ReNorm (Eq. 3); :meth:`apply`
    uses it unless told otherwise (None: ReNorm on, the default of every steering command).
    """

    vectors: dict[int, torch.Tensor]
    concept: str
    model: str
    layer_paths: dict[int, str]
    method: str = "caa"
    model_revision: str | None = None
    prompts: dict[str, list[str]] | None = None
    alpha_range: tuple[float, float] | None = None
    command: str | None = None
    tada_version: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    functional_layers: list[int] | None = None
    renorm: bool | None = None   # ReNorm (Eq. 3) its alpha_range was validated with; None: the default (on)
    strategy: dict[str, Any] | None = None   # DiffMean injection: {"name": "one-to-all", "source_layer": l} or all-to-all

    def __post_init__(self):
        if not self.vectors:
            raise TadaError("a steering vector needs at least one layer")
        self.vectors = {int(k): v.detach().to("cpu", torch.float32).contiguous() for k, v in self.vectors.items()}
        self.layer_paths = {int(k): str(v) for k, v in self.layer_paths.items()}
        missing = sorted(set(self.vectors) - set(self.layer_paths))
        if missing:
            raise TadaError(f"layer_paths lacks layers {missing}; every vector layer needs its module path")
        if self.strategy is not None:
            self.strategy = _check_strategy(self.strategy, set(self.vectors))
        if self.renorm is not None and not isinstance(self.renorm, bool):
            raise TadaError(f"renorm must be true, false or null; got {self.renorm!r}")
        if self.functional_layers is not None:
            self.functional_layers = sorted(int(x) for x in self.functional_layers)
            outside = sorted(set(self.functional_layers) - set(self.vectors))
            if outside:
                raise TadaError(f"functional_layers {outside} have no vector; vector layers are {sorted(self.vectors)}")
        for layer, v in self.vectors.items():
            if v.dim() not in (1, 2):
                raise TadaError(f"vector for layer {layer} must be [width] or [steps, width]; got {tuple(v.shape)}")
            if not torch.isfinite(v).all():
                raise TadaError(f"vector for layer {layer} has NaN or inf values")

    @property
    def layers(self) -> list[int]:
        return sorted(self.vectors)

    def default_layers(self) -> list[int]:
        """Where :meth:`apply` steers unless told otherwise."""
        return list(self.functional_layers) if self.functional_layers else self.layers

    def injected(self, layers: Sequence[int]) -> dict[int, torch.Tensor]:
        """What each of ``layers`` gets added: its own vector (All-to-All, and every CAA / SAE vector), or, with the
        One-to-All strategy (Facchiano et al. Sec. 3.3), the source layer's vector in every layer."""
        if self.strategy and self.strategy["name"] == "one-to-all":
            return {layer: self.vectors[self.strategy["source_layer"]] for layer in layers}
        unknown = sorted(set(layers) - set(self.vectors))
        if unknown:
            raise TadaError(f"this vector has no layers {unknown}; it has {self.layers}")
        return {layer: self.vectors[layer] for layer in layers}

    def widths(self) -> dict[int, int]:
        return {layer: int(v.shape[-1]) for layer, v in self.vectors.items()}

    def check_compatible(self, adapter) -> None:
        """Raise :class:`TadaError` unless ``adapter`` is the model this was made for, layer by layer."""
        by_index = {layer.index: layer for layer in adapter.layers}
        if self.model not in (adapter.name, adapter.source):
            first = self.layers[0]
            mine = f"layer {first} at {self.layer_paths[first]}, width {self.widths()[first]}"
            theirs = (f"layer {first} at {by_index[first].path}, width {by_index[first].width}" if first in by_index
                      else f"{len(by_index)} layers")
            why = f" ({self.extra['note']})" if self.extra.get("note") else ""
            raise TadaError(f"this {self.concept!r} vector was made for model {self.model!r}{why}: {mine}; "
                            f"{adapter.name!r} has {theirs}. A vector only steers the model it was computed on: "
                            f"compute one for {adapter.name!r}")
        for layer, v in self.vectors.items():
            if layer not in by_index:
                raise TadaError(f"vector layer {layer} does not exist in {adapter.name!r} "
                                f"(layers 0..{len(by_index) - 1})")
            if by_index[layer].path != self.layer_paths[layer]:
                raise TadaError(f"vector layer {layer} was {self.layer_paths[layer]!r}; in {adapter.name!r} it is "
                                f"{by_index[layer].path!r}")
            if by_index[layer].width != v.shape[-1]:
                raise TadaError(f"vector layer {layer} has width {v.shape[-1]}; {adapter.name!r} layer {layer} "
                                f"has width {by_index[layer].width}")

    @contextlib.contextmanager
    def apply(self, adapter, alpha, layers: Sequence[int] | None = None, use_renorm: bool | None = None,
              **kwargs) -> Iterator[None]:
        """Steer ``adapter`` with this vector (after :meth:`check_compatible`); kwargs go to ``hooks.steer``.

        ``layers``: where to steer; default: the vector's functional layers if it has
        them (from localization), else every layer it has a vector for. ``use_renorm``:
        ReNorm (Eq. 3); default: :attr:`renorm`, the setting its alpha range was validated
        with, else on.
        """
        self.check_compatible(adapter)
        if layers is not None:
            chosen = list(layers)
        elif self.strategy and self.strategy["name"] == "one-to-all":
            chosen = [layer.index for layer in adapter.layers]   # one direction into every layer
        else:
            chosen = self.default_layers()
        with steer(adapter, self.injected(chosen), alpha=alpha, layers=chosen,
                   use_renorm=self.default_renorm() if use_renorm is None else use_renorm, **kwargs):
            yield

    def default_renorm(self) -> bool:
        """Whether :meth:`apply` uses ReNorm unless told: the recorded setting, else on (the paper's)."""
        return True if self.renorm is None else self.renorm

    def config(self) -> dict[str, Any]:
        return {
            "kind": VECTOR_KIND, "format_version": FORMAT_VERSION, "concept": self.concept, "method": self.method,
            "base_model": self.model, "base_model_revision": self.model_revision,
            "layers": [{"index": layer, "path": self.layer_paths[layer], "width": self.widths()[layer],
                        "shape": list(self.vectors[layer].shape)} for layer in self.layers],
            "prompts": self.prompts, "prompts_sha256": prompts_sha256(self.prompts),
            "alpha_range": list(self.alpha_range) if self.alpha_range else None, "renorm": self.renorm,
            "strategy": self.strategy,
            "functional_layers": self.functional_layers,
            "command": self.command, "tada_version": self.tada_version, "extra": self.extra,
        }

    def save(self, folder: str | Path, *, card: bool = True) -> Path:
        """Write the folder (safetensors + config.json + README.md model card); returns its path.

        Provenance is what this object carries (``command``: the command line that made it, set by the caller;
        the ``tada`` command sets its own), never read from the running process."""
        if self.alpha_range is not None and (len(self.alpha_range) != 2 or not all(
                math.isfinite(float(a)) for a in self.alpha_range)):
            raise TadaError(f"alpha_range must be two finite numbers (min, max); got {self.alpha_range!r}")
        if self.tada_version is None:
            self.tada_version = __version__
        folder = Path(folder)
        # one metadata key: safetensors writes metadata in hash order, and files should be byte-reproducible
        save_tensors(folder / VECTOR_FILE, {f"layers.{layer}": self.vectors[layer] for layer in self.layers},
                     metadata={"kind": VECTOR_KIND})
        write_json(folder / CONFIG_FILE, self.config())
        if card:
            # the card's snippet loads this folder by the path it was saved under (relative paths only)
            where = str(folder) if not folder.is_absolute() else folder.name
            atomic_write_text(folder / CARD_FILE, model_card(self.config(), folder.name, where))
        return folder

    @classmethod
    def load(cls, source: str | Path, revision: str | None = None) -> "SteeringVector":
        """:func:`load_vector`."""
        return load_vector(source, revision)


STRATEGIES = ("all-to-all", "one-to-all")
# every field of config.json (SteeringVector.config); load_vector refuses any other
CONFIG_KEYS = frozenset({"kind", "format_version", "concept", "method", "base_model", "base_model_revision", "layers",
                         "prompts", "prompts_sha256", "alpha_range", "renorm", "strategy", "functional_layers",
                         "command", "tada_version", "extra"})


def _check_strategy(strategy: Any, layers: set[int]) -> dict[str, Any]:
    if not isinstance(strategy, Mapping) or strategy.get("name") not in STRATEGIES:
        raise TadaError(f"strategy must be {{'name': one of {', '.join(STRATEGIES)}, ...}}; got {strategy!r}")
    out = {"name": strategy["name"]}
    if strategy["name"] == "one-to-all":
        source = strategy.get("source_layer")
        if isinstance(source, bool) or not isinstance(source, int) or source not in layers:
            raise TadaError(f"the one-to-all strategy needs a source_layer among the vector's layers {sorted(layers)}; "
                            f"got {source!r}")
        out["source_layer"] = source
    return out


def card_snippet(config: Mapping[str, Any], repo: str) -> str:
    """The usage snippet of a vector's model card: it runs as written (tested) once ``repo`` is reachable."""
    alpha = config.get("alpha_range")
    top = max(abs(float(a)) for a in alpha) if alpha else 1.0
    return (f"from tada_core import load_model, load_vector\n\n"
            f"vector = load_vector({repo!r})   # this folder, or its Hub repo id\n"
            f"model = load_model(vector.model)\n"
            f"with vector.apply(model, alpha=[0.0, {top:g}]):   # original and steered, one batch\n"
            f"    pair = model.generate([\"a pop song\"] * 2, seeds=[0, 0])\n")


def model_card(config: Mapping[str, Any], name: str, source: str | None = None) -> str:
    """A Hub model card for a steering-vector folder: YAML front matter, what it is, a usage snippet.

    ``source``: what the snippet loads (the folder's path, or its Hub repo id; default ``name``).
    """
    base = config["base_model"]
    layers = ", ".join(str(layer["index"]) for layer in config["layers"])
    alpha = config.get("alpha_range")
    front = ["---", f"library_name: {LIBRARY}", "license: apache-2.0",
             "tags:", "- tada", "- steering-vector", f"- {config['method']}", "- text-to-audio"]
    if "/" in base:
        front.append(f"base_model: {base}")
    front.append("---")
    functional = config.get("functional_layers")
    lines = [
        f"# {name}: {config['concept']} steering vector ({config['method'].upper()})", "",
        f"A steering vector for the concept **{config['concept']}** on `{base}`, made with the `{LIBRARY}` Python "
        f"package (`pip install {LIBRARY}`), which implements TADA (Staniszewski et al., 2026: localized activation "
        f"steering of audio diffusion models). It holds a vector `v` for cross-attention layers {layers} (0-based "
        f"module indices; the papers count from 1); steering adds `alpha * v` to those layers' outputs.",
    ]
    if functional:
        lines.append(f"By default it steers its functional layers {functional} (found by localization).")
    strategy = config.get("strategy")
    if strategy and strategy.get("name") == "one-to-all":
        lines.append(f"Injected with the One-to-All strategy (Facchiano et al. 2025): layer "
                     f"{strategy['source_layer']}'s direction is added to every layer.")
    elif strategy:
        lines.append("Injected with the All-to-All strategy (Facchiano et al. 2025): each layer gets its own direction.")
    recipe = (config.get("extra") or {}).get("recipe") if config["method"] == "combined" else None
    if recipe:
        parts = [f"{r['weight']:g} x {r.get('concept')}" + (f" (`{r['source']}`)" if r.get("source") else "")
                 for r in recipe]
        lines.append(f"A weighted sum of saved steering vectors (`tada vector combine`): {', '.join(parts)}. At "
                     f"alpha 1 it adds what steering with all of them at those weights adds. The recipe, with each "
                     f"source's SHA-256, is in `config.json` under `extra.recipe`.")
    if alpha:
        renorm = config.get("renorm")
        how = " without ReNorm" if renorm is False else " with ReNorm (Eq. 3)"
        if recipe:
            lines.append(f"For alpha in [{alpha[0]:g}, {alpha[1]:g}] every source's strength (alpha x weight) stays "
                         f"within the range it was validated over{how}, which `apply` uses by default; the "
                         f"combination itself has not been validated.")
        else:
            lines.append(f"Validated for alpha in [{alpha[0]:g}, {alpha[1]:g}]{how}, which `apply` uses by default.")
    lines += ["", "```python", card_snippet(config, source or name).rstrip(), "```", "",
              (f"Made by: `{config['command']}`" if config.get("command") else "Made with the Python API")
              + f" (tada {config.get('tada_version') or '?'}).",
              "Files: `steering.safetensors` (key `layers.<index>`), `config.json` (model, layer paths",
              "and widths, prompts or their SHA-256, alpha range). No pickles."]
    return "\n".join(front) + "\n\n" + "\n".join(lines) + "\n"


def load_vector(source: str | Path, revision: str | None = None) -> SteeringVector:
    """Load and validate a steering-vector folder or Hub repo id (``org/name``, optional revision)."""
    folder = resolve(source, revision, allow_patterns=[CONFIG_FILE, VECTOR_FILE, CARD_FILE])
    config = read_json(folder / CONFIG_FILE)
    if not isinstance(config, dict) or config.get("kind") != VECTOR_KIND:
        raise TadaError(f"{Path(str(source)).name}/{CONFIG_FILE} is not a {VECTOR_KIND} config")
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise TadaError(f"{Path(str(source)).name}/{CONFIG_FILE} has fields this tada does not know: "
                        f"{', '.join(unknown)} (known: {', '.join(sorted(CONFIG_KEYS))}); was it written by a newer "
                        f"tada? Upgrade {LIBRARY}, or move extra information under \"extra\"")
    version = config.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise TadaError(f"{CONFIG_FILE}: format_version must be an integer; got {version!r}")
    if version > FORMAT_VERSION:
        raise TadaError(f"{source} uses format version {version}; this tada reads up to {FORMAT_VERSION}: "
                        f"upgrade {LIBRARY}")
    tensors = read_tensors(folder / VECTOR_FILE)
    vectors, paths = {}, {}
    entries = config.get("layers")
    if not isinstance(entries, list) or not entries:
        raise TadaError(f"{CONFIG_FILE}: 'layers' must be a non-empty list of {{index, path, width, shape}}")
    for entry in entries:
        if not isinstance(entry, dict) or not {"index", "path", "width", "shape"} <= set(entry):
            raise TadaError(f"{CONFIG_FILE}: every layer needs index, path, width and shape; got {entry!r}")
        key = f"layers.{entry['index']}"
        if key not in tensors:
            raise TadaError(f"{VECTOR_FILE} lacks {key!r}, which {CONFIG_FILE} lists")
        if list(tensors[key].shape) != list(entry["shape"]) or tensors[key].shape[-1] != entry["width"]:
            raise TadaError(f"{key} has shape {list(tensors[key].shape)}; {CONFIG_FILE} says {entry['shape']}")
        vectors[int(entry["index"])] = tensors[key]
        paths[int(entry["index"])] = entry["path"]
    extra_keys = sorted(set(tensors) - {f"layers.{i}" for i in vectors})
    if extra_keys:
        raise TadaError(f"{VECTOR_FILE} has tensors {CONFIG_FILE} does not list: {extra_keys}")
    if config.get("prompts") is not None and config.get("prompts_sha256") != prompts_sha256(config["prompts"]):
        raise TadaError(f"{CONFIG_FILE}: prompts do not match prompts_sha256 (edited by hand?)")
    alpha = config.get("alpha_range")
    if alpha is not None:
        if (not isinstance(alpha, list) or len(alpha) != 2
                or not all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a)
                           for a in alpha)):
            raise TadaError(f"{CONFIG_FILE}: alpha_range must be two finite numbers [min, max]; got {alpha!r}")
    return SteeringVector(vectors=vectors, concept=str(config.get("concept")), model=str(config.get("base_model")),
                          layer_paths=paths, method=config.get("method", "caa"),
                          model_revision=config.get("base_model_revision"), prompts=config.get("prompts"),
                          alpha_range=tuple(alpha) if alpha else None, command=config.get("command"),
                          tada_version=config.get("tada_version"), extra=config.get("extra") or {},
                          functional_layers=config.get("functional_layers"), renorm=config.get("renorm"),
                          strategy=config.get("strategy"))


__all__ = ["SteeringVector", "load_vector", "model_card", "card_snippet", "prompts_sha256", "VECTOR_FILE",
           "CONFIG_FILE", "CARD_FILE", "VECTOR_KIND", "FORMAT_VERSION"]
