"""Training TopK sparse autoencoders and selecting concept features (TADA Sec. 3, Eq. 6-8).

The SAE itself (Eq. 4-5) and its on-disk format are :mod:`tada_core.artifacts.sae`.
Concept features: the TF-IDF score of Eq. 6 from the mean latent activations on two
contrastive prompt sets, the top-tau features (Table 1), and the steering vector as the
sum of their decoder directions (Eq. 7), applied as h + alpha v (Eq. 8) by
:func:`tada_core.interventions.hooks.steer`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from tada_core.artifacts.sae import SaeConfig, TopKSAE
from tada_core.errors import TadaError
from tada_core.runtime.distributed import Processes


# training
# --------------------------------------------------------------------------------------
@dataclasses.dataclass
class SaeMetrics:
    """Reconstruction and health of an SAE on a set of activations."""

    fvu: float               # fraction of variance unexplained (lower is better)
    dead_fraction: float     # latents that never fired
    high_freq_fraction: float  # latents firing on more than 10% of tokens
    tokens: int


@torch.no_grad()
def evaluate_sae(sae: TopKSAE, batches: Iterable[Tensor], high_freq: float = 0.1) -> SaeMetrics:
    """FVU over all tokens, and dead / high-frequency latent fractions (the paper's selection criteria)."""
    err, sums, sq, n = 0.0, 0.0, 0.0, 0
    fires = torch.zeros(sae.cfg.latents)
    for x in batches:
        x = x.reshape(-1, sae.cfg.d_in).float()
        out = sae(x)
        err += float((out.sae_out - x).pow(2).sum())
        sums = sums + x.sum(0)
        sq += float(x.pow(2).sum())
        n += x.shape[0]
        fires += torch.bincount(out.latent_indices.flatten(), minlength=sae.cfg.latents).float()
    if n == 0:
        raise TadaError("no activations to evaluate the SAE on")
    var_sum = sq - float((sums ** 2).sum()) / n
    return SaeMetrics(fvu=err / max(var_sum, 1e-12), dead_fraction=float((fires == 0).float().mean()),
                      high_freq_fraction=float((fires / n > high_freq).float().mean()), tokens=n)


def train_sae(batches: Callable[[], Iterable[Tensor]], cfg: SaeConfig, *, epochs: int = 1, lr: float | None = None,
              auxk_alpha: float = 1 / 32, dead_after_tokens: int = 100_000, seed: int = 0,
              progress: bool = True, processes: Processes | None = None) -> TopKSAE:
    """Train a TopK SAE on activation batches; knows nothing about the model that made them.

    ``batches``: a callable returning a fresh iterable of [tokens, d_in] tensors (one pass
    = one epoch). ``lr`` defaults to sparsify's 2e-4 / sqrt(latents / 2**14). ``b_pre`` is
    initialized to the mean of the first batch; decoder rows are kept at unit norm.

    ``processes``: data-parallel training under ``accelerate launch``
    (:func:`tada_core.runtime.distributed.launched`): the SAE is wrapped by accelerate (DDP), each
    process takes its share of every batch's rows, the losses are the batch's (FVU over the
    whole batch's variance, summed over the shares) and firing statistics are shared, so each
    step is the single-process step up to float rounding; every process returns the SAE.
    """

    cfg.check()
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise TadaError(f"epochs must be an integer >= 1; got {epochs!r}")
    processes = processes or Processes()
    gen = torch.Generator().manual_seed(seed)
    sae = TopKSAE(cfg, generator=gen)
    lr = lr or 2e-4 / math.sqrt(cfg.latents / 2 ** 14)
    opt = torch.optim.Adam(sae.parameters(), lr=lr, eps=6.25e-10)
    model, device = sae, torch.device("cpu")
    if processes.distributed:
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=processes.state.device.type == "cpu")   # where the launch placed this process
        model, opt = accelerator.prepare(sae, opt)
        device = accelerator.device
    since_fired = torch.zeros(cfg.latents, dtype=torch.long, device=device)
    first = True
    bar = tqdm(desc=f"SAE m={cfg.expansion_factor} k={cfg.k}", unit="tok", unit_scale=True,
               disable=not progress or not processes.main)
    try:
        for _ in range(epochs):
            for x in batches():
                x = x.reshape(-1, cfg.d_in).float().to(device)
                if first:
                    with torch.no_grad():
                        sae.b_dec.copy_(x.mean(0))
                    first = False
                dead = since_fired > dead_after_tokens
                if processes.distributed:
                    with torch.no_grad():
                        xs = sae.standardize(x)[0]
                        total_var = (xs - xs.mean(0)).pow(2).sum()
                    share = x.tensor_split(processes.count)[processes.index]
                    out = model(share, dead_mask=dead, total_var=total_var)
                    # DDP averages the processes' gradients: scale so that they add up, as the batch's loss does
                    loss = (out.fvu + auxk_alpha * out.auxk_loss) * processes.count
                else:
                    out = model(x, dead_mask=dead)
                    loss = out.fvu + auxk_alpha * out.auxk_loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.normalize_decoder:
                    sae.remove_gradient_parallel_to_decoder_directions()
                opt.step()
                if cfg.normalize_decoder:
                    sae.set_decoder_norm_to_unit_norm()
                with torch.no_grad():
                    fired = torch.zeros(cfg.latents, dtype=torch.int32, device=device)
                    fired[out.latent_indices.flatten()] = 1
                    if processes.distributed:
                        import torch.distributed as dist

                        dist.all_reduce(fired, op=dist.ReduceOp.MAX)
                    since_fired += x.shape[0]
                    since_fired[fired.bool()] = 0
                bar.update(x.shape[0])
                bar.set_postfix(fvu=f"{float(out.fvu.detach()) * processes.count:.3f}")   # about the batch's
    finally:
        bar.close()
    if first:
        raise TadaError("the activation iterator yielded no batches")
    return sae.cpu().eval()


# --------------------------------------------------------------------------------------
# concept features (Eq. 6-7)
# --------------------------------------------------------------------------------------
def tfidf_scores(mu_pos: Tensor, mu_neg: Tensor, eps: float = 1e-6) -> Tensor:
    """Eq. 6 of the TADA paper: score(j, c) = mu_j(P_c) * log(1 + 1 / (mu_j(P_c~) + eps)).

    ``mu_pos``, ``mu_neg``: mean activation of every latent over the positive and the
    negative prompt set ([latents]).
    """
    if mu_pos.shape != mu_neg.shape:
        raise TadaError(f"mean activations differ in shape: {tuple(mu_pos.shape)} vs {tuple(mu_neg.shape)}")
    return mu_pos * torch.log1p(1.0 / (mu_neg + eps))


def select_features(scores: Tensor, tau: int) -> list[int]:
    """The ``tau`` highest-scoring latents (Table 1: tau = 5 or 20), best first."""
    if isinstance(tau, bool) or not isinstance(tau, int) or not 1 <= tau <= scores.numel():
        raise TadaError(f"tau must be an integer in 1..{scores.numel()}; got {tau!r}")
    return [int(i) for i in scores.topk(tau).indices]


def sae_vector(sae: TopKSAE, features: Iterable[int]) -> Tensor:
    """Eq. 7: v_c^SAE = sum of the decoder directions of the selected features ([d_in])."""
    idx = sorted({int(j) for j in features})
    if not idx:
        raise TadaError("select at least one feature")
    bad = [j for j in idx if not 0 <= j < sae.cfg.latents]
    if bad:
        raise TadaError(f"features {bad} do not exist; this SAE has latents 0..{sae.cfg.latents - 1}")
    return sae.W_dec.detach()[idx].sum(0)




# --------------------------------------------------------------------------------------
# hyperparameter sweep (Sec. 5.1, "Details")
# --------------------------------------------------------------------------------------
@dataclasses.dataclass
class SweepEntry:
    cfg: SaeConfig
    metrics: SaeMetrics
    sae: TopKSAE

    @property
    def badness(self) -> float:
        """The paper's selection rule as one number: FVU + dead fraction + high-frequency fraction."""
        return self.metrics.fvu + self.metrics.dead_fraction + self.metrics.high_freq_fraction


def sweep_saes(train_batches: Callable[[], Iterable[Tensor]], eval_batches: Callable[[], Iterable[Tensor]],
               d_in: int, *, expansions: Iterable[int] = (2, 4, 8, 16), ks: Iterable[int] = (16, 32, 64),
               epochs: int = 1, lr: float | None = None, seed: int = 0, progress: bool = True,
               processes: Processes | None = None) -> list[SweepEntry]:
    """Train one SAE per (m, k) and measure it on held-out batches; best first.

    The paper picks "the lowest reconstruction error and fraction of both dead and
    high-frequency features"; entries are sorted by their sum (:attr:`SweepEntry.badness`).
    Pairs with k larger than the number of latents are skipped. ``processes``: data-parallel
    training (:func:`train_sae`); every process returns the same list.
    """
    out = []
    for m in expansions:
        for k in ks:
            cfg = SaeConfig(d_in=d_in, expansion_factor=int(m), k=int(k))
            if cfg.k > cfg.latents:
                continue
            sae = train_sae(train_batches, cfg, epochs=epochs, lr=lr, seed=seed, progress=progress,
                            processes=processes)
            out.append(SweepEntry(cfg, evaluate_sae(sae, eval_batches()), sae))
    if not out:
        raise TadaError("no (m, k) pair fits: every k exceeds d_in * m")
    return sorted(out, key=lambda e: e.badness)


__all__ = ["SaeMetrics", "train_sae", "evaluate_sae", "tfidf_scores", "select_features", "sae_vector", "sweep_saes",
           "SweepEntry"]
