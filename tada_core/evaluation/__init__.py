"""Measuring steering: scorers, metrics, statistics, alpha sweeps, the Sec. 5.1 benchmark, plots."""
