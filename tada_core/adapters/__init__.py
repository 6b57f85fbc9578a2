"""Model families: one adapter per pipeline class (diffusers; MusicGen through transformers), each owning its quirks.

Load a model with :func:`tada_core.load_model` (the registry in :mod:`tada_core.registry`
knows names, checkpoints and defaults); this package only knows pipelines.
"""

from __future__ import annotations

from tada_core.adapters.ace_step import AceStepAdapter
from tada_core.adapters.audioldm2 import AudioLDM2Adapter
from tada_core.adapters.base import (
    Conditioning,
    CrossAttentionLayer,
    Generation,
    ModelAdapter,
    Run,
    hook_handles,
)
from tada_core.adapters.musicgen import MusicGenAdapter
from tada_core.adapters.stable_audio import StableAudioAdapter

FAMILIES: dict[str, type[ModelAdapter]] = {
    cls.family: cls for cls in (AceStepAdapter, StableAudioAdapter, AudioLDM2Adapter, MusicGenAdapter)
}


def family_of_pipeline(class_name: str) -> type[ModelAdapter] | None:
    """The adapter class for a diffusers pipeline class name (or a transformers model class name), or None."""
    return next((cls for cls in FAMILIES.values() if cls.pipeline_class_name == class_name
                 or class_name in getattr(cls, "model_class_names", ())), None)


__all__ = ["FAMILIES", "ModelAdapter", "CrossAttentionLayer", "Generation", "Run", "Conditioning", "hook_handles",
           "AceStepAdapter", "StableAudioAdapter", "AudioLDM2Adapter", "MusicGenAdapter", "family_of_pipeline"]
