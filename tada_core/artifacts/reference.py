"""Artifacts written by the TADA reference code (``luk-st/steer-audio``), read exactly.

**CAA vectors** (``compute_sv_caa``: ``sv.pkl`` with ``config.json`` beside it). What the
reference writes, and how each part is read here:

* outer keys: ``(step, cfg_pass)`` tuples with its default ``save_all_cfg_passes=True``
  (pass 0 = conditional, the last pass = unconditional; with ACE-Step's double guidance
  there are 3 passes and pass 1 is text-only), or integer steps with ``False`` (the
  conditional pass only). :func:`import_steer_audio` takes one pass (``cfg_pass``,
  default the conditional one, which the reference's default ``cond_only`` mode steers);
* one step only (turbo, or a one-step file): that vector at every step (saved ``[width]``);
  more steps: one vector per step (``[steps, width]``), and generation must use as many
  steps, as in the reference, which looks vectors up by step;
* inner mapping: a ``collections.defaultdict(list)`` (ACE-Step) or a dict of
  layer key -> ``[float32 unit vector]``, one entry per call of that layer in the pass;
* layer keys: ``tf<N>`` = ACE-Step v1's ``transformer_blocks[N]`` counted from 0 (the
  paper's layers {7, 8} are ``tf6``, ``tf7``); Stable Audio and AudioLDM2 key layers by
  module path with a leading dot (``.transformer.transformer_blocks.11.attn2``,
  ``.unet.up_blocks.1.attentions.5.transformer_blocks.0.attn2``), which are this project's
  layer paths of the same checkpoints.

The reference's ACE-Step is **v1** (3.5B, ``transformer_blocks[i].cross_attn``, 24 layers of
width 2560); this project's ``ace-step`` is ACE-Step 1.5, another model. A ``tf<N>`` file
is therefore imported as a vector of ``ACE-Step/ACE-Step-v1-3.5B``, and applying it to any
model this project loads is refused (:meth:`SteeringVector.check_compatible` says why).

The pickle is read by a restricted unpickler that admits exactly the globals these files
reference (numpy's array reconstruction, ``collections.defaultdict``, ``builtins.list``,
``collections.OrderedDict``); anything else (code execution, torch tensors) is refused
before it is constructed.

**SAEs** (``train_ace.py``): sparsify's folder layout with the reference's ``cfg.json``
fields; read by :class:`tada_core.artifacts.sae.TopKSAE` (see :mod:`tada_core.methods.sae`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import torch
import numpy as np
import pickle

from tada_core.adapters import FAMILIES
from tada_core.adapters.ace_step import ACE_STEP_V1
from tada_core.adapters.entry import ReferenceModel
from tada_core.errors import TadaError
from tada_core.runtime.io import read_json
from tada_core.artifacts.vectors import SteeringVector
from tada_core.registry import REGISTRY, load_model, measured_layers

SOURCE = "luk-st/steer-audio"


# model names accepted for the ACE-Step v1 files, and the registry entry each path prefix defaults to
_V1_NAMES = {"ace-step-v1", ACE_STEP_V1.hub_id}
_PATH_DEFAULTS = {cls.denoiser_attr + ".": cls.steer_audio_entry for cls in FAMILIES.values() if cls.steer_audio_entry}
_TF = re.compile(r"^tf(\d+)$")
CFG_PASSES = ("cond", "uncond")


class _RestrictedUnpickler:
    """Unpickles numpy arrays and the containers the reference writes; refuses every other global."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("collections", "OrderedDict"),
               ("collections", "defaultdict"), ("builtins", "list")}

    @classmethod
    def load(cls, path: Path) -> Any:

        class Unpickler(pickle.Unpickler):
            def find_class(self, module, name):
                if (module, name) in cls.ALLOWED:
                    return super().find_class(module, name)
                hint = (" (torch tensors cannot be read without running torch's own unpickler; convert them "
                        "to numpy arrays where they were made)" if module.startswith("torch") else "")
                raise TadaError(f"{path.name} wants to load {module}.{name}; only numpy arrays and plain "
                                f"containers are accepted, so this file was refused{hint}")

        if not path.is_file():
            raise TadaError(f"{path.name}: no such file")
        with open(path, "rb") as f:
            try:
                return Unpickler(f).load()
            except TadaError:
                raise
            except Exception as e:  # truncated files raise a zoo of pickle errors
                raise TadaError(f"{path.name} is not a readable pickle ({type(e).__name__}: {e})") from None


def _plain(obj: Any) -> Any:
    """defaultdicts and OrderedDicts as plain dicts (no default factory is ever called)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _entries(data: Any, name: str) -> tuple[dict[tuple[int, int], dict], bool]:
    """``{(step, cfg_pass): inner}`` and whether the file stored CFG passes."""
    if isinstance(data, list):
        raise TadaError(f"{name} holds a list of {len(data)} items: that is the layout of the reference's "
                        f"pos_vectors.pkl / neg_vectors.pkl (activations per prompt), not of sv.pkl")
    if not isinstance(data, dict) or not data:
        raise TadaError(f"{name}: expected a non-empty dict {{step or (step, cfg_pass): {{layer: [vector]}}}}; "
                        f"got {type(data).__name__}")
    keys = list(data)
    if all(isinstance(k, tuple) and len(k) == 2 and all(_is_int(x) for x in k) for k in keys):
        return {(int(s), int(p)): data[(s, p)] for s, p in keys}, True
    if all(_is_int(k) for k in keys):
        return {(int(s), 0): data[s] for s in keys}, False
    raise TadaError(f"{name}: outer keys must all be integer steps or all (step, cfg_pass) pairs; got "
                    f"{sorted({type(k).__name__ for k in keys})} such as {keys[0]!r}")


def _pass_index(cfg_pass: str | int, passes: Sequence[int], per_pass: bool, name: str) -> int:
    if isinstance(cfg_pass, str):
        if cfg_pass not in CFG_PASSES:
            raise TadaError(f"cfg_pass must be one of {', '.join(CFG_PASSES)} or a pass number; got {cfg_pass!r}")
        if cfg_pass == "cond":
            return 0
        if not per_pass or max(passes) == 0:
            raise TadaError(f"{name} holds only the conditional pass (computed with save_all_cfg_passes=False); "
                            f"import it with cfg_pass='cond'")
        return max(passes)
    if not _is_int(cfg_pass) or cfg_pass not in passes:
        raise TadaError(f"{name} has CFG passes {sorted(passes)}; got cfg_pass={cfg_pass!r}")
    return int(cfg_pass)


def _vector(value: Any, where: str) -> torch.Tensor:

    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise TadaError(f"{where} holds {len(value)} vectors (the layer ran {len(value)} times per pass); "
                            f"one steering vector per layer and step can be imported, not several")
        value = value[0]
    if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype.kind != "f":
        raise TadaError(f"{where} must be a 1-D float array; got {type(value).__name__} "
                        f"{getattr(value, 'shape', '')}")
    t = torch.from_numpy(value.astype(np.float32, copy=True))
    if not torch.isfinite(t).all():
        raise TadaError(f"{where} has NaN or inf values")
    return t


def _target_layers(keys: Sequence[str], model: str, name: str) -> tuple[str, dict[str, tuple[int, str, int]]]:
    """The base model and, per layer key of the file, (index, path, width) in it."""
    tf = [k for k in keys if _TF.match(k)]
    paths = [k for k in keys if not _TF.match(k)]
    if tf and paths:
        raise TadaError(f"{name} mixes tf<N> keys {tf[:2]} with module paths {paths[:2]}")
    if tf:
        if model not in ("auto", *_V1_NAMES):
            raise TadaError(f"{name} keys layers as tf<N>, which the reference's ACE-Step code writes for "
                            f"{ACE_STEP_V1.note}; it cannot be imported as a vector of {model!r} (use "
                            f"--model ace-step-v1, or leave --model unset)")
        out = {}
        for k in tf:
            i = int(_TF.match(k).group(1))
            if i >= ACE_STEP_V1.layers:
                raise TadaError(f"{name}: {k} does not exist in ACE-Step v1 (blocks 0..{ACE_STEP_V1.layers - 1})")
            out[k] = (i, ACE_STEP_V1.path.format(i=i), ACE_STEP_V1.width)
        return ACE_STEP_V1.hub_id, out
    bad = [k for k in paths if not k.startswith(".")]
    if bad:
        raise TadaError(f"{name}: unknown layer key {bad[0]!r}; expected 'tf<index>' (ACE-Step) or a module "
                        f"path with a leading dot (Stable Audio, AudioLDM2), as the reference writes them")
    stripped = {k: k[1:] for k in paths}
    if model == "auto":
        prefixes = {p for p in _PATH_DEFAULTS for s in stripped.values() if s.startswith(p)}
        if len(prefixes) != 1:
            raise TadaError(f"{name}: cannot tell the model from layer paths such as {paths[0]!r}; pass --model")
        model = _PATH_DEFAULTS[prefixes.pop()]
    if model in _V1_NAMES:
        raise TadaError(f"{name} keys layers by module path, which the reference writes for Stable Audio and "
                        f"AudioLDM2, not for ACE-Step v1")

    entry = REGISTRY.get(model)
    measured = measured_layers(entry) if entry is not None else None
    if measured is None:
        measured = [(layer.index, layer.path, layer.width) for layer in load_model(model, device="cpu").layers]
    by_path = {path: (index, path, width) for index, path, width in measured}
    missing = [k for k, s in stripped.items() if s not in by_path]
    if missing:
        raise TadaError(f"{name}: layers {missing[:3]} do not exist in {model!r} (its layers are "
                        f"{measured[0][1]} ... {measured[-1][1]}); pass the --model the vectors were computed on")
    base = entry.hub_id if entry is not None and entry.hub_id else model
    return base, {k: by_path[s] for k, s in stripped.items()}


def import_steer_audio(pickle_path: str | Path, config_path: str | Path | None = None, *, model: str = "auto",
                       concept: str | None = None, cfg_pass: str | int = "cond") -> SteeringVector:
    """Convert the reference code's CAA vectors (``sv.pkl``) to a :class:`SteeringVector`, exactly.

    ``model``: what the vectors were computed on: a registry name or Hub id, or ``"auto"``
    (``tf<N>`` keys: ACE-Step v1; ``.transformer.*`` paths: ``stable-audio``; ``.unet.*``
    paths: ``audioldm2-large``, the checkpoints the reference runs). ``cfg_pass``: which
    CFG pass of a ``(step, cfg_pass)`` file to take: ``"cond"`` (default; what the
    reference steers with in its default ``cond_only`` mode), ``"uncond"``, or a number.
    The vectors are the reference's unit-norm Eq. 2 vectors, unchanged.
    """
    path = Path(pickle_path)
    name = path.name
    config = read_json(Path(config_path)) if config_path else {}
    if not isinstance(config, dict):
        raise TadaError(f"{Path(str(config_path)).name} must hold a JSON object")
    entries, per_pass = _entries(_plain(_RestrictedUnpickler.load(path)), name)
    passes = sorted({p for _, p in entries})
    chosen = _pass_index(cfg_pass, passes, per_pass, name)
    steps = sorted(s for s, p in entries if p == chosen)
    if steps != list(range(len(steps))):
        raise TadaError(f"{name}: pass {chosen} has steps {steps[:5]}{'...' if len(steps) > 5 else ''}; the "
                        f"reference looks vectors up by step 0, 1, 2, ..., so steps must be consecutive from 0")
    inner = [entries[(s, chosen)] for s in steps]
    for s, mapping in zip(steps, inner):
        if not isinstance(mapping, dict) or not mapping:
            raise TadaError(f"{name}: step {s} holds {type(mapping).__name__}, not a mapping layer -> [vector]")
    keys = list(inner[0])
    if not all(isinstance(k, str) for k in keys):
        raise TadaError(f"{name}: layer keys must be strings; got {keys[:3]!r}")
    for s, mapping in zip(steps, inner):
        if set(mapping) != set(keys):
            raise TadaError(f"{name}: step {s} has layers {sorted(mapping)}, step 0 has {sorted(keys)}")
    base, layers = _target_layers(keys, model, name)
    vectors, layer_paths = {}, {}
    for key in keys:
        index, layer_path, width = layers[key]
        rows = [_vector(mapping[key], f"{name}: step {s} layer {key}") for s, mapping in zip(steps, inner)]
        if any(r.numel() != width for r in rows):
            raise TadaError(f"{name}: {key} has width {rows[0].numel()}; layer {layer_path} of {base} has width "
                            f"{width}")
        vectors[index] = rows[0] if len(rows) == 1 else torch.stack(rows)
        layer_paths[index] = layer_path
    norms = torch.cat([v.reshape(-1, v.shape[-1]).norm(dim=1) for v in vectors.values()])
    label = concept or config.get("concept") or path.parent.name or path.stem
    return SteeringVector(
        vectors=vectors, concept=str(label), model=base, layer_paths=layer_paths, method="caa",
        extra={"imported_from": SOURCE, "source_file": name, "source_config": config,
               "layout": {"cfg_passes_stored": passes if per_pass else None, "cfg_pass": chosen,
                          "steps": len(steps), "per_step": len(steps) > 1, "layer_keys": sorted(keys)},
               "unit_norm": bool(torch.allclose(norms, torch.ones_like(norms), atol=1e-4)),
               "note": (ACE_STEP_V1.note if base == ACE_STEP_V1.hub_id else None)})


__all__ = ["import_steer_audio", "ACE_STEP_V1", "ReferenceModel", "CFG_PASSES", "SOURCE"]
