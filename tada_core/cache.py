"""Activation cache: cross-attention outputs streamed to sharded safetensors, for SAE training.

``cache_activations`` generates the prompts in fixed batches under
:func:`tada_core.hooks.record` (``mode="tokens"``: a random subsample of frames per
diffusion step, seeded per batch) and writes each batch as one shard,
``shard_<n>.safetensors`` with a tensor ``layers.<i>`` of shape [tokens, width] per layer.
A shard is written to a temporary name and renamed, then ``manifest.json`` (the cache's
settings and its finished shards) is rewritten the same way. So:

* memory is bounded by one batch, whatever the number of prompts;
* an interrupted run, rerun with the same settings, skips finished shards and redoes
  only the batch in flight; since batches and their seeds are fixed, the resumed cache
  equals an uninterrupted one, tensor for tensor.

``ActivationCache(folder).batches(layer, batch_tokens)`` streams the cache back as
[batch_tokens, width] tensors (shuffled within a shard buffer, seeded), the input of
:func:`tada_core.sae.train_sae`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterator, Sequence

import torch

from .errors import TadaError, check_prompts
from .hooks import record

MANIFEST = "manifest.json"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def cache_activations(adapter, prompts: Sequence[str], out: str | Path, *, layers: Sequence[int] | None = None,
                      seeds: Sequence[int] | None = None, tokens: int = 16, batch_size: int = 16, seed: int = 0,
                      duration: float | None = None, steps: int | None = None, guidance: float | None = None,
                      progress: bool = True) -> "ActivationCache":
    """Record ``tokens`` frames per diffusion step and prompt at ``layers``; write shards to ``out``.

    ``seeds``: one generation seed per prompt (default 0, 1, 2, ...). ``seed``: base seed of
    the frame subsampling (batch b uses ``seed + b``). Rerun with the same arguments to resume.
    """
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    prompts = check_prompts(prompts, "cache prompts")
    seeds = list(range(len(prompts))) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != len(prompts):
        raise TadaError(f"{len(seeds)} seeds for {len(prompts)} prompts; give one seed per prompt")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TadaError(f"batch_size must be an integer >= 1; got {batch_size!r}")
    layer_ids = list(adapter.resolve_layers(layers))
    settings = adapter.check_settings(prompts[:1], 0, duration, steps, guidance)
    spec = {"model": adapter.name, "layers": layer_ids,  # no local paths: resumable from another checkout
            "layer_paths": {str(i): adapter.layers[i].path for i in layer_ids},
            "widths": {str(i): adapter.layers[i].width for i in layer_ids},
            "prompts_sha256": hashlib.sha256(json.dumps(prompts).encode()).hexdigest(), "n_prompts": len(prompts),
            "seeds_sha256": hashlib.sha256(json.dumps(seeds).encode()).hexdigest(), "tokens": tokens,
            "batch_size": batch_size, "seed": seed, "duration": settings["duration"], "steps": settings["steps"],
            "guidance": settings["guidance"]}
    folder = Path(out)
    manifest_path = folder / MANIFEST
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest["spec"] != spec:
            diff = sorted(k for k in set(spec) | set(manifest["spec"]) if spec.get(k) != manifest["spec"].get(k))
            raise TadaError(f"{folder} holds a different cache (differs in: {', '.join(diff)}); resume with the "
                            f"same settings, or choose another folder")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        manifest = {"spec": spec, "shards": {}}
        _atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
    (folder / "prompts.json").write_text(json.dumps({"prompts": prompts, "seeds": seeds}) + "\n", encoding="utf-8")

    n_batches = (len(prompts) + batch_size - 1) // batch_size
    todo = [b for b in range(n_batches) if f"{b:05d}" not in manifest["shards"]]
    bar = tqdm(total=n_batches, initial=n_batches - len(todo), desc="cache activations", unit="batch",
               disable=not progress)
    try:
        for b in todo:
            p = prompts[b * batch_size:(b + 1) * batch_size]
            s = seeds[b * batch_size:(b + 1) * batch_size]
            with record(adapter, layers=layer_ids, mode="tokens", tokens=tokens, seed=seed + b) as rec:
                adapter.generate(p, seeds=s, duration=settings["duration"], steps=settings["steps"],
                                 guidance=settings["guidance"])
            tensors = {f"layers.{i}": a.reshape(-1, a.shape[-1]).contiguous() for i, a in rec.activations.items()}
            name = f"shard_{b:05d}.safetensors"
            tmp = folder / (name + ".tmp")
            save_file(tensors, str(tmp))
            os.replace(tmp, folder / name)
            manifest["shards"][f"{b:05d}"] = {"file": name, "tokens": int(next(iter(tensors.values())).shape[0]),
                                              "prompts": [b * batch_size, b * batch_size + len(p)]}
            _atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
            bar.update(1)
    finally:
        bar.close()
    return ActivationCache(folder)


class ActivationCache:
    """A finished (or partial) cache folder; see the module docstring."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        if not path.is_file():
            raise TadaError(f"{self.folder} is not an activation cache (no {MANIFEST}); make one with `tada sae cache`")
        manifest = json.loads(path.read_text(encoding="utf-8"))
        self.spec = manifest["spec"]
        self.shards = [manifest["shards"][k] for k in sorted(manifest["shards"])]

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
        from safetensors import safe_open

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
