"""The TADA reference code's artifacts: CAA pickles in every layout it writes, its SAE folders, hostile files."""

import json
import pickle

import numpy as np
import pytest
import torch

from tada_core import TadaError
from tada_core.methods.features import load_saes
from tada_core.artifacts.reference import import_steer_audio
from tada_core.artifacts.sae import TopKSAE
from tada_core.artifacts.vectors import load_vector

from .steer_audio_fixtures import LAYOUTS, write_reference_sae, write_reference_vectors


def raw(path):
    with open(path, "rb") as f:   # the test's own plain unpickling of a file it wrote itself
        return pickle.load(f)


@pytest.mark.parametrize("layout, model, first_path", [
    ("ace-v1", "ACE-Step/ACE-Step-v1-3.5B", "transformer_blocks.6.cross_attn"),
    ("ace-v1-cond-only", "ACE-Step/ACE-Step-v1-3.5B", "transformer_blocks.6.cross_attn"),
    ("ace-v1-turbo", "ACE-Step/ACE-Step-v1-3.5B", "transformer_blocks.6.cross_attn"),
    ("ace-v1-double-guidance", "ACE-Step/ACE-Step-v1-3.5B", "transformer_blocks.7.cross_attn"),
    ("stable-audio", "stabilityai/stable-audio-open-1.0", "transformer.transformer_blocks.11.attn2"),
    ("audioldm2-large", "cvssp/audioldm2-large", "unet.up_blocks.1.attentions.5.transformer_blocks.0.attn2"),
])
def test_every_reference_layout_imports_exactly(tmp_path, layout, model, first_path):
    pkl = write_reference_vectors(tmp_path, layout)
    data = raw(pkl)
    layers, steps, passes, _ = LAYOUTS[layout]
    vec = import_steer_audio(pkl, tmp_path / "config.json")
    assert vec.model == model and vec.concept == "tempo" and vec.method == "caa"
    assert vec.layer_paths[vec.layers[0]] == first_path
    assert vec.extra["imported_from"] == "luk-st/steer-audio" and vec.extra["unit_norm"]
    assert vec.extra["source_config"]["save_all_cfg_passes"] == (passes is not None)
    for key in layers:
        index = int(key[2:]) if key.startswith("tf") else \
            [i for i, p in vec.layer_paths.items() if p == key[1:]][0]
        got = vec.vectors[index]
        for step in range(steps):
            want = torch.from_numpy(data[(step, 0) if passes else step][key][0])
            assert torch.equal(got if steps == 1 else got[step], want)   # bit-exact, conditional pass
        assert got.shape == ((layers[key],) if steps == 1 else (steps, layers[key]))
    # the folder round-trips with its provenance
    again = load_vector(vec.save(tmp_path / "imported"))
    assert again.extra["layout"] == vec.extra["layout"] and again.model == model


def test_cfg_pass_choice(tmp_path):
    pkl = write_reference_vectors(tmp_path / "a", "ace-v1")
    data = raw(pkl)
    un = import_steer_audio(pkl, model="ace-step-v1", cfg_pass="uncond")
    assert un.extra["layout"]["cfg_pass"] == 1
    assert torch.equal(un.vectors[7][2], torch.from_numpy(data[(2, 1)]["tf7"][0]))
    three = write_reference_vectors(tmp_path / "b", "ace-v1-double-guidance")
    assert import_steer_audio(three, cfg_pass="uncond").extra["layout"]["cfg_pass"] == 2   # pass 1 is text-only
    assert torch.equal(import_steer_audio(three, cfg_pass=1).vectors[7][0],
                       torch.from_numpy(raw(three)[(0, 1)]["tf7"][0]))
    only_cond = write_reference_vectors(tmp_path / "c", "ace-v1-cond-only")
    with pytest.raises(TadaError, match="only the conditional pass"):
        import_steer_audio(only_cond, cfg_pass="uncond")
    with pytest.raises(TadaError, match="cfg_pass must be one of"):
        import_steer_audio(only_cond, cfg_pass="both")


def test_v1_vectors_are_never_applied_to_ace_step_15(tmp_path, models, cli):
    pkl = write_reference_vectors(tmp_path, "ace-v1")
    with pytest.raises(TadaError, match="ACE-Step v1.*cannot be imported as a vector of 'ace-step'"):
        import_steer_audio(pkl, model="ace-step")
    code, out, err = cli("import-steer-audio", pkl, "--out", tmp_path / "v1")
    assert code == 0, err
    assert "ACE-Step/ACE-Step-v1-3.5B" in out and "no model this project loads can apply it" in err
    vec = load_vector(tmp_path / "v1")
    assert vec.extra["source_config"]["method"] == "standard_caa"   # config.json beside the pickle was found
    with pytest.raises(TadaError, match=r"ACE-Step v1 \(3.5B.*width 2560.*'tiny-ace-step' has layer 6|"
                                        r"ACE-Step v1 \(3.5B.*width 2560.*'tiny-ace-step' has 4 layers"):
        vec.check_compatible(models("tiny-ace-step"))


def test_imported_vectors_steer_their_model(tmp_path, models):
    m = models("tiny-stable-audio")
    per_step = import_steer_audio(write_reference_vectors(tmp_path / "a", "tiny-stable-audio"),
                                  model="tiny-stable-audio")
    turbo = import_steer_audio(write_reference_vectors(tmp_path / "b", "tiny-stable-audio-turbo"),
                               model="tiny-stable-audio")
    assert per_step.vectors[1].shape == (3, 96) and turbo.vectors[1].shape == (96,)
    prompts, seeds = ["a song"] * 2, [0, 0]
    for vec, steps in ((per_step, 3), (turbo, 2)):
        with vec.apply(m, alpha=[0.0, 4.0]):
            out = m.generate(prompts, seeds=seeds, steps=steps).audio
        plain = m.generate(prompts[:1], seeds=seeds[:1], steps=steps).audio
        assert torch.allclose(out[0], plain[0], atol=1e-5) and not torch.allclose(out[1], plain[0], atol=1e-3)
    with pytest.raises(TadaError, match="per-step vectors for 3 steps"), per_step.apply(m, alpha=1.0):
        m.generate(prompts[:1], seeds=[0], steps=4)
    with pytest.raises(TadaError, match="do not exist in 'tiny-audioldm2'"):
        import_steer_audio(tmp_path / "a" / "sv.pkl", model="tiny-audioldm2")


class Sneaky:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_hostile_and_foreign_pickles_are_refused(tmp_path, capsys):
    def write(name, obj):
        (tmp_path / name).write_bytes(pickle.dumps(obj))
        return tmp_path / name

    with pytest.raises(TadaError, match="builtins.print.*refused"):
        import_steer_audio(write("evil.pkl", {0: {"tf2": [Sneaky()]}}))
    assert "must never run" not in capsys.readouterr().out
    with pytest.raises(TadaError, match="torch.*refused.*torch tensors"):
        import_steer_audio(write("torch.pkl", {0: torch.ones(3)}))
    (tmp_path / "cut.pkl").write_bytes(pickle.dumps({0: {"tf2": [np.ones(3)]}})[:20])
    with pytest.raises(TadaError, match="not a readable pickle"):
        import_steer_audio(tmp_path / "cut.pkl")
    with pytest.raises(TadaError, match="unknown layer key 'block7'"):
        import_steer_audio(write("odd.pkl", {0: {"block7": [np.ones(3, np.float32)]}}))
    with pytest.raises(TadaError, match="tf6 has width 3; .* width 2560"):
        import_steer_audio(write("narrow.pkl", {0: {"tf6": [np.ones(3, np.float32)]}}))
    with pytest.raises(TadaError, match="pos_vectors.pkl"):
        import_steer_audio(write_reference_vectors(tmp_path / "r", "ace-v1-turbo").parent / "pos_vectors.pkl")
    with pytest.raises(TadaError, match="steps must be consecutive"):
        import_steer_audio(write("gap.pkl", {0: {"tf6": [np.ones(2560, np.float32)]},
                                             2: {"tf6": [np.ones(2560, np.float32)]}}))
    with pytest.raises(TadaError, match="holds 2 vectors"):
        import_steer_audio(write("twice.pkl", {0: {"tf6": [np.ones(2560, np.float32)] * 2}}))


# --------------------------------------------------------------------------- SAEs
def reference_math(folder, h, selection="token"):
    """The reference's Sae after load_from_disk (per-token TopK), written out from its code."""
    cfg = json.loads((folder / "cfg.json").read_text())
    from safetensors.torch import load_file

    t = load_file(str(folder / "sae.safetensors"))
    x, mean, std = h, None, None
    if cfg["input_unit_norm"]:
        mean = x.mean(dim=-1, keepdim=True)
        x = x - mean
        std = x.std(dim=-1, keepdim=True)
        x = x / (std + 1e-5)
    pre = torch.relu((x - t["b_dec"]) @ t["encoder.weight"].T + t["encoder.bias"])
    if selection == "token":
        acts, idx = pre.topk(cfg["k"], sorted=False)
        latents = torch.zeros_like(pre).scatter_(-1, idx, acts)
    else:   # BatchTopK, the reference's training-time select_topk
        flat = pre.flatten()
        a, i = flat.topk(cfg["k"] * pre.shape[0], sorted=False)
        latents = torch.zeros_like(flat).scatter(-1, i, a).reshape(pre.shape)
    y = latents @ t["W_dec"] + t["b_dec"]
    return latents, (y * std + mean if cfg["input_unit_norm"] else y)


@pytest.mark.parametrize("unit_norm", [False, True])
def test_reference_sae_folders_compute_the_reference_math(tmp_path, unit_norm):
    hp = write_reference_sae(tmp_path / "sae", "transformer_blocks.6.cross_attn", 32, input_unit_norm=unit_norm)
    sae = TopKSAE.load(hp)
    assert sae.cfg.batch_topk and sae.cfg.input_unit_norm == unit_norm
    h = torch.randn(50, 32) * 3 + 1
    for selection in ("token", "batch"):
        latents, recon = reference_math(hp, h, selection)
        assert torch.allclose(sae.dense_latents(h, selection), latents, atol=1e-5)
        assert torch.allclose(sae.reconstruct(h, selection), recon, atol=1e-4)
    assert (sae.dense_latents(h) > 0).sum(1).le(sae.cfg.k).all()


def test_reference_hookpoint_names(tmp_path, models):
    m = models("tiny-stable-audio")
    write_reference_sae(tmp_path / "sa", "transformer_blocks.2.attn2", m.layers[2].width)
    assert list(load_saes(m, tmp_path / "sa")) == [2]
    write_reference_sae(tmp_path / "v1", "transformer_blocks.6.cross_attn", 32)
    with pytest.raises(TadaError, match="names a layer of ACE-Step v1"):
        load_saes(models("tiny-ace-step"), tmp_path / "v1")
