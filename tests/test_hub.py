"""Artifact format, validation, Hub cache loading, push dry run, index and importer; all offline."""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from tada_core import TadaError
from tada_core.artifacts.hub import build_index, pull, push, read_index
from tada_core.artifacts.sae import validate_sae_folder
from tada_core.artifacts.vectors import SteeringVector, load_vector

ROOT = Path(__file__).resolve().parents[1]


def make_vector(model, layers=(0, 2), per_step_layer=2, steps=4, concept="tempo"):
    g = torch.Generator().manual_seed(0)
    vecs = {}
    for layer in layers:
        width = model.layers[layer].width
        shape = (steps, width) if layer == per_step_layer else (width,)
        vecs[layer] = torch.randn(shape, generator=g)
    return SteeringVector(vectors=vecs, concept=concept, model=model.name,
                          layer_paths={layer: model.layers[layer].path for layer in layers},
                          prompts={"positive": ["a fast song"], "negative": ["a slow song"]},
                          alpha_range=(-4.0, 4.0), command="test")


def test_save_load_roundtrip_is_exact_and_applies(tmp_path, models):
    m = models("tiny-stable-audio")
    vec = make_vector(m)
    folder = vec.save(tmp_path / "tempo-caa")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "steering.safetensors"]
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: tada-steer") and "load_vector" in card
    back = load_vector(folder)
    assert back.layers == [0, 2] and back.concept == "tempo" and back.alpha_range == (-4.0, 4.0)
    assert all(torch.equal(back.vectors[k], vec.vectors[k]) for k in vec.vectors)
    assert back.layer_paths == vec.layer_paths and back.prompts == vec.prompts
    base = m.generate(["a fast song"] * 2, seeds=[0, 0]).audio
    with back.apply(m, alpha=[0.0, 3.0]):
        pair = m.generate(["a fast song"] * 2, seeds=[0, 0]).audio
    assert torch.equal(pair[0], base[0]) and not torch.equal(pair[1], base[0])


def test_wrong_model_width_or_path_is_refused(tmp_path, models):
    vec = make_vector(models("tiny-stable-audio"))
    with pytest.raises(TadaError, match="made for model 'tiny-stable-audio'"):
        vec.check_compatible(models("tiny-ace-step"))
    m = models("tiny-ace-step")
    wide = SteeringVector(vectors={0: torch.ones(m.layers[0].width + 1)}, concept="x", model=m.name,
                          layer_paths={0: m.layers[0].path})
    with pytest.raises(TadaError, match="has width"):
        wide.check_compatible(m)
    moved = SteeringVector(vectors={0: torch.ones(m.layers[0].width)}, concept="x", model=m.name,
                           layer_paths={0: "transformer.elsewhere"})
    with pytest.raises(TadaError, match="was 'transformer.elsewhere'"):
        moved.check_compatible(m)
    gone = SteeringVector(vectors={99: torch.ones(m.layers[0].width)}, concept="x", model=m.name,
                          layer_paths={99: "x"})
    with pytest.raises(TadaError, match="does not exist"):
        gone.check_compatible(m)


def test_truncated_corrupted_and_inconsistent_files(tmp_path, models):
    folder = make_vector(models("tiny-stable-audio")).save(tmp_path / "v")
    data = (folder / "steering.safetensors").read_bytes()
    (folder / "steering.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(TadaError, match="truncated or corrupted"):
        load_vector(folder)
    (folder / "steering.safetensors").write_bytes(data)
    config = json.loads((folder / "config.json").read_text())
    config["layers"][0]["shape"] = [3]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(TadaError, match="config.json says"):
        load_vector(folder)
    config["layers"][0]["shape"] = [models("tiny-stable-audio").layers[0].width]
    config["prompts"]["positive"].append("edited")
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(TadaError, match="prompts_sha256"):
        load_vector(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(TadaError, match="not valid JSON"):
        load_vector(folder)
    with pytest.raises(TadaError, match="neither a folder nor a Hub repo id"):
        load_vector("no/such/path")


def _populate_cache(cache: Path, repo: str, folder: Path, revision: str = "main") -> str:
    """Lay ``folder`` out as the Hugging Face cache does after a download of ``repo``."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    base = cache / f"models--{repo.replace('/', '--')}"
    shutil.copytree(folder, base / "snapshots" / commit)
    (base / "refs").mkdir(parents=True)
    (base / "refs" / revision).write_text(commit)
    return commit


def test_load_by_repo_id_from_the_cache_offline(tmp_path, models, monkeypatch):
    import huggingface_hub

    assert huggingface_hub.constants.HF_HUB_OFFLINE
    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    vec = make_vector(models("tiny-stable-audio"))
    _populate_cache(cache, "tada-org/tempo-caa", vec.save(tmp_path / "src"))
    back = load_vector("tada-org/tempo-caa")
    assert all(torch.equal(back.vectors[k], vec.vectors[k]) for k in vec.vectors)
    assert pull("tada-org/tempo-caa").is_dir()
    with pytest.raises(TadaError, match="not in the local Hugging Face cache"):
        load_vector("tada-org/not-downloaded")
    with pytest.raises(TadaError, match="not in the local Hugging Face cache"):
        load_vector("tada-org/tempo-caa", revision="v2")


def test_push_dry_run_lists_files_and_validates(tmp_path, models, cli):
    folder = make_vector(models("tiny-stable-audio")).save(tmp_path / "v")
    files = push(folder, "tada-org/v", dry_run=True)
    assert [name for name, _ in files] == ["README.md", "config.json", "steering.safetensors"]
    assert all(size > 0 for _, size in files)
    code, out, err = cli("push", folder, "--repo", "tada-org/v", "--dry-run")
    assert code == 0 and "would upload steering.safetensors" in out, err
    code, out, err = cli("push", folder, "--repo", "tada-org/v")      # offline: a message, not a traceback
    assert code == 2 and "cannot upload to tada-org/v" in err and "Traceback" not in err
    with pytest.raises(TadaError, match="org/name"):
        push(folder, "no-slash", dry_run=True)
    (folder / "README.md").unlink()
    with pytest.raises(TadaError, match="model card"):
        push(folder, "tada-org/v", dry_run=True)


def test_index_and_cli_list(tmp_path, models, cli):
    root = tmp_path / "vectors"
    make_vector(models("tiny-stable-audio"), concept="tempo").save(root / "tempo")
    make_vector(models("tiny-ace-step"), layers=(1,), per_step_layer=None, concept="mood").save(root / "mood")
    rows = build_index(root)
    assert [(r["name"], r["concept"], r["model"], r["layers"]) for r in rows] == [
        ("mood", "mood", "tiny-ace-step", [1]), ("tempo", "tempo", "tiny-stable-audio", [0, 2])]
    assert read_index(root) == rows
    code, out, err = cli("list", root)
    assert code == 0 and "concept=mood" in out and "concept=tempo" in out, err
    (root / "broken").mkdir()
    (root / "broken" / "steering.safetensors").write_bytes(b"not safetensors")
    (root / "broken" / "config.json").write_text("{}")
    code, out, err = cli("list", root)      # one bad artifact does not abort the listing
    assert code == 2 and "concept=mood" in out and "broken" in err
    code, out, err = cli("list", tmp_path / "missing")
    assert code == 2 and "not a folder of artifacts" in err


def test_sae_folder_in_sparsify_layout(tmp_path):
    hp = tmp_path / "sae" / "transformer.transformer_blocks.6.attn2"
    hp.mkdir(parents=True)
    from safetensors.torch import save_file

    d, m = 8, 32
    (hp / "cfg.json").write_text(json.dumps({"expansion_factor": 4, "k": 4, "d_in": d, "normalize_decoder": True}))
    save_file({"encoder.weight": torch.randn(m, d), "encoder.bias": torch.zeros(m), "W_dec": torch.randn(m, d),
               "b_dec": torch.zeros(d)}, str(hp / "sae.safetensors"))
    assert validate_sae_folder(tmp_path / "sae")["transformer.transformer_blocks.6.attn2"].k == 4
    save_file({"encoder.weight": torch.randn(m, d)}, str(hp / "sae.safetensors"))
    with pytest.raises(TadaError, match="lacks"):
        validate_sae_folder(tmp_path / "sae")


def test_nothing_in_the_repo_loads_a_pickle():
    offenders = []
    for path in list((ROOT / "tada_core").rglob("*.py")) + [ROOT / "app.py"]:
        text = path.read_text(encoding="utf-8")
        for pattern in (r"torch\.load\(", r"pickle\.loads?\(", r"np\.load\(.*allow_pickle=True", "trust_remote_code"):
            if re.search(pattern, text):
                offenders.append((path.name, pattern))
    assert offenders == []



def test_every_shipped_artifact_validates_and_is_indexed():
    from tada_core.artifacts.hub import scan

    for root in (ROOT / "vectors", ROOT / "saes"):
        assert scan(root) == read_index(root), f"{root}/index.json is stale: run `tada list`"


def test_vectors_apply_with_the_renorm_they_were_validated_with(models, tmp_path):
    m = models("tiny-ace-step")
    v = make_vector(m, layers=(0,), per_step_layer=-1)

    def run(**kw):
        with v.apply(m, alpha=[0.0, 3.0], **kw):
            return m.generate(["a song"] * 2, seeds=[0, 0]).audio

    on, off = run(use_renorm=True), run(use_renorm=False)
    assert not torch.allclose(on[1], off[1], atol=1e-4)
    assert v.renorm is None and torch.equal(run(), on)          # no record: ReNorm on, the paper's default
    v.renorm = False
    assert torch.equal(run(), off)                              # recorded: what its alpha range was validated with
    again = load_vector(v.save(tmp_path / "v"))
    assert again.renorm is False and "without ReNorm" in (tmp_path / "v" / "README.md").read_text()
    with pytest.raises(TadaError, match="renorm must be true, false or null"):
        SteeringVector(vectors=v.vectors, concept="x", model=m.name, layer_paths=v.layer_paths, renorm="yes")


def test_vector_config_with_an_unknown_field_is_refused_by_name(tmp_path, models):
    folder = make_vector(models("tiny-stable-audio")).save(tmp_path / "v")
    config = json.loads((folder / "config.json").read_text())
    assert load_vector(folder).config() == config          # every field it writes, it reads back
    config["strength_schedule"] = "cosine"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(TadaError, match="does not know: strength_schedule"):
        load_vector(folder)


def test_provenance_is_what_the_caller_gives_never_the_running_process(tmp_path, models, cli, monkeypatch):
    """Saved from Python, a vector records no command (whatever sys.argv says); the ``tada`` command records its own
    command line."""
    import sys

    monkeypatch.setattr(sys, "argv", ["pytest", "--secret-flag"])
    vec = make_vector(models("tiny-stable-audio"))
    vec.command = None
    folder = vec.save(tmp_path / "api")
    assert json.loads((folder / "config.json").read_text())["command"] is None
    card = (folder / "README.md").read_text()
    assert "Made with the Python API" in card and "secret-flag" not in card
    code, _, err = cli("caa", "--model", "tiny-stable-audio", "--concept", "tempo", "--layers", "0", "1",
                       "--seeds", "0", "--steps", "2", "--out", tmp_path / "cli")
    assert code == 0, err
    command = load_vector(tmp_path / "cli").command
    assert command.startswith("tada caa --model tiny-stable-audio --concept tempo") and "secret" not in command


def test_sae_artifact_round_trips_exactly_and_refuses_unknown_fields(tmp_path):
    from tada_core.artifacts.sae import SaeArtifact, SaeConfig, TopKSAE

    committed = json.loads((ROOT / "saes" / "tada-organism-topk" / "config.json").read_text())
    assert SaeArtifact.from_dict(committed).to_dict() == committed
    with pytest.raises(TadaError, match="does not know: colour"):
        SaeArtifact.from_dict({**committed, "colour": "red"})
    with pytest.raises(TadaError, match="lacks epochs"):
        SaeArtifact.from_dict({k: v for k, v in committed.items() if k != "epochs"})
    torch.manual_seed(0)
    saes = {1: TopKSAE(SaeConfig(d_in=8, expansion_factor=2, k=2)), 3: TopKSAE(SaeConfig(d_in=8, expansion_factor=2, k=2))}
    art = SaeArtifact(base_model="tiny-stable-audio", layers=[1, 3],
                      hookpoints={"1": "transformer.transformer_blocks.1.attn2", "3": "transformer.transformer_blocks.3.attn2"},
                      cache_tokens=100, epochs=1, sweep={"1": [], "3": []}, command="tada sae train --out x")
    folder = art.save(tmp_path / "sae", saes, table="| m | k |")
    assert SaeArtifact.read(folder) == art
    back = TopKSAE.load_many(folder)
    assert torch.equal(back["transformer.transformer_blocks.3.attn2"].W_dec, saes[3].W_dec)
    assert "Made by: `tada sae train --out x`" in (folder / "README.md").read_text()
    with pytest.raises(TadaError, match="no SAE given for layers \\[3\\]"):
        art.save(tmp_path / "sae2", {1: saes[1]}, table="")


def test_layer_scan_json_round_trips_and_is_checked(tmp_path):
    from tada_core.methods.diffmean import LayerScan

    scan = LayerScan("tempo", "BPM", 2.0, 120.0, {0: 130.0, 1: 125.0}, {0: 110.0, 1: 122.0}, 8, seeds=[0, 1],
                     prompts=["a song"])
    path = scan.save(tmp_path / "scan.json")
    d = json.loads(path.read_text())
    assert d["best_layer"] == 0 and d["effect"] == {"0": 20.0, "1": 3.0}
    assert LayerScan.load(path) == scan
    with pytest.raises(TadaError, match="unknown fields note"):
        LayerScan.from_dict({**d, "note": "x"})
    with pytest.raises(TadaError, match="missing fields seeds"):
        LayerScan.from_dict({k: v for k, v in d.items() if k != "seeds"})
    with pytest.raises(TadaError, match="do not follow from up and down"):
        LayerScan.from_dict({**d, "best_layer": 1})
