"""Audio-text alignment scorers: the ``sim`` of TADA Eq. 9 and the alignment axis of Sec. 5.1.

A scorer maps a batch of clips and a :class:`~tada_core.concepts.Concept` to one number
per clip that grows as the clip shows the concept's positive side more. Eq. 9 is a ratio
of differences, so any affine rescaling of a scorer leaves I(l, c) unchanged; a descriptor
value (beats per second) is as good a ``sim`` as a cosine similarity.

* :class:`OrganismScorer`: the shipped model's own weight-free descriptors and linear
  classifiers (:mod:`tada_core.organism.descriptors`); offline, no extra packages.
* :class:`ClapScorer`: cosine similarity between CLAP's audio embedding and the concept's
  text query (Table 7), with transformers' ``ClapModel`` from a local folder or Hub id.
* :class:`MuQScorer`: the same with MuQ-MuLan (the ``muq`` package, optional extra
  ``pip install tada-steer[eval]``; never needed by the tests).

:func:`make_scorer` builds one from a CLI spec: ``organism``, ``clap:PATH`` or ``muq:PATH``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from .concepts import Concept
from .errors import TadaError


class Scorer(Protocol):
    name: str

    def similarity(self, audio: torch.Tensor, sample_rate: int, concept: Concept) -> np.ndarray:
        """One alignment value per clip of ``audio`` [batch, channels, samples]."""


def _mono(audio: torch.Tensor | np.ndarray) -> np.ndarray:
    x = np.asarray(audio.detach().cpu() if isinstance(audio, torch.Tensor) else audio, dtype=np.float32)
    if x.ndim == 3:
        x = x.mean(1)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise TadaError(f"audio must be [batch, channels, samples] or [batch, samples]; got shape {x.shape}")
    return x


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Linear-interpolation resampling of [batch, samples] (enough for embedding models)."""
    if src == dst:
        return x
    n = int(round(x.shape[-1] * dst / src))
    t = np.arange(n) * (src / dst)
    return np.stack([np.interp(t, np.arange(x.shape[-1]), row) for row in x]).astype(np.float32)


# --------------------------------------------------------------------------------------
# the organism's scorer
# --------------------------------------------------------------------------------------
class OrganismScorer:
    """Descriptor or classifier per concept, as measured best on the organism (results/organism_adherence.md).

    ``measure`` gives the raw, interpretable value (``onset_rate`` in beats per second,
    ``centroid`` in Hz, ``P(drums)``, ...); ``similarity`` is that value signed so that
    larger means more of the concept's positive side.
    """

    name = "organism"
    # concept -> ("descriptor", descriptor name) or ("classifier", head)
    SOURCES: dict[str, tuple[str, str]] = {
        "tempo": ("descriptor", "onset_rate"), "brightness": ("descriptor", "centroid"),
        "vocal_gender": ("descriptor", "low_voice"), "mood": ("classifier", "mood"),
        "drums": ("classifier", "drums"), "piano": ("classifier", "instrument"),
        "flute": ("classifier", "instrument"), "violin": ("classifier", "instrument"),
        "trumpet": ("classifier", "instrument"),
    }

    def __init__(self, folder: str | Path | None = None):
        from .organism.descriptors import Scorer as _Fitted
        from .organism.model import checkpoint_path

        self.scorer = _Fitted.load(folder or checkpoint_path())

    def check(self, concept: Concept) -> None:
        if concept.name not in self.SOURCES:
            raise TadaError(f"the organism scorer knows concepts {', '.join(self.SOURCES)}; got {concept.name!r}. "
                            f"Score other concepts with clap:PATH or muq:PATH")

    def label(self, concept: Concept) -> str:
        """What :meth:`measure` reports for ``concept`` (for table headers)."""
        self.check(concept)
        kind, key = self.SOURCES[concept.name]
        return key if kind == "descriptor" else f"P({concept.name})"

    def measure(self, audio: torch.Tensor, sample_rate: int, concept: Concept) -> np.ndarray:
        from .organism import synth
        from .organism.descriptors import descriptors

        self.check(concept)
        kind, key = self.SOURCES[concept.name]
        x = _mono(audio)
        d = descriptors(x, sample_rate)
        if kind == "descriptor":
            return np.asarray(d[key], dtype=np.float64)
        probs = self.scorer.classifier_probs(x, sample_rate, d)
        if key == "instrument":
            return probs["instrument"][:, synth.INSTRUMENTS.index(concept.name)].astype(np.float64)
        return probs[key].astype(np.float64)

    def sign(self, concept: Concept) -> int:
        from .organism.descriptors import SIGNS

        self.check(concept)
        kind, key = self.SOURCES[concept.name]
        return SIGNS[concept.name] if kind == "descriptor" else 1

    def similarity(self, audio: torch.Tensor, sample_rate: int, concept: Concept) -> np.ndarray:
        return self.sign(concept) * self.measure(audio, sample_rate, concept)


# --------------------------------------------------------------------------------------
# embedding scorers
# --------------------------------------------------------------------------------------
class ClapScorer:
    """CLAP audio-text cosine similarity (the paper's vocal-gender scorer), via transformers.

    ``source``: a local folder or Hub id of a ``ClapModel`` checkpoint, e.g.
    ``laion/larger_clap_music`` (loaded with ``from_pretrained``; offline it must be cached).
    """

    name = "clap"

    def __init__(self, source: str | Path, device: str = "cpu"):
        from transformers import ClapModel, ClapProcessor

        from .errors import hub_errors

        with hub_errors(str(source), None, offline_hint="download the CLAP checkpoint on a connected machine"):
            self.model = ClapModel.from_pretrained(str(source)).to(device).eval()
            self.processor = ClapProcessor.from_pretrained(str(source))
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

    def similarity(self, audio: torch.Tensor, sample_rate: int, concept: Concept) -> np.ndarray:
        sr = self.processor.feature_extractor.sampling_rate
        x = resample(_mono(audio), sample_rate, sr)
        inputs = self.processor(audio=list(x), sampling_rate=sr, return_tensors="pt")
        with torch.no_grad():
            e = self.model.get_audio_features(**{k: v.to(self.device) for k, v in inputs.items()})
        e = torch.nn.functional.normalize(getattr(e, "pooler_output", e), dim=-1)
        return (e @ self._text_embedding(concept.query)).cpu().double().numpy()


class MuQScorer:
    """MuQ-MuLan audio-text similarity (the paper's scorer for tempo, mood, instruments, genre).

    Needs the optional ``muq`` package (``pip install muq``; it pulls a CUDA torch, so it is
    kept out of the default install and CI) and a local or cached ``OpenMuQ/MuQ-MuLan-large``.
    """

    name = "muq"

    def __init__(self, source: str | Path = "OpenMuQ/MuQ-MuLan-large", device: str = "cpu"):
        try:
            from muq import MuQMuLan
        except ImportError:
            raise TadaError("the MuQ scorer needs the optional 'muq' package: pip install muq "
                            "(or pip install 'tada-steer[eval]'); or use --scorer organism / clap:PATH") from None
        self.model = MuQMuLan.from_pretrained(str(source)).to(device).eval()
        self.device = device

    def similarity(self, audio: torch.Tensor, sample_rate: int, concept: Concept) -> np.ndarray:
        x = torch.from_numpy(resample(_mono(audio), sample_rate, 24000)).to(self.device)
        with torch.no_grad():
            a = self.model(wavs=x)
            t = self.model(texts=[concept.query])
        return self.model.calc_similarity(a, t).reshape(-1).cpu().double().numpy()


def make_scorer(spec: str, device: str = "cpu") -> Scorer:
    """``organism`` | ``organism:FOLDER`` | ``clap:PATH_OR_ID`` | ``muq:PATH_OR_ID``."""
    kind, _, arg = spec.partition(":")
    if kind == "organism":
        return OrganismScorer(arg or None)
    if kind == "clap":
        if not arg:
            raise TadaError("give the CLAP checkpoint: --scorer clap:FOLDER_OR_HUB_ID (e.g. clap:laion/larger_clap_music)")
        return ClapScorer(arg, device=device)
    if kind == "muq":
        return MuQScorer(arg or "OpenMuQ/MuQ-MuLan-large", device=device)
    raise TadaError(f"unknown scorer {spec!r}; accepted: organism, organism:FOLDER, clap:PATH, muq:PATH")


__all__ = ["Scorer", "OrganismScorer", "ClapScorer", "MuQScorer", "make_scorer", "resample"]
