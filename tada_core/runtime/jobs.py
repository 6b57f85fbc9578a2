"""Resumable jobs: the one skeleton under every long computation (a localization sweep, an activation
cache, a benchmark).

A :class:`Job` declares what is computed and how; :func:`run` does the rest::

    job = Job(name="localize tempo", spec={...},             # plain JSON: what is computed
              stages=[Stage(units, do)],                       # hashable units, in order; do(unit) -> JSON record
              reduce=lambda done: ...,                         # {unit: record} of every unit -> the result
              key=lambda rec: (rec["condition"], rec["batch"]))   # the unit a record is of
    result = run(job, out, processes=processes, progress=True, on_unit=report)

What the runner owns, once for every job:

* **Resume.** ``out`` is a :class:`~tada_core.runtime.io.ResumableFolder`: the spec is written on
  the first run and a rerun with another spec is refused, naming the keys that differ; every finished
  unit's record is appended to the journal and fsynced; a rerun skips the units whose records it reads
  back and redoes the rest, including a unit whose line was cut short or whose record ``key`` refuses.
* **Processes.** Under ``accelerate launch`` (``processes``, :mod:`tada_core.runtime.distributed`) each
  stage's units still to do are dealt round-robin, each process journals to its own part, the processes
  meet after every stage (and read what the others did), and the main process merges the parts into the
  journal in the job's unit order, so that the folder ends as a single-process run leaves it.
* **Progress.** A tqdm bar (the job's name, its unit word; off with ``progress=False`` and on every
  process but the main one), an INFO log line on resume, and ``on_unit(done, total)``, called before the
  first unit and after each one: an exception it raises (a Stop button) ends the job, and every finished
  unit stays in the folder for a rerun.
* **Interruption.** Records are journaled as units finish, so a KeyboardInterrupt or a crash loses only
  the unit in flight.

Units are pure functions of the spec and the unit (fixed batches, seeds per unit), so a resumed job gives
exactly the records, and so the result, of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import types
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping, Sequence
from tqdm.auto import tqdm

from tada_core.errors import TadaError
from tada_core.runtime.distributed import Processes, require_folder
from tada_core.runtime.io import ResumableFolder

logger = logging.getLogger(__name__)

Record = dict[str, Any]


def unit_key(record: Mapping[str, Any]) -> Hashable:
    """The default :attr:`Job.key`: the record's ``"unit"`` field (a list is the tuple it was written from)."""
    unit = record["unit"]
    return tuple(unit) if isinstance(unit, list) else unit


@dataclasses.dataclass(frozen=True)
class Stage:
    """Units of work that start only once every unit of the stages before has finished, in every process.

    ``do(unit)`` does one unit and returns its record (plain JSON, naming its unit as the job's ``key``
    reads it). ``before(done)``, if given, runs on every process before this stage's units, with the
    records of every finished unit (read-only): what a stage needs from the earlier ones (a fit, a range)
    is computed there, also when a resumed run has nothing left to do.
    """

    units: Sequence[Hashable]
    do: Callable[[Any], Record]
    before: Callable[[Mapping[Hashable, Record]], None] | None = None


@dataclasses.dataclass(frozen=True)
class Job:
    """A resumable job: see the module docstring.

    ``stages``: the units, in order, and how each is done; or a function that returns them, called once
    the folder is open and its spec checked, on the main process first and then on the others (for a job
    whose units depend on a setup that may write into the folder, as the benchmark's fitted methods do).
    ``reduce``: the result, from ``{unit: record}`` of every unit in the job's order.
    ``key``: the unit a record is of; an exception or None marks the record malformed (its unit is redone).
    ``write(folder, result, done)``: the result's files, written by the main process (when there is a folder).
    ``name`` names the job on its progress bar and in errors, ``unit`` its units ("batch", "call");
    ``what``, ``spec_file``, ``journal_file``: the folder's word for it and its file names.
    """

    name: str
    spec: Mapping[str, Any]
    stages: Sequence[Stage] | Callable[[], Sequence[Stage]]
    reduce: Callable[[dict[Hashable, Record]], Any] = dict
    key: Callable[[Mapping[str, Any]], Hashable] = unit_key
    write: Callable[[Path, Any, dict[Hashable, Record]], None] | None = None
    unit: str = "unit"
    what: str = "job"
    spec_file: str = "spec.json"
    journal_file: str = "journal.jsonl"

    def unit_of(self, record: Any) -> Hashable | None:
        """The unit ``record`` is of, or None for a malformed record."""
        try:
            unit = self.key(record)
            hash(unit)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            return None
        return unit


def _plural(word: str) -> str:
    return word + ("es" if word.endswith(("s", "sh", "ch", "x")) else "s")


def run(job: Job, out: str | Path | None = None, *, processes: Processes | None = None, progress: bool = True,
        on_unit: Callable[[int, int], None] | None = None) -> Any:
    """Do ``job``'s units still missing from ``out`` and return its reduced result (see the module docstring).

    ``out``: the job's folder (None: nothing is kept; a multi-process run needs one). ``processes``: this
    process's share of a multi-process run; every process returns the result, the main one writes the files.
    """

    processes = processes or Processes()
    require_folder(processes, out, job.name)
    folder = ResumableFolder(out, job.spec, spec_file=job.spec_file, journal_file=job.journal_file, what=job.what,
                             processes=processes) if out is not None else None
    stages = _stages(job, processes)
    units = [u for stage in stages for u in stage.units]
    order = {u: k for k, u in enumerate(units)}
    if len(order) != len(units):
        raise ValueError(f"{job.name}: a unit occurs twice among {len(units)} units")
    done: dict[Hashable, Record] = {}

    def read() -> tuple[int, int]:
        """Every finished record in the folder, into ``done``; returns how many were malformed, and how many
        are of units this run does not have (a job whose units grow, as verify's artifacts, keeps them)."""
        dropped = other = 0
        for rec in folder.records() if folder is not None else []:
            unit = job.unit_of(rec)
            if unit in order:
                done[unit] = rec
            elif unit is None:
                dropped += 1
            else:
                other += 1
        return dropped, other

    dropped, other = read()
    processes.wait()       # every process has read the same finished units before any adds to them: equal shares
    total, plural = len(units), _plural(job.unit)
    if dropped and processes.main:
        logger.warning("%s: %d malformed records in %s; their %s are redone", job.name, dropped, folder.folder, plural)
    if other and processes.main:
        logger.info("%s: %d records in %s are of %s this run does not do; they stay there", job.name, other,
                    folder.folder, plural)
    if done and processes.main:
        logger.info("resuming %s: %d of %d %s finished", folder.folder, len(done), total, plural)
    bar = tqdm(total=total, initial=len(done), desc=f"{job.name}{processes.label()}", unit=job.unit,
               disable=not progress or not processes.main)
    with contextlib.ExitStack() as stack:
        journal = stack.enter_context(folder.journal()) if folder is not None else None
        stack.callback(bar.close)
        if on_unit is not None:
            on_unit(len(done), total)
        for stage in stages:
            if stage.before is not None:
                stage.before(types.MappingProxyType(done))
            for unit in processes.share([u for u in stage.units if u not in done]):
                rec = stage.do(unit)
                if job.unit_of(rec) != unit:
                    raise ValueError(f"{job.name}: the record of unit {unit!r} is read back as unit "
                                     f"{job.unit_of(rec)!r}; a resume could not find it")
                if journal is not None:
                    journal.append(rec)
                done[unit] = rec
                bar.update(1)
                if on_unit is not None:
                    on_unit(len(done), total)
            if processes.distributed:      # every process reads what all of them did
                processes.wait()
                read()
                processes.wait()
                bar.n = len(done)
                bar.refresh()
    missing = [u for u in units if u not in done]
    if missing:
        raise TadaError(f"{job.name}: {len(missing)} {plural} are missing from {out} after every process "
                        f"finished; rerun the same command to do them")
    if folder is not None and processes.main:   # parts of a multi-process run (this one or an interrupted one)
        folder.merge(lambda rec: order.get(job.unit_of(rec)))
    processes.wait()
    records = {u: done[u] for u in units}
    result = job.reduce(records)
    if folder is not None and job.write is not None and processes.main:
        job.write(folder.folder, result, records)
    processes.wait()
    return result


def finished(job: Job, out: str | Path) -> dict[Hashable, Record]:
    """The records of ``job``'s units already in ``out`` (its spec checked as :func:`run` checks it), in unit
    order, without doing any: what a report of an unfinished run reduces."""
    folder = ResumableFolder(out, job.spec, spec_file=job.spec_file, journal_file=job.journal_file, what=job.what)
    units = [u for stage in _stages(job, Processes()) for u in stage.units]
    done = {}
    for rec in folder.records():
        unit = job.unit_of(rec)
        if unit is not None:
            done[unit] = rec
    return {u: done[u] for u in units if u in done}


def _stages(job: Job, processes: Processes) -> list[Stage]:
    if not callable(job.stages):
        return list(job.stages)
    # the main process sets up first: what it writes into the folder, the others then read
    if not processes.main:
        processes.wait()
    try:
        return list(job.stages())
    finally:
        if processes.main:
            processes.wait()


__all__ = ["Job", "Stage", "run", "unit_key"]
