"""TADA Gradio app: generate, and A/B-patch cross-attention layers between two prompts.

Run locally with ``python app.py`` (CPU, offline, on a tiny built-in model by default;
``TADA_MODEL=ace-step python app.py`` on a GPU machine with the weights cached).
On a Hugging Face Space the same file is the entry point. A thin layer over tada_core:
every request gets its own generation call; loaded models are shared, and their
hooks exist only inside one request's ``with`` block, under the model's lock.
"""

from __future__ import annotations

import contextlib
import os
import threading

import numpy as np

from tada_core import DEFAULT_MODEL, TadaError, load_model, model_names, patch

try:  # on a ZeroGPU Space; a no-op decorator elsewhere
    import spaces

    gpu = spaces.GPU
except ImportError:  # pragma: no cover - depends on the environment
    def gpu(fn):
        return fn

MAX_DURATION = float(os.environ.get("TADA_MAX_DURATION", "30"))


class ModelCache:
    """Loaded models by name, each with a lock held for a whole request.

    Hooks live on a model's modules, so one request's ``with patch(...)`` block must not
    overlap another request on the same model: ``use`` serializes requests per model.
    """

    def __init__(self) -> None:
        self._models = {}
        self._locks = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def use(self, name: str):
        with self._lock:
            if name not in self._models:
                model = load_model(name)
                model.set_progress_bar(False)
                self._models[name] = model
                self._locks[name] = threading.Lock()
            model, lock = self._models[name], self._locks[name]
        with lock:
            yield model


def _clip(generation, i: int):
    audio = generation.audio[i].numpy().T  # gradio wants [samples, channels]
    return generation.sample_rate, np.ascontiguousarray(audio)


def _check_duration(duration: float) -> float:
    if duration is None or not 0 < float(duration) <= MAX_DURATION:
        raise TadaError(f"duration must be in (0, {MAX_DURATION:g}] seconds; got {duration!r}")
    return float(duration)


def make_handlers(cache: ModelCache):
    """The app's request handlers as plain functions (tested without a browser)."""

    @gpu
    def generate(model_name: str, prompt: str, seed: int, duration: float, steps: int):
        with cache.use(model_name) as model:
            gen = model.generate(prompt, seeds=int(seed), duration=_check_duration(duration), steps=int(steps))
        return _clip(gen, 0)

    @gpu
    def ab_patch(model_name: str, prompt_a: str, prompt_b: str, layers: list, seed: int, duration: float,
                 steps: int):
        if not layers:
            raise TadaError("select at least one layer to patch from prompt B")
        layer_ids = [int(str(x).split()[0]) for x in layers]
        kwargs = dict(seeds=int(seed), duration=_check_duration(duration), steps=int(steps))
        with cache.use(model_name) as model:
            # A and B are generated one at a time: some pipelines (ACE-Step) pad prompts to the
            # longest in the batch without masking, so a batch [A, B] would not sound like B alone.
            a, b = model.generate(prompt_a, **kwargs), model.generate(prompt_b, **kwargs)
            with patch(model, layer_ids, prompt_b):
                patched = model.generate(prompt_a, **kwargs)
        return _clip(a, 0), _clip(b, 0), _clip(patched, 0)

    def layer_choices(model_name: str) -> list[str]:
        with cache.use(model_name) as model:
            return [f"{layer.index} ({layer.path})" for layer in model.layers]

    def model_defaults(model_name: str) -> tuple[float, int]:
        """The selected model's default duration (capped by the app's limit) and steps."""
        with cache.use(model_name) as model:
            return min(float(model.defaults["duration"]), MAX_DURATION), int(model.defaults["steps"])

    return generate, ab_patch, layer_choices, model_defaults


def build_app(default_model: str | None = None):
    import gradio as gr

    cache = ModelCache()
    generate, ab_patch, layer_choices, model_defaults = make_handlers(cache)
    default_model = default_model or os.environ.get("TADA_MODEL", DEFAULT_MODEL)
    names = model_names()
    duration0, steps0 = model_defaults(default_model)

    def friendly(fn):
        def wrapped(*args):
            try:
                return fn(*args)
            except TadaError as e:
                raise gr.Error(str(e)) from None
        return wrapped

    with gr.Blocks(title="TADA: steering audio diffusion models") as app:
        gr.Markdown("# TADA: look inside a text-to-music diffusion model\n"
                    "Layer indices are 0-based; the papers count from 1.")
        model_box = gr.Dropdown(names, value=default_model, label="model")
        with gr.Tab("Generate"):
            prompt = gr.Textbox("fast techno with drums", label="prompt")
            with gr.Row():
                seed = gr.Number(0, label="seed", precision=0)
                duration = gr.Number(duration0, label="duration (s)")
                steps = gr.Number(steps0, label="steps", precision=0)
            go = gr.Button("Generate", variant="primary")
            out = gr.Audio(label="audio", type="numpy")
            go.click(friendly(generate), [model_box, prompt, seed, duration, steps], out, concurrency_limit=1,
                     api_name="generate")
        with gr.Tab("A/B patching"):
            gr.Markdown("Generate prompt A while the selected cross-attention layers take their keys and values "
                        "from prompt B (activation patching, TADA Sec. 3).")
            with gr.Row():
                prompt_a = gr.Textbox("slow sad piano ballad", label="prompt A (source)")
                prompt_b = gr.Textbox("fast techno with drums", label="prompt B (patched in)")
            layers = gr.CheckboxGroup(layer_choices(default_model), label="layers to patch from B")
            with gr.Row():
                seed_p = gr.Number(0, label="seed", precision=0)
                duration_p = gr.Number(duration0, label="duration (s)")
                steps_p = gr.Number(steps0, label="steps", precision=0)
            go_p = gr.Button("Patch", variant="primary")
            with gr.Row():
                out_a, out_b, out_ab = (gr.Audio(label=x, type="numpy") for x in ("A", "B", "A with layers from B"))
            go_p.click(friendly(ab_patch), [model_box, prompt_a, prompt_b, layers, seed_p, duration_p, steps_p],
                       [out_a, out_b, out_ab], concurrency_limit=1, api_name="patch")
        def on_model(name):
            d, n = model_defaults(name)
            return gr.update(choices=layer_choices(name), value=[]), d, n, d, n

        model_box.change(friendly(on_model), model_box, [layers, duration, steps, duration_p, steps_p])
    return app


if __name__ == "__main__":
    build_app().queue(default_concurrency_limit=1).launch()
