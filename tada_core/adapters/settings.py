"""How to generate: one settings object instead of duration / steps / guidance / batch size everywhere.

:class:`GenerationSettings` is what every generating function takes (``generate``,
``localize``, ``compute_caa``, ``alpha_sweep``, ``cache_activations``, the SAE feature
functions, the organism's adherence). ``None`` fields mean "the model's default";
:meth:`GenerationSettings.resolved` fills them from a model and validates everything,
naming the bad value and what is accepted.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from tada_core.errors import TadaError, check_positive


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` if it is an int (not a bool, not 1.5) >= ``minimum``; else a :class:`TadaError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TadaError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class GenerationSettings:
    """``duration`` in seconds, diffusion ``steps``, CFG ``guidance`` scale (None: the model's defaults),
    and ``batch_size``: clips per pipeline call in batched jobs (sweeps, caches, localization)."""

    duration: float | None = None
    steps: int | None = None
    guidance: float | None = None
    batch_size: int = 16

    def __post_init__(self) -> None:
        check_int("batch_size", self.batch_size)
        if self.duration is not None:
            object.__setattr__(self, "duration", check_positive("duration", self.duration))
        if self.steps is not None:
            check_int("steps", self.steps)
        if self.guidance is not None:
            g = self.guidance
            if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or g < 0:
                raise TadaError(f"guidance must be a finite number >= 0; got {g!r}")
            object.__setattr__(self, "guidance", float(g))

    def replace(self, **changes: Any) -> "GenerationSettings":
        """A copy with the given fields changed; ``None`` values are ignored (keep the current one)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def resolved(self, defaults: "GenerationSettings", max_duration: float | None = None,
                 model: str = "the model") -> "GenerationSettings":
        """Every ``None`` filled from ``defaults``; a duration over ``max_duration`` is refused."""
        out = dataclasses.replace(self, duration=self.duration if self.duration is not None else defaults.duration,
                                  steps=self.steps if self.steps is not None else defaults.steps,
                                  guidance=self.guidance if self.guidance is not None else defaults.guidance)
        missing = [k for k in ("duration", "steps", "guidance") if getattr(out, k) is None]
        if missing:
            raise TadaError(f"{model} has no default for {', '.join(missing)}; give them")
        if max_duration is not None and out.duration > max_duration + 1e-9:
            raise TadaError(f"duration {out.duration:g}s is too long for {model}: at most {max_duration:g}s")
        return out

    def to_dict(self) -> dict[str, Any]:
        """duration, steps and guidance (what changes the audio; batch_size does not, up to rounding)."""
        return {"duration": self.duration, "steps": self.steps, "guidance": self.guidance}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GenerationSettings":
        """Settings from a mapping with any of duration, steps, guidance, batch_size (others are refused)."""
        unknown = sorted(set(data) - {"duration", "steps", "guidance", "batch_size"})
        if unknown:
            raise TadaError(f"unknown generation settings {unknown}; accepted: duration, steps, guidance, batch_size")
        return cls(**dict(data))


__all__ = ["GenerationSettings", "check_int"]
