"""A model's registry entry: everything tada knows about one loadable model, in one place.

An entry owns the model's quirks that are not the pipeline family's: where its weights
come from, its sampling defaults, the concepts it understands (and the prompts to use
them with), its built-in scorer if it has one, the functional layers found on exactly
this checkpoint (with where they were found), and the committed denoiser config its
layer count is measured from. :mod:`tada_core.registry` lists the built-in entries;
the organism and the tiny fixtures provide theirs like any other model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from tada_core.concepts import ConceptSet
from tada_core.errors import TadaError
from tada_core.runtime.io import write_json

CONFIGS = Path(__file__).parents[1] / "configs"  # real denoiser configs, with their provenance
SAMPLING_FILE = "tada_sampling.json"  # sampling defaults saved with a pipeline folder (read by load_model)
TINY_DEFAULTS = {"duration": 1.0, "steps": 4, "guidance": 3.0}  # sampling defaults of the tiny test fixtures
PAPER_LAYERS = "TADA paper, Sec. 4 / Fig. 3"  # where the functional-layer presets come from


@dataclasses.dataclass(frozen=True)
class LayerPreset:
    """Functional layers (0-based module indices) found on one checkpoint, and where they were found."""

    layers: tuple[int, ...]
    checkpoint: str
    source: str

    def describe(self) -> str:
        return f"{','.join(map(str, self.layers))} ({self.checkpoint}; {self.source})"


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One loadable model. Exactly one of ``hub_id``, ``folder`` and ``build`` says where it comes from.

    * ``adapter``: the family's :class:`~tada_core.adapters.ModelAdapter` subclass;
    * ``hub_id``: a diffusers pipeline repo on the Hub; ``folder``: returns a local pipeline
      folder; ``build``: returns a pipeline built in code;
    * ``defaults``: sampling defaults (duration, steps, guidance) over the family's; a
      pipeline folder's own ``tada_sampling.json`` (saved with a checkpoint) comes on top;
    * ``concepts``: the concept set it is used with;
    * ``scorer_name`` / ``make_scorer``: its built-in scorer (``make_scorer(arg)``), if any;
    * ``make_panel``: its verification panel (third-party measures of its concepts, for
      ``tada verify``; :mod:`tada_core.evaluation.verification`), if any;
    * ``presets``: functional layers found on exactly this checkpoint;
    * ``denoiser_config``: returns the path of its denoiser's ``config.json``, to count its
      layers on the meta device without weights;
    * ``listed``: shown in the app's model list (the tiny test fixtures are not);
    * ``encode_audio``: ``f(audio [channels, samples], sample_rate) -> latent``, for a checkpoint whose
      pipeline autoencoder cannot encode (the organism's decoder is analytic, its encoder untrained).
    """

    name: str
    adapter: type
    concepts: ConceptSet
    description: str = ""
    hub_id: str | None = None
    folder: Callable[[], str] | None = None
    build: Callable[[], Any] | None = None
    defaults: dict[str, float] | None = None
    scorer_name: str | None = None
    make_scorer: Callable[[str | None], Any] | None = None
    make_panel: Callable[[], Any] | None = None
    presets: tuple[LayerPreset, ...] = ()
    denoiser_config: Callable[[], Path | None] | None = None
    listed: bool = True
    notes: str = ""
    encode_audio: Callable[[Any, int], Any] | None = None

    def __post_init__(self) -> None:
        sources = [x for x in (self.hub_id, self.folder, self.build) if x is not None]
        if len(sources) != 1:
            raise TadaError(f"model entry {self.name!r} needs exactly one of hub_id, folder, build")
        if (self.scorer_name is None) != (self.make_scorer is None):
            raise TadaError(f"model entry {self.name!r}: give both scorer_name and make_scorer, or neither")

    @property
    def source(self) -> str:
        """Where the weights come from, for display."""
        if self.hub_id:
            return self.hub_id
        if self.folder is not None:
            return self.folder()
        return "built in code, offline"

    def scorer(self, arg: str | None = None) -> Any:
        """The built-in scorer (``arg``: e.g. another folder of scorer weights)."""
        if self.make_scorer is None:
            raise TadaError(f"{self.name} has no built-in scorer")
        return self.make_scorer(arg)

    def functional_layers(self) -> tuple[int, ...]:
        """Every layer of every preset of this checkpoint (empty when none was found on it)."""
        return tuple(sorted({layer for p in self.presets for layer in p.layers}))


@dataclasses.dataclass(frozen=True)
class ReferenceModel:
    """A checkpoint the reference code ran that no adapter of this project loads (a family declares its own
    in ``reference_checkpoints``)."""

    hub_id: str
    path: str       # layer path template, relative to the denoiser the reference hooks
    layers: int
    width: int
    note: str

    def names_layer(self, path: str) -> bool:
        """Whether ``path`` is one of this checkpoint's layer paths."""
        head, _, tail = self.path.partition("{i}")
        middle = path[len(head):len(path) - len(tail)] if path.startswith(head) and path.endswith(tail) else ""
        return middle.isdigit()


def save_sampling_defaults(folder: str | Path, defaults: dict[str, float]) -> Path:
    """Write a pipeline folder's sampling defaults (duration, steps, guidance), read back by ``load_model``."""
    return write_json(Path(folder) / SAMPLING_FILE, dict(defaults))


def committed_config(filename: str) -> Callable[[], Path]:
    """A ``denoiser_config`` that returns one of the committed real configs in ``tada_core/configs``."""
    return lambda: CONFIGS / filename


__all__ = ["ModelEntry", "LayerPreset", "ReferenceModel", "CONFIGS", "SAMPLING_FILE", "TINY_DEFAULTS", "PAPER_LAYERS", "committed_config", "save_sampling_defaults"]
