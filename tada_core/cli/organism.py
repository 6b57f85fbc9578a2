"""``tada organism train | train-musicgen | scorer | adherence``: the model organism's training, scorer and adherence."""

from __future__ import annotations

import argparse
import time

from tada_core.cli.common import (add_generation_args, add_model_arg, check_writable, finite_float, load_for, note, positive_int,
                     seed_int, settings_from, write_report)


def register_organism(sub) -> None:
    from tada_core.organism.adherence import SEEDS
    from tada_core.organism.train import DEFAULTS

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

    from tada_core.organism.musicgen_train import DEFAULTS as MG_DEFAULTS

    p = org_sub.add_parser("train-musicgen", help="train the MusicGen organism (codec codebooks, then the decoder) "
                                                  "from seed (resumable: rerun the same command)")
    p.add_argument("--out", default="runs/musicgen-organism", help="model folder to write "
                                                                    "(default runs/musicgen-organism)")
    for key, value in MG_DEFAULTS.items():
        kind = (positive_int if key not in ("seed",) else seed_int) if isinstance(value, int) else finite_float
        p.add_argument(f"--{key.replace('_', '-')}", type=kind, default=value, help=f"default {value}")
    p.add_argument("--save-every", type=positive_int, default=200, help="checkpoint every N steps (default 200)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's)")
    p.set_defaults(func=run_train_musicgen)

    p = org_sub.add_parser("scorer", help="fit the organism's thresholds and timbre classifier on synthetic clips and "
                                          "report how its third-party measures agree with the generator's ground truth")
    p.add_argument("--out", default="runs/organism-scorer",
                   help="folder for scorer.safetensors + scorer.json (default runs/organism-scorer; the shipped "
                        "one is tada_core/organism/checkpoint)")
    p.add_argument("--report", default="results/organism_scorer", help="writes REPORT.md and REPORT.json")
    p.add_argument("--clips", type=positive_int, default=400, help="synthetic clips to fit on (default 400)")
    p.add_argument("--held-out", type=positive_int, default=400, help="held-out clips to measure agreement on")
    p.add_argument("--seed", type=seed_int, default=7)
    p.set_defaults(func=run_scorer)

    p = org_sub.add_parser("adherence", help="how often the organism's clips show what their prompt asks for")
    add_model_arg(p)
    p.add_argument("--scorer", default=None, help="folder with scorer.json (default: the model's checkpoint)")
    p.add_argument("--seeds", type=seed_int, nargs="+", default=list(SEEDS),
                   help=f"held-out seeds (default {' '.join(map(str, SEEDS))})")
    p.add_argument("--out", default="results/organism_adherence", help="writes OUT.md and OUT.json")
    add_generation_args(p, batch_size=32)
    p.set_defaults(func=run_adherence)


def run_train(args: argparse.Namespace) -> int:
    import json

    from tada_core.organism.train import train

    check_writable(args.out)
    summary = train(args.out, clips=args.clips, steps=args.steps, batch=args.batch, lr=args.lr, warmup=args.warmup,
                    ema_decay=args.ema, p_uncond=args.p_uncond, seed=args.seed, save_every=args.save_every,
                    workers=args.workers, threads=args.threads)
    print(json.dumps(summary, indent=2))
    return 0


def run_train_musicgen(args: argparse.Namespace) -> int:
    import json

    from tada_core.organism.musicgen_train import train

    check_writable(args.out)
    summary = train(args.out, clips=args.clips, fit_clips=args.fit_clips, steps=args.steps, batch=args.batch,
                    lr=args.lr, warmup=args.warmup, ema_decay=args.ema, p_uncond=args.p_uncond, seed=args.seed,
                    save_every=args.save_every, threads=args.threads)
    print(json.dumps(summary, indent=2))
    note(f"to use it: TADA_MUSICGEN_ORGANISM_PATH={args.out} tada generate --model musicgen-organism ...")
    return 0


def run_scorer(args: argparse.Namespace) -> int:
    from tada_core.organism.scorer import fit_and_report, report_markdown

    check_writable(args.out)
    check_writable(args.report)
    weights, report = fit_and_report(args.clips, args.seed, args.held_out)
    weights.save(args.out)
    intro = (f"Made by `tada organism scorer --clips {args.clips} --held-out {args.held_out} --seed {args.seed}`: "
             f"thresholds and the timbre classifier fitted on {args.clips} clean synthetic clips (seed {args.seed}) "
             f"and {args.clips} jittered ones (seed {args.seed + 500}: Gaussian noise of std up to "
             f"{report['jitter']} on each latent before the decoder, the kind of error any generative model makes); "
             f"agreement with the generator's ground truth measured on {args.held_out} new clean clips (seed "
             f"{args.seed + 1000}) and {args.held_out} new jittered ones (seed {args.seed + 1500}), with 95% "
             "bootstrap intervals. Nothing here is fitted on a model's output.")
    write_report(args.report, "The organism's scorer against the generator's ground truth", intro,
                 report_markdown(report), report)
    note(f"scorer written to {args.out}")
    return 0


def run_adherence(args: argparse.Namespace) -> int:
    import torch

    from tada_core.organism.adherence import SEEDS, evaluate, table
    from tada_core.organism.scorer import OrganismScorer

    check_writable(args.out)
    model = load_for(args)
    scorer = OrganismScorer(args.scorer)
    t0 = time.time()
    report = evaluate(model, scorer, seeds=tuple(args.seeds), settings=settings_from(args))
    report["seconds"] = round(time.time() - t0, 1)
    report["torch_threads"] = torch.get_num_threads()
    md = table(report)
    held_out = "held-out seeds" if set(args.seeds) == set(SEEDS) else "seeds"
    intro = (f"Made by `tada organism adherence` ({report['steps']} steps, guidance {report['guidance']}, {held_out} "
             f"{report['seeds']}, {report['seconds']} s on {report['torch_threads']} CPU threads). Labels come "
             f"from third-party measures (librosa, pYIN) with thresholds fitted on synthetic clips, never on the "
             f"model's; intervals are 95% bootstrap intervals over base prompts. ✓: the interval clears the bar. "
             f"{report['prompts_seen_in_training']:.0%} of these prompts occur verbatim in 100k draws of the training "
             f"caption grammar.")
    write_report(args.out, "Organism concept adherence", intro, md, report)
    return 0
