"""``tada verify``: does each shipped artifact do what it says, on fresh seeds?"""

from __future__ import annotations

import argparse
from pathlib import Path

from tada_core.errors import TadaError
from tada_core.cli.common import add_device_args, check_writable, note, positive_int, seed_int

def register_verify(sub) -> None:
    p = sub.add_parser("verify", help="sweep shipped steering artifacts on fresh seeds and measure every concept with "
                                      "third-party measures: effect, monotonicity, leakage, verdicts")
    p.add_argument("artifacts", nargs="*",
                   help="artifact names in --vectors' index or artifact folders (default: every shipped vector)")
    p.add_argument("--vectors", default="vectors", help="the folder of shipped vectors (default: vectors)")
    p.add_argument("--seeds", type=seed_int, nargs="+", default=None,
                   help="seeds to use (default: the folder's own when it has some, else --n-seeds fresh ones drawn now)")
    p.add_argument("--n-seeds", type=positive_int, default=4, help="how many fresh seeds to draw (default 4)")
    p.add_argument("--add-seeds", type=positive_int, default=None, metavar="N",
                   help="draw N more fresh seeds and add them to the folder's (narrower intervals; finished work is "
                        "kept)")
    p.add_argument("--prompts", type=positive_int, default=None, help="use the first N neutral prompts (default: all)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="clips per pipeline call (default 16)")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip the panel check on ground-truth synthesizer clips")
    p.add_argument("--docs", nargs="+", default=None, metavar="FILE",
                   help="afterwards, rewrite the generated verdict blocks of these Markdown files from the results")
    p.add_argument("--cards", action="store_true",
                   help="afterwards, write each verified artifact's result into its model card (README.md)")
    p.add_argument("--against", default=None, metavar="DIR",
                   help="afterwards, check that this run reproduces the verdicts of another run (e.g. the committed "
                        "results/verification): writes OUT/reproduction.md; exit code 1 when a verdict is contradicted")
    p.add_argument("--out", required=True, help="results folder (resumable: rerun the same command to finish)")
    add_device_args(p)
    p.set_defaults(func=run_verify)



def _folders(names: list[str], root: Path) -> list[tuple[str, Path]]:
    from tada_core.artifacts.hub import read_index

    index = {r["name"]: r for r in read_index(root) if r.get("kind") == "steering-vector"}
    if not names:
        if not index:
            raise TadaError(f"no shipped vectors in {str(root)!r} (no index.json; run `tada list {root}`)")
        return [(n, root / n) for n in index]
    out = []
    for n in names:
        if n in index:
            out.append((n, root / n))
        elif Path(n).is_dir():
            out.append((Path(n).name, Path(n)))
        else:
            raise TadaError(f"unknown artifact {n!r}: not a vector in {root}/index.json ({', '.join(index) or 'none'}) "
                            f"and not a folder")
    return out


def _concepts_of(model: str):
    from tada_core.registry import get_entry

    try:
        return get_entry(model).concepts
    except TadaError:
        return None


def folder_seeds(args: argparse.Namespace, out: Path) -> list[int]:
    """The seeds of a run folder of fresh seeds (verify, interference): ``--seeds`` if given, else the folder's own
    (``seeds.json``), else ``--n-seeds`` drawn now; the choice is noted so that the run can be repeated."""
    from tada_core.evaluation.verification import fresh_seeds
    from tada_core.runtime.io import read_json

    seeds_file = out / "seeds.json"
    kept = [int(x) for x in read_json(seeds_file)] if seeds_file.is_file() else []
    if args.seeds is not None:
        return list(dict.fromkeys(args.seeds))
    if kept:
        note(f"resuming {out}: its seeds {kept}")
        return kept
    if args.n_seeds < 2:
        raise TadaError(f"--n-seeds {args.n_seeds}: intervals over seeds need at least two")
    seeds = fresh_seeds(args.n_seeds)
    note(f"fresh seeds drawn now: {seeds} (rerun with --seeds {' '.join(map(str, seeds))} to repeat this run)")
    return seeds


def run_verify(args: argparse.Namespace) -> int:
    from tada_core.adapters.settings import GenerationSettings
    from tada_core.evaluation import verification as ver
    from tada_core.registry import get_entry, load_model
    from tada_core.runtime.io import write_json
    from tada_core.runtime.jobs import run

    out = check_writable(args.out)
    seeds_file = out / "seeds.json"
    seeds = folder_seeds(args, out)
    if args.add_seeds:
        more = [x for x in ver.fresh_seeds(args.add_seeds + len(seeds)) if x not in seeds][:args.add_seeds]
        seeds = seeds + more
        note(f"fresh seeds added now: {more}")
    if len(set(seeds)) < 2:
        raise TadaError(f"verification needs at least two distinct seeds; got {seeds}")
    from tada_core.artifacts.vectors import load_vector

    found = _folders(args.artifacts, Path(args.vectors))
    targets = [ver.Target.of(folder, name, _concepts_of(load_vector(folder).model)) for name, folder in found]
    panels: dict = {}
    entries = {}
    for model in sorted({t.model for t in targets}):
        entry = get_entry(model)
        if entry.make_panel is None:
            raise TadaError(f"{model} has no verification panel (third-party measures of its concepts); "
                            f"`tada verify` runs on models that have one: the organisms")
        entries[model] = entry

    def panel_of(model: str):
        make = entries[model].make_panel
        if make not in panels:
            panels[make] = make()
        return panels[make]

    def load(model: str):
        m = load_model(model, device=args.device, dtype=args.dtype, device_map=args.device_map)
        m.set_progress_bar(False)
        return m

    models = ver.Models(load=load, panel_of=panel_of)
    prompts, gaps, settings, concept_sets, classes = {}, {}, {}, {}, {}
    for model, entry in entries.items():
        cs = entry.concepts
        n = args.prompts or len(cs.eval_prompts)
        prompts[model], bases = list(cs.eval_prompts[:n]), list(cs.bases[:n])
        gaps[model] = {c: tuple(cs.get(c).contrastive_prompts(bases)) for c in panel_of(model).concepts}
        settings[model] = models.adapter(model).resolve_settings(GenerationSettings(batch_size=args.batch_size))
        concept_sets[model] = cs
        if hasattr(panel_of(model), "class_prompts"):
            classes[model] = panel_of(model).class_prompts(bases)
    labels = next(iter(panels.values())).labels if panels else None
    job = ver.verification_job(targets, seeds, models, prompts=prompts, gap_prompts=gaps, settings=settings,
                               check=args.check, command=args.command_line, concept_sets=concept_sets, labels=labels,
                               class_prompts=classes or None)
    out.mkdir(parents=True, exist_ok=True)
    write_json(seeds_file, seeds)        # before any work: an interrupted run resumes with the same seeds
    result = run(job, out)
    print(ver.verdict_table(result, concept_sets))
    note(f"wrote {out / ver.RESULT_FILE}, {out / 'verification.md'} and {out / 'effects.png'}")
    status = 0
    if args.against:
        table, ok = ver.compare_runs(result, ver.read_results(args.against))
        (out / "reproduction.md").write_text(
            f"# Reproduction of {args.against} on seeds {result['seeds']}\n\nMade by `{args.command_line}`. A "
            f"direction is reproduced when this run's effect lies within the committed interval or both verdicts "
            f"agree.\n\n{table}\n")
        print(table)
        note(f"{'every verdict reproduced' if ok else 'some verdicts are contradicted'}; wrote {out / 'reproduction.md'}")
        status = 0 if ok else 1
    if args.cards:
        for t in targets:
            current = ver.sync_card(t.folder, result)
            note(f"{t.folder}/README.md: {'already current' if current else 'verified effect written'}")
    for doc in args.docs or []:
        current = ver.sync_docs(doc, result, str(out / ver.RESULT_FILE), concept_sets)
        note(f"{doc}: {'already current' if current else 'verdict blocks rewritten'}")
    return status
