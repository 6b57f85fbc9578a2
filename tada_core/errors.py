"""One error type for bad input, and the small validators that raise it.

Every message names the offending value and what would have been accepted, so a
user never has to read a traceback to learn what they did wrong.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Iterable, Iterator, Sequence


class TadaError(ValueError):
    """Bad input to tada_core: the message says what was given and what is accepted."""


def check_positive(name: str, value: float) -> float:
    """Return ``float(value)`` if it is finite and > 0, else raise :class:`TadaError`."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TadaError(f"{name} must be a positive number; got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise TadaError(f"{name} must be a finite number > 0; got {value!r}")
    return v


def check_finite(name: str, value: float) -> float:
    """Return ``float(value)`` if it is finite (not NaN/inf), else raise :class:`TadaError`."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TadaError(f"{name} must be a finite number; got {value!r}") from None
    if not math.isfinite(v):
        raise TadaError(f"{name} must be a finite number (not NaN or inf); got {value!r}")
    return v


def check_prompts(prompts: str | Sequence[str], name: str = "prompt") -> list[str]:
    """Normalize a prompt or list of prompts; reject empty lists and blank prompts."""
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise TadaError(f"{name}: expected at least one prompt; got an empty list")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise TadaError(f"{name}[{i}] must be a non-empty string; got {p!r}")
    return prompts


def check_layers(layers: Iterable[int] | None, n_layers: int, model: str) -> tuple[int, ...]:
    """Validate 0-based cross-attention layer indices; ``None`` means all layers."""
    if layers is None:
        return tuple(range(n_layers))
    out = []
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise TadaError(f"layer indices must be integers; got {layer!r}")
        if not 0 <= layer < n_layers:
            raise TadaError(
                f"layer index {layer} is out of range for {model}, which has {n_layers} "
                f"cross-attention layers (accepted: 0..{n_layers - 1})"
            )
        if layer not in out:
            out.append(layer)
    if not out:
        raise TadaError(f"no layer selected; choose at least one of 0..{n_layers - 1}")
    return tuple(sorted(out))


@contextlib.contextmanager
def hub_errors(repo: str, revision: str | None, *, missing_file: str | None = None,
               offline_hint: str = "download it on a connected machine") -> Iterator[None]:
    """Turn huggingface_hub's download errors for ``repo`` into one-line :class:`TadaError` messages."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except LocalEntryNotFoundError:
        raise TadaError(
            f"cannot get {repo!r}: it is not in the local Hugging Face cache and the Hub cannot be reached "
            f"(HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')}); {offline_hint}") from None
    except RepositoryNotFoundError:
        raise TadaError(f"Hub repo {repo!r} does not exist (or is private and you are not logged in)") from None
    except RevisionNotFoundError:
        raise TadaError(f"Hub repo {repo!r} has no revision {revision!r}") from None
    except EntryNotFoundError:
        raise TadaError(f"Hub repo {repo!r} has no {missing_file or 'such file'}") from None
