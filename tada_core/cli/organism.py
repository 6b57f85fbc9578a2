"""``tada organism train | scorer | adherence``: the model organism's training, scorer and adherence."""

from __future__ import annotations

import argparse
import time

from .common import (add_generation_args, add_model_arg, check_writable, finite_float, load_for, note, positive_int,
                     seed_int, settings_from, write_report)


def register_organism(sub) -> None:
    from ..organism.train import DEFAULTS

    org = sub.add_parser("organism", help="the model organism: train it, fit its scorer, measure its adherence")
    org_sub = org.add_subparsers(dest="organism_command", required=True)

    p = org_sub.add_parser("train", help="train an organism from seed (resumable: rerun the same command)")
    p.add_argument("--out", default="runs/organism", help="pipeline folder to write (default runs/organism)")
    for key, value in DEFAULTS.items():
        kind = (positive_int if key not in ("seed",) else seed_int) if isinstance(value, int) else finite_float
        p.add_argument(f"--{key.replace('_', '-')}", type=kind, default=value, help=f"default {value}")
    p.add_argument("--save-every", type=positive_int, default=200, help="checkpoint every N steps (default 200)")
    p.add_argument("--workers", type=positive_int, default=2, help="processes that synthesize clips")
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's)")
    p.set_defaults(func=run_train)

    p = org_sub.add_parser("scorer", help="fit the organism's descriptor thresholds and classifiers on synthetic "
                                          "clips and report their agreement with the generator's ground truth")
    p.add_argument("--out", default="runs/organism-scorer",
                   help="folder for scorer.safetensors + scorer.json (default runs/organism-scorer; the shipped "
                        "one is tada_core/organism/checkpoint)")
    p.add_argument("--report", default="results/organism_scorer.md", help="Markdown report to write")
    p.add_argument("--clips", type=positive_int, default=800)
    p.add_argument("--held-out", type=positive_int, default=400, help="held-out clips per row of the report")
    p.add_argument("--seed", type=seed_int, default=7)
    p.add_argument("--floor", type=finite_float, default=0.004,
                   help="half of the clips get a random noise floor up to this amplitude")
    p.set_defaults(func=run_scorer)

    p = org_sub.add_parser("adherence", help="how often the organism's clips show what their prompt asks for")
    add_model_arg(p)
    p.add_argument("--scorer", default=None, help="folder with scorer.json (default: the model's checkpoint)")
    p.add_argument("--seeds", type=seed_int, nargs="+", default=[1000, 1001])
    p.add_argument("--out", default="results/organism_adherence", help="writes OUT.md and OUT.json")
    add_generation_args(p, batch_size=32)
    p.set_defaults(func=run_adherence)


def run_train(args: argparse.Namespace) -> int:
    import json

    from ..organism.train import train

    check_writable(args.out)
    summary = train(args.out, clips=args.clips, steps=args.steps, batch=args.batch, lr=args.lr, warmup=args.warmup,
                    ema_decay=args.ema, p_uncond=args.p_uncond, seed=args.seed, save_every=args.save_every,
                    workers=args.workers, threads=args.threads)
    print(json.dumps(summary, indent=2))
    return 0


def run_scorer(args: argparse.Namespace) -> int:
    from ..io import atomic_write_text
    from ..organism.descriptors import fit_and_report, report_table

    check_writable(args.out)
    check_writable(args.report)
    scorer, rows = fit_and_report(args.clips, args.seed, args.floor, args.held_out)
    scorer.save(args.out)
    table = report_table(rows)
    atomic_write_text(args.report, (
        "# Organism scorers against the generator's ground truth\n\n"
        f"Made by `tada organism scorer --clips {args.clips} --seed {args.seed} --floor {args.floor:g} "
        f"--held-out {args.held_out}` (fits the scorer on {args.clips} synthetic clips, half of them with a random "
        f"noise floor, and scores {args.held_out} held-out clips per row).\n\n{table}\n"))
    print(table)
    note(f"scorer written to {args.out}, report to {args.report}")
    return 0


def run_adherence(args: argparse.Namespace) -> int:
    import torch

    from ..organism.adherence import evaluate, table
    from ..organism.descriptors import DescriptorClassifier
    from ..organism.model import checkpoint_path

    check_writable(args.out)
    model = load_for(args)
    weights = DescriptorClassifier.load(args.scorer or checkpoint_path())
    t0 = time.time()
    report = evaluate(model, weights, seeds=tuple(args.seeds), settings=settings_from(args))
    report["seconds"] = round(time.time() - t0, 1)
    report["torch_threads"] = torch.get_num_threads()
    md = table(report)
    intro = (f"Made by `tada organism adherence` ({report['steps']} steps, guidance {report['guidance']}, seeds "
             f"{report['seeds']}, {report['seconds']} s on {report['torch_threads']} CPU threads). "
             f"{report['prompts_seen_in_training']:.0%} of these prompts occur verbatim in 100k draws of the training "
             f"caption grammar.")
    write_report(args.out, "Organism concept adherence", intro, md, report)
    return 0
