"""Model families and the one entry point that loads any of them: :func:`load_model`.

``load_model`` accepts a family name (loads its public checkpoint from the Hub), a
tiny fixture name (built in code, offline), a local pipeline folder, or a Hub repo
id; for the last two the family is read from the pipeline's ``model_index.json``.
"""

from __future__ import annotations

import json
import os
import types
from typing import Any

import torch

from ..errors import TadaError, hub_errors
from ..fixtures import TINY_MODELS
from .ace_step import AceStepAdapter
from .audioldm2 import AudioLDM2Adapter
from .base import Conditioning, CrossAttentionLayer, Generation, ModelAdapter, Run, hook_handles
from .stable_audio import StableAudioAdapter

FAMILIES: dict[str, type[ModelAdapter]] = {
    cls.family: cls for cls in (AceStepAdapter, StableAudioAdapter, AudioLDM2Adapter)
}
# The model organism trained and shipped in this repo (tada_core/organism): offline, CPU, < 1 s a clip.
ORGANISM = "tada-organism"
ORGANISM_DEFAULTS = {"duration": 4.0, "steps": 20, "guidance": 4.0}
DEFAULT_MODEL = ORGANISM

__all__ = ["FAMILIES", "DEFAULT_MODEL", "ModelAdapter", "CrossAttentionLayer", "Generation", "Run",
           "Conditioning", "hook_handles", "load_model", "model_names", "model_catalog"]


def model_names() -> list[str]:
    """Every name ``load_model`` accepts besides folders and repo ids."""
    return [ORGANISM] + list(FAMILIES) + list(TINY_MODELS)


def _family_of_pipeline(class_name: str, where: str) -> type[ModelAdapter]:
    for cls in FAMILIES.values():
        if cls.pipeline_class_name == class_name:
            return cls
    accepted = ", ".join(c.pipeline_class_name for c in FAMILIES.values())
    raise TadaError(f"{where} holds a {class_name!r}; supported pipelines: {accepted}")


def _read_model_index(model: str, revision: str | None) -> tuple[dict[str, Any], str]:
    if os.path.isdir(model):
        path = os.path.join(model, "model_index.json")
        if not os.path.isfile(path):
            raise TadaError(f"{model!r} is a folder but has no model_index.json; is it a diffusers pipeline folder?")
        with open(path, encoding="utf-8") as f:
            return json.load(f), model
    from huggingface_hub import hf_hub_download

    with hub_errors(model, revision, missing_file="model_index.json: it is not a diffusers pipeline",
                    offline_hint="download it on a connected machine, or pass a local pipeline folder"):
        path = hf_hub_download(model, "model_index.json", revision=revision)
    with open(path, encoding="utf-8") as f:
        return json.load(f), model


def load_model(model: str = DEFAULT_MODEL, *, device: str | torch.device | None = None,
               dtype: torch.dtype | None = None, revision: str | None = None) -> ModelAdapter:
    """Load a model as a :class:`ModelAdapter`.

    ``model`` is a family name (``ace-step``, ``stable-audio``, ``audioldm2``: the public
    checkpoint), a tiny fixture (``tiny-ace-step``, ...), a local diffusers pipeline folder,
    or a Hub repo id (``org/name``). ``device`` defaults to CUDA when available.
    """
    if not isinstance(model, str) or not model.strip():
        raise TadaError(f"model must be a name, folder or Hub repo id; got {model!r}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if model in TINY_MODELS:
        family, build, defaults = TINY_MODELS[model]
        adapter = FAMILIES[family](build(), name=model, source="built in code (tada_core.fixtures)",
                                   defaults=defaults)
        return adapter.to(device)
    if model == ORGANISM:
        return _load_organism(device, dtype)
    if model in FAMILIES:
        cls, source = FAMILIES[model], FAMILIES[model].default_hub_id
    elif os.path.isdir(model) or (model.count("/") == 1 and not model.startswith((".", "/"))):
        index, source = _read_model_index(model, revision)
        cls = _family_of_pipeline(index.get("_class_name", "?"), source)
    else:
        raise TadaError(f"unknown model {model!r}; accepted: {', '.join(model_names())}, "
                        f"a local pipeline folder, or a Hub repo id like org/name")
    import diffusers

    pipeline_cls = getattr(diffusers, cls.pipeline_class_name)
    if dtype is None and torch.device(device).type == "cpu":
        dtype = torch.float32  # weights saved in half precision would otherwise stay half: too slow on CPU
    try:
        pipeline = pipeline_cls.from_pretrained(source, torch_dtype=dtype, revision=revision)
    except OSError as e:
        raise TadaError(f"cannot load {cls.family} pipeline from {source!r}: {e}") from None
    return cls(pipeline, name=model, source=source).to(device)


def _load_organism(device, dtype) -> ModelAdapter:
    from diffusers import StableAudioPipeline

    from ..organism.model import checkpoint_path

    path = checkpoint_path()
    if not os.path.isfile(os.path.join(path, "model_index.json")):
        raise TadaError(f"the organism checkpoint is missing at {path!r}; train it with "
                        f"python -m tada_core.organism.train --out {path}")
    # Learned weights are stored in float16 to stay small; compute in float32 unless asked otherwise.
    pipeline = StableAudioPipeline.from_pretrained(path, torch_dtype=dtype or torch.float32)
    adapter = StableAudioAdapter(pipeline, name=ORGANISM, source=path, defaults=dict(ORGANISM_DEFAULTS))
    return adapter.to(device)


def _cached_layer_count(cls: type[ModelAdapter]) -> int | None:
    """Count layers of a real checkpoint from its cached config, without loading weights."""
    from huggingface_hub import try_to_load_from_cache

    config_path = try_to_load_from_cache(cls.default_hub_id, f"{cls.denoiser_attr}/config.json")
    if not isinstance(config_path, str):
        return None
    import diffusers
    from diffusers.pipelines import audioldm2

    with open(config_path, encoding="utf-8") as f:
        class_name = json.load(f)["_class_name"]
    model_cls = getattr(diffusers, class_name, None) or getattr(audioldm2, class_name)
    with torch.device("meta"):
        denoiser = model_cls.from_config(model_cls.load_config(config_path))
    return len(cls.find_layers(types.SimpleNamespace(**{cls.denoiser_attr: denoiser})))


def _organism_layer_count() -> int | str:
    from ..organism.model import checkpoint_path

    try:
        with open(os.path.join(checkpoint_path(), "transformer", "config.json"), encoding="utf-8") as f:
            return json.load(f)["num_layers"]
    except OSError:
        return "? (checkpoint missing)"


def model_catalog() -> list[dict[str, Any]]:
    """One row per loadable model name: family, source, layer count, CFG batch order."""
    rows = [{"name": ORGANISM, "family": "stable-audio", "source": "shipped in this repo (tada_core/organism)",
             "layers": str(_organism_layer_count()), "cfg_batch": StableAudioAdapter.cfg_batch(),
             "paper_functional": "-"}]
    for family, cls in FAMILIES.items():
        count = _cached_layer_count(cls)
        rows.append({
            "name": family, "family": family, "source": cls.default_hub_id,
            "layers": str(count) if count is not None else f"{cls.paper_layer_count} (paper; not cached here)",
            "cfg_batch": cls.cfg_batch(),
            "paper_functional": ",".join(map(str, cls.paper_functional_layers)),
        })
    for name, (family, build, _) in TINY_MODELS.items():
        cls = FAMILIES[family]
        rows.append({
            "name": name, "family": family, "source": "built in code, offline",
            "layers": str(len(cls.find_layers(build()))),
            "cfg_batch": cls.cfg_batch(),
            "paper_functional": "-",
        })
    return rows
