"""Confidence intervals: every verdict on the organism comes with one.

:func:`bootstrap_ci` resamples clusters (the prompts, whose clips share a prompt and so are
not independent) with replacement and returns the percentile interval of the mean.
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np

from tada_core.errors import TadaError


def bootstrap_ci(values: Sequence[float], groups: Sequence | None = None, *, level: float = 0.95,
                 n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaNs dropped).

    ``groups``: a cluster label per value (e.g. the prompt); whole clusters are resampled,
    so clips that share a prompt count as one draw. Seeded: the same input gives the same
    interval.
    """
    v = np.asarray(values, dtype=np.float64)
    g = np.arange(len(v)) if groups is None else np.asarray(groups)
    if len(g) != len(v):
        raise TadaError(f"{len(g)} groups for {len(v)} values; give one group per value")
    keep = np.isfinite(v)
    v, g = v[keep], g[keep]
    if len(v) == 0:
        return float("nan"), float("nan")
    labels, inverse = np.unique(g, return_inverse=True)
    sums = np.bincount(inverse, weights=v, minlength=len(labels))
    counts = np.bincount(inverse, minlength=len(labels)).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(labels), size=(n_boot, len(labels)))
    means = sums[draws].sum(1) / counts[draws].sum(1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def bootstrap_intervals(statistic: Callable[[np.ndarray], np.ndarray], groups: Sequence, *, level: float = 0.95,
                        n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """Percentile intervals ``[k, 2]`` of a vector ``statistic(rows)`` under a cluster bootstrap.

    ``statistic`` takes an index array into the rows (several rows may repeat) and returns
    ``k`` numbers; whole ``groups`` of rows are resampled together. Non-finite draws are dropped.
    """
    g = np.asarray(groups)
    labels, inverse = np.unique(g, return_inverse=True)
    members = [np.flatnonzero(inverse == i) for i in range(len(labels))]
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(np.concatenate([members[i] for i in rng.integers(0, len(labels), len(labels))]))
                      for _ in range(n_boot)], dtype=np.float64)
    alpha = (1 - level) / 2
    with np.errstate(all="ignore"):
        return np.stack([np.nanquantile(draws, alpha, axis=0), np.nanquantile(draws, 1 - alpha, axis=0)], axis=-1)


def crossed_intervals(statistic: Callable[[np.ndarray, np.ndarray], np.ndarray], n_rows: int, n_cols: int, *,
                      level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """Percentile intervals ``[k, 2]`` of a vector ``statistic(rows, cols)`` under a crossed bootstrap.

    For data on a grid of two crossed random factors (prompts x seeds: every prompt is run with every
    seed), rows and columns are resampled independently with replacement and ``statistic`` gets the
    two index arrays (the pigeonhole bootstrap, Owen 2007). Non-finite draws are dropped.
    """
    if n_rows < 1 or n_cols < 1:
        raise TadaError(f"a crossed bootstrap needs at least one row and one column; got {n_rows} x {n_cols}")
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(rng.integers(0, n_rows, n_rows), rng.integers(0, n_cols, n_cols))
                      for _ in range(n_boot)], dtype=np.float64)
    alpha = (1 - level) / 2
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # an all-NaN column gives a NaN interval
        return np.stack([np.nanquantile(draws, alpha, axis=0), np.nanquantile(draws, 1 - alpha, axis=0)], axis=-1)


__all__ = ["bootstrap_ci", "bootstrap_intervals", "crossed_intervals"]
