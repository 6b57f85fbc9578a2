"""The app (tada_app) on the shipped organism: handlers directly, and the launched app through gradio_client.

(The real-browser test is in test_app_browser.py.)
"""

import dataclasses
import json
import shutil
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from tada_core import TadaError
from tada_core.organism.scorer import OrganismScorer
from tada_app import AppConfig, Handlers, build_app, launch
from tada_app.config import ROOT
from tada_app.sources import scrub

ORG = "tada-organism"
TEMPO = "tada-organism-tempo-caa"
TEMPO_LAYER = 3       # tempo's functional layer in results/organism_localization (I = 0.89)
BRIGHT_LAYER = 5      # brightness's (I = 0.21); the SAEs are trained on layers 3 and 5
FAST = dict(duration=1.0, steps=6)  # short clips keep the suite fast


@pytest.fixture(scope="module")
def h():
    return Handlers(AppConfig.from_env({"TADA_TEST_FIXTURES": "1"}))


def steer(h, alpha, *, prompt="a waltz with piano", seed=0, layers=(TEMPO_LAYER,), vector=TEMPO, repo_id="", **settings):
    settings = FAST | settings
    layers = layers if isinstance(layers, str) else list(layers)
    return h.steer(ORG, prompt, seed, settings["duration"], settings["steps"], vector, repo_id, layers, alpha)


def test_generate_handler_is_reproducible(h):
    sr, audio = h.generate(ORG, "a fast march with drums", 0, 1.0, 6)
    sr2, audio2 = h.generate(ORG, "a fast march with drums", 0, 1.0, 6)
    assert sr == 16000 and audio.dtype == np.int16 and audio.shape[1] in (1, 2) and audio.shape[0] == 16000
    assert np.array_equal(audio, audio2) and np.abs(audio).max() > 30


def test_shipped_vectors_are_offered_per_method(h):
    caa, sae = h.vector_choices(ORG, "caa"), h.vector_choices(ORG, "sae")
    assert TEMPO in caa and "tada-organism-tempo-sae" in sae and not set(caa) & set(sae)
    assert h.vector_choices("tiny-ace-step", "any") == []
    info = h.vector_info(TEMPO)
    assert info["functional"] == [TEMPO_LAYER] and info["layers"] == list(range(10))
    assert info["limit"] == 2.0 and info["alpha"] == 1.0  # twice the validated range (-1, 1)
    assert info["renorm"] is False   # validated without ReNorm, so steered without it by default


def test_the_vector_box_shows_what_verify_found_and_no_server_path(h, tmp_path):
    from tada_core.evaluation.verification import read_results

    name = read_results(ROOT / "results" / "verification")["artifacts"][0]["name"]
    text = h.vector_info(name)["verified"]
    assert text.startswith("verified on fresh seeds") and "of the prompt gap" in text and "leaks onto" in text
    assert str(ROOT) not in text and "results/" not in text
    nothing = Handlers(dataclasses.replace(h.config, results=tmp_path), h.cache)
    assert nothing.vector_info(name)["verified"].startswith("not verified")


def test_steer_original_and_steered_in_one_call_at_one_level(h):
    (sr, orig), (sr2, steered), spec0, spec1, caption = steer(h, 1.0)
    assert sr == sr2 == 16000 and orig.shape == steered.shape and orig.dtype == np.int16
    assert np.abs(orig.astype(int) - steered).max() > 30
    assert spec0.size == spec1.size and spec0.tobytes() != spec1.tobytes()
    assert "tempo" in caption and "BPM, librosa beat tracker" in caption and f"layers [{TEMPO_LAYER}]" in caption
    assert "without ReNorm" in caption
    # alpha 0: both rows of the batch are the same clip (up to float reordering between rows)
    (_, a0), (_, b0), *_ = steer(h, 0.0)
    assert np.abs(a0.astype(int) - b0).max() <= 2
    # one gain per call: the original differs from alpha 0's only by the shared level (never clipped)
    scale = np.abs(orig).max() / max(np.abs(a0).max(), 1)
    assert np.abs(orig - a0 * scale).max() <= 3 and np.abs(orig).max() <= 32767 * 0.99 + 1
    # ReNorm on request changes the steered clip, not the original
    (_, o2), (_, s2), *_, cap2 = h.steer(ORG, "a waltz with piano", 0, 1.0, 6, TEMPO, "", [TEMPO_LAYER], 1.0, True)
    assert "with ReNorm" in cap2 and not np.array_equal(s2, steered)


def test_steer_moves_the_printed_measure_in_the_sign_of_alpha(h):
    """The brightness vector at +-2 (its validated range, default settings) on its functional layer 5:
    librosa's harmonic centroid, which the app prints for both clips, rises on a dark waltz and falls
    on a bright one."""
    label = "harmonic spectral centroid (Hz, librosa HPSS): "

    def centroids(alpha, prompt):
        notes = [steer(h, alpha, seed=s, prompt=prompt, vector="tada-organism-brightness-caa", duration=4.0,
                       steps=20, layers=(BRIGHT_LAYER,))[4] for s in range(2)]
        pairs = [n.split(label)[1].split(" (original) -> ") for n in notes]
        return np.array([[float(x), float(y.split()[0])] for x, y in pairs])

    up, down = centroids(2.0, "a dark waltz"), centroids(-2.0, "a bright waltz")
    assert (up[:, 1] > up[:, 0] + 100).all() and (down[:, 1] < down[:, 0] - 100).all(), (up, down)


@pytest.mark.parametrize("change, message", [
    (dict(prompt="   "), "prompt must be a non-empty string"),
    (dict(prompt=None), "prompt must be a non-empty string; got nothing"),
    (dict(alpha=2.5), r"alpha must be a number in \[-2, 2\]; got 2.5"),
    (dict(alpha=float("nan")), r"alpha must be a number in \[-2, 2\]; got nan"),
    (dict(alpha=None), "alpha must be a number .*got nothing"),
    (dict(alpha="1"), "alpha must be a number .*got str"),
    (dict(layers=()), "select at least one layer"),
    (dict(layers=(12,)), r"layer 12 is not available here"),
    (dict(layers="3"), "layers must be a list"),
    (dict(vector="no-such-vector"), "vector must be a name from vectors/"),
    (dict(vector=None), "choose a concept vector"),
    (dict(vector=None, repo_id="nobody/no-such-vector"), "cannot get 'nobody/no-such-vector'"),
    (dict(repo_id="nobody/x"), "not both"),
    (dict(vector=None, repo_id="/etc"), "got a path"),
    (dict(vector=None, repo_id="../vectors/x"), "got a path"),
    (dict(vector=None, repo_id="bad repo id!"), "vector must be a name from vectors/"),
    (dict(seed=2 ** 64), r"seed must be a whole number in 0\.\.4294967295"),
    (dict(seed=1.5), "seed must be a whole number"),
    (dict(seed="7"), "seed must be a whole number .*got str"),
    (dict(duration=0.05), r"duration \(seconds\) must be a number in \[0.5, 30\]"),
    (dict(duration=None), r"duration \(seconds\) must be a number"),
    (dict(steps="10"), "steps must be a whole number .*got str"),
])
def test_steer_bad_input_is_a_clear_error(h, change, message):
    args = dict(alpha=1.0) | change
    alpha = args.pop("alpha")
    with pytest.raises(TadaError, match=message) as e:
        steer(h, alpha, **args)
    assert "/etc" not in str(e.value) and str(ROOT) not in scrub(str(e.value))


def test_settings_and_models_are_checked(h):
    for args, message in [((0, 1e6, 6), "duration"), ((0, 1.0, 0), "steps must be"),
                          ((-1, 1.0, 6), "seed must be"), ((0.5, 1.0, 6), "seed must be")]:
        with pytest.raises(TadaError, match=message):
            h.generate(ORG, "a waltz", *args)
    with pytest.raises(TadaError, match="made for model 'tada-organism'"):
        h.steer("tiny-ace-step", "a waltz", 0, 1.0, 4, TEMPO, "", [6], 1.0)
    with pytest.raises(TadaError, match="model must be one of"):
        h.generate("", "a waltz", 0, 1.0, 4)
    with pytest.raises(TadaError, match="other models are off on this server"):
        h.generate(str(ROOT / "tada_core" / "organism" / "checkpoint"), "a waltz", 0, 1.0, 4)
    with pytest.raises(TadaError, match="cannot load ace-step"):  # no weights offline: a message, not a crash
        h.generate("ace-step", "a waltz", 0, 1.0, 4)


def test_two_spellings_of_one_model_folder_share_one_model():
    folder = ROOT / "tada_core" / "organism" / "checkpoint"
    hc = Handlers(AppConfig.from_env({"TADA_ALLOW_CUSTOM_MODELS": "1", "TADA_MAX_MODELS": "1",
                                         "TADA_TEST_FIXTURES": "1"}))
    a = hc.generate(str(folder), "a waltz", 0, 1.0, 4)
    b = hc.generate(str(folder) + "/../checkpoint/", "a waltz", 0, 1.0, 4)
    assert hc.cache.loaded() == [f"folder:{folder.resolve()}"] and np.array_equal(a[1], b[1])
    hc.generate("tiny-ace-step", "a waltz", 0, 1.0, 4)          # bounded: the least recently used one goes
    assert hc.cache.loaded() == ["registry:tiny-ace-step"]


def test_patch_handler(h):
    labels = h.layer_choices(ORG)
    assert len(labels) == 10 and labels[0] == ("0 (transformer.transformer_blocks.0.attn2)", 0)
    choices = [index for _, index in labels]
    assert h.model_info(ORG)["duration"] == 4.0 and h.model_info(ORG)["steps"] == 20
    assert h.model_info("tiny-audioldm2")["steps"] == 4
    (_, a), (_, b), (_, ab), table = h.patch(ORG, "a slow sad waltz", "a fast happy march with drums", choices, 1,
                                             1.0, 6)
    assert np.abs(a.astype(int) - b).max() > 30
    assert np.abs(ab.astype(int) - b).max() <= 3  # all layers patched from B = B (one level for the three)
    assert len(table) == 9 and table[0][0] == "tempo: tempo (BPM, librosa beat tracker)"
    assert all(abs(row[3] - row[2]) <= 1e-3 * max(1.0, abs(row[2])) for row in table)  # measures agree too
    # tempo's functional layer alone: patching it from a fast prompt makes the slow one fast, by the
    # scorer's own decision threshold on librosa's tracked BPM
    threshold = float(np.exp(OrganismScorer().weights.thresholds["tempo"]))
    (*_, table) = h.patch(ORG, "a slow waltz", "a fast waltz", [TEMPO_LAYER], 0, 4.0, 20)
    tempo = next(row for row in table if row[0].startswith("tempo"))
    assert tempo[1] < threshold < tempo[2] and tempo[3] > threshold, (tempo, threshold)
    with pytest.raises(TadaError, match="at least one layer"):
        h.patch(ORG, "a", "b", [], 0, 1.0, 6)
    with pytest.raises(TadaError, match="prompt B"):
        h.patch(ORG, "a", " ", choices[:1], 0, 1.0, 6)
    with pytest.raises(TadaError, match=r"duration \(seconds\) must be a number in \[0.5"):
        h.patch(ORG, "a", "b", choices[:1], 0, 0.1, 6)


def test_the_patch_tab_patches_what_it_says(h):
    """A with layer 3 from B, as the tab makes it, is the library's own patch of the same inputs (one level)."""
    from tada_core import patch
    from tada_core.audio import level, to_int16

    prompts = ("a slow sad waltz with piano", "a fast happy march with drums")     # the tab's own defaults
    (_, a), (_, b), (_, ab), _ = h.patch(ORG, *prompts, [TEMPO_LAYER], 0, 1.0, 6)
    with h.cache.use(ORG) as m:
        s = dict(seeds=[0], duration=1.0, steps=6)
        with patch(m, [TEMPO_LAYER], prompts[1]):
            ref = m.generate([prompts[0]], **s).audio
        clips = torch.cat([m.generate([prompts[0]], **s).audio, m.generate([prompts[1]], **s).audio, ref])
    assert np.array_equal(to_int16(level(clips)[2]), ab) and np.array_equal(to_int16(level(clips)[0]), a)
    assert np.abs(ab.astype(int) - a).max() > 30 and np.abs(ab.astype(int) - b).max() > 30


def test_concurrent_steer_requests_each_get_what_they_get_alone(h):
    """Different alphas (and a patch request) at the same time on one model: every result
    equals the same request made alone, so no request sees another's hooks."""
    alphas = [-2.0, -1.0, 0.5, 1.0, 2.0]
    alone = {a: steer(h, a, seed=3)[1][1] for a in alphas}
    patch_alone = h.patch(ORG, "a waltz", "a march with drums", [6], 3, 1.0, 6)[2][1]
    with ThreadPoolExecutor(6) as pool:
        futures = {a: pool.submit(steer, h, a, seed=3) for a in alphas}
        patched = pool.submit(h.patch, ORG, "a waltz", "a march with drums", [6], 3, 1.0, 6)
        results = {a: f.result()[1][1] for a, f in futures.items()}
    for a in alphas:
        assert np.array_equal(results[a], alone[a]), f"alpha {a} differs when run concurrently"
    assert np.array_equal(patched.result()[2][1], patch_alone)
    assert len({r.tobytes() for r in results.values()}) == len(alphas)


def test_localization_view_shows_committed_heatmap(h):
    assert "tempo" in h.concept_choices(ORG)
    assert h.functional_layers(ORG) == [3, 4, 5, 9] and h.functional_layers("tiny-ace-step") == []
    image, rows, text = h.localization(ORG, "tempo")
    assert image.size[0] > 300 and len(rows) == 10
    assert max(rows, key=lambda r: r[1])[0] == TEMPO_LAYER and f"functional layers [{TEMPO_LAYER}]" in text
    image, rows, text = h.localization("tiny-ace-step", "tempo")
    assert image is None and rows == [] and "No committed localization" in text


def test_compute_localization_is_a_long_job_that_stops_and_resumes(h, tmp_path):
    job = Handlers(dataclasses.replace(h.config, runs=tmp_path), h.cache)
    steps = job.compute_localization(ORG, "drums", pairs=2, seeds=1)
    first = next(steps)
    while first[1] == 0 or first[0] < 3:  # until a few of the 12 batches are done
        first = next(steps)
    # the job runs on its own model instance: a visitor's request does not wait for it
    assert job.generate(ORG, "a waltz", 0, 0.5, 2)[1].shape[0] == 8000
    steps.close()  # what Gradio's Stop does: the worker stops after its current batch
    with job.cache.use(ORG, job=True):  # waits until the stopped worker let go of the job's model
        pass
    folder = next(tmp_path.iterdir())
    done_before = len((folder / "scores.jsonl").read_text().splitlines())
    assert 3 <= done_before < 12
    updates = list(job.compute_localization(ORG, "drums", pairs=2, seeds=1))
    assert updates[0][0] >= done_before  # resumed, not restarted
    done, total, result = updates[-1]
    assert done == total == 12 and result.concept == "drums" and set(result.impact) == set(range(10))
    with pytest.raises(TadaError, match="computes localizations for models with a built-in scorer"):
        next(job.compute_localization("tiny-ace-step", "tempo"))
    with pytest.raises(TadaError, match=r"pairs must be a whole number in 1\.\.24"):
        next(job.compute_localization(ORG, "drums", pairs=500))
    hosted = Handlers(AppConfig.from_env({"SPACE_ID": "org/space"}), h.cache)
    with pytest.raises(TadaError, match=r"pairs must be a whole number in 1\.\.8"):
        next(hosted.compute_localization(ORG, "drums", pairs=24))
    assert hosted.config.runs_folder() != h.config.runs_folder()   # a runs folder per app instance


def test_sae_feature_views_and_single_feature_steering(h):
    sae = h.sae_choices(ORG)[0]
    assert h.atlas_layers(sae) == [3, 5] and h.atlas_layers("saes/" + sae) == [3, 5]
    table = h.feature_table(sae, BRIGHT_LAYER, "brightness")
    assert len(table) == 12 and table[0][1] >= table[-1][1]
    feature = table[0][0]
    prompts, scores = h.browse_feature(sae, str(BRIGHT_LAYER), feature)
    assert len(prompts) == 8 and prompts[0][1] >= prompts[-1][1]
    assert scores[0][0] == "brightness"  # its best concept is the one it was ranked for
    (_, orig), (_, steered), *_, note = h.steer_feature(ORG, sae, BRIGHT_LAYER, feature, "brightness", "a waltz", 0,
                                                        1.0, 6, 2.0)
    assert np.abs(orig.astype(int) - steered).max() > 30
    assert f"feature {feature} of layer {BRIGHT_LAYER}" in note and "centroid" in note
    with pytest.raises(TadaError, match=r"feature must be a whole number in 0\.\.1023"):  # 128 x m=8 latents
        h.steer_feature(ORG, sae, BRIGHT_LAYER, 99999, "brightness", "a waltz", 0, 1.0, 6, 2.0)
    with pytest.raises(TadaError, match=r"feature must be a whole number in 0\.\.1023; got 1.5"):
        h.browse_feature(sae, BRIGHT_LAYER, 1.5)
    with pytest.raises(TadaError, match=r"alpha must be a number in \[-8, 8\]"):
        h.steer_feature(ORG, sae, BRIGHT_LAYER, feature, "brightness", "a waltz", 0, 1.0, 6, 40.0)
    with pytest.raises(TadaError, match="SAE must be a name from saes/"):
        h.feature_table("nope", 8, "brightness")
    with pytest.raises(TadaError, match="layer must be a layer index from"):
        h.feature_table(sae, "seven", "brightness")
    with pytest.raises(TadaError, match="cannot get 'nobody/no-such-sae'"):
        h.atlas_layers("nobody/no-such-sae")


def test_free_text_never_reaches_server_paths(h, tmp_path):
    """Folders outside the app's roots are refused before the disk is touched: no existence probe, no walk of /,
    no config fields of other files, no absolute path in any message."""
    folder = tmp_path / "my-sae"
    shutil.copytree(ROOT / "saes" / "tada-organism-topk", folder)
    for text in (str(folder), "/", "~", "..", "saes/../../etc", "saes/../vectors", "C:\\x"):
        with pytest.raises(TadaError) as e:
            h.atlas_layers(text)
        assert "got a path" in str(e.value) or "no SAE folder" in str(e.value), str(e.value)
        assert str(tmp_path) not in str(e.value) and "/etc" not in str(e.value)
    # a root of the app's own: folders under it are fine (a test app with its own roots)
    mine = Handlers(dataclasses.replace(h.config, saes=tmp_path), h.cache)
    assert mine.atlas_layers(f"{tmp_path.name}/my-sae") == [3, 5]
    shutil.rmtree(folder / "atlas")
    with pytest.raises(TadaError, match="has no feature atlas") as e:
        mine.atlas_layers(f"{tmp_path.name}/my-sae")
    assert str(tmp_path) not in scrub(str(e.value))
    assert scrub(f"cannot read {ROOT}/vectors/x and /home/someone/secret.txt") == \
        "cannot read vectors/x and <path>"


def test_artifact_text_and_values_cannot_hurt(h, tmp_path):
    """A vector whose concept is HTML, with huge values, or a malformed config: text as text, clear messages."""
    from tada_core.artifacts.vectors import load_vector

    base = load_vector(ROOT / "vectors" / TEMPO)
    roots = tmp_path / "vectors"
    evil = dataclasses.replace(base, concept="<img src=x onerror=alert(1)>")
    evil.save(roots / "evil")
    huge = dataclasses.replace(base, vectors={k: v * 1e30 for k, v in base.vectors.items()}, alpha_range=(-1e300, 1e300))
    huge.save(roots / "huge")
    (roots / "broken").mkdir()
    shutil.copy(roots / "evil" / "steering.safetensors", roots / "broken")
    (roots / "broken" / "config.json").write_text(json.dumps({**json.loads((roots / "evil" / "config.json").read_text()),
                                                             "format_version": "one"}))
    mine = Handlers(dataclasses.replace(h.config, vectors=roots), h.cache)
    *_, caption = mine.steer(ORG, "a waltz", 0, 1.0, 4, None, "vectors/evil", [TEMPO_LAYER], 0.5)
    assert caption.startswith("<img src=x onerror=alert(1)> (CAA)")   # shown in a Textbox: as text
    with pytest.raises(TadaError, match="NaN or infinite samples"):
        mine.steer(ORG, "a waltz", 0, 1.0, 4, None, "vectors/huge", [TEMPO_LAYER], 1e300)
    with pytest.raises(TadaError, match="format_version must be an integer"):
        mine.steer(ORG, "a waltz", 0, 1.0, 4, None, "vectors/broken", [TEMPO_LAYER], 0.5)
    assert mine.generate(ORG, "a waltz", 0, 1.0, 4)[1].size   # and it keeps serving


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def client():
    gradio_client = pytest.importorskip("gradio_client")
    port = _free_port()
    app = build_app(ORG, Handlers(AppConfig.from_env({})))
    launch(app, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False), app
    finally:
        app.close()


def test_launched_app_api_has_named_public_endpoints_only(client):
    c, app = client
    api = c.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(api) == {"/steer", "/patch", "/localization", "/compute_localization", "/feature_table",
                        "/browse_feature", "/steer_feature", "/generate", "/mix", "/edit"}
    assert [p["parameter_name"] for p in api["/steer"]["parameters"]] == [
        "model", "prompt", "seed", "duration", "steps", "vector", "repo_id", "layers", "alpha", "renorm", "strategy"]
    assert [p["parameter_name"] for p in api["/mix"]["parameters"]] == [
        "model", "prompt", "seed", "duration", "steps", "names", "alphas", "renorm"]
    # the caption of a steer is a Textbox (text, never rendered as HTML)
    steer_dep = next(d for d in app.config["dependencies"] if d.get("api_name") == "steer")
    caption = next(b for b in app.config["components"] if b["id"] == steer_dep["outputs"][-1])
    assert caption["type"] == "textbox"


def test_launched_app_answers_client_in_a_fresh_session(client):
    """Every public endpoint through gradio_client, with no page loaded; bad requests get their message
    (no server path in it) and the app answers the next request."""
    c, _ = client
    assert str(c.predict(model=ORG, prompt="a fast march", seed=0, duration=1.0, steps=6,
                         api_name="/generate")).endswith(".wav")
    orig, steered, _, _, note = c.predict(ORG, "a waltz with piano", 0, 1.0, 6, TEMPO, "", [TEMPO_LAYER], 1.0, None,
                                          "", api_name="/steer")
    assert str(orig).endswith(".wav") and str(steered).endswith(".wav") and "BPM" in note
    a, b, ab, table = c.predict(ORG, "a slow waltz", "a fast march", [6], 0, 1.0, 6, api_name="/patch")
    assert all(str(x).endswith(".wav") for x in (a, b, ab)) and len(table["data"]) == 9
    rows = c.predict("tada-organism-topk", BRIGHT_LAYER, "brightness", api_name="/feature_table")
    feature = rows["data"][0][0]
    prompts, scores = c.predict("tada-organism-topk", BRIGHT_LAYER, feature, api_name="/browse_feature")
    assert len(prompts["data"]) == 8
    *_, fnote = c.predict(ORG, "tada-organism-topk", BRIGHT_LAYER, feature, "brightness", "a waltz", 0, 1.0, 6, 2.0,
                          api_name="/steer_feature")
    assert f"feature {feature}" in fnote
    _, rows, text = c.predict(ORG, "tempo", api_name="/localization")
    assert "functional layers [3]" in text
    bad = [
        (("/generate", ORG, "a waltz", 0, -1.0, 6), "duration"),
        (("/generate", ORG, "a waltz", "zero", 1.0, 6), "seed must be a whole number .*got str"),
        (("/generate", ORG, None, 0, 1.0, 6), "prompt must be a non-empty string"),
        (("/generate", ORG, "a waltz", 2 ** 64, 1.0, 6), "seed must be a whole number in 0..4294967295"),
        (("/generate", "ace-step", "a waltz", 0, 1.0, 6), "cannot load ace-step"),
        (("/generate", "/etc", "a waltz", 0, 1.0, 6), "model must be one of"),
        (("/steer", ORG, "a waltz", 0, 1.0, 6, TEMPO, "", [TEMPO_LAYER], 3.0, None, ""), r"alpha must be a number"),
        (("/steer", ORG, "a waltz", 0, 1.0, 6, None, "/etc/passwd", [3], 1.0, None, ""), "got a path"),
        (("/steer", ORG, "a waltz", 0, 1.0, 6, TEMPO, "", "3", 1.0, None, ""), "layers must be a list"),
        (("/steer", ORG, "a waltz", 0, 1.0, 6, TEMPO, "", [3], 1.0, None, "one-to-all"), "are for DiffMean vectors"),
        (("/patch", ORG, "a", "b", [3], 0, 0.05, 6), "duration"),
        (("/feature_table", "/", BRIGHT_LAYER, "brightness"), "got a path"),
        (("/browse_feature", "tada-organism-topk", BRIGHT_LAYER, 1.5), "feature must be a whole number"),
        (("/compute_localization", ORG, "drums", 0, 1), "pairs must be a whole number"),
    ]
    for (name, *args), message in bad:
        with pytest.raises(Exception, match=message) as e:
            c.predict(*args, api_name=name)
        assert str(ROOT) not in str(e.value) and "/etc" not in str(e.value).replace("got a path", "")
        assert str(c.predict(ORG, "a waltz", 1, 1.0, 4, api_name="/generate")).endswith(".wav")


def test_feature_row_click_picks_its_feature(client):
    """Clicking a row of the top-features table sets the feature box: gradio injects the click's event data
    into the handler (it did not when the annotation was a string, under `from __future__ import annotations`)."""
    import gradio as gr
    import pandas as pd
    from gradio.helpers import special_args

    _, app = client
    fn = next(block.fn for block in app.fns.values() if block.name == "on_row")
    table = pd.DataFrame([[311, 2.5, "a waltz"], [42, 1.0, "a march"]], columns=["feature", "score", "prompt"])
    inputs, _, event_index, _ = special_args(fn, [table], event_data=gr.SelectData(None, {"index": [1, 2],
                                                                                            "value": "a march"}))
    assert event_index == 1 and fn(*inputs) == 42


def test_steer_box_and_stop_do_what_they_show(client):
    """A repo id clears the shipped choice and takes its own vector's layers; Stop says what it did."""
    import gradio as gr

    _, app = client
    fns = {block.name: block.fn for block in app.fns.values()}
    _, cleared, layers, alpha, renorm, strategy, caption = fns["on_repo"]("vectors/tada-organism-drums-caa",
                                                                         "tada-organism-tempo-caa")
    assert cleared is None and caption.startswith("drums (CAA)")
    assert layers["value"] == list(range(10))   # drums has no functional layer on the organism: all its layers
    assert strategy["interactive"] is False     # injection strategies are for DiffMean vectors only
    assert "allows -2 to 2" in alpha["label"]   # the limit (twice the validated range) is said by the slider
    repo, layers, *_, caption = fns["on_vector"]("tada-organism-brightness-caa")
    assert repo == "" and layers["value"] == [BRIGHT_LAYER] and caption.startswith("brightness (CAA)")
    # a repo id that cannot be used: one message, the repo box cleared, the other controls untouched, and the
    # vector box says which vector Steer will use
    repo, vector, layers, alpha, renorm, strategy, caption = fns["on_repo"]("no-such-org/no-such-vector",
                                                                           "tada-organism-tempo-caa")
    skip = gr.skip()
    assert repo == "" and all(x == skip for x in (vector, layers, alpha, renorm, strategy))
    assert caption.startswith("still using tada-organism-tempo-caa: the repo id could not be used")
    stop = next(block for block in app.fns.values() if block.name == "stopped")
    assert stop.queue is False                       # answers at once, outside the queue
    assert stop.fn(None).startswith("Nothing to stop")   # (the browser test stops a running sweep)


def test_a_slow_load_does_not_stall_another_models_requests():
    import threading

    cache = Handlers(AppConfig.from_env({"TADA_TEST_FIXTURES": "1"})).cache
    loaded = threading.Event()
    def other_request():
        with cache.use("tiny-stable-audio"):
            loaded.set()

    with cache.use(ORG):                      # a request holds the organism (as while generating)
        t = threading.Thread(target=other_request)
        t.start()
        assert loaded.wait(120), "loading another model waited for the organism's lock"
    t.join()


def test_musicgen_in_the_app(tmp_path, h):
    """A DiffMean vector of the tiny MusicGen steers in the Steer tab, with either strategy; A/B patching explains
    why it does not apply; the layers read as residual-stream layers."""
    from tada_core import load_model
    from tada_core.adapters.musicgen import MUSICGEN_CONCEPTS
    from tada_core.concepts import BASE_PROMPTS, diffmean_prompts
    from tada_core.methods.diffmean import diffmean

    pos, neg = diffmean_prompts(MUSICGEN_CONCEPTS["tempo"], BASE_PROMPTS, 8)
    vec = diffmean(load_model("tiny-musicgen-melody"), pos, neg, concept="tempo", source_layer=1, progress=False,
                   alpha_range=(-2.0, 2.0))
    vec.save(tmp_path / "vectors" / "mg-tempo")
    mine = Handlers(dataclasses.replace(h.config, vectors=tmp_path / "vectors"), h.cache)
    (_, a), (_, b), *_, caption = mine.steer("tiny-musicgen-melody", "a song", 0, 0.5, 4, None, "vectors/mg-tempo",
                                             [0, 1, 2, 3], 2.0)
    assert "DIFFMEAN, one-to-all from layer 1" in caption and np.abs(a.astype(int) - b).max() > 0
    *_, caption = mine.steer("tiny-musicgen-melody", "a song", 0, 0.5, 4, None, "vectors/mg-tempo", [0, 1], 2.0,
                             None, "all-to-all")
    assert "all-to-all" in caption
    assert "residual stream" in mine.layer_choices("tiny-musicgen-melody")[0][0]
    with pytest.raises(TadaError, match="A/B patching swaps cross-attention keys and values"):
        mine.patch("tiny-musicgen-melody", "a", "b", [0], 0, 0.5, 4)


@pytest.mark.skipif(not (Path(__file__).resolve().parents[1] / "tada_core/organism/musicgen_checkpoint/model.safetensors")
                    .exists(), reason="no shipped MusicGen organism")
def test_the_musicgen_organism_is_offered_and_steered_with_its_measure(h):
    assert h.default_method("musicgen-organism") == "diffmean" and h.default_method(ORG) == "caa"
    names = h.vector_choices("musicgen-organism", "diffmean")
    assert "musicgen-organism-tempo-diffmean" in names and not h.vector_choices("musicgen-organism", "caa")
    info = h.vector_info("musicgen-organism-tempo-diffmean")          # One-to-All into every layer
    assert info["functional"] == [0, 1, 2, 3]
    *_, caption = h.steer("musicgen-organism", "a waltz", 0, 1.0, 1, "musicgen-organism-tempo-diffmean", "",
                          info["functional"], info["alpha"])
    assert "tempo (BPM, librosa beat tracker)" in caption and "(original) ->" in caption


# ---------------------------------------------------------------------------- a public Space, round 2


def test_the_public_app_serves_exactly_the_models_of_its_menu(client):
    c, app = client
    menu = next(b for b in app.config["components"] if b.get("props", {}).get("label") == "model")
    offered = [choice[1] if isinstance(choice, (list, tuple)) else choice for choice in menu["props"]["choices"]]
    assert ORG in offered and not any(name.startswith("tiny-") for name in offered)
    with pytest.raises(Exception, match="model must be one of") as e:
        c.predict("tiny-ace-step", "a waltz", 0, 1.0, 4, api_name="/generate")
    assert "tiny-ace-step" not in str(e.value).split("got")[0]
    fixtures = Handlers(AppConfig.from_env({"TADA_TEST_FIXTURES": "1"}))
    assert "tiny-ace-step" in fixtures.config.models()


def test_the_concept_box_never_reads_a_server_file(h, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"name": "s3cr3t-name", "positive": "s3cr3t {base}", "negative": "{base}"}))
    for call in (lambda c: next(h.compute_localization(ORG, c, 1, 1)), lambda c: h.localization(ORG, c),
                 lambda c: h.feature_table("tada-organism-topk", BRIGHT_LAYER, c)):
        for concept in (str(secret), str(tmp_path / "secret.yaml"), "/etc/passwd"):
            with pytest.raises(TadaError) as e:
                call(concept)
            shown = scrub(str(e.value))
            assert "s3cr3t" not in shown and str(tmp_path) not in shown and "/etc" not in shown, shown
    with h.cache.use(ORG) as m:     # an artifact's concept name never becomes a file to read either
        assert h.describe(m, str(secret), None) == ""


@pytest.mark.parametrize("field, value, message", [
    ("seed", 10 ** 400, "seed must be a whole number in 0..4294967295; got a number with about 401 digits"),
    ("seed", -10 ** 400, "seed must be a whole number"),
    ("seed", "９", "seed must be a whole number"),
    ("duration", float("nan"), r"duration \(seconds\) must be a number"),
    ("steps", 2 ** 64, "steps must be a whole number"),
    ("layers", ["9" * 5000], "layers entry must be a layer index"),
    ("layers", ["²"], "layers entry must be a layer index"),
    ("layers", ["３"], "layers entry must be a layer index"),
    ("layers", [10 ** 400], "layers entry must be a whole number"),
    ("alpha", 10 ** 400, "alpha must be a number"),
])
def test_malformed_numbers_are_one_line_messages(h, field, value, message):
    kw = dict(seed=0, duration=1.0, steps=4, layers=[TEMPO_LAYER], alpha=1.0)
    kw[field] = value
    with pytest.raises(TadaError, match=message) as e:
        h.steer(ORG, "a waltz", kw["seed"], kw["duration"], kw["steps"], TEMPO, "", kw["layers"], kw["alpha"])
    assert "\n" not in str(e.value) and len(str(e.value)) < 300


def test_every_tab_reads_layers_with_one_parser(h):
    """Steer, A/B patching and the SAE tab accept the same spellings and refuse with the same message."""
    for call in (lambda layer: h.feature_table("tada-organism-topk", layer, "brightness"),
                 lambda layer: h.browse_feature("tada-organism-topk", layer, 0)):
        assert call(BRIGHT_LAYER) == call(str(BRIGHT_LAYER)) == call(f"{BRIGHT_LAYER} (functional)")
        for bad in ("５", "5.0x", "9" * 5000):
            with pytest.raises(TadaError, match="layer must be a layer index from"):
                call(bad)
    with pytest.raises(TadaError, match="layers entry must be a layer index from"):
        h.patch(ORG, "a", "b", ["５"], 0, 1.0, 4)


def test_a_vector_with_a_nan_alpha_range_is_refused_not_unlimited(h, tmp_path):
    from tada_core.artifacts.vectors import load_vector

    vec = load_vector(ROOT / "vectors" / TEMPO)
    vec.alpha_range = (float("nan"), 2.0)
    with pytest.raises(TadaError, match="alpha_range"):
        vec.save(tmp_path / "vectors" / "nan-vec")
    config = json.loads((ROOT / "vectors" / TEMPO / "config.json").read_text())
    config["alpha_range"] = [float("nan"), 2.0]
    folder = tmp_path / "vectors" / "nan-vec"
    shutil.copytree(ROOT / "vectors" / TEMPO, folder, dirs_exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(TadaError, match="alpha_range"):
        load_vector(folder)


def test_ordinary_input_errors_log_one_line_and_no_traceback(client, caplog, capfd):
    import logging

    c, _ = client
    with caplog.at_level(logging.INFO, logger="tada.app"):
        with pytest.raises(Exception, match="seed must be"):
            c.predict(ORG, "a waltz", -1, 1.0, 4, api_name="/generate")
    refused = [r for r in caplog.records if r.name == "tada.app"]
    assert [r.levelname for r in refused] == ["INFO"] and refused[0].exc_info is None
    assert "Traceback" not in capfd.readouterr().err


def test_a_model_without_saes_empties_the_sae_tab_without_a_message(client):
    _, app = client
    fns = {block.name: block.fn for block in app.fns.values()}
    assert fns["on_table"](None, None, "tempo")[0] == [] and fns["on_feature"](None, None, 0) == ([], [])


def test_downloads_are_named_after_what_made_them(client):
    c, _ = client
    orig, steered, *_ = c.predict(ORG, "a waltz with piano", 0, 1.0, 4, TEMPO, "", [TEMPO_LAYER], 1.5, None, "",
                                  api_name="/steer")
    assert Path(orig).name == "tada-organism_a-waltz-with-piano_tada-organism-tempo-caa_alpha0_original.wav"
    assert Path(steered).name == "tada-organism_a-waltz-with-piano_tada-organism-tempo-caa_alpha1-5_steered.wav"
    a, b, ab, _ = c.predict(ORG, "a slow waltz", "a fast march", [TEMPO_LAYER], 0, 1.0, 4, api_name="/patch")
    assert [Path(x).name for x in (a, b, ab)] == ["tada-organism_A_a-slow-waltz.wav", "tada-organism_B_a-fast-march.wav",
                                                   "tada-organism_A_a-slow-waltz_layers-3-from-B.wav"]


def test_the_fuzz_script_finds_nothing_on_every_endpoint(client):
    """scripts/app_fuzz.py's quick set through the launched app on the Steer and Localization endpoints (the
    script itself covers every endpoint): no internal error, no traceback, no server path or file content in
    any reply, no hang."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("app_fuzz", ROOT / "scripts" / "app_fuzz.py")
    fuzz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz)
    c, _ = client
    counts = fuzz.run(c.src, quick=True, timeout=60, endpoints=["/steer", "/localization"], log=print)
    assert counts["failures"] == 0, counts["failure_list"][:10]
    assert counts["requests"] == 16 * 13 and counts["refused"] > 100


def test_impact_and_feature_scores_are_plotted_with_their_intervals(h, client):
    """The Localization tab's line plot holds each layer's impact and both ends of its bootstrap interval; the
    SAE tab's bar plot each concept's Eq. 6 score: the numbers of the tables, as hoverable native plots."""
    from tada_app.ui import impact_frame, score_frame

    _, rows, _ = h.localization(ORG, "tempo")
    assert all(len(r) == 5 for r in rows) and rows[TEMPO_LAYER][2] <= rows[TEMPO_LAYER][1] <= rows[TEMPO_LAYER][3]
    long = impact_frame(rows)
    at3 = long[long["layer"] == TEMPO_LAYER].set_index("series")["impact I"]
    assert at3["impact I (Eq. 9)"] == rows[TEMPO_LAYER][1] and at3["95% CI low"] == rows[TEMPO_LAYER][2]
    assert len(long) == 3 * len(rows)
    _, scores = h.browse_feature("tada-organism-topk", BRIGHT_LAYER, 0)
    bars = score_frame(scores)
    assert list(bars["concept"]) == [c for c, _ in scores] and list(bars["Eq. 6 score"]) == [v for _, v in scores]
    _, app = client
    plots = [b["props"].get("title") for b in app.config["components"] if b["type"] == "nativeplot"]
    assert "Impact I(l, c) per layer (Eq. 9)" in plots and "This feature's TF-IDF score per concept (Eq. 6)" in plots
