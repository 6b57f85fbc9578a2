"""The app's handlers, and the launched app answering through gradio_client."""

import socket

import numpy as np
import pytest

from tada_core import TadaError

app_module = pytest.importorskip("app")


@pytest.fixture(scope="module")
def handlers():
    return app_module.make_handlers(app_module.ModelCache())


def test_generate_handler(handlers):
    generate, _, _, _ = handlers
    sr, audio = generate("tiny-ace-step", "fast techno", 0, 1.0, 4)
    sr2, audio2 = generate("tiny-ace-step", "fast techno", 0, 1.0, 4)
    assert sr == 800 and audio.shape == (800, 2) and np.array_equal(audio, audio2)


def test_ab_patch_handler(handlers):
    _, ab_patch, layer_choices, model_defaults = handlers
    choices = layer_choices("tiny-ace-step")
    assert len(choices) == 4 and choices[0].startswith("0 (transformer.layers.0.cross_attn")
    assert model_defaults("tiny-ace-step") == (1.0, 4) and model_defaults("tiny-audioldm2") == (1.0, 4)
    (_, a), (_, b), (_, ab) = ab_patch("tiny-ace-step", "slow sad piano", "fast techno", choices, 1, 1.0, 4)
    assert np.abs(a - b).max() > 1e-3
    np.testing.assert_allclose(ab, b, atol=1e-4)  # all layers patched from B = B
    with pytest.raises(TadaError, match="at least one layer"):
        ab_patch("tiny-ace-step", "a", "b", [], 0, 1.0, 4)
    with pytest.raises(TadaError, match="duration"):
        ab_patch("tiny-ace-step", "a", "b", choices[:1], 0, 1e6, 4)


def test_launched_app_answers_client():
    gradio_client = pytest.importorskip("gradio_client")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = app_module.build_app("tiny-ace-step").queue(default_concurrency_limit=1)
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False)
        result = client.predict("tiny-ace-step", "fast techno", 0, 1.0, 4, api_name="/generate")
        assert result and str(result).endswith(".wav")
        with pytest.raises(Exception, match="duration"):
            client.predict("tiny-ace-step", "fast techno", 0, -1.0, 4, api_name="/generate")
    finally:
        app.close()


def test_concurrent_requests_do_not_see_each_others_hooks(handlers):
    """A patch request and plain generate requests on one model, at the same time,
    each return what they return alone."""
    from concurrent.futures import ThreadPoolExecutor

    generate, ab_patch, layer_choices, _ = handlers
    choices = layer_choices("tiny-ace-step")
    alone_gen = generate("tiny-ace-step", "slow sad piano", 2, 1.0, 4)[1]
    alone_patch = ab_patch("tiny-ace-step", "slow sad piano", "fast techno", choices, 2, 1.0, 4)[2][1]
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(ab_patch, "tiny-ace-step", "slow sad piano", "fast techno", choices, 2, 1.0, 4)
                   if i % 2 else pool.submit(generate, "tiny-ace-step", "slow sad piano", 2, 1.0, 4)
                   for i in range(6)]
        results = [f.result() for f in futures]
    for i, r in enumerate(results):
        got = r[2][1] if i % 2 else r[1]
        assert np.array_equal(got, alone_patch if i % 2 else alone_gen)
