"""The steering benchmark of TADA Sec. 5.1 (Table 3): protocol, distances, quality, methods, runner.

* :mod:`.protocol`: AUC with P_max truncation, smoothness, the quality grid (plain numpy);
* :mod:`.distance`: preservation distances (multi-resolution log-mel; LPAPS from a checkpoint);
* :mod:`.quality`: quality measures (typicality; Audiobox Aesthetics when installed);
* :mod:`.methods`: CAA, SAE and the five baselines (PCI, Text / Token Embeddings, FreeSliders, AUSteer);
* :mod:`.residual`: the methods of a residual-stream (autoregressive) model: DiffMean One-to-All / All-to-All,
  the prompt swap, the text-embedding difference, a random control (MusicGen);
* :mod:`.runner`: the resumable benchmark of one concept, its tables and plot;
* :mod:`.controls`: each method against the random control, from a finished folder.
"""

from tada_core.evaluation.benchmark.distance import LPAPS, MelDistance, make_distance
from tada_core.evaluation.benchmark.methods import METHODS, make_method
from tada_core.evaluation.benchmark.protocol import auc, smoothness, truncate
from tada_core.evaluation.benchmark.quality import Typicality, make_quality
from tada_core.evaluation.benchmark.runner import BenchmarkResult, run_benchmark, write_tables

__all__ = ["run_benchmark", "BenchmarkResult", "write_tables", "METHODS", "make_method", "make_distance",
           "make_quality", "MelDistance", "LPAPS", "Typicality", "auc", "smoothness", "truncate"]
