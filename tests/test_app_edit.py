"""The app's "Edit your clip" tab (tada_core.editing) at the handler level on the shipped organism with short
clips, and through the launched app (shared with the Steer tests)."""

from pathlib import Path

import numpy as np
import pytest

from tests.test_app import client  # noqa: F401 - the launched public app, shared with the Steer tests

from tada_core import TadaError
from tada_app import AppConfig, Handlers
from tada_app.config import ROOT
from tada_app.handlers import EDIT_ALPHAS, EDIT_MAX_SECONDS

ORG = "tada-organism"
BRIGHT = "tada-organism-brightness-caa"
FAST = (0, 1.0, 4)    # seed, duration, steps


@pytest.fixture(scope="module")
def h():
    return Handlers(AppConfig.from_env({"TADA_TEST_FIXTURES": "1"}))


@pytest.fixture(scope="module")
def clip(h):
    """A visitor's clip as the audio widget hands it over: (rate, int16 [samples, channels]), 44.1 kHz stereo."""
    sr, mono = h.generate(ORG, "a waltz played on piano", 8600, 1.0, 4)
    import librosa

    up = librosa.resample(mono[:, 0].astype(np.float32) / 32767, orig_sr=sr, target_sr=44100)
    return 44100, (np.stack([up, up], 1) * 32767).astype(np.int16)


def test_edit_returns_original_reconstruction_and_one_edit_per_alpha(h, clip):
    # the model's default 20 steps: with very few steps the stored noise maps outweigh the steering (docs/editing.md)
    out = h.edit(ORG, clip, "a waltz played on piano", 0, 1.0, 20, BRIGHT, "", [-2.0, 2.0], 1.0)
    players, images, table, caption = out[:2 + EDIT_ALPHAS], out[2 + EDIT_ALPHAS:4 + 2 * EDIT_ALPHAS], out[-2], out[-1]
    assert players[-1] is None and images[-1] is None           # two alphas: the third edit slot is empty
    (sr, orig), (_, rec), (_, lo), (_, hi) = players[:4]
    assert sr == 16000 and orig.shape == rec.shape == lo.shape == (16000, 1)
    assert np.abs(rec.astype(int) - orig).mean() < 0.1 * np.abs(orig.astype(int)).mean()   # alpha 0 keeps the clip
    assert np.abs(hi.astype(int) - lo).mean() > 0.1 * np.abs(orig.astype(int)).mean()      # the edits differ
    assert all(im is not None for im in images[:4])
    assert table["headers"] == ["concept: measure", "original", "reconstruction (alpha 0)", "alpha -2", "alpha 2"]
    bright = next(r for r in table["data"] if r[0].startswith("brightness"))
    assert bright[4] > bright[3]                                 # the brightness vector brightens the edit
    assert caption.startswith("brightness (CAA) on layers [5], alphas -2, 2; strength 1") and "'a waltz" in caption


@pytest.mark.parametrize("args, message", [
    (dict(audio="/etc/passwd"), "audio must be an uploaded or recorded clip"),
    (dict(audio=(16000, "x")), "audio samples must be an array"),
    (dict(audio=(16000, np.zeros(16000, np.int16))), "silent"),
    (dict(audio=(16000, np.full(16000, np.nan, np.float32))), "NaN"),
    (dict(audio=(16000, np.ones(int(16000 * (EDIT_MAX_SECONDS + 1)), np.int16))), "at most 60s"),
    (dict(audio=(100, np.ones(100, np.int16))), "audio sample rate must be a whole number in 4000..192000"),
    (dict(alphas=[1.0] * (EDIT_ALPHAS + 1)), f"alphas must be a list of 1 to {EDIT_ALPHAS} numbers"),
    (dict(alphas=[99.0]), "alphas entry must be"),
    (dict(strength=2.0), "strength must be"),
    (dict(vector="../../README.md"), "vector must be a name from vectors/.*got a path"),
])
def test_bad_requests_are_one_line_errors_without_a_server_path(h, clip, args, message):
    call = dict(audio=clip, prompt="", vector=BRIGHT, alphas=[1.0], strength=1.0) | args
    with pytest.raises(TadaError, match=message) as e:
        h.edit(ORG, call["audio"], call["prompt"], *FAST, call["vector"], "", call["alphas"], call["strength"])
    assert "\n" not in str(e.value) and str(ROOT) not in str(e.value)


def test_edit_through_the_api(client, clip, tmp_path):
    """/edit from a fresh session with an uploaded file; a server path as the audio is refused by the page."""
    import soundfile as sf
    from gradio_client import handle_file

    c, _ = client
    api = c.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert [p["parameter_name"] for p in api["/edit"]["parameters"]] == [
        "model", "audio", "prompt", "seed", "duration", "steps", "vector", "repo_id", "alphas", "strength"]
    path = tmp_path / "mine.flac"
    sf.write(path, clip[1], clip[0])
    out = c.predict(ORG, handle_file(str(path)), "", 0, 1.0, 4, BRIGHT, "", "2", 1.0, api_name="/edit")
    assert out[0] and out[1] and out[2] and out[3] is None
    assert out[-1].startswith("brightness (CAA)") and "prompt 'music'" in out[-1]
    with pytest.raises(Exception) as e:
        c.predict(ORG, str(ROOT / "README.md"), "", 0, 1.0, 4, BRIGHT, "", "2", 1.0, api_name="/edit")
    assert "# TADA" not in str(e.value)
    assert Path(path).exists()


def test_the_fuzz_script_finds_nothing_on_the_edit_endpoint(client):
    """scripts/app_fuzz.py's quick set on /edit's audio, vector and alphas (server paths, secrets, wrong types)."""
    import importlib.util

    c, _ = client
    spec = importlib.util.spec_from_file_location("app_fuzz", ROOT / "scripts" / "app_fuzz.py")
    fuzz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz)
    counts = fuzz.run(c.src, quick=True, timeout=60, endpoints=["/edit"], keys=["audio", "vector", "alphas"],
                      log=print)
    assert counts["failures"] == 0, counts["failure_list"][:10]
    assert counts["requests"] == 16 * 3 and counts["refused"] > 30


def test_musicgen_edits_by_continuation_in_the_edit_tab(h, clip):
    """MusicGen is in the Edit tab's model box like every model; its default strength (the slider follows the
    model box) is the fraction a continuation replaces, and the caption says it is a continuation."""
    assert h.edit_strength(ORG) == 1.0 and h.edit_strength("musicgen-organism") == 0.5
    out = h.edit("musicgen-organism", clip, "a waltz played on piano", 0, 1.0, 4,
                 "musicgen-organism-brightness-diffmean", "", [0.5], 0.5)
    (sr, orig), (_, rec), (_, hi) = out[:3]
    assert sr == 16000 and orig.shape == rec.shape == hi.shape == (16000, 1)     # 16 codec frames, trimmed
    np.testing.assert_array_equal(rec[:7 * 1024], hi[:7 * 1024])                 # the kept 8 frames, but the last
    assert np.abs(rec[9 * 1024:].astype(int) - hi[9 * 1024:]).mean() > 0
    assert "continuation from the clip's codec tokens" in out[-1] and "first 8 codec frames" in out[-1]
    with pytest.raises(TadaError, match="between 0 and 1, exclusive"):
        h.edit("musicgen-organism", clip, "", *FAST, "musicgen-organism-brightness-diffmean", "", [0.5], 1.0)
