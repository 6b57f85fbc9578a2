"""The app's handlers on the shipped organism, and the launched app through gradio_client.

(The real-browser test is in test_app_browser.py.)
"""

import socket
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tada_core import TadaError
from tada_core.organism.scorer import OrganismScorer

app_module = pytest.importorskip("app")

ORG = "tada-organism"
TEMPO = "tada-organism-tempo-caa"
TEMPO_LAYER = 3       # tempo's functional layer in results/organism_localization (I = 1.08)
FAST = dict(duration=1.0, steps=6)  # short clips keep the suite fast


@pytest.fixture(scope="module")
def h():
    return app_module.make_handlers(app_module.ModelCache())


def steer(h, alpha, *, prompt="a waltz with piano", seed=0, layers=(TEMPO_LAYER,), vector=TEMPO, repo_id="", **settings):
    settings = FAST | settings
    return h.steer_pair(ORG, prompt, seed, settings["duration"], settings["steps"], vector, repo_id, list(layers),
                        alpha)


def test_generate_handler_is_reproducible(h):
    sr, audio = h.generate(ORG, "a fast march with drums", 0, 1.0, 6)
    sr2, audio2 = h.generate(ORG, "a fast march with drums", 0, 1.0, 6)
    assert sr == 16000 and audio.shape[1] in (1, 2) and audio.shape[0] == 16000
    assert np.array_equal(audio, audio2) and np.abs(audio).max() > 1e-3


def test_shipped_vectors_are_offered_per_method(h):
    caa, sae = h.vector_choices(ORG, "caa"), h.vector_choices(ORG, "sae")
    assert TEMPO in caa and "tada-organism-tempo-sae" in sae and not set(caa) & set(sae)
    assert h.vector_choices("tiny-ace-step", "any") == []
    info = h.vector_info(TEMPO)
    assert info["functional"] == [TEMPO_LAYER] and info["layers"] == list(range(10))
    assert info["limit"] == 2.0 and info["alpha"] == 1.0  # twice the validated range (-1, 1)


def test_steer_pair_original_and_steered_in_one_call(h):
    (sr, orig), (sr2, steered), spec0, spec1, note = steer(h, 1.0)
    assert sr == sr2 == 16000 and orig.shape == steered.shape
    assert np.abs(orig - steered).max() > 1e-3
    assert spec0.size == spec1.size and spec0.tobytes() != spec1.tobytes()
    assert "tempo" in note and "BPM, librosa beat tracker" in note and f"layers [{TEMPO_LAYER}]" in note
    # alpha 0: both rows of the batch are the same clip (up to float reordering between rows)
    (_, a0), (_, b0), *_ = steer(h, 0.0)
    np.testing.assert_allclose(a0, b0, atol=1e-5)
    assert np.array_equal(a0, orig)  # the original row does not depend on the other row's alpha


def test_steer_moves_the_printed_measure_in_the_sign_of_alpha(h):
    """The brightness vector at +-2 (its validated range, default settings) on its functional layer 7:
    librosa's harmonic centroid, which the app prints for both clips, rises on a dark waltz and falls
    on a bright one."""
    label = "harmonic spectral centroid (Hz, librosa HPSS): "

    def centroids(alpha, prompt):
        notes = [steer(h, alpha, seed=s, prompt=prompt, vector="tada-organism-brightness-caa", duration=4.0,
                       steps=20, layers=(7,))[4] for s in range(2)]
        pairs = [n.split(label)[1].split(" (original) -> ") for n in notes]
        return np.array([[float(x), float(y.split()[0])] for x, y in pairs])

    up, down = centroids(2.0, "a dark waltz"), centroids(-2.0, "a bright waltz")
    assert (up[:, 1] > up[:, 0] + 100).all() and (down[:, 1] < down[:, 0] - 100).all(), (up, down)


@pytest.mark.parametrize("change, message", [
    (dict(prompt="   "), "prompt"),
    (dict(alpha=2.5), r"alpha 2.5 is outside the allowed range \[-2, 2\]"),
    (dict(layers=()), "select at least one layer"),
    (dict(layers=(12,)), r"layers \[12\] are not available"),
    (dict(vector="no-such-vector"), "no steering vector 'no-such-vector'"),
    (dict(vector=None), "choose a concept vector"),
    (dict(repo_id="nobody/no-such-vector"), "cannot get 'nobody/no-such-vector'"),
    (dict(alpha=float("nan")), "alpha must be a finite number"),
])
def test_steer_bad_input_is_a_clear_error(h, change, message):
    args = dict(alpha=1.0) | change
    alpha = args.pop("alpha")
    with pytest.raises(TadaError, match=message):
        steer(h, alpha, **args)


def test_settings_are_checked(h):
    for args, message in [((0, 1e6, 6), "duration must be in"), ((0, 1.0, 0), "steps must be"),
                          ((-1, 1.0, 6), "seed must be"), ((0.5, 1.0, 6), "seed must be")]:
        with pytest.raises(TadaError, match=message):
            h.generate(ORG, "a waltz", *args)
    with pytest.raises(TadaError, match="made for model 'tada-organism'"):
        h.steer_pair("tiny-ace-step", "a waltz", 0, 1.0, 4, TEMPO, "", [6], 1.0)
    with pytest.raises(TadaError, match="choose a model"):
        h.generate("", "a waltz", 0, 1.0, 4)
    with pytest.raises(TadaError, match="cannot load ace-step"):  # no weights offline: a message, not a crash
        h.generate("ace-step", "a waltz", 0, 1.0, 4)


def test_ab_patch_handler(h):
    labels = h.layer_choices(ORG)
    assert len(labels) == 10 and labels[0] == ("0 (transformer.transformer_blocks.0.attn2)", 0)
    choices = [index for _, index in labels]
    assert h.model_defaults(ORG) == (4.0, 20) and h.model_defaults("tiny-audioldm2") == (1.0, 4)
    (_, a), (_, b), (_, ab), table = h.ab_patch(ORG, "a slow sad waltz", "a fast happy march with drums",
                                                choices, 1, 1.0, 6)
    assert np.abs(a - b).max() > 1e-3
    np.testing.assert_allclose(ab, b, atol=1e-4)  # all layers patched from B = B
    assert len(table) == 9 and table[0][0] == "tempo: tempo (BPM, librosa beat tracker)"
    assert all(abs(row[3] - row[2]) <= 1e-3 * max(1.0, abs(row[2])) for row in table)  # measures agree too
    # tempo's functional layer alone: patching it from a fast prompt makes the slow one fast, by the
    # scorer's own decision threshold on librosa's tracked BPM
    threshold = float(np.exp(OrganismScorer().weights.thresholds["tempo"]))
    (*_, table) = h.ab_patch(ORG, "a slow waltz", "a fast waltz", [TEMPO_LAYER], 0, 4.0, 20)
    tempo = next(row for row in table if row[0].startswith("tempo"))
    assert tempo[1] < threshold < tempo[2] and tempo[3] > threshold, (tempo, threshold)
    with pytest.raises(TadaError, match="at least one layer"):
        h.ab_patch(ORG, "a", "b", [], 0, 1.0, 6)
    with pytest.raises(TadaError, match="prompt B"):
        h.ab_patch(ORG, "a", " ", choices[:1], 0, 1.0, 6)


def test_concurrent_steer_requests_each_get_what_they_get_alone(h):
    """Different alphas (and a patch request) at the same time on one model: every result
    equals the same request made alone, so no request sees another's hooks."""
    alphas = [-2.0, -1.0, 0.5, 1.0, 2.0]
    alone = {a: steer(h, a, seed=3)[1][1] for a in alphas}
    patch_alone = h.ab_patch(ORG, "a waltz", "a march with drums", [6], 3, 1.0, 6)[2][1]
    with ThreadPoolExecutor(6) as pool:
        futures = {a: pool.submit(steer, h, a, seed=3) for a in alphas}
        patched = pool.submit(h.ab_patch, ORG, "a waltz", "a march with drums", [6], 3, 1.0, 6)
        results = {a: f.result()[1][1] for a, f in futures.items()}
    for a in alphas:
        assert np.array_equal(results[a], alone[a]), f"alpha {a} differs when run concurrently"
    assert np.array_equal(patched.result()[2][1], patch_alone)
    assert len({r.tobytes() for r in results.values()}) == len(alphas)


def test_localization_view_shows_committed_heatmap(h):
    assert "tempo" in h.concept_choices(ORG)
    assert h.functional_layers(ORG) == [3, 4, 7, 8] and h.functional_layers("tiny-ace-step") == []
    image, rows, text = h.localization_view(ORG, "tempo")
    assert image.size[0] > 300 and len(rows) == 10
    assert max(rows, key=lambda r: r[1])[0] == TEMPO_LAYER and f"functional layers **[{TEMPO_LAYER}]**" in text
    image, rows, text = h.localization_view("tiny-ace-step", "tempo")
    assert image is None and rows == [] and "No committed localization" in text


def test_compute_localization_reports_progress_stops_and_resumes(h, tmp_path):
    steps = h.compute_localization(ORG, "drums", pairs=2, seeds=1, runs=tmp_path)
    first = next(steps)
    while first[1] == 0 or first[0] < 3:  # until a few of the 12 batches are done
        first = next(steps)
    steps.close()  # what Gradio's Stop does: the worker stops after its current batch
    folder = next(tmp_path.iterdir())
    h.generate(ORG, "a waltz", 0, 0.5, 2)  # waits for the model's lock: the stopped worker released it
    done_before = len((folder / "scores.jsonl").read_text().splitlines())
    assert 3 <= done_before < 12
    updates = list(h.compute_localization(ORG, "drums", pairs=2, seeds=1, runs=tmp_path))
    assert updates[0][0] >= done_before  # resumed, not restarted
    done, total, result = updates[-1]
    assert done == total == 12 and result.concept == "drums" and set(result.impact) == set(range(10))
    with pytest.raises(TadaError, match="computes localizations for models with a built-in scorer"):
        next(h.compute_localization("tiny-ace-step", "tempo"))


def test_sae_feature_views_and_single_feature_steering(h):
    sae = h.sae_choices(ORG)[0]
    layers = h.atlas_layers(sae)
    assert layers == [3, 7]
    table = h.feature_table(sae, 7, "brightness")
    assert len(table) == 12 and table[0][1] >= table[-1][1]
    feature = table[0][0]
    prompts, scores = h.browse_feature(sae, 7, feature)
    assert len(prompts) == 8 and prompts[0][1] >= prompts[-1][1]
    assert scores[0][0] == "brightness"  # its best concept is the one it was ranked for
    (_, orig), (_, steered), *_, note = h.steer_feature(ORG, sae, 7, feature, "brightness", "a waltz", 0, 1.0, 6,
                                                        2.0)
    assert np.abs(orig - steered).max() > 1e-3 and f"feature {feature} of layer 7" in note and "centroid" in note
    with pytest.raises(TadaError, match=r"feature must be a whole number in 0\.\.511"):  # 128 x m=4 latents
        h.steer_feature(ORG, sae, 7, 99999, "brightness", "a waltz", 0, 1.0, 6, 2.0)
    with pytest.raises(TadaError, match="outside the allowed range"):
        h.steer_feature(ORG, sae, 7, feature, "brightness", "a waltz", 0, 1.0, 6, 40.0)
    with pytest.raises(TadaError, match="no SAE 'nope'"):
        h.feature_table("nope", 8, "brightness")
    with pytest.raises(TadaError, match="cannot get 'nobody/no-such-sae'"):
        h.atlas_layers("nobody/no-such-sae")


def test_sae_from_a_folder_outside_saes(h, tmp_path):
    import shutil

    folder = tmp_path / "my-sae"
    shutil.copytree(app_module.SAES / "tada-organism-topk", folder)
    assert h.atlas_layers(str(folder)) == [3, 7]
    assert h.feature_table(str(folder), 7, "drums") == h.feature_table("tada-organism-topk", 7, "drums")
    shutil.rmtree(folder / "atlas")
    with pytest.raises(TadaError, match="has no feature atlas"):
        h.atlas_layers(str(folder))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_launched_app_answers_client():
    """generate, steer and patch through gradio_client against the launched app; a bad request
    gets its message and the app keeps serving."""
    gradio_client = pytest.importorskip("gradio_client")
    port = _free_port()
    app = app_module.build_app(ORG)
    app_module.launch(app, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False)
        # seed, duration and steps are shared controls; the endpoint takes them positionally
        result = client.predict(ORG, "a fast march with drums", 0, 1.0, 6, api_name="/generate")
        assert str(result).endswith(".wav")
        orig, steered, spec0, spec1, note = client.predict(ORG, "a waltz with piano", 0, 1.0, 6, TEMPO, "", [TEMPO_LAYER],
                                                           1.0, api_name="/steer")
        assert str(orig).endswith(".wav") and str(steered).endswith(".wav") and "BPM" in note
        a, b, ab, table = client.predict(ORG, "a slow waltz", "a fast march", [6], 0, 1.0, 6, api_name="/patch")
        assert all(str(x).endswith(".wav") for x in (a, b, ab)) and len(table["data"]) == 9
        with pytest.raises(Exception, match="outside the allowed range"):
            client.predict(ORG, "a waltz", 0, 1.0, 6, TEMPO, "", [TEMPO_LAYER], 3.0, api_name="/steer")
        with pytest.raises(Exception, match="duration"):
            client.predict(ORG, "a waltz", 0, -1.0, 6, api_name="/generate")
        with pytest.raises(Exception, match="cannot load ace-step"):
            client.predict("ace-step", "a waltz", 0, 1.0, 6, api_name="/generate")
        assert str(client.predict(ORG, "a waltz", 1, 1.0, 6, api_name="/generate")).endswith(".wav")
    finally:
        app.close()
