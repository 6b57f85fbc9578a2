"""Audio-text alignment scorers: the ``sim`` of TADA Eq. 9 and the alignment axis of Sec. 5.1.

A scorer maps a batch of clips and a :class:`~tada_core.concepts.Concept` to one number
per clip that grows as the clip shows the concept's positive side more. Eq. 9 is a ratio
of differences, so any affine rescaling of a scorer leaves I(l, c) unchanged; a descriptor
value (beats per second) is as good a ``sim`` as a cosine similarity.

* the organism's built-in scorer (:class:`tada_core.organism.scorer.OrganismScorer`):
  third-party measures of its synthetic music (librosa, pYIN) and a timbre classifier.
* :class:`ClapScorer`: cosine similarity between CLAP's audio embedding and the concept's
  text query (Table 7), with transformers' ``ClapModel`` from a local folder or Hub id.
* :class:`MuQScorer`: the same with MuQ-MuLan (the ``muq`` package, optional extra
  ``pip install tada-steer[eval]``; never needed by the tests).

:func:`make_scorer` builds one from a CLI spec for a model: its built-in scorer (only
models that have one: the organism), ``clap:PATH`` or ``muq:PATH``.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tada_core.audio import mono, resample
from tada_core.concepts import Concept
from tada_core.errors import TadaError
from tada_core.errors import hub_errors
from tada_core.evaluation.metrics import LogMelEmbedding
from tada_core.evaluation.metrics import measure


class Scorer(abc.ABC):
    """An alignment scorer: one number per clip that says how much of a concept it hears.

    * :meth:`check` raises :class:`TadaError` if this scorer cannot score the concept;
    * :meth:`measure` is the raw, interpretable value (beats per second, Hz, a
      probability, a cosine similarity), one per clip of ``audio`` [batch, channels, samples];
    * :meth:`sign` is +1 if a larger measure means more of the concept's positive side, else -1;
    * :meth:`label` names what :meth:`measure` reports, with its unit, for tables;
    * :meth:`similarity` = sign * measure: larger means more of the positive side (the
      ``sim`` of Eq. 9 and the alignment ``a`` of Sec. 5.1).
    """

    name: str = "scorer"

    @abc.abstractmethod
    def check(self, concept: Concept) -> None:
        """Raise :class:`TadaError` (naming what fits) if this scorer cannot score ``concept``."""

    @abc.abstractmethod
    def measure(self, audio: torch.Tensor | np.ndarray, sample_rate: int, concept: Concept) -> np.ndarray:
        """The concept's raw measure, one float64 per clip."""

    def sign(self, concept: Concept) -> int:
        return 1

    @abc.abstractmethod
    def label(self, concept: Concept) -> str:
        """What :meth:`measure` reports for ``concept`` (for table headers)."""

    def similarity(self, audio: torch.Tensor | np.ndarray, sample_rate: int, concept: Concept) -> np.ndarray:
        return self.sign(concept) * self.measure(audio, sample_rate, concept)


# --------------------------------------------------------------------------------------
# embedding scorers
# --------------------------------------------------------------------------------------
class EmbeddingScorer(Scorer):
    """Similarity between an audio-text model's embedding of each clip and of the concept's query (Table 7)."""

    display = "embedding"

    def check(self, concept: Concept) -> None:
        if not concept.query.strip():
            raise TadaError(f"the {self.name} scorer compares audio with the concept's text query; concept "
                            f"{concept.name!r} has none")

    def label(self, concept: Concept) -> str:
        return f"{self.display} similarity to {concept.query!r}"

    def measure(self, audio: torch.Tensor | np.ndarray, sample_rate: int, concept: Concept) -> np.ndarray:
        self.check(concept)
        return self._similarity(mono(audio), sample_rate, concept.query)

    @abc.abstractmethod
    def _similarity(self, clips: np.ndarray, sample_rate: int, query: str) -> np.ndarray:
        """One similarity per clip of ``clips`` [batch, samples]."""


class ClapScorer(EmbeddingScorer):
    """CLAP audio-text cosine similarity (the paper's vocal-gender scorer), via transformers.

    ``source``: a local folder or Hub id of a ``ClapModel`` checkpoint, e.g.
    ``laion/larger_clap_music`` (loaded with ``from_pretrained``; offline it must be cached).
    """

    name, display = "clap", "CLAP cosine"

    def __init__(self, source: str | Path, device: str = "cpu"):
        from transformers import ClapModel, ClapProcessor


        with hub_errors(str(source), None, offline_hint="download the CLAP checkpoint on a connected machine"):
            try:
                self.model = ClapModel.from_pretrained(str(source)).to(device).eval()
                self.processor = ClapProcessor.from_pretrained(str(source))
            except OSError as e:
                raise TadaError(f"cannot load a CLAP model from {str(source)!r}: {str(e).splitlines()[0]}") from None
        self.device = device
        self._text: dict[str, torch.Tensor] = {}

    def _text_embedding(self, query: str) -> torch.Tensor:
        if query not in self._text:
            inputs = self.processor(text=[query], return_tensors="pt", padding=True)
            with torch.no_grad():
                e = self.model.get_text_features(**{k: v.to(self.device) for k, v in inputs.items()})
            e = getattr(e, "pooler_output", e)
            self._text[query] = torch.nn.functional.normalize(e, dim=-1)[0]
        return self._text[query]

    def embed(self, audio, sample_rate: int) -> np.ndarray:
        """CLAP's audio embedding of each clip, [clips, dim] (an FAD embedding, see :func:`make_embedding`)."""
        sr = self.processor.feature_extractor.sampling_rate
        inputs = self.processor(audio=list(resample(mono(audio), sample_rate, sr)), sampling_rate=sr,
                                return_tensors="pt")
        with torch.no_grad():
            e = self.model.get_audio_features(**{k: v.to(self.device) for k, v in inputs.items()})
        return getattr(e, "pooler_output", e).cpu().double().numpy()

    __call__ = embed

    def _similarity(self, clips: np.ndarray, sample_rate: int, query: str) -> np.ndarray:
        e = torch.nn.functional.normalize(torch.from_numpy(self.embed(clips, sample_rate)).float(), dim=-1)
        return (e.to(self.device) @ self._text_embedding(query)).cpu().double().numpy()


class MuQScorer(EmbeddingScorer):
    """MuQ-MuLan audio-text similarity (the paper's scorer for tempo, mood, instruments, genre).

    Needs the optional ``muq`` package (``pip install muq``; it pulls a CUDA torch, so it is
    kept out of the default install and CI) and a local or cached ``OpenMuQ/MuQ-MuLan-large``.
    """

    name, display = "muq", "MuQ-MuLan"

    def __init__(self, source: str | Path = "OpenMuQ/MuQ-MuLan-large", device: str = "cpu"):
        try:
            from muq import MuQMuLan
        except ImportError:
            raise TadaError("the MuQ scorer needs the optional 'muq' package: pip install muq "
                            "(or pip install 'tada-steer[eval]'); or use --scorer clap:PATH_OR_ID") from None
        self.model = MuQMuLan.from_pretrained(str(source)).to(device).eval()
        self.device = device

    def _similarity(self, clips: np.ndarray, sample_rate: int, query: str) -> np.ndarray:
        x = torch.from_numpy(resample(clips, sample_rate, 24000)).to(self.device)
        with torch.no_grad():
            a = self.model(wavs=x)
            t = self.model(texts=[query])
        return self.model.calc_similarity(a, t).reshape(-1).cpu().double().numpy()


class LibrosaScorer(Scorer):
    """Descriptors any model's audio has, by librosa: tempo (BPM) and brightness (spectral centroid, Hz).

    The MusicGen paper's two metrics (Facchiano et al. Sec. 4.1); a scorer for the concepts they
    describe on any model, real or tiny, with no weights to download.
    """

    name = "librosa"
    MEASURE = {"tempo": "bpm", "brightness": "centroid"}

    def check(self, concept: Concept) -> None:
        if concept.name not in self.MEASURE:
            raise TadaError(f"the librosa scorer measures {', '.join(self.MEASURE)}; not {concept.name!r} "
                            f"(use --scorer {EMBEDDING_SCORERS})")

    def measure(self, audio, sample_rate: int, concept: Concept) -> np.ndarray:
        self.check(concept)
        return measure(self.MEASURE[concept.name])[0](audio, sample_rate)

    def label(self, concept: Concept) -> str:
        self.check(concept)
        return measure(self.MEASURE[concept.name])[1]


EMBEDDING_SCORERS = ("clap:PATH_OR_ID (CLAP, e.g. clap:laion/larger_clap_music), muq:PATH_OR_ID (MuQ-MuLan) or "
                     "librosa (tempo and brightness only)")


def make_scorer(spec: str | None, entry: Any = None, device: str = "cpu") -> Scorer:
    """The scorer named by a CLI spec, for the model of registry ``entry``.

    ``spec``: ``None`` (the model's built-in scorer, if it has one), the name of the
    model's built-in scorer (``organism``, optionally ``organism:FOLDER``),
    ``clap:PATH_OR_ID`` or ``muq:PATH_OR_ID``. A model without a built-in scorer (the real
    checkpoints) must be given one: scoring real music with the organism's measures of
    synthetic music would be silent garbage.
    """
    builtin = getattr(entry, "scorer_name", None)
    model = getattr(entry, "name", "this model")
    if spec is None or not str(spec).strip():
        if builtin is None:
            raise TadaError(f"{model} has no built-in scorer; choose one with --scorer {EMBEDDING_SCORERS}")
        return entry.scorer()
    kind, _, arg = str(spec).partition(":")
    if builtin is not None and kind == builtin:
        return entry.scorer(arg or None)
    if kind == "clap":
        if not arg:
            raise TadaError("give the CLAP checkpoint: --scorer clap:FOLDER_OR_HUB_ID (e.g. clap:laion/larger_clap_music)")
        return ClapScorer(arg, device=device)
    if kind == "muq":
        return MuQScorer(arg or "OpenMuQ/MuQ-MuLan-large", device=device)
    if kind == "librosa":
        return LibrosaScorer()
    accepted = (f"{builtin} (its built-in scorer), " if builtin else "") + EMBEDDING_SCORERS
    raise TadaError(f"scorer {spec!r} does not fit {model}; accepted: {accepted}")


def make_embedding(spec: str | None, device: str = "cpu"):
    """An FAD embedding: ``logmel`` (default, offline; :class:`tada_core.evaluation.metrics.LogMelEmbedding`) or
    ``clap:PATH_OR_ID`` (CLAP's pretrained audio encoder)."""
    if spec in (None, "", "logmel"):
        return LogMelEmbedding()
    kind, _, arg = str(spec).partition(":")
    if kind == "clap" and arg:
        return ClapScorer(arg, device=device)
    raise TadaError(f"FAD embedding must be 'logmel' or 'clap:PATH_OR_ID'; got {spec!r}")


__all__ = ["make_embedding", "Scorer", "EmbeddingScorer", "ClapScorer", "MuQScorer", "LibrosaScorer", "make_scorer", "resample", "mono", "EMBEDDING_SCORERS"]
