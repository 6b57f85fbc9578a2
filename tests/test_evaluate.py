"""Steering evaluation (Sec. 5.1-5.2) against hand-computed cases: the preservation distance, monotonicity,
Delta alignment, smoothness, the sweep and ablation results and their tables."""

import math

import numpy as np
import pytest
import torch

from tada_core import GenerationSettings
from tada_core.concepts import Concept
from tada_core.errors import TadaError
from tada_core.evaluation.sweeps import (AblationResult, AblationRow, SweepResult, ablation_table, alpha_sweep,
                                comparison_table, delta_alignment, intervals_ordered, layer_ablation, monotonic,
                                smoothness, sweep_table)
from tada_core.artifacts.vectors import SteeringVector
from tada_core.evaluation.benchmark.distance import MelDistance

from .conftest import Energy

CONCEPT = Concept("loud", "a loud {base}", "a quiet {base}")


def test_sweep_and_benchmark_measure_preservation_with_one_distance(models):
    """One harness: a sweep's preservation is the benchmark's distance (log-mel by default), the result says which,
    and a distance given to the sweep is the one used (a constant distance gives its constant at every alpha)."""
    from tada_core.evaluation.benchmark.distance import Distance

    class Constant(Distance):
        name = "constant"

        def __call__(self, a, b, sample_rate):
            return np.full(len(a), 7.0)

    model = models("tiny-stable-audio")
    g = torch.Generator().manual_seed(0)
    vec = SteeringVector({i: torch.randn(model.layers[i].width, generator=g) for i in range(4)}, "loud",
                         model.name, {i: model.layers[i].path for i in range(4)})
    r = alpha_sweep(model, vec, Energy(), CONCEPT, ["a song"], [2.0], seeds=[0], progress=False,
                    distance=Constant())
    assert r.distance == "constant" and r.preservation == {0.0: 7.0, 2.0: 7.0}
    assert SweepResult.from_dict(r.to_dict()).distance == "constant"
    legacy = {k: v for k, v in r.to_dict().items() if k != "distance"}
    assert SweepResult.from_dict(legacy).distance == "stft"     # sweeps saved before one harness


@pytest.mark.parametrize("values, sign, expected", [
    ([1, 2, 3], 1, True),
    ([1, 3, 2], 1, False),
    ([3, 2, 1], -1, True),       # a measure that falls as the concept grows (low_voice for "female")
    ([3, 2, 1], 1, False),
    ([1, 1, 1], 1, False),       # no movement is not monotonic
    ([0.0, 1.0, 0.99, 1.0], 1, True),   # a step back of 1% of the range is saturation, not a reversal
    ([0.0, 1.0, 0.95, 1.0], 1, False),  # 5% is a reversal
])
def test_monotonic(values, sign, expected):
    assert monotonic(values, sign) is expected


def test_monotonic_verdict_needs_ordered_intervals():
    assert intervals_ordered([(0, 1), (1.5, 2), (2.5, 3)])
    assert not intervals_ordered([(0, 1), (0.9, 2), (2.5, 3)])              # touching intervals overlap
    assert intervals_ordered([(2.5, 3), (1.5, 2), (0, 1)], sign=-1)         # a measure that falls with the concept
    assert not intervals_ordered([(0, 1), (float("nan"), 2)])
    r = sweep()
    r.measure_ci = {a: (m - 0.05, m + 0.05) for a, m in r.measure.items()}   # 0.2 apart: ordered
    assert r.monotonic and r.verdict() == "yes"
    r.measure_ci = {a: (m - 0.15, m + 0.15) for a, m in r.measure.items()}   # overlapping: the means only
    assert not r.monotonic and r.monotonic_means and r.verdict() == "means only"
    assert SweepResult.from_dict(r.to_dict()) == r
    assert "2.400 [2.250, 2.550]" in r.row()


def test_delta_alignment_is_sign_corrected_and_unclipped():
    sims = np.array([[0.0, 1.0, 3.0], [2.0, 1.0, 0.0]])   # clips x alphas (-1, 0, 2)
    d = delta_alignment([-1.0, 0.0, 2.0], sims)
    # alpha -1: -((0 - 1) + (2 - 1)) / 2 = 0; alpha 2: ((3 - 1) + (0 - 1)) / 2 = 0.5
    assert d == {-1.0: 0.0, 0.0: 0.0, 2.0: 0.5}
    assert delta_alignment([-1.0, 0.0], np.array([[5.0, 1.0]])) == {-1.0: -4.0, 0.0: 0.0}  # wrong way: negative
    with pytest.raises(TadaError, match="alpha 0"):
        delta_alignment([1.0, 2.0], sims[:, :2])


def test_smoothness():
    assert smoothness([1, 2, 3], [1, 2, 3]) == pytest.approx(0.0)          # even steps from 0
    assert smoothness([3, 1, 2], [3, 1, 2]) == pytest.approx(0.0)          # order is by |alpha|
    # normalized 2/3, 2/3, 1 after a 0: gaps 2/3, 0, 1/3
    assert smoothness([1, 2, 3], [2, 2, 3]) == pytest.approx(np.std([2 / 3, 0, 1 / 3]))
    assert smoothness([-1, -2], [1, 2]) == pytest.approx(0.0)              # negative direction, |alpha| order
    assert math.isnan(smoothness([1, 2], [-1, -2]))                        # nothing moved the right way


def sweep(concept="tempo", measure=(2.0, 2.2, 2.4, 2.6, 2.8), sign=1):
    alphas = [-1.0, -0.5, 0.0, 0.5, 1.0]
    return SweepResult(concept, "onset_rate", [6], alphas, 24, dict(zip(alphas, measure)),
                       dict.fromkeys(alphas, 0.1), dict(zip(alphas, [0.4, 0.2, 0.0, 0.2, 0.4])),
                       dict(zip(alphas, [2.0, 1.0, 0.0, 1.0, 2.5])), sign=sign)


def test_sweep_result_round_trips_and_renders():
    r = sweep()
    back = SweepResult.from_dict(r.to_dict())
    assert back == r and back.monotonic
    assert r.to_dict()["measure"] == {"-1": 2.0, "-0.5": 2.2, "0": 2.4, "0.5": 2.6, "1": 2.8}
    table = sweep_table([r, sweep("vocal_gender", (0.1, 0.2, 0.05, 0.01, 0.0), sign=-1)])
    lines = table.splitlines()
    assert lines[0].endswith("| -max | -max/2 | 0 | +max/2 | +max | monotonic |")
    assert lines[2] == "| tempo | onset_rate | 6 | -1, -0.5, 0, 0.5, 1 | 2.000 | 2.200 | 2.400 | 2.600 | 2.800 | yes |"
    assert lines[3].endswith("| no |")   # 0.1 -> 0.2 rises before it falls
    assert "alpha -1 | alpha -0.5" in sweep_table([r], alpha_headers=True)
    with pytest.raises(TadaError, match="not a sweep result"):
        SweepResult.from_dict({"concept": "x"})


def test_comparison_table_puts_methods_side_by_side():
    table = comparison_table([("CAA", sweep()), ("SAE", sweep(measure=(2.9, 2.4, 2.4, 2.5, 2.3)))])
    rows = [line for line in table.splitlines() if line.startswith("| tempo")]
    assert rows[0] == "| tempo | CAA | onset_rate | 6 | +-1 | 2.000 | 2.400 | 2.800 | yes | 2.0 / 2.5 |"
    assert rows[1].startswith("| tempo | SAE |") and "| **no** |" in rows[1]


def test_ablation_result_round_trips_and_renders():
    row = AblationRow("F", [6], 1, 1.4567, 0.3079, {"-1": 2.077, "0": 2.347, "1": 2.694}, "onset_rate")
    r = AblationResult("tempo", 1.0, [row])
    assert AblationResult.from_dict(r.to_dict()) == r
    assert ablation_table([r]).splitlines()[-1] == \
        "| tempo | 1 | F = {6} | 1 | 1.46 | 0.308 | 2.077 / 2.347 / 2.694 (onset_rate) |"


def test_sweep_and_ablation_on_a_tiny_model(models):
    """Each alpha's clip is what steering that alpha alone gives; the ablation's F row is a sweep over F."""
    model = models("tiny-stable-audio")
    g = torch.Generator().manual_seed(0)
    vec = SteeringVector({i: torch.randn(model.layers[i].width, generator=g) for i in range(4)}, "loud",
                         model.name, {i: model.layers[i].path for i in range(4)}, functional_layers=[1, 2])
    prompts, settings = ["a song", "a tune"], GenerationSettings(batch_size=6)
    r = alpha_sweep(model, vec, Energy(), CONCEPT, prompts, [-2.0, 2.0], seeds=[0], settings=settings, progress=False)
    assert r.alphas == [-2.0, 0.0, 2.0] and r.layers == [1, 2] and r.n == 2
    assert all(lo <= r.measure[a] <= hi for a, (lo, hi) in r.measure_ci.items())
    with vec.apply(model, alpha=2.0):
        steered = model.generate(prompts, seeds=[0, 0]).audio
    plain = model.generate(prompts, seeds=[0, 0]).audio
    assert r.measure[2.0] == pytest.approx(float(steered.abs().mean(dim=(1, 2)).mean()), rel=1e-4)
    assert r.measure[0.0] == pytest.approx(float(plain.abs().mean(dim=(1, 2)).mean()), rel=1e-4)
    assert r.preservation[0.0] == 0 and r.preservation[2.0] == pytest.approx(
        float(MelDistance()(steered, plain, model.sample_rate).mean()), rel=1e-3)
    assert r.distance == "mel"
    with vec.apply(model, alpha=-2.0):
        down = model.generate(prompts, seeds=[0, 0]).audio
    energy = {a: x.abs().mean(dim=(1, 2)).double().numpy() for a, x in ((-2.0, down), (0.0, plain), (2.0, steered))}
    tol = 1e-5 * energy[0.0].mean()          # batch layouts differ: float rounding, about 1e-8 here
    assert r.measure[-2.0] == pytest.approx(energy[-2.0].mean(), rel=1e-4)
    assert r.measure_sd[2.0] == pytest.approx(energy[2.0].std(), abs=tol) and r.measure_sd[2.0] > 10 * tol
    # Delta alignment, Sec. 5.1: sign(alpha) (a(alpha) - a(0)), averaged over the clips (Energy's sign is +1)
    gain = {a: float(np.sign(a) * (energy[a] - energy[0.0]).mean()) for a in (-2.0, 2.0)}
    assert r.delta_alignment[2.0] == pytest.approx(gain[2.0], abs=tol)
    assert r.delta_alignment[-2.0] == pytest.approx(gain[-2.0], abs=tol)
    assert abs(gain[2.0] - gain[-2.0]) > 10 * tol and abs(gain[2.0] + gain[-2.0]) > 10 * tol   # signs matter
    ab = layer_ablation(model, vec, Energy(), CONCEPT, prompts, 2.0, [1, 2], seeds=[0], settings=settings,
                        progress=False)
    assert [(row.set, row.layers) for row in ab.rows] == [("L", [0, 1, 2, 3]), ("L \\ F", [0, 3]), ("F", [1, 2])]
    f = ab.rows[-1]
    assert f.measure["2"] == pytest.approx(r.measure[2.0], rel=1e-6)
    assert f.preservation == pytest.approx((r.preservation[-2.0] + r.preservation[2.0]) / 2, rel=1e-6)
    assert f.delta_alignment == pytest.approx((gain[-2.0] + gain[2.0]) / 2, abs=tol)   # both signs
    for row in ab.rows[:2]:   # L and L \ F steer the layers they name: their clips at +alpha, made directly
        with vec.apply(model, alpha=2.0, layers=row.layers):
            direct = model.generate(prompts, seeds=[0, 0]).audio
        assert row.measure["2"] == pytest.approx(float(direct.abs().mean(dim=(1, 2)).mean()), rel=1e-4), row.set
    assert len({round(row.measure["2"], 6) for row in ab.rows}) == 3          # the three sets give three clips
    with pytest.raises(TadaError, match="non-zero alpha"):
        layer_ablation(model, vec, Energy(), CONCEPT, prompts, 0.0, [1], progress=False)
    with pytest.raises(TadaError, match="subset"):
        layer_ablation(model, vec, Energy(), CONCEPT, prompts, 1.0, [7], progress=False)


def test_report_names_keep_their_dots(tmp_path, capsys):
    """--out runs/g2.5 writes g2.5.md and g2.5.json (not g2.md); --out x.md is taken as x."""
    from tada_core.cli.common import write_report

    write_report(str(tmp_path / "g2.5"), "t", "i", "| a |", {"a": 1})
    write_report(str(tmp_path / "x.md"), "t", "i", "| a |", [1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g2.5.json", "g2.5.md", "x.json", "x.md"]
