"""Loaded models for the app: bounded, keyed by the model they resolve to, loaded outside generation locks."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import threading
from typing import Any, Iterator

from tada_core import TadaError, load_model
from tada_core.registry import REGISTRY, entry_for

from .config import AppConfig
from .sources import is_hub_id


@dataclasses.dataclass
class _Slot:
    model: Any
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


class ModelCache:
    """At most ``config.max_models`` models, least recently used evicted first (never one in use).

    The key is what a name resolves to (a registry entry, a folder's real path, a Hub id), so
    two spellings of one folder share one model. Loading happens under a per-key lock only:
    a slow load or download never stalls requests on other models. A request holds its
    model's lock for its whole ``with`` block, so its hooks never overlap another request's.
    ``job=True`` gives long jobs their own instance, so they never hold visitors' model.
    """

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self._slots: collections.OrderedDict[str, _Slot] = collections.OrderedDict()
        self._loading: dict[str, threading.Lock] = collections.defaultdict(threading.Lock)
        self._scorers: dict[str, Any] = {}
        self._lock = threading.Lock()   # guards the dicts, never held while loading or generating

    def key(self, name: Any) -> str:
        """What ``name`` resolves to, or a TadaError saying what is accepted: exactly the models of the app's
        menu (and, where the admin allows custom models, a pipeline folder or Hub id)."""
        served = self.config.models()
        accepted = ", ".join(served)
        if not isinstance(name, str) or not name.strip():
            raise TadaError(f"model must be one of {accepted}; got {'nothing' if name is None else type(name).__name__}")
        name = name.strip()
        if name in served:
            return "registry:" + name
        if not self.config.allow_custom_models or name in REGISTRY:
            raise TadaError(f"model must be one of {accepted}" + ("" if self.config.allow_custom_models else
                            " (other models are off on this server; its admin can allow them with "
                            "TADA_ALLOW_CUSTOM_MODELS=1)"))
        if os.path.isdir(name):
            return "folder:" + os.path.realpath(name)
        if is_hub_id(name):
            return "hub:" + name
        raise TadaError(f"model must be one of {accepted}, a pipeline folder, or a Hub repo id like org/name")

    def _slot(self, key: str, *, job: bool) -> _Slot:
        slot_key = key + ("#job" if job else "")
        with self._lock:
            if slot_key in self._slots:
                self._slots.move_to_end(slot_key)
                return self._slots[slot_key]
            loading = self._loading[slot_key]
        with loading:
            with self._lock:
                if slot_key in self._slots:
                    return self._slots[slot_key]
            model = load_model(key.split(":", 1)[1], dtype=self.config.dtype)
            model.set_progress_bar(False)
            with self._lock:
                self._slots[slot_key] = slot = _Slot(model)
                self._evict()
            return slot

    def _evict(self) -> None:
        for k in list(self._slots):
            if len(self._slots) <= self.config.max_models:
                return
            slot = self._slots[k]
            if slot.lock.acquire(blocking=False):   # not in use
                try:
                    del self._slots[k]
                finally:
                    slot.lock.release()

    @contextlib.contextmanager
    def use(self, name: Any, *, job: bool = False) -> Iterator[Any]:
        slot = self._slot(self.key(name), job=job)
        with slot.lock:
            yield slot.model

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._slots)

    def scorer(self, model) -> Any:
        """The model's built-in scorer (read-only, shared), or None if it has none (real checkpoints)."""
        entry = entry_for(model)
        if entry.scorer_name is None:
            return None
        with self._lock:
            if model.name not in self._scorers:
                self._scorers[model.name] = entry.scorer()
            return self._scorers[model.name]
