"""Every value a visitor sends, checked before any work: one message naming the field and what is accepted.

Values arrive from the page or from an API client, so any JSON type can show up where a
number, a string or a list is expected; each check accepts exactly its documented type.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from tada_core import TadaError

SEED_MAX = 2 ** 32 - 1


def _number(name: str, value: Any, accepted: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TadaError(f"{name} must be {accepted}; got {type(value).__name__} {value!r}"[:200])
    if not math.isfinite(value):
        raise TadaError(f"{name} must be {accepted}; got {value!r}")
    return float(value)


def whole(name: str, value: Any, lo: int, hi: int) -> int:
    """A whole number in lo..hi (an integral float from a number box is accepted; 1.5 is not)."""
    accepted = f"a whole number in {lo}..{hi}"
    v = _number(name, value, accepted)
    if v != int(v) or not lo <= int(v) <= hi:
        raise TadaError(f"{name} must be {accepted}; got {value!r}")
    return int(v)


def number(name: str, value: Any, lo: float, hi: float, *, low_open: bool = False) -> float:
    accepted = f"a number in {'(' if low_open else '['}{lo:g}, {hi:g}]"
    v = _number(name, value, accepted)
    if v > hi or v < lo or (low_open and v == lo):
        raise TadaError(f"{name} must be {accepted}; got {value!r}")
    return v


def text(name: str, value: Any, max_len: int = 500) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TadaError(f"{name} must be a non-empty string; got {type(value).__name__ if value is not None else 'nothing'}")
    if len(value) > max_len:
        raise TadaError(f"{name} must be at most {max_len} characters; got {len(value)}")
    return value.strip()


def optional_text(name: str, value: Any, max_len: int = 200) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TadaError(f"{name} must be a string; got {type(value).__name__}")
    if len(value) > max_len:
        raise TadaError(f"{name} must be at most {max_len} characters; got {len(value)}")
    return value.strip()


def layers(name: str, value: Any, allowed: Sequence[int]) -> list[int]:
    """A non-empty list of layer indices from ``allowed`` (checkbox labels like "3 (functional)" are read as 3)."""
    if not isinstance(value, (list, tuple)):
        raise TadaError(f"{name} must be a list of layer indices from {list(allowed)}; got {type(value).__name__}")
    if not value:
        raise TadaError(f"select at least one layer ({name})")
    ids = []
    for x in value:
        if isinstance(x, str) and x.split() and x.split()[0].isdigit():
            x = int(x.split()[0])
        ids.append(whole(f"{name} entry", x, 0, 10_000))
    outside = sorted(set(ids) - set(allowed))
    if outside:
        raise TadaError(f"layers {outside} are not available here; choose among {list(allowed)}")
    return sorted(set(ids))


def settings(prompt: Any, seed: Any, duration: Any, steps: Any, *, max_duration: float, max_steps: int,
             min_duration: float) -> dict[str, Any]:
    return {"prompt": text("prompt", prompt), "seed": whole("seed", seed, 0, SEED_MAX),
            "duration": number("duration (seconds)", duration, min_duration, max_duration),
            "steps": whole("steps", steps, 1, max_steps)}
