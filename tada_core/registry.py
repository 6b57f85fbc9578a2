"""Every model tada can load by name, and :func:`load_model`, the one way to load any of them.

Built-in entries (:class:`~tada_core.adapters.entry.ModelEntry`): the organisms' (:mod:`tada_core.organism.entry`)
and every family's (``ENTRIES`` in each module of :mod:`tada_core.adapters`, listed there); ``tada models``
prints them with their measured layer counts.

``load_model`` also takes a local diffusers pipeline folder or a Hub repo id; the family
comes from its ``model_index.json`` and it gets the paper's concepts, no built-in scorer
and no presets. Layer counts shown by :func:`model_catalog` are measured by building
each denoiser from its real config on the meta device, never copied from a paper.
"""

from __future__ import annotations

import os
import types
from pathlib import Path
from typing import Any, Mapping

import torch
from huggingface_hub import hf_hub_download

from tada_core.adapters import ENTRIES as FAMILY_ENTRIES
from tada_core.adapters import FAMILIES, ModelAdapter, family_of_pipeline
from tada_core.adapters.entry import SAMPLING_FILE, ModelEntry
from tada_core.concepts import PAPER_CONCEPT_SET
from tada_core.errors import TadaError, hub_errors
from tada_core.organism.entry import ENTRIES as ORGANISM_ENTRIES
from tada_core.runtime.io import is_repo_id, read_json

# the organisms first (the default model), then every family's checkpoints, then the tiny test fixtures
_ENTRIES = (*ORGANISM_ENTRIES, *(e for e in FAMILY_ENTRIES if e.listed), *(e for e in FAMILY_ENTRIES if not e.listed))
REGISTRY: Mapping[str, ModelEntry] = types.MappingProxyType({e.name: e for e in _ENTRIES})
DEFAULT_MODEL = ORGANISM_ENTRIES[0].name


def model_names(listed_only: bool = False) -> list[str]:
    """Every name ``load_model`` accepts besides folders and repo ids (``listed_only``: no test fixtures)."""
    return [name for name, e in REGISTRY.items() if e.listed or not listed_only]


def get_entry(name: str) -> ModelEntry:
    if name not in REGISTRY:
        raise TadaError(f"unknown model {name!r}; accepted: {', '.join(REGISTRY)}, a local pipeline folder, or a "
                        f"Hub repo id like org/name")
    return REGISTRY[name]


def family_entry(adapter: type[ModelAdapter], name: str, source: str) -> ModelEntry:
    """The entry of a pipeline folder or repo id outside the registry: the paper's concepts, nothing else."""
    if os.path.isdir(source):
        return ModelEntry(name, adapter, PAPER_CONCEPT_SET, folder=lambda: source,
                          denoiser_config=lambda: Path(source) / adapter.denoiser_attr / "config.json")
    return ModelEntry(name, adapter, PAPER_CONCEPT_SET, hub_id=source)


def entry_for(model: ModelAdapter) -> ModelEntry:
    """The registry entry ``model`` was loaded through (a family entry for adapters built by hand)."""
    entry = getattr(model, "entry", None)
    return entry if entry is not None else family_entry(type(model), model.name, model.source)


def _model_index(model: str, revision: str | None) -> dict[str, Any]:
    if os.path.isdir(model):
        path = os.path.join(model, "model_index.json")
        config = os.path.join(model, "config.json")
        if not os.path.isfile(path) and os.path.isfile(config):   # a transformers model (MusicGen)
            return {"_class_name": (read_json(config).get("architectures") or ["?"])[0]}
        if not os.path.isfile(path):
            raise TadaError(f"{model!r} is a folder but has no model_index.json; is it a diffusers pipeline folder?")
        return read_json(path)

    with hub_errors(model, revision, missing_file="model_index.json: it is not a diffusers pipeline",
                    offline_hint="download it on a connected machine, or pass a local pipeline folder"):
        return read_json(hf_hub_download(model, "model_index.json", revision=revision))


def _entry_of_source(model: str, revision: str | None) -> ModelEntry:
    if model in REGISTRY:
        return REGISTRY[model]
    if not (os.path.isdir(model) or is_repo_id(model)):
        get_entry(model)  # raises: unknown model, with the accepted names
    class_name = _model_index(model, revision).get("_class_name", "?")
    adapter = family_of_pipeline(class_name)
    if adapter is None:
        accepted = ", ".join(c.pipeline_class_name for c in FAMILIES.values())
        raise TadaError(f"{model} holds a {class_name!r}; supported pipelines: {accepted}")
    return family_entry(adapter, model, model)


DEVICE_MAPS = ("balanced",)     # diffusers' pipeline-level placement (transformers' "auto" for MusicGen)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def as_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """A torch dtype from its name; None stays None."""
    if dtype is None or isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise TadaError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")


def load_model(model: str | ModelEntry = DEFAULT_MODEL, *, device: str | torch.device | None = None,
               dtype: torch.dtype | str | None = None, revision: str | None = None,
               device_map: str | None = None) -> ModelAdapter:
    """Load a model as a :class:`~tada_core.adapters.ModelAdapter`.

    ``model``: a registry name (``tada-organism``, ``ace-step``, ``stable-audio``,
    ``audioldm2``, ``audioldm2-large``, ``tiny-*``; see ``tada models``), a local diffusers
    pipeline folder, a Hub repo id (``org/name``), or a :class:`ModelEntry` of your own.
    ``device`` defaults to CUDA when available. ``dtype`` (a torch dtype or "float32", "bfloat16",
    "float16"): default float32 on CPU, the family's ``gpu_dtype`` on a GPU (bfloat16 for ACE-Step,
    else as saved). Recorded activations and computed vectors are float32 whatever it is.
    ``device_map="balanced"``: the pipeline's components spread over the visible GPUs by the
    library's own placement (diffusers' pipeline-level device map; transformers' "auto" for
    MusicGen), for checkpoints too large for one GPU; ``device`` is then not used.
    Weights load with ``from_pretrained`` only (safetensors, no remote code, no pickles).
    """
    if not isinstance(model, ModelEntry) and (not isinstance(model, str) or not model.strip()):
        raise TadaError(f"model must be a name, folder or Hub repo id; got {model!r}")
    entry = model if isinstance(model, ModelEntry) else _entry_of_source(model, revision)
    if device_map is not None:
        if device_map not in DEVICE_MAPS:
            raise TadaError(f"device_map must be one of {', '.join(DEVICE_MAPS)}; got {device_map!r}")
        if not torch.cuda.is_available():
            raise TadaError(f"device_map {device_map!r} spreads a model over GPUs and this machine has none; "
                            f"leave it out (the model runs on the CPU)")
        if entry.build is not None:
            raise TadaError(f"{entry.name} is built in code and small; device_map is for checkpoints loaded with "
                            f"from_pretrained")
        device = "cuda"
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = as_dtype(dtype)
    if dtype is None and torch.device(device).type == "cpu":
        dtype = torch.float32  # weights saved in half precision would otherwise stay half: too slow on CPU
    elif dtype is None:
        dtype = entry.adapter.gpu_dtype   # the family's default on a GPU (bfloat16 for ACE-Step XL)
    defaults = dict(entry.defaults or {})
    if entry.build is not None:
        pipeline = entry.build()  # built in float32
        if dtype is not None and dtype != torch.float32:
            pipeline.to(dtype=dtype)
    else:
        source = entry.hub_id or entry.folder()
        if entry.folder is not None and not any(os.path.isfile(os.path.join(source, f))
                                                for f in ("model_index.json", "config.json")):
            raise TadaError(f"{entry.name}: no pipeline in {source!r} (model_index.json is missing)")
        try:
            with hub_errors(source, revision, offline_hint="download it on a connected machine, or pass a local "
                                                           "pipeline folder"):
                pipeline = entry.adapter.load_pipeline(source, dtype=dtype, revision=revision,
                                                       **({"device_map": device_map} if device_map else {}))
        except OSError as e:
            raise TadaError(f"cannot load {entry.adapter.family} pipeline from {source!r}: "
                            f"{str(e).splitlines()[0]}") from None
        if os.path.isdir(source) and os.path.isfile(os.path.join(source, SAMPLING_FILE)):
            defaults.update(read_json(os.path.join(source, SAMPLING_FILE)))
    adapter = entry.adapter(pipeline, name=entry.name, source=entry.source, defaults=defaults)
    adapter.entry = entry
    return adapter if device_map is not None else adapter.to(device)


def measured_layers(entry: ModelEntry) -> list[tuple[int, str, int]] | None:
    """(index, module path, width) of every cross-attention layer, measured without weights; None if no
    config is at hand.

    Built-in-code entries are built; the others' denoiser is built from its config on the meta device.
    """
    if entry.build is not None:
        return [(layer.index, layer.path, layer.width) for layer in entry.adapter.find_layers(entry.build())]
    path = entry.denoiser_config() if entry.denoiser_config else None
    if path is None or not Path(path).is_file():
        return None
    return [(layer.index, layer.path, layer.width) for layer in entry.adapter.meta_layers(path)]


def _widths(layers: list[tuple[int, str, int]]) -> str:
    out: list[list[int]] = []  # runs of equal width: [width, count]
    for _, _, w in layers:
        if out and out[-1][0] == w:
            out[-1][1] += 1
        else:
            out.append([w, 1])
    return ", ".join(f"{n} x {w}" for w, n in out)


def model_catalog() -> list[dict[str, Any]]:
    """One row per registry entry: family, source, measured layer count and widths, CFG batch, presets."""
    rows = []
    for entry in REGISTRY.values():
        layers = measured_layers(entry)
        rows.append({
            "name": entry.name, "family": entry.adapter.family, "source": entry.source,
            "layers": str(len(layers)) if layers else "? (no config here)",
            "widths": _widths(layers) if layers else "?",
            "cfg_batch": entry.adapter.cfg_batch(),
            "presets": "; ".join(p.describe() for p in entry.presets) or "-",
            "scorer": entry.scorer_name or "-", "notes": entry.notes, "listed": entry.listed,
        })
    return rows


__all__ = ["REGISTRY", "DEFAULT_MODEL", "DEVICE_MAPS", "DTYPES", "as_dtype", "load_model", "model_names", "model_catalog", "get_entry", "entry_for",
           "family_entry", "measured_layers"]
