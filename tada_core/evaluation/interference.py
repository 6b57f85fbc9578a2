"""Interference of composed steering vectors: does "A + B" do what A and B do alone?

For a set of steering vectors of one model (one per concept, one method: the shipped CAA vectors,
or the SAE ones), :func:`interference_job` generates, on fresh seeds and the model's neutral prompts:

* the unsteered clips and each concept's contrastive prompts (the concept's **prompt gap**, the
  yardstick of every effect, as in :mod:`tada_core.evaluation.verification`);
* every vector alone at +max and -max of its validated range (the grid's edges);
* every pair A + B at the four sign combinations (+-max_A, +-max_B), with
  :func:`~tada_core.artifacts.compose.compose`, and once more with ``orthogonalize=True`` for the pairs
  whose vectors have |cos| >= ``MIN_COSINE`` on a common layer (on layers one vector steers alone the option
  changes nothing, and below that cosine it moves a vector by less than the measurement resolves);

and measures every clip with the model's verification panel (third-party measures) and the benchmark's
quality measure (typicality, :class:`~tada_core.evaluation.benchmark.quality.Typicality`).

With ``delta_c(X)`` the mean change of concept c's measure under condition X from the unsteered clip of
the same prompt and seed, as a fraction of c's prompt gap, and ``d_A = +-1`` the direction A is applied in:

* **cross-talk** of A onto concept c: ``delta_c(A)``, A alone (what verification calls leakage);
* **interaction** on A's concept in the pair: ``d_A (delta_cA(A + B) - delta_cA(A) - delta_cA(B))``: how
  far the joint effect on A's concept falls short of (negative) or exceeds (positive) the sum of the
  single effects. 0 is additive. B's own cross-talk onto A's concept is part of the sum, not of the
  interaction.

Verdicts use the verification's threshold (``EFFECT``, 0.25 of the prompt gap) on 95% intervals of a
crossed bootstrap over prompts and seeds: a pair is **additive** on a concept when the interaction's
interval lies inside (-EFFECT, EFFECT) at all four sign combinations, **interferes** when at one of them
it lies beyond; it **composes cleanly** when it is additive on both concepts and neither vector alone
leaks onto the other's concept. Quality: each condition's mean typicality against the **normal floor**,
the 5th percentile of the typicality of unsteered clips (the contrastive prompts' clips, scored out of
sample: two folds over seeds); a condition **leaves the normal range** when its mean's interval lies
below the floor.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tada_core.errors import TadaError
from tada_core.evaluation.stats import crossed_intervals
from tada_core.evaluation.verification import EFFECT, Models, Target, _generate, _measure, timed
from tada_core.runtime.io import write_json
from tada_core.runtime.jobs import Job, Stage

logger = logging.getLogger(__name__)

SIGNS = (1, -1)
COMBOS = tuple(itertools.product(SIGNS, SIGNS))   # (d_A, d_B): the four corners of the grid
FLOOR_QUANTILE = 0.05
N_BOOT = 1000
RESULT_FILE = "interference.json"


@dataclasses.dataclass(frozen=True)
class Group:
    """The vectors of one method whose pairs are measured (one per concept)."""

    method: str
    targets: tuple[Target, ...]

    def pairs(self) -> list[tuple[Target, Target]]:
        return list(itertools.combinations(self.targets, 2))


MIN_COSINE = 0.2   # orthogonalized pairs: those with |cos| at least this on a shared layer


def shares_layers(a: Target, b: Target) -> bool:
    """Whether two vectors steer a common layer (where ``orthogonalize`` can change anything)."""
    return bool(set(a.layers) & set(b.layers))


def shared_cosine(va, vb, a: Target, b: Target) -> float:
    """The largest |cosine| between two steering vectors on the layers both steer (per step, for per-step
    vectors); 0 when they share none. Below ``MIN_COSINE`` orthogonalizing moves each by less than about a tenth
    of its norm (|cos| / 2), which the measurement would not resolve."""
    import torch

    best = 0.0
    for layer in sorted(set(a.layers) & set(b.layers)):
        x = va.injected([layer])[layer].to(torch.float64)
        y = vb.injected([layer])[layer].to(torch.float64)
        cos = torch.nn.functional.cosine_similarity(x, y, dim=-1)
        best = max(best, float(cos.abs().max()))
    return best


def _top(t: Target) -> float:
    return float(max(abs(x) for x in t.alphas))


def _embed(audio, sample_rate: int) -> list[list[float]]:
    from tada_core.evaluation.benchmark.quality import logmel_stats

    return np.round(logmel_stats(audio, sample_rate), 3).tolist()


def interference_job(groups: Sequence[Group], seeds: Sequence[int], models: Models, *, model: str,
                     prompts: Sequence[str], gap_prompts: Mapping[str, tuple], settings,
                     orthogonalize: float | None = MIN_COSINE, command: str | None = None) -> Job:
    """The resumable job of ``tada interference`` (see the module docstring).

    ``prompts``: the neutral prompts (one per base); ``gap_prompts[concept]``: (positive, negative) prompts on
    the same bases; ``settings``: resolved generation settings. ``orthogonalize``: the pairs whose vectors have
    |cos| at least this on a shared layer (:func:`shared_cosine`) are measured orthogonalized as well; None: none.
    Units: per seed the reference clips, per vector and seed its two ends, per pair and seed its four corners;
    then the orthogonalized pairs. Every record keeps the panel's values and the typicality embedding of each
    clip.
    """
    from tada_core.artifacts.compose import compose

    seeds = [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds) or len(seeds) < 2:
        raise TadaError(f"interference needs at least two distinct seeds (intervals over seeds); got {seeds}")
    groups = list(groups)
    for g in groups:
        if len(g.targets) < 2:
            raise TadaError(f"method {g.method!r}: pairs need at least two vectors; got {[t.name for t in g.targets]}")
        concepts = [t.concept for t in g.targets]
        if len(set(concepts)) != len(concepts):
            raise TadaError(f"method {g.method!r}: one vector per concept, got concepts {concepts}")
        for t in g.targets:
            if t.model != model:
                raise TadaError(f"{t.name} is a vector of {t.model!r}, not of {model!r}")
    names = [t.name for g in groups for t in g.targets]
    if len(set(names)) != len(names):
        raise TadaError(f"a vector appears twice: {names}")
    panel = models.panel(model)
    spec = {"kind": "tada-interference", "model": model, "prompts": list(prompts),
            "gap_prompts": {c: [list(p), list(n)] for c, (p, n) in gap_prompts.items()},
            "settings": settings.to_dict(),
            "panel": panel.describe() if hasattr(panel, "describe") else {"concepts": list(panel.concepts)}}
    by_name = {t.name: t for g in groups for t in g.targets}
    # the orthogonalized pairs are not part of the spec: a folder run without them (--no-orthogonalize) can add
    # them later, and a run with them keeps the plain pairs' records
    ortho_setting = None if orthogonalize is None else {"min_cosine": float(orthogonalize)}

    def measured(unit, audio, adapter):
        return {"unit": list(unit), "values": _measure(panel, audio, adapter.sample_rate),
                "embedding": _embed(audio, adapter.sample_rate)}

    def do_reference(unit):
        seed = unit[1]
        adapter = models.adapter(model)
        batch = list(prompts)
        for c in panel.concepts:
            pos, neg = gap_prompts[c]
            batch += list(pos) + list(neg)
        return measured(unit, _generate(adapter, batch, [seed] * len(batch), settings), adapter)

    def do_single(unit):
        _, name, _, seed = unit
        t = by_name[name]
        adapter = models.adapter(model)
        batch = [p for p in prompts for _ in SIGNS]
        alphas = [d * _top(t) for _ in prompts for d in SIGNS]
        return measured(unit, _generate(adapter, batch, [seed] * len(batch), settings, alphas, models.vector(t)),
                        adapter)

    def do_pair(unit):
        _, a_name, b_name, ortho, _, seed = unit
        a, b = by_name[a_name], by_name[b_name]
        adapter = models.adapter(model)
        batch = [p for p in prompts for _ in COMBOS]
        alpha_a = [da * _top(a) for _ in prompts for da, _ in COMBOS]
        alpha_b = [db * _top(b) for _ in prompts for _, db in COMBOS]
        out = []
        import torch

        for k in range(0, len(batch), settings.batch_size):
            sl = slice(k, k + settings.batch_size)
            with compose(adapter, [(models.vector(a), alpha_a[sl]), (models.vector(b), alpha_b[sl])],
                         orthogonalize=bool(ortho)):
                out.append(adapter.generate(batch[sl], seeds=[seed] * len(batch[sl]), settings=settings).audio)
        return measured(unit, torch.cat(out), adapter)

    singles = [("single", t.name, t.sha256[:16], s) for g in groups for t in g.targets for s in seeds]
    pairs = []
    for g in groups:
        ortho = []
        for a, b in g.pairs():
            pairs += [("pair", a.name, b.name, 0, a.sha256[:8] + b.sha256[:8], s) for s in seeds]
            cos = shared_cosine(models.vector(a), models.vector(b), a, b) if shares_layers(a, b) else 0.0
            if orthogonalize is not None and cos >= orthogonalize:
                ortho.append((-cos, a.name, b.name, [("pair", a.name, b.name, 1, a.sha256[:8] + b.sha256[:8], s)
                                                     for s in seeds]))
        # per method, its plain pairs, then its orthogonalized ones from the most parallel pair down: a run cut
        # short has the first methods' whole matrices, and orthogonalized pairs exactly above some |cos|
        pairs += [u for *_, units in sorted(ortho, key=lambda x: x[:3]) for u in units]
    stages = [Stage([("reference", s) for s in seeds], timed(do_reference)),
              Stage(singles, timed(do_single)), Stage(pairs, timed(do_pair))]

    cosines = {(a.name, b.name): round(shared_cosine(models.vector(a), models.vector(b), a, b), 4)
               for g in groups for a, b in g.pairs()}

    def reduce(done):
        return reduce_records(spec | {"orthogonalize": ortho_setting},
                              [(g.method, [t.to_dict() for t in g.targets]) for g in groups], done, seeds,
                              command=command, cosines=cosines)

    def write(folder: Path, result: dict, done) -> None:
        write_results(folder, result)

    return Job(name="interference", spec=spec, stages=stages, reduce=reduce, write=write, unit="call",
               what="interference")


# --------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------
def typicality_folds(reference_embeddings: np.ndarray, embeddings: np.ndarray) -> tuple[np.ndarray, float]:
    """Out-of-sample typicality of every clip, and the normal floor.

    ``reference_embeddings``: ``[clips, seeds, dim]`` of unsteered clips (the contrastive prompts');
    ``embeddings``: ``[conditions, prompts, seeds, dim]``. Seeds are split in two folds; a clip of a seed in
    one fold is scored by the typicality fitted on the other fold's reference clips, so no clip is scored by
    a fit it was part of. The floor is the ``FLOOR_QUANTILE`` quantile of the reference clips' own
    out-of-sample typicality. Returns (``[conditions, prompts, seeds]`` typicality, floor).
    """
    from tada_core.evaluation.benchmark.quality import Typicality

    n_seeds = reference_embeddings.shape[1]
    folds = [np.arange(n_seeds)[: n_seeds // 2], np.arange(n_seeds)[n_seeds // 2:]]
    out = np.zeros(embeddings.shape[:3])
    ref_scores = np.zeros(reference_embeddings.shape[:2])
    for k, fold in enumerate(folds):
        other = folds[1 - k]
        q = Typicality()
        q.fit_embeddings(reference_embeddings[:, other].reshape(-1, reference_embeddings.shape[-1]))
        ref_scores[:, fold] = q.score_embeddings(
            reference_embeddings[:, fold].reshape(-1, reference_embeddings.shape[-1])).reshape(-1, len(fold))
        e = embeddings[:, :, fold]
        out[:, :, fold] = q.score_embeddings(e.reshape(-1, e.shape[-1])).reshape(e.shape[:3])
    return out, float(np.quantile(ref_scores, FLOOR_QUANTILE))


def _interval(value: float, ci: Sequence[float]) -> dict[str, Any]:
    return {"value": float(value), "ci": [float(ci[0]), float(ci[1])]}


def band_verdict(cis: Sequence[Sequence[float]], threshold: float = EFFECT) -> str:
    """"additive" when every interval lies inside (-threshold, threshold), "interferes" when one lies beyond
    it on either side, else "unclear"."""
    if any(lo >= threshold or hi <= -threshold for lo, hi in cis):
        return "interferes"
    if all(-threshold < lo and hi < threshold for lo, hi in cis):
        return "additive"
    return "unclear"


def leak_verdict(cis: Sequence[Sequence[float]], threshold: float = EFFECT) -> str:
    v = band_verdict(cis, threshold)
    return {"interferes": "leaks", "additive": "no leak"}[v] if v != "unclear" else "unclear"


def pair_verdict(on_a: str, on_b: str, a_onto_b: str, b_onto_a: str) -> str:
    """"composes cleanly", "interferes" or "unclear" from the pair's four verdicts."""
    if "interferes" in (on_a, on_b) or "leaks" in (a_onto_b, b_onto_a):
        return "interferes"
    if (on_a, on_b, a_onto_b, b_onto_a) == ("additive", "additive", "no leak", "no leak"):
        return "composes cleanly"
    return "unclear"


def group_statistics(method: str, targets: Sequence[Mapping[str, Any]], concepts: Sequence[str],
                     arrays: Mapping[str, Any], *, orthogonalize: Any = None, n_boot: int = N_BOOT,
                     seed: int = 0) -> dict[str, Any]:
    """Cross-talk, interactions, quality and verdicts of one method's vectors and pairs.

    ``arrays``: ``values[condition][concept]`` ``[prompts, seeds]`` (conditions: ``"none"``, ``(name, d)`` for a
    vector alone, ``(a, b, ortho, d_a, d_b)`` for a pair), ``positive`` / ``negative`` ``[concept]`` (the prompt gap's
    clips), ``quality[condition]`` ``[prompts, seeds]`` and the ``floor``.
    """
    concepts = list(concepts)
    conds = list(arrays["values"])
    index = {c: k for k, c in enumerate(conds)}
    x = np.stack([np.stack([arrays["values"][k][c] for c in concepts]) for k in conds])     # [K, C, P, S]
    pos = np.stack([arrays["positive"][c] for c in concepts])                              # [C, P, S]
    neg = np.stack([arrays["negative"][c] for c in concepts])
    qual = np.stack([arrays["quality"][k] for k in conds])                                 # [K, P, S]
    n_p, n_s = x.shape[2:]
    ci_of = {c: j for j, c in enumerate(concepts)}
    names = [t["name"] for t in targets]
    concept_of = {t["name"]: t["concept"] for t in targets}
    pairs = [(a, b, o) for k in conds if len(k) == 5 for a, b, o in [k[:3]]]
    pairs = list(dict.fromkeys(pairs))

    layout: list[tuple] = []   # what each entry of the statistic vector is

    def stat(ri: np.ndarray, si: np.ndarray, record: bool = False) -> np.ndarray:
        m = x[:, :, ri][:, :, :, si].mean((2, 3))                                          # [K, C]
        gap = pos[:, ri][:, :, si].mean((1, 2)) - neg[:, ri][:, :, si].mean((1, 2))
        with np.errstate(all="ignore"):
            delta = (m - m[index["none"]]) / gap
        q = qual[:, ri][:, :, si].mean((1, 2))
        out = list(gap) + list(q)
        if record:
            layout.extend([("gap", c) for c in concepts] + [("quality", k) for k in conds])
        for name in names:
            for d in SIGNS:
                for c in concepts:
                    out.append(delta[index[(name, d)], ci_of[c]])
                    if record:
                        layout.append(("single", name, d, c))
        for a, b, o in pairs:
            ca, cb = ci_of[concept_of[a]], ci_of[concept_of[b]]
            for da, db in COMBOS:
                j = delta[index[(a, b, o, da, db)]]
                on_a = da * (j[ca] - delta[index[(a, da)], ca] - delta[index[(b, db)], ca])
                on_b = db * (j[cb] - delta[index[(b, db)], cb] - delta[index[(a, da)], cb])
                out += [on_a, on_b, da * j[ca], db * j[cb]]
                if record:
                    layout.extend([("interaction", a, b, o, da, db, "a"), ("interaction", a, b, o, da, db, "b"),
                                   ("joint", a, b, o, da, db, "a"), ("joint", a, b, o, da, db, "b")])
        return np.asarray(out, dtype=np.float64)

    point = stat(np.arange(n_p), np.arange(n_s), record=True)
    cis = crossed_intervals(stat, n_p, n_s, n_boot=n_boot, seed=seed)
    val = {key: _interval(point[k], cis[k]) for k, key in enumerate(layout)}
    floor = float(arrays["floor"])

    def quality(cond) -> dict[str, Any]:
        v = val[("quality", cond)]
        return v | {"leaves_normal_range": bool(v["ci"][1] < floor)}

    gaps = {c: val[("gap", c)] | {"clear": bool(val[("gap", c)]["ci"][0] > 0 or val[("gap", c)]["ci"][1] < 0)}
            for c in concepts}
    vectors = []
    for t in targets:
        name = t["name"]
        effect = {c: {("+max" if d > 0 else "-max"): val[("single", name, d, c)] for d in SIGNS} for c in concepts}
        own = {"toward_positive": _directed(val[("single", name, 1, t["concept"])], 1),
               "toward_negative": _directed(val[("single", name, -1, t["concept"])], -1)}
        vectors.append({"name": name, "concept": t["concept"], "layers": list(t["layers"]), "sha256": t.get("sha256"),
                        "alpha": _top_of(t), "effect": effect, "own": own,
                        "quality": {("+max" if d > 0 else "-max"): quality((name, d)) for d in SIGNS}})
    results = []
    for a, b, o in pairs:
        ca, cb = concept_of[a], concept_of[b]
        corners = []
        for da, db in COMBOS:
            corners.append({"signs": [da, db],
                            "interaction_a": val[("interaction", a, b, o, da, db, "a")],
                            "interaction_b": val[("interaction", a, b, o, da, db, "b")],
                            "joint_a": val[("joint", a, b, o, da, db, "a")],
                            "joint_b": val[("joint", a, b, o, da, db, "b")],
                            "alone_a": _directed(val[("single", a, da, ca)], da),
                            "alone_b": _directed(val[("single", b, db, cb)], db),
                            "quality": quality((a, b, o, da, db))})
        on_a = band_verdict([c["interaction_a"]["ci"] for c in corners]) if gaps[ca]["clear"] else "no gap"
        on_b = band_verdict([c["interaction_b"]["ci"] for c in corners]) if gaps[cb]["clear"] else "no gap"
        a_onto_b = leak_verdict([val[("single", a, d, cb)]["ci"] for d in SIGNS]) if gaps[cb]["clear"] else "no gap"
        b_onto_a = leak_verdict([val[("single", b, d, ca)]["ci"] for d in SIGNS]) if gaps[ca]["clear"] else "no gap"
        worst_a = max(corners, key=lambda c: abs(c["interaction_a"]["value"]))
        worst_b = max(corners, key=lambda c: abs(c["interaction_b"]["value"]))
        results.append({"a": a, "b": b, "concepts": [ca, cb], "orthogonalized": bool(o),
                        "verdict": pair_verdict(on_a, on_b, a_onto_b, b_onto_a),
                        "on_a": on_a, "on_b": on_b, "a_onto_b": a_onto_b, "b_onto_a": b_onto_a,
                        "worst_interaction_a": worst_a["interaction_a"]["value"],
                        "worst_interaction_b": worst_b["interaction_b"]["value"],
                        "leaves_normal_range": [c["signs"] for c in corners if c["quality"]["leaves_normal_range"]],
                        "corners": corners})
    return {"method": method, "vectors": vectors, "pairs": results, "gap": gaps,
            "quality": {"floor": floor, "unsteered": quality("none")},
            "orthogonalize": orthogonalize}


def _directed(v: Mapping[str, Any], d: int) -> dict[str, Any]:
    """An effect signed toward the direction ``d`` a vector was applied in (positive: it moved the intended way)."""
    lo, hi = sorted((d * v["ci"][0], d * v["ci"][1]))
    return {"value": float(d * v["value"]), "ci": [float(lo), float(hi)]}


def _top_of(t: Mapping[str, Any]) -> float:
    return float(max(abs(x) for x in t["alphas"]))


def reduce_records(spec: Mapping[str, Any], groups: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], done: Mapping,
                   seeds: Sequence[int], command: str | None = None,
                   cosines: Mapping[tuple[str, str], float] | None = None) -> dict[str, Any]:
    """The interference result (``interference.json``) from every unit's record."""
    seeds = [int(s) for s in seeds]
    cosines = cosines or {}
    n = len(spec["prompts"])
    missing = [u for u in [("reference", s) for s in seeds] + [("single", t["name"], t["sha256"][:16], s)
                                                                  for _, ts in groups for t in ts for s in seeds]
               if u not in done]
    if missing:
        raise TadaError(f"the interference run has not finished its reference clips and single vectors yet "
                        f"({len(missing)} calls missing, e.g. {list(missing[0])}); rerun the command to do them")
    ref = [done[("reference", s)] for s in seeds]
    concepts = list(ref[0]["values"])
    neutral, positive, negative = {}, {}, {}
    for c in concepts:
        cols = np.array([r["values"][c] for r in ref], dtype=np.float64).T          # [clips, seeds]
        neutral[c] = cols[:n]
        start = n
        for c2 in concepts:
            k = len(spec["gap_prompts"][c2][0])
            if c2 == c:
                positive[c], negative[c] = cols[start:start + k], cols[start + k:start + 2 * k]
            start += 2 * k
    emb_ref = np.array([r["embedding"] for r in ref], dtype=np.float64).transpose(1, 0, 2)   # [clips, seeds, dim]

    def split(records, width):   # records per seed -> {concept: [prompts, width, seeds]}, embeddings
        values = {c: np.stack([np.array(r["values"][c], dtype=np.float64).reshape(n, width) for r in records], -1)
                  for c in concepts}
        emb = np.stack([np.array(r["embedding"], dtype=np.float64).reshape(n, width, -1) for r in records], 2)
        return values, emb                                                      # emb [prompts, width, seeds, dim]

    out_groups = []
    for g, (method, targets) in enumerate(groups):
        values = {"none": neutral}
        embeddings = {"none": emb_ref[:n]}
        for t in targets:
            v, e = split([done[("single", t["name"], t["sha256"][:16], s)] for s in seeds], len(SIGNS))
            for j, d in enumerate(SIGNS):
                values[(t["name"], d)] = {c: v[c][:, j] for c in concepts}
                embeddings[(t["name"], d)] = e[:, j]
        for a, b in itertools.combinations(targets, 2):
            for o in (0, 1):
                key = [("pair", a["name"], b["name"], o, a["sha256"][:8] + b["sha256"][:8], s) for s in seeds]
                if not all(k in done for k in key):
                    continue
                v, e = split([done[k] for k in key], len(COMBOS))
                for j, (da, db) in enumerate(COMBOS):
                    values[(a["name"], b["name"], o, da, db)] = {c: v[c][:, j] for c in concepts}
                    embeddings[(a["name"], b["name"], o, da, db)] = e[:, j]
        conds = list(values)
        typical, floor = typicality_folds(emb_ref[n:], np.stack([embeddings[k] for k in conds]))
        arrays = {"values": values, "positive": positive, "negative": negative, "floor": floor,
                  "quality": {k: typical[i] for i, k in enumerate(conds)}}
        out_groups.append(group_statistics(method, targets, concepts, arrays, orthogonalize=spec["orthogonalize"],
                                           seed=g))
        for p in out_groups[-1]["pairs"]:
            p["cosine"] = cosines.get((p["a"], p["b"]))
    seconds = sum(float(r.get("seconds", 0.0)) for r in done.values())
    measured = {(p["a"], p["b"], p["orthogonalized"]) for g in out_groups for p in g["pairs"]}
    unfinished = [[a["name"], b["name"]] for _, targets in groups for a, b in itertools.combinations(targets, 2)
                  if (a["name"], b["name"], False) not in measured]
    return {"kind": "tada-interference", "format_version": 1, "model": spec["model"], "seeds": seeds,
            "unfinished_pairs": unfinished,
            "prompts": spec["prompts"], "settings": spec["settings"],
            "thresholds": {"effect": EFFECT, "level": 0.95, "n_boot": N_BOOT, "floor_quantile": FLOOR_QUANTILE},
            "wall_seconds": round(seconds, 1), "command": command, "concepts": concepts,
            "orthogonalize": spec["orthogonalize"], "groups": out_groups}


# --------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------
def _num(x: float) -> str:
    return f"{x:+.2f}" if np.isfinite(x) else "n/a"


def _iv(d: Mapping[str, Any]) -> str:
    return f"{_num(d['value'])} [{_num(d['ci'][0])}, {_num(d['ci'][1])}]"


def _short(name: str, model: str) -> str:
    return name.removeprefix(model + "-")


def pair_table(result: Mapping[str, Any], group: Mapping[str, Any]) -> str:
    model = result["model"]
    rows = ["| A | B | orthogonalized | on A's concept | on B's concept | A onto B's concept | B onto A's concept | "
            "worst interaction on A / B | corners out of normal range | verdict |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for p in group["pairs"]:
        out = ", ".join(f"({'+' if a > 0 else '-'}A {'+' if b > 0 else '-'}B)" for a, b in p["leaves_normal_range"])
        rows.append(f"| {_short(p['a'], model)} | {_short(p['b'], model)} | {'yes' if p['orthogonalized'] else 'no'} | "
                    f"{p['on_a']} | {p['on_b']} | {p['a_onto_b']} | {p['b_onto_a']} | "
                    f"{_num(p['worst_interaction_a'])} / {_num(p['worst_interaction_b'])} | {out or 'none'} | "
                    f"**{p['verdict']}** |")
    return "\n".join(rows)


def vector_table(result: Mapping[str, Any], group: Mapping[str, Any]) -> str:
    """Each vector alone: its effect on its own concept at both ends, and the quality there."""
    model = result["model"]
    rows = ["| vector | alpha | own effect at +max | own effect at -max | typicality at +max | typicality at -max |",
            "|---|---|---|---|---|---|"]
    for v in group["vectors"]:
        own = v["own"]
        q = v["quality"]
        mark = {k: " (out of normal range)" if q[k]["leaves_normal_range"] else "" for k in q}
        rows.append(f"| {_short(v['name'], model)} | +-{v['alpha']:g} | {_iv(own['toward_positive'])} | "
                    f"{_iv(own['toward_negative'])} | {_iv(q['+max'])}{mark['+max']} | {_iv(q['-max'])}{mark['-max']} |")
    return "\n".join(rows)


def corner_table(result: Mapping[str, Any], group: Mapping[str, Any]) -> str:
    model = result["model"]
    rows = ["| A | B | orth. | signs | A alone on A | A + B on A | interaction on A | B alone on B | A + B on B | "
            "interaction on B | typicality |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in group["pairs"]:
        for c in p["corners"]:
            sa, sb = ("+" if c["signs"][0] > 0 else "-"), ("+" if c["signs"][1] > 0 else "-")
            rows.append(f"| {_short(p['a'], model)} | {_short(p['b'], model)} | {'yes' if p['orthogonalized'] else 'no'} | "
                        f"{sa}A {sb}B | {_iv(c['alone_a'])} | {_iv(c['joint_a'])} | {_iv(c['interaction_a'])} | "
                        f"{_iv(c['alone_b'])} | {_iv(c['joint_b'])} | {_iv(c['interaction_b'])} | "
                        f"{_iv(c['quality'])} |")
    return "\n".join(rows)


def orthogonalization_summary(group: Mapping[str, Any]) -> dict[str, Any]:
    """Per pair that was measured both ways: the largest |interaction| over corners and both concepts, plain and
    orthogonalized, and the verdicts; and how many pairs improved."""
    by = {}
    for p in group["pairs"]:
        by.setdefault((p["a"], p["b"]), {})[p["orthogonalized"]] = p
    rows = []
    for (a, b), d in by.items():
        if True not in d or False not in d:
            continue
        worst = {o: max(abs(d[o]["worst_interaction_a"]), abs(d[o]["worst_interaction_b"])) for o in (False, True)}
        rows.append({"a": a, "b": b, "plain": worst[False], "orthogonalized": worst[True],
                     "verdict_plain": d[False]["verdict"], "verdict_orthogonalized": d[True]["verdict"]})
    better = sum(r["orthogonalized"] < r["plain"] for r in rows)
    return {"pairs": rows, "improved": better, "measured": len(rows),
            "mean_plain": float(np.mean([r["plain"] for r in rows])) if rows else float("nan"),
            "mean_orthogonalized": float(np.mean([r["orthogonalized"] for r in rows])) if rows else float("nan")}


def report_markdown(result: Mapping[str, Any]) -> str:
    t = result["thresholds"]
    lines = [f"# Interference of composed steering vectors on {result['model']}", "",
             f"Made by `{result['command']}`" if result.get("command") else "", "",
             f"Seeds {result['seeds']} (fresh: no vector was fitted on them), {len(result['prompts'])} neutral "
             f"prompts, {result['wall_seconds']:.0f} s of generation and measurement. Effects are fractions of "
             f"each concept's prompt gap, with 95% intervals (crossed bootstrap over prompts and seeds, "
             f"{t['n_boot']} draws); thresholds: {t['effect']} of the gap; quality floor: the "
             f"{t['floor_quantile']:.0%} quantile of unsteered clips' typicality. Definitions: "
             f"`tada_core/evaluation/interference.py` and docs/composition.md.", ""]
    if result.get("unfinished_pairs"):
        lines += [f"**Unfinished run**: {len(result['unfinished_pairs'])} plain pairs not measured yet ("
                  + ", ".join(f"{_short(a, result['model'])} + {_short(b, result['model'])}"
                              for a, b in result["unfinished_pairs"]) + "); rerun the command to finish them.", ""]
    for g in result["groups"]:
        lines += [f"## {g['method'].upper()}", "", "Each vector alone: the effect on its own concept, signed so that "
                  "a move in the intended direction is positive:", "", vector_table(result, g), "",
                  "Pairs:", "", pair_table(result, g), ""]
        s = orthogonalization_summary(g)
        if s["measured"]:
            lines += [f"Orthogonalization (`compose(..., orthogonalize=True)`) on the {s['measured']} pairs with |cos| >= "
                      f"{result['orthogonalize']['min_cosine']} on a shared layer: the largest |interaction| fell in "
                      f"{s['improved']} of {s['measured']}; mean {s['mean_plain']:.2f} plain, "
                      f"{s['mean_orthogonalized']:.2f} orthogonalized.", ""]
        lines += [f"Typicality floor {g['quality']['floor']:.2f}; unsteered clips {_iv(g['quality']['unsteered'])}.", "",
                  "<details><summary>every corner</summary>", "", corner_table(result, g), "", "</details>", ""]
    return "\n".join(lines)


def interaction_matrix(group: Mapping[str, Any], orthogonalized: bool) -> tuple[list[str], np.ndarray]:
    """Rows A, columns B: the worst-corner interaction on A's concept when B is added (NaN on the diagonal).
    Orthogonalized: the orthogonalized pair where one was measured, else the plain one (they share no layer, or
    their |cos| there is below the threshold, so orthogonalizing changes them little)."""
    names = [v["name"] for v in group["vectors"]]
    m = np.full((len(names), len(names)), np.nan)
    for ortho in ((False, True) if orthogonalized else (False,)):
        for p in group["pairs"]:
            if p["orthogonalized"] == ortho:
                i, j = names.index(p["a"]), names.index(p["b"])
                m[i, j], m[j, i] = p["worst_interaction_a"], p["worst_interaction_b"]
    return names, m


def interaction_rows(result: Mapping[str, Any], keep=None) -> dict[str, Any]:
    """Every method's plain pairs in one table: a row per vector A ("brightness CAA"), a column per concept of the
    added vector B (same method), the cell the worst-corner interaction on A's concept. ``keep(vector entry)``:
    which vectors to show (e.g. those whose files are still the measured ones). NaN where not measured."""
    rows, values, concepts = [], [], []
    for g in result["groups"]:
        concepts += [v["concept"] for v in g["vectors"] if v["concept"] not in concepts]
    for g in result["groups"]:
        names, m = interaction_matrix(g, False)
        kept = [i for i, v in enumerate(g["vectors"]) if keep is None or keep(v)]
        for i in kept:
            row = [float("nan")] * len(concepts)
            for j in kept:
                row[concepts.index(g["vectors"][j]["concept"])] = float(m[i, j])
            rows.append(f"{g['vectors'][i]['concept']} {g['method'].upper()}")
            values.append(row)
    return {"rows": rows, "concepts": concepts, "values": values, "seeds": result["seeds"]}


def interaction_figures(result: Mapping[str, Any], folder: str | Path) -> list[Path]:
    """Per method, ``interaction-METHOD.png`` (and ``-orthogonalized``): the :func:`interaction_matrix` heatmap."""
    from tada_core.evaluation.plots import heatmap_png

    model, paths = result["model"], []
    for g in result["groups"]:
        for ortho in (False, True):
            if ortho and not any(p["orthogonalized"] for p in g["pairs"]):
                continue
            names, m = interaction_matrix(g, ortho)
            labels = [_short(n, model) for n in names]
            tag = "-orthogonalized" if ortho else ""
            paths.append(heatmap_png(
                m, labels, labels, Path(folder) / f"interaction-{g['method']}{tag}.png",
                title=f"{g['method'].upper()}{' orthogonalized' if ortho else ''}: A+B minus A, B alone",
                cell=60, x_label="added vector B", y_label="A (its concept measured)",
                colorbar_label="interaction (fraction of gap)", vmin=-1.0, vmax=1.0))
    return paths


def crosstalk_figure(result: Mapping[str, Any], path: str | Path) -> Path:
    from tada_core.evaluation.plots import heatmap_png

    model, concepts = result["model"], result["concepts"]
    rows, vals = [], []
    for g in result["groups"]:
        for v in g["vectors"]:
            rows.append(_short(v["name"], model))
            vals.append([max((v["effect"][c][k]["value"] for k in ("+max", "-max")), key=abs)
                         for c in concepts])
    return heatmap_png(np.array(vals), rows, concepts, path, title="Each vector alone: effect on every concept",
                       cell=60, x_label="measured concept", y_label="vector alone (larger of +-max)",
                       colorbar_label="effect (fraction of gap)", vmin=-1.0, vmax=1.0)


DOCS_BEGIN = "<!-- tada interference: begin {name} (generated from {source} by `tada interference --docs`; do not edit) -->"
DOCS_END = "<!-- tada interference: end {name} -->"


def summary_lines(result: Mapping[str, Any]) -> list[str]:
    """One line per method: which pairs compose cleanly, which interfere (and how), and what orthogonalizing did."""
    model = result["model"]
    lines = []
    for g in result["groups"]:
        plain = [p for p in g["pairs"] if not p["orthogonalized"]]
        by = {v: [f"{_short(p['a'], model)} + {_short(p['b'], model)}" for p in plain if p["verdict"] == v]
              for v in ("composes cleanly", "interferes", "unclear")}
        worst = max(plain, key=lambda p: max(abs(p["worst_interaction_a"]), abs(p["worst_interaction_b"])))
        w = worst["worst_interaction_a"] if abs(worst["worst_interaction_a"]) >= abs(worst["worst_interaction_b"]) \
            else worst["worst_interaction_b"]
        concept = worst["concepts"][0 if w == worst["worst_interaction_a"] else 1]
        names = {v["name"] for v in g["vectors"]}
        left = [f"{_short(a, model)} + {_short(b, model)}" for a, b in result.get("unfinished_pairs", [])
                if a in names]
        text = (f"- **{g['method'].upper()}** ({len(plain)} pairs measured"
                f"{'; not yet: ' + ', '.join(left) if left else ''}): composes cleanly: "
                f"{', '.join(by['composes cleanly']) or 'none'}; interferes: {', '.join(by['interferes']) or 'none'}; "
                f"unclear: {len(by['unclear'])}. Largest interaction: {_short(worst['a'], model)} + "
                f"{_short(worst['b'], model)}, {w:+.2f} of the {concept} gap.")
        s = orthogonalization_summary(g)
        if s["measured"]:
            text += (f" Orthogonalized, the largest |interaction| fell in {s['improved']} of the {s['measured']} pairs "
                     f"with |cos| >= {result['orthogonalize']['min_cosine']:g} on a shared layer (mean "
                     f"{s['mean_plain']:.2f} -> {s['mean_orthogonalized']:.2f}).")
        lines.append(text)
    return lines


def docs_block(result: Mapping[str, Any], name: str, source: str) -> str:
    """The generated text between a doc's markers: ``name`` "summary" (one line per method) or "pairs" (the
    tables)."""
    if name == "summary":
        body = "\n".join(summary_lines(result))
    elif name == "pairs":
        body = "\n\n".join(f"**{g['method'].upper()}**, each vector alone:\n\n{vector_table(result, g)}\n\n"
                            f"**{g['method'].upper()}**, pairs:\n\n{pair_table(result, g)}" for g in result["groups"])
    else:
        raise TadaError(f"unknown generated block {name!r}; known: summary, pairs")
    return f"{DOCS_BEGIN.format(name=name, source=source)}\n{body}\n{DOCS_END.format(name=name)}"


def sync_docs(path: str | Path, result: Mapping[str, Any], source: str, *, write: bool = True) -> bool:
    """Rewrite every ``tada interference`` block of ``path`` from ``result``; returns whether it was current."""
    import re

    path = Path(path)
    text = path.read_text()
    pattern = re.compile(r"<!-- tada interference: begin (\w+) .*?-->\n.*?<!-- tada interference: end \1 -->", re.S)
    if not pattern.search(text):
        raise TadaError(f"{path.name} has no `<!-- tada interference: begin NAME -->` block to fill")
    new = pattern.sub(lambda m: docs_block(result, m.group(1), source), text)
    if write and new != text:
        path.write_text(new)
    return new == text


def write_results(folder: str | Path, result: Mapping[str, Any]) -> None:
    folder = Path(folder)
    write_json(folder / RESULT_FILE, result)
    (folder / "interference.md").write_text(report_markdown(result))
    interaction_figures(result, folder)
    crosstalk_figure(result, folder / "crosstalk.png")


__all__ = ["Group", "interference_job", "group_statistics", "band_verdict", "pair_verdict", "typicality_folds",
           "orthogonalization_summary", "report_markdown", "shares_layers", "interaction_matrix",
           "interaction_rows", "docs_block", "sync_docs", "summary_lines"]
