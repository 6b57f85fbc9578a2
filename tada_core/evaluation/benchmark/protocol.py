"""The numbers of TADA's steering benchmark (Sec. 5.1), as the reference implementation computes them.

One *sweep* is one method steering one concept in one direction: points at strengths alpha
(alpha 0 included), each with the sign-corrected alignment gain Delta a(alpha), the distance
d(alpha) to the alpha = 0 clip, and optionally a quality value. Everything here is plain
numpy on such arrays; :mod:`.runner` produces them.

* :func:`truncate`: points ordered by |alpha|, cut where d first exceeds P_max, with a
  boundary point at exactly P_max interpolated between the last point below and the first
  above (it takes the alpha of the point above).
* :func:`auc`: the trapezoid rule of Delta a over the preservation axis p = P_max - d, walked
  in |alpha| order: AUC = sum_i (d_{i+1} - d_i) (Delta a_i + Delta a_{i+1}) / 2, which is
  int_0^{P_max} Delta a(p) dp for a sweep whose distance grows with |alpha|; a sweep that
  backtracks (d falls as |alpha| grows) loses area.
* :func:`smoothness`: S = std of the consecutive gaps of Delta a / max(Delta a), |alpha| order.
* :func:`quality_grid`: quality at ``np.linspace(0, P_max, 15)`` of distance, by linear
  interpolation along the sweep; grid points outside the measured range are dropped.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from tada_core.errors import TadaError

GRID_POINTS = 15


@dataclasses.dataclass(frozen=True)
class Sweep:
    """One direction of one method: arrays in |alpha| order, starting at alpha 0."""

    alphas: np.ndarray
    delta: np.ndarray
    distance: np.ndarray
    quality: np.ndarray | None = None


def ordered(alphas: Sequence[float], delta: Sequence[float], distance: Sequence[float],
            quality: Sequence[float] | None = None) -> Sweep:
    """The points in |alpha| order (stable); an alpha 0 point (Delta a = 0, d = 0) is added when missing."""
    a = np.asarray(alphas, dtype=float)
    arrays = [np.asarray(x, dtype=float) for x in (delta, distance)]
    q = None if quality is None else np.asarray(quality, dtype=float)
    if any(len(x) != len(a) for x in arrays) or (q is not None and len(q) != len(a)):
        raise TadaError("alphas, deltas, distances (and qualities) must have one value per point")
    if not len(a) or not np.all(np.isfinite(a)):
        raise TadaError("a sweep needs at least one finite alpha")
    order = np.argsort(np.abs(a), kind="stable")
    a, delta_, dist = a[order], arrays[0][order], arrays[1][order]
    q = None if q is None else q[order]
    if a[0] != 0:
        a, delta_, dist = np.r_[0.0, a], np.r_[0.0, delta_], np.r_[0.0, dist]
        q = None if q is None else np.r_[np.nan, q]
    return Sweep(a, delta_, dist, q)


def truncate(sweep: Sweep, p_max: float) -> Sweep:
    """The sweep up to distance ``p_max``: points in |alpha| order until d first exceeds it, plus the
    interpolated boundary point at d = ``p_max`` (with the alpha of the first point beyond)."""
    if not np.isfinite(p_max) or p_max <= 0:
        raise TadaError(f"P_max must be a positive distance; got {p_max!r}")
    d = sweep.distance
    beyond = np.flatnonzero(~(d <= p_max))     # NaN distances count as beyond
    if not len(beyond):
        return sweep
    k = int(beyond[0])
    if k == 0:
        raise TadaError("the alpha 0 point is beyond P_max; distances must start at 0")
    t = (p_max - d[k - 1]) / (d[k] - d[k - 1]) if np.isfinite(d[k]) else 0.0

    def cut(x: np.ndarray | None, boundary: bool = True) -> np.ndarray | None:
        if x is None:
            return None
        return np.r_[x[:k], x[k - 1] + t * (x[k] - x[k - 1])] if boundary else x[:k]

    return Sweep(np.r_[sweep.alphas[:k], sweep.alphas[k]], cut(sweep.delta), np.r_[d[:k], p_max],
                 cut(sweep.quality))


def auc(sweep: Sweep) -> float:
    """Trapezoid rule of Delta a over the preservation axis, points in |alpha| order (see the module docstring)."""
    if len(sweep.delta) < 2:
        return 0.0
    d, a = sweep.distance, sweep.delta
    return float(np.sum(np.diff(d) * (a[1:] + a[:-1]) / 2))


def smoothness(sweep: Sweep) -> float:
    """TADA Sec. 5.1 smoothness S (lower is better): std of the gaps of the normalized Delta a.

    Delta a is divided by its largest (correct-direction) value; NaN when no point moves in the
    correct direction, or when the sweep has fewer than two gaps (alpha 0 and one point: a sweep
    whose first strength already passes P_max has no smoothness to measure, and the standard
    deviation of one gap would call it perfectly smooth).
    """
    top = float(np.max(sweep.delta)) if len(sweep.delta) else 0.0
    if not np.isfinite(top) or top <= 0 or len(sweep.delta) < 3:
        return float("nan")
    return float(np.std(np.diff(sweep.delta / top)))


def quality_grid(sweep: Sweep, p_max: float, points: int = GRID_POINTS) -> np.ndarray:
    """Quality at ``np.linspace(0, p_max, points)`` of distance, interpolated along the sweep.

    Each grid distance takes the value on the first segment of the sweep (|alpha| order) that
    spans it; grid points that no segment reaches are dropped. Returns the kept values.
    """
    if sweep.quality is None:
        raise TadaError("this sweep has no quality values")
    d, q = sweep.distance, sweep.quality
    out = []
    for g in np.linspace(0.0, p_max, points):
        for i in range(len(d) - 1):
            lo, hi = sorted((d[i], d[i + 1]))
            if lo <= g <= hi and np.isfinite(q[i]) and np.isfinite(q[i + 1]):
                t = 0.0 if hi == lo else (g - d[i]) / (d[i + 1] - d[i])
                out.append(q[i] + t * (q[i + 1] - q[i]))
                break
    return np.asarray(out, dtype=float)


def average_quality(pos: Sweep, neg: Sweep, p_max_pos: float, p_max_neg: float) -> float:
    """Mean of the quality grids of both directions (TADA Sec. 5.1 "Average Quality")."""
    values = np.r_[quality_grid(pos, p_max_pos), quality_grid(neg, p_max_neg)]
    return float(values.mean()) if len(values) else float("nan")


def p_max(pci_max_distances: Sequence[float]) -> float:
    """P_max: the smallest of the largest distances the PCI variants (all layers, functional layers) reach."""
    values = [float(x) for x in pci_max_distances if np.isfinite(x) and x > 0]
    if not values:
        raise TadaError("P_max needs the PCI baseline's distances; none is positive")
    return min(values)


__all__ = ["Sweep", "ordered", "truncate", "auc", "smoothness", "quality_grid", "average_quality", "p_max",
           "GRID_POINTS"]
