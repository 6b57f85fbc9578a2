"""SAE concept features on a model: mean latent activations per prompt, TF-IDF selection, a browser.

``prompt_activations`` generates prompts under :func:`tada_core.hooks.record` at the
SAEs' layers (one pass for all) and returns, per prompt, the SAE's latent activations averaged over every frame
and diffusion step (mu of Eq. 6 is the mean of these rows over a prompt set).
``concept_vector`` turns a concept's contrastive prompts into a steering artifact: the
top-tau TF-IDF features (Eq. 6, Table 1) and the sum of their decoder directions
(Eq. 7), saved like a CAA vector (method "sae") and applied as h + alpha v (Eq. 8).
``browse`` lists a feature's top-activating prompts and its score for each concept.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import torch

from .errors import TadaError, check_prompts
from .hooks import record
from .hub import SteeringVector
from .sae import TopKSAE, sae_vector, select_features, tfidf_scores


def prompt_activations(adapter, saes: Mapping[int, TopKSAE], prompts: Sequence[str], *,
                       seeds: Sequence[int] | None = None, batch_size: int = 16, duration: float | None = None,
                       steps: int | None = None, guidance: float | None = None) -> dict[int, torch.Tensor]:
    """Per layer, [prompts, latents]: each prompt's SAE latents averaged over frames and steps.

    ``saes`` maps a layer index to the SAE trained on it; all layers are recorded in one
    generation pass.
    """
    prompts = check_prompts(prompts, "feature prompts")
    seeds = list(range(len(prompts))) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != len(prompts):
        raise TadaError(f"{len(seeds)} seeds for {len(prompts)} prompts; give one seed per prompt")
    if not saes:
        raise TadaError("give at least one layer -> SAE")
    layers = adapter.resolve_layers(list(saes))
    for layer in layers:
        if adapter.layers[layer].width != saes[layer].cfg.d_in:
            raise TadaError(f"the SAE for layer {layer} reads {saes[layer].cfg.d_in}-dim activations; layer {layer} "
                            f"of {adapter.name} has width {adapter.layers[layer].width}")
    frames = 1 << 30  # record every frame
    rows: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    for k in range(0, len(prompts), batch_size):
        with record(adapter, layers=layers, mode="tokens", tokens=frames) as rec:
            adapter.generate(prompts[k:k + batch_size], seeds=seeds[k:k + batch_size], duration=duration,
                             steps=steps, guidance=guidance)
        for layer in layers:
            acts = rec.activations[layer]                        # [steps, B, frames, width]
            s, b, f, d = acts.shape
            with torch.no_grad():
                lat = saes[layer].dense_latents(acts.permute(1, 0, 2, 3).reshape(-1, d).float())
            rows[layer].append(lat.reshape(b, s * f, -1).mean(1))
    return {layer: torch.cat(r) for layer, r in rows.items()}


@dataclasses.dataclass
class ConceptFeatures:
    concept: str
    layer: int
    features: list[int]
    scores: torch.Tensor      # Eq. 6 for every latent
    mu_pos: torch.Tensor
    mu_neg: torch.Tensor


def select_concept_features(mu_pos_rows: torch.Tensor, mu_neg_rows: torch.Tensor, tau: int, *, concept: str,
                            layer: int) -> ConceptFeatures:
    """Eq. 6 on the per-prompt rows of :func:`prompt_activations` and the top-tau features (Table 1)."""
    mu_pos, mu_neg = mu_pos_rows.mean(0), mu_neg_rows.mean(0)
    scores = tfidf_scores(mu_pos, mu_neg)
    return ConceptFeatures(concept, layer, select_features(scores, tau), scores, mu_pos, mu_neg)


def concept_vector(adapter, saes: Mapping[int, TopKSAE], positive: Sequence[str], negative: Sequence[str], *,
                   concept: str, tau: int | Mapping[int, int] = 20, seeds: Sequence[int] | None = None,
                   sae_sources: Mapping[int, str] | None = None, alpha_range: tuple[float, float] | None = None,
                   **gen) -> tuple[SteeringVector, dict[int, ConceptFeatures]]:
    """SAE steering vector (Eq. 7) at each SAE's layer, from contrastive prompts; saved like a CAA vector."""
    pos = check_prompts(positive, "positive prompts")
    neg = check_prompts(negative, "negative prompts")
    vectors, chosen = {}, {}
    rows_pos = prompt_activations(adapter, saes, pos, seeds=seeds, **gen)
    rows_neg = prompt_activations(adapter, saes, neg, seeds=seeds, **gen)
    for layer, sae in saes.items():
        t = tau[layer] if isinstance(tau, Mapping) else tau
        chosen[layer] = select_concept_features(rows_pos[layer], rows_neg[layer], t, concept=concept, layer=layer)
        vectors[layer] = sae_vector(sae, chosen[layer].features)
    vec = SteeringVector(vectors=vectors, concept=concept, model=adapter.name,
                         layer_paths={i: adapter.layers[i].path for i in vectors}, method="sae",
                         prompts={"positive": pos, "negative": neg}, alpha_range=alpha_range,
                         extra={"features": {str(i): c.features for i, c in chosen.items()},
                                "tau": {str(i): len(c.features) for i, c in chosen.items()},
                                "saes": dict(sae_sources or {})})
    return vec, chosen


def browse(feature: int, rows: torch.Tensor, prompts: Sequence[str],
           concepts: Mapping[str, ConceptFeatures] | None = None, top: int = 5) -> dict:
    """A feature's top-activating prompts (from :func:`prompt_activations` rows) and its Eq. 6 score per concept."""
    if not 0 <= feature < rows.shape[1]:
        raise TadaError(f"feature {feature} does not exist; the SAE has latents 0..{rows.shape[1] - 1}")
    col = rows[:, feature]
    order = col.argsort(descending=True)[:top]
    return {"feature": feature,
            "top_prompts": [(prompts[int(i)], float(col[i])) for i in order],
            "concept_scores": {name: float(c.scores[feature]) for name, c in (concepts or {}).items()}}


__all__ = ["prompt_activations", "select_concept_features", "concept_vector", "browse", "ConceptFeatures"]
