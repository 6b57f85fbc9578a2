"""Small, safe file I/O shared by every artifact and every resumable job.

* :func:`atomic_write_text`, :func:`write_json`, :func:`save_tensors`: write under a
  temporary name and rename, so a reader never sees half a file and an interrupted
  write leaves the previous version intact.
* :func:`read_json`, :func:`read_tensors`: read with one-line :class:`TadaError` messages
  for a missing, truncated or corrupted file.
* :class:`ResumableFolder`: the folder of a long job (a localization sweep, an activation
  cache, a benchmark; :mod:`tada_core.runtime.jobs` runs them on it): its ``spec`` is written once and must match on resume (the
  differing keys are named otherwise), and finished work is appended to a journal, one
  JSON line per record, fsynced; a line cut short by a crash is ignored and redone. In a
  multi-process run (:mod:`tada_core.runtime.distributed`) each process appends to its own part of
  the journal and the main process merges the parts.
* :func:`resolve`: a local folder, or a Hub repo id downloaded (or found in the cache).

Tensors are only ever safetensors and metadata only JSON: reading an artifact cannot run code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence
from huggingface_hub import snapshot_download
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save_file

from tada_core.runtime.distributed import Processes
from tada_core.errors import TadaError, hub_errors


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_json(path: str | Path, data: Any, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON (a trailing newline, atomically)."""
    return atomic_write_text(path, json.dumps(data, indent=indent) + "\n")


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing or malformed file is a :class:`TadaError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise TadaError(f"{path} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TadaError(f"{path} is not valid JSON ({e})") from None


def save_tensors(path: str | Path, tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> Path:
    """Write torch tensors as safetensors, atomically (contiguous CPU copies)."""

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
              metadata=dict(metadata) if metadata else None)
    os.replace(tmp, path)
    return path


def read_tensors(path: str | Path) -> dict[str, Any]:
    """All tensors of a safetensors file; a missing, truncated or corrupted file is a :class:`TadaError`."""

    path = Path(path)
    if not path.is_file():
        raise TadaError(f"{path} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise TadaError(f"{path} is truncated or corrupted ({e}); download or compute it again") from None


def _as_json(data: Any) -> Any:
    """``data`` as JSON would give it back (tuples become lists, keys strings)."""
    return json.loads(json.dumps(data))


class ResumableFolder:
    """The output folder of a long job that an interruption must not lose.

    ``spec`` (plain JSON data) says what the job computes; it is written to ``spec_file``
    on the first run and compared on every later one, so a folder never mixes two jobs.
    Finished units of work go to an append-only journal (``journal_file``, one JSON object
    per line, fsynced): :meth:`records` reads them back, skipping a last line cut short
    by a crash, so a rerun redoes only that unit.

    ``processes``: in a multi-process run every process checks the spec, the main one writes
    it, and each appends to its own part (``<journal>.part<rank>.jsonl``); :meth:`records`
    reads the journal and every part, and :meth:`merge` (main process, after a barrier)
    folds the parts into the journal in the job's order, so that the folder ends as a
    single-process run leaves it.
    """

    def __init__(self, folder: str | Path, spec: Mapping[str, Any], *, spec_file: str = "spec.json",
                 journal_file: str = "journal.jsonl", what: str = "job", processes: Processes | None = None) -> None:
        self.folder = Path(folder)
        self.spec = _as_json(dict(spec))
        self.spec_path = self.folder / spec_file
        self.journal_path = self.folder / journal_file
        self.processes = processes or Processes()
        if self.spec_path.is_file():
            old = read_json(self.spec_path)
            if old != self.spec:
                keys = sorted(k for k in set(old) | set(self.spec) if old.get(k) != self.spec.get(k))
                raise TadaError(f"{self.folder} holds a different {what} (differs in: {', '.join(keys)}); resume "
                                f"with the same settings, or choose another output folder")
        elif self.folder.exists() and not self.folder.is_dir():
            raise TadaError(f"{self.folder} exists and is not a folder")
        self.processes.wait()          # every process has compared the spec before the main one writes it
        if self.processes.main and not self.spec_path.is_file():
            write_json(self.spec_path, self.spec)
        self.processes.wait()

    def _parts(self) -> list[Path]:
        stem, suffix = self.journal_path.stem, self.journal_path.suffix
        return sorted(self.folder.glob(f"{stem}.part*{suffix}"))

    def records(self) -> list[dict[str, Any]]:
        """Finished records: the journal's, then each part's, in the order they were written (an
        unreadable line is dropped: its unit is redone)."""
        out = []
        for path in [self.journal_path] + self._parts():
            if not path.is_file():
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by an interruption: that unit is simply redone
                if isinstance(rec, dict):
                    out.append(rec)
        return out

    def journal(self) -> "_Journal":
        """A context manager that appends records (``journal.append(record)``), each fsynced: to the
        journal when alone, to this process's part in a multi-process run."""
        if not self.processes.distributed:
            return _Journal(self.journal_path)
        stem, suffix = self.journal_path.stem, self.journal_path.suffix
        return _Journal(self.journal_path.with_name(f"{stem}.part{self.processes.index:03d}{suffix}"))

    def merge(self, order: Callable[[dict[str, Any]], Any]) -> None:
        """Fold the parts of a multi-process run into the journal, sorted by ``order(record)`` (a key
        that names the unit; records it returns None for are dropped, as is a second record of a
        unit); then remove the parts. Call on the main process, after every process has finished."""
        parts = self._parts()
        if not parts:
            return
        kept: dict[Any, dict[str, Any]] = {}
        for rec in self.records():
            try:
                key = order(rec)
            except (KeyError, TypeError, ValueError):
                continue
            if key is not None and key not in kept:
                kept[key] = rec
        atomic_write_text(self.journal_path, "".join(json.dumps(kept[k]) + "\n" for k in sorted(kept)))
        for path in parts:
            path.unlink()


class _Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = None

    def __enter__(self) -> "_Journal":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a+b")
        if self._file.tell() > 0:       # a line cut short by a crash must not swallow the next record
            self._file.seek(-1, os.SEEK_END)
            if self._file.read(1) != b"\n":
                self._file.write(b"\n")
        return self

    def append(self, record: Mapping[str, Any]) -> None:
        self._file.write((json.dumps(record) + "\n").encode("utf-8"))
        self._file.flush()
        os.fsync(self._file.fileno())

    def __exit__(self, *exc) -> None:
        self._file.close()


def is_repo_id(source: str) -> bool:
    """Whether ``source`` looks like a Hub repo id (``org/name``), not a path."""
    return (isinstance(source, str) and source.count("/") == 1 and not source.startswith((".", "/", "~"))
            and all(part.strip() for part in source.split("/")))


def resolve(source: str | Path, revision: str | None = None, allow_patterns: Sequence[str] | None = None) -> Path:
    """A local folder as is, or a Hub repo id (``org/name``) downloaded, or read from the cache, to a snapshot.

    ``allow_patterns`` limits the download to the files an artifact format needs.
    """
    if os.path.isdir(source):
        return Path(source)
    if isinstance(source, Path) or not is_repo_id(str(source)):
        raise TadaError(f"{str(source)!r} is neither a folder nor a Hub repo id like org/name")

    hint = f"run `tada pull {source}` on a connected machine (there is no local folder {source!r} either)"
    with hub_errors(source, revision, offline_hint=hint):
        return Path(snapshot_download(source, revision=revision, allow_patterns=list(allow_patterns or ["*"])))


def iter_files(folder: str | Path) -> Iterator[Path]:
    """Files under ``folder`` (recursively), skipping hidden files and folders, sorted."""
    folder = Path(folder)
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).parts
        if p.is_file() and not any(part.startswith(".") for part in rel):
            yield p


__all__ = ["atomic_write_text", "write_json", "read_json", "save_tensors", "read_tensors", "ResumableFolder",
           "resolve", "is_repo_id", "iter_files"]
