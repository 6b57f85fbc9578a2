"""The organism's registry entry: the shipped checkpoint, its concepts, its built-in scorer."""

from __future__ import annotations

from pathlib import Path

from tada_core.adapters import MusicGenAdapter, StableAudioAdapter
from tada_core.adapters.entry import ModelEntry
from tada_core.organism.codec import encode_clip
from tada_core.organism.concepts import ORGANISM_CONCEPT_SET
from tada_core.organism.model import NAME, checkpoint_path
from tada_core.organism.musicgen_model import MUSICGEN_NAME, musicgen_checkpoint_path
from tada_core.organism.panel import build as build_panel
from tada_core.organism.scorer import OrganismScorer


def _scorer(folder: str | None = None):
    return OrganismScorer(folder)


ENTRY = ModelEntry(
    name=NAME, adapter=StableAudioAdapter, concepts=ORGANISM_CONCEPT_SET,
    description="the model organism trained here on synthetic music (tada_core/organism), offline, CPU",
    folder=checkpoint_path, scorer_name="organism", make_scorer=_scorer, make_panel=build_panel,
    denoiser_config=lambda: Path(checkpoint_path()) / "transformer" / "config.json",
    notes="functional layers: see results/organism_localization (found by `tada localize`)",
    encode_audio=encode_clip,
)

MUSICGEN_ENTRY = ModelEntry(
    name=MUSICGEN_NAME, adapter=MusicGenAdapter, concepts=ORGANISM_CONCEPT_SET,
    description="the autoregressive model organism (a MusicgenMelody trained here on the same synthetic music), "
                "offline, CPU",
    folder=musicgen_checkpoint_path, scorer_name="organism", make_scorer=_scorer, make_panel=build_panel,
    denoiser_config=lambda: Path(musicgen_checkpoint_path()) / "config.json",
    notes="residual-stream layers, steered with DiffMean (`tada diffmean`); see results/musicgen_organism",
)

ENTRIES = (ENTRY, MUSICGEN_ENTRY)

__all__ = ["ENTRY", "MUSICGEN_ENTRY", "ENTRIES"]
