"""The numbers of TADA's steering benchmark (Sec. 5.1), as the reference implementation computes them.

One *sweep* is one method steering one concept in one direction: points at strengths alpha
(alpha 0 included), each with the sign-corrected alignment gain Delta a(alpha), the distance
d(alpha) to the alpha = 0 clip, and optionally a quality value. Everything here is plain
numpy on such arrays; :mod:`.runner` produces them, :mod:`tada_core.evaluation.published` reads
the reference's published ones.

The rules, each checked against the reference's published Table 3 (``luk-st/steer-audio``,
``src/steering/eval/auc.py``; every cell of the published tables is rebuilt by
``tada benchmark table --from-published``):

* :func:`truncate`: every measured point with d <= P_max (in |alpha| order), plus a boundary point
  at exactly P_max interpolated between the farthest measured point below P_max and the nearest
  one above it (it takes the alpha of the point above). A sweep whose distance is not monotone in
  |alpha| keeps its points below P_max that come after a point beyond it.
* :func:`auc`: the trapezoid rule of Delta a over the preservation axis p = P_max - d, walked
  in |alpha| order: AUC = sum_i (d_{i+1} - d_i) (Delta a_i + Delta a_{i+1}) / 2, which is
  int_0^{P_max} Delta a(p) dp for a sweep whose distance grows with |alpha|; a sweep that
  backtracks (d falls as |alpha| grows) loses area.
* :func:`smoothness`: S = std of the consecutive gaps of Delta a / max(Delta a, 0), |alpha| order,
  over the *measured* points within P_max (the interpolated boundary point is not a measurement);
  NaN below two gaps (the reference says 0 for one gap, a case its published tables never reach).
* :func:`quality_grid`: quality at ``np.linspace(0, P_max, 15)`` of distance, interpolated over
  the direction's measured points sorted by distance (all of them, not only those below P_max);
  grid points outside the measured distances are dropped. :func:`average_quality`: the mean of
  the two directions' grid means.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from tada_core.errors import TadaError

GRID_POINTS = 15


@dataclasses.dataclass(frozen=True)
class Sweep:
    """One direction of one method: arrays in |alpha| order, starting at alpha 0. ``measured``: which
    points were measured (None: all); :func:`truncate` adds one that was not, the boundary at P_max."""

    alphas: np.ndarray
    delta: np.ndarray
    distance: np.ndarray
    quality: np.ndarray | None = None
    measured: np.ndarray | None = None

    def measured_points(self) -> "Sweep":
        """This sweep without its interpolated points."""
        if self.measured is None:
            return self
        m = self.measured
        return Sweep(self.alphas[m], self.delta[m], self.distance[m], None if self.quality is None else self.quality[m])


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
    """The measured points of ``sweep`` within distance ``p_max`` (|alpha| order), plus the boundary point at
    d = ``p_max`` interpolated between the farthest point within and the nearest point beyond (with the
    alpha of the point beyond). NaN distances count as beyond."""
    if not np.isfinite(p_max) or p_max <= 0:
        raise TadaError(f"P_max must be a positive distance; got {p_max!r}")
    sweep = sweep.measured_points()
    d = sweep.distance
    within = d <= p_max + 1e-9                 # the reference's tolerance; NaN compares False: beyond
    if not within[0]:
        raise TadaError("the alpha 0 point is beyond P_max; distances must start at 0")
    if within.all():
        return sweep
    keep = np.flatnonzero(within)
    beyond = np.flatnonzero(~within & np.isfinite(d))
    q = sweep.quality
    if not len(beyond):                         # only NaN distances beyond: nothing to interpolate towards
        return Sweep(sweep.alphas[keep], sweep.delta[keep], d[keep], None if q is None else q[keep])
    b = keep[np.argmax(d[keep])]                # the farthest point within
    a = beyond[np.argmin(d[beyond])]            # the nearest point beyond
    t = (p_max - d[b]) / (d[a] - d[b]) if d[a] > d[b] else 0.0

    def at(x: np.ndarray) -> float:
        return float(x[b] + t * (x[a] - x[b]))

    alphas = np.r_[sweep.alphas[keep], sweep.alphas[a]]
    order = np.argsort(np.abs(alphas), kind="stable")
    measured = np.r_[np.ones(len(keep), dtype=bool), False][order]
    return Sweep(alphas[order], np.r_[sweep.delta[keep], at(sweep.delta)][order], np.r_[d[keep], p_max][order],
                 None if q is None else np.r_[q[keep], at(q)][order], measured)


def auc(sweep: Sweep) -> float:
    """Trapezoid rule of Delta a over the preservation axis, points in |alpha| order (see the module docstring)."""
    if len(sweep.delta) < 2:
        return 0.0
    d, a = sweep.distance, sweep.delta
    return float(np.sum(np.diff(d) * (a[1:] + a[:-1]) / 2))


def smoothness(sweep: Sweep) -> float:
    """TADA Sec. 5.1 smoothness S (lower is better): std of the gaps of the normalized Delta a.

    Over the measured points only (a truncated sweep's interpolated boundary point is dropped), in
    |alpha| order; Delta a is divided by its largest correct-direction value (gaps that step back
    count). NaN when no point moves in the correct direction, or when there are fewer than two gaps:
    the reference code returns 0 for a single gap (the standard deviation of one number), which would
    call a sweep whose first strength already passes P_max perfectly smooth; no cell of the published
    tables has a single gap, so both rules give the published numbers.
    """
    sweep = sweep.measured_points()
    delta = sweep.delta
    top = float(np.max(np.clip(delta, 0, None))) if len(delta) else 0.0
    if not np.isfinite(top) or top <= 1e-9 or len(delta) < 3:
        return float("nan")
    return float(np.std(np.diff(delta / top)))


def quality_grid(sweep: Sweep, p_max: float, points: int = GRID_POINTS) -> np.ndarray:
    """Quality at ``np.linspace(0, p_max, points)`` of distance, interpolated linearly over the measured
    points sorted by distance (pass the whole sweep, not a truncated one); grid points outside the
    measured distances are dropped. Returns the kept values."""
    if sweep.quality is None:
        raise TadaError("this sweep has no quality values")
    sweep = sweep.measured_points()
    ok = np.isfinite(sweep.distance) & np.isfinite(sweep.quality)
    d, q = sweep.distance[ok], sweep.quality[ok]
    if not len(d):
        return np.zeros(0)
    order = np.argsort(d, kind="stable")
    d, q = d[order], q[order]
    grid = np.linspace(0.0, p_max, points)
    grid = grid[(grid >= d[0] - 1e-9) & (grid <= d[-1] + 1e-9)]
    return np.interp(grid, d, q)


def average_quality(pos: Sweep, neg: Sweep, p_max_pos: float, p_max_neg: float) -> float:
    """TADA Sec. 5.1 "Average Quality": the mean of the two directions' mean grid quality
    (:func:`quality_grid` of each whole sweep); a direction with no grid point is left out."""
    means = [float(g.mean()) for g in (quality_grid(pos, p_max_pos), quality_grid(neg, p_max_neg)) if len(g)]
    return float(np.mean(means)) if means else float("nan")


def p_max(pci_max_distances: Sequence[float]) -> float:
    """P_max: the smallest of the largest distances the PCI variants (all layers, functional layers) reach."""
    values = [float(x) for x in pci_max_distances if np.isfinite(x) and x > 0]
    if not values:
        raise TadaError("P_max needs the PCI baseline's distances; none is positive")
    return min(values)


__all__ = ["Sweep", "ordered", "truncate", "auc", "smoothness", "quality_grid", "average_quality", "p_max",
           "GRID_POINTS"]
