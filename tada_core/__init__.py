"""TADA: localize, record, patch and steer the cross-attention layers of text-to-music diffusion models.

The public surface::

    from tada_core import load_model, load_vector, steer

    model = load_model()                                  # the shipped organism; or "ace-step", a folder, ...
    vector = load_vector("vectors/tada-organism-tempo-caa")
    with vector.apply(model, alpha=[0.0, 1.0]):           # original and steered, one batch
        pair = model.generate(["a waltz"] * 2, seeds=[0, 0])

Layer indices are 0-based module indices; the papers count from 1.

The packages follow the flow of the work, each depending only on those above it:

==================== ====================================================================================
``runtime``          safe file I/O, resumable jobs, multi-process splitting, logging
``adapters``         one adapter per model family (every family quirk lives here), generation settings,
                     registry entries, the tiny fixtures
``interventions``    ``record`` / ``patch`` / ``steer`` / ``steer_sum`` hooks, the activation cache
``artifacts``        steering vectors and SAEs on disk and on the Hub; composing and combining vectors;
                     the reference code's files
``evaluation``       scorers, metrics, statistics, alpha sweeps, the Sec. 5.1 benchmark, plots
``methods``          localization (Eq. 9), CAA (Eq. 2), SAE training and concept features (Eq. 4-8), DiffMean
``organism``         the model organisms trained here on synthetic music with known concepts
``registry``         every model by name, and ``load_model``
``cli``              the ``tada`` command
==================== ====================================================================================
"""

from tada_core.adapters import FAMILIES, Generation, ModelAdapter
from tada_core.adapters.settings import GenerationSettings
from tada_core.artifacts.compose import combine, compose
from tada_core.artifacts.sae import TopKSAE
from tada_core.artifacts.vectors import SteeringVector, load_vector
from tada_core.audio import save_wav
from tada_core.concepts import Concept, ConceptSet
from tada_core.errors import TadaError
from tada_core.evaluation.sweeps import alpha_sweep
from tada_core.interventions.hooks import Recording, patch, record, renorm, steer, steer_sum
from tada_core.methods.caa import compute_caa
from tada_core.methods.localize import Localization, functional_layers, localize
from tada_core.registry import DEFAULT_MODEL, REGISTRY, load_model, model_catalog, model_names

from tada_core.version import __version__

__all__ = ["load_model", "model_names", "model_catalog", "REGISTRY", "DEFAULT_MODEL", "ModelAdapter", "Generation",
           "FAMILIES", "GenerationSettings", "Concept", "ConceptSet", "record", "patch", "steer", "steer_sum",
           "compose", "combine", "renorm",
           "Recording", "SteeringVector", "load_vector", "TopKSAE", "localize", "Localization", "functional_layers",
           "compute_caa", "alpha_sweep", "save_wav", "TadaError", "__version__"]
