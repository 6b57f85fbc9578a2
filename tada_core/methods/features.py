"""SAE concept features on a model: mean latent activations per prompt, TF-IDF selection, a browser.

``prompt_activations`` generates prompts under :func:`tada_core.interventions.hooks.record` at the
SAEs' layers (one pass for all) and returns, per prompt, the SAE's latent activations averaged over every frame
and diffusion step (mu of Eq. 6 is the mean of these rows over a prompt set).
``concept_vector`` turns a concept's contrastive prompts into a steering artifact: the
top-tau TF-IDF features (Eq. 6, Table 1) and the sum of their decoder directions
(Eq. 7), saved like a CAA vector (method "sae") and applied as h + alpha v (Eq. 8).
``browse`` lists a feature's top-activating prompts and its score for each concept.
``build_atlas`` precomputes that for every feature of an SAE folder (``atlas/`` beside
its hookpoints: safetensors + JSON), so the app browses features without generating.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping, Sequence

import torch

from tada_core.adapters import FAMILIES
from tada_core.errors import TadaError, check_prompts
from tada_core.interventions.hooks import record
from tada_core.runtime.io import read_json, read_tensors, resolve, save_tensors, write_json
from tada_core.artifacts.sae import TopKSAE
from tada_core.methods.sae import sae_vector, select_features, tfidf_scores
from tada_core.adapters.settings import GenerationSettings
from tada_core.artifacts.vectors import SteeringVector


SELECTIONS = ("global", "per-step")


def prompt_activations(adapter, saes: Mapping[int, TopKSAE], prompts: Sequence[str], *,
                       seeds: Sequence[int] | None = None, settings: GenerationSettings | None = None,
                       per_step: bool = False) -> dict[int, torch.Tensor]:
    """Per layer, [prompts, latents]: each prompt's SAE latents (TopK) averaged over frames and steps.

    ``per_step=True``: [prompts, steps, latents] of the pre-TopK ReLU activations averaged
    over frames only, the statistic of the reference code's per-step TF-IDF selection.
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
    settings = adapter.resolve_settings(settings)
    batch_size = settings.batch_size
    frames = 1 << 30  # record every frame
    rows: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    for k in range(0, len(prompts), batch_size):
        with record(adapter, layers=layers, mode="tokens", tokens=frames) as rec:
            adapter.generate(prompts[k:k + batch_size], seeds=seeds[k:k + batch_size], settings=settings)
        for layer in layers:
            acts = rec.activations[layer]                        # [steps, B, frames, width]
            s, b, f, d = acts.shape
            with torch.no_grad():
                flat = acts.permute(1, 0, 2, 3).reshape(-1, d).float()
                if per_step:
                    rows[layer].append(saes[layer].pre_acts(flat).reshape(b, s, f, -1).mean(2))
                else:
                    rows[layer].append(saes[layer].dense_latents(flat).reshape(b, s * f, -1).mean(1))
    return {layer: torch.cat(r) for layer, r in rows.items()}


@dataclasses.dataclass
class ConceptFeatures:
    concept: str
    layer: int
    features: list[int]       # per-step selection: the features of step 0 (all steps: ``per_step``)
    scores: torch.Tensor      # Eq. 6 for every latent ([latents], or [steps, latents])
    mu_pos: torch.Tensor
    mu_neg: torch.Tensor
    per_step: list[list[int]] | None = None   # the reference's per-step selection: features of each step


def select_concept_features(mu_pos_rows: torch.Tensor, mu_neg_rows: torch.Tensor, tau: int, *, concept: str,
                            layer: int) -> ConceptFeatures:
    """Eq. 6 on the per-prompt rows of :func:`prompt_activations` and the top-tau features (Table 1).

    Rows of shape [prompts, steps, latents] (``per_step=True``) give the reference code's
    variant: Eq. 6 and the top tau at every diffusion step separately.
    """
    mu_pos, mu_neg = mu_pos_rows.mean(0), mu_neg_rows.mean(0)
    scores = tfidf_scores(mu_pos, mu_neg)
    if scores.dim() == 2:
        steps = [select_features(row, tau) for row in scores]
        return ConceptFeatures(concept, layer, steps[0], scores, mu_pos, mu_neg, per_step=steps)
    return ConceptFeatures(concept, layer, select_features(scores, tau), scores, mu_pos, mu_neg)


def held_out_signs(rows_pos: torch.Tensor, rows_neg: torch.Tensor, features: Sequence[int], groups: Sequence,
                   ) -> tuple[list[int], dict[int, list[float]]]:
    """Which ``features`` are more active on the positive prompts than on their negative counterparts on held-out
    clips: the paired difference (positive row minus the negative row of the same base and seed) averaged, with a
    95% bootstrap interval over ``groups`` (the bases); a feature is kept when the interval lies above 0.

    Returns (kept features, {feature: [mean difference, low, high]}). A feature that Eq. 6 scores high on the
    fitting clips but is as active on c-tilde as on c on new clips is a generic feature, not a concept feature:
    adding its decoder direction need not add the concept.
    """
    from tada_core.evaluation.stats import bootstrap_ci

    diff = (rows_pos - rows_neg).double()
    kept, report = [], {}
    for j in features:
        d = diff[:, j].numpy()
        lo, hi = bootstrap_ci(d, groups)
        report[int(j)] = [float(d.mean()), lo, hi]
        if lo > 0:
            kept.append(int(j))
    return kept, report


def concept_vector(adapter, saes: Mapping[int, TopKSAE], positive: Sequence[str], negative: Sequence[str], *,
                   concept: str, tau: int | Mapping[int, int] = 20, seeds: Sequence[int] | None = None,
                   sae_sources: Mapping[int, str] | None = None, alpha_range: tuple[float, float] | None = None,
                   settings: GenerationSettings | None = None, selection: str = "global",
                   held_out: tuple[Sequence[str], Sequence[str], Sequence[int]] | None = None,
                   ) -> tuple[SteeringVector, dict[int, ConceptFeatures]]:
    """SAE steering vector (Eq. 7) at each SAE's layer, from contrastive prompts; saved like a CAA vector.

    ``selection``: ``"global"`` (default; Eq. 6 on TopK latents averaged over frames and
    all steps, one feature set, a [width] vector) or ``"per-step"`` (the reference code's
    variant: Eq. 6 on pre-TopK ReLU activations averaged per diffusion step, a feature set
    per step, a [steps, width] vector that needs generation with as many steps).
    ``held_out``: (positive prompts, negative prompts, seeds) paired in order, on seeds the selection did not
    see: each selected feature must be more active on the positive side there (:func:`held_out_signs`, bases as
    bootstrap clusters); the others are dropped from Eq. 7's sum, and a layer left without features is dropped.
    The check is recorded in the vector's ``extra["held_out"]``.
    """
    if selection not in SELECTIONS:
        raise TadaError(f"selection must be one of {', '.join(SELECTIONS)}; got {selection!r}")
    pos = check_prompts(positive, "positive prompts")
    neg = check_prompts(negative, "negative prompts")
    per_step = selection == "per-step"
    vectors, chosen = {}, {}
    rows_pos = prompt_activations(adapter, saes, pos, seeds=seeds, settings=settings, per_step=per_step)
    rows_neg = prompt_activations(adapter, saes, neg, seeds=seeds, settings=settings, per_step=per_step)
    checked: dict[str, dict] = {}
    if held_out is not None:
        h_pos, h_neg, h_seeds = (list(x) for x in held_out)
        if not len(h_pos) == len(h_neg) == len(h_seeds) or not h_pos:
            raise TadaError("held_out needs as many positive prompts, negative prompts and seeds, at least one")
        if set(h_seeds) & set(seeds or range(len(pos))):
            raise TadaError(f"held-out seeds {sorted(set(h_seeds) & set(seeds or range(len(pos))))} are also "
                            f"fitting seeds; the check needs seeds the selection did not see")
        check_pos = prompt_activations(adapter, saes, h_pos, seeds=h_seeds, settings=settings)
        check_neg = prompt_activations(adapter, saes, h_neg, seeds=h_seeds, settings=settings)
    for layer, sae in saes.items():
        t = tau[layer] if isinstance(tau, Mapping) else tau
        chosen[layer] = select_concept_features(rows_pos[layer], rows_neg[layer], t, concept=concept, layer=layer)
        if held_out is not None:
            candidates = sorted(set(f for step in (chosen[layer].per_step or [chosen[layer].features]) for f in step))
            kept, report = held_out_signs(check_pos[layer], check_neg[layer], candidates, h_pos)
            checked[str(layer)] = {"kept": kept, "dropped": [f for f in candidates if f not in kept],
                                   "difference_ci": {str(k): v for k, v in report.items()}}
            if not kept:
                continue
            c = chosen[layer]
            c.features = [f for f in c.features if f in kept]
            if c.per_step:
                c.per_step = [[f for f in step if f in kept] for step in c.per_step]
        if per_step:
            if any(not f for f in chosen[layer].per_step):
                continue
            vectors[layer] = torch.stack([sae_vector(sae, f) for f in chosen[layer].per_step])
        elif chosen[layer].features:
            vectors[layer] = sae_vector(sae, chosen[layer].features)
    if not vectors:
        raise TadaError(f"no feature selected for {concept!r} is more active on its positive prompts than on its "
                        f"negative ones on the held-out seeds, at any layer: this SAE has no feature for it")
    chosen = {layer: c for layer, c in chosen.items() if layer in vectors}
    vec = SteeringVector(vectors=vectors, concept=concept, model=adapter.name,
                         layer_paths={i: adapter.layers[i].path for i in vectors}, method="sae",
                         prompts={"positive": pos, "negative": neg}, alpha_range=alpha_range,
                         extra={"features": {str(i): (c.per_step if per_step else c.features)
                                             for i, c in chosen.items()},
                                "tau": {str(i): len(c.features) for i, c in chosen.items()},
                                "selection": selection, "saes": {k: v for k, v in dict(sae_sources or {}).items()
                                                                 if int(k) in vectors},
                                **({"held_out": {"seeds": sorted(set(held_out[2])), "layers": checked}}
                                   if held_out is not None else {})})
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


def load_saes(adapter, source: str | Path) -> dict[int, TopKSAE]:
    """The SAEs of an SAE folder or Hub repo id (sparsify layout), keyed by ``adapter``'s layer index.

    Hookpoint folders are named by layer path in the pipeline (this project's SAEs:
    ``transformer.transformer_blocks.7.attn2``) or in the denoiser (sparsify and the TADA
    reference code: ``transformer_blocks.7.attn2``); both are accepted.
    """
    by_path = {layer.path: layer.index for layer in adapter.layers}
    by_path.update({layer.path.split(".", 1)[1]: layer.index for layer in adapter.layers
                    if layer.path.startswith(adapter.denoiser_attr + ".")})
    saes = {}
    for hp, sae in TopKSAE.load_many(source).items():
        if hp not in by_path:
            other = next((m for cls in FAMILIES.values() for m in cls.reference_checkpoints if m.names_layer(hp)), None)
            hint = f"; it names a layer of {other.note}" if other is not None else ""
            raise TadaError(f"SAE hookpoint {hp!r} is not a cross-attention layer of {adapter.name}{hint}")
        if sae.cfg.d_in != adapter.layers[by_path[hp]].width:
            raise TadaError(f"the SAE for {hp} reads {sae.cfg.d_in}-dim activations; that layer of {adapter.name} "
                            f"has width {adapter.layers[by_path[hp]].width}")
        saes[by_path[hp]] = sae
    return saes


ATLAS_DIR = "atlas"


@dataclasses.dataclass
class FeatureAtlas:
    """Every feature of one SAE layer: mean activation per browse prompt and Eq. 6 score per concept."""

    model: str
    layer: int
    prompts: list[str]
    rows: torch.Tensor                    # [prompts, latents], from prompt_activations
    scores: dict[str, torch.Tensor]       # concept -> [latents], Eq. 6

    @property
    def latents(self) -> int:
        return int(self.rows.shape[1])

    def top_features(self, concept: str, n: int = 10) -> list[tuple[int, float]]:
        """The ``n`` features with the highest Eq. 6 score for ``concept``."""
        if concept not in self.scores:
            raise TadaError(f"the atlas has concepts {', '.join(self.scores)}; got {concept!r}")
        top = self.scores[concept].topk(min(n, self.latents))
        return [(int(i), float(v)) for v, i in zip(top.values, top.indices)]

    def browse(self, feature: int, top: int = 5) -> dict:
        """:func:`browse` on the atlas: the feature's top prompts and its Eq. 6 score per concept."""
        info = browse(feature, self.rows, self.prompts, top=top)
        info["concept_scores"] = {name: float(sc[feature]) for name, sc in self.scores.items()}
        return info


def build_atlas(adapter, saes: Mapping[int, TopKSAE], prompts: Sequence[str], concepts: Mapping[str, tuple],
                *, seeds: Sequence[int] | None = None,
                settings: GenerationSettings | None = None) -> dict[int, FeatureAtlas]:
    """A :class:`FeatureAtlas` per SAE layer: ``prompts`` to browse by, and ``concepts`` as
    name -> (positive prompts, negative prompts) for the Eq. 6 scores."""
    prompts = check_prompts(prompts, "atlas prompts")
    rows = prompt_activations(adapter, saes, prompts, seeds=seeds, settings=settings)
    scores: dict[int, dict[str, torch.Tensor]] = {layer: {} for layer in saes}
    for name, (pos, neg) in concepts.items():
        pos_rows = prompt_activations(adapter, saes, pos, settings=settings)
        neg_rows = prompt_activations(adapter, saes, neg, settings=settings)
        for layer in saes:
            scores[layer][name] = tfidf_scores(pos_rows[layer].mean(0), neg_rows[layer].mean(0))
    return {layer: FeatureAtlas(adapter.name, layer, list(prompts), rows[layer], scores[layer]) for layer in saes}


def save_atlas(atlases: Mapping[int, FeatureAtlas], sae_folder: str | Path) -> Path:
    """Write ``<sae_folder>/atlas/atlas.safetensors`` (rows and scores) and ``atlas.json`` (prompts, concepts)."""
    out = Path(sae_folder) / ATLAS_DIR
    tensors, meta = {}, {"model": None, "layers": [], "prompts": None, "concepts": None}
    for layer, a in sorted(atlases.items()):
        tensors[f"rows.{layer}"] = a.rows.float()
        for name, sc in a.scores.items():
            tensors[f"scores.{layer}.{name}"] = sc.float()
        meta.update(model=a.model, prompts=a.prompts, concepts=list(a.scores))
        meta["layers"].append(layer)
    save_tensors(out / "atlas.safetensors", tensors)
    write_json(out / "atlas.json", meta, indent=1)
    return out


def load_atlas(source: str | Path) -> dict[int, FeatureAtlas]:
    """The atlases saved by :func:`save_atlas` in an SAE folder or Hub repo id; a clear error if there is none."""
    folder = resolve(source, allow_patterns=[f"{ATLAS_DIR}/*"]) / ATLAS_DIR
    if not (folder / "atlas.json").is_file():
        raise TadaError(f"{source} has no feature atlas ({ATLAS_DIR}/atlas.json); make one with "
                        f"`tada sae atlas {source}`")
    meta = read_json(folder / "atlas.json")
    tensors = read_tensors(folder / "atlas.safetensors")
    try:
        layers = [int(layer) for layer in meta["layers"]]
        concepts, prompts = list(meta["concepts"]), list(meta["prompts"])
    except (KeyError, TypeError, ValueError):
        raise TadaError(f"{ATLAS_DIR}/atlas.json must list integer 'layers', 'concepts' and 'prompts'") from None
    try:
        return {layer: FeatureAtlas(meta.get("model"), layer, prompts, tensors[f"rows.{layer}"],
                                    {name: tensors[f"scores.{layer}.{name}"] for name in concepts})
                for layer in layers}
    except KeyError as e:
        raise TadaError(f"{ATLAS_DIR}/atlas.safetensors lacks {e}, which atlas.json lists") from None


__all__ = ["prompt_activations", "select_concept_features", "concept_vector", "browse", "ConceptFeatures",
           "load_saes", "FeatureAtlas", "build_atlas", "save_atlas", "load_atlas"]
