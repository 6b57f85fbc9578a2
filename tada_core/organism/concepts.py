"""The organism's concepts, in its own caption vocabulary (see :mod:`tada_core.concepts`).

Templates follow the paper's Table 6 ("a fast {base}" / "a slow {base}"); keywords and
replacements come from the caption grammar's word tables in :mod:`.synth`, so the
counterfactual of a training-style caption ("a quick sad waltz with drums") is another
caption the model could have seen ("a leisurely sad waltz with drums").
"""

from __future__ import annotations

from tada_core.concepts import Concept, ConceptSet
from tada_core.organism import synth


def bases() -> list[str]:
    """Base nouns ("pop song", "waltz", "tune", ...); the templates add the article."""
    return [p.split(" ", 1)[1] for p in synth.base_phrases() if p != "music"]


def _zip_words(table: dict[str, list[str]], pos: str, neg: str) -> dict[str, str]:
    return dict(zip(table[pos], table[neg]))


_INSTRUMENT_SWAP = {"piano": "flute", "flute": "piano", "violin": "trumpet", "trumpet": "violin"}


def _instrument(name: str) -> Concept:
    other = _INSTRUMENT_SWAP[name]
    words, other_words = synth.INSTRUMENT_WORDS[name], synth.INSTRUMENT_WORDS[other]
    return Concept(name, f"a {{base}} played on {name}", f"a {{base}} played on {other}",
                   keywords=tuple(words), exclude=tuple(other_words),
                   replacements={w: other_words[min(i, len(other_words) - 1)] for i, w in enumerate(words)},
                   query=f"a {name} tune")


ORGANISM_CONCEPTS: dict[str, Concept] = {c.name: c for c in (
    Concept("tempo", "a fast {base}", "a slow {base}",
            keywords=tuple(synth.TEMPO_WORDS["fast"]), exclude=tuple(synth.TEMPO_WORDS["slow"]),
            replacements=_zip_words(synth.TEMPO_WORDS, "fast", "slow"), query="a fast tune"),
    Concept("mood", "a happy {base}", "a sad {base}",
            keywords=tuple(synth.MOOD_WORDS["happy"]), exclude=tuple(synth.MOOD_WORDS["sad"]),
            replacements=_zip_words(synth.MOOD_WORDS, "happy", "sad"), query="a happy tune"),
    Concept("brightness", "a bright {base}", "a dark {base}",
            keywords=tuple(synth.BRIGHT_WORDS["bright"]), exclude=tuple(synth.BRIGHT_WORDS["dark"]),
            replacements=_zip_words(synth.BRIGHT_WORDS, "bright", "dark"), query="a bright tune"),
    Concept("drums", "a {base} with drums", "a {base} without drums",
            keywords=("with drums", "with a drum beat", "with percussion"),
            exclude=("without drums", "with no percussion"),
            replacements={"with drums": "without drums", "with a drum beat": "without drums",
                          "with percussion": "with no percussion"}, query="a tune with drums"),
    Concept("vocal_gender", "a {base} with female vocals", "a {base} with male vocals",
            keywords=tuple(synth.VOICE_PHRASES["female"]), exclude=tuple(synth.VOICE_PHRASES["male"]),
            replacements=dict(zip(synth.VOICE_PHRASES["female"], synth.VOICE_PHRASES["male"])),
            query="a tune with female vocals"),
    *(_instrument(name) for name in synth.INSTRUMENTS),
)}


def eval_prompts() -> list[str]:
    """Prompts to steer in evaluations: every base with its article, naming no concept ("a waltz")."""
    return [("an " if b[0] in "aeiou" else "a ") + b for b in bases()]


def captions(n: int = 2000, seed: int = 7) -> list[str]:
    """Training-style captions (the organism's MusicCaps), deterministic per ``seed``."""
    return [c for _, c, _ in synth.dataset(n, seed=seed)]


# The instruments are one 4-way attribute; adherence asks for each of them by name.
INSTRUMENT_TEMPLATE = "a {base} played on {instrument}"

# DiffMean's neutral endings in the organism's own caption vocabulary (each on both sides of a pair)
DIFFMEAN_VARIANTS = ("", " played on piano", " played on violin", " played on flute", " played on trumpet",
                     " with drums", " without drums", " with female vocals", " with male vocals", ", instrumental")

ORGANISM_CONCEPT_SET = ConceptSet("tada-organism", ORGANISM_CONCEPTS, tuple(bases()), tuple(eval_prompts()),
                                  captions=captions, neutral="a {base}", variants=DIFFMEAN_VARIANTS)
