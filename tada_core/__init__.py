"""TADA: localize, record, patch and steer the cross-attention layers of text-to-music diffusion models.

The public surface::

    from tada_core import load_model, load_vector, steer

    model = load_model()                                  # the shipped organism; or "ace-step", a folder, ...
    vector = load_vector("vectors/tada-organism-tempo-caa")
    with vector.apply(model, alpha=[0.0, 1.0]):           # original and steered, one batch
        pair = model.generate(["a waltz"] * 2, seeds=[0, 0])

Layer indices are 0-based module indices; the papers count from 1.
"""

from tada_core.adapters import FAMILIES, Generation, ModelAdapter
from tada_core.audio import save_wav
from tada_core.concepts import Concept, ConceptSet
from tada_core.errors import TadaError
from tada_core.interventions.hooks import Recording, patch, record, renorm, steer
from tada_core.registry import DEFAULT_MODEL, REGISTRY, load_model, model_catalog, model_names
from tada_core.adapters.settings import GenerationSettings
from tada_core.artifacts.vectors import SteeringVector, load_vector

__version__ = "0.1.0"

__all__ = ["load_model", "model_names", "model_catalog", "REGISTRY", "DEFAULT_MODEL", "ModelAdapter", "Generation",
           "FAMILIES", "GenerationSettings", "Concept", "ConceptSet", "record", "patch", "steer", "renorm",
           "Recording", "SteeringVector", "load_vector", "save_wav", "TadaError", "__version__"]
