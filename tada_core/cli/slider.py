"""``tada slider``: train a Concept Slider (Gandikota et al., 2024) and generate with one."""

from __future__ import annotations

import argparse
from pathlib import Path

from tada_core.errors import TadaError
from tada_core.cli.common import (add_generation_args, add_model_arg, check_writable, finite_float, load_for, note,
                                  positive_float, positive_int, seed_int, settings_from)


def register_slider(sub) -> None:
    p = sub.add_parser("slider", help="Concept Sliders: train a LoRA slider for a concept, generate with one")
    actions = p.add_subparsers(dest="slider_action", metavar="train | generate", required=True)
    t = actions.add_parser("train", help="train a slider (Eq. 4 of Gandikota et al.) and save it as a folder")
    add_model_arg(t)
    t.add_argument("--concept", required=True, help="concept name or .json/.yaml concept file")
    t.add_argument("--layers", nargs="+", default=["functional"], metavar="LAYERS",
                   help="'functional' (from --localization, or the concept's CAA vector), 'all', or 0-based layer "
                        "indices (default functional)")
    t.add_argument("--localization", default=None, help="a `tada localize --out` folder giving the functional layers")
    t.add_argument("--vectors", default="vectors/{model}-{concept}-caa",
                   help="where the CAA vector that records the functional layers is (when no --localization)")
    t.add_argument("--prompts", type=positive_int, default=None, help="use the first N base prompts (default all)")
    t.add_argument("--seeds", type=seed_int, nargs="+", default=[0, 1, 2, 3],
                   help="fitting seeds the neutral prompts are generated with (default 0 1 2 3)")
    t.add_argument("--train-steps", type=positive_int, default=300, help="optimizer steps (default 300)")
    t.add_argument("--rank", type=positive_int, default=4, help="LoRA rank (default 4)")
    t.add_argument("--lora-alpha", type=positive_float, default=4.0, help="LoRA alpha (default 4: scaling 1 at rank 4)")
    t.add_argument("--lr", type=positive_float, default=2e-3, help="AdamW learning rate (default 2e-3)")
    t.add_argument("--eta", type=positive_float, default=1.0, help="guidance eta of the slider target (default 1)")
    t.add_argument("--out", required=True, help="output folder (a Hub-ready model repo; `tada push` uploads it)")
    t.add_argument("--force", action="store_true", help="train even if --out already holds a slider")
    add_generation_args(t)
    t.set_defaults(func=run_train)
    g = actions.add_parser("generate", help="the same prompt and seed at scale 0 and at each --scale, as .wav files")
    g.add_argument("slider", help="a slider folder or its Hub repo id")
    g.add_argument("--prompt", required=True)
    g.add_argument("--scale", type=finite_float, nargs="+", required=True, help="slider scales (steering strengths)")
    g.add_argument("--seed", type=seed_int, default=0)
    g.add_argument("--out", required=True, help="output folder: scale_<s>.wav per scale (and scale_0.wav)")
    add_generation_args(g)
    g.set_defaults(func=run_generate)


def _layers(args: argparse.Namespace, model, concept) -> list[int]:
    words = list(args.layers)
    if words == ["all"]:
        return [layer.index for layer in model.layers]
    if words == ["functional"]:
        if args.localization:
            from tada_core.methods.localize import read_localization

            found = read_localization(Path(args.localization) / concept.name).functional_layers()
        else:
            folder = Path(args.vectors.format(model=model.name, concept=concept.name))
            if not (folder / "config.json").is_file():
                raise TadaError(f"no functional layers for {concept.name!r}: give --localization DIR, or --layers "
                                f"all / indices (no CAA vector at {folder} records them)")
            from tada_core.artifacts.vectors import load_vector

            found = list(load_vector(folder).functional_layers or [])
        if not found:
            raise TadaError(f"{concept.name!r} has no functional layer on {model.name}; train on --layers all or "
                            f"give indices")
        return list(found)
    try:
        return list(model.resolve_layers([int(w) for w in words]))
    except ValueError:
        raise TadaError(f"--layers takes 'functional', 'all' or 0-based layer indices; got {' '.join(words)}") from None


def run_train(args: argparse.Namespace) -> int:
    from tada_core.methods.sliders import SliderTraining, train_slider
    from tada_core.registry import entry_for

    out = check_writable(args.out)
    if (out / "config.json").is_file() and not args.force:
        note(f"{out} already holds a slider; kept (--force retrains)")
        return 0
    training = SliderTraining(rank=args.rank, lora_alpha=args.lora_alpha, eta=args.eta, steps=args.train_steps, lr=args.lr,
                              fit_seeds=tuple(args.seeds))
    model = load_for(args)
    concepts = entry_for(model).concepts
    concept = concepts.get(args.concept, files=True)
    if concept.prompt_pairs:
        raise TadaError(f"concept {concept.name!r} is made of explicit prompt pairs; a slider needs its templates "
                        f"(a neutral, a positive and a negative prompt per base)")
    layers = _layers(args, model, concept)
    bases = list(concepts.bases)[:args.prompts] if args.prompts else list(concepts.bases)
    triples = [(concepts.neutral.format(base=b), concept.positive.format(base=b), concept.negative.format(base=b))
               for b in bases]
    slider = train_slider(model, concept.name, triples, layers=layers, training=training,
                          settings=settings_from(args), progress=True, command=getattr(args, "command_line", None))
    slider.save(out)
    t = slider.training
    print(f"wrote {out}: {concept.name!r} slider on layers {slider.layers} ({len(slider.target_modules)} projections, "
          f"rank {slider.rank}); mean loss {t['loss_before']:.4g} -> {t['loss_after']:.4g} in {t['steps']} steps, "
          f"{t['seconds']:.0f} s")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from tada_core.artifacts.slider import load_slider
    from tada_core.audio import save_wav

    slider = load_slider(args.slider)
    out = check_writable(args.out)
    model = load_for(args, model=slider.model)
    scales = [0.0] + [s for s in args.scale if s != 0.0]
    with slider.apply(model, scales):
        audio = model.generate([args.prompt] * len(scales), seeds=[args.seed] * len(scales),
                               settings=settings_from(args)).audio
    for s, clip in zip(scales, audio):
        path = save_wav(out / f"scale_{s:g}.wav", clip, model.sample_rate)
        print(f"wrote {path}")
    return 0
