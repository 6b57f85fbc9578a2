"""The app's request handlers: plain methods with named parameters (the public API), tested without a browser.

Every request is self-contained: it checks its input (:mod:`tada_app.checks`), finds its
vector, SAE or atlas (:mod:`tada_app.sources`), and its hooks exist only inside its own
``with`` block while it holds its model's lock (:class:`tada_app.models.ModelCache`).
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any, Iterator

import torch

from tada_core import TadaError, patch, steer
from tada_core.audio import check_finite_audio, level, to_int16
from tada_core.registry import entry_for

from . import checks
from .config import MIN_DURATION, AppConfig
from .jobs import background
from .models import ModelCache
from .sources import SAE_PATTERNS, locate

# Vectors that do not say which alphas they were validated over (alpha_range) may use this.
DEFAULT_ALPHA_LIMIT = 10.0
# One SAE feature is a unit-norm decoder direction (Eq. 7 with tau = 1).
FEATURE_ALPHA_LIMIT = 8.0
METHODS = ("caa", "sae", "diffmean", "any")
# Sliders of the Mix tab: gradio needs a fixed number of components, so a model's first MIX_ROWS shipped vectors (in
# the order of vectors/index.json) are offered; every shipped model has fewer.
MIX_ROWS = 16
# The Edit tab: at most this many alphas per request (one batched call: these rows, the alpha-0 reconstruction and
# the inversion's anchor row), and this many seconds of uploaded or recorded audio (only the first `duration`
# seconds are edited; the rest is refused rather than decoded for nothing).
EDIT_ALPHAS = 3
EDIT_MAX_SECONDS = 60.0
# What the Mix tab's heatmap shows, and what it does not.
EFFECTS_LABEL = "effect of each vector alone on every concept (tada verify, fresh seeds)"
INTERFERENCE_LABEL = "interference of pairs (tada interference, fresh seeds)"


def alpha_limit(vector) -> float:
    """The largest |alpha| the app accepts for ``vector``: twice the range it was validated over."""
    if vector.alpha_range:
        ends = [float(a) for a in vector.alpha_range]
        if not all(math.isfinite(a) for a in ends):
            raise TadaError(f"this vector's alpha_range {ends} is not finite; the app will not steer with it")
        return 2 * max(abs(a) for a in ends)
    return DEFAULT_ALPHA_LIMIT


def _clips(audio: torch.Tensor, sample_rate: int) -> list[tuple[int, Any]]:
    """The clips of one call at one shared level (tada_core.audio.level), as int16 players' data."""
    return [(sample_rate, to_int16(clip)) for clip in level(audio)]


def _pair(generation, caption: str):
    """Original and steered players, their spectrograms (one dB scale, axes), and a plain-text caption."""
    from tada_core.evaluation.plots import spectrogram_images

    audio = generation.audio[:2]
    (a, b) = _clips(audio, generation.sample_rate)
    images = spectrogram_images([clip.float().cpu().numpy() for clip in audio], generation.sample_rate)
    return a, b, images[0], images[1], caption


class Handlers:
    """One app's handlers; ``config`` says what visitors may do, ``cache`` holds its models."""

    def __init__(self, config: AppConfig | None = None, cache: ModelCache | None = None) -> None:
        self.config = config or AppConfig.from_env()
        self.cache = cache or ModelCache(self.config)
        self._published_data = None     # the shipped published measurements: read once, never changed
        self._verification_data = None  # the committed verification results: read once, never changed
        self._interference_data = None  # the committed interference results: read once, never changed

    # ------------------------------------------------------------------ published real-model results

    def _published(self):
        from tada_core.evaluation.published import read_published

        if self._published_data is None:
            self._published_data = read_published()
        return self._published_data

    def published_source(self) -> str:
        """Where the published measurements come from (repository, commit, license)."""
        return self._published().source.describe()

    def published_table(self, concept: Any = "average", axis: Any = "lpaps") -> list[list]:
        """Table 3 (``axis`` lpaps) or a MIR table for one concept or the average: [method, AUC MuQ, AUC CLAP,
        smoothness MuQ, smoothness CLAP, quality] per method cell (None where undefined; no quality on MIR axes)."""
        from tada_core.evaluation.published import AXES, CONCEPTS, table3

        concept = checks.choice("concept", concept, ["average", *CONCEPTS])
        axis = checks.choice("axis", axis, list(AXES))
        t = table3(self._published(), axis, CONCEPTS)
        rows = t.average if concept == "average" else t.rows[concept]

        def r(x):
            return None if x is None or not math.isfinite(x) else round(float(x), 3)

        return [[row.label, r(row.auc["muqt"]), r(row.auc["clap"]), r(row.smoothness["muqt"]),
                 r(row.smoothness["clap"]), r(row.quality)] for row in rows]

    def published_impact(self, model: Any = "ace"):
        """The layer-impact heatmap of one real model (concepts x cross-attention layers), from the published sweep."""
        import numpy as np

        from tada_core.evaluation.plots import heatmap_image
        from tada_core.evaluation.published import MODELS

        model = checks.choice("model", model, list(MODELS))
        rows = [r for r in self._published().impact if r[0] == model]
        two_per_block = any(r[4] for r in rows)        # AudioLDM2's blocks hold two attention layers

        def key(block: str, attn: int) -> str:
            return f"{block}.{attn}" if two_per_block else block

        layers = list(dict.fromkeys(key(r[3], r[4]) for r in rows))
        concepts = sorted({r[2] for r in rows})
        values = np.full((len(concepts), len(layers)), np.nan)
        for _, _, concept, block, attn, value in rows:
            values[concepts.index(concept), layers.index(key(block, attn))] = value
        return heatmap_image(values, concepts, layers, title=f"{MODELS[model]}: impact I(l) per concept (published)",
                             cell=30, x_label="cross-attention layer (the reference's block name, attention index)")

    def published_curves(self, concept: Any = "piano", axis: Any = "lpaps", alignment: Any = "muqt",
                         direction: Any = "+") -> list[list]:
        """Alignment gain against preservation per method, one direction, truncated at P_max as the protocol
        counts it: rows [method, distance, Delta alignment]."""
        from tada_core.evaluation.benchmark import protocol
        from tada_core.evaluation.published import ALIGNMENTS, AXES, CELLS, CONCEPTS

        concept = checks.choice("concept", concept, list(CONCEPTS))
        axis = checks.choice("axis", axis, list(AXES))
        alignment = checks.choice("alignment", alignment, list(ALIGNMENTS))
        sign = 1 if checks.choice("direction", direction, ["+", "-"]) == "+" else -1
        data = self._published()
        cut = data.p_max(concept, axis, sign)
        out = []
        for cell, label in CELLS.items():
            sw = protocol.truncate(data.sweep(cell, concept, axis, alignment, sign), cut)
            out += [[label, round(float(d), 4), round(float(a), 4)] for d, a in zip(sw.distance, sw.delta)]
        return out

    # ------------------------------------------------------------------ shared

    def _settings(self, prompt, seed, duration, steps) -> dict[str, Any]:
        return checks.settings(prompt, seed, duration, steps, max_duration=self.config.max_duration,
                               max_steps=self.config.max_steps, min_duration=MIN_DURATION)

    def _index(self, root: Path, kind: str) -> list[dict]:
        from tada_core.artifacts.hub import read_index

        return [r for r in read_index(root) if r.get("kind") == kind]

    def _generate(self, model, prompts: list[str], s: dict, **kw):
        gen = model.generate(prompts, seeds=[s["seed"]] * len(prompts), duration=s["duration"], steps=s["steps"], **kw)
        check_finite_audio(gen.audio)
        return gen

    def vector(self, vector: Any = None, repo_id: Any = None):
        """A vector by shipped name, or by a folder under vectors/ or a Hub repo id (one of the two)."""
        from tada_core.artifacts.vectors import load_vector

        return load_vector(self._vector_folder(vector, repo_id))

    def _vector_folder(self, vector: Any = None, repo_id: Any = None) -> Path:
        from tada_core.artifacts.vectors import CARD_FILE, CONFIG_FILE, VECTOR_FILE

        name = checks.optional_text("vector", vector)
        repo = checks.optional_text("repo_id", repo_id)
        if name and repo:
            raise TadaError(f"give a shipped vector or a repo id, not both (got vector {name!r} and repo_id "
                            f"{repo[:100]!r}); clear one of them")
        if not name and not repo:
            raise TadaError("choose a concept vector, or give a steering-vector Hub repo id")
        where = locate(name or repo, self.config.vectors, [r["name"] for r in self._index(self.config.vectors,
                                                                                       "steering-vector")], "vector")
        if isinstance(where, str):   # a Hub id: only the format's files are downloaded
            from tada_core.runtime.io import resolve

            where = resolve(where, allow_patterns=[CONFIG_FILE, VECTOR_FILE, CARD_FILE])
        return Path(where)

    def _verification(self):
        """The committed `tada verify` results (results/verification), read once; None when there are none."""
        from tada_core.evaluation.verification import read_results

        if self._verification_data is None:
            try:
                self._verification_data = read_results(self.config.results / "verification")
            except TadaError:
                self._verification_data = False
        return self._verification_data or None

    def verified(self, vector: Any = None, repo_id: Any = None) -> str:
        """What `tada verify` found the vector does on fresh seeds (effect, monotonicity, leakage), as text."""
        from tada_core.evaluation.verification import artifact_sha256, verified_lines

        folder = self._vector_folder(vector, repo_id)
        name = folder.name if vector and not repo_id else str(repo_id)
        return "\n".join(verified_lines(self._verification(), name, artifact_sha256(folder)))

    def _sae_folder(self, sae: Any) -> Path:
        from tada_core.runtime.io import resolve
        from tada_core.artifacts.sae import validate_sae_folder

        name = checks.text("sae", sae, 200)
        where = locate(name, self.config.saes, [r["name"] for r in self._index(self.config.saes, "sae")], "SAE")
        folder = resolve(where, allow_patterns=SAE_PATTERNS) if isinstance(where, str) else where
        validate_sae_folder(folder)
        return folder

    # ------------------------------------------------------------------ choices

    def model_info(self, model: str) -> dict[str, Any]:
        """Default duration (capped by the app's limit) and steps of ``model``, and the app's limits."""
        with self.cache.use(model) as m:
            return {"duration": min(float(m.defaults.duration), self.config.max_duration),
                    "steps": min(int(m.defaults.steps), self.config.max_steps),
                    "min_duration": MIN_DURATION, "max_duration": self.config.max_duration,
                    "max_steps": self.config.max_steps}

    def layer_choices(self, model: str) -> list[tuple[str, int]]:
        """(label, 0-based index) of every cross-attention layer of the model."""
        with self.cache.use(model) as m:
            return [(f"{layer.index} ({layer.path}: {m.layer_kind})" if not m.supports_patching
                     else f"{layer.index} ({layer.path})", layer.index) for layer in m.layers]

    def vector_choices(self, model: str, method: str = "any") -> list[str]:
        """Names of the shipped vectors for ``model``; ``method``: "caa", "sae", "diffmean" or "any"."""
        if method not in METHODS:
            raise TadaError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
        self.cache.key(model)
        return [r["name"] for r in self._index(self.config.vectors, "steering-vector")
                if r.get("model") == model and method in ("any", r.get("method"))]

    def edit_strength(self, model: str) -> float:
        """The default ``strength`` of an edit with ``model``: 1 (full inversion) for the diffusion families, the
        fraction of the clip a continuation replaces for MusicGen (its adapter's ``default_edit_strength``)."""
        from tada_core.registry import get_entry

        self.cache.key(model)   # refuses what the app does not serve
        try:
            return float(get_entry(model).adapter.default_edit_strength)
        except TadaError:   # a custom pipeline folder or Hub id: its family is known only once loaded
            return 1.0

    def default_method(self, model: str) -> str:
        """The steering method of the model's first shipped vector ("caa" when there is none)."""
        for method in ("caa", "diffmean", "sae"):
            if self.vector_choices(model, method):
                return method
        return "caa"

    def vector_info(self, vector: Any = None, repo_id: Any = None) -> dict[str, Any]:
        vec = self.vector(vector, repo_id)
        lim = alpha_limit(vec)
        return {"verified": self.verified(vector, repo_id),"concept": vec.concept, "method": vec.method, "model": vec.model, "layers": vec.layers,
                "strategy": vec.strategy,
                "functional": vec.default_layers(), "limit": lim, "renorm": vec.default_renorm(),
                # the slider starts at the positive end of the validated range (adds the concept)
                "alpha": float(max(vec.alpha_range)) if vec.alpha_range and max(vec.alpha_range) > 0 else lim / 2,
                "alpha_range": list(vec.alpha_range or [])}

    def _mix_vectors(self, model: str) -> list[tuple[str, Any]]:
        """(name, SteeringVector) of the model's first MIX_ROWS shipped vectors, in the index's order."""
        return [(name, self.vector(name)) for name in self.vector_choices(model, "any")[:MIX_ROWS]]

    def mix_choices(self, model: str) -> dict[str, Any]:
        """The Mix tab's rows: the vectors' ``names``, ``labels`` ("tempo (CAA)"; a label two vectors share gets
        the name too), alpha ``limits`` (:func:`alpha_limit`), and ``renorm``: the ReNorm box's default, on only
        when every one of them was validated with it."""
        vectors = self._mix_vectors(model)
        plain = [f"{vec.concept} ({vec.method.upper()})" for _, vec in vectors]
        labels = [label if plain.count(label) == 1 else f"{label}: {name}" for (name, _), label in zip(vectors, plain)]
        return {"names": [name for name, _ in vectors], "labels": labels,
                "limits": [alpha_limit(vec) for _, vec in vectors],
                "renorm": bool(vectors) and all(vec.default_renorm() for _, vec in vectors)}

    def concept_choices(self, model: str) -> list[str]:
        with self.cache.use(model) as m:
            return entry_for(m).concepts.names()

    # ------------------------------------------------------------------ generation

    def describe(self, model, concept_name: str, generation) -> str:
        """The concept's measure on both clips, where the model has a built-in scorer for it (the organism)."""
        scorer = self.cache.scorer(model)
        if scorer is None:
            return ""
        concepts = entry_for(model).concepts
        if concept_name not in concepts.names():     # a name only: an artifact's text never becomes a file to read
            return ""
        concept = concepts.get(concept_name)
        try:
            scorer.check(concept)
        except TadaError:
            return ""
        values = scorer.measure(generation.audio, generation.sample_rate, concept)
        return f"{scorer.label(concept)}: {values[0]:.3g} (original) -> {values[1]:.3g} (steered)"

    def measure_table(self, model, audio: torch.Tensor, sample_rate: int) -> list[list]:
        """[concept: measure, value per clip] for every concept of the model's built-in scorer (the organism)."""
        scorer = self.cache.scorer(model)
        if scorer is None:
            return []
        rows = []
        for concept in entry_for(model).concepts.concepts.values():
            values = scorer.measure(audio, sample_rate, concept)
            rows.append([f"{concept.name}: {scorer.label(concept)}"] + [round(float(v), 3) for v in values])
        return rows

    def generate(self, model: str, prompt: str, seed: int, duration: float, steps: int):
        s = self._settings(prompt, seed, duration, steps)
        with self.cache.use(model) as m:
            gen = self._generate(m, [s["prompt"]], s)
        return _clips(gen.audio, gen.sample_rate)[0]

    def steer(self, model: str, prompt: str, seed: int, duration: float, steps: int, vector: str | None,
              repo_id: str | None, layers: list, alpha: float, renorm: bool | None = None,
              strategy: str | None = None):
        """Original (alpha 0) and steered (alpha) with the same seed, in one batched call (Eq. 2 / Eq. 8).

        ``renorm``: ReNorm (Eq. 3); None: the setting the vector's alpha range was validated with.
        ``strategy``: for a DiffMean vector (MusicGen), ``one-to-all`` (its source layer's direction into
        the chosen layers) or ``all-to-all`` (each layer its own); None: the vector's own.
        """
        s = self._settings(prompt, seed, duration, steps)
        vec = self.vector(vector, repo_id)
        if strategy not in (None, ""):
            from tada_core.methods.diffmean import STRATEGIES, with_strategy

            if strategy not in STRATEGIES:
                raise TadaError(f"strategy must be one of {', '.join(STRATEGIES)} (or empty: the vector's own); "
                                f"got {str(strategy)[:40]!r}")
            if vec.method != "diffmean":
                raise TadaError(f"injection strategies are for DiffMean vectors; this one is {vec.method}")
            vec = with_strategy(vec, strategy)
        a = checks.number("alpha", alpha, -alpha_limit(vec), alpha_limit(vec))
        layer_ids = checks.layers("layers", layers, vec.layers)
        if renorm is not None and not isinstance(renorm, bool):
            raise TadaError(f"renorm must be true, false or null; got {renorm!r}")
        use_renorm = vec.default_renorm() if renorm is None else renorm
        with self.cache.use(model) as m:
            with vec.apply(m, alpha=[0.0, a], layers=layer_ids, use_renorm=use_renorm):
                gen = self._generate(m, [s["prompt"]] * 2, s)
            measured = self.describe(m, vec.concept, gen)
        how = (f", {vec.strategy['name']}" + (f" from layer {vec.strategy['source_layer']}"
                                              if vec.strategy.get("source_layer") is not None else "")
               if vec.strategy else "")
        caption = (f"{vec.concept} ({vec.method.upper()}{how}), alpha {a:g} on layers {layer_ids}, "
                   f"{'with' if use_renorm else 'without'} ReNorm" + (f"; {measured}" if measured else ""))
        return _pair(gen, caption)

    def edit(self, model: str, audio: Any, prompt: str, seed: int, duration: float, steps: int,
             vector: str | None, repo_id: str | None, alphas: list[float], strength: float = 1.0):
        """Edit the visitor's clip (tada_core.editing: edit-friendly DDPM inversion, then the regeneration steered
        by ``vector`` at each of ``alphas``, one batched call). ``audio``: ``(sample_rate, samples)`` as an audio
        widget hands it over (decoded by the page from an upload or a recording: no file path is ever read
        here), at most :data:`EDIT_MAX_SECONDS`; ``prompt``: what the clip is (empty: the neutral default);
        ``strength``: 0 (keep) to 1 (full inversion). Returns players and spectrograms (one level, one dB scale)
        for the original, the reconstruction (alpha 0 through the inversion) and up to :data:`EDIT_ALPHAS`
        edits (None past the given alphas), the measured attributes of each clip, and a caption."""
        from tada_core.editing import DEFAULT_PROMPT, edit
        from tada_core.evaluation.plots import spectrogram_images

        if not (isinstance(audio, (tuple, list)) and len(audio) == 2):
            raise TadaError("audio must be an uploaded or recorded clip (sample rate, samples); got "
                            f"{type(audio).__name__}")
        rate, samples = audio
        rate = checks.whole("audio sample rate", rate, 4000, 192000)
        if not hasattr(samples, "shape") or not hasattr(samples, "dtype"):
            raise TadaError(f"audio samples must be an array; got {type(samples).__name__}")
        if samples.ndim >= 1 and max(samples.shape) > EDIT_MAX_SECONDS * rate:
            raise TadaError(f"the clip is {max(samples.shape) / rate:.0f}s long; this app edits clips of at most "
                            f"{EDIT_MAX_SECONDS:g}s (only the first {self.config.max_duration:g}s are used)")
        text = prompt.strip() if isinstance(prompt, str) and prompt.strip() else DEFAULT_PROMPT
        s = self._settings(text, seed, duration, steps)
        vec = self.vector(vector, repo_id)
        if not isinstance(alphas, (list, tuple)) or not 1 <= len(alphas) <= EDIT_ALPHAS:
            raise TadaError(f"alphas must be a list of 1 to {EDIT_ALPHAS} numbers; got {checks._shown(alphas)}")
        lim = alpha_limit(vec)
        values = [checks.number("alphas entry", a, -lim, lim) for a in alphas]
        strength = checks.number("strength", strength, 0.0, 1.0)
        with self.cache.use(model) as m:
            result = edit(m, samples, rate, steer=vec, alpha=[0.0, *values], prompt=s["prompt"], strength=strength,
                          seed=s["seed"], duration=s["duration"], steps=s["steps"])
            clips = torch.cat([result.original[None], result.audio])
            table = self.measure_table(m, clips, result.sample_rate)
        players = _clips(clips, result.sample_rate)
        images = spectrogram_images([c.float().numpy() for c in clips], result.sample_rate)
        pad = EDIT_ALPHAS - len(values)
        headers = ["concept: measure", "original", "reconstruction (alpha 0)"] + [f"alpha {a:g}" for a in values]
        if result.method == "continuation":
            how = (f"keeping the clip's first {result.start_step} codec frames); prompt {s['prompt']!r}; "
                   f"continuation from the clip's codec tokens")
        else:
            how = (f"regenerating from step {result.start_step} of {s['steps']}); prompt {s['prompt']!r}; "
                   f"edit-friendly DDPM inversion")
        caption = (f"{vec.concept} ({vec.method.upper()}) on layers {vec.default_layers()}, alphas "
                   f"{', '.join(f'{a:g}' for a in values)}; strength {strength:g} ({how}, seed {s['seed']}")
        return (*players, *([None] * pad), *images, *([None] * pad), {"headers": headers, "data": table}, caption)

    def mix(self, model: str, prompt: str, seed: int, duration: float, steps: int, names: list[str],
            alphas: list[float], renorm: bool | None = None):
        """Original (every alpha 0) and mixed (each named vector at its alpha) with the same seed, in one batched
        call: h' = ReNorm(h + sum_k alpha_k * v_k, h) (TADA Eq. 2-3 with a sum of steering terms,
        :func:`tada_core.compose`); each vector on its own default layers. A vector at alpha 0 is not applied.

        ``names``: shipped vectors of ``model`` (:meth:`mix_choices`), ``alphas`` one per name, each within the
        vector's :func:`alpha_limit`. ``renorm``: ReNorm (Eq. 3), once after the sum; None: the setting every
        chosen vector was validated with (vectors that disagree are refused). Returns the Steer tab's outputs
        (two clips at one level, their spectrograms, a caption) and every concept's measure for both clips."""
        from tada_core.artifacts.compose import compose, composed_renorm, steered_layers

        s = self._settings(prompt, seed, duration, steps)
        shipped = self.vector_choices(model, "any")[:MIX_ROWS]
        if not shipped:
            raise TadaError(f"{model} has no shipped steering vectors to mix")
        if isinstance(names, (list, tuple)):       # a shipped vector of another model: say so, not just "unknown"
            others = {r["name"]: r.get("model") for r in self._index(self.config.vectors, "steering-vector")}
            for name in names:
                if isinstance(name, str) and name not in shipped and others.get(name) not in (None, model):
                    raise TadaError(f"{name} is a vector of {others[name]}, not of {model}; the Mix tab mixes "
                                    f"vectors of the selected model")
        chosen = checks.choices("names", names, shipped, MIX_ROWS)
        values = checks.sized_list("alphas", alphas, len(chosen), "numbers, one per entry of names")
        use_renorm = checks.flag("renorm", renorm)
        terms = []
        for name, alpha in zip(chosen, values):
            vec = self.vector(name)
            a = checks.number(f"alpha of {name}", alpha, -alpha_limit(vec), alpha_limit(vec))
            if a != 0:
                terms.append((vec, a))
        if not terms:
            raise TadaError("set at least one slider away from 0 (with every alpha at 0 the mix is the original)")
        renorm_on = composed_renorm([vec for vec, _ in terms], use_renorm, choose="the ReNorm box, on or off")
        with self.cache.use(model) as m:
            with compose(m, [(vec, [0.0, a]) for vec, a in terms], use_renorm=renorm_on):
                gen = self._generate(m, [s["prompt"]] * 2, s)
            table = self.measure_table(m, gen.audio[:2], gen.sample_rate)
            model_layers = [layer.index for layer in m.layers]
        parts = [f"{vec.concept} ({vec.method.upper()}) alpha {a:g} on layers {steered_layers(vec, model_layers)}"
                 for vec, a in terms]
        validated = {vec.default_renorm() for vec, _ in terms}
        if validated == {renorm_on}:
            why = "as the chosen vectors were validated"
        elif len(validated) == 1:
            why = f"chosen; the chosen vectors were validated {'with' if renorm_on is False else 'without'} it"
        else:
            why = "chosen; the chosen vectors were validated with different settings"
        caption = (f"mix of {' + '.join(parts)}; {'with' if renorm_on else 'without'} ReNorm, once after the sum "
                   f"({why}); original: every alpha 0, same seed, same batch")
        return (*_pair(gen, caption), table)

    def mix_effect_rows(self, model: str) -> dict[str, Any] | None:
        """What `tada verify` found each of the model's Mix vectors does alone: ``rows`` (its label and the end
        of its alpha range), ``concepts``, ``values`` (the effect on each concept as a fraction of that concept's
        prompt gap; NaN where not measured), ``seeds``, and the vectors ``not_verified`` or ``changed`` since
        (their files differ from the ones verified, so they are not shown). None without results."""
        from tada_core.evaluation.verification import artifact_sha256, find

        results = self._verification()
        if results is None:
            return None
        choices = self.mix_choices(model)
        rows, found, not_verified, changed = [], [], [], []
        for name, label in zip(choices["names"], choices["labels"]):
            a = find(results, name, artifact_sha256(self._vector_folder(name)))
            if a is None:
                (changed if find(results, name) is not None else not_verified).append(name)
                continue
            found.append(a)
            rows += [f"{label} +max", f"{label} -max"]
        concepts = list(dict.fromkeys(c for a in found for c in a["effect"]))

        def value(a, concept, key):
            x = a["effect"].get(concept, {}).get(key, {}).get("value")
            return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else float("nan")

        values = [[value(a, c, key) for c in concepts] for a in found
                  for key in ("toward_positive", "toward_negative")]
        return {"rows": rows, "concepts": concepts, "values": values, "seeds": results.get("seeds"),
                "not_verified": not_verified, "changed": changed}

    def mix_effects(self, model: str):
        """The Mix tab's heatmap (an image, or None) of :meth:`mix_effect_rows`, and a note on what it shows."""
        import numpy as np

        from tada_core.evaluation.plots import heatmap_image

        data = self.mix_effect_rows(model)
        if data is None:
            return None, "No `tada verify` results on this server, so no per-vector effects to show."
        lines = [f"{EFFECTS_LABEL}. Cells: how far each measured concept moves over one half of the vector's "
                 f"validated alpha range, 0 to +max or -max to 0, as a fraction of that concept's prompt gap; positive: "
                 f"as alpha rises, that concept moves toward its positive prompt (faster, brighter, ...) (seeds "
                 f"{data['seeds']})."]
        if data["changed"]:
            lines.append("changed since verified (not shown): " + ", ".join(data["changed"]))
        if data["not_verified"]:
            lines.append("not verified (not shown): " + ", ".join(data["not_verified"]))
        if not data["rows"]:
            return None, "\n".join([f"No vector of {model} is among the verified artifacts."] + lines[1:])
        # the label in lines that fit above the cells (the title starts at the cells' left edge, after the labels)
        title = textwrap.fill(EFFECTS_LABEL, 30, break_on_hyphens=False)
        image = heatmap_image(np.array(data["values"]), data["rows"], data["concepts"], title=title, cell=40,
                              x_label="measured concept", y_label="vector, end of its alpha range",
                              colorbar_label="fraction of the prompt gap", vmin=-1.0, vmax=1.0)
        return image, "\n".join(lines)

    def _interference(self):
        """The committed `tada interference` results (results/interference), read once; None when there are none."""
        from tada_core.runtime.io import read_json

        if self._interference_data is None:
            path = self.config.results / "interference" / "interference.json"
            try:
                data = read_json(path)
                self._interference_data = data if data.get("kind") == "tada-interference" else False
            except (OSError, ValueError):
                self._interference_data = False
        return self._interference_data or None

    def mix_interference(self, model: str):
        """The Mix tab's interference heatmap (an image, or None) and a note: per shipped vector A of ``model``
        whose files are the ones measured, the worst-corner interaction on A's concept when the same method's
        vector of each other concept is added."""
        import numpy as np

        from tada_core.evaluation.interference import interaction_rows
        from tada_core.evaluation.plots import heatmap_image
        from tada_core.evaluation.verification import artifact_sha256

        results = self._interference()
        if results is None or results.get("model") != model:
            return None, f"No `tada interference` results for {model} on this server: pairs are not measured."
        names = set(self.mix_choices(model)["names"])

        def current(v):
            return v["name"] in names and v.get("sha256") == artifact_sha256(self._vector_folder(v["name"]))

        data = interaction_rows(results, current)
        if not data["rows"]:
            return None, "The measured vectors have changed since `tada interference` ran: no interference to show."
        title = textwrap.fill(INTERFERENCE_LABEL, 30, break_on_hyphens=False)
        image = heatmap_image(np.array(data["values"]), data["rows"], data["concepts"], title=title, cell=40,
                              x_label="concept of the added vector B", y_label="vector A (its concept measured)",
                              colorbar_label="A+B minus A, B alone (gap)", vmin=-1.0, vmax=1.0)
        note = (f"{INTERFERENCE_LABEL}. Cells: with both vectors at an end of their ranges (the worst of the four "
                f"corners), how far the effect on A's concept differs from the sum of A's and B's effects alone, as a "
                f"fraction of that concept's prompt gap; 0 is additive, negative: adding B takes away from A (seeds "
                f"{data['seeds']}). Details: docs/composition.md.")
        return image, note

    def patch(self, model: str, prompt_a: str, prompt_b: str, layers: list, seed: int, duration: float, steps: int):
        """A, B, and A with ``layers`` patched from B (same seed), and, on the organism, every concept's
        measure for the three clips."""
        s = self._settings(prompt_a, seed, duration, steps)
        b_prompt = checks.text("prompt B", prompt_b)
        with self.cache.use(model) as m:
            if not m.supports_patching:
                raise TadaError(f"A/B patching swaps cross-attention keys and values; {model} has none (its layers "
                                f"are {m.layer_kind}s). Use the Steer tab with a DiffMean vector instead")
            layer_ids = checks.layers("layers", layers, [layer.index for layer in m.layers])
            # A and B are generated one at a time: a clip must not depend on its batchmates' padding
            a = self._generate(m, [s["prompt"]], s)
            b = self._generate(m, [b_prompt], s)
            with patch(m, layer_ids, b_prompt):
                ab = self._generate(m, [s["prompt"]], s)
            audio = torch.cat([a.audio, b.audio, ab.audio])
            table = self.measure_table(m, audio, a.sample_rate)
        clip_a, clip_b, clip_ab = _clips(audio, a.sample_rate)
        return clip_a, clip_b, clip_ab, table

    # ------------------------------------------------------------------ localization

    def _shipped_localization(self, model: str) -> list[dict]:
        """Rows of every committed ``results/*/summary.json`` made on ``model``."""
        rows = []
        for path in sorted(self.config.results.glob("*/summary.json")):
            rows += [r for r in json.loads(path.read_text(encoding="utf-8")) if r.get("model") == model]
        return rows

    def functional_layers(self, model: str) -> list[int]:
        """Every layer the committed localization calls functional for some concept (A/B default)."""
        from tada_core.methods.localize import Localization

        self.cache.key(model)
        rows = [Localization.from_dict(r) for r in self._shipped_localization(model)]
        return sorted({layer for r in rows if r.reliable for layer in r.functional_layers()})

    def localization(self, model: str, concept: str):
        """The heatmap of a model's committed localization (the concept marked), its rows and a caption."""
        from tada_core.methods.localize import Localization

        concept = checks.choice("concept", concept, self.concept_choices(model))
        rows = [Localization.from_dict(r) for r in self._shipped_localization(model)]
        if not rows:
            return None, [], (f"No committed localization for {model} in results/. Compute one below (models with a "
                              f"built-in scorer) or run `tada localize`.")
        image = heatmap(rows, marked=concept, title=f"I(l, c), Eq. 9: {model} (not clipped)")
        chosen = next((r for r in rows if r.concept == concept), None)
        if chosen is None:
            return image, [], f"The committed localization of {model} has no concept {concept[:60]!r}."
        return image, impact_rows(chosen), localization_text(chosen)

    def compute_localization(self, model: str, concept: str, pairs: int = 6,
                             seeds: int = 1) -> Iterator[tuple[int, int, Any]]:
        """The patching sweep (Eq. 9) as a long job: yields (done, total, None) about 4 times a second and
        finally (done, total, Localization). It runs on the job's own model instance, so visitors' requests
        do not wait for it. Closing the generator (Stop) ends it after the current batch; finished batches
        stay in this app's runs folder, so computing the same thing again goes on where it stopped."""
        from tada_core.methods.localize import localize
        from tada_core.adapters.settings import GenerationSettings

        pairs_n = checks.whole("pairs", pairs, 1, self.config.max_pairs)
        seeds_n = checks.whole("seeds", seeds, 1, self.config.max_job_seeds)
        with self.cache.use(model) as m:
            entry, scorer = entry_for(m), self.cache.scorer(m)
        if scorer is None:
            raise TadaError(f"the app computes localizations for models with a built-in scorer (the organism); for "
                            f"{model} run `tada localize --model {model} --scorer clap:PATH`")
        c = entry.concepts.get(checks.choice("concept", concept, entry.concepts.names()))
        prompt_pairs, _ = entry.concepts.localization_pairs(c, limit=pairs_n)
        folder = self.config.runs_folder() / f"{entry.name}-{c.name}-{len(prompt_pairs)}x{seeds_n}"

        def work(report):
            with self.cache.use(model, job=True) as job_model:
                return localize(job_model, c, prompt_pairs, scorer, seeds=list(range(seeds_n)),
                                settings=GenerationSettings(batch_size=8), out=folder, progress=False,
                                on_batch=report)

        yield from background(work, name=f"localize-{c.name}")

    # ------------------------------------------------------------------ SAE features

    def sae_choices(self, model: str) -> list[str]:
        self.cache.key(model)
        return [r["name"] for r in self._index(self.config.saes, "sae") if r.get("model") == model]

    def _atlases(self, sae: Any) -> dict:
        from tada_core.methods.features import load_atlas

        return load_atlas(self._sae_folder(sae))

    def atlas_layers(self, sae: str) -> list[int]:
        return sorted(self._atlases(sae))

    def _atlas(self, sae: str, layer: Any):
        atlases = self._atlases(sae)
        return atlases[checks.layer("layer", layer, sorted(atlases))]

    def feature_table(self, sae: str, layer: int, concept: str, n: int = 12) -> list[list]:
        """Top features of a layer for a concept: [feature, Eq. 6 score, its top prompt]."""
        atlas = self._atlas(sae, layer)
        n = checks.whole("n", n, 1, 100)
        concept = checks.choice("concept", concept, list(atlas.scores))
        return [[f, round(score, 3), atlas.browse(f, top=1)["top_prompts"][0][0]]
                for f, score in atlas.top_features(concept, n)]

    def browse_feature(self, sae: str, layer: int, feature: int) -> tuple[list[list], list[list]]:
        """A feature's top prompts [prompt, mean activation] and its Eq. 6 score per concept."""
        atlas = self._atlas(sae, layer)
        f = checks.whole("feature", feature, 0, atlas.latents - 1)
        info = atlas.browse(f, top=8)
        return ([[p, round(v, 4)] for p, v in info["top_prompts"]],
                sorted(([c, round(v, 3)] for c, v in info["concept_scores"].items()), key=lambda r: -r[1]))

    def steer_feature(self, model: str, sae: str, layer: int, feature: int, concept: str, prompt: str, seed: int,
                      duration: float, steps: int, alpha: float):
        """Steer with one SAE feature's decoder direction (Eq. 7 with tau = 1, added as in Eq. 8);
        ``concept``: whose measure to print for both clips (where the model has a scorer)."""
        from tada_core.methods.features import load_saes
        from tada_core.methods.sae import sae_vector

        s = self._settings(prompt, seed, duration, steps)
        a = checks.number("alpha", alpha, -FEATURE_ALPHA_LIMIT, FEATURE_ALPHA_LIMIT)
        concept = checks.optional_text("concept", concept, 100)
        folder = self._sae_folder(sae)
        with self.cache.use(model) as m:
            saes = load_saes(m, folder)
            layer_i = checks.layer("layer", layer, sorted(saes))
            f = checks.whole("feature", feature, 0, saes[layer_i].cfg.latents - 1)
            with steer(m, {layer_i: sae_vector(saes[layer_i], [f])}, alpha=[0.0, a], layers=[layer_i],
                       use_renorm=False):  # Eq. 8: one decoder direction added as is
                gen = self._generate(m, [s["prompt"]] * 2, s)
            measured = self.describe(m, concept, gen) if concept else ""
        return _pair(gen, f"feature {f} of layer {layer_i}, alpha {a:g}" + (f"; {measured}" if measured else ""))


# ---------------------------------------------------------------------------- views of a Localization

def heatmap(rows, marked: str | None = None, title: str = ""):
    import numpy as np

    from tada_core.evaluation.plots import heatmap_image

    layers = sorted({layer for r in rows for layer in r.layers})
    values = np.array([[r.impact.get(layer, float("nan")) for layer in layers] for r in rows])
    labels = [("> " if r.concept == marked else "") + (r.concept if r.reliable else f"{r.concept} (n.s.)")
              for r in rows]
    return heatmap_image(values, labels, [str(x) for x in layers], title=title)


def impact_rows(loc) -> list[list]:
    """[layer, impact I (Eq. 9), its 95% bootstrap interval (low, high; None where not computed), sim(patched)]."""
    def r(x, n=3):
        return None if x is None or not math.isfinite(x) else round(float(x), n)

    return [[layer, r(loc.impact[layer]), *(r(x) for x in loc.impact_ci.get(layer, (None, None))),
             r(loc.sim_patched[layer], 4)] for layer in loc.layers]


def localization_text(loc) -> str:
    if not loc.reliable:
        return (f"{loc.concept}: the prompt change itself is not significant ({loc.sim_pos - loc.sim_neg:.3g} "
                f"+/- {loc.gain_se:.2g}), so no layer is called functional.")
    layers = loc.functional_layers()
    where = f"functional layers {layers}" if layers else "no single functional layer (steer all layers)"
    return (f"{loc.concept} ({loc.n} prompt-seed pairs, scorer {loc.scorer}): sim(c) {loc.sim_pos:.3g}, "
            f"sim(c~) {loc.sim_neg:.3g}; {where}. Layers are 0-based (the papers count from 1).")
