"""Each steering method against a random control, from a finished benchmark folder (``clips.jsonl``).

A method "clears" the control when its AUC avg is above the control's beyond noise. Two readings, both
with 95% bootstrap intervals over base prompts (:mod:`.runner`'s protocol, P_max held fixed):

* **separate intervals**: the method's AUC avg interval lies wholly above the control's (the stricter
  reading, what "the interval clears the control's" says);
* **paired difference**: AUC avg(method) - AUC avg(control) with the same prompts resampled for both
  (as the table's "minus CAA(F)" column); an interval above 0 is a verdict, one that includes 0 is not.

The random control pools its draws over base prompts (draw ``base mod draws``), so both rows are made on
the same prompts and seeds and the pairing holds.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

from tada_core.concepts import Concept
from tada_core.errors import TadaError
from tada_core.evaluation.benchmark import protocol
from tada_core.evaluation.benchmark.runner import (CLIPS_FILE, BenchmarkResult, _arrays, _avg_ci, _f,
                                                   _paired_difference)
from tada_core.evaluation.scoring import Scorer
from tada_core.runtime.io import atomic_write_text, write_json

CONTROL = "random"
CONTROLS_FILE = "controls.json"
MARKER = "\n## Against the random control\n"


@dataclasses.dataclass
class ControlComparison:
    """One method against the control on one concept (AUC avg and intervals as in the benchmark table)."""

    concept: str
    method: str
    label: str
    auc: float
    auc_ci: list[float]
    control_auc: float
    control_ci: list[float]
    difference: list[float]            # [AUC avg - control's, lo, hi], paired

    @property
    def clears(self) -> bool:
        """The method's AUC interval lies wholly above the control's."""
        return bool(self.auc_ci[0] > self.control_ci[1])

    @property
    def verdict(self) -> str:
        """By the paired interval: above (beats the control), below, or includes 0 (no verdict)."""
        _, lo, hi = self.difference
        return "above the control" if lo > 0 else "below the control" if hi < 0 else "not distinguishable"

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "clears": self.clears, "verdict": self.verdict}


def read_records(folder: str | Path) -> dict[tuple, dict]:
    """The finished calls of a benchmark folder, by unit (``clips.jsonl``; a cut last line is skipped)."""
    path = Path(folder) / CLIPS_FILE
    if not path.is_file():
        raise TadaError(f"{folder} has no {CLIPS_FILE}; give a `tada benchmark --out` concept folder")
    done = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        done[tuple(rec["unit"])] = rec
    return done


def compare(folder: str | Path, result: BenchmarkResult, scorer: Scorer, concept: Concept,
            control: str = CONTROL) -> list[ControlComparison]:
    """Every other available method of ``result`` against ``control``, from the folder's calls."""
    done = read_records(folder)
    ready = [m for m in result.methods if m.available]
    if not any(m.key == control for m in ready):
        raise TadaError(f"the {concept.name!r} run has no {control!r} row; run it with the random control "
                        f"(--methods ... {control})")
    n_chunks = sum(1 for u in done if len(u) == 3 and u[0] == control and u[1] == 1)
    sign = scorer.sign(concept)

    def sim(meas):
        return sign * meas[concept.name]

    def sweeps(alphas, s, dist, qual, rows, d):          # as the runner's reduction: mean curves over the rows
        delta = (d * (s[rows] - s[rows][:, :1])).mean(0)
        return protocol.ordered(alphas, delta, dist[rows].mean(0), qual[rows].mean(0))

    data = {(m.key, d): _arrays(done, m.key, d, n_chunks) for m in ready for d in (1, -1)}
    p_max = result.p_max
    by_key = {m.key: m for m in ready}
    ctrl = by_key[control]
    ctrl_ci = _avg_ci(data, control, sim, sweeps, p_max)
    out = []
    for m in ready:
        if m.key == control:
            continue
        out.append(ControlComparison(concept.name, m.key, m.label, m.auc["avg"], list(m.auc_ci["avg"]),
                                     ctrl.auc["avg"], list(ctrl_ci),
                                     _paired_difference(data, m.key, control, sim, sweeps, p_max)))
    return out


def _ci(x: Sequence[float]) -> str:
    return f"[{_f(x[0])}, {_f(x[1])}]"


def markdown(rows: Sequence[ControlComparison]) -> str:
    lines = ["| concept | method | AUC avg [95% CI] | random control [95% CI] | clears the control's interval | "
             "minus control [paired 95% CI] | verdict |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.concept} | {r.label} | {_f(r.auc)} {_ci(r.auc_ci)} | {_f(r.control_auc)} "
                     f"{_ci(r.control_ci)} | {'yes' if r.clears else 'no'} | {_f(r.difference[0])} "
                     f"{_ci(r.difference[1:])} | {r.verdict} |")
    return "\n".join(lines)


def write(out: str | Path, results: Sequence[BenchmarkResult], scorer: Scorer, concepts: Sequence[Concept],
          control: str = CONTROL) -> list[ControlComparison]:
    """``controls.json`` and a section at the end of ``table.md`` in ``out`` (one concept folder per result);
    rewriting the section, never adding a second one. Concepts whose run has no control are left out."""
    out = Path(out)
    by_name = {c.name: c for c in concepts}
    rows: list[ControlComparison] = []
    for r in results:
        if any(m.key == control and m.available for m in r.methods):
            rows += compare(out / r.concept, r, scorer, by_name[r.concept], control)
    if not rows:
        return rows
    write_json(out / CONTROLS_FILE, [r.to_dict() for r in rows])
    table = out / "table.md"
    head = table.read_text(encoding="utf-8").split(MARKER)[0].rstrip("\n") + "\n" if table.is_file() else ""
    draws = next((m.hyperparameters for r in results for m in r.methods if m.key == control), {})
    atomic_write_text(table, head + MARKER + "\n"
                      + f"The random control: {draws.get('draws', '?')} random directions (seeds "
                        f"{draws.get('seeds', '?')}) with DiffMean One-to-All's norm at every layer, draw "
                        f"(base index mod draws) per base prompt. \"Clears\": the method's AUC avg interval lies "
                        f"wholly above the control's; the verdict reads the paired interval of the difference "
                        f"(same prompts resampled for both).\n\n" + markdown(rows) + "\n")
    return rows


__all__ = ["ControlComparison", "compare", "markdown", "write", "read_records", "CONTROL"]
