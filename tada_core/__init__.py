"""TADA: localize, record, patch and steer the cross-attention layers of text-to-music diffusion models.

The public surface::

    from tada_core import load_model, record, patch, steer

    model = load_model("tiny-ace-step")          # or "ace-step", a folder, a Hub repo id
    with steer(model, vector, alpha=[0.0, 8.0], layers=[6, 7]):
        pair = model.generate(["fast techno"] * 2, seeds=[0, 0])   # original and steered

Layer indices are 0-based module indices; the papers count from 1.
"""

from .adapters import DEFAULT_MODEL, FAMILIES, Generation, ModelAdapter, load_model, model_catalog, model_names
from .audio import save_wav
from .errors import TadaError
from .hooks import Recording, patch, record, renorm, steer

__version__ = "0.1.0"

__all__ = ["load_model", "model_names", "model_catalog", "ModelAdapter", "Generation", "FAMILIES",
           "DEFAULT_MODEL", "record", "patch", "steer", "renorm", "Recording", "save_wav", "TadaError",
           "__version__"]
