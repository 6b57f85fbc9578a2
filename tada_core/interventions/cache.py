"""Activation cache: cross-attention outputs streamed to sharded safetensors, for SAE training.

``cache_activations`` generates the prompts in fixed batches under
:func:`tada_core.interventions.hooks.record` (``mode="tokens"``: a random subsample of frames per
diffusion step, seeded per batch) and writes each batch as one shard,
``shard_<n>.safetensors`` with a tensor ``layers.<i>`` of shape [tokens, width] per layer.
A shard is written to a temporary name and renamed, then recorded in ``shards.jsonl``
(the journal of a :mod:`tada_core.runtime.jobs` job, one unit per batch, whose ``spec.json`` holds
the cache's settings). So:

* memory is bounded by one batch, whatever the number of prompts;
* an interrupted run, rerun with the same settings, skips finished shards and redoes
  only the batch in flight; since batches and their seeds are fixed, the resumed cache
  equals an uninterrupted one, tensor for tensor;
* under ``accelerate launch`` (``processes``, :mod:`tada_core.runtime.distributed`) the batches are
  dealt across the processes, each writing its own shards, and the folder ends as a
  single-process run leaves it.

``ActivationCache(folder).batches(layer, batch_tokens)`` streams the cache back as
[batch_tokens, width] tensors (shuffled within a shard buffer, seeded), the input of
:func:`tada_core.methods.sae.train_sae`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator, Sequence

import torch
from safetensors import safe_open

from tada_core.runtime.distributed import Processes
from tada_core.errors import TadaError, check_prompts
from tada_core.interventions.hooks import record
from tada_core.runtime.io import ResumableFolder, read_json, save_tensors, write_json
from tada_core.runtime.jobs import Job, Stage, run
from tada_core.adapters.settings import GenerationSettings, check_int

SPEC_FILE, SHARDS_FILE = "spec.json", "shards.jsonl"


def cache_activations(adapter, prompts: Sequence[str], out: str | Path, *, layers: Sequence[int] | None = None,
                      seeds: Sequence[int] | None = None, tokens: int = 16, seed: int = 0,
                      settings: GenerationSettings | None = None, progress: bool = True,
                      processes: Processes | None = None) -> "ActivationCache":
    """Record ``tokens`` frames per diffusion step and prompt at ``layers``; write shards to ``out``.

    ``seeds``: one generation seed per prompt (default 0, 1, 2, ...). ``seed``: base seed of
    the frame subsampling (batch b uses ``seed + b``). ``settings.batch_size`` prompts make a
    shard. Rerun with the same arguments to resume. ``processes``: this process's share of a
    multi-process run (:func:`tada_core.runtime.distributed.launched`).
    """
    prompts = check_prompts(prompts, "cache prompts")
    seeds = list(range(len(prompts))) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != len(prompts):
        raise TadaError(f"{len(seeds)} seeds for {len(prompts)} prompts; give one seed per prompt")
    check_int("tokens", tokens)
    layer_ids = list(adapter.resolve_layers(layers))
    settings = adapter.resolve_settings(settings)
    batch_size = settings.batch_size
    # no local paths: resumable from another checkout
    spec = {"model": adapter.name, "weights": adapter.weights_fingerprint(), **adapter.options(), "layers": layer_ids,
            "layer_paths": {str(i): adapter.layers[i].path for i in layer_ids},
            "widths": {str(i): adapter.layers[i].width for i in layer_ids},
            "prompts_sha256": hashlib.sha256(json.dumps(prompts).encode()).hexdigest(), "n_prompts": len(prompts),
            "seeds_sha256": hashlib.sha256(json.dumps(seeds).encode()).hexdigest(), "tokens": tokens,
            "batch_size": batch_size, "seed": seed, **settings.to_dict()}
    folder = Path(out)
    processes = processes or Processes()

    def stages() -> list[Stage]:     # once the folder's spec is checked
        if processes.main:
            write_json(folder / "prompts.json", {"prompts": prompts, "seeds": seeds}, indent=None)
        return [Stage(range((len(prompts) + batch_size - 1) // batch_size), shard)]

    def shard(b: int) -> dict:
        p = prompts[b * batch_size:(b + 1) * batch_size]
        s = seeds[b * batch_size:(b + 1) * batch_size]
        with record(adapter, layers=layer_ids, mode="tokens", tokens=tokens, seed=seed + b) as rec:
            adapter.generate(p, seeds=s, settings=settings)
        tensors = {f"layers.{i}": a.reshape(-1, a.shape[-1]) for i, a in rec.activations.items()}
        name = f"shard_{b:05d}.safetensors"
        save_tensors(folder / name, tensors)
        return {"batch": b, "file": name, "tokens": int(next(iter(tensors.values())).shape[0]),
                "prompts": [b * batch_size, b * batch_size + len(p)]}

    def batch_of(rec: dict) -> int | None:     # a record whose shard file is gone is redone
        return int(rec["batch"]) if (folder / str(rec["file"])).is_file() else None

    job = Job(name="cache activations", spec=spec, stages=stages, reduce=lambda done: ActivationCache(folder),
              key=batch_of, unit="batch", what="cache", spec_file=SPEC_FILE, journal_file=SHARDS_FILE)
    return run(job, folder, processes=processes, progress=progress)


class ActivationCache:
    """A finished (or partial) cache folder; see the module docstring."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not (self.folder / SPEC_FILE).is_file():
            raise TadaError(f"{self.folder} is not an activation cache (no {SPEC_FILE}); make one with "
                            f"`tada sae cache`")
        self.spec = read_json(self.folder / SPEC_FILE)
        by_batch = {}
        for rec in ResumableFolder(self.folder, self.spec, spec_file=SPEC_FILE, journal_file=SHARDS_FILE).records():
            if (self.folder / str(rec.get("file"))).is_file():
                by_batch[rec["batch"]] = rec
        self.shards = [by_batch[b] for b in sorted(by_batch)]

    @property
    def layers(self) -> list[int]:
        return list(self.spec["layers"])

    @property
    def n_tokens(self) -> int:
        return sum(s["tokens"] for s in self.shards)

    def width(self, layer: int) -> int:
        return int(self.spec["widths"][str(layer)])

    def _check_layer(self, layer: int) -> None:
        if layer not in self.layers:
            raise TadaError(f"the cache in {self.folder} has layers {self.layers}, not {layer}")

    def shard_tensors(self, layer: int) -> Iterator[torch.Tensor]:
        """Each shard's [tokens, width] activations for ``layer``, in order."""

        self._check_layer(layer)
        for s in self.shards:
            with safe_open(str(self.folder / s["file"]), framework="pt") as f:
                yield f.get_tensor(f"layers.{layer}")

    def batches(self, layer: int, batch_tokens: int = 1024, shuffle_seed: int | None = 0,
                buffer_shards: int = 8) -> Iterator[torch.Tensor]:
        """[batch_tokens, width] batches for SAE training, shuffled within ``buffer_shards`` shards at a time."""
        if batch_tokens < 1:
            raise TadaError(f"batch_tokens must be >= 1; got {batch_tokens}")
        gen = torch.Generator().manual_seed(shuffle_seed) if shuffle_seed is not None else None
        buffer: list[torch.Tensor] = []

        def drain(chunks):
            x = torch.cat(chunks)
            if gen is not None:
                x = x[torch.randperm(x.shape[0], generator=gen)]
            return x

        for t in self.shard_tensors(layer):
            buffer.append(t)
            if len(buffer) >= buffer_shards:
                yield from drain(buffer).split(batch_tokens)
                buffer = []
        if buffer:
            yield from drain(buffer).split(batch_tokens)


__all__ = ["cache_activations", "ActivationCache"]
