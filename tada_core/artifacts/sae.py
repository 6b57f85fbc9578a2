"""TopK sparse autoencoders (TADA Sec. 3, Eq. 4-5) as an artifact, in EleutherAI sparsify's on-disk layout.

Training and concept-feature selection are in :mod:`tada_core.methods.sae`.

The model::

    f     = TopK(W_enc (h - b_pre))          (Eq. 4; ReLU before TopK, as sparsify does)
    h_hat = W_dec f + b_pre                  (Eq. 5; decoder rows kept at unit norm)

trained on the fraction of variance unexplained (FVU) plus sparsify's AuxK term, which
lets latents that have not fired for a while reconstruct the residual so they come back.

Concept features: the TF-IDF score of Eq. 6 from the mean latent activations on two
contrastive prompt sets, the top-tau features (Table 1), and the steering vector as the
sum of their decoder directions (Eq. 7), applied as h + alpha v (Eq. 8) by
:func:`tada_core.interventions.hooks.steer`.

On disk, one folder per hookpoint: ``cfg.json`` and ``sae.safetensors`` with
``encoder.weight`` [latents, d_in], ``encoder.bias`` [latents], ``W_dec`` [latents, d_in]
and ``b_dec`` [d_in]: the layout of sparsify's ``SparseCoder.save_to_disk``, so SAEs
trained with either tool load in the other.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import torch
from torch import Tensor, nn

from tada_core.errors import TadaError
from tada_core.runtime.io import atomic_write_text, read_json, read_tensors, resolve, save_tensors, write_json

SAE_FILES = ("cfg.json", "sae.safetensors")
SAE_KEYS = ("encoder.weight", "encoder.bias", "W_dec", "b_dec")
SAE_KIND = "tada-sae"  # the artifact folder's own config.json (beside the hookpoint folders)
# cfg.json fields written by this module, sparsify or the TADA reference code that are computed here, or that
# describe training only (multi_topk: an extra loss; batch_topk / sample_topk: how latents were selected while
# training, which the reference's load_from_disk switches off, so its inference is per-token TopK as here)
_BENIGN = {"d_in", "expansion_factor", "k", "num_latents", "normalize_decoder", "multi_topk", "dtype",
           "layer", "hookpoint", "input_unit_norm", "batch_topk", "sample_topk"}
# accepted only at their plain-TopK values
_CHECKED = {"activation", "transcode", "skip_connection", "signed", "encoder_pkm", "decoder_xformers"}
UNIT_NORM_EPS = 1e-5  # input_unit_norm: (h - mean) / (std + eps), as the reference's preprocess_input


@dataclasses.dataclass
class SaeConfig:
    """The fields of sparsify's ``cfg.json`` that define a TopK SAE."""

    d_in: int
    expansion_factor: int = 4
    k: int = 32
    num_latents: int = 0  # 0: d_in * expansion_factor
    normalize_decoder: bool = True
    multi_topk: bool = False  # sparsify's extra training loss; inference is plain TopK either way
    skip_connection: bool = False  # sparsify's linear skip path: not implemented, refused when true
    input_unit_norm: bool = False  # the reference's per-token standardization before encoding (undone after)
    batch_topk: bool = False   # trained with BatchTopK (Bussmann et al.); recorded, inference is per token
    sample_topk: bool = False  # trained with TopK over whole samples; recorded, inference is per token

    @property
    def latents(self) -> int:
        return self.num_latents or self.d_in * self.expansion_factor

    def check(self) -> None:
        for name in ("d_in", "expansion_factor", "k"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise TadaError(f"SAE {name} must be an integer >= 1; got {v!r}")
        if self.k > self.latents:
            raise TadaError(f"SAE k={self.k} exceeds its {self.latents} latents")
        if self.skip_connection:
            raise TadaError("skip_connection SAEs are not implemented (TADA uses plain TopK)")

    @classmethod
    def from_cfg(cls, raw: dict, d_in: int, where: str = "cfg.json") -> "SaeConfig":
        """Read a sparsify ``cfg.json``, refusing any field whose computation this module does not implement."""
        if not isinstance(raw, dict):
            raise TadaError(f"{where} must hold a JSON object; got {type(raw).__name__}")
        refused = []
        if raw.get("activation", "topk") != "topk":
            refused.append(f"activation={raw['activation']!r} (only 'topk' is implemented)")
        for flag in ("transcode", "skip_connection", "signed", "encoder_pkm", "decoder_xformers"):
            if raw.get(flag):
                refused.append(f"{flag}=true (not implemented)")
        unknown = sorted(set(raw) - _BENIGN - _CHECKED)
        if unknown:
            refused.append(f"unknown fields {unknown} (loading them as a plain TopK SAE could compute the wrong "
                           f"thing)")
        if refused:
            raise TadaError(f"{where}: this SAE cannot be computed here: {'; '.join(refused)}. Accepted: a TopK "
                            f"SAE with fields {sorted(_BENIGN | _CHECKED)}")
        for flag in ("input_unit_norm", "batch_topk", "sample_topk", "normalize_decoder", "multi_topk"):
            if flag in raw and not isinstance(raw[flag], bool):
                raise TadaError(f"{where}: {flag} must be true or false; got {raw[flag]!r}")
        fields = {f.name for f in dataclasses.fields(cls)} - {"skip_connection"}
        cfg = cls(**{k: v for k, v in raw.items() if k in fields and k != "d_in"}, d_in=int(raw.get("d_in", d_in)))
        cfg.check()
        return cfg


def _sparse_decode(acts: Tensor, indices: Tensor, W_dec: Tensor) -> Tensor:
    """sum_k acts[t, k] * W_dec[indices[t, k]] without materializing [tokens, k, d_in]."""
    return nn.functional.embedding_bag(indices, W_dec, per_sample_weights=acts.to(W_dec.dtype), mode="sum")


class ForwardOutput(NamedTuple):
    sae_out: Tensor
    latent_acts: Tensor      # [tokens, k]
    latent_indices: Tensor   # [tokens, k]
    fvu: Tensor
    auxk_loss: Tensor


class TopKSAE(nn.Module):
    """A TopK sparse autoencoder over ``d_in``-dimensional activations (Eq. 4-5).

    With ``cfg.input_unit_norm`` (the reference code's option) each token is standardized
    before encoding, ``x = (h - mean(h)) / (std(h) + 1e-5)`` over its features, and the
    reconstruction is mapped back, ``h_hat = x_hat * std + mean``; latents and decoder
    directions then live in the standardized space.

    Inference selects the k largest latents of every token, whatever the SAE was trained
    with: the reference code trains BatchTopK by default but its ``load_from_disk`` sets
    ``batch_topk`` and ``sample_topk`` to false, so its steering computes per-token TopK
    too. ``selection="batch"`` gives BatchTopK over the rows passed (the k * rows largest
    latents of the whole batch), the reference's training-time selection.
    """

    def __init__(self, cfg: SaeConfig, generator: torch.Generator | None = None):
        super().__init__()
        cfg.check()
        self.cfg = cfg
        self.encoder = nn.Linear(cfg.d_in, cfg.latents)
        with torch.no_grad():
            w = torch.randn(cfg.latents, cfg.d_in, generator=generator) / math.sqrt(cfg.d_in)
            self.encoder.weight.copy_(w)
            self.encoder.bias.zero_()
        self.W_dec = nn.Parameter(self.encoder.weight.data.clone())
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))
        if cfg.normalize_decoder:
            self.set_decoder_norm_to_unit_norm()

    # ----- Eq. 4-5 -------------------------------------------------------------------
    def standardize(self, h: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """The SAE's input space: ``h`` itself, or per-token standardized with ``input_unit_norm``."""
        if not self.cfg.input_unit_norm:
            return h, None, None
        mean = h.mean(-1, keepdim=True)
        x = h - mean
        std = x.std(-1, keepdim=True)
        return x / (std + UNIT_NORM_EPS), mean, std

    def pre_acts(self, h: Tensor) -> Tensor:
        """ReLU(W_enc (x - b_pre) + b_enc) for every latent, x the SAE's input space (see :meth:`standardize`)."""
        return torch.relu(self.encoder(self.standardize(h)[0] - self.b_dec))

    def _select(self, pre: Tensor, k: int, selection: str) -> tuple[Tensor, Tensor]:
        if selection == "token":
            return pre.topk(k, dim=-1, sorted=False)
        if selection == "batch":
            flat = pre.reshape(-1)
            acts, where = flat.topk(k * pre.shape[0], sorted=False)
            dense = torch.zeros_like(flat).scatter_(0, where, acts).reshape(pre.shape)
            return dense, torch.arange(pre.shape[1], device=pre.device).expand(pre.shape[0], -1)
        raise TadaError(f"selection must be 'token' or 'batch'; got {selection!r}")

    def encode(self, h: Tensor, selection: str = "token") -> tuple[Tensor, Tensor]:
        """Eq. 4: the k largest latent activations of each token and their indices.

        ``selection="batch"`` (BatchTopK over the rows of ``h``) returns every latent of
        every row (zeros outside the selection) with indices 0..latents-1.
        """
        return self._select(self.pre_acts(h), self.cfg.k, selection)

    def decode(self, acts: Tensor, indices: Tensor) -> Tensor:
        """Eq. 5 in the SAE's input space: the chosen decoder rows weighted by their activations, plus b_pre."""
        return _sparse_decode(acts, indices, self.W_dec) + self.b_dec

    def dense_latents(self, h: Tensor, selection: str = "token") -> Tensor:
        """f as a dense [tokens, latents] tensor (zeros outside the top k)."""
        acts, idx = self.encode(h, selection)
        if selection == "batch":
            return acts
        return torch.zeros(h.shape[0], self.cfg.latents, dtype=acts.dtype, device=h.device).scatter_(1, idx, acts)

    def reconstruct(self, h: Tensor, selection: str = "token") -> Tensor:
        """h_hat in the activations' own space (standardization undone)."""
        return self(h, selection=selection).sae_out

    def forward(self, h: Tensor, dead_mask: Tensor | None = None, selection: str = "token",
                total_var: Tensor | None = None) -> ForwardOutput:
        """Encode, decode and the training losses. ``total_var``: the denominator of FVU when ``h`` is
        one process's share of a batch (the whole batch's variance, so that the shares' losses add up
        to the batch's); default: ``h``'s own."""
        x, mean, std = self.standardize(h)
        pre = torch.relu(self.encoder(x - self.b_dec))
        acts, idx = self._select(pre, self.cfg.k, selection)
        out = _sparse_decode(acts, idx, self.W_dec) + self.b_dec
        err = out - x
        if total_var is None:
            total_var = (x - x.mean(0)).pow(2).sum()
        total_var = total_var.clamp_min(1e-12)
        fvu = err.pow(2).sum() / total_var
        aux = x.new_zeros(())
        if dead_mask is not None and dead_mask.any():
            # AuxK (Gao et al. 2024, as in sparsify): dead latents reconstruct the residual.
            k_aux = self.cfg.d_in // 2
            scale = min(int(dead_mask.sum()) / k_aux, 1.0)
            k_aux = min(k_aux, int(dead_mask.sum()))
            aux_pre = torch.where(dead_mask[None], pre, -torch.inf)
            a, i = aux_pre.topk(k_aux, dim=-1, sorted=False)
            e_hat = _sparse_decode(a.clamp_min(0), i, self.W_dec)
            aux = scale * (e_hat + err.detach()).pow(2).sum() / total_var
        if mean is not None:
            out = out * std + mean
        return ForwardOutput(out, acts, idx, fvu, aux)

    # ----- decoder constraints ---------------------------------------------------------
    @torch.no_grad()
    def set_decoder_norm_to_unit_norm(self) -> None:
        self.W_dec.data /= self.W_dec.data.norm(dim=1, keepdim=True).clamp_min(torch.finfo(self.W_dec.dtype).eps)

    @torch.no_grad()
    def remove_gradient_parallel_to_decoder_directions(self) -> None:
        if self.W_dec.grad is None:
            return
        parallel = (self.W_dec.grad * self.W_dec.data).sum(dim=1, keepdim=True)
        self.W_dec.grad -= parallel * self.W_dec.data

    # ----- disk (sparsify layout) ------------------------------------------------------
    def save(self, folder: str | Path, extra: dict | None = None) -> Path:
        """Write ``cfg.json`` + ``sae.safetensors`` (sparsify's layout) to ``folder``."""
        folder = Path(folder)
        save_tensors(folder / "sae.safetensors", {"encoder.weight": self.encoder.weight, "encoder.bias":
                                                  self.encoder.bias, "W_dec": self.W_dec, "b_dec": self.b_dec})
        write_json(folder / "cfg.json", {**dataclasses.asdict(self.cfg), **(extra or {})})
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> "TopKSAE":
        """Load one hookpoint folder (``cfg.json`` + ``sae.safetensors``) written by :meth:`save` or by sparsify."""
        folder = Path(folder)
        cfg, t = _read_hookpoint(folder)
        sae = cls(cfg)
        with torch.no_grad():
            sae.encoder.weight.copy_(t["encoder.weight"])
            sae.encoder.bias.copy_(t["encoder.bias"])
            sae.W_dec.copy_(t["W_dec"])
            sae.b_dec.copy_(t["b_dec"])
        return sae.to(device).eval()

    load_from_disk = load

    @classmethod
    def load_from_hub(cls, repo_id: str, hookpoint: str, revision: str | None = None,
                      device: str | torch.device = "cpu") -> "TopKSAE":
        """One hookpoint of an SAE repo on the Hub (only its two files are downloaded)."""
        folder = resolve(repo_id, revision, allow_patterns=[f"{hookpoint}/{f}" for f in SAE_FILES])
        if not (folder / hookpoint).is_dir():
            raise TadaError(f"{repo_id} has no hookpoint {hookpoint!r}")
        return cls.load(folder / hookpoint, device)

    @classmethod
    def load_many(cls, source: str | Path, hookpoints: Iterable[str] | None = None, revision: str | None = None,
                  device: str | torch.device = "cpu") -> dict[str, "TopKSAE"]:
        """Every hookpoint of an SAE folder or Hub repo id (or the ``hookpoints`` given): hookpoint -> SAE."""
        patterns = ([f"{hp}/{f}" for hp in hookpoints for f in SAE_FILES] if hookpoints is not None
                    else [f"*/{f}" for f in SAE_FILES] + [f"**/{f}" for f in SAE_FILES])
        folder = resolve(source, revision, allow_patterns=patterns)
        found = validate_sae_folder(folder)
        wanted = list(found) if hookpoints is None else list(hookpoints)
        missing = [hp for hp in wanted if hp not in found]
        if missing:
            raise TadaError(f"{source} has no hookpoints {missing}; it has {sorted(found)}")
        return {hp: cls.load(folder / hp, device) for hp in wanted}


def _read_hookpoint(folder: Path) -> tuple[SaeConfig, dict[str, Tensor]]:
    """The config and tensors of one hookpoint folder, checked against each other."""
    raw = read_json(folder / "cfg.json")
    t = read_tensors(folder / "sae.safetensors")
    missing = [k for k in SAE_KEYS if k not in t]
    if missing:
        raise TadaError(f"{folder.name}/sae.safetensors lacks {missing}; sparsify SAEs have {list(SAE_KEYS)}")
    cfg = SaeConfig.from_cfg(raw, int(t["W_dec"].shape[1]), where=f"{folder.name}/cfg.json")
    if cfg.num_latents == 0 and t["W_dec"].shape[0] != cfg.latents:
        cfg.num_latents = int(t["W_dec"].shape[0])
    shape = (cfg.latents, cfg.d_in)
    if tuple(t["W_dec"].shape) != shape or tuple(t["encoder.weight"].shape) != shape \
            or tuple(t["encoder.bias"].shape) != (cfg.latents,) or tuple(t["b_dec"].shape) != (cfg.d_in,):
        raise TadaError(f"{folder.name}: encoder {tuple(t['encoder.weight'].shape)} and decoder "
                        f"{tuple(t['W_dec'].shape)} do not fit d_in={cfg.d_in} with {cfg.latents} latents")
    return cfg, t


def validate_sae_folder(folder: str | Path) -> dict[str, SaeConfig]:
    """Check an SAE folder in sparsify's layout (one sub-folder per hookpoint); returns hookpoint -> config."""
    folder = Path(folder)
    hookpoints = sorted(p.parent for p in folder.rglob("cfg.json"))
    if not hookpoints:
        raise TadaError(f"{folder.name} has no <hookpoint>/cfg.json; an SAE folder holds one per hookpoint")
    return {str(hp.relative_to(folder)): _read_hookpoint(hp)[0] for hp in hookpoints}


ARTIFACT_FILE, CARD_FILE = "config.json", "README.md"


@dataclasses.dataclass
class SaeArtifact:
    """An SAE artifact folder: one TopK SAE per layer (sparsify's layout, one sub-folder per hookpoint) and the
    folder's own ``config.json`` (this object): the base model, the layers and their hookpoints, how they were
    trained (cached tokens, epochs, the (m, k) sweep with its held-out metrics) and, passed in explicitly, the
    command that made it. :meth:`save` / :meth:`read` round-trip exactly; unknown fields are refused."""

    base_model: str
    layers: list[int]
    hookpoints: dict[str, str]
    cache_tokens: int
    epochs: int
    sweep: dict[str, list[dict[str, Any]]]
    concept: str | None = None
    command: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": SAE_KIND, **dataclasses.asdict(self)}
        if d["command"] is None:
            del d["command"]    # folders written before provenance was recorded have no such field
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = ARTIFACT_FILE) -> "SaeArtifact":
        if not isinstance(d, dict) or d.get("kind") != SAE_KIND:
            raise TadaError(f"{where} is not a {SAE_KIND} config (its kind must be {SAE_KIND!r})")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields - {"kind"})
        if unknown:
            raise TadaError(f"{where} has fields this tada does not know: {', '.join(unknown)} "
                            f"(known: {', '.join(sorted(fields))})")
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
        missing = sorted(required - set(d))
        if missing:
            raise TadaError(f"{where} lacks {', '.join(missing)}")
        out = cls(**{k: v for k, v in d.items() if k != "kind"})
        if sorted(out.hookpoints) != sorted(str(i) for i in out.layers):
            raise TadaError(f"{where}: hookpoints {sorted(out.hookpoints)} do not match layers {out.layers}")
        return out

    @classmethod
    def read(cls, folder: str | Path) -> "SaeArtifact | None":
        """The ``config.json`` of an SAE folder, or None for a bare sparsify folder that has none."""
        path = Path(folder) / ARTIFACT_FILE
        return cls.from_dict(read_json(path), f"{Path(folder).name}/{ARTIFACT_FILE}") if path.is_file() else None

    def save(self, folder: str | Path, saes: dict[int, "TopKSAE"], table: str) -> Path:
        """Write every SAE to its hookpoint folder, ``config.json`` and the model card (``table``: the sweep as
        markdown, shown on the card)."""
        folder = Path(folder)
        missing = sorted(set(self.layers) - set(saes))
        if missing:
            raise TadaError(f"no SAE given for layers {missing}")
        for layer in self.layers:
            path = self.hookpoints[str(layer)]
            saes[layer].save(folder / path, extra={"layer": layer, "hookpoint": path})
        write_json(folder / ARTIFACT_FILE, self.to_dict())
        where = str(folder) if not folder.is_absolute() else folder.name
        atomic_write_text(folder / CARD_FILE, sae_card(folder.name, self.base_model, where, table, self.cache_tokens,
                                                       command=self.command))
        return folder


def sae_card(name: str, base_model: str, source: str, table: str, tokens: int, command: str | None = None) -> str:
    """The model card of an SAE artifact folder, with a usage snippet that runs as written."""
    return (f"---\nlibrary_name: tada-steer\nlicense: apache-2.0\ntags:\n- tada\n- sparse-autoencoder\n- sparsify\n---\n\n"
            f"# {name}: TopK SAEs on {base_model}\n\nOne folder per hookpoint in EleutherAI sparsify's layout "
            f"(`cfg.json` + `sae.safetensors`), trained on {tokens} cached tokens per layer with the `tada-steer` "
            f"package (`pip install tada-steer`); the (m, k) sweep below picks the lowest FVU + dead + "
            f"high-frequency fractions (TADA Sec. 5.1).\n\n"
            f"```python\nfrom tada_core import TopKSAE\n\nsaes = TopKSAE.load_many({source!r})   "
            f"# this folder, or its Hub repo id: hookpoint -> SAE\nprint({{hp: sae.cfg.latents for hp, sae in "
            f"saes.items()}})\n```\n\n{table}\n"
            + (f"\nMade by: `{command}`.\n" if command else ""))


__all__ = ["SaeArtifact", "SaeConfig", "TopKSAE", "ForwardOutput", "validate_sae_folder", "sae_card", "SAE_KIND", "SAE_FILES", "SAE_KEYS"]
