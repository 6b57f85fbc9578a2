"""Where a visitor's free text may lead: shipped artifacts, folders under the app's roots, or Hub ids.

A public Space must not be a window into the server. A vector or SAE box accepts:

* a name from the root's ``index.json`` (``tada-organism-tempo-caa``);
* a folder under that root, spelled relative to it (``vectors/my-vector``), resolved and
  checked to stay inside (no ``..``, no symlinks out);
* a Hub repo id (``org/name``), checked against the Hub's naming rules before any call and
  downloaded with only the files the artifact format needs.

Nothing else: absolute paths, ``~`` and ``..`` are refused without touching the disk.
:func:`scrub` removes server paths from any message shown to a visitor.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from tada_core import TadaError

HUB_ID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?/[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
SAE_PATTERNS = ["config.json", "README.md", "*/cfg.json", "*/sae.safetensors", "*/*/cfg.json",
                "*/*/sae.safetensors", "atlas/*"]


def is_hub_id(text: str) -> bool:
    return bool(HUB_ID.match(text)) and ".." not in text


def _looks_like_path(text: str) -> bool:
    return text.startswith(("/", "~", "\\", ".")) or "\\" in text or ".." in text or ":" in text


def locate(text: str, root: Path, index_names: list[str], what: str) -> Path | str:
    """A shipped folder (Path) or a validated Hub id (str) for the visitor's ``text``."""
    if text in index_names:
        return root / text
    prefix = root.name + "/"
    if text.startswith(prefix) and not _looks_like_path(text):
        base = root.resolve()
        folder = (root / text[len(prefix):]).resolve()
        if base not in folder.parents or not folder.is_dir():
            raise TadaError(f"there is no {what} folder {text!r} under {prefix}")
        return folder
    if is_hub_id(text):
        return text
    shown = "a path" if _looks_like_path(text) else repr(text[:100])
    raise TadaError(f"{what} must be a name from {prefix} ({', '.join(index_names[:6]) or 'none shipped'}), a folder "
                    f"under {prefix}, or a Hub repo id like org/name; got {shown}")


def scrub(message: str) -> str:
    """``message`` without server paths: the repository, the HF cache, the temp folder, the home folder,
    and any other absolute path."""
    from huggingface_hub import constants

    from .config import ROOT

    replacements = [(str(ROOT) + "/", ""), (str(ROOT), "."), (str(Path(constants.HF_HUB_CACHE)), "<hf-cache>"),
                    (str(Path(tempfile.gettempdir())), "<tmp>"), (str(Path.home()), "~")]
    for old, new in replacements:
        if old and old not in ("/", "."):
            message = message.replace(old, new)
    return re.sub(r"(?<![\w.<>~])/(?:[\w.@+-]+/)*[\w.@+-]+", "<path>", message)
