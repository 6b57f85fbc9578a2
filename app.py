"""TADA Gradio app: steer side by side, A/B-patch layers, look at localization and SAE features.

Run locally with ``python app.py`` (CPU, offline, on the shipped ``tada-organism``);
``TADA_MODEL=ace-step python app.py`` on a GPU machine with the weights cached. On a
Hugging Face Space the same file is the entry point (front matter in README.md).

A thin layer over tada_core. Every request is self-contained: it reads its vector, SAE
or localization from disk (or the Hub), and its hooks exist only inside its own ``with``
block while it holds the model's lock (:class:`ModelCache`), so concurrent users never
see each other's steering. Loaded models are the only shared state.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from tada_core import DEFAULT_MODEL, TadaError, load_model, model_names, patch, steer
from tada_core.errors import check_finite, check_prompts
from tada_core.registry import entry_for

try:  # on a ZeroGPU Space; a no-op decorator elsewhere
    import spaces

    gpu = spaces.GPU
except ImportError:  # pragma: no cover - depends on the environment
    def gpu(fn):
        return fn

log = logging.getLogger("tada.app")
ROOT = Path(__file__).resolve().parent
VECTORS, SAES, RESULTS = ROOT / "vectors", ROOT / "saes", ROOT / "results"
MAX_DURATION = float(os.environ.get("TADA_MAX_DURATION", "30"))
MAX_STEPS = int(os.environ.get("TADA_MAX_STEPS", "200"))
# Vectors that do not say which alphas they were validated over (alpha_range) may use this.
DEFAULT_ALPHA_LIMIT = 10.0
# One SAE feature is a unit-norm decoder direction (Eq. 7 with tau = 1).
FEATURE_ALPHA_LIMIT = 8.0


class ModelCache:
    """Loaded models by name, each with a lock held for a whole request.

    Hooks live on a model's modules, so one request's ``with steer(...)`` block must not
    overlap another request on the same model: ``use`` serializes requests per model.
    """

    def __init__(self) -> None:
        self._models: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._scorers: dict[str, Any] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def use(self, name: str) -> Iterator[Any]:
        if not isinstance(name, str) or not name.strip():
            raise TadaError(f"choose a model; accepted: {', '.join(model_names())}, a folder or a Hub repo id")
        with self._lock:
            if name not in self._models:
                model = load_model(name)
                model.set_progress_bar(False)
                self._models[name] = model
                self._locks[name] = threading.Lock()
            model, lock = self._models[name], self._locks[name]
        with lock:
            yield model

    def scorer(self, model):
        """The model's built-in scorer (read-only, shared), or None if it has none (real checkpoints)."""
        entry = entry_for(model)
        if entry.scorer_name is None:
            return None
        with self._lock:
            if model.name not in self._scorers:
                self._scorers[model.name] = entry.scorer()
            return self._scorers[model.name]


# ---------------------------------------------------------------------------- input checks

def _check_settings(prompt: str, seed, duration, steps) -> dict[str, Any]:
    check_prompts(prompt, "prompt")
    try:
        seed_i = int(seed)
    except (TypeError, ValueError):
        raise TadaError(f"seed must be a whole number >= 0; got {seed!r}") from None
    if seed_i < 0 or seed_i != float(seed):
        raise TadaError(f"seed must be a whole number >= 0; got {seed!r}")
    if duration is None or not 0 < check_finite("duration", duration) <= MAX_DURATION:
        raise TadaError(f"duration must be in (0, {MAX_DURATION:g}] seconds; got {duration!r}")
    try:
        steps_i = int(steps)
    except (TypeError, ValueError):
        raise TadaError(f"steps must be a whole number in 1..{MAX_STEPS}; got {steps!r}") from None
    if not 1 <= steps_i <= MAX_STEPS:
        raise TadaError(f"steps must be a whole number in 1..{MAX_STEPS}; got {steps!r}")
    return {"seed": seed_i, "duration": float(duration), "steps": steps_i}


def _check_alpha(alpha, limit: float, what: str) -> float:
    a = check_finite("alpha", alpha)
    if abs(a) > limit:
        raise TadaError(f"alpha {a:g} is outside the allowed range [-{limit:g}, {limit:g}] for {what}")
    return a


def _check_layers(layers, allowed: list[int]) -> list[int]:
    if not layers:
        raise TadaError("select at least one layer")
    try:
        ids = sorted({int(str(x).split()[0]) for x in layers})
    except ValueError:
        raise TadaError(f"layers must be layer indices; got {layers!r}") from None
    outside = [i for i in ids if i not in allowed]
    if outside:
        raise TadaError(f"layers {outside} are not available here; choose among {allowed}")
    return ids


def alpha_limit(vector) -> float:
    """The largest |alpha| the app accepts for ``vector``: twice the range it was validated over."""
    if vector.alpha_range:
        return 2 * max(abs(float(a)) for a in vector.alpha_range)
    return DEFAULT_ALPHA_LIMIT


# ---------------------------------------------------------------------------- outputs

def _clip(generation, i: int):
    audio = generation.audio[i].float().cpu().numpy().T  # gradio wants [samples, channels]
    return generation.sample_rate, np.ascontiguousarray(audio)


def _pair_outputs(generation, note: str):
    """Original and steered clips, their spectrograms on one colour scale, and a caption."""
    from tada_core.plots import spectrogram_images

    images = spectrogram_images([generation.audio[i].float().cpu().numpy() for i in (0, 1)])
    return _clip(generation, 0), _clip(generation, 1), images[0], images[1], note


def _index_rows(root: Path, kind: str, model_name: str) -> list[dict]:
    from tada_core.hub import read_index

    return [r for r in read_index(root) if r.get("kind") == kind and r.get("model") == model_name]


def make_handlers(cache: ModelCache):
    """The app's request handlers as plain functions (tested without a browser)."""
    from types import SimpleNamespace

    from tada_core.vectors import load_vector

    def load_named_vector(name: str | None, repo_id: str | None = None):
        """A vector from vectors/ (by index name) or, when given, a folder or Hub repo id."""
        from tada_core.hub import read_index

        if repo_id and repo_id.strip():
            return load_vector(repo_id.strip())
        if not name:
            raise TadaError("choose a concept vector, or give a steering-vector Hub repo id")
        names = {r["name"] for r in read_index(VECTORS) if r.get("kind") == "steering-vector"}
        if name not in names:
            raise TadaError(f"no steering vector {name!r} in {VECTORS}; known: {', '.join(sorted(names)) or 'none'}")
        return load_vector(VECTORS / name)

    def vector_choices(model_name: str, method: str = "any") -> list[str]:
        """Names of the shipped vectors for ``model_name``; ``method``: "caa", "sae" or "any"."""
        rows = _index_rows(VECTORS, "steering-vector", model_name)
        return [r["name"] for r in rows if method in ("any", r.get("method"))]

    def vector_info(name: str | None, repo_id: str | None = None) -> dict[str, Any]:
        vec = load_named_vector(name, repo_id)
        lim = alpha_limit(vec)
        return {"concept": vec.concept, "method": vec.method, "model": vec.model, "layers": vec.layers,
                "functional": vec.default_layers(), "limit": lim,
                # the slider starts at the positive end of the validated range (adds the concept)
                "alpha": float(max(vec.alpha_range)) if vec.alpha_range and max(vec.alpha_range) > 0 else lim / 2,
                "alpha_range": list(vec.alpha_range or [])}

    def describe(model, concept_name: str, generation) -> str:
        """The concept's measure on both clips, where the model has a built-in scorer for it (the organism)."""
        scorer = cache.scorer(model)
        if scorer is None:
            return ""
        try:
            concept = entry_for(model).concepts.get(concept_name)
            scorer.check(concept)
        except TadaError:
            return ""
        values = scorer.measure(generation.audio, generation.sample_rate, concept)
        return f"{scorer.label(concept)}: {values[0]:.3g} (original) -> {values[1]:.3g} (steered)"

    def measure_table(model, clips: dict[str, Any]) -> list[list]:
        """[concept measure, value per clip] for every concept of the model's built-in scorer (the organism)."""
        import torch

        scorer = cache.scorer(model)
        if scorer is None:
            return []
        audio = torch.cat([g.audio for g in clips.values()])
        sr = next(iter(clips.values())).sample_rate
        rows = []
        for concept in entry_for(model).concepts.concepts.values():
            values = scorer.measure(audio, sr, concept)
            rows.append([f"{concept.name}: {scorer.label(concept)}"] + [round(float(v), 3) for v in values])
        return rows

    @gpu
    def generate(model_name: str, prompt: str, seed: int, duration: float, steps: int):
        s = _check_settings(prompt, seed, duration, steps)
        with cache.use(model_name) as model:
            gen = model.generate(prompt, seeds=s["seed"], duration=s["duration"], steps=s["steps"])
        return _clip(gen, 0)

    @gpu
    def steer_pair(model_name: str, prompt: str, seed: int, duration: float, steps: int, vector_name: str | None,
                   repo_id: str | None, layers: list, alpha: float):
        """Original (alpha 0) and steered (alpha) with the same seed, in one batched call (Eq. 2 / Eq. 8)."""
        s = _check_settings(prompt, seed, duration, steps)
        vec = load_named_vector(vector_name, repo_id)
        a = _check_alpha(alpha, alpha_limit(vec), f"the {vec.concept!r} vector")
        layer_ids = _check_layers(layers, vec.layers)
        with cache.use(model_name) as model:
            with vec.apply(model, alpha=[0.0, a], layers=layer_ids):
                gen = model.generate([prompt, prompt], seeds=[s["seed"]] * 2, duration=s["duration"],
                                     steps=s["steps"])
            measured = describe(model, vec.concept, gen)
        note = (f"**{vec.concept}** ({vec.method.upper()}), alpha {a:g} on layers {layer_ids}"
                + (f"; {measured}" if measured else ""))
        return _pair_outputs(gen, note)

    @gpu
    def ab_patch(model_name: str, prompt_a: str, prompt_b: str, layers: list, seed: int, duration: float,
                 steps: int):
        """A, B, and A with ``layers`` patched from B (same seed), and, on the organism, every
        concept's measure for the three clips."""
        s = _check_settings(prompt_a, seed, duration, steps)
        check_prompts(prompt_b, "prompt B")
        if not layers:
            raise TadaError("select at least one layer to patch from prompt B")
        kwargs = dict(seeds=s["seed"], duration=s["duration"], steps=s["steps"])
        with cache.use(model_name) as model:
            layer_ids = _check_layers(layers, [layer.index for layer in model.layers])
            # A and B are generated one at a time: some pipelines (ACE-Step) pad prompts to the
            # longest in the batch without masking, so a batch [A, B] would not sound like B alone.
            a, b = model.generate(prompt_a, **kwargs), model.generate(prompt_b, **kwargs)
            with patch(model, layer_ids, prompt_b):
                patched = model.generate(prompt_a, **kwargs)
            table = measure_table(model, {"A": a, "B": b, "A <- B": patched})
        return _clip(a, 0), _clip(b, 0), _clip(patched, 0), table

    def layer_choices(model_name: str) -> list[tuple[str, int]]:
        """(label, 0-based index) of every cross-attention layer of the model."""
        with cache.use(model_name) as model:
            return [(f"{layer.index} ({layer.path})", layer.index) for layer in model.layers]

    def model_defaults(model_name: str) -> tuple[float, int]:
        """The selected model's default duration (capped by the app's limit) and steps."""
        with cache.use(model_name) as model:
            return min(float(model.defaults.duration), MAX_DURATION), int(model.defaults.steps)

    # ------------------------------------------------------------------ localization

    def concept_choices(model_name: str) -> list[str]:
        with cache.use(model_name) as model:
            return entry_for(model).concepts.names()

    def shipped_localization(model_name: str) -> list[dict]:
        """Rows of every committed ``results/*/summary.json`` made on ``model_name``."""
        rows = []
        for path in sorted(RESULTS.glob("*/summary.json")):
            rows += [r for r in json.loads(path.read_text(encoding="utf-8")) if r.get("model") == model_name]
        return rows

    def functional_layers(model_name: str) -> list[int]:
        """Every layer the committed localization calls functional for some concept (A/B default)."""
        from tada_core.localize import Localization

        rows = [Localization.from_dict(r) for r in shipped_localization(model_name)]
        return sorted({layer for r in rows if r.reliable for layer in r.functional_layers()})

    def localization_view(model_name: str, concept: str):
        """The heatmap of a model's committed localization, the chosen concept marked, and its row."""
        from tada_core.localize import Localization

        rows = [Localization.from_dict(r) for r in shipped_localization(model_name)]
        if not rows:
            return None, [], (f"No committed localization for {model_name!r} in results/. "
                              "Compute one below (the shipped organism) or run `tada localize`.")
        image = _heatmap(rows, marked=concept, title=f"I(l, c), Eq. 9: {model_name}")
        chosen = next((r for r in rows if r.concept == concept), None)
        if chosen is None:
            return image, [], f"The committed localization of {model_name} has no concept {concept!r}."
        return image, _impact_rows(chosen), _localization_text(chosen)

    def compute_localization(model_name: str, concept_name: str, pairs: int = 6, seeds: int = 1,
                             runs: str | Path | None = None) -> Iterator[tuple[int, int, Any]]:
        """Run the patching sweep (Eq. 9) in a worker thread; yields (done, total, None) about
        4 times a second and finally (done, total, Localization). Closing the generator
        (Gradio's Stop) stops the sweep after the current batch; finished batches stay in
        a resumable folder, so computing the same thing again goes on where it stopped."""
        from tada_core.localize import localize
        from tada_core.settings import GenerationSettings

        with cache.use(model_name) as model:
            entry, scorer = entry_for(model), cache.scorer(model)
        if scorer is None:
            raise TadaError(f"the app computes localizations for models with a built-in scorer (the organism); for "
                            f"{model_name} run `tada localize --model {model_name} --scorer clap:PATH`")
        concept = entry.concepts.get(concept_name)
        pairs_n, seeds_n = int(pairs), int(seeds)
        if not 1 <= pairs_n <= 24 or not 1 <= seeds_n <= 4:
            raise TadaError(f"pairs must be in 1..24 and seeds in 1..4; got {pairs!r} and {seeds!r}")
        prompt_pairs, _ = entry.concepts.localization_pairs(concept, limit=pairs_n)
        folder = Path(runs or os.environ.get("TADA_APP_RUNS") or Path(tempfile.gettempdir()) / "tada-app")
        folder = folder / f"{model_name}-{concept.name}-{len(prompt_pairs)}x{seeds_n}"
        stop = threading.Event()
        state: dict[str, Any] = {"done": 0, "total": 0, "result": None, "error": None}

        class Stopped(Exception):
            pass

        def on_batch(done: int, total: int) -> None:
            state.update(done=done, total=total)
            if stop.is_set():
                raise Stopped

        def work() -> None:
            try:
                with cache.use(model_name) as model:
                    state["result"] = localize(model, concept, prompt_pairs, scorer, seeds=list(range(seeds_n)),
                                               settings=GenerationSettings(batch_size=8), out=folder,
                                               progress=False, on_batch=on_batch)
            except Stopped:
                pass
            except BaseException as e:  # re-raised in the request's thread
                state["error"] = e

        worker = threading.Thread(target=work, name=f"localize-{concept.name}", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.25)
                yield state["done"], state["total"], None
            if state["error"] is not None:
                raise state["error"]
            yield state["done"], state["total"], state["result"]
        finally:
            stop.set()

    # ------------------------------------------------------------------ SAE features

    def sae_choices(model_name: str) -> list[str]:
        return [r["name"] for r in _index_rows(SAES, "sae", model_name)]

    def _sae_folder(name: str) -> Path:
        """An SAE from saes/ by index name, or an SAE folder / Hub repo id (sparsify layout)."""
        from tada_core.hub import read_index, resolve
        from tada_core.sae import validate_sae_folder

        name = (name or "").strip()
        names = [r["name"] for r in read_index(SAES) if r.get("kind") == "sae"]
        if name in names:
            return SAES / name
        if not name or (not os.path.isdir(name) and name.count("/") != 1):
            raise TadaError(f"no SAE {name!r} in {SAES} (known: {', '.join(names) or 'none'}), and it is not "
                            "a folder or a Hub repo id like org/name")
        folder = resolve(name)
        validate_sae_folder(folder)
        return folder

    def atlas_layers(sae_name: str) -> list[int]:
        from tada_core.features import load_atlas

        return sorted(load_atlas(_sae_folder(sae_name)))

    def _atlas(sae_name: str, layer):
        from tada_core.features import load_atlas

        atlases = load_atlas(_sae_folder(sae_name))
        try:
            return atlases[int(layer)]
        except (KeyError, TypeError, ValueError):
            raise TadaError(f"{sae_name} has SAEs on layers {sorted(atlases)}; got {layer!r}") from None

    def feature_table(sae_name: str, layer, concept: str, n: int = 12) -> list[list]:
        """Top features of a layer for a concept: [feature, Eq. 6 score, its top prompt]."""
        atlas = _atlas(sae_name, layer)
        return [[f, round(score, 3), atlas.browse(f, top=1)["top_prompts"][0][0]]
                for f, score in atlas.top_features(concept, n)]

    def browse_feature(sae_name: str, layer, feature) -> tuple[list[list], list[list]]:
        """A feature's top prompts [prompt, mean activation] and its Eq. 6 score per concept."""
        atlas = _atlas(sae_name, layer)
        try:
            f = int(feature)
        except (TypeError, ValueError):
            raise TadaError(f"feature must be a whole number in 0..{atlas.latents - 1}; got {feature!r}") from None
        info = atlas.browse(f, top=8)
        return ([[p, round(v, 4)] for p, v in info["top_prompts"]],
                sorted(([c, round(v, 3)] for c, v in info["concept_scores"].items()), key=lambda r: -r[1]))

    @gpu
    def steer_feature(model_name: str, sae_name: str, layer, feature, concept: str, prompt: str, seed: int,
                      duration: float, steps: int, alpha: float):
        """Steer with one SAE feature's decoder direction (Eq. 7 with tau = 1, applied as Eq. 8);
        ``concept``: whose measure to print for both clips (where the model has a scorer)."""
        from tada_core.features import load_saes
        from tada_core.sae import sae_vector

        s = _check_settings(prompt, seed, duration, steps)
        a = _check_alpha(alpha, FEATURE_ALPHA_LIMIT, "one SAE feature")
        with cache.use(model_name) as model:
            saes = load_saes(model, _sae_folder(sae_name))
            layer_i = _check_layers([layer], sorted(saes))[0]
            latents = saes[layer_i].cfg.latents
            try:
                f = int(feature)
            except (TypeError, ValueError):
                f = -1
            if not 0 <= f < latents:
                raise TadaError(f"feature must be a whole number in 0..{latents - 1}; got {feature!r}")
            with steer(model, {layer_i: sae_vector(saes[layer_i], [f])}, alpha=[0.0, a], layers=[layer_i],
                       use_renorm=False):  # Eq. 8: one decoder direction added as is
                gen = model.generate([prompt, prompt], seeds=[s["seed"]] * 2, duration=s["duration"],
                                     steps=s["steps"])
            measured = describe(model, concept, gen) if concept else ""
        return _pair_outputs(gen, f"feature {f} of layer {layer_i}, alpha {a:g}" + (f"; {measured}" if measured else ""))

    return SimpleNamespace(**{fn.__name__: fn for fn in (
        generate, steer_pair, ab_patch, layer_choices, model_defaults, vector_choices, vector_info,
        concept_choices, functional_layers, localization_view, compute_localization, sae_choices, atlas_layers,
        feature_table, browse_feature, steer_feature)})


def _heatmap(rows, marked: str | None = None, title: str = ""):
    from tada_core.plots import heatmap_image

    layers = sorted({layer for r in rows for layer in r.layers})
    values = np.array([[r.impact.get(layer, float("nan")) for layer in layers] for r in rows])
    labels = [("> " if r.concept == marked else "") + (r.concept if r.reliable else f"{r.concept} (n.s.)")
              for r in rows]
    return heatmap_image(values, labels, [str(x) for x in layers], title=title)


def _impact_rows(loc) -> list[list]:
    return [[layer, round(loc.impact[layer], 3), round(loc.sim_patched[layer], 4)] for layer in loc.layers]


def _localization_text(loc) -> str:
    if not loc.reliable:
        return (f"**{loc.concept}**: the prompt change itself is not significant ({loc.sim_pos - loc.sim_neg:.3g} "
                f"+/- {loc.gain_se:.2g}), so no layer is called functional.")
    layers = loc.functional_layers()
    where = f"functional layers **{layers}**" if layers else "no single functional layer (steer all layers)"
    return (f"**{loc.concept}** ({loc.n} prompt-seed pairs, scorer {loc.scorer}): sim(c) {loc.sim_pos:.3g}, "
            f"sim(c~) {loc.sim_neg:.3g}; {where}. Layers are 0-based (the papers count from 1).")


# ---------------------------------------------------------------------------- the UI

def build_app(default_model: str | None = None):
    import gradio as gr

    cache = ModelCache()
    h = make_handlers(cache)
    default_model = default_model or os.environ.get("TADA_MODEL", DEFAULT_MODEL)
    duration0, steps0 = h.model_defaults(default_model)

    def as_ui_error(e: Exception) -> "gr.Error":
        """Bad input (TadaError) as its message; anything else as its type and message, logged
        with its traceback on the server. Either way the app keeps serving."""
        if isinstance(e, TadaError):
            return gr.Error(str(e))
        log.exception("request failed")
        return gr.Error(f"internal error ({type(e).__name__}: {e}); the server log has the details")

    def friendly(fn):
        def wrapped(*args):
            try:
                return fn(*args)
            except gr.Error:
                raise
            except Exception as e:
                raise as_ui_error(e) from None
        wrapped.__name__ = fn.__name__
        return wrapped

    def steer_state(name: str | None, repo_id: str = "") -> tuple[list, list, float, float, str]:
        """Layer choices (functional ones marked), default layers, alpha limit and value, and a caption."""
        if not name and not (repo_id or "").strip():
            return [], [], DEFAULT_ALPHA_LIMIT, 1.0, ""
        info = h.vector_info(name, repo_id)
        functional = set(info["functional"])
        choices = [(f"{i} (functional)" if i in functional else str(i), i) for i in info["layers"]]
        text = (f"{info['concept']} ({info['method'].upper()}) for {info['model']}; validated over alpha "
                f"{info['alpha_range'] or 'unknown'}; the slider allows +/-{info['limit']:g}")
        return choices, info["functional"], info["limit"], info["alpha"], text

    def steer_controls(name: str | None, repo_id: str = ""):
        choices, value, lim, a, text = steer_state(name, repo_id)
        return gr.update(choices=choices, value=value), gr.update(minimum=-lim, maximum=lim, value=a), text

    def side_by_side() -> list:
        """Original and steered players with their spectrograms, and a caption (the outputs of a steer)."""
        with gr.Row():
            with gr.Column():
                orig = gr.Audio(label="original (alpha 0)", type="numpy")
                orig_spec = gr.Image(label="original spectrogram", type="pil")
            with gr.Column():
                steered = gr.Audio(label="steered", type="numpy")
                steered_spec = gr.Image(label="steered spectrogram", type="pil")
        return [orig, steered, orig_spec, steered_spec, gr.Markdown()]

    vec0 = (h.vector_choices(default_model, "caa") or [None])[0]
    concepts0 = h.concept_choices(default_model)
    saes0 = h.sae_choices(default_model)

    with gr.Blocks(title="TADA: steering audio diffusion models") as app:
        gr.Markdown("# TADA: look inside a text-to-music diffusion model, and steer it\n"
                    "A few cross-attention layers carry musical concepts; steering exactly those gives smooth "
                    "control. Layer indices are 0-based module indices (the papers count from 1).")
        # the tiny random-weight fixtures are for tests; they stay loadable by typing their name
        listed = model_names(listed_only=True)
        model_box = gr.Dropdown(listed + ([default_model] if default_model not in listed else []),
                                value=default_model, allow_custom_value=True,
                                label="model (or type a diffusers folder / Hub repo id)")
        with gr.Row():
            seed = gr.Number(0, label="seed", precision=0, minimum=0)
            duration = gr.Number(duration0, label=f"duration (s, at most {MAX_DURATION:g})", maximum=MAX_DURATION)
            steps = gr.Number(steps0, label="steps", precision=0, minimum=1, maximum=MAX_STEPS)

        with gr.Tab("Steer"):
            gr.Markdown("Original and steered clips come from **one batched call** with the same seed "
                        "(alpha 0 and alpha a): the only difference is h + alpha v on the chosen layers.")
            prompt = gr.Textbox("a waltz with piano", label="prompt")
            with gr.Row():
                method = gr.Radio(["caa", "sae"], value="caa", label="method (CAA, Eq. 2; SAE features, Eq. 7)")
                vector = gr.Dropdown(h.vector_choices(default_model, "caa"), value=vec0, label="concept vector")
                repo_id = gr.Textbox("", label="or a steering-vector Hub repo id / folder",
                                     placeholder="org/name")
            choices0, value0, lim0, a0, text0 = steer_state(vec0)
            vec_info = gr.Markdown(text0)
            steer_layers = gr.CheckboxGroup(choices0, value=value0, label="layers to steer (default: functional)")
            alpha = gr.Slider(-lim0, lim0, value=a0, label="alpha (signed: negative removes the concept)")
            go_s = gr.Button("Steer", variant="primary")
            go_s.click(friendly(h.steer_pair), [model_box, prompt, seed, duration, steps, vector, repo_id,
                                                steer_layers, alpha], side_by_side(), api_name="steer")
            method.change(lambda m, name: gr.update(choices=h.vector_choices(name, m),
                                                    value=(h.vector_choices(name, m) or [None])[0]),
                          [method, model_box], vector)
            vector.change(friendly(steer_controls), [vector, repo_id], [steer_layers, alpha, vec_info])
            repo_id.submit(friendly(steer_controls), [vector, repo_id], [steer_layers, alpha, vec_info])

        with gr.Tab("A/B patching"):
            gr.Markdown("Generate prompt A while the checked cross-attention layers take their keys and values "
                        "from prompt B (activation patching, TADA Sec. 3). Same seed for all three.")
            with gr.Row():
                prompt_a = gr.Textbox("a slow sad waltz with piano", label="prompt A (source)")
                prompt_b = gr.Textbox("a fast happy march with drums", label="prompt B (patched in)")
            layers = gr.CheckboxGroup(h.layer_choices(default_model), value=h.functional_layers(default_model),
                                      label="layers to patch from B (checked: functional for some concept)")
            go_p = gr.Button("Patch", variant="primary")
            with gr.Row():
                out_a, out_b, out_ab = (gr.Audio(label=x, type="numpy") for x in ("A", "B", "A with layers from B"))
            measures = gr.Dataframe(headers=["concept: measure", "A", "B", "A with layers from B"],
                                    label="what the organism's scorers hear in each clip")
            go_p.click(friendly(h.ab_patch), [model_box, prompt_a, prompt_b, layers, seed, duration, steps],
                       [out_a, out_b, out_ab, measures], api_name="patch")

        with gr.Tab("Localization"):
            gr.Markdown("Impact I(l, c) of patching one layer (Eq. 9): 1 = that layer alone moves the concept "
                        "as much as changing the prompt. Committed results from `tada localize`.")
            concept = gr.Dropdown(concepts0, value=concepts0[0] if concepts0 else None, label="concept")
            heat = gr.Image(label="layers x concepts", type="pil")
            loc_text = gr.Markdown()
            loc_table = gr.Dataframe(headers=["layer", "impact I", "sim(patched)"], label="impact per layer")
            with gr.Row():
                pairs = gr.Slider(2, 24, value=6, step=1, label="caption pairs")
                n_seeds = gr.Slider(1, 4, value=1, step=1, label="seeds per pair")
                go_l = gr.Button("Compute for this concept", variant="primary")
                stop_l = gr.Button("Stop")

            def compute_ui(model_name, concept_name, n_pairs, k_seeds, progress=gr.Progress()):
                try:
                    for done, total, result in h.compute_localization(model_name, concept_name, n_pairs, k_seeds):
                        if result is None:
                            if total:
                                progress((done, total), desc="patching sweep", unit="batches")
                            yield gr.skip(), gr.skip(), f"{done}/{total or '?'} batches"
                        else:
                            yield (_heatmap([result], marked=None, title=f"I(l, c), Eq. 9: {model_name} (computed)"),
                                   _impact_rows(result), _localization_text(result))
                except Exception as e:
                    raise as_ui_error(e) from None

            show = friendly(h.localization_view)
            concept.change(show, [model_box, concept], [heat, loc_table, loc_text], api_name="localization")
            app.load(show, [model_box, concept], [heat, loc_table, loc_text])
            compute_event = go_l.click(compute_ui, [model_box, concept, pairs, n_seeds],
                                       [heat, loc_table, loc_text], api_name="compute_localization")
            stop_l.click(lambda: "Stopped. Finished batches are kept: *Compute* again resumes from there.", None,
                         loc_text, cancels=[compute_event])

        with gr.Tab("SAE features"):
            if not saes0:
                gr.Markdown(f"No SAE for {default_model} in saes/ (train one with `tada sae cache | train`).")
            gr.Markdown("Features of a TopK SAE (Eq. 4-5) on one layer, ranked by their TF-IDF score for a "
                        "concept (Eq. 6); steer with one feature's decoder direction (Eq. 7-8). From the SAE's "
                        "feature atlas (`tada sae atlas`).")
            with gr.Row():
                sae = gr.Dropdown(saes0, value=saes0[0] if saes0 else None, allow_custom_value=True,
                                  label="SAE (from saes/, or type a folder / Hub repo id)")
                sae_layer = gr.Dropdown([], label="layer")
                sae_concept = gr.Dropdown(concepts0, value=concepts0[0] if concepts0 else None, label="concept")
            features = gr.Dataframe(headers=["feature", "Eq. 6 score", "top prompt"], label="top features")
            feature = gr.Number(0, label="feature", precision=0, minimum=0)
            with gr.Row():
                top_prompts = gr.Dataframe(headers=["prompt", "mean activation"], label="top-activating prompts")
                scores = gr.Dataframe(headers=["concept", "Eq. 6 score"], label="score per concept")
            f_alpha = gr.Slider(-FEATURE_ALPHA_LIMIT, FEATURE_ALPHA_LIMIT, value=2.0, label="alpha")
            f_prompt = gr.Textbox("a waltz with piano", label="prompt")
            go_f = gr.Button("Steer with this feature", variant="primary")
            feature_outputs = side_by_side()

            def on_sae(name):
                layers_ = h.atlas_layers(name) if name else []
                return gr.update(choices=layers_, value=layers_[0] if layers_ else None)

            def on_feature_row(table, evt: gr.SelectData):
                return table.iloc[evt.index[0], 0] if evt.index else gr.skip()

            sae.change(friendly(on_sae), sae, sae_layer)
            app.load(friendly(on_sae), sae, sae_layer)
            def on_table(name, layer, concept_name):
                rows = h.feature_table(name, layer, concept_name)
                return rows, (rows[0][0] if rows else gr.skip())

            for trigger in (sae_layer.change, sae_concept.change):
                trigger(friendly(on_table), [sae, sae_layer, sae_concept], [features, feature])
            features.select(on_feature_row, features, feature)
            feature.change(friendly(h.browse_feature), [sae, sae_layer, feature], [top_prompts, scores],
                           api_name="browse")
            sae_layer.change(friendly(h.browse_feature), [sae, sae_layer, feature], [top_prompts, scores])
            go_f.click(friendly(h.steer_feature), [model_box, sae, sae_layer, feature, sae_concept, f_prompt, seed,
                                                   duration, steps, f_alpha],
                       feature_outputs, api_name="steer_feature")

        with gr.Tab("Generate"):
            g_prompt = gr.Textbox("a fast happy march with drums", label="prompt")
            go = gr.Button("Generate", variant="primary")
            out = gr.Audio(label="audio", type="numpy")
            go.click(friendly(h.generate), [model_box, g_prompt, seed, duration, steps], out, api_name="generate")

        def on_model(name):
            d, n = h.model_defaults(name)
            vecs = h.vector_choices(name, "caa")
            concepts = h.concept_choices(name)
            saes_ = h.sae_choices(name)
            return (gr.update(choices=h.layer_choices(name), value=h.functional_layers(name)), d, n,
                    gr.update(choices=vecs, value=vecs[0] if vecs else None), gr.update(value="caa"),
                    gr.update(choices=concepts, value=concepts[0] if concepts else None),
                    gr.update(choices=concepts, value=concepts[0] if concepts else None),
                    gr.update(choices=saes_, value=saes_[0] if saes_ else None))

        model_box.change(friendly(on_model), model_box,
                         [layers, duration, steps, vector, method, concept, sae_concept, sae])
    return app


def launch(app, **kwargs):
    """Queue settings for one GPU: one generation at a time per event, a bounded waiting line."""
    return app.queue(default_concurrency_limit=1, max_size=32).launch(**kwargs)


if __name__ == "__main__":
    launch(build_app())
