"""``tada interference``: do composed steering vectors do what they do alone?"""

from __future__ import annotations

import argparse
from pathlib import Path

from tada_core.errors import TadaError
from tada_core.cli.common import add_device_args, check_writable, note, positive_int, seed_int
from tada_core.cli.verify import folder_seeds

METHODS = ("caa", "sae", "diffmean")


def register_interference(sub) -> None:
    p = sub.add_parser("interference", help="steer with every pair of a method's shipped vectors at the corners of "
                                            "their ranges on fresh seeds: additivity, cross-talk, quality, and "
                                            "whether orthogonalizing them helps")
    p.add_argument("--model", default="tada-organism", help="the model whose shipped vectors are paired "
                                                            "(default tada-organism; it needs a verification panel)")
    p.add_argument("--method", nargs="+", default=["caa", "sae"], choices=METHODS,
                   help="one group of pairs per method (default: caa sae)")
    p.add_argument("--exclude", nargs="*", default=[], metavar="NAME",
                   help="shipped vectors to leave out (a method needs one vector per concept)")
    p.add_argument("--vectors", default="vectors", help="the folder of shipped vectors (default: vectors)")
    p.add_argument("--seeds", type=seed_int, nargs="+", default=None,
                   help="seeds (default: the folder's own when it has some, else --n-seeds fresh ones drawn now)")
    p.add_argument("--n-seeds", type=positive_int, default=4, help="how many fresh seeds to draw (default 4)")
    p.add_argument("--prompts", type=positive_int, default=4, help="the first N neutral prompts (default 4)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="clips per pipeline call (default 16)")
    p.add_argument("--orthogonalize-min-cosine", type=float, default=None, metavar="C",
                   help="measure orthogonalized (compose(..., orthogonalize=True)) the pairs whose vectors have |cos| "
                        "at least C on a shared layer (default 0.2)")
    p.add_argument("--no-orthogonalize", dest="orthogonalize", action="store_false",
                   help="do not measure orthogonalized pairs")
    p.add_argument("--docs", nargs="+", default=None, metavar="FILE",
                   help="afterwards, rewrite the generated interference blocks of these Markdown files")
    p.add_argument("--partial", action="store_true",
                   help="generate nothing: write the results of the pairs already finished in --out (an interrupted "
                        "run's report; unfinished pairs are listed)")
    p.add_argument("--out", required=True, help="results folder (resumable: rerun the same command to finish)")
    add_device_args(p)
    p.set_defaults(func=run_interference)


def shipped_groups(root: Path, model: str, methods, exclude, concept_set=None):
    """One :class:`~tada_core.evaluation.interference.Group` per method: the shipped vectors of ``model`` and that
    method in ``root/index.json``, minus ``exclude``; two vectors of one concept are refused with their names."""
    from tada_core.artifacts.hub import read_index
    from tada_core.evaluation.interference import Group
    from tada_core.evaluation.verification import Target

    index = [r for r in read_index(root) if r.get("kind") == "steering-vector" and r.get("model") == model]
    unknown = sorted(set(exclude) - {r["name"] for r in index})
    if unknown:
        raise TadaError(f"--exclude {' '.join(unknown)}: not shipped vectors of {model} in {root}/index.json")
    groups = []
    for method in methods:
        rows = [r for r in index if r["method"] == method and r["name"] not in exclude]
        by_concept: dict[str, list[str]] = {}
        for r in rows:
            by_concept.setdefault(r["concept"], []).append(r["name"])
        twice = {c: n for c, n in by_concept.items() if len(n) > 1}
        if twice:
            which = "; ".join(f"{c}: {', '.join(n)}" for c, n in twice.items())
            raise TadaError(f"{method}: more than one shipped vector per concept ({which}); leave all but one out "
                            f"with --exclude")
        if len(rows) < 2:
            raise TadaError(f"{model} has {len(rows)} shipped {method} vector(s) in {root}; pairs need two")
        groups.append(Group(method, tuple(Target.of(root / r["name"], r["name"], concept_set) for r in rows)))
    return groups


def run_interference(args: argparse.Namespace) -> int:
    from tada_core.adapters.settings import GenerationSettings
    from tada_core.evaluation import interference as itf
    from tada_core.evaluation import verification as ver
    from tada_core.registry import get_entry, load_model
    from tada_core.runtime.io import write_json
    from tada_core.runtime.jobs import run

    out = check_writable(args.out)
    entry = get_entry(args.model)
    if entry.make_panel is None:
        raise TadaError(f"{args.model} has no verification panel (third-party measures of its concepts); "
                        f"`tada interference` runs on models that have one: the organisms")
    seeds_file = out / "seeds.json"
    seeds = folder_seeds(args, out)
    if len(set(seeds)) < 2:
        raise TadaError(f"interference needs at least two distinct seeds; got {seeds}")
    cs = entry.concepts
    groups = shipped_groups(Path(args.vectors), args.model, args.method, args.exclude, cs)
    panel = entry.make_panel()

    def load(model: str):
        m = load_model(model, device=args.device, dtype=args.dtype, device_map=args.device_map)
        m.set_progress_bar(False)
        return m

    models = ver.Models(load=load, panel_of=lambda model: panel)
    n = min(args.prompts, len(cs.eval_prompts))
    prompts, bases = list(cs.eval_prompts[:n]), list(cs.bases[:n])
    gaps = {c: tuple(cs.get(c).contrastive_prompts(bases)) for c in panel.concepts}
    settings = models.adapter(args.model).resolve_settings(GenerationSettings(batch_size=args.batch_size))
    threshold = itf.MIN_COSINE if args.orthogonalize_min_cosine is None else args.orthogonalize_min_cosine
    if not 0 <= threshold <= 1:
        raise TadaError(f"--orthogonalize-min-cosine {threshold}: a |cosine| threshold lies in [0, 1]")
    job = itf.interference_job(groups, seeds, models, model=args.model, prompts=prompts, gap_prompts=gaps,
                               settings=settings, orthogonalize=threshold if args.orthogonalize else None,
                               command=args.command_line)
    if args.partial:
        from tada_core.runtime.jobs import finished

        if not (out / job.spec_file).is_file():
            raise TadaError(f"--partial: {out} holds no interference run yet")
        records = finished(job, out)
        result = job.reduce(records)
        job.write(out, result, records)
        note(f"partial report: {len(records)} calls finished; {len(result['unfinished_pairs'])} plain pairs not yet")
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_json(seeds_file, seeds)
        result = run(job, out)
    for g in result["groups"]:
        print(f"\n{g['method'].upper()}\n{itf.pair_table(result, g)}")
    note(f"wrote {out / itf.RESULT_FILE}, {out / 'interference.md'} and the heatmaps")
    for doc in args.docs or []:
        current = itf.sync_docs(doc, result, str(out / itf.RESULT_FILE))
        note(f"{doc}: {'already current' if current else 'interference blocks rewritten'}")
    return 0
