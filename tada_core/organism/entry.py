"""The organism's registry entry: the shipped checkpoint, its concepts, its built-in scorer."""

from __future__ import annotations

from pathlib import Path

from ..adapters import StableAudioAdapter
from ..entry import ModelEntry
from .concepts import ORGANISM_CONCEPT_SET
from .model import NAME, checkpoint_path


def _scorer(folder: str | None = None):
    from .scorer import OrganismScorer

    return OrganismScorer(folder)


ENTRY = ModelEntry(
    name=NAME, adapter=StableAudioAdapter, concepts=ORGANISM_CONCEPT_SET,
    description="the model organism trained here on synthetic music (tada_core/organism), offline, CPU",
    folder=checkpoint_path, scorer_name="organism", make_scorer=_scorer,
    denoiser_config=lambda: Path(checkpoint_path()) / "transformer" / "config.json",
    notes="functional layers: see results/organism_localization (found by `tada localize`)",
)

__all__ = ["ENTRY"]
