"""Localization (Eq. 9): the formula, batching, resuming, outputs, CLI."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from tada_core import GenerationSettings, patch
from tada_core.cli import main
from tada_core.concepts import Concept
from tada_core.errors import TadaError
from tada_core.methods.localize import (
    Localization,
    functional_layers,
    impact,
    localize,
    read_localization,
    write_summary,
)

from .conftest import Energy

CONCEPT = Concept("loud", "a loud {base}", "a quiet {base}")
PAIRS = [("a loud song", "a quiet song"), ("a loud tune", "a quiet tune"), ("loud drums", "quiet drums")]


class Interrupting(Energy):
    def __init__(self, after):
        self.calls, self.after = 0, after

    def measure(self, audio, sample_rate, concept):
        self.calls += 1
        if self.calls > self.after:
            raise KeyboardInterrupt
        return super().measure(audio, sample_rate, concept)


def same(a, b):
    """Equal results, NaN impacts included."""
    return json.dumps(a.to_dict()) == json.dumps(b.to_dict())


def test_eq9_on_constructed_similarities():
    # sim(c) = 0.9, sim(c~) = 0.1: a layer that brings the patched run to 0.5 has impact 0.5
    assert impact(0.5, 0.9, 0.1) == pytest.approx(0.5)
    assert np.allclose(impact(np.array([0.1, 0.9, 0.3, 1.0]), 0.9, 0.1), [0.0, 1.0, 0.25, 1.125])
    # affine rescaling of the scorer leaves I unchanged
    assert impact(3 * 0.5 + 7, 3 * 0.9 + 7, 3 * 0.1 + 7) == pytest.approx(0.5)
    assert math.isnan(impact(0.5, 0.2, 0.2)) and math.isnan(impact(0.5, 0.1, 0.2))
    # the reference's published values are clipped to [0, 1]; on request only
    assert np.allclose(impact(np.array([0.0, 0.9, 1.0]), 0.9, 0.1, clip=True), [0.0, 1.0, 1.0])
    assert impact(0.05, 0.9, 0.1, clip=True) == 0.0 and impact(0.05, 0.9, 0.1) < 0
    assert functional_layers({0: 0.1, 1: 0.8, 2: 0.35, 3: float("nan")}) == [1, 2]
    assert functional_layers({0: 0.1, 1: 0.2}) == [1]
    assert functional_layers({0: 0.05, 1: -0.2}) == []   # no single layer carries the concept
    noisy = Localization("x", "m", "s", [0, 1], 8, 0.5, 0.4, {0: 0.5, 1: 0.4}, {0: 1.0, 1: 0.0}, gain_se=0.2)
    assert not noisy.reliable and noisy.functional_layers() == []
    clear = dataclasses.replace(noisy, gain_se=0.01)
    assert clear.reliable and clear.functional_layers() == [0]


def test_sweep_is_batched_and_each_mean_is_an_independent_generation(models):
    model = models("tiny-stable-audio")
    calls = []
    original = model.generate

    def counting(prompts, **kw):
        calls.append(len(prompts))
        return original(prompts, **kw)

    model.generate = counting
    try:
        r = localize(model, CONCEPT, PAIRS, Energy(), seeds=[0, 1], layers=[0, 2],
                     settings=GenerationSettings(batch_size=4), progress=False)
    finally:
        del model.generate
    # 4 conditions (c, c~, patch 0, patch 2) x ceil(6 / 4) batches; never one clip per call unless the remainder
    assert sorted(calls) == sorted([4, 2] * 4)
    assert r.n == 6 and r.layers == [0, 2]
    energy = Energy()

    def direct(prompts, layer=None, targets=None):
        """The similarities of the same clips made one at a time, outside the sweep (prompts x seeds)."""
        sims = []
        for i, (prompt, seed) in enumerate((p, s) for p in prompts for s in (0, 1)):
            if layer is None:
                audio = original(prompt, seeds=seed).audio
            else:
                with patch(model, [layer], targets[i // 2]):
                    audio = original(prompt, seeds=seed).audio
            sims.append(energy.similarity(audio, model.sample_rate, CONCEPT)[0])
        return np.array(sims)

    pos, neg = [a for a, _ in PAIRS], [b for _, b in PAIRS]
    sims_pos, sims_neg = direct(pos), direct(neg)
    assert r.sim_pos == pytest.approx(sims_pos.mean(), rel=1e-4)
    assert r.sim_neg == pytest.approx(sims_neg.mean(), rel=1e-4)
    # the standard error of the paired gain: clip by clip (same pair, same seed), sample std over sqrt(n)
    gain = sims_pos - sims_neg
    assert r.gain_se == pytest.approx(gain.std(ddof=1) / np.sqrt(len(gain)), rel=1e-2)
    for layer in (0, 2):
        patched = direct(neg, layer, pos).mean()   # P_c~ with layer l's keys and values from P_c
        assert r.sim_patched[layer] == pytest.approx(patched, rel=1e-4)
        assert r.impact[layer] == pytest.approx(impact(patched, r.sim_pos, r.sim_neg), rel=1e-3, nan_ok=True)
    assert r.sim_patched[0] != pytest.approx(r.sim_neg, rel=1e-4)   # patching did something


def test_resumed_sweep_equals_uninterrupted(models, tmp_path):
    model = models("tada-organism")
    kw = dict(seeds=[0, 1], layers=[1, 4, 7], settings=GenerationSettings(batch_size=4))
    full = localize(model, CONCEPT, PAIRS, Energy(), out=tmp_path / "full", progress=False, **kw)
    from tada_core.organism.model import checkpoint_path

    # no machine-specific paths in the record: a committed sweep resumes in any checkout
    assert str(checkpoint_path()) not in (tmp_path / "full" / "sweep.json").read_text()
    with pytest.raises(KeyboardInterrupt):
        localize(model, CONCEPT, PAIRS, Interrupting(after=4), out=tmp_path / "cut", progress=False, **kw)
    lines = (tmp_path / "cut" / "scores.jsonl").read_text().splitlines()
    assert len(lines) == 4  # every finished batch was kept
    with (tmp_path / "cut" / "scores.jsonl").open("a") as f:
        f.write('{"condition": "patch:4", "batch": 1, "si')  # a line cut short by a crash
    resumed = Interrupting(after=10 ** 6)
    again = localize(model, CONCEPT, PAIRS, resumed, out=tmp_path / "cut", progress=False, **kw)
    assert resumed.calls == 5 * 2 - 4  # only the missing batches ran
    assert same(again, full)
    assert (tmp_path / "cut" / "scores.csv").read_text() == (tmp_path / "full" / "scores.csv").read_text()
    assert same(read_localization(tmp_path / "cut"), full)
    with pytest.raises(TadaError, match="different sweep .*seeds"):
        localize(model, CONCEPT, PAIRS, Energy(), out=tmp_path / "cut", progress=False, **{**kw, "seeds": [5]})
    # the same model name with other weights (a retrained organism): refused, never mixed in
    param = next(model.pipeline.transformer.parameters())
    saved = param.detach().clone()
    try:
        with torch.no_grad():
            param.add_(1e-3)
        with pytest.raises(TadaError, match="different sweep .*weights"):
            localize(model, CONCEPT, PAIRS, Energy(), out=tmp_path / "cut", progress=False, **kw)
    finally:
        with torch.no_grad():
            param.copy_(saved)


def test_summary_writes_table_json_and_heatmap(models, tmp_path):
    model = models("tiny-ace-step")
    results = [localize(model, Concept(n, f"{n} {{base}}", "{base}"), PAIRS[:2], Energy(), layers=[0, 1],
                        settings=GenerationSettings(batch_size=8), progress=False) for n in ("a", "b")]
    files = write_summary(results, tmp_path)
    from PIL import Image

    assert Image.open(files["png"]).size[0] > 100
    rows = files["csv"].read_text().splitlines()
    assert rows[0] == "concept,layer_0,layer_1,functional_layers,reliable" and rows[1].startswith("a,")
    assert len(json.loads(files["json"].read_text())) == 2
    # clipped on request: the table is in [0, 1], summary.json keeps the raw values
    raw = [[v for v in r.impact.values()] for r in results]
    clipped = write_summary(results, tmp_path / "clipped", clip=True)
    cells = [float(x) for row in clipped["csv"].read_text().splitlines()[1:] for x in row.split(",")[1:3] if x]
    assert cells and all(0.0 <= c <= 1.0 for c in cells)
    assert [[v for v in d["impact"].values()] for d in json.loads(clipped["json"].read_text())] == \
        [[None if v != v else v for v in row] for row in raw]


@pytest.mark.parametrize("kwargs, message", [
    (dict(pairs=[]), "no prompt pairs"),
    (dict(pairs=[("", "x")]), "must be a non-empty string"),
    (dict(seeds=[]), "seeds is empty"),
    (dict(layers=[99]), "out of range"),
])
def test_bad_sweep_input(models, kwargs, message):
    args = dict(pairs=PAIRS, seeds=[0], layers=[0])
    args.update(kwargs)
    with pytest.raises(TadaError, match=message):
        localize(models("tiny-ace-step"), CONCEPT, args.pop("pairs"), Energy(), progress=False, **args)
    with pytest.raises(TadaError, match="batch_size"):
        GenerationSettings(batch_size=0)


def test_cli_localize_on_the_shipped_model(tmp_path, capsys):
    out = tmp_path / "loc"
    argv = ["localize", "--concept", "tempo", "--concept", "drums", "--pairs", "2", "--seeds", "0", "--layers",
            "3", "5", "--steps", "4", "--duration", "2", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "tempo" in printed and (out / "heatmap.png").is_file() and (out / "impact.csv").is_file()
    r = read_localization(out / "drums")
    assert r.model == "tada-organism" and r.layers == [3, 5] and r.n == 2 and r.scorer == "organism"
    assert main(argv) == 0  # a rerun resumes: nothing left to generate, same numbers
    assert same(read_localization(out / "drums"), r)


@pytest.mark.parametrize("argv, message", [
    (["--model", "tiny-ace-step", "--concept", "tempo"], "has no built-in scorer"),
    (["--model", "tiny-ace-step", "--concept", "tempo", "--scorer", "organism"], "does not fit tiny-ace-step"),
    (["--concept", "jazz"], "unknown concept 'jazz'"),
    (["--concept", "tempo", "--scorer", "clip"], "scorer 'clip' does not fit"),
])
def test_cli_localize_refuses_a_scorer_that_does_not_fit(cli, argv, message, tmp_path):
    """Real music scored with the organism's synthetic-music measures would be silent garbage."""
    code, _, err = cli("localize", *argv, "--out", tmp_path / "x")
    assert code == 2 and message in err and "Traceback" not in err, err
