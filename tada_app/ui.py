"""The Gradio page: one builder per tab over :class:`tada_app.handlers.Handlers`.

Public endpoints (a button's event) carry the handler's own parameter names and get the raw
values a client sends (``preprocess=False``), so every value is checked by the handler and a
wrong type is a message naming the field. Helper events (filling a dropdown) are private.
Long jobs (localization) run in their own queue (``concurrency_id="long-jobs"``, one at a
time), so a sweep never holds up a visitor's generation.
"""

import atexit
import functools
import inspect
import logging
import math
import re
import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np

import gradio as gr

from tada_core import TadaError

from .config import MIN_DURATION
from .handlers import EFFECTS_LABEL, FEATURE_ALPHA_LIMIT, INTERFERENCE_LABEL, MIX_ROWS, Handlers, heatmap, impact_rows, localization_text
from .sources import scrub

try:  # on a ZeroGPU Space; a no-op decorator elsewhere
    import spaces

    gpu = spaces.GPU
except ImportError:  # pragma: no cover - depends on the environment
    def gpu(fn):
        return fn

log = logging.getLogger("tada.app")
PRIVATE = dict(api_visibility="private")
STOPPED = "Stopped. Finished batches are kept: Compute again resumes from there."


def ui_error(e: Exception) -> gr.Error:
    """Bad input (TadaError) as its message, logged as one line; anything else as its type, logged with its
    traceback (a real fault). gradio itself prints no traceback for either. Never a server path; either way
    the app keeps serving."""
    if isinstance(e, gr.Error):
        return e
    if isinstance(e, TadaError):
        message = scrub(str(e)).replace("\n", " ")
        log.info("refused input: %s", message[:300])
        return gr.Error(message, print_exception=False)
    log.exception("request failed")
    return gr.Error(f"internal error ({type(e).__name__}); the server log has the details", print_exception=False)


def friendly(fn):
    """``fn`` with every error turned into a UI message; keeps ``fn``'s signature (the API's parameter names)."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapped(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:
                raise ui_error(e) from None
        return gen_wrapped

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise ui_error(e) from None
    return wrapped


def _public(event, fn, inputs, outputs, name, *, generates: bool = False, **kwargs):
    return event(friendly(gpu(fn) if generates else fn), inputs, outputs, api_name=name, preprocess=False, **kwargs)


def _slug(text, n: int = 32) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:n].strip("-") or "x"


class AudioFiles:
    """The players' clips as WAV files named after what made them (model, prompt, vector, alpha, original or
    steered), so a download says what it is. One folder per request, the oldest removed past ``keep``
    (gradio copies each file into its own cache while answering), all removed at exit."""

    def __init__(self, keep: int = 64) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tada-audio-"))
        self.keep = keep
        self._lock = threading.Lock()
        atexit.register(shutil.rmtree, self.root, ignore_errors=True)

    def write(self, clips: dict[int, tuple[str, tuple[int, Any]]]) -> dict[int, str]:
        import soundfile as sf

        folder = self.root / uuid.uuid4().hex
        folder.mkdir()
        paths = {}
        for i, (name, (rate, data)) in clips.items():
            path = folder / f"{name[:120]}.wav"
            sf.write(path, np.asarray(data), rate, subtype="PCM_16")   # int16 [samples, channels]
            paths[i] = str(path)
        with self._lock:
            folders = sorted(self.root.iterdir(), key=lambda p: p.stat().st_mtime)
            for old in folders[:-self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        return paths


def named_audio(fn, files: AudioFiles, names):
    """``fn`` with the audio among its outputs as named files: ``names(arguments)`` gives {output index: file
    name} ({None: name} where ``fn`` returns one clip). Keeps ``fn``'s signature (the API's parameter names)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        out = fn(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        wanted = names(bound.arguments)
        single = list(wanted) == [None]     # the function returns one clip, not a tuple of outputs
        out = [out] if single else list(out)
        paths = files.write({i or 0: (name, out[i or 0]) for i, name in wanted.items()})
        for i, path in paths.items():
            out[i] = path
        return out[0] if single else tuple(out)
    return wrapped


def _frame(table) -> "Any":
    import pandas as pd

    if table is None:
        return pd.DataFrame()
    return table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)


def impact_frame(table):
    """The impact table as long data for the line plot: impact and its interval's ends, per layer."""
    import pandas as pd

    t = _frame(table)
    if t.empty or t.shape[1] < 4:
        return pd.DataFrame({"layer": [], "impact I": [], "series": []})
    t = t.iloc[:, :4].set_axis(["layer", "impact I (Eq. 9)", "95% CI low", "95% CI high"], axis=1)
    long = t.melt(id_vars="layer", var_name="series", value_name="impact I").dropna()
    long["layer"] = pd.to_numeric(long["layer"], errors="coerce")
    long["impact I"] = pd.to_numeric(long["impact I"], errors="coerce")
    return long.dropna()


def score_frame(table):
    """The score-per-concept table as the bar plot's data."""
    import pandas as pd

    t = _frame(table)
    if t.empty or t.shape[1] < 2:
        return pd.DataFrame({"concept": [], "Eq. 6 score": []})
    t = t.iloc[:, :2].set_axis(["concept", "Eq. 6 score"], axis=1)
    t["Eq. 6 score"] = pd.to_numeric(t["Eq. 6 score"], errors="coerce")
    return t.dropna()


def side_by_side(original: str = "original (alpha 0)", steered_name: str = "steered",
                 caption_label: str = "what was done") -> list:
    """Original and steered players with their spectrograms, and a caption (the outputs of a steer)."""
    # the spectrograms' titles sit above them, not in gradio's label badge, which would cover the top axis
    with gr.Row():
        with gr.Column():
            orig = gr.Audio(label=original, type="numpy")
            gr.Markdown("**original: spectrogram** (dB relative to the louder clip)")
            orig_spec = gr.Image(label="original: spectrogram", show_label=False, type="pil")
        with gr.Column():
            steered = gr.Audio(label=steered_name, type="numpy")
            gr.Markdown(f"**{steered_name}: spectrogram** (same scale)")
            steered_spec = gr.Image(label=f"{steered_name}: spectrogram", show_label=False, type="pil")
    caption = gr.Textbox(label=caption_label, interactive=False)   # artifact text shown as text, never HTML
    return [orig, steered, orig_spec, steered_spec, caption]


def steer_tab(h: Handlers, shared: dict) -> dict:
    model0 = shared["model0"]
    gr.Markdown("Original and steered clips come from **one batched call** with the same seed (alpha 0 and "
                "alpha a): the only difference is the steering on the chosen layers.")
    prompt = gr.Textbox("a waltz with piano", label="prompt")
    method0 = h.default_method(model0)
    vectors0 = h.vector_choices(model0, method0)
    vec0 = vectors0[0] if vectors0 else None
    with gr.Row():
        method = gr.Radio(["caa", "sae", "diffmean"], value=method0,
                          label="method (CAA, Eq. 2; SAE features, Eq. 7; DiffMean for MusicGen)")
        vector = gr.Dropdown(vectors0, value=vec0, allow_custom_value=True, label="concept vector (shipped)")
        repo_id = gr.Textbox("", label="or a steering-vector Hub repo id (clears the shipped choice)",
                             placeholder="org/name")
    info = h.vector_info(vec0) if vec0 else None
    vec_info = gr.Textbox(_vector_caption(info), label="vector, and what `tada verify` found it does on fresh seeds",
                          interactive=False, lines=6)
    layers = gr.CheckboxGroup(_layer_boxes(info), value=info["functional"] if info else [],
                              label="layers to steer (default: the vector's functional layers)")
    lim = info["limit"] if info else 10.0
    with gr.Row():
        alpha = gr.Slider(-lim, lim, value=info["alpha"] if info else 1.0, label=_alpha_label(lim))
        renorm = gr.Checkbox(info["renorm"] if info else True,
                             label="ReNorm (Eq. 3; default: what the vector's alpha range was validated with)")
        strategy = gr.Radio([("the vector's own", ""), ("One-to-All", "one-to-all"), ("All-to-All", "all-to-all")],
                            value="", label="injection (DiffMean vectors of MusicGen's residual stream)",
                            interactive=bool(info) and info["method"] == "diffmean")
    go = gr.Button("Steer", variant="primary")
    outputs = side_by_side()
    def names(a):
        stem = f"{_slug(a['model'])}_{_slug(a['prompt'])}_{_slug(a['vector'] or a['repo_id'])}"
        return {0: f"{stem}_alpha0_original", 1: f"{stem}_alpha{_slug(a['alpha'])}_steered"}

    _public(go.click, named_audio(h.steer, shared["files"], names),
            [shared["model"], prompt, shared["seed"], shared["duration"], shared["steps"], vector, repo_id, layers,
             alpha, renorm, strategy], outputs, "steer", generates=True)

    def controls(name, repo):
        data = h.vector_info(name, repo) if (name or (repo or "").strip()) else None
        lim = (data or {}).get("limit", 10.0)
        diffmean = bool(data) and data["method"] == "diffmean"
        return (gr.update(choices=_layer_boxes(data), value=data["functional"] if data else []),
                gr.update(minimum=-lim, maximum=lim, value=(data or {}).get("alpha", 1.0), label=_alpha_label(lim)),
                gr.update(value=(data or {}).get("renorm", True)),
                gr.update(interactive=diffmean, value=""), _vector_caption(data))

    def on_vector(name):   # a shipped choice clears the repo box, so one source is ever in use
        return ("",) + controls(name, "")

    def on_repo(repo, current):
        """A repo id replaces the shipped choice; one it cannot use leaves the current vector in use, says so
        once (a toast and the vector box), and clears the repo box, so what Steer uses is what is shown."""
        try:
            return (gr.skip(), None) + controls(None, repo)
        except Exception as e:  # noqa: BLE001 - shown as one message, the controls stay as they were
            message = str(ui_error(e))
            gr.Warning(message)
            still = f"still using {current}" if current else "no vector chosen"
            return ("", gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(),
                    f"{still}: the repo id could not be used ({message})")

    def on_method(m, model):
        names = h.vector_choices(model, m)
        return gr.update(choices=names, value=names[0] if names else None)

    outs = [repo_id, layers, alpha, renorm, strategy, vec_info]
    vector.input(friendly(on_vector), vector, outs, **PRIVATE)
    repo_id.submit(on_repo, [repo_id, vector], [repo_id, vector] + outs[1:], **PRIVATE)
    method.input(friendly(on_method), [method, shared["model"]], vector, **PRIVATE).then(
        friendly(on_vector), vector, outs, **PRIVATE)
    return {"method": method, "vector": vector, "refresh": (friendly(on_vector), vector, outs)}


def _mix_row(choices: dict, i: int) -> dict:
    """Row ``i`` of the Mix tab as a slider's settings: the model's i-th vector, at 0; hidden past its vectors."""
    if i >= len(choices["names"]):
        return dict(minimum=-1.0, maximum=1.0, value=0.0, visible=False, label="(no vector)")
    lim = choices["limits"][i]
    return dict(minimum=-lim, maximum=lim, step=_slider_step(lim), value=0.0, visible=True,
                label=f"{choices['labels'][i]}: alpha -{lim:g} to {lim:g} (0: not applied)")


def _slider_step(limit: float) -> float:
    """The step gradio picks for a slider over [-limit, limit] (a hundredth of the span, rounded down to a power
    of 10), set again whenever the range changes."""
    return 10.0 ** math.floor(math.log10(2 * limit) - 2)


def mix_tab(h: Handlers, shared: dict) -> None:
    model0 = shared["model0"]
    gr.Markdown("Several concept vectors at once (`tada_core.compose`): each slider adds its vector at its own "
                "strength on that vector's own layers, and a slider at 0 leaves its vector out. Original (every "
                "alpha 0) and mixed come from **one batched call** with the same seed: the only difference is the "
                "mix. ReNorm (Eq. 3), when on, rescales each steered token once, after the sum.")
    prompt = gr.Textbox("a waltz with piano", label="prompt")
    choices0 = h.mix_choices(model0)
    # the vectors of the sliders, set with them in one event, so what is mixed is what the sliders say; and the
    # sliders' values gathered for the /mix endpoint, whose API takes names and alphas as lists
    names = gr.JSON(choices0["names"], visible=False, label="names")
    alphas = gr.JSON([], visible=False, label="alphas")
    sliders: dict[int, gr.Slider] = {}
    with gr.Row():
        for column in range(2):     # row by row, left to right: the index's order
            with gr.Column():
                for i in range(column, MIX_ROWS, 2):
                    sliders[i] = gr.Slider(**_mix_row(choices0, i))
    sliders_in = [sliders[i] for i in range(MIX_ROWS)]
    with gr.Row():
        renorm = gr.Checkbox(choices0["renorm"], label="ReNorm (Eq. 3), once after the sum; default: on only if "
                                                       "every vector of this model was validated with it")
        zero = gr.Button("All sliders to 0")
        go = gr.Button("Mix", variant="primary")
    image0, note0 = h.mix_effects(model0)
    with gr.Row():
        with gr.Column(scale=3):
            outputs = side_by_side("original (every alpha 0)", "mixed", "what was mixed")
            table = gr.Dataframe(headers=["concept: measure (unit)", "original", "mixed"], wrap=True,
                                 column_widths=["60%", "20%", "20%"],
                                 label="what the organism's scorers hear in each clip")
        with gr.Column(scale=2):
            gr.Markdown(f"**{EFFECTS_LABEL}**")
            heat = gr.Image(image0, label=EFFECTS_LABEL, show_label=False, type="pil", visible=image0 is not None)
            note = gr.Textbox(note0, label="about this heatmap", interactive=False, lines=3)
            pair_image0, pair_note0 = h.mix_interference(model0)
            gr.Markdown(f"**{INTERFERENCE_LABEL}**")
            pairs = gr.Image(pair_image0, label=INTERFERENCE_LABEL, show_label=False, type="pil",
                             visible=pair_image0 is not None)
            pair_note = gr.Textbox(pair_note0, label="about the interference heatmap", interactive=False, lines=3)

    def gather_alphas(names_, *values):
        return [float(v or 0.0) for v in values[:len(names_ or [])]]

    def file_names(a):
        model = str(a["model"])
        mixed = "_".join(f"{_slug(str(n).removeprefix(model + '-'))}-{'m' if x < 0 else 'p'}{_slug(abs(x))}"
                         for n, x in zip(a["names"], a["alphas"]) if x != 0)
        stem = f"{_slug(model)}_{_slug(a['prompt'])}"
        return {0: f"{stem}_original", 1: f"{stem}_mix_{mixed}"[:120]}

    gathered = go.click(gather_alphas, [names] + sliders_in, alphas, queue=False, **PRIVATE)
    _public(gathered.then, named_audio(h.mix, shared["files"], file_names),
            [shared["model"], prompt, shared["seed"], shared["duration"], shared["steps"], names, alphas, renorm],
            outputs + [table], "mix", generates=True)
    zero.click(lambda: [0.0] * MIX_ROWS, None, sliders_in, queue=False, **PRIVATE)

    def on_mix_model(name):
        choices = h.mix_choices(name)
        image, text = h.mix_effects(name)
        pair_image, pair_text = h.mix_interference(name)
        return (choices["names"], *(gr.update(**_mix_row(choices, i)) for i in range(MIX_ROWS)), choices["renorm"],
                gr.update(value=image, visible=image is not None), text,
                gr.update(value=pair_image, visible=pair_image is not None), pair_text)

    shared["model"].input(friendly(on_mix_model), shared["model"],
                          [names] + sliders_in + [renorm, heat, note, pairs, pair_note], **PRIVATE)


def _alpha_label(limit: float) -> str:
    return (f"alpha (signed: negative removes the concept; this vector allows -{limit:g} to {limit:g}, a value typed "
            f"beyond is set to that limit)")


def _layer_boxes(info) -> list:
    if not info:
        return []
    functional = set(info["functional"])
    return [(f"{i} (functional)" if i in functional else str(i), i) for i in info["layers"]]


def _vector_caption(info) -> str:
    if not info:
        return "no vector chosen"
    how = (f", {info['strategy']['name']}" if info.get("strategy") else "")
    return (f"{info['concept']} ({info['method'].upper()}{how}) for {info['model']}; validated over alpha "
            f"{info['alpha_range'] or 'unknown'} {'with' if info['renorm'] else 'without'} ReNorm; the slider "
            f"allows +/-{info['limit']:g}\n" + info.get("verified", ""))


def patch_tab(h: Handlers, shared: dict) -> dict:
    model0 = shared["model0"]
    gr.Markdown("Generate prompt A while the checked cross-attention layers take their keys and values from "
                "prompt B (activation patching, TADA Sec. 3). Same seed for all three; one level for all three. "
                "For the diffusion models only: MusicGen has no cross-attention keys and values to swap (steer it "
                "with DiffMean vectors in the Steer tab).")
    with gr.Row():
        prompt_a = gr.Textbox("a slow sad waltz with piano", label="prompt A (source)")
        prompt_b = gr.Textbox("a fast happy march with drums", label="prompt B (patched in)")
    layers = gr.CheckboxGroup(h.layer_choices(model0), value=h.functional_layers(model0),
                              label="layers to patch from B (checked: functional for some concept)")
    go = gr.Button("Patch", variant="primary")
    with gr.Row():
        out = [gr.Audio(label=x, type="numpy") for x in ("A", "B", "A with layers from B")]
    measures = gr.Dataframe(headers=["concept: measure (unit)", "A", "B", "A with layers from B"],
                            label="what the organism's scorers hear in each clip")
    def names(a):
        m, pa, pb = _slug(a["model"]), _slug(a["prompt_a"]), _slug(a["prompt_b"])
        return {0: f"{m}_A_{pa}", 1: f"{m}_B_{pb}", 2: f"{m}_A_{pa}_layers-{_slug(a['layers'])}-from-B"}

    _public(go.click, named_audio(h.patch, shared["files"], names),
            [shared["model"], prompt_a, prompt_b, layers, shared["seed"], shared["duration"], shared["steps"]],
            out + [measures], "patch", generates=True)
    return {"layers": layers}


def localization_tab(h: Handlers, shared: dict, app: gr.Blocks) -> dict:
    model0 = shared["model0"]
    cfg = h.config
    gr.Markdown("Impact I(l, c) of patching one layer (Eq. 9, not clipped): 1 = that layer alone moves the concept "
                "as much as changing the prompt. Committed results from `tada localize`.")
    concepts0 = h.concept_choices(model0)
    concept = gr.Dropdown(concepts0, value=concepts0[0] if concepts0 else None, label="concept")
    heat = gr.Image(label="layers x concepts", type="pil")
    text = gr.Textbox(label="result", interactive=False)
    table = gr.Dataframe(headers=["layer", "impact I", "95% CI low", "95% CI high", "sim(patched)"],
                         label="impact per layer (interval: bootstrap over prompt-seed pairs)")
    plot = gr.LinePlot(x="layer", y="impact I", color="series", title="Impact I(l, c) per layer (Eq. 9)",
                       x_title="layer (0-based module index)", y_title="impact I (1 = the prompt change's effect)",
                       tooltip=["layer", "impact I", "series"], label="impact per layer (hover for values)")
    table.change(impact_frame, table, plot, **PRIVATE)
    with gr.Row():
        pairs = gr.Slider(1, cfg.max_pairs, value=min(6, cfg.max_pairs), step=1, label="caption pairs")
        seeds = gr.Slider(1, cfg.max_job_seeds, value=1, step=1, label="seeds per pair")
        go = gr.Button("Compute for this concept", variant="primary")
        stop = gr.Button("Stop")

    # Stop is a flag per visitor session, read by the sweep's own loop, which then ends the job after its current
    # batch and says so itself: the status line's last word is always the job's (gradio's cancel of a running
    # generator raced with Stop's own message, which then never showed).
    stops: dict[str, threading.Event] = {}

    def session(request) -> str:
        return str(getattr(request, "session_hash", None) or "no-session")

    def compute(model, concept, pairs, seeds, request: gr.Request, progress=gr.Progress()):
        flag = stops[session(request)] = threading.Event()
        try:
            yield gr.update(value=None, visible=False), [], "starting..."   # hide the stale heatmap, clear the status
            job = h.compute_localization(model, concept, pairs, seeds)
            try:
                for done, total, result in job:
                    if flag.is_set():
                        job.close()          # the worker stops at its next batch; finished batches stay on disk
                        image, rows, _ = h.localization(model, concept)     # the committed view again
                        yield (gr.update(value=image, visible=True), rows,
                               f"{STOPPED} ({done} of {total} batches done; shown: the committed localization)")
                        return
                    if result is None:
                        if total:
                            progress((done, total), desc="patching sweep", unit="batches")
                        yield gr.skip(), gr.skip(), f"patching sweep: {done}/{total or '?'} batches"
                    else:
                        yield (gr.update(value=heatmap([result], title=f"I(l, c), Eq. 9: {model} (computed, not "
                                                                         f"clipped)"), visible=True),
                               impact_rows(result), localization_text(result))
            finally:
                job.close()
        finally:
            if stops.get(session(request)) is flag:
                del stops[session(request)]

    compute.__name__ = "compute_localization"
    show = friendly(h.localization)
    concept.change(show, [shared["model"], concept], [heat, table, text], api_name="_show_localization", **PRIVATE)
    app.load(show, [shared["model"], concept], [heat, table, text], api_name="_load_localization", **PRIVATE)
    _public(gr.Button(visible=False).click, h.localization, [shared["model"], concept], [heat, table, text],
            "localization")
    # one progress bar, on the status line (gr.Progress draws it there); Stop answers at once, outside the queue
    go.click(friendly(compute), [shared["model"], concept, pairs, seeds], [heat, table, text],
                     api_name="compute_localization", preprocess=False, concurrency_limit=1,
                     concurrency_id="long-jobs", show_progress="full", show_progress_on=[text])

    def stopped(request: gr.Request):
        flag = stops.get(session(request))
        if flag is None:
            return "Nothing to stop: no sweep is running for this page."
        flag.set()
        return "Stopping after the current batch..."

    stop.click(stopped, None, text, queue=False, **PRIVATE)
    return {"concept": concept}


def sae_tab(h: Handlers, shared: dict, app: gr.Blocks) -> dict:
    model0 = shared["model0"]
    saes0 = h.sae_choices(model0)
    concepts0 = h.concept_choices(model0)
    if not saes0:
        gr.Markdown(f"No SAE for {model0} in saes/ (train one with `tada sae cache | train`).")
    gr.Markdown("Features of a TopK SAE (Eq. 4-5) on one layer, ranked by their TF-IDF score for a concept (Eq. 6); "
                "steer with one feature's decoder direction (Eq. 7-8). From the SAE's feature atlas "
                "(`tada sae atlas`). Click a row to pick its feature.")
    layers0 = h.atlas_layers(saes0[0]) if saes0 else []
    with gr.Row():
        sae = gr.Dropdown(saes0, value=saes0[0] if saes0 else None, allow_custom_value=True,
                          label="SAE (from saes/, a folder under saes/, or a Hub repo id)")
        layer = gr.Dropdown(layers0, value=layers0[-1] if layers0 else None, allow_custom_value=True, label="layer")
        concept = gr.Dropdown(concepts0, value=concepts0[0] if concepts0 else None, label="concept")
    features = gr.Dataframe(headers=["feature", "Eq. 6 score", "top prompt"], label="top features (click a row)")
    feature = gr.Number(0, label="feature", minimum=0)
    score_plot = gr.BarPlot(x="concept", y="Eq. 6 score", title="This feature's TF-IDF score per concept (Eq. 6)",
                            x_title="concept", y_title="Eq. 6 score (TF-IDF of the feature's activation)",
                            tooltip=["concept", "Eq. 6 score"], label="score per concept (hover for values)",
                            y_lim=[0, None])    # bars start at zero, so their lengths compare
    with gr.Row():
        top_prompts = gr.Dataframe(headers=["prompt", "mean activation"], label="top-activating prompts", wrap=True,
                                   column_widths=["75%", "25%"])
        scores = gr.Dataframe(headers=["concept", "Eq. 6 score"], label="score per concept", wrap=True,
                              column_widths=["60%", "40%"])
    alpha = gr.Slider(-FEATURE_ALPHA_LIMIT, FEATURE_ALPHA_LIMIT, value=2.0, label="alpha (added as is, Eq. 8)")
    prompt = gr.Textbox("a waltz with piano", label="prompt")
    go = gr.Button("Steer with this feature", variant="primary")
    outputs = side_by_side()

    def on_sae(name):
        layers_ = h.atlas_layers(name) if name else []
        return gr.update(choices=layers_, value=layers_[-1] if layers_ else None)

    def on_table(name, layer, concept):
        if not name or layer in (None, "") or not concept:   # a model without SAEs: an empty table, no message
            return [], gr.skip()
        rows = h.feature_table(name, layer, concept)
        return rows, (rows[0][0] if rows else gr.skip())

    def on_feature(name, layer, feature):
        if not name or layer in (None, "") or feature is None:
            return [], []
        return h.browse_feature(name, layer, feature)

    def on_row(table, evt: gr.SelectData):
        return int(table.iloc[evt.index[0], 0]) if evt.index is not None else gr.skip()

    sae.change(friendly(on_sae), sae, layer, **PRIVATE)
    for trigger in (layer.change, concept.change, app.load):
        trigger(friendly(on_table), [sae, layer, concept], [features, feature], **PRIVATE)
    features.select(on_row, features, feature, **PRIVATE)
    scores.change(score_frame, scores, score_plot, **PRIVATE)
    feature.change(friendly(on_feature), [sae, layer, feature], [top_prompts, scores], **PRIVATE)
    _public(gr.Button(visible=False).click, h.feature_table, [sae, layer, concept], features, "feature_table")
    _public(gr.Button(visible=False).click, h.browse_feature, [sae, layer, feature], [top_prompts, scores],
            "browse_feature")
    def names(a):
        stem = f"{_slug(a['model'])}_{_slug(a['prompt'])}_feature{_slug(a['feature'])}-layer{_slug(a['layer'])}"
        return {0: f"{stem}_alpha0_original", 1: f"{stem}_alpha{_slug(a['alpha'])}_steered"}

    _public(go.click, named_audio(h.steer_feature, shared["files"], names),
            [shared["model"], sae, layer, feature, concept, prompt, shared["seed"], shared["duration"],
             shared["steps"], alpha], outputs, "steer_feature", generates=True)
    return {"sae": sae, "concept": concept}


def published_tab(h: Handlers) -> None:
    from tada_core.evaluation.published import AXES, CONCEPTS, MODELS

    gr.Markdown("The TADA reference implementation's own measurements on the real models (ACE-Step, Stable Audio "
                f"Open, AudioLDM2), published by `{h.published_source()}` and shipped with this app; every number "
                "below is reduced from them by this project's protocol code, and Table 3 equals the paper's "
                "published table in every printed cell. Click a column header to sort.")
    with gr.Row():
        concept = gr.Dropdown(["average", *CONCEPTS], value="average", label="concept")
        axis = gr.Dropdown(list(AXES), value="lpaps", label="preservation axis (lpaps: Table 3; the others: MIR)")
    table = gr.Dataframe(headers=["method", "AUC MuQ", "AUC CLAP", "smooth MuQ", "smooth CLAP", "quality"],
                         value=h.published_table("average", "lpaps"), interactive=False,
                         label="Table 3: AUC (higher is better), smoothness (lower is better), quality (Audiobox "
                               "Aesthetics, mean of 4 axes); empty = undefined")
    for control in (concept, axis):
        control.change(friendly(h.published_table), [concept, axis], table, **PRIVATE)
    with gr.Row():
        curve_concept = gr.Dropdown(list(CONCEPTS), value="piano", label="concept")
        alignment = gr.Radio(["muqt", "clap"], value="muqt", label="alignment (MuQ-MuLan or CLAP)")
        direction = gr.Radio(["+", "-"], value="+", label="direction")
    curves = gr.LinePlot(x="distance", y="Delta alignment", color="method",
                         title="Alignment gain against distance to the unsteered clip, up to P_max",
                         x_title="distance to the alpha-0 clip (preservation axis)", y_title="Delta alignment",
                         tooltip=["method", "distance", "Delta alignment"], label="per method (hover for values)")

    def curve_frame(c, a, al, d):
        import pandas as pd

        return pd.DataFrame(h.published_curves(c, a, al, d), columns=["method", "distance", "Delta alignment"])

    for control in (curve_concept, axis, alignment, direction):
        control.change(friendly(curve_frame), [curve_concept, axis, alignment, direction], curves, **PRIVATE)
    model = gr.Radio(list(MODELS), value="ace", label="model (ace: ACE-Step; stableaudio; audioldm2)")
    heat = gr.Image(value=h.published_impact("ace"), type="pil", label="layer impact per concept (published sweep)")
    model.change(friendly(h.published_impact), model, heat, **PRIVATE)
    return {"curves": (curve_frame, [curve_concept, axis, alignment, direction], curves)}


def edit_tab(h: Handlers, shared: dict) -> None:
    """Edit your clip: upload or record, choose a vector and up to EDIT_ALPHAS alphas; original, reconstruction
    and edits side by side (players, spectrograms on one dB scale, the measured attributes of each)."""
    from .handlers import EDIT_ALPHAS, EDIT_MAX_SECONDS

    gr.Markdown("Your own clip, steered: it is encoded by the model's autoencoder, inverted to the sampler's noise "
                "(edit-friendly DDPM inversion), and regenerated with the vector at each alpha, in one batched "
                f"call. The first `duration` seconds are edited (clips up to {EDIT_MAX_SECONDS:g} s are accepted; "
                "any sample rate, mono or stereo). The reconstruction is alpha 0 through the same inversion: "
                "what the edit keeps. MusicGen has no noise to invert: it keeps the clip's start as codec tokens "
                "and continues it with the vector (strength: the fraction replaced; the alpha-0 slot is the "
                "unsteered continuation), not an edit of the whole clip. See docs/editing.md for what moves, "
                "what is kept and where it fails.")
    # a file path only from gradio's own upload cache (preprocessing refuses any other path); decoded here with
    # soundfile (gradio's numpy decoding needs ffmpeg for anything but WAV)
    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="your clip (wav, flac, ogg, mp3)")
    with gr.Row():
        prompt = gr.Textbox("", label="what the clip is, in the model's words (empty: 'music')",
                            placeholder="a slow waltz played on piano")
        vectors0 = h.vector_choices(shared["model0"], "any")
        vector = gr.Dropdown(vectors0, value=vectors0[0] if vectors0 else None, allow_custom_value=True,
                             label="concept vector (shipped)")   # the handler checks it, echoing no path
        repo_id = gr.Textbox("", label="or a steering-vector Hub repo id", placeholder="org/name")
    with gr.Row():
        alphas = gr.Textbox("-2, 2", label=f"alphas (1 to {EDIT_ALPHAS}, comma-separated; each within the vector's "
                                           "limit)")
        strength = gr.Slider(0.0, 1.0, value=h.edit_strength(shared["model0"]), step=0.05,
                             label="strength (1: full inversion; smaller keeps more of the clip; 0: its encoding. "
                                   "MusicGen: the fraction of the clip replaced by a steered continuation)")
    go = gr.Button("Edit", variant="primary")
    names = ["original", "reconstruction (alpha 0)"] + [f"edit {i + 1}" for i in range(EDIT_ALPHAS)]
    players, images = [], []
    with gr.Row():
        for name in names:
            with gr.Column(min_width=160):
                players.append(gr.Audio(label=name, type="numpy"))
                images.append(gr.Image(label=f"{name}: spectrogram", type="pil"))
    table = gr.Dataframe(label="measured attributes of each clip (the model's built-in scorer)", wrap=True,
                         interactive=False)
    caption = gr.Textbox(label="what was done", interactive=False)

    def run(model, audio, prompt, seed, duration, steps, vector, repo_id, alphas, strength):
        """The API's parameter names are these (the page's components are passed in this order)."""
        try:
            values = [float(a) for a in str(alphas).replace(";", ",").split(",") if a.strip()][:EDIT_ALPHAS + 1]
        except ValueError:
            raise TadaError("alphas must be numbers separated by commas, like -2, 2") from None
        if not audio:
            raise gr.Error("upload or record a clip first")
        from tada_core.audio import read_clip

        try:
            samples, rate = read_clip(audio)
        except TadaError as e:   # name the visitor's file, never the server's cache path
            raise TadaError(str(e).replace(str(audio), Path(audio).name)) from None
        return h.edit(model, (rate, samples), prompt, seed, duration, steps, vector, repo_id, values, strength)

    def on_model(name):   # the vectors of the newly chosen model, and its default strength (MusicGen: 0.5)
        names = h.vector_choices(name, "any")
        return gr.update(choices=names, value=names[0] if names else None), gr.update(value=h.edit_strength(name))

    shared["model"].input(friendly(on_model), shared["model"], [vector, strength], **PRIVATE)
    go.click(friendly(gpu(run)), [shared["model"], audio, prompt, shared["seed"], shared["duration"],
                                  shared["steps"], vector, repo_id, alphas, strength],
             players + images + [table, caption], api_name="edit")


def generate_tab(h: Handlers, shared: dict) -> None:
    prompt = gr.Textbox("a fast happy march with drums", label="prompt")
    go = gr.Button("Generate", variant="primary")
    out = gr.Audio(label="audio", type="numpy")
    def names(a):
        return {None: f"{_slug(a['model'])}_{_slug(a['prompt'])}_seed{_slug(a['seed'])}"}

    _public(go.click, named_audio(h.generate, shared["files"], names),
            [shared["model"], prompt, shared["seed"], shared["duration"], shared["steps"]], out, "generate",
            generates=True)


def build_app(default_model: str | None = None, handlers: Handlers | None = None) -> gr.Blocks:
    """The page. ``handlers``: bring your own (a test's config); default: configured from the environment."""
    h = handlers or Handlers()
    model0 = default_model or h.config.default_model
    info0 = h.model_info(model0)
    seconds = 60 * h.config.cache_minutes     # served files (audio, images) leave gradio's cache after this
    with gr.Blocks(title="TADA: steering audio diffusion models", delete_cache=(seconds, seconds)) as app:
        gr.Markdown("# TADA: look inside a text-to-music diffusion model, and steer it\n"
                    "A few cross-attention layers carry musical concepts; steering exactly those gives smooth "
                    "control. Layer indices are 0-based module indices (the papers count from 1).")
        model = gr.Dropdown(h.config.models(), value=model0,
                            allow_custom_value=h.config.allow_custom_models,
                            label="model" + (" (or type a diffusers folder / Hub repo id)"
                                             if h.config.allow_custom_models else ""))
        with gr.Row():
            seed = gr.Number(0, label="seed (0..4294967295)", minimum=0)
            duration = gr.Number(info0["duration"], label=_duration_label(info0), minimum=MIN_DURATION,
                                 maximum=info0["max_duration"])
            steps = gr.Number(info0["steps"], label=f"steps (1..{info0['max_steps']})", minimum=1,
                              maximum=info0["max_steps"])
        shared = {"model": model, "seed": seed, "duration": duration, "steps": steps, "model0": model0,
                  "files": AudioFiles()}
        with gr.Tab("Steer"):
            steer_parts = steer_tab(h, shared)
        with gr.Tab("Mix"):
            mix_tab(h, shared)
        with gr.Tab("A/B patching"):
            patch_parts = patch_tab(h, shared)
        with gr.Tab("Localization"):
            loc_parts = localization_tab(h, shared, app)
        with gr.Tab("SAE features"):
            sae_parts = sae_tab(h, shared, app)
        with gr.Tab("Generate"):
            generate_tab(h, shared)
        with gr.Tab("Edit your clip"):
            edit_tab(h, shared)
        with gr.Tab("Published results"):
            published_parts = published_tab(h)

        def on_model(name):
            info = h.model_info(name)
            method_ = h.default_method(name)
            vecs = h.vector_choices(name, method_)
            concepts = h.concept_choices(name)
            saes = h.sae_choices(name)
            first = lambda xs: xs[0] if xs else None  # noqa: E731
            return (gr.update(choices=h.layer_choices(name), value=h.functional_layers(name)),
                    gr.update(value=info["duration"], label=_duration_label(info)), info["steps"],
                    gr.update(choices=vecs, value=first(vecs)), gr.update(value=method_),
                    gr.update(choices=concepts, value=first(concepts)),
                    gr.update(choices=concepts, value=first(concepts)), gr.update(choices=saes, value=first(saes)))

        refresh_fn, refresh_in, refresh_out = steer_parts["refresh"]
        model.input(friendly(on_model), model,
                    [patch_parts["layers"], duration, steps, steer_parts["vector"], steer_parts["method"],
                     loc_parts["concept"], sae_parts["concept"], sae_parts["sae"]], **PRIVATE).then(
            refresh_fn, refresh_in, refresh_out, **PRIVATE)
        fn, ins, out = published_parts["curves"]
        app.load(friendly(fn), ins, out, **PRIVATE)
    app.handlers = h
    return app


def _duration_label(info: dict) -> str:
    return f"duration (s, {info['min_duration']:g} to {info['max_duration']:g})"


def launch(app: gr.Blocks, **kwargs):
    """Queue: one generation at a time per event, a bounded waiting line (8 on a Space, else 32); long jobs
    have their own limit (one at a time)."""
    config = getattr(getattr(app, "handlers", None), "config", None)
    if config is not None:    # bounded memory per visitor: gradio keeps a copy of the page's state per session
        kwargs.setdefault("state_session_capacity", config.max_sessions)
    from tada_core.audio import MAX_FILE_BYTES

    kwargs.setdefault("max_file_size", MAX_FILE_BYTES)   # uploads (the Edit tab's clips) refused past 50 MB
    return app.queue(default_concurrency_limit=1, max_size=config.job_queue if config else 32).launch(**kwargs)
