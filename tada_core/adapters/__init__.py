"""Model families: one adapter per pipeline class (diffusers; MusicGen through transformers), each owning its quirks.

Load a model with :func:`tada_core.load_model` (the registry in :mod:`tada_core.registry`
knows names, checkpoints and defaults); this package only knows pipelines.

The registry entries of the families (``ENTRIES`` of each module) and of the organisms, one per checkpoint:

============== ============================================== ==================================
name           checkpoint                                     functional-layer preset
============== ============================================== ==================================
ace-step       ACE-Step/acestep-v15-xl-turbo-diffusers        none (the paper's {7, 8} are ACE-Step
                                                              v1's, a model diffusers does not ship)
stable-audio   stabilityai/stable-audio-open-1.0              11, 12 (the paper's {12, 13})
audioldm2      cvssp/audioldm2-music (32 cross-attn layers)   none (the paper's layers are -large's)
audioldm2-large cvssp/audioldm2-large (64)                    44, 45, 50, 51 (the paper's {45, 46, 51, 52})
tada-organism  shipped in tada_core/organism/checkpoint       see results/organism_localization
musicgen-organism shipped in tada_core/organism/musicgen_checkpoint see results/musicgen_organism
tiny-*         random-weight pipelines built in code          none (test fixtures)
============== ============================================== ==================================
"""

from __future__ import annotations

from tada_core.adapters.ace_step import AceStepAdapter
from tada_core.adapters.audioldm2 import AudioLDM2Adapter
from tada_core.adapters.base import (
    Conditioning,
    CrossAttentionLayer,
    FamilyOption,
    Generation,
    ModelAdapter,
    Run,
    hook_handles,
)
from tada_core.adapters.musicgen import MusicGenAdapter
from tada_core.adapters.stable_audio import StableAudioAdapter

from tada_core.adapters import ace_step, audioldm2, musicgen, stable_audio

# Adding a family: its module (adapter class, tiny fixture, ENTRIES) and one line in each of these two.
FAMILIES: dict[str, type[ModelAdapter]] = {
    cls.family: cls for cls in (AceStepAdapter, StableAudioAdapter, AudioLDM2Adapter, MusicGenAdapter)
}
ENTRIES = (*ace_step.ENTRIES, *stable_audio.ENTRIES, *audioldm2.ENTRIES, *musicgen.ENTRIES)  # registry entries


def family_of_pipeline(class_name: str) -> type[ModelAdapter] | None:
    """The adapter class for a diffusers pipeline class name (or a transformers model class name), or None."""
    return next((cls for cls in FAMILIES.values() if cls.pipeline_class_name == class_name
                 or class_name in getattr(cls, "model_class_names", ())), None)


__all__ = ["FAMILIES", "ENTRIES", "FamilyOption", "ModelAdapter", "CrossAttentionLayer", "Generation", "Run", "Conditioning", "hook_handles",
           "AceStepAdapter", "StableAudioAdapter", "AudioLDM2Adapter", "MusicGenAdapter", "family_of_pipeline"]
