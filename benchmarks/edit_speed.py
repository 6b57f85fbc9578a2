"""How long `tada edit` takes next to a generation of the same duration and steps, on the shipped organism.

    python benchmarks/edit_speed.py [--repeats 5] [--save]

An edit is one batched pipeline call with the inversion's anchor row beside the edited rows
(tada_core.editing), plus encoding the clip and drawing the trajectory. Prints the median time of:
one generation; an edit at one alpha; an edit at three alphas; three generations in one batch; and
the ratios edit / generation (one alpha vs one clip, three alphas vs a batch of three).
"""

from __future__ import annotations

from common import load_warm, machine, median_time, repeats, run_benchmark


def main() -> None:
    from tada_core.artifacts.vectors import load_vector
    from tada_core.editing import edit

    args = repeats()
    print(machine())
    model, _ = load_warm()
    d = model.defaults
    prompt = "a slow sad waltz played on violin"
    clip = model.generate(prompt, seeds=8700).audio[0]
    vec = load_vector("vectors/tada-organism-brightness-caa")
    gen1 = median_time(lambda: model.generate(prompt, seeds=0), args.repeats)
    gen3 = median_time(lambda: model.generate([prompt] * 3, seeds=[0, 1, 2]), args.repeats)
    edit1 = median_time(lambda: edit(model, clip, model.sample_rate, steer=vec, alpha=[2.0], prompt=prompt),
                        args.repeats)
    edit3 = median_time(lambda: edit(model, clip, model.sample_rate, steer=vec, alpha=[-2.0, 2.0, 4.0],
                                     prompt=prompt), args.repeats)
    print(f"model {model.name}: {d.duration} s clips, {d.steps} steps, guidance {d.guidance}")
    print(f"generate, 1 clip:        {gen1:.3f} s")
    print(f"edit, 1 alpha:           {edit1:.3f} s  (ratio edit / generation: {edit1 / gen1:.2f})")
    print(f"generate, batch of 3:    {gen3:.3f} s")
    print(f"edit, 3 alphas:          {edit3:.3f} s  (ratio edit / generation of 3: {edit3 / gen3:.2f})")


if __name__ == "__main__":
    run_benchmark(main)
