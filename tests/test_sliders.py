"""Concept Sliders (Gandikota et al., 2024): training lowers the Eq. 4 loss, scale 0 is the model itself bit for bit,
a localized slider adapts only its layers, the folder round-trips, the model is restored on every exit, and the
benchmark runs it."""

import json

import pytest
import torch
from torch import nn

from tada_core.artifacts.slider import ConceptSlider, load_slider, projections
from tada_core.errors import TadaError
from tada_core.methods.sliders import SliderTraining, train_slider

TRIPLES = [("a song", "a fast song", "a slow song"), ("a waltz", "a fast waltz", "a slow waltz")]
TRAINING = SliderTraining(steps=40, lr=5e-3, fit_seeds=(0, 1))


@pytest.fixture(scope="module")
def tiny_model():
    from tada_core.registry import load_model

    return load_model("tiny-stable-audio")


@pytest.fixture(scope="module")
def slider(tiny_model):
    return train_slider(tiny_model, "tempo", TRIPLES, layers=[1], training=TRAINING)


def linear_weights(denoiser: nn.Module) -> dict[str, torch.Tensor]:
    """Every linear projection's effective weight: W, or W + scaling B A inside a slider."""
    out = {}
    for name, m in denoiser.named_modules():
        if hasattr(m, "base_layer") and hasattr(m, "lora_A"):
            w = m.base_layer.weight.detach().clone()
            for key in m.lora_A:
                w = w + m.scaling[key] * (m.lora_B[key].weight @ m.lora_A[key].weight)
            out[name] = w
        elif isinstance(m, nn.Linear) and not any(name.endswith(s) for s in (".base_layer",)) \
                and ".lora_" not in name:
            out[name] = m.weight.detach().clone()
    return out


def test_training_lowers_the_sliders_loss(slider):
    t = slider.training
    assert t["loss_after"] < 0.9 * t["loss_before"]          # the mean Eq. 4 loss over every captured call
    assert len(t["loss"]) == TRAINING.steps and t["seeds"] == [0, 1] and t["samples"] > 0
    assert any(v.abs().max() > 0 for k, v in slider.weights.items() if "lora_B" in k)   # B moved off its zero init


def test_eq4_target_is_the_frozen_models_guided_difference(tiny_model):
    from tada_core.methods.sliders import slider_targets

    one = slider_targets(tiny_model, TRIPLES[:1], eta=1.0, seeds=[0])
    two = slider_targets(tiny_model, TRIPLES[:1], eta=2.0, seeds=[0])
    zero_gap = slider_targets(tiny_model, [("a song", "a calm song", "a calm song")], eta=3.0, seeds=[0])
    steps = tiny_model.resolve_settings(None).steps
    assert len(one) == steps
    # eps(neutral) + eta (eps(+) - eps(-)): doubling eta doubles the distance to eps(neutral), the prediction
    # the frozen model makes on the neutral prompt; with equal sides the target is eps(neutral) itself
    for a, b, z in zip(one, two, zero_gap):
        with tiny_model.replaying(z.run), torch.no_grad():
            neutral = tiny_model.denoiser(*z.args, **z.kwargs)
        neutral = (neutral[0] if isinstance(neutral, tuple) else getattr(neutral, "sample", neutral)).float()
        torch.testing.assert_close(z.target, neutral, atol=1e-5, rtol=0)
        torch.testing.assert_close(b.target - neutral, 2 * (a.target - neutral), atol=1e-5, rtol=1e-4)
    assert max(float((a.target - n.target).abs().max()) for a, n in zip(one, zero_gap)) > 1e-4


def test_scale_zero_is_the_unsteered_run_bit_for_bit(tiny_model, slider):
    plain = tiny_model.generate(["a song", "a song"], seeds=[5, 5]).audio
    with slider.apply(tiny_model, 0.0):
        zero = tiny_model.generate(["a song", "a song"], seeds=[5, 5]).audio
    with slider.apply(tiny_model, [0.0, 2.0]):
        mixed = tiny_model.generate(["a song", "a song"], seeds=[5, 5]).audio
    assert torch.equal(zero, plain)
    assert torch.equal(mixed[0], plain[0])
    assert not torch.allclose(mixed[1], plain[1], atol=1e-4)        # the other sample is steered
    with slider.apply(tiny_model, 2.0):
        alone = tiny_model.generate(["a song", "a song"], seeds=[5, 5]).audio
    torch.testing.assert_close(alone[1], mixed[1], atol=1e-6, rtol=0)   # a per-sample scale is the scale


def test_a_localized_slider_changes_only_its_layers_weights(tiny_model, slider):
    denoiser = tiny_model.denoiser
    path = tiny_model.layers[1].path.split(".", 1)[1]                 # relative to the denoiser
    assert slider.layers == [1] and slider.target_modules == projections(tiny_model, [1])
    assert all(t.startswith(path + ".") for t in slider.target_modules) and len(slider.target_modules) >= 3
    before = linear_weights(denoiser)
    state = {k: v.clone() for k, v in denoiser.state_dict().items()}
    with slider.apply(tiny_model, 1.0):
        inside = linear_weights(denoiser)
    changed = sorted(k for k in before if not torch.equal(before[k], inside[k]))
    assert changed == sorted(slider.target_modules)
    after = denoiser.state_dict()
    assert list(after) == list(state) and all(torch.equal(after[k], state[k]) for k in state)   # restored
    assert "peft_config" not in vars(denoiser)


def test_the_model_is_restored_after_an_error_and_other_hooks_survive(tiny_model, slider):
    denoiser = tiny_model.denoiser
    types_before = {n: type(m) for n, m in denoiser.named_modules()}
    grads = {n: p.requires_grad for n, p in denoiser.named_parameters()}
    theirs = tiny_model.layers[0].module.register_forward_hook(lambda *a: None)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            with slider.apply(tiny_model, 1.0):
                raise RuntimeError("boom")
        assert {n: type(m) for n, m in denoiser.named_modules()} == types_before
        assert {n: p.requires_grad for n, p in denoiser.named_parameters()} == grads
        assert len(tiny_model.layers[0].module._forward_hooks) == 1
    finally:
        theirs.remove()


def test_save_load_round_trip_equals(tmp_path, tiny_model, slider):
    folder = slider.save(tmp_path / "tempo-slider")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "slider.safetensors"]
    again = load_slider(folder)
    assert again.config() == slider.config()
    assert set(again.weights) == set(slider.weights)
    assert all(torch.equal(again.weights[k], slider.weights[k]) for k in slider.weights)
    with slider.apply(tiny_model, [1.5]):
        a = tiny_model.generate("a song", seeds=3).audio
    with again.apply(tiny_model, [1.5]):
        b = tiny_model.generate("a song", seeds=3).audio
    assert torch.equal(a, b)
    card = (folder / "README.md").read_text()
    assert "concept slider" in card and "rank-4" in card and "load_slider" in card
    assert ConceptSlider.load(folder).config() == slider.config()


def test_bad_folders_and_inputs_are_refused_by_name(tmp_path, tiny_model, models, slider):
    folder = slider.save(tmp_path / "s")
    config = json.loads((folder / "config.json").read_text())
    config["colour"] = "red"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(TadaError, match="colour"):
        load_slider(folder)
    with pytest.raises(TadaError, match="2 scales for a batch of 3"):
        with slider.apply(tiny_model, [0.0, 1.0]):
            tiny_model.generate(["a", "b", "c"], seeds=[0, 0, 0])
    with pytest.raises(TadaError, match="trained on model 'tiny-stable-audio'"):
        with slider.apply(models("tada-organism"), 1.0):
            pass
    with pytest.raises(TadaError, match="scale must be finite"):
        with slider.apply(tiny_model, float("nan")):
            pass
    with pytest.raises(TadaError, match="rank must be a positive integer"):
        SliderTraining(rank=0)
    with pytest.raises(TadaError, match="one slider at a time"):
        with slider.apply(tiny_model, 1.0), slider.apply(tiny_model, 1.0):
            pass


def test_sliders_in_the_benchmark(tmp_path, tiny_model, slider):
    from tada_core.evaluation.benchmark.methods import Context, MethodUnavailable, make_method
    from tada_core.concepts import Concept

    slider.save(tmp_path / "tiny-stable-audio-tempo-slider")
    ctx = Context(adapter=tiny_model, concept=Concept("tempo", "a fast {base}", "a slow {base}"), items=TRIPLES,
                  functional=[1], settings=tiny_model.resolve_settings(None), fit_seeds=(0, 1, 2, 3),
                  sliders=str(tmp_path / "{model}-{concept}-{kind}"))
    method = make_method("sliders-f")
    method.setup(ctx)
    assert method.layers == [1] and method.max_strength == 2.0 and method.hyperparameters()["rank"] == 4
    plain = tiny_model.generate(["a song", "a song"], seeds=[5, 5]).audio
    with method.apply(ctx, [0, 0], [0.0, 2.0]):
        out = tiny_model.generate(method.prompts(ctx, [0, 0]), seeds=[5, 5]).audio
    assert torch.equal(out[0], plain[0]) and not torch.allclose(out[1], plain[1], atol=1e-4)
    with pytest.raises(MethodUnavailable, match="tada slider train --concept tempo --layers all"):
        make_method("sliders").setup(ctx)
    ctx.functional = [2]
    with pytest.raises(MethodUnavailable, match=r"adapts layers \[1\], not \[2\]"):
        make_method("sliders-f").setup(ctx)


def test_cli_trains_generates_and_pushes_a_slider(cli, tmp_path):
    out = tmp_path / "tempo-slider"
    code, text, err = cli("slider", "train", "--model", "tiny-stable-audio", "--concept", "tempo", "--layers", "1",
                          "--prompts", "2", "--seeds", "0", "--train-steps", "5", "--steps", "3", "--out", out)
    assert code == 0, err
    assert "slider on layers [1]" in text and "mean loss" in text
    config = json.loads((out / "config.json").read_text())
    assert config["layers"][0]["index"] == 1 and config["training"]["steps"] == 5 and config["training"]["seeds"] == [0]
    assert config["command"] and "slider train" in config["command"]
    code, text, err = cli("slider", "train", "--model", "tiny-stable-audio", "--concept", "tempo", "--layers", "1",
                          "--out", out)
    assert code == 0 and "already holds a slider" in err          # kept, not retrained
    code, text, err = cli("slider", "generate", out, "--prompt", "a song", "--scale", "-1", "1", "--steps", "3",
                          "--out", tmp_path / "wav")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "wav").iterdir()) == ["scale_-1.wav", "scale_0.wav", "scale_1.wav"]
    code, text, err = cli("push", out, "--repo", "tada-org/tempo-slider", "--dry-run")
    assert code == 0 and "slider.safetensors" in text
    code, _, err = cli("slider", "train", "--model", "tiny-stable-audio", "--concept", "tempo", "--layers", "x",
                       "--out", tmp_path / "bad")
    assert code == 2 and "'functional', 'all' or 0-based layer indices" in err
