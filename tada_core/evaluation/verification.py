"""Verification: does a shipped steering artifact do what it says, on seeds nobody fitted on?

For each artifact (a CAA or SAE vector, a DiffMean vector), :func:`verification_job` steers the
model's neutral prompts (one per base, "a waltz") at alpha in {-max, -max/2, 0, max/2, max} of
the artifact's validated range, on fresh seeds, and measures **every** concept of the model's
verification panel (third-party measures: librosa, pYIN, a classifier fitted on ground truth;
never the measure a vector was chosen with) on every clip. The same seeds also run each
concept's contrastive prompts ("a fast waltz" / "a slow waltz"), whose measured difference is the
concept's **prompt gap**: the yardstick of every effect.

Per artifact and direction (toward the concept's positive side, +max; toward its negative side,
-max), with 95% intervals from a crossed bootstrap over prompts and seeds
(:func:`tada_core.evaluation.stats.crossed_intervals`):

* **effect**: how far the target concept's measure moves, as a fraction of its prompt gap,
  signed so that a move in the intended direction is positive:
  ``(m(+max) - m(0)) / gap`` and ``(m(0) - m(-max)) / gap``;
* **monotonicity**: Spearman's rho between alpha and the measure over each (prompt, seed)
  sweep of five alphas, averaged (+1: the measure rises with alpha in every sweep);
* **leakage**: the same effect on every other concept of the panel, as a fraction of that
  concept's own prompt gap.

Verdicts are read off the intervals with two stated thresholds, so that a verdict's interval
excludes the opposite verdict: a direction **steers** when its effect's interval lies at or above
``EFFECT`` (0.25 of the prompt gap), **reverses** when it lies at or below -``EFFECT``, has **no
effect** when it lies strictly inside (-``EFFECT``, ``EFFECT``), and is **unclear** otherwise. A
sweep is **monotonic** when rho's interval lies at or above ``RHO`` (0.5), **not monotonic** when
it lies below, else unclear. An artifact **leaks** onto a concept when either direction's
interval on that concept lies beyond +-``EFFECT``. When a concept's prompt gap itself is not
clear (its interval includes 0), effects in its units are not read: "no gap".
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import secrets
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tada_core.errors import TadaError
from tada_core.evaluation.stats import crossed_intervals
from tada_core.runtime.io import read_json, write_json
from tada_core.runtime.jobs import Job, Stage

logger = logging.getLogger(__name__)

EFFECT = 0.25                          # fraction of the prompt gap a verdict needs (see the module docstring)
RHO = 0.5                              # Spearman rho a monotonic verdict needs
ALPHA_FRACTIONS = (-1.0, -0.5, 0.0, 0.5, 1.0)   # of the artifact's validated range
N_BOOT = 1000
FRESH_SEEDS = (100_000, 2**31 - 1)     # fresh seeds are drawn here: every seed any fit used is below
RESULT_FILE = "verification.json"
DOCS_BEGIN = "<!-- tada verify: begin {name} (generated from {source} by `tada verify --docs`; do not edit) -->"
DOCS_END = "<!-- tada verify: end {name} -->"


@dataclasses.dataclass(frozen=True)
class Target:
    """One artifact to verify: what it is and where it steers (from its folder)."""

    name: str
    folder: str
    model: str
    concept: str
    method: str
    layers: tuple[int, ...]
    alphas: tuple[float, ...]        # the five alphas of the sweep, 0 in the middle
    sha256: str                      # of its tensors and config: a result belongs to exactly this artifact
    sides: tuple[str, str] = ("+", "-")   # the concept's two sides in words ("fast", "slow")

    @classmethod
    def of(cls, folder: str | Path, name: str | None = None, concept_set=None) -> "Target":
        from tada_core.artifacts.vectors import load_vector

        folder = Path(folder)
        vec = load_vector(folder)
        if not vec.alpha_range or max(abs(a) for a in vec.alpha_range) == 0:
            raise TadaError(f"{folder.name}: the vector records no alpha range; verify sweeps its validated range")
        top = max(abs(a) for a in vec.alpha_range)
        layers = vec.default_layers()
        if vec.strategy and vec.strategy["name"] == "one-to-all":
            layers = [vec.strategy["source_layer"]]
        return cls(name or folder.name, str(folder), vec.model, vec.concept, vec.method, tuple(layers),
                   tuple(float(f * top) for f in ALPHA_FRACTIONS), artifact_sha256(folder),
                   side_names(concept_set, vec.concept) if concept_set is not None else ("+", "-"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"layers": list(self.layers), "alphas": list(self.alphas),
                                           "sides": list(self.sides)}


def artifact_sha256(folder: str | Path) -> str:
    """SHA-256 of a vector folder's ``steering.safetensors`` and ``config.json`` (what steering reads: the tensors,
    and the layers, range and ReNorm setting they are applied with), so a recomputed artifact is verified anew."""
    from tada_core.artifacts.vectors import CONFIG_FILE, VECTOR_FILE

    h = hashlib.sha256()
    for name in (VECTOR_FILE, CONFIG_FILE):
        with open(Path(folder) / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def fresh_seeds(n: int) -> list[int]:
    """``n`` distinct seeds drawn at run time from the operating system's randomness, in ``FRESH_SEEDS``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise TadaError(f"the number of seeds must be an integer >= 2 (intervals need two); got {n!r}")
    return sorted(secrets.SystemRandom().sample(range(*FRESH_SEEDS), n))


# --------------------------------------------------------------------------------------
# the job
# --------------------------------------------------------------------------------------
@dataclasses.dataclass
class Models:
    """Loads each model, its panel and each artifact once per process (the job's units ask for them)."""

    load: Callable[[str], Any]                 # model name -> adapter
    panel_of: Callable[[str], Any]             # model name -> verification panel
    adapters: dict = dataclasses.field(default_factory=dict)
    panels: dict = dataclasses.field(default_factory=dict)
    vectors: dict = dataclasses.field(default_factory=dict)

    def adapter(self, model: str):
        if model not in self.adapters:
            self.adapters[model] = self.load(model)
        return self.adapters[model]

    def panel(self, model: str):
        if model not in self.panels:
            self.panels[model] = self.panel_of(model)
        return self.panels[model]

    def vector(self, target: Target):
        from tada_core.artifacts.vectors import load_vector

        if target.name not in self.vectors:
            vec = load_vector(target.folder)
            if artifact_sha256(target.folder) != target.sha256:
                raise TadaError(f"{target.name}: its steering.safetensors changed since this verification started; "
                                f"start a new one in another folder")
            self.vectors[target.name] = vec
        return self.vectors[target.name]


def _measure(panel, audio, sample_rate: int) -> dict[str, list[float]]:
    values = panel.measure(audio, sample_rate)
    return {c: [float(x) for x in values[c]] for c in panel.concepts}


def _generate(adapter, prompts: list[str], seeds: list[int], settings, alphas=None, vector=None):
    """Clips for ``prompts`` in calls of at most ``settings.batch_size``; steered per sample when ``vector``."""
    import contextlib

    import torch

    out = []
    for k in range(0, len(prompts), settings.batch_size):
        sl = slice(k, k + settings.batch_size)
        ctx = vector.apply(adapter, alpha=list(alphas[sl])) if vector is not None else contextlib.nullcontext()
        with ctx:
            out.append(adapter.generate(prompts[sl], seeds=seeds[sl], settings=settings).audio)
    return torch.cat(out)


def timed(fn: Callable[[Any], dict]) -> Callable[[Any], dict]:
    """A job unit's function that also records its wall time in the record (``"seconds"``)."""
    def do(unit):
        t0 = time.perf_counter()
        rec = fn(unit)
        rec["seconds"] = round(time.perf_counter() - t0, 3)
        return rec
    return do


def verification_job(targets: Sequence[Target], seeds: Sequence[int], models: Models, *,
                     prompts: Mapping[str, Sequence[str]], gap_prompts: Mapping[str, Mapping[str, tuple]],
                     settings: Mapping[str, Any], check: bool = True, command: str | None = None,
                     concept_sets: Mapping[str, Any] | None = None, labels: Mapping[str, str] | None = None,
                     class_prompts: Mapping[str, Mapping[str, Sequence[str]]] | None = None) -> Job:
    """The resumable job of ``tada verify`` (see the module docstring).

    ``prompts[model]``: the neutral prompts (one per base); ``gap_prompts[model][concept]``: (positive
    prompts, negative prompts) on the same bases, in the same order; ``settings[model]``: resolved
    :class:`~tada_core.adapters.settings.GenerationSettings`. Units: the panel check (on ground truth),
    then per model and seed the reference clips (neutral and contrastive prompts), then per artifact
    and seed its sweep. ``class_prompts[model][label]``: prompts on the same bases that ask for one class of
    the panel's classifier ("a waltz played on violin"); per model and seed they are classified, for the
    panel's prompt adherence. Every record carries its wall time.
    """
    seeds = [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds) or len(seeds) < 2:
        raise TadaError(f"verification needs at least two distinct seeds; got {seeds}")
    targets = list(targets)
    if not targets:
        raise TadaError("nothing to verify: give at least one artifact")
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise TadaError(f"artifact names repeat: {names}")
    model_names = sorted({t.model for t in targets})
    # the artifacts are not part of the spec: a folder's seeds, prompts and settings can verify more artifacts
    # later (a recomputed vector is a new unit: its key holds the tensors' hash)
    # nor are the seeds: more seeds (narrower intervals) are more units of the same folder
    spec = {"kind": "tada-verify",
            "prompts": {m: list(prompts[m]) for m in model_names},
            "gap_prompts": {m: {c: [list(p), list(n)] for c, (p, n) in gap_prompts[m].items()} for m in model_names},
            "settings": {m: settings[m].to_dict() for m in model_names}, "check": bool(check),
            "panel": {m: _describe(models.panel(m)) for m in model_names}}
    if class_prompts:
        spec["class_prompts"] = {m: {k: list(v) for k, v in class_prompts[m].items()} for m in model_names
                                 if m in class_prompts}
    by_name = {t.name: t for t in targets}

    def do_check(unit):
        panel = models.panel(model_names[0])
        return {"unit": list(unit), "check": panel.check() if hasattr(panel, "check") else None}

    def do_reference(unit):
        _, model, seed = unit
        adapter, panel = models.adapter(model), models.panel(model)
        batch = list(prompts[model])
        for concept in panel.concepts:
            pos, neg = gap_prompts[model][concept]
            batch += list(pos) + list(neg)
        audio = _generate(adapter, batch, [seed] * len(batch), settings[model])
        return {"unit": list(unit), "values": _measure(panel, audio, adapter.sample_rate)}

    def do_steer(unit):
        _, name, _, seed = unit
        target = by_name[name]
        adapter, panel = models.adapter(target.model), models.panel(target.model)
        steered = [a for a in target.alphas if a != 0]
        batch = [p for p in prompts[target.model] for _ in steered]
        alphas = [a for _ in prompts[target.model] for a in steered]
        audio = _generate(adapter, batch, [seed] * len(batch), settings[target.model], alphas, models.vector(target))
        return {"unit": list(unit), "values": _measure(panel, audio, adapter.sample_rate)}

    def do_classes(unit):
        _, model, seed = unit
        adapter, panel = models.adapter(model), models.panel(model)
        batch = [p for label in spec["class_prompts"][model] for p in spec["class_prompts"][model][label]]
        audio = _generate(adapter, batch, [seed] * len(batch), settings[model])
        return {"unit": list(unit), "labels": [str(x) for x in panel.classify(audio, adapter.sample_rate)]}

    stages = ([Stage([("check", 3)], timed(do_check))] if check else []) + [
        Stage([("reference", m, s) for m in model_names for s in seeds], timed(do_reference)),
        Stage([("steer", t.name, t.sha256[:16], s) for t in targets for s in seeds], timed(do_steer))]
    if class_prompts:
        stages.append(Stage([("classes", m, s) for m in spec["class_prompts"] for s in seeds], timed(do_classes)))

    def reduce(done):
        return reduce_records(spec, [t.to_dict() for t in targets], done, seeds, command=command)

    def write(folder: Path, result: dict, done) -> None:
        write_results(folder, result, concept_sets, labels)

    return Job(name="verify", spec=spec, stages=stages, reduce=reduce, write=write, unit="call",
               what="verification")


# --------------------------------------------------------------------------------------
# statistics and verdicts
# --------------------------------------------------------------------------------------
def direction_verdict(ci: Sequence[float], threshold: float = EFFECT) -> str:
    """"steers", "reverses", "no effect" or "unclear" for an effect interval (fractions of the prompt gap)."""
    lo, hi = float(ci[0]), float(ci[1])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "unclear"
    if lo >= threshold:
        return "steers"
    if hi <= -threshold:
        return "reverses"
    if -threshold < lo and hi < threshold:
        return "no effect"
    return "unclear"


def monotonic_verdict(ci: Sequence[float], threshold: float = RHO) -> str:
    lo, hi = float(ci[0]), float(ci[1])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "unclear"
    return "monotonic" if lo >= threshold else "not monotonic" if hi < threshold else "unclear"


def leak_verdict(cis: Sequence[Sequence[float]], threshold: float = EFFECT) -> str:
    """"leaks", "clean" or "unclear" from the effect intervals of both directions on another concept."""
    verdicts = [direction_verdict(ci, threshold) for ci in cis]
    if any(v in ("steers", "reverses") for v in verdicts):
        return "leaks"
    return "clean" if all(v == "no effect" for v in verdicts) else "unclear"


def summary_verdict(toward_positive: str, toward_negative: str, sides: Sequence[str] = ("+", "-")) -> str:
    """One phrase for both directions (``sides``: the concept's two sides in words)."""
    pair = (toward_positive, toward_negative)
    if pair == ("steers", "steers"):
        return "steers both ways"
    if "steers" in pair and "reverses" not in pair:
        return f"steers toward {sides[0] if pair[0] == 'steers' else sides[1]} only"
    if pair == ("reverses", "reverses"):
        return "reversed both ways"
    if "reverses" in pair:
        return "reversed one way" if "steers" not in pair else "moves one side both ways"
    if pair == ("no effect", "no effect"):
        return "does not steer"
    return "unclear"


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of ``x`` (one row of alphas) with each row of ``y`` ``[n, alphas]``; 0 for a constant row."""
    from scipy.stats import rankdata

    rx = rankdata(x)
    ry = rankdata(y, axis=-1)
    rx, ry = rx - rx.mean(), ry - ry.mean(-1, keepdims=True)
    den = np.sqrt((rx ** 2).sum() * (ry ** 2).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ry * rx).sum(-1) / np.where(den > 0, den, 1), 0.0)


def _interval(value: float, ci: Sequence[float]) -> dict[str, Any]:
    return {"value": float(value), "ci": [float(ci[0]), float(ci[1])]}


def artifact_statistics(target: Mapping[str, Any], concepts: Sequence[str], neutral: Mapping[str, np.ndarray],
                        positive: Mapping[str, np.ndarray], negative: Mapping[str, np.ndarray],
                        steered: Mapping[str, np.ndarray], *, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """Effects, monotonicity, leakage and verdicts of one artifact (see the module docstring).

    Arrays are ``[prompts, seeds]`` (``neutral``, ``positive``, ``negative``: the prompt-gap clips) and
    ``[prompts, seeds, alphas]`` (``steered``, alpha 0 included, alphas in ``target["alphas"]`` order),
    one per panel concept.
    """
    alphas = np.asarray(target["alphas"], dtype=np.float64)
    zero = int(np.flatnonzero(alphas == 0)[0])
    lo_i, hi_i = int(alphas.argmin()), int(alphas.argmax())
    concepts = list(concepts)
    n_p, n_s = neutral[concepts[0]].shape
    own = target["concept"]
    gap_sign = np.sign(positive[own].mean() - negative[own].mean()) or 1.0
    rho_items = spearman_rows(alphas, gap_sign * steered[own].reshape(n_p * n_s, -1)).reshape(n_p, n_s)
    n_a = len(alphas)

    def stat(ri: np.ndarray, ci: np.ndarray) -> np.ndarray:
        out = []
        for c in concepts:
            gap = positive[c][np.ix_(ri, ci)].mean() - negative[c][np.ix_(ri, ci)].mean()
            m = steered[c][np.ix_(ri, ci, np.arange(n_a))].mean((0, 1))
            with np.errstate(all="ignore"):
                frac = np.sign(alphas) * (m - m[zero]) / gap
            out += [gap, *frac]
        out.append(rho_items[np.ix_(ri, ci)].mean())
        return np.asarray(out, dtype=np.float64)

    point = stat(np.arange(n_p), np.arange(n_s))
    cis = crossed_intervals(stat, n_p, n_s, n_boot=n_boot, seed=seed)
    per = 1 + n_a
    effects, gaps = {}, {}
    for k, c in enumerate(concepts):
        g_val, g_ci = point[k * per], cis[k * per]
        gaps[c] = _interval(g_val, g_ci) | {"positive": float(positive[c].mean()), "negative": float(negative[c].mean()),
                                             "clear": bool(g_ci[0] > 0 or g_ci[1] < 0)}
        frac, frac_ci = point[k * per + 1:(k + 1) * per], cis[k * per + 1:(k + 1) * per]
        means = steered[c].mean((0, 1))
        curve = {f"{a:g}": _interval(frac[j], frac_ci[j]) | {"mean": float(means[j])} for j, a in enumerate(alphas)}
        pos_ci, neg_ci = frac_ci[hi_i], frac_ci[lo_i]
        clear = gaps[c]["clear"]
        effects[c] = {
            "toward_positive": _interval(frac[hi_i], pos_ci) | {"verdict": direction_verdict(pos_ci) if clear else "no gap"},
            "toward_negative": _interval(frac[lo_i], neg_ci) | {"verdict": direction_verdict(neg_ci) if clear else "no gap"},
            "curve": curve}
    rho = _interval(point[-1], cis[-1]) | {"verdict": monotonic_verdict(cis[-1])}
    leakage = {c: (leak_verdict([effects[c]["toward_positive"]["ci"], effects[c]["toward_negative"]["ci"]])
                   if gaps[c]["clear"] else "no gap") for c in concepts if c != own}
    tp, tn = effects[own]["toward_positive"]["verdict"], effects[own]["toward_negative"]["verdict"]
    return {**dict(target), "gap": gaps, "effect": effects, "rho": rho, "leakage": leakage,
            "verdict": summary_verdict(tp, tn, target.get("sides", ("+", "-"))) if gaps[own]["clear"] else "no gap",
            "leaks_onto": [c for c, v in leakage.items() if v == "leaks"], "clips": int(n_p * n_s * n_a)}


def _describe(panel) -> dict[str, Any]:
    return panel.describe() if hasattr(panel, "describe") else {"concepts": list(panel.concepts)}


def prompt_adherence(arrays: Mapping[str, Any], spec: Mapping[str, Any], done: Mapping, model: str,
                     seeds: Sequence[int], *, n_boot: int = N_BOOT) -> dict[str, Any]:
    """How often the panel hears what each prompt asks, on the verification's own seeds.

    Two-sided concepts: the share of (base, seed) pairs whose positive prompt measures beyond its negative
    prompt in the direction of the concept's gap (paired; chance 0.5). Classes (the instruments): the share of
    clips the panel's classifier assigns to the class their prompt asks for, and the confusion counts. 95%
    intervals: the crossed bootstrap over prompts and seeds.
    """
    out: dict[str, Any] = {}
    for c in arrays["concepts"]:
        pos, neg = arrays["positive"][c], arrays["negative"][c]
        sign = np.sign(pos.mean() - neg.mean()) or 1.0
        hits = (sign * (pos - neg) > 0).astype(np.float64)
        ci = crossed_intervals(lambda r, k: np.array([hits[np.ix_(r, k)].mean()]), *hits.shape, n_boot=n_boot)[0]
        out[c] = {"accuracy": float(hits.mean()), "ci": [float(ci[0]), float(ci[1])], "chance": 0.5,
                  "n": int(hits.size)}
    classes = spec.get("class_prompts", {}).get(model)
    if classes and all(("classes", model, s) in done for s in seeds):
        names = list(classes)
        n = len(next(iter(classes.values())))
        labels = np.array([done[("classes", model, s)]["labels"] for s in seeds]).T   # [clips, seeds]
        truth = np.repeat(names, n)
        hits = (labels == truth[:, None]).astype(np.float64).reshape(len(names), n, -1)      # [class, base, seed]
        per_base = hits.mean(0)                                                              # [base, seed]
        ci = crossed_intervals(lambda r, k: np.array([per_base[np.ix_(r, k)].mean()]), *per_base.shape,
                               n_boot=n_boot)[0]
        confusion = {t: {p: int((labels[truth == t] == p).sum()) for p in names} for t in names}
        out["classes"] = {"accuracy": float(hits.mean()), "ci": [float(ci[0]), float(ci[1])],
                          "chance": 1 / len(names), "n": int(hits.size), "confusion": confusion,
                          "per_class": {t: float(hits[i].mean()) for i, t in enumerate(names)},
                          "prompt": classes[names[0]][0]}
    return out


def reduce_records(spec: Mapping[str, Any], targets: Sequence[Mapping[str, Any]], done: Mapping,
                   seeds: Sequence[int], command: str | None = None) -> dict[str, Any]:
    """The verification result (``verification.json``) from every unit's record."""
    seeds = [int(x) for x in seeds]
    check = next((r["check"] for u, r in done.items() if u[0] == "check"), None)
    models: dict[str, dict] = {}
    for model, prompts in spec["prompts"].items():
        n = len(prompts)
        gaps = spec["gap_prompts"][model]
        ref = [done[("reference", model, s)]["values"] for s in seeds]
        concepts = list(ref[0])
        arrays = {"neutral": {}, "positive": {}, "negative": {}}
        for c in concepts:
            cols = np.array([r[c] for r in ref], dtype=np.float64).T     # [clips, seeds]
            arrays["neutral"][c] = cols[:n]
            start = n
            for c2 in concepts:
                k = len(gaps[c2][0])
                if c2 == c:
                    arrays["positive"][c] = cols[start:start + k]
                    arrays["negative"][c] = cols[start + k:start + 2 * k]
                start += 2 * k
        models[model] = {"n": n, "concepts": concepts, **arrays}
    results = []
    for target in targets:
        m = models[target["model"]]
        alphas = list(target["alphas"])
        zero = alphas.index(0.0)
        steered = {}
        for c in m["concepts"]:
            per_seed = []
            for j, s in enumerate(seeds):
                v = np.array(done[("steer", target["name"], target["sha256"][:16], s)]["values"][c], dtype=np.float64)
                v = v.reshape(m["n"], len(alphas) - 1)
                per_seed.append(np.insert(v, zero, m["neutral"][c][:, j], axis=1))
            steered[c] = np.stack(per_seed, axis=1)            # [prompts, seeds, alphas]
        results.append(artifact_statistics(target, m["concepts"], m["neutral"], m["positive"], m["negative"],
                                           steered, seed=len(results)))
    adherence = {model: prompt_adherence(models[model], spec, done, model, seeds) for model in models}
    seconds = sum(float(r.get("seconds", 0.0)) for r in done.values())
    return {"kind": "tada-verification", "format_version": 1, "seeds": seeds, "prompts": spec["prompts"],
            "settings": spec["settings"], "thresholds": {"effect": EFFECT, "rho": RHO, "level": 0.95, "n_boot": N_BOOT},
            "panel": spec["panel"], "panel_check": check, "adherence": adherence, "wall_seconds": round(seconds, 1), "command": command,
            "gap_prompts": spec["gap_prompts"], "artifacts": results}


# --------------------------------------------------------------------------------------
# reading and rendering
# --------------------------------------------------------------------------------------
def read_results(path: str | Path) -> dict[str, Any]:
    """A ``verification.json`` (or the folder holding one), checked for its kind."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULT_FILE
    if not path.is_file():
        raise TadaError(f"no verification results at {path.name!r}; run `tada verify --out DIR` first")
    data = read_json(path)
    if not isinstance(data, dict) or data.get("kind") != "tada-verification" or not isinstance(data.get("artifacts"), list):
        raise TadaError(f"{path.name} is not a tada verification result (kind {data.get('kind') if isinstance(data, dict) else None!r})")
    return data


def find(results: Mapping[str, Any], name: str, sha256: str | None = None) -> dict[str, Any] | None:
    """An artifact's entry in ``results`` by name, only if its tensors are the ones verified (``sha256``)."""
    for a in results["artifacts"]:
        if a["name"] == name and (sha256 is None or a["sha256"] == sha256):
            return a
    return None


def verified_lines(results: Mapping[str, Any] | None, name: str, sha256: str) -> list[str]:
    """What ``tada verify`` found for one artifact (its tensors and config exactly), as plain lines; or why
    nothing is known. Names no file, so a server can show it."""
    if results is None:
        return ["not verified: no `tada verify` results are available"]
    a = find(results, name, sha256)
    if a is None:
        stale = find(results, name) is not None
        return [f"not verified: {'it changed since the' if stale else 'it is not among the artifacts of the'} "
                f"`tada verify` run on seeds {results['seeds']}"]
    t = artifact_lines(a)
    return [f"verified on fresh seeds {results['seeds']} ({a['clips']} clips, third-party measures): {a['verdict']}",
            f"toward +: {t['toward_positive']} of the prompt gap",
            f"toward -: {t['toward_negative']} of the prompt gap",
            f"monotonic: {t['rho']}",
            f"leaks onto: {t['leaks']}" + (f"; unclear: {t['unclear_leaks']}" if t["unclear_leaks"] != "none" else "")]


def _num(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:+.2f}"


def _iv(d: Mapping[str, Any]) -> str:
    return f"{_num(d['value'])} [{_num(d['ci'][0])}, {_num(d['ci'][1])}]"


def side_names(concept_set, concept: str) -> tuple[str, str]:
    """Short names of a concept's two sides ("fast" / "slow"), from its templates; ("+", "-") when unknown."""
    try:
        c = concept_set.get(concept)
        pos, neg = c.positive.replace("{base}", "").split(), c.negative.replace("{base}", "").split()
        a, b = [w for w in pos if w not in neg], [w for w in neg if w not in pos]
        if set(a + b) <= {"with", "without", "no"}:        # "with drums" / "without drums": keep the phrase
            a, b = [w for w in pos if w not in ("a", "an")], [w for w in neg if w not in ("a", "an")]
        return (" ".join(a) or "+", " ".join(b) or "-")
    except (TadaError, AttributeError):
        return ("+", "-")


def artifact_lines(a: Mapping[str, Any], sides: tuple[str, str] = ("+", "-")) -> dict[str, str]:
    """Plain-text cells for one artifact: each direction, monotonicity, leakage, verdict."""
    e = a["effect"][a["concept"]]
    leaks = [f"{c} ({_leak_size(a, c)})" for c in a["leaks_onto"]]
    unclear = [c for c, v in a["leakage"].items() if v == "unclear"]
    return {"toward_positive": f"{e['toward_positive']['verdict']} {_iv(e['toward_positive'])}",
            "toward_negative": f"{e['toward_negative']['verdict']} {_iv(e['toward_negative'])}",
            "rho": f"{a['rho']['verdict']} {_iv(a['rho'])}",
            "leaks": ", ".join(leaks) or "none", "unclear_leaks": ", ".join(unclear) or "none",
            "verdict": a["verdict"], "sides": f"{sides[0]} / {sides[1]}"}


def _leak_size(a: Mapping[str, Any], concept: str) -> str:
    e = a["effect"][concept]
    d = max((e["toward_positive"], e["toward_negative"]), key=lambda x: abs(x["value"]) if math.isfinite(x["value"]) else 0)
    which = "+max" if d is e["toward_positive"] else "-max"
    return f"{which}: {_iv(d)}"


def verdict_table(results: Mapping[str, Any], concept_sets: Mapping[str, Any] | None = None) -> str:
    """The verdict table: one row per artifact (Markdown)."""
    rows = ["| artifact | concept (+ / -) | toward + (fraction of the prompt gap) | toward - | monotonic (Spearman rho) "
            "| leaks onto (effect at the larger end) | verdict |", "|---|---|---|---|---|---|---|"]
    for a in results["artifacts"]:
        sides = tuple(a.get("sides") or (side_names(concept_sets[a["model"]], a["concept"])
                                         if concept_sets and a["model"] in concept_sets else ("+", "-")))
        t = artifact_lines(a, sides)
        rows.append(f"| `{a['name']}` | {a['concept']} ({t['sides']}) | {t['toward_positive']} | {t['toward_negative']} "
                    f"| {t['rho']} | {t['leaks']} | **{t['verdict']}** |")
    return "\n".join(rows)


def leakage_table(results: Mapping[str, Any]) -> str:
    """Every artifact's effect on every panel concept at both ends (fractions of each concept's prompt gap)."""
    concepts = sorted({c for a in results["artifacts"] for c in a["effect"]},
                      key=lambda c: next(list(a["effect"]).index(c) for a in results["artifacts"] if c in a["effect"]))
    rows = ["| artifact | end | " + " | ".join(concepts) + " |", "|---|---|" + "---|" * len(concepts)]
    for a in results["artifacts"]:
        for key, end in (("toward_positive", "+max"), ("toward_negative", "-max")):
            cells = []
            for c in concepts:
                if c not in a["effect"]:
                    cells.append("-")
                    continue
                d = a["effect"][c][key]
                cell = _iv(d)
                cells.append(f"**{cell}**" if c == a["concept"] else cell)
            rows.append(f"| `{a['name']}` | {end} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def gap_table(results: Mapping[str, Any]) -> str:
    rows = ["| model | concept | positive prompts | negative prompts | gap [95% interval] |", "|---|---|---|---|---|"]
    seen = set()
    for a in results["artifacts"]:
        for c, g in a["gap"].items():
            if (a["model"], c) in seen:
                continue
            seen.add((a["model"], c))
            pos, neg = results["gap_prompts"][a["model"]][c]
            rows.append(f"| {a['model']} | {c} | {g['positive']:.4g} (`{pos[0]}`, ...) | {g['negative']:.4g} "
                        f"(`{neg[0]}`, ...) | {g['value']:.4g} [{g['ci'][0]:.4g}, {g['ci'][1]:.4g}]"
                        f"{'' if g['clear'] else ' (not clear)'} |")
    return "\n".join(rows)


def adherence_table(results: Mapping[str, Any]) -> str:
    rows = ["| model | concept | agreement [95% interval] | chance | clips |", "|---|---|---|---|---|"]
    for model, per in (results.get("adherence") or {}).items():
        for c, r in per.items():
            rows.append(f"| {model} | {'instrument (4-way)' if c == 'classes' else c} | {r['accuracy']:.3f} "
                        f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | {r['chance']:.2f} | {r['n']} |")
        cls = per.get("classes")
        if cls:
            names = list(cls["confusion"])
            rows += ["", f"{model}, instruments asked for (rows) and heard by the classifier (columns):", "",
                     "| asked \\ heard | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
            rows += [f"| {t} | " + " | ".join(str(cls["confusion"][t][p]) for p in names) + " |" for t in names]
            rows.append("")
    return "\n".join(rows)


def check_table(check: Mapping[str, Any] | None) -> str:
    if not check:
        return "(the panel check was not run)"
    rows = ["| concept | on held-out synthesizer clips | clips |", "|---|---|---|"]
    for c, r in check.items():
        what = (f"4-way accuracy {r['accuracy']:.3f}" + (" (" + ", ".join(f"{k} {v:.2f}" for k, v in r["per_class"].items())
                                                           + ")" if "per_class" in r else "") if "accuracy" in r else
                f"separation {r['separation']:.3f}" + (f"; within 8% of the true tempo {r['within_8_percent']:.3f}"
                                                       if "within_8_percent" in r else "")
                + (f"; clips without a voice read as voiced: {r['no_voice_read_as_voice']:.3f} of "
                   f"{r['no_voice_clips']}" if "no_voice_read_as_voice" in r else ""))
        rows.append(f"| {c} | {what} | {r['n']} |")
    return "\n".join(rows)


def report_markdown(results: Mapping[str, Any], concept_sets: Mapping[str, Any] | None = None,
                    labels: Mapping[str, str] | None = None) -> str:
    """``verification.md``: how it was made, the panel, the verdicts, the leakage, the prompt gaps."""
    t = results["thresholds"]
    n_prompts = {m: len(p) for m, p in results["prompts"].items()}
    parts = [
        "# Verification of the shipped steering artifacts",
        "",
        f"Made by `{results.get('command') or 'tada verify'}` on fresh seeds {results['seeds']} "
        f"({', '.join(f'{n} prompts on {m}' for m, n in n_prompts.items())}; every prompt with every seed), "
        f"{results['wall_seconds']:.0f} s of generation and measurement. Nothing was fitted on these seeds. "
        f"Each artifact is swept over alpha in {{-max, -max/2, 0, max/2, max}} of its validated range; effects are "
        f"fractions of the concept's prompt gap (the measured difference between its contrastive prompts on the same "
        f"seeds), signed so that a move in the intended direction is positive, with {t['level']:.0%} intervals from a "
        f"crossed bootstrap over prompts and seeds ({t['n_boot']} draws). Verdicts: steers = interval at or above "
        f"{t['effect']}, reverses = at or below -{t['effect']}, no effect = inside (-{t['effect']}, {t['effect']}), "
        f"else unclear; monotonic = rho's interval at or above {t['rho']}. See `docs/verification.md`.",
        "", "## Verdicts", "", verdict_table(results, concept_sets), "",
        "## Effect of every artifact on every concept", "",
        "Fractions of each concept's own prompt gap at +max and -max (the artifact's own concept in bold).", "",
        leakage_table(results), "", "![Effects](effects.png)", "",
        "## Prompt gaps (the yardsticks)", "", gap_table(results), "",
        "## Prompt adherence heard by the panel", "",
        "On the same seeds: the share of (base, seed) pairs whose positive prompt measures beyond its negative one "
        "(chance 0.5), and the classifier's 4-way agreement with the instrument a prompt asks for.", "",
        adherence_table(results), "",
        "## The panel on ground truth", "",
        "Each measure on held-out synthesizer clips with known attributes (separation: the share of clips on the "
        "side of the midpoint between the two classes' medians that their truth says).", "",
        check_table(results.get("panel_check"))]
    if labels:
        parts += ["", "Measures: " + "; ".join(f"**{c}**: {lab}" for c, lab in labels.items()) + "."]
    return "\n".join(parts) + "\n"


def compare_runs(new: Mapping[str, Any], old: Mapping[str, Any]) -> tuple[str, bool]:
    """Does ``new`` (a run on other seeds) reproduce ``old``'s verdicts? A Markdown table and whether every
    verdict was reproduced: per artifact in both, and per direction of its own concept, the new effect must lie
    within the old interval or the two verdicts must agree; "unclear" in either reproduces nothing and
    contradicts nothing (it is listed, not counted against)."""
    rows = ["| artifact | direction | verdict (committed) | verdict (this run) | committed effect | this run's effect "
            "| reproduced |", "|---|---|---|---|---|---|---|"]
    ok = True
    for a in new["artifacts"]:
        b = find(old, a["name"], a["sha256"])
        if b is None:
            rows.append(f"| `{a['name']}` | - | not in the committed run | | | | - |")
            continue
        for key, label in (("toward_positive", "toward +"), ("toward_negative", "toward -")):
            e_new, e_old = a["effect"][a["concept"]][key], b["effect"][b["concept"]][key]
            within = e_old["ci"][0] <= e_new["value"] <= e_old["ci"][1]
            same = e_new["verdict"] == e_old["verdict"]
            unclear = "unclear" in (e_new["verdict"], e_old["verdict"])
            verdict = "yes" if same or within else ("unclear" if unclear else "**no**")
            ok &= verdict != "**no**"
            rows.append(f"| `{a['name']}` | {label} | {e_old['verdict']} | {e_new['verdict']} | {_iv(e_old)} | "
                        f"{_iv(e_new)} | {verdict} |")
    return "\n".join(rows), ok


def effects_figure(results: Mapping[str, Any], path: str | Path) -> Path:
    """A heatmap: rows are artifact x end (+max, -max), columns the panel's concepts, cells the effect fraction."""
    from tada_core.evaluation.plots import heatmap_png

    concepts = list(results["artifacts"][0]["effect"])
    rows, values = [], []
    for a in results["artifacts"]:
        for key, end in (("toward_positive", "+max"), ("toward_negative", "-max")):
            rows.append(f"{a['name']} {end}")
            values.append([a["effect"][c][key]["value"] if c in a["effect"] else float("nan") for c in concepts])
    return heatmap_png(np.array(values), rows, concepts, path,
                       title="Effect on each concept (fresh seeds)", cell=40,
                       x_label="measured concept", y_label="artifact, end of its alpha range",
                       colorbar_label="fraction of the prompt gap", vmin=-1.0, vmax=1.0)


def write_results(folder: str | Path, result: Mapping[str, Any], concept_sets: Mapping[str, Any] | None = None,
                  labels: Mapping[str, str] | None = None) -> None:
    folder = Path(folder)
    write_json(folder / RESULT_FILE, result)
    (folder / "verification.md").write_text(report_markdown(result, concept_sets, labels))
    effects_figure(result, folder / "effects.png")


def docs_block(results: Mapping[str, Any], name: str, source: str,
               concept_sets: Mapping[str, Any] | None = None) -> str:
    """The generated text between a doc's markers: ``name`` "summary" (one line per verdict) or "table"."""
    if name == "table":
        body = verdict_table(results, concept_sets)
    elif name == "summary":
        groups: dict[str, list[str]] = {}
        labels = [f"{a['concept']} {a['method'].upper()}" + ("" if a["model"] == "tada-organism" else f" ({a['model']})")
                  for a in results["artifacts"]]
        for a, label in zip(results["artifacts"], labels):
            e = a["effect"][a["concept"]]
            if labels.count(label) > 1:
                label += f" (`{a['name']}`)"
            sides = a.get("sides") or ("+", "-")
            detail = (f"{label} (toward {sides[0]} {_num(e['toward_positive']['value'])}, toward {sides[1]} "
                      f"{_num(e['toward_negative']['value'])}"
                      + (f"; leaks onto {', '.join(a['leaks_onto'])}" if a["leaks_onto"] else "") + ")")
            groups.setdefault(a["verdict"], []).append(detail)
        n_clips = sum(a["clips"] for a in results["artifacts"])
        body = "\n".join([f"Verified by `tada verify` on fresh seeds {results['seeds']} ({n_clips} sweep clips, "
                          f"third-party measures; effects as fractions of each concept's prompt gap, 0.25 or more "
                          f"with the whole 95% interval to steer):"] +
                         [f"- **{v}**: {'; '.join(items)}" for v, items in sorted(groups.items())])
    elif name == "adherence":
        lines = []
        for model, per in (results.get("adherence") or {}).items():
            two = {c: r for c, r in per.items() if c != "classes"}
            low = min(two.values(), key=lambda r: r["accuracy"]) if two else None
            line = (f"- **{model}**: the panel hears each two-sided prompt pair the right way round in "
                    f"{min(r['accuracy'] for r in two.values()):.2f}-{max(r['accuracy'] for r in two.values()):.2f} "
                    f"of pairs (lowest: {next(c for c, r in two.items() if r is low)} "
                    f"{low['accuracy']:.3f} [{low['ci'][0]:.3f}, {low['ci'][1]:.3f}])") if two else f"- **{model}**"
            cls = per.get("classes")
            if cls:
                heard = {t: max(row, key=row.get) for t, row in cls["confusion"].items()}
                misses = [f"{t} mostly as {h}" for t, h in heard.items() if h != t]
                line += (f"; the independent instrument classifier agrees with the prompt on {cls['accuracy']:.2f} "
                         f"[{cls['ci'][0]:.2f}, {cls['ci'][1]:.2f}] of 4-way prompts (chance 0.25; "
                         + ", ".join(f"{t} {v:.2f}" for t, v in cls["per_class"].items())
                         + (f"; heard: {', '.join(misses)}" if misses else "") + ")")
            lines.append(line + ".")
        body = "\n".join(lines)
    else:
        raise TadaError(f"unknown docs block {name!r}; known: summary, table, adherence")
    return f"{DOCS_BEGIN.format(name=name, source=source)}\n{body}\n{DOCS_END.format(name=name)}"


CARD_BEGIN = "<!-- tada verify: begin card (generated by `tada verify --cards`; do not edit) -->"
CARD_END = "<!-- tada verify: end card -->"


def card_section(results: Mapping[str, Any] | None, folder: str | Path) -> str:
    """The model card's "what it does on fresh seeds" section for the artifact in ``folder``."""
    folder = Path(folder)
    lines = verified_lines(results, folder.name, artifact_sha256(folder))
    body = ["## What it does on fresh seeds (`tada verify`)", "",
            "Measured with third-party measures on seeds nothing was fitted on; effects are fractions of the "
            "concept's prompt gap with 95% intervals (docs/verification.md of the tada-steer repository).", ""]
    body += [f"- {line}" for line in lines]
    return f"{CARD_BEGIN}\n" + "\n".join(body) + f"\n{CARD_END}"


def sync_card(folder: str | Path, results: Mapping[str, Any] | None, *, write: bool = True) -> bool:
    """Put :func:`card_section` into the folder's README.md (replacing an older one, else at the end); returns
    whether it was already current. The card is not part of what is verified (tensors and config are)."""
    import re

    card = Path(folder) / "README.md"
    text = card.read_text() if card.is_file() else ""
    section = card_section(results, folder)
    pattern = re.compile(re.escape(CARD_BEGIN) + ".*?" + re.escape(CARD_END), re.S)
    new = pattern.sub(lambda m: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
    if write and new != text:
        card.write_text(new)
    return new == text


def sync_docs(path: str | Path, results: Mapping[str, Any], source: str,
              concept_sets: Mapping[str, Any] | None = None, *, write: bool = True) -> bool:
    """Rewrite every generated block of ``path`` from ``results``; returns whether the file was already current.

    A block is the text between ``<!-- tada verify: begin NAME ... -->`` and ``<!-- tada verify: end NAME -->``.
    """
    import re

    path = Path(path)
    text = path.read_text()
    pattern = re.compile(r"<!-- tada verify: begin (\w+) .*?-->\n.*?<!-- tada verify: end \1 -->", re.S)
    if not pattern.search(text):
        raise TadaError(f"{path.name} has no `<!-- tada verify: begin NAME -->` block to fill")
    new = pattern.sub(lambda m: docs_block(results, m.group(1), source, concept_sets), text)
    if write and new != text:
        path.write_text(new)
    return new == text


__all__ = ["Target", "Models", "artifact_sha256", "verification_job", "artifact_statistics", "reduce_records", "direction_verdict",
           "monotonic_verdict", "leak_verdict", "summary_verdict", "spearman_rows", "fresh_seeds", "read_results",
           "find", "compare_runs", "verified_lines", "verdict_table", "leakage_table", "report_markdown", "write_results", "docs_block", "sync_docs", "sync_card", "card_section",
           "EFFECT", "RHO", "ALPHA_FRACTIONS"]
