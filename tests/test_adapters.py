import subprocess
import sys

import pytest
import soundfile as sf
import torch

from tada_core import TadaError, load_model, model_names

from .conftest import TINY


def module_at(pipeline, path):
    component, rest = path.split(".", 1)
    return getattr(pipeline, component).get_submodule(rest)


def test_layers_are_ordered_and_have_widths(model):
    assert [layer.index for layer in model.layers] == list(range(len(model.layers)))
    assert all(layer.width > 0 for layer in model.layers)
    assert len({layer.path for layer in model.layers}) == len(model.layers)
    for layer in model.layers:
        assert layer.module is module_at(model.pipeline, layer.path)


def test_layer_paths_per_family(models):
    assert models("tiny-ace-step").layers[2].path == "transformer.layers.2.cross_attn"
    assert models("tiny-stable-audio").layers[3].path == "transformer.transformer_blocks.3.attn2"
    paths = [layer.path for layer in models("tiny-audioldm2").layers]
    # down -> mid -> up (execution order), and only true cross-attention attn2 modules
    sections = [p.split(".")[1] for p in paths]
    assert sections == sorted(sections, key=["down_blocks", "mid_block", "up_blocks"].index)
    assert "mid_block" in sections
    assert all(module_at(models("tiny-audioldm2").pipeline, p).is_cross_attention for p in paths)
    n_attn2 = sum(1 for n, _ in models("tiny-audioldm2").pipeline.unet.named_modules() if n.endswith("attn2"))
    assert len(paths) < n_attn2  # the self-attending attn2 modules were skipped


def test_generate_shapes_and_determinism(model):
    a = model.generate(["fast techno", "slow piano"], seeds=[0, 1])
    b = model.generate(["fast techno", "slow piano"], seeds=[0, 1])
    c = model.generate(["fast techno", "slow piano"], seeds=[2, 3])
    assert a.audio.ndim == 3 and a.audio.shape[0] == 2 and a.audio.dtype == torch.float32
    assert a.sample_rate == model.sample_rate
    assert abs(a.audio.shape[-1] / a.sample_rate - 1.0) < 0.05  # tiny defaults: 1 s
    assert torch.isfinite(a.audio).all() and a.audio.abs().max() > 1e-3
    assert torch.equal(a.audio, b.audio)
    assert not torch.allclose(a.audio, c.audio)


def test_batch_equals_single_runs(model):
    both = model.generate(["fast techno", "slow piano"], seeds=[4, 5]).audio
    one = model.generate(["slow piano"], seeds=[5]).audio
    torch.testing.assert_close(both[1:], one, atol=1e-4, rtol=0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompts=""), "non-empty"),
    (dict(prompts=[]), "at least one prompt"),
    (dict(prompts=["ok", "  "]), "prompt[1]"),
    (dict(prompts="ok", duration=0), "duration"),
    (dict(prompts="ok", duration=-1.5), "duration"),
    (dict(prompts="ok", duration=float("nan")), "duration"),
    (dict(prompts="ok", steps=0), "steps"),
    (dict(prompts="ok", guidance=float("inf")), "guidance"),
    (dict(prompts=["a", "b"], seeds=[1]), "2 prompts"),
    (dict(prompts="ok", seeds=[-1]), "non-negative"),
])
def test_bad_generation_input(models, kwargs, message):
    m = models("tiny-ace-step")
    prompts = kwargs.pop("prompts")
    with pytest.raises(TadaError, match=message.replace("[", r"\[")):
        m.generate(prompts, **kwargs)


def test_duration_limit(models):
    with pytest.raises(TadaError, match="at most 2s"):
        models("tiny-stable-audio").generate("ok", duration=3.0)


def test_unknown_model_name_lists_accepted():
    with pytest.raises(TadaError) as e:
        load_model("ace-stepp")
    assert "ace-stepp" in str(e.value)
    for name in model_names():
        assert name in str(e.value)


def test_uncached_repo_id_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(TadaError, match="not in the local Hugging Face cache"):
        load_model("nobody/no-such-pipeline")


def test_local_folder_roundtrip(tmp_path, models):
    from tada_core.fixtures import tiny_ace_step

    tiny_ace_step().save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path), device="cpu")
    loaded.set_progress_bar(False)
    assert loaded.family == "ace-step"
    ref = models("tiny-ace-step")
    got = loaded.generate("fast techno", seeds=3, duration=1.0, steps=4, guidance=3.0).audio
    want = ref.generate("fast techno", seeds=3).audio
    assert torch.equal(got, want)


def test_folder_without_model_index(tmp_path):
    with pytest.raises(TadaError, match="model_index.json"):
        load_model(str(tmp_path))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "tada_core.cli", *args], capture_output=True, text=True,
                          timeout=300)


def test_cli_models():
    r = run_cli("models")
    assert r.returncode == 0, r.stderr
    for name in TINY + ["tada-organism", "ace-step", "stable-audio", "audioldm2"]:
        assert name in r.stdout
    assert "[cond, uncond]" in r.stdout and "[uncond, cond]" in r.stdout


def test_cli_generate_writes_wav(tmp_path):
    out = tmp_path / "x.wav"
    r = run_cli("generate", "--model", "tiny-ace-step", "--prompt", "fast techno", "--out", str(out))
    assert r.returncode == 0, r.stderr
    data, sr = sf.read(out)
    assert sr == 800 and data.shape == (800, 2) and abs(data).max() > 0.01


def test_cli_generate_defaults_to_the_shipped_organism(tmp_path):
    out = tmp_path / "o.wav"
    r = run_cli("generate", "--prompt", "a fast happy pop song with drums", "--steps", "4", "--out", str(out))
    assert r.returncode == 0, r.stderr
    data, sr = sf.read(out)
    assert sr == 16000 and data.shape == (4 * 16000,) and abs(data).max() > 0.01


def test_cli_bad_input_is_one_line(tmp_path):
    r = run_cli("generate", "--model", "nope", "--prompt", "x", "--out", str(tmp_path / "x.wav"))
    assert r.returncode == 2
    assert "unknown model 'nope'" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("generate", "--prompt", "x", "--duration", "-1", "--out", str(tmp_path / "x.wav"))
    assert r.returncode == 2 and "duration" in r.stderr and "Traceback" not in r.stderr
