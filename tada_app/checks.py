"""Every value a visitor sends, checked before any work: one message naming the field and what is accepted.

Values arrive from the page or from an API client, so any JSON type can show up where a
number, a string or a list is expected; each check accepts exactly its documented type.
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

from tada_core import TadaError

SEED_MAX = 2 ** 32 - 1


def _shown(value: Any) -> str:
    """A visitor's value as a message may quote it: short, one line, never a 5000-digit number."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"a number with about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, str):
        return "str " + repr(value[:40] + ("..." if len(value) > 40 else ""))
    if isinstance(value, (list, tuple, dict)):
        return f"a {type(value).__name__} of {len(value)} items"
    if value is None:
        return "nothing"
    return repr(value)[:60]


def _number(name: str, value: Any, accepted: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TadaError(f"{name} must be {accepted}; got {_shown(value)}")
    try:
        v = float(value)
    except OverflowError:      # an int beyond float's range, e.g. 10**400
        raise TadaError(f"{name} must be {accepted}; got {_shown(value)}") from None
    if not math.isfinite(v):
        raise TadaError(f"{name} must be {accepted}; got {_shown(value)}")
    return v


def whole(name: str, value: Any, lo: int, hi: int) -> int:
    """A whole number in lo..hi (an integral float from a number box is accepted; 1.5 is not)."""
    accepted = f"a whole number in {lo}..{hi}"
    v = _number(name, value, accepted)
    n = value if isinstance(value, int) else int(v) if v == int(v) else None   # an int is compared exactly
    if n is None or not lo <= n <= hi:
        raise TadaError(f"{name} must be {accepted}; got {_shown(value)}")
    return int(n)


def number(name: str, value: Any, lo: float, hi: float, *, low_open: bool = False) -> float:
    accepted = f"a number in {'(' if low_open else '['}{lo:g}, {hi:g}]"
    v = _number(name, value, accepted)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise TadaError(f"{name}: this server's limit for it is not a finite number ({lo!r}, {hi!r}); nothing "
                        f"can be accepted")
    if v > hi or v < lo or (low_open and v == lo):
        raise TadaError(f"{name} must be {accepted}; got {_shown(value)}")
    return v


def text(name: str, value: Any, max_len: int = 500) -> str:
    if not isinstance(value, str) or not value.strip():
        got = "nothing" if value is None else "an empty string" if isinstance(value, str) else type(value).__name__
        raise TadaError(f"{name} must be a non-empty string; got {got}")
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


_LAYER = re.compile(r"([0-9]{1,5})(?: \([a-z ]{1,20}\))?")   # 3, "3", or a checkbox label "3 (functional)"


def layer(name: str, value: Any, allowed: Sequence[int]) -> int:
    """One layer index from ``allowed``: a whole number, or its ASCII digits (a box's label "3 (functional)" is
    read as 3). The one parser of every tab."""
    if isinstance(value, str):
        m = _LAYER.fullmatch(value.strip())
        if m is None:
            raise TadaError(f"{name} must be a layer index from {list(allowed)}; got {_shown(value)}")
        value = int(m.group(1))
    index = whole(name, value, 0, 99_999)
    if index not in allowed:
        raise TadaError(f"layer {index} is not available here; choose among {list(allowed)}")
    return index


def layers(name: str, value: Any, allowed: Sequence[int]) -> list[int]:
    """A non-empty list of layer indices from ``allowed`` (each read by :func:`layer`)."""
    if not isinstance(value, (list, tuple)):
        raise TadaError(f"{name} must be a list of layer indices from {list(allowed)}; got {type(value).__name__}")
    if not value:
        raise TadaError(f"select at least one layer ({name})")
    if len(value) > 10_000:
        raise TadaError(f"{name} must be a list of layer indices from {list(allowed)}; got {len(value)} entries")
    return sorted({layer(f"{name} entry", x, allowed) for x in value})


def choice(name: str, value: Any, accepted: Sequence[str]) -> str:
    """One of ``accepted`` names exactly (never a path, never a file to read)."""
    if not isinstance(value, str) or value.strip() not in accepted:
        raise TadaError(f"{name} must be one of {', '.join(accepted) or 'none here'}; got {_shown(value)}")
    return value.strip()


def choices(name: str, value: Any, accepted: Sequence[str], max_items: int) -> list[str]:
    """A list of distinct names from ``accepted`` (at most ``max_items``; each read by :func:`choice`)."""
    if not isinstance(value, (list, tuple)):
        raise TadaError(f"{name} must be a list of names from {', '.join(accepted) or 'none here'}; "
                        f"got {_shown(value)}")
    if len(value) > max_items:
        raise TadaError(f"{name} must list at most {max_items} names; got {len(value)}")
    out = [choice(f"{name} entry", x, accepted) for x in value]
    twice = next((x for i, x in enumerate(out) if x in out[:i]), None)
    if twice is not None:
        raise TadaError(f"{name} lists {twice!r} twice; give each at most once")
    return out


def sized_list(name: str, value: Any, size: int, what: str) -> list:
    """A list of exactly ``size`` entries (each then checked by the caller, e.g. with :func:`number`)."""
    if not isinstance(value, (list, tuple)) or len(value) != size:
        raise TadaError(f"{name} must be a list of {size} {what}; got {_shown(value)}")
    return list(value)


def flag(name: str, value: Any) -> bool | None:
    """True, False, or None (the caller's default)."""
    if value is not None and not isinstance(value, bool):
        raise TadaError(f"{name} must be true, false or null; got {_shown(value)}")
    return value


def settings(prompt: Any, seed: Any, duration: Any, steps: Any, *, max_duration: float, max_steps: int,
             min_duration: float) -> dict[str, Any]:
    return {"prompt": text("prompt", prompt), "seed": whole("seed", seed, 0, SEED_MAX),
            "duration": number("duration (seconds)", duration, min_duration, max_duration),
            "steps": whole("steps", steps, 1, max_steps)}
