"""Adapters: layers in execution order, CFG layout, real checkpoints' layer counts, generation, loading, CLI."""

import json
from pathlib import Path

import pytest
import soundfile as sf
import torch

from tada_core import TadaError, load_model, model_names, record, steer
from tada_core.registry import REGISTRY, measured_layers

from .conftest import TINY

ROOT = Path(__file__).resolve().parents[1]


def module_at(pipeline, path):
    component, rest = path.split(".", 1)
    return getattr(pipeline, component).get_submodule(rest)


def test_layers_run_in_index_order_once_per_step(model):
    """A pre-hook on every layer: at step 0 the layers are called in exactly the order of their indices."""
    calls = []
    handles = [layer.module.register_forward_pre_hook(lambda m, a, i=layer.index: calls.append(i))
               for layer in model.layers]
    try:
        model.generate("fast techno", seeds=0, steps=2)
    finally:
        for h in handles:
            h.remove()
    n = len(model.layers)
    assert calls[:n] == list(range(n)), calls[:n]
    assert len(calls) == 2 * n  # one call per layer and step: CFG rows are batched
    for layer in model.layers:
        assert layer.module is module_at(model.pipeline, layer.path) and layer.width > 0


def test_layer_paths_per_family(models):
    assert models("tiny-ace-step").layers[2].path == "transformer.layers.2.cross_attn"
    assert models("tiny-stable-audio").layers[3].path == "transformer.transformer_blocks.3.attn2"
    paths = [layer.path for layer in models("tiny-audioldm2").layers]
    sections = [p.split(".")[1] for p in paths]
    assert "mid_block" in sections
    assert all(module_at(models("tiny-audioldm2").pipeline, p).is_cross_attention for p in paths)
    n_attn2 = sum(1 for n, _ in models("tiny-audioldm2").pipeline.unet.named_modules() if n.endswith("attn2"))
    assert len(paths) < n_attn2  # the self-attending attn2 modules were skipped


@pytest.mark.parametrize("name", ["tiny-ace-step", "tiny-stable-audio", "tiny-audioldm2", "tada-organism"])
def test_cfg_layout_matches_a_run_without_cfg(models, name):
    """At step 0 both runs start from the same noise, so the rows the adapter calls conditional in a CFG
    run equal the only rows of a run without CFG, and the other rows do not."""
    m = models(name)
    layer = len(m.layers) - 1
    raw = {}
    for guidance in (3.0, 1.0):
        got = []
        handle = m.layers[layer].module.register_forward_hook(lambda mod, a, out: got.append(out.detach().clone()))
        try:
            m.generate("a slow sad piano ballad", seeds=5, guidance=guidance, steps=2)
        finally:
            handle.remove()
        raw[guidance] = got[0]
    with_cfg, without = raw[3.0], raw[1.0]
    assert with_cfg.shape[0] == 2 and without.shape[0] == 1
    cond = 0 if m.cond_first else 1
    torch.testing.assert_close(with_cfg[cond], without[0], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(with_cfg[1 - cond], without[0], atol=1e-3)
    # and record() keeps exactly that row (its frame mean)
    with record(m, [layer]) as rec:
        m.generate("a slow sad piano ballad", seeds=5, guidance=3.0, steps=2)
    torch.testing.assert_close(rec.activations[layer][0, 0], with_cfg[cond].mean(0), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name, count, widths", [
    ("ace-step", 32, {2560}),
    ("stable-audio", 24, {1536}),
    ("audioldm2", 32, {256, 384, 640}),
    ("audioldm2-large", 64, {256, 384, 640}),
])
def test_real_checkpoints_layer_counts_from_their_committed_configs(name, count, widths):
    """The real denoisers, built from their committed configs on the meta device (no weights)."""
    layers = measured_layers(REGISTRY[name])
    assert len(layers) == count and {w for _, _, w in layers} == widths
    assert [i for i, _, _ in layers] == list(range(count))
    if name == "audioldm2":
        assert sorted(w for _, _, w in layers).count(640) == 12 and [w for _, _, w in layers].count(256) == 10
    # a preset belongs to the checkpoint it was found on and fits its layers
    for preset in REGISTRY[name].presets:
        assert max(preset.layers) < count and preset.checkpoint in REGISTRY[name].hub_id
    config = json.loads((ROOT / "tada_core" / "configs" / Path(REGISTRY[name].denoiser_config()).name).read_text())
    assert config["_provenance"]


def test_paper_layer_numbers_are_attached_to_their_checkpoints_only():
    assert REGISTRY["stable-audio"].functional_layers() == (11, 12)
    assert REGISTRY["audioldm2-large"].functional_layers() == (44, 45, 50, 51)
    assert REGISTRY["audioldm2"].functional_layers() == () and REGISTRY["ace-step"].functional_layers() == ()
    ace = measured_layers(REGISTRY["ace-step"])
    assert ace[6][1] == "transformer.layers.6.cross_attn" and ace[6][2] == 2560  # 1.5 XL, not v1's blocks


def test_ace_step_prompts_do_not_depend_on_their_batchmates(models):
    """diffusers' ACE-Step transformer calls cross-attention without the padding mask; the adapter passes
    it, so a short prompt padded next to a long one sounds as it does alone (this fails without the fix)."""
    m = models("tiny-ace-step")
    short, long = "jazz", "a slow sad piano ballad with female vocals and soft strings in the rain"
    tok = m.pipeline.tokenizer
    assert len(tok(long).input_ids) > 5 * len(tok(short).input_ids)
    alone = m.generate([short], seeds=[3]).audio
    batched = m.generate([short, long], seeds=[3, 4]).audio
    torch.testing.assert_close(batched[:1], alone, atol=1e-5, rtol=0)
    assert (batched[1] - alone[0]).abs().max() > 1e-2


def test_ace_step_alone_is_the_stock_pipeline(models):
    """With no padding, the mask changes nothing: the adapter's output is the pipeline's own, bit for bit."""
    m = models("tiny-ace-step")
    ours = m.generate(["a fast tune"], seeds=[2]).audio
    stock = m.pipeline(prompt=["a fast tune"], lyrics=["[inst]"], audio_duration=1.0, num_inference_steps=4,
                       guidance_scale=3.0, generator=[torch.Generator().manual_seed(2)]).audios
    assert torch.equal(ours, torch.as_tensor(stock).float())


def test_ace_step_instrumental_lyrics_and_cfg_interval(models, tmp_path, cli):
    """ACE-Step generates instrumental music with the reference code's lyric token, and CFG's interval is an
    option; both are recorded in every resumable job's spec, so a folder never mixes two settings."""
    from tada_core.interventions.cache import cache_activations

    m = models("tiny-ace-step")
    assert m.options() == {"lyrics": "[inst]", "cfg_interval": [0.0, 1.0]}

    def clip():
        return m.generate(["a fast tune"], seeds=[2]).audio

    default = clip()
    try:
        m.configure(lyrics="")
        assert (clip() - default).abs().max() > 1e-3          # an empty lyric is another condition
        m.configure(lyrics="[inst]", cfg_interval=(0.5, 1.0))
        assert (clip() - default).abs().max() > 1e-3          # no CFG in the first half of the trajectory
        cache_activations(m, ["a", "b"], tmp_path / "c", layers=[0], progress=False)
        m.configure(cfg_interval=(0.0, 1.0))
        assert torch.equal(clip(), default)
        with pytest.raises(TadaError, match="differs in: cfg_interval"):
            cache_activations(m, ["a", "b"], tmp_path / "c", layers=[0], progress=False)
        for bad in [(0.8, 0.2), (0.0, 1.5), ("a", 1)]:
            with pytest.raises(TadaError, match="cfg_interval must"):
                m.configure(cfg_interval=bad)
    finally:
        m.configure(lyrics="[inst]", cfg_interval=(0.0, 1.0))
    with pytest.raises(TadaError, match=r"has no option lyrics; accepted: none"):
        models("tiny-stable-audio").configure(lyrics="la la")
    code, _, err = cli("generate", "--model", "tiny-stable-audio", "--prompt", "x", "--cfg-interval", "0", "1",
                       "--out", tmp_path / "x.wav")
    assert code == 2 and "has no option cfg_interval" in err


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
    both = model.generate(["fast techno", "a slow sad piano ballad"], seeds=[4, 5]).audio
    one = model.generate(["a slow sad piano ballad"], seeds=[5]).audio
    torch.testing.assert_close(both[1:], one, atol=1e-4, rtol=0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompts=""), "non-empty"),
    (dict(prompts=[]), "at least one prompt"),
    (dict(prompts=["ok", "  "]), "prompt[1]"),
    (dict(prompts="ok", duration=0), "duration"),
    (dict(prompts="ok", duration=-1.5), "duration"),
    (dict(prompts="ok", duration=float("nan")), "duration"),
    (dict(prompts="ok", steps=0), "steps"),
    (dict(prompts="ok", steps=1.5), "steps"),
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
    with pytest.raises(TadaError, match=r"at most 1\.99219s"):   # 255 samples at 128 Hz
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


def test_local_folder_roundtrip_with_its_sampling_defaults(tmp_path, models):
    from tada_core.adapters.entry import save_sampling_defaults
    from tada_core.adapters.fixtures import tiny_ace_step

    tiny_ace_step().save_pretrained(tmp_path)
    save_sampling_defaults(tmp_path, {"duration": 1.0, "steps": 4, "guidance": 3.0})
    loaded = load_model(str(tmp_path), device="cpu")
    loaded.set_progress_bar(False)
    assert loaded.family == "ace-step" and loaded.defaults.steps == 4   # the folder's defaults, not the family's 30
    assert loaded.entry.scorer_name is None and loaded.entry.presets == ()
    ref = models("tiny-ace-step")
    assert torch.equal(loaded.generate("fast techno", seeds=3).audio, ref.generate("fast techno", seeds=3).audio)


def test_device_map_reaches_diffusers_and_is_refused_where_it_cannot_work(tmp_path, monkeypatch, cli):
    """--device-map balanced is diffusers' own pipeline-level placement: passed to from_pretrained, and the
    pipeline is then not moved. Without GPUs (here) it is refused with the reason; the CPU path is unchanged."""
    import diffusers

    from tada_core.adapters.fixtures import tiny_ace_step

    tiny_ace_step().save_pretrained(tmp_path / "p")
    with pytest.raises(TadaError, match="this machine has none"):
        load_model(str(tmp_path / "p"), device_map="balanced")
    with pytest.raises(TadaError, match="device_map must be one of balanced"):
        load_model(str(tmp_path / "p"), device_map="sequential")
    code, _, err = cli("generate", "--model", "tiny-stable-audio", "--prompt", "x", "--device-map", "balanced",
                       "--out", tmp_path / "x.wav")
    assert code == 2 and "this machine has none" in err
    seen = {}
    stock = diffusers.AceStepPipeline.from_pretrained.__func__

    def spy(cls, source, **kwargs):
        seen.update(kwargs)
        kwargs.pop("device_map")                 # no GPU to place it on: load it where it is
        return stock(cls, source, **kwargs)

    monkeypatch.setattr(diffusers.AceStepPipeline, "from_pretrained", classmethod(spy))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    moved = []
    monkeypatch.setattr(diffusers.AceStepPipeline, "to", lambda self, *a, **k: moved.append(a) or self)
    model = load_model(str(tmp_path / "p"), device_map="balanced", dtype="float32")
    assert seen["device_map"] == "balanced" and seen["use_safetensors"] is True and moved == []
    assert model.family == "ace-step"


def test_the_organism_defaults_come_from_its_checkpoint():
    from tada_core.organism.model import SAMPLING, checkpoint_path

    saved = json.loads((Path(checkpoint_path()) / "tada_sampling.json").read_text())
    assert saved == SAMPLING
    m = load_model("tada-organism", device="cpu")
    assert m.defaults.to_dict() == saved


def test_folder_without_model_index(tmp_path):
    with pytest.raises(TadaError, match="model_index.json"):
        load_model(str(tmp_path))


def test_cli_models(cli):
    code, out, err = cli("models", "--all")
    assert code == 0, err
    for name in TINY + ["tada-organism", "ace-step", "stable-audio", "audioldm2", "audioldm2-large"]:
        assert name in out
    row = next(line for line in out.splitlines() if line.startswith("audioldm2 "))
    assert " 32 " in row and "cvssp/audioldm2-music" in row   # measured, not the paper's 64
    assert "[cond, uncond]" in out and "[uncond, cond]" in out
    assert "tiny-ace-step" not in cli("models")[1]


def test_cli_generate_writes_wav(tmp_path, cli):
    out = tmp_path / "x.wav"
    code, stdout, err = cli("generate", "--model", "tiny-ace-step", "--prompt", "fast techno", "--out", out)
    assert code == 0, err
    data, sr = sf.read(out)
    assert sr == 800 and data.shape == (800, 2) and abs(data).max() > 0.01


def test_cli_generate_defaults_to_the_shipped_organism(tmp_path, cli):
    out = tmp_path / "o.wav"
    code, _, err = cli("generate", "--prompt", "a fast happy pop song with drums", "--steps", "4", "--out", out)
    assert code == 0, err
    data, sr = sf.read(out)
    assert sr == 16000 and data.shape == (4 * 16000,) and abs(data).max() > 0.01


@pytest.mark.parametrize("args, message", [
    (["--model", "nope"], "unknown model 'nope'"),
    (["--out", "x.mp3"], "must end in .wav"),
    (["--alpha", "1"], "--alpha needs --steer"),
    (["--device", "cuda"], "CUDA is not available"),
])
def test_cli_bad_input_is_one_line(tmp_path, cli, args, message):
    argv = ["generate", "--prompt", "x", "--out", str(tmp_path / "x.wav")] + args
    if "--out" in args:
        argv = ["generate", "--prompt", "x"] + args
    code, _, err = cli(*argv)
    assert code == 2 and message in err and "Traceback" not in err, err


@pytest.mark.parametrize("args", [["--duration", "-1"], ["--steps", "0"], ["--alpha", "nan"], ["--seed", "1.5"]])
def test_cli_refuses_bad_numbers_before_loading_anything(tmp_path, cli, args):
    with pytest.raises(SystemExit) as e:
        cli("generate", "--prompt", "x", "--out", str(tmp_path / "x.wav"), *args)
    assert e.value.code == 2


@pytest.mark.parametrize("name", ["tiny-ace-step", "tiny-stable-audio", "tiny-audioldm2", "tiny-musicgen-melody"])
def test_half_precision_runs_every_family_and_records_float32(name):
    m = load_model(name, device="cpu", dtype="bfloat16")
    m.set_progress_bar(False)
    assert next(m.denoiser.parameters()).dtype == torch.bfloat16
    layer = m.layers[0].index
    with record(m, [layer], mode="mean") as rec:
        plain = m.generate("a fast song", seeds=0).audio
    assert torch.isfinite(plain).all() and rec.activations[layer].dtype == torch.float32
    vector = torch.randn(m.layers[0].width) * 5
    with steer(m, {layer: vector}, alpha=1.0):
        steered = m.generate("a fast song", seeds=0).audio
    assert torch.isfinite(steered).all() and not torch.equal(plain, steered)


def test_dtype_names_are_checked():
    from tada_core.registry import as_dtype

    assert as_dtype("float16") == torch.float16 and as_dtype(None) is None
    with pytest.raises(TadaError, match="dtype must be one of float32, bfloat16, float16; got 'half'"):
        load_model("tiny-stable-audio", dtype="half")
    assert next(load_model("tiny-stable-audio", device="cpu").denoiser.parameters()).dtype == torch.float32
