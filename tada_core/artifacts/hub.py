"""Artifacts on the Hugging Face Hub: resolve, push, pull, the index of a folder of artifacts.

The formats themselves live with their types: steering vectors in :mod:`tada_core.artifacts.vectors`,
SAEs in :mod:`tada_core.methods.sae`. Here:

* :func:`resolve`: a local folder, or a Hub repo id downloaded (or read from the cache);
* :func:`push` / :func:`pull`: validate, then upload / download an artifact folder;
* :func:`scan` / :func:`build_index` / :func:`read_index`: the ``index.json`` of ``vectors/`` and ``saes/``.

The TADA reference code's own artifacts are read by :mod:`tada_core.artifacts.reference`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from tada_core.errors import TadaError
from tada_core.runtime.io import is_repo_id, iter_files, read_json, resolve, write_json
from tada_core.artifacts.sae import SAE_KIND, SaeArtifact, validate_sae_folder
from tada_core.artifacts.slider import SLIDER_FILE, load_slider
from tada_core.artifacts.vectors import (
    CARD_FILE,
    CONFIG_FILE,
    VECTOR_FILE,
    load_vector,
    model_card,
)

INDEX_FILE = "index.json"


# ---------------------------------------------------------------------------- index

def artifact_summary(folder: str | Path) -> dict[str, Any]:
    """One index row for an artifact folder: name, kind, model, concept, method, layers."""
    folder = Path(folder)
    if (folder / VECTOR_FILE).is_file():
        v = load_vector(folder)
        return {"name": folder.name, "kind": "steering-vector", "model": v.model, "concept": v.concept,
                "method": v.method, "layers": v.layers, "alpha_range": list(v.alpha_range or [])}
    cfgs = validate_sae_folder(folder)
    meta = SaeArtifact.read(folder)
    return {"name": folder.name, "kind": "sae", "model": meta.base_model if meta else None,
            "concept": meta.concept if meta else None,
            "method": "sae", "layers": sorted(cfgs)}


def _is_artifact(p: Path) -> bool:
    return p.is_dir() and ((p / VECTOR_FILE).is_file() or any(p.rglob("cfg.json")))


def scan(root: str | Path, errors: list[str] | None = None) -> list[dict[str, Any]]:
    """Validate every artifact folder under ``root``; one summary row each, sorted by name.

    A folder that fails validation is left out; with ``errors`` given, its message is
    appended there instead of aborting the scan. A missing ``root`` is an error.
    """
    root = Path(root)
    if not root.is_dir():
        raise TadaError(f"{root} is not a folder of artifacts")
    rows = []
    for p in sorted(root.iterdir()):
        if not _is_artifact(p):
            continue
        try:
            rows.append(artifact_summary(p))
        except TadaError as e:
            if errors is None:
                raise
            errors.append(f"{p.name}: {e}")
    return rows


def build_index(root: str | Path, errors: list[str] | None = None) -> list[dict[str, Any]]:
    """:func:`scan` ``root`` and write the rows to ``root/index.json``; returns them."""
    rows = scan(root, errors)
    write_json(Path(root) / INDEX_FILE, rows)
    return rows


def read_index(root: str | Path) -> list[dict[str, Any]]:
    """Rows of ``root/index.json`` (empty if there is none)."""
    path = Path(root) / INDEX_FILE
    return read_json(path) if path.is_file() else []


# ---------------------------------------------------------------------------- push / pull

def validate_artifact(folder: Path) -> None:
    """Raise :class:`TadaError` unless ``folder`` is a valid steering vector or SAE folder with a model card."""
    if (folder / VECTOR_FILE).is_file():
        load_vector(folder)
    elif (folder / SLIDER_FILE).is_file():
        load_slider(folder)
    else:
        validate_sae_folder(folder)
    if not (folder / CARD_FILE).is_file():
        raise TadaError(f"{folder.name} has no README.md model card; save it with SteeringVector.save "
                        f"(or ConceptSlider.save)")


def push(folder: str | Path, repo_id: str, *, revision: str | None = None, private: bool = False,
         dry_run: bool = False, token: str | None = None) -> list[tuple[str, int]]:
    """Validate ``folder`` and upload it as Hub model repo ``repo_id``; returns (file, bytes) pairs.

    A steering vector's card is rewritten so that its usage snippet loads ``repo_id``.
    With ``dry_run`` nothing is sent: the list is what would be uploaded.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TadaError(f"{str(folder)!r} is not a folder")
    if not is_repo_id(repo_id):
        raise TadaError(f"repo id must look like org/name; got {repo_id!r}")
    validate_artifact(folder)
    files = [(str(p.relative_to(folder)), p.stat().st_size) for p in iter_files(folder)]
    if dry_run:
        return files

    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / folder.name
        shutil.copytree(folder, staged, ignore=shutil.ignore_patterns(".*"))
        if (staged / VECTOR_FILE).is_file():
            (staged / CARD_FILE).write_text(model_card(read_json(staged / CONFIG_FILE), folder.name, repo_id),
                                            encoding="utf-8")
        api = HfApi(token=token)
        try:
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            api.upload_folder(repo_id=repo_id, folder_path=str(staged), repo_type="model", revision=revision,
                              commit_message=f"Upload {folder.name} with tada")
        except (HfHubHTTPError, OSError, ValueError) as e:
            raise TadaError(f"cannot upload to {repo_id}: {str(e).splitlines()[0]} (offline, or not logged in? "
                            f"run `hf auth login`; `--dry-run` checks the folder without sending)") from None
    return files


def pull(repo_id: str, revision: str | None = None) -> Path:
    """Download (or find in the cache) a vector or SAE repo, validate it, and return its local path."""
    folder = resolve(repo_id, revision)
    validate_artifact(folder)
    return folder


__all__ = ["resolve", "push", "pull", "scan", "build_index", "read_index", "artifact_summary", "validate_artifact",
           "INDEX_FILE", "SAE_KIND"]
