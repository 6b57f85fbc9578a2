"""The organism's built-in scorer: its descriptors and classifiers as a :class:`~tada_core.scoring.Scorer`.

For each concept, the measure that agrees best with the generator's ground truth
(``results/organism_scorer.md``): a weight-free descriptor with a unit (onset rate in
beats per second, spectral centroid in Hz, share of power in the low-voice band) or a
classifier's probability. It measures the organism's synthetic music and nothing else:
the registry offers it only for ``tada-organism``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..concepts import Concept
from ..errors import TadaError
from ..scoring import Scorer, mono
from . import synth
from .descriptors import SIGNS, DescriptorClassifier, descriptors

# concept -> ("descriptor", descriptor name) or ("classifier", head)
SOURCES: dict[str, tuple[str, str]] = {
    "tempo": ("descriptor", "onset_rate"), "brightness": ("descriptor", "centroid"),
    "vocal_gender": ("descriptor", "low_voice"), "mood": ("classifier", "mood"),
    "drums": ("classifier", "drums"), "piano": ("classifier", "instrument"),
    "flute": ("classifier", "instrument"), "violin": ("classifier", "instrument"),
    "trumpet": ("classifier", "instrument"),
}


class OrganismScorer(Scorer):
    """Descriptor or classifier per concept, read from the checkpoint's ``scorer.json`` + ``scorer.safetensors``.

    ``measure`` is the raw value (``onset_rate`` in beats per second, ``centroid`` in Hz,
    ``P(drums)``, ...); ``similarity`` is that value signed so that larger means more of
    the concept's positive side.
    """

    name = "organism"

    def __init__(self, folder: str | Path | None = None):
        from .model import checkpoint_path

        self.weights = DescriptorClassifier.load(folder or checkpoint_path())

    def check(self, concept: Concept) -> None:
        if concept.name not in SOURCES:
            raise TadaError(f"the organism scorer knows concepts {', '.join(SOURCES)}; got {concept.name!r}")

    def label(self, concept: Concept) -> str:
        self.check(concept)
        kind, key = SOURCES[concept.name]
        return key if kind == "descriptor" else f"P({concept.name})"

    def measure(self, audio: torch.Tensor | np.ndarray, sample_rate: int, concept: Concept) -> np.ndarray:
        self.check(concept)
        kind, key = SOURCES[concept.name]
        x = mono(audio)
        d = descriptors(x, sample_rate)
        if kind == "descriptor":
            return np.asarray(d[key], dtype=np.float64)
        probs = self.weights.classifier_probs(x, sample_rate, d)
        if key == "instrument":
            return probs["instrument"][:, synth.INSTRUMENTS.index(concept.name)].astype(np.float64)
        return probs[key].astype(np.float64)

    def sign(self, concept: Concept) -> int:
        self.check(concept)
        kind, _ = SOURCES[concept.name]
        return SIGNS[concept.name] if kind == "descriptor" else 1


__all__ = ["OrganismScorer", "SOURCES"]
