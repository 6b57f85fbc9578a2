"""Steering vectors as Hugging Face Hub repos: one folder format, validation, push and pull.

A steering-vector folder is also a valid Hub model repo::

    steering.safetensors   one tensor per layer, key "layers.<index>", [width] or [steps, width]
    config.json            what it is and what it may be applied to (see SteeringVector)
    README.md              model card: YAML front matter + a copy-paste usage snippet

Nothing here executes code from an artifact: tensors are safetensors, metadata is JSON.
An artifact records the model it was made for (name or hub id, revision) and every
layer's module path and width; :meth:`SteeringVector.check_compatible` refuses to apply
it to anything else. SAE folders (the sparsify layout, one ``cfg.json`` +
``sae.safetensors`` per hookpoint) are validated here too; the SAE issue writes them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch

from .errors import TadaError, hub_errors

VECTOR_FILE = "steering.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
VECTOR_KIND = "tada-steering-vector"
FORMAT_VERSION = 1
SAE_FILES = ("cfg.json", "sae.safetensors")
SAE_KEYS = ("encoder.weight", "encoder.bias", "W_dec", "b_dec")


def prompts_sha256(prompts: Mapping[str, Sequence[str]] | None) -> str | None:
    """A stable hash of the prompt lists, for artifacts that do not ship their prompts."""
    if prompts is None:
        return None
    blob = json.dumps({k: list(v) for k, v in sorted(prompts.items())}, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclasses.dataclass
class SteeringVector:
    """A steering vector per layer, plus what it was made from and for.

    ``vectors``: layer index (0-based module index) -> ``[width]`` or ``[steps, width]``.
    ``model``: the name or hub id it was computed on (``tada-organism``, ``ace-step``,
    ``ACE-Step/acestep-v15-xl-turbo-diffusers``, ...); ``layer_paths``: the module path
    of each layer there. ``alpha_range``: the alphas it was validated over.
    """

    vectors: dict[int, torch.Tensor]
    concept: str
    model: str
    layer_paths: dict[int, str]
    method: str = "caa"
    model_revision: str | None = None
    prompts: dict[str, list[str]] | None = None
    alpha_range: tuple[float, float] | None = None
    command: str | None = None
    tada_version: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    functional_layers: list[int] | None = None  # where apply() steers by default (from localization)

    def __post_init__(self):
        if not self.vectors:
            raise TadaError("a steering vector needs at least one layer")
        self.vectors = {int(k): v.detach().to("cpu", torch.float32).contiguous() for k, v in self.vectors.items()}
        self.layer_paths = {int(k): str(v) for k, v in self.layer_paths.items()}
        missing = sorted(set(self.vectors) - set(self.layer_paths))
        if missing:
            raise TadaError(f"layer_paths lacks layers {missing}; every vector layer needs its module path")
        if self.functional_layers is not None:
            self.functional_layers = sorted(int(x) for x in self.functional_layers)
            outside = sorted(set(self.functional_layers) - set(self.vectors))
            if outside:
                raise TadaError(f"functional_layers {outside} have no vector; vector layers are {sorted(self.vectors)}")
        for layer, v in self.vectors.items():
            if v.dim() not in (1, 2):
                raise TadaError(f"vector for layer {layer} must be [width] or [steps, width]; got {tuple(v.shape)}")
            if not torch.isfinite(v).all():
                raise TadaError(f"vector for layer {layer} has NaN or inf values")

    @property
    def layers(self) -> list[int]:
        return sorted(self.vectors)

    def default_layers(self) -> list[int]:
        """Where :meth:`apply` steers unless told otherwise."""
        return list(self.functional_layers) if self.functional_layers else self.layers

    def widths(self) -> dict[int, int]:
        return {layer: int(v.shape[-1]) for layer, v in self.vectors.items()}

    def check_compatible(self, adapter) -> None:
        """Raise :class:`TadaError` unless ``adapter`` is the model this was made for, layer by layer."""
        if self.model not in (adapter.name, adapter.source):
            raise TadaError(f"this {self.concept!r} vector was made for model {self.model!r}, not for "
                            f"{adapter.name!r} ({adapter.source}); compute one for this model")
        by_index = {layer.index: layer for layer in adapter.layers}
        for layer, v in self.vectors.items():
            if layer not in by_index:
                raise TadaError(f"vector layer {layer} does not exist in {adapter.name!r} "
                                f"(layers 0..{len(by_index) - 1})")
            if by_index[layer].path != self.layer_paths[layer]:
                raise TadaError(f"vector layer {layer} was {self.layer_paths[layer]!r}; in {adapter.name!r} it is "
                                f"{by_index[layer].path!r}")
            if by_index[layer].width != v.shape[-1]:
                raise TadaError(f"vector layer {layer} has width {v.shape[-1]}; {adapter.name!r} layer {layer} "
                                f"has width {by_index[layer].width}")

    @contextlib.contextmanager
    def apply(self, adapter, alpha, layers: Sequence[int] | None = None, **kwargs) -> Iterator[None]:
        """Steer ``adapter`` with this vector (after :meth:`check_compatible`); kwargs go to ``hooks.steer``.

        ``layers``: where to steer; default: the vector's functional layers if it has
        them (from localization), else every layer it has a vector for.
        """
        from .hooks import steer

        self.check_compatible(adapter)
        chosen = self.default_layers() if layers is None else list(layers)
        unknown = sorted(set(chosen) - set(self.vectors))
        if unknown:
            raise TadaError(f"this vector has no layers {unknown}; it has {self.layers}")
        with steer(adapter, {layer: self.vectors[layer] for layer in chosen}, alpha=alpha, layers=chosen,
                   **kwargs):
            yield

    def config(self) -> dict[str, Any]:
        return {
            "kind": VECTOR_KIND, "format_version": FORMAT_VERSION, "concept": self.concept, "method": self.method,
            "base_model": self.model, "base_model_revision": self.model_revision,
            "layers": [{"index": layer, "path": self.layer_paths[layer], "width": self.widths()[layer],
                        "shape": list(self.vectors[layer].shape)} for layer in self.layers],
            "prompts": self.prompts, "prompts_sha256": prompts_sha256(self.prompts),
            "alpha_range": list(self.alpha_range) if self.alpha_range else None,
            "functional_layers": self.functional_layers,
            "command": self.command, "tada_version": self.tada_version, "extra": self.extra,
        }

    def save(self, folder: str | Path, *, card: bool = True) -> Path:
        """Write the folder (safetensors + config.json + README.md model card); returns its path."""
        from safetensors.torch import save_file

        from . import __version__

        if self.tada_version is None:
            self.tada_version = __version__
        if self.command is None:
            self.command = " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name] + sys.argv[1:])
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({f"layers.{layer}": self.vectors[layer] for layer in self.layers}, str(folder / VECTOR_FILE),
                  # one key: safetensors writes metadata in hash order, and files should be byte-reproducible
                  metadata={"kind": VECTOR_KIND})
        (folder / CONFIG_FILE).write_text(json.dumps(self.config(), indent=2) + "\n", encoding="utf-8")
        if card:
            (folder / CARD_FILE).write_text(model_card(self.config(), folder.name), encoding="utf-8")
        return folder


def model_card(config: Mapping[str, Any], name: str) -> str:
    """A Hub model card for a steering-vector folder: YAML front matter plus usage."""
    base = config["base_model"]
    hub_base = base if "/" in base else None
    layers = ", ".join(str(layer["index"]) for layer in config["layers"])
    alpha = config.get("alpha_range")
    front = ["---", "library_name: tada-steer", "license: apache-2.0",
             "tags:", "- tada", "- steering-vector", f"- {config['method']}", "- text-to-audio"]
    if hub_base:
        front.append(f"base_model: {hub_base}")
    front.append("---")
    return "\n".join(front) + f"""

# {name}: {config['concept']} steering vector ({config['method'].upper()})

A steering vector for the concept **{config['concept']}** on `{base}`, made with
[TADA](https://github.com/) ({config['method']}). It holds a vector `v` for cross-attention
layers {layers} (0-based module indices; the papers count from 1); steering adds `alpha * v`
to those layers' outputs.
{f"By default it steers its functional layers {config['functional_layers']} (found by localization)." if config.get('functional_layers') else ""}
{f"Validated for alpha in [{alpha[0]}, {alpha[1]}]." if alpha else ""}

```python
from tada_core import load_model
from tada_core.hub import load_vector

model = load_model({base!r})
vector = load_vector("{name}")          # a local folder, or a Hub repo id "org/{name}"
with vector.apply(model, alpha=[0.0, {alpha[1] if alpha else 4.0}]):   # original and steered, one batch
    pair = model.generate(["a pop song"] * 2, seeds=[0, 0])
```

Made by: `{config.get('command') or '?'}` (tada {config.get('tada_version') or '?'}).
Files: `steering.safetensors` (key `layers.<index>`), `config.json` (model, layer paths
and widths, prompts or their SHA-256, alpha range). No pickles.
"""


# ---------------------------------------------------------------------------- loading

def resolve(source: str | Path, revision: str | None = None, allow_patterns: Sequence[str] | None = None) -> Path:
    """A local folder as is, or a Hub repo id downloaded (or read from the cache) to a local snapshot."""
    if os.path.isdir(source):
        return Path(source)
    if isinstance(source, Path) or source.startswith((".", "/")) or source.count("/") != 1:
        raise TadaError(f"{str(source)!r} is neither a folder nor a Hub repo id like org/name")
    from huggingface_hub import snapshot_download

    hint = (f"run `tada pull {source}` on a connected machine (there is no local folder {source!r} in "
            f"{os.getcwd()} either)")
    with hub_errors(source, revision, offline_hint=hint):
        return Path(snapshot_download(source, revision=revision, allow_patterns=list(allow_patterns or ["*"])))


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise TadaError(f"{path} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise TadaError(f"{path} is truncated or corrupted ({e}); download it again") from None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TadaError(f"{path} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TadaError(f"{path} is not valid JSON ({e})") from None


def load_vector(source: str | Path, revision: str | None = None) -> SteeringVector:
    """Load and validate a steering-vector folder or Hub repo id (``org/name``, optional revision)."""
    folder = resolve(source, revision, allow_patterns=[CONFIG_FILE, VECTOR_FILE, CARD_FILE])
    config = _read_json(folder / CONFIG_FILE)
    if config.get("kind") != VECTOR_KIND:
        raise TadaError(f"{folder / CONFIG_FILE} is a {config.get('kind')!r}, not a {VECTOR_KIND!r}")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise TadaError(f"{source} uses format version {config['format_version']}; this tada reads up to "
                        f"{FORMAT_VERSION}: upgrade tada-steer")
    tensors = _read_tensors(folder / VECTOR_FILE)
    vectors, paths = {}, {}
    for entry in config.get("layers", []):
        key = f"layers.{entry['index']}"
        if key not in tensors:
            raise TadaError(f"{folder / VECTOR_FILE} lacks {key!r}, which config.json lists")
        if list(tensors[key].shape) != list(entry["shape"]) or tensors[key].shape[-1] != entry["width"]:
            raise TadaError(f"{key} has shape {list(tensors[key].shape)}; config.json says {entry['shape']}")
        vectors[int(entry["index"])] = tensors[key]
        paths[int(entry["index"])] = entry["path"]
    extra_keys = sorted(set(tensors) - {f"layers.{i}" for i in vectors})
    if extra_keys:
        raise TadaError(f"{folder / VECTOR_FILE} has tensors config.json does not list: {extra_keys}")
    if config.get("prompts") is not None and config.get("prompts_sha256") != prompts_sha256(config["prompts"]):
        raise TadaError(f"{folder / CONFIG_FILE}: prompts do not match prompts_sha256 (edited by hand?)")
    alpha = config.get("alpha_range")
    return SteeringVector(vectors=vectors, concept=config["concept"], model=config["base_model"],
                          layer_paths=paths, method=config.get("method", "caa"),
                          model_revision=config.get("base_model_revision"), prompts=config.get("prompts"),
                          alpha_range=tuple(alpha) if alpha else None, command=config.get("command"),
                          tada_version=config.get("tada_version"), extra=config.get("extra") or {},
                          functional_layers=config.get("functional_layers"))


def validate_sae(folder: str | Path) -> dict[str, dict[str, Any]]:
    """Check an SAE folder in sparsify's layout (one sub-folder per hookpoint); returns each cfg.json."""
    folder = Path(folder)
    hookpoints = sorted(p.parent for p in folder.rglob("cfg.json"))
    if not hookpoints:
        raise TadaError(f"{folder} has no <hookpoint>/cfg.json; an SAE folder holds one per hookpoint")
    out = {}
    for hp in hookpoints:
        cfg = _read_json(hp / "cfg.json")
        tensors = _read_tensors(hp / "sae.safetensors")
        missing = [k for k in SAE_KEYS if k not in tensors]
        if missing:
            raise TadaError(f"{hp / 'sae.safetensors'} lacks {missing}; sparsify SAEs have {list(SAE_KEYS)}")
        d_in = cfg.get("d_in", tensors["W_dec"].shape[1])
        if tensors["W_dec"].shape[1] != d_in or tensors["encoder.weight"].shape != tensors["W_dec"].shape:
            raise TadaError(f"{hp}: encoder {tuple(tensors['encoder.weight'].shape)} and decoder "
                            f"{tuple(tensors['W_dec'].shape)} do not fit d_in={d_in}")
        out[str(hp.relative_to(folder))] = cfg
    return out


# ---------------------------------------------------------------------------- index

def artifact_summary(folder: str | Path) -> dict[str, Any]:
    """One index row for an artifact folder: name, kind, model, concept, method, layers."""
    folder = Path(folder)
    if (folder / VECTOR_FILE).is_file():
        v = load_vector(folder)
        return {"name": folder.name, "kind": "steering-vector", "model": v.model, "concept": v.concept,
                "method": v.method, "layers": v.layers, "alpha_range": list(v.alpha_range or [])}
    cfgs = validate_sae(folder)
    meta = _read_json(folder / CONFIG_FILE) if (folder / CONFIG_FILE).is_file() else {}
    return {"name": folder.name, "kind": "sae", "model": meta.get("base_model"), "concept": meta.get("concept"),
            "method": "sae", "layers": sorted(cfgs)}


def scan(root: str | Path) -> list[dict[str, Any]]:
    """Validate every artifact folder under ``root``; one summary row each, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [artifact_summary(p) for p in sorted(root.iterdir())
            if p.is_dir() and ((p / VECTOR_FILE).is_file() or any(p.rglob("cfg.json")))]


def build_index(root: str | Path) -> list[dict[str, Any]]:
    """:func:`scan` ``root`` and write the rows to ``root/index.json``; returns them."""
    rows = scan(root)
    if Path(root).is_dir():
        (Path(root) / "index.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return rows


def read_index(root: str | Path) -> list[dict[str, Any]]:
    """Rows of ``root/index.json`` (empty if there is none)."""
    path = Path(root) / "index.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


# ---------------------------------------------------------------------------- push / pull

def _validate_folder(folder: Path) -> None:
    if (folder / VECTOR_FILE).is_file():
        load_vector(folder)
    else:
        validate_sae(folder)
    if not (folder / CARD_FILE).is_file():
        raise TadaError(f"{folder} has no README.md model card; save it with SteeringVector.save")


def push(folder: str | Path, repo_id: str, *, revision: str | None = None, private: bool = False,
         dry_run: bool = False, token: str | None = None) -> list[tuple[str, int]]:
    """Validate ``folder`` and upload it as Hub model repo ``repo_id``; returns (file, bytes) pairs.

    With ``dry_run`` nothing is sent: the list is what would be uploaded.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TadaError(f"{str(folder)!r} is not a folder")
    if repo_id.count("/") != 1:
        raise TadaError(f"repo id must look like org/name; got {repo_id!r}")
    _validate_folder(folder)
    files = sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if dry_run:
        return files
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model", revision=revision,
                      commit_message=f"Upload {folder.name} with tada", ignore_patterns=[".*"])
    return files


def pull(repo_id: str, revision: str | None = None) -> Path:
    """Download (or find in the cache) a vector or SAE repo, validate it, and return its local path."""
    folder = resolve(repo_id, revision)
    _validate_folder(folder)
    return folder


# ---------------------------------------------------------------------------- importer

class _RestrictedUnpickler:
    """Unpickles numpy arrays and plain containers; refuses every other global."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("collections", "OrderedDict")}

    @classmethod
    def load(cls, path: Path):
        import pickle

        class Unpickler(pickle.Unpickler):
            def find_class(self, module, name):
                if (module, name) in cls.ALLOWED:
                    return super().find_class(module, name)
                raise TadaError(f"{path} wants to load {module}.{name}; only numpy arrays and plain "
                                f"containers are accepted, so this file was refused")

        with open(path, "rb") as f:
            try:
                return Unpickler(f).load()
            except TadaError:
                raise
            except Exception as e:  # truncated files raise a zoo of pickle errors
                raise TadaError(f"{path} is not a readable pickle ({type(e).__name__}: {e})") from None


def import_steer_audio(pickle_path: str | Path, config_path: str | Path | None, *, model: str, layer_paths:
                       Mapping[int, str], concept: str | None = None) -> SteeringVector:
    """Convert the TADA reference code's CAA vectors (``{step: {"tf7": [array]}}``) to a SteeringVector.

    ``tfN`` is the reference code's name for transformer block N (0-based, as our indices);
    the vector per step becomes a ``[steps, width]`` tensor. ``layer_paths`` gives each
    layer's module path in ``model`` (from ``adapter.layers``).
    """
    import numpy as np

    data = _RestrictedUnpickler.load(Path(pickle_path))
    config = _read_json(Path(config_path)) if config_path else {}
    if not isinstance(data, dict) or not data:
        raise TadaError(f"{pickle_path}: expected a dict {{step: {{'tfN': [array]}}}}; got {type(data).__name__}")
    steps = sorted(data, key=lambda s: int(s))
    per_layer: dict[int, list[torch.Tensor]] = {}
    for step in steps:
        if not isinstance(data[step], dict):
            raise TadaError(f"{pickle_path}: step {step!r} holds {type(data[step]).__name__}, not a dict")
        for name, value in data[step].items():
            if not (isinstance(name, str) and name.startswith("tf") and name[2:].isdigit()):
                raise TadaError(f"{pickle_path}: unknown layer key {name!r}; expected 'tf<index>'")
            arr = value[0] if isinstance(value, (list, tuple)) else value
            arr = np.asarray(arr, dtype=np.float32).reshape(-1)
            per_layer.setdefault(int(name[2:]), []).append(torch.from_numpy(arr.copy()))
    vectors = {}
    for layer, rows in per_layer.items():
        if len(rows) != len(steps):
            raise TadaError(f"{pickle_path}: layer tf{layer} is missing at some steps")
        vectors[layer] = torch.stack(rows)
    missing = sorted(set(vectors) - set(layer_paths))
    if missing:
        raise TadaError(f"model {model!r} has no layers {missing} (it has {sorted(layer_paths)})")
    name = concept or config.get("concept") or Path(pickle_path).stem
    return SteeringVector(vectors=vectors, concept=str(name), model=model,
                          layer_paths={k: layer_paths[k] for k in vectors}, method="caa",
                          extra={"imported_from": "steer-audio", "source_config": config,
                                 "steps": [int(s) for s in steps]})

