"""Musical concepts as data: keywords, counterfactual replacements, contrastive prompts, queries.

A :class:`Concept` is a contrast c vs c-tilde ("fast" vs "slow"). It carries everything the
TADA paper needs to localize and steer it:

* ``keywords`` / ``exclude``: which captions show c and not c-tilde (paper Table 5, "filter
  keywords"), and ``replacements``: how to turn such a caption into its counterfactual
  (Table 5, "replacements"). The paper asked GPT-4 for the counterfactual; here it is a
  deterministic, whole-word, case- and plural-aware substitution (:func:`counterfactual`).
* ``positive`` / ``negative``: the contrastive templates of Table 6 ("fast {base}" /
  "slow {base}"), filled with base descriptions (App. B.1), or explicit prompt lists.
* ``query``: the audio-text alignment query of Table 7 ("a fast track").

A :class:`ConceptSet` bundles a model's concepts with its base prompts, evaluation
prompts and captions; each model's registry entry carries one. ``PAPER_CONCEPT_SET`` holds
the paper's concepts for real models (the organism's own set, in its caption vocabulary,
is in :mod:`tada_core.organism.concepts`). :func:`load_concept` reads a user's JSON or
YAML file, and :meth:`Concept.from_prompts` makes one from two prompt lists.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from tada_core.errors import TadaError, check_prompts

# App. B.1: the paper names 25 of its 50 base prompts; the other 25 are ours, in the same spirit.
BASE_PROMPTS: tuple[str, ...] = (
    # from the paper
    "a song", "a melody", "music", "a tune", "a track", "instrumental music", "a pop song", "a rock song",
    "a jazz piece", "a classical piece", "electronic music", "acoustic music", "orchestral music",
    "hip hop music", "country music", "blues music", "folk music", "reggae music", "ambient music",
    "lofi music", "a ballad", "a love song", "energetic music", "calm music", "dramatic music",
    # ours
    "a dance track", "a film score", "a waltz", "a march", "a lullaby", "a soul song", "a funk groove",
    "a disco track", "a metal song", "a punk song", "an indie song", "a synthwave track", "a techno track",
    "a house track", "a trap beat", "a bossa nova", "a tango", "a flamenco piece", "a gospel song",
    "a choir piece", "a string quartet", "a piano piece", "a guitar piece", "a video game theme",
    "a cinematic track",
)

# App. B.2: 14 of the 100 evaluation prompts are quoted in the paper; the other 86 are ours.
EVAL_PROMPTS: tuple[str, ...] = (
    # from the paper
    "Upbeat indie pop track with jangly guitars and handclaps",
    "90s grunge with fuzzy guitars, angst-filled dynamics",
    "Dark synthwave anthem with pulsing bass, retro analog synths",
    "Techno industrial with distorted kicks, metallic textures",
    "Melancholic jazz ballad with smooth saxophone, walking bassline",
    "Delta blues with slide guitar, stomping rhythm",
    "Traditional Irish jig with fiddle, tin whistle, bodhran drums",
    "Afrobeat groove with polyrhythmic percussion, brass stabs",
    "Romantic piano nocturne with expressive dynamics",
    "Epic orchestral score with full brass, timpani rolls",
    "Boom bap with punchy drums, scratched samples",
    "Neo-soul with warm keys, silky bassline",
    "Acoustic folk song with fingerpicked guitar, gentle harmonies",
    "Bluegrass breakdown with banjo rolls, fiddle solo",
    # ours: pop & rock
    "Stadium rock anthem with big drums and soaring guitar solo",
    "Dreamy shoegaze with washed-out guitars and hazy vocals",
    "Bubblegum pop with bright synths and catchy chorus",
    "Garage rock with raw guitars and crashing cymbals",
    "Soft rock ballad with piano and warm harmonies",
    "Pop punk with fast power chords and energetic drums",
    "Britpop with jangly guitars and a sing-along chorus",
    "Progressive rock with odd time signatures and organ",
    "Surf rock with reverb-drenched guitar and tom grooves",
    "Power ballad with emotional vocals and string section",
    "Alternative rock with driving bass and moody guitars",
    "Psychedelic rock with swirling effects and sitar",
    "Krautrock with motorik drums and droning synths",
    "K-pop with glossy production and a dance beat",
    # ours: electronic
    "Deep house with warm pads and a steady four-on-the-floor kick",
    "Drum and bass with rolling breakbeats and heavy sub bass",
    "Ambient electronica with evolving textures and soft bells",
    "Trance anthem with euphoric leads and a big build-up",
    "Dubstep with wobbling bass and half-time drums",
    "Chillwave with lo-fi synths and mellow grooves",
    "Electro funk with talk box and punchy claps",
    "Minimal techno with hypnotic clicks and deep kicks",
    "Future bass with lush chords and vocal chops",
    "Eurodance track with pumping bass and catchy synth hook",
    "IDM with glitchy beats and intricate melodies",
    "Downtempo trip hop with dusty drums and dark strings",
    # ours: jazz & blues
    "Bebop with fast saxophone runs and brushed drums",
    "Cool jazz trio with muted trumpet and upright bass",
    "Swing big band with bright horns and walking bass",
    "Smooth jazz with soprano saxophone and soft electric piano",
    "Chicago blues with harmonica and electric guitar",
    "Jazz fusion with funky bass and synth solos",
    "Gypsy jazz with acoustic guitar and violin",
    "Latin jazz with congas, piano montuno and trumpet",
    "Slow blues with crying guitar and organ",
    "Free jazz with chaotic saxophone and loose drums",
    "Lounge jazz with vibraphone and light percussion",
    "Soul jazz with Hammond organ and groovy drums",
    # ours: world music
    "Flamenco with passionate guitar and handclaps",
    "Reggae with offbeat guitar skank and deep bass",
    "Bossa nova with nylon guitar and soft vocals",
    "Indian classical raga with sitar and tabla",
    "West African kora melody with gentle percussion",
    "Cumbia with accordion and güira rhythm",
    "Celtic ballad with harp and tin whistle",
    "Middle Eastern music with oud and darbuka",
    "Samba with energetic percussion and cavaquinho",
    "Japanese traditional music with koto and shakuhachi",
    "Balkan brass band with fast trumpets and tuba",
    "Tango with bandoneon, violin and piano",
    # ours: classical
    "Baroque harpsichord piece with ornamented melody",
    "String quartet with lyrical cello line",
    "Solo violin sonata with virtuosic passages",
    "Gentle classical guitar prelude",
    "Minimalist piano piece with repeating arpeggios",
    "Choral hymn with soaring sopranos and organ",
    "Opera aria with dramatic soprano and orchestra",
    "Woodwind quintet with playful flute and clarinet",
    "Brass fanfare with trumpets and horns",
    "Impressionist piano piece with shimmering chords",
    "Cello suite with warm low tones",
    "Symphonic poem with sweeping strings and harp",
    # ours: hip hop & R&B
    "Trap beat with booming 808s and rapid hi-hats",
    "Lo-fi hip hop with vinyl crackle and mellow piano",
    "Old school hip hop with funky breakbeat and turntable scratches",
    "Contemporary R&B with smooth vocals and finger snaps",
    "G-funk with whiny synth lead and laid-back groove",
    "Drill beat with sliding bass and dark piano",
    "Motown soul with tambourine and horn section",
    "Funk jam with slap bass and wah guitar",
    "Gospel choir with organ and clapping",
    "Quiet storm slow jam with electric piano",
    "Jazzy hip hop with upright bass and muted trumpet",
    "Afro-pop with bright guitars and shakers",
    # ours: country & folk
    "Outlaw country with twangy telecaster and steel guitar",
    "Appalachian folk with dulcimer and fiddle",
    "Country pop with acoustic guitar and catchy chorus",
    "Singer-songwriter ballad with piano and soft vocals",
    "Americana with harmonica and brushed snare",
    "Cajun music with accordion and fiddle",
    "Irish folk reel with fast fiddle and bodhran",
    "Honky-tonk with barroom piano and walking bass",
    "Nordic folk with nyckelharpa and drone",
    "Campfire folk song with strummed guitar and whistling",
    "Sea shanty with stomping rhythm and group vocals",
    "Indie folk with banjo, glockenspiel and gentle drums",
)


@dataclasses.dataclass(frozen=True)
class Concept:
    """A contrast between ``positive`` (c) and ``negative`` (c-tilde); see the module docstring.

    ``positive``/``negative`` are templates with ``{base}`` or, for a concept made from
    explicit prompt lists, ``prompt_pairs`` holds the pairs and the templates are unused.
    ``replacements`` maps a word or phrase of c to its counterpart in c-tilde ("" removes it).
    """

    name: str
    positive: str = "{base}"
    negative: str = "{base}"
    keywords: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    replacements: Mapping[str, str] = dataclasses.field(default_factory=dict)
    query: str = ""
    alignment_model: str = "muq"
    prompt_pairs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_\-]*", self.name):
            raise TadaError(f"concept name must be letters, digits, '_' or '-'; got {self.name!r}")
        if not self.prompt_pairs:
            for side, template in (("positive", self.positive), ("negative", self.negative)):
                if "{base}" not in template:
                    raise TadaError(f"concept {self.name!r}: {side} template {template!r} must contain '{{base}}' "
                                    f"(or give explicit prompt lists)")
            if self.positive == self.negative:
                raise TadaError(f"concept {self.name!r}: positive and negative templates are identical")
        object.__setattr__(self, "keywords", tuple(self.keywords))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "replacements", dict(self.replacements))
        object.__setattr__(self, "prompt_pairs", tuple((str(a), str(b)) for a, b in self.prompt_pairs))
        if not self.query:
            object.__setattr__(self, "query", f"{self.name.replace('_', ' ')} music")

    @classmethod
    def from_prompts(cls, name: str, positive: Sequence[str], negative: Sequence[str],
                     query: str = "", **fields: Any) -> "Concept":
        """A concept from two prompt lists of equal length, paired in order."""
        pos = check_prompts(positive, f"concept {name!r} positive prompts")
        neg = check_prompts(negative, f"concept {name!r} negative prompts")
        if len(pos) != len(neg):
            raise TadaError(f"concept {name!r}: {len(pos)} positive but {len(neg)} negative prompts; "
                            f"they are paired in order, so give as many of each")
        return cls(name=name, prompt_pairs=tuple(zip(pos, neg)), query=query, **fields)

    def contrastive_prompts(self, bases: Sequence[str] = BASE_PROMPTS) -> tuple[list[str], list[str]]:
        """Positive and negative prompt lists, paired in order (App. B.1, Table 6)."""
        if self.prompt_pairs:
            return [a for a, _ in self.prompt_pairs], [b for _, b in self.prompt_pairs]
        bases = check_prompts(bases, "bases")
        return [self.positive.format(base=b) for b in bases], [self.negative.format(base=b) for b in bases]

    def counterfactual(self, caption: str) -> str:
        """``caption`` with this concept's words replaced by their counterparts (Table 5)."""
        return counterfactual(caption, self.replacements)

    def pairs(self, captions: Iterable[str], limit: int = 256) -> list[tuple[str, str]]:
        """Counterfactual pairs (P_c, P_c-tilde) from captions that show c and not c-tilde (Sec. 4).

        A caption qualifies if it contains a keyword (whole word, any case) and no
        ``exclude`` word; its counterfactual must differ from it. Order follows ``captions``;
        at most ``limit`` pairs (the paper used up to 256).
        """
        if not self.keywords:
            raise TadaError(f"concept {self.name!r} has no filter keywords; give 'keywords' to select captions")
        has = _phrase_regex(self.keywords)
        bad = _phrase_regex(self.exclude) if self.exclude else None
        out, seen = [], set()
        for text in captions:
            text = " ".join(str(text).split())
            if not text or text in seen or not has.search(text) or (bad and bad.search(text)):
                continue
            seen.add(text)
            alt = self.counterfactual(text)
            if alt != text:
                out.append((text, alt))
            if len(out) >= limit:
                break
        return out

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["prompt_pairs"] = [list(p) for p in self.prompt_pairs]
        return d


# --------------------------------------------------------------------------------------
# counterfactual replacement
# --------------------------------------------------------------------------------------
def _plural(word: str) -> str:
    if not word or word.endswith("s"):
        return word
    if re.search(r"(x|z|ch|sh)$", word):
        return word + "es"
    if re.search(r"[^aeiou]y$", word):
        return word[:-1] + "ies"
    return word + "s"


def _phrase_regex(phrases: Iterable[str]) -> re.Pattern:
    alts = sorted({p.lower() for p in phrases if p}, key=len, reverse=True)
    body = "|".join(r"\s+".join(re.escape(w) for w in p.split()) for p in alts)
    return re.compile(rf"(?<![\w-])(?:{body})(?![\w-])", re.IGNORECASE)


def _match_case(src: str, dst: str) -> str:
    if not dst:
        return dst
    if src.isupper() and len(src) > 1:
        return dst.upper()
    if src[0].isupper():
        return dst[0].upper() + dst[1:]
    return dst


def counterfactual(text: str, replacements: Mapping[str, str]) -> str:
    """Replace whole words or phrases of ``text`` by ``replacements`` (longest match first).

    Case-aware ("Female" -> "Male"), plural-aware (a key "violin" also turns "violins"
    into the plural of its replacement), and a replacement "" deletes the word. Words
    inside other words never match ("male" does not touch "female").
    """
    table: dict[str, str] = {}
    for key, value in replacements.items():
        k, v = key.strip().lower(), value.strip()
        if not k:
            raise TadaError(f"replacement keys must be non-empty words; got {key!r}")
        table[k] = v
        plural = _plural(k)
        if plural != k and plural not in replacements:
            table.setdefault(plural, _plural(v) if v else "")
    if not table:
        return text
    pattern = _phrase_regex(table)

    def sub(m: re.Match) -> str:
        return _match_case(m.group(0), table[" ".join(m.group(0).lower().split())])

    out = pattern.sub(sub, text)
    return re.sub(r"\s+([,.;:!?])", r"\1", re.sub(r" {2,}", " ", out)).strip()


# --------------------------------------------------------------------------------------
# the paper's concepts (Tables 5-7)
# --------------------------------------------------------------------------------------
PAPER_CONCEPTS: dict[str, Concept] = {c.name: c for c in (
    Concept("vocal_gender", "{base} with female vocals", "{base} with male vocals",
            keywords=("female", "woman", "girlish", "women", "girl"), exclude=("male", "man", "men", "boy"),
            replacements={"female": "male", "woman": "man", "women": "men", "girlish": "boyish", "girl": "boy",
                          "her": "his", "herself": "himself", "she": "he", "feminine": "masculine"},
            query="This is a music of a female vocal singing", alignment_model="clap"),
    Concept("tempo", "fast {base}", "slow {base}",
            keywords=("fast", "rapid", "dynamic", "quick", "energetic", "groovy", "lively"),
            exclude=("slow", "slowed", "slower", "slowly", "slow-paced", "leisurely"),
            replacements={"fast": "slow", "faster": "slower", "quickly": "slowly", "quick": "slow",
                          "rapid": "slow", "lively": "sluggish", "fast-paced": "slow-paced", "energetic": "relaxed",
                          "dynamic": "static", "groovy": "dragging", "uptempo": "downtempo"},
            query="a fast track"),
    Concept("mood", "a happy {base}", "a sad {base}",
            keywords=("happy", "joyful", "upbeat", "uplifting", "cheerful"), exclude=("sad", "depressing", "dejected"),
            replacements={"happy": "sad", "joyful": "sorrowful", "cheerful": "gloomy", "upbeat": "downbeat",
                          "uplifting": "depressing", "warm": "cold", "happiness": "sadness", "joy": "sorrow"},
            query="a cheerful track"),
    Concept("piano", "{base} with piano", "{base}",
            keywords=("piano", "pianist", "keys"), exclude=(),
            replacements={"piano": "guitar", "pianist": "guitarist", "grand piano": "guitar"},
            query="a piano song"),
    Concept("drums", "{base} with drums", "{base}",
            keywords=("drums", "drum", "percussion"), exclude=("saxophone",),
            replacements={"drums": "saxophone", "drum": "saxophone", "percussion": "saxophone",
                          "percussionist": "saxophonist", "drummer": "saxophonist"},
            query="a song with drums"),
    Concept("flute", "{base} with flute", "{base}",
            keywords=("flute", "flutes"), exclude=("maracas", "maraca"),
            replacements={"flute": "maracas", "flutes": "maracas", "flutist": "maracas player"},
            query="a song with flute"),
    Concept("maracas", "{base} with maracas", "{base}",
            keywords=("maracas", "maraca"), exclude=("flute", "flutes"),
            replacements={"maracas": "flute", "maraca": "flute"}, query="a song with maracas"),
    Concept("trumpet", "{base} with trumpet", "{base} with violin",
            keywords=("trumpet", "trumpets"), exclude=("violin", "fiddle"),
            replacements={"trumpet": "violin", "trumpeter": "violinist"}, query="a song with trumpet"),
    Concept("violin", "{base} with violin", "{base} with trumpet",
            keywords=("violin", "fiddle"), exclude=("trumpet", "trumpets"),
            replacements={"violin": "trumpet", "fiddle": "trumpet", "violinist": "trumpeter", "string": "",
                          "fiddler": "trumpeter"}, query="a song with violin"),
    Concept("jazz", "a jazz version of {base}", "an opera version of {base}",
            keywords=("jazz", "blues"), exclude=("opera",),
            replacements={"jazz": "opera", "blues": "opera", "band": "choir", "jazzy": "operatic"},
            query="a jazz song"),
    Concept("reggae", "a reggae version of {base}", "a metal version of {base}",
            keywords=("reggae", "jamaican", "tropical", "beach"), exclude=("metal",),
            replacements={"reggae": "metal", "jamaican": "scandinavian", "tropical": "nordic", "beach": "concert",
                          "chill": "heavy"}, query="a reggae song"),
)}


@dataclasses.dataclass(frozen=True)
class ConceptSet:
    """The concepts a model knows, and the prompts to use them with (one per registry entry).

    ``bases`` fill the ``{base}`` of the contrastive templates (App. B.1); ``eval_prompts``
    are the prompts steered in evaluations (App. B.2); ``captions``, if the model has
    training-style captions of its own, returns them (counterfactual pairs are drawn from
    them when the user gives no caption file). ``neutral`` makes a base's prompt that names no
    concept (the neutral prompt that the steering benchmark steers).
    """

    name: str
    concepts: Mapping[str, Concept]
    bases: tuple[str, ...]
    eval_prompts: tuple[str, ...]
    captions: Callable[[], list[str]] | None = None
    neutral: str = "{base}"   # the concept-free prompt of a base (the steering benchmark's neutral prompt)
    variants: tuple[str, ...] | None = None   # DiffMean's neutral endings (None: PROMPT_VARIANTS)

    def names(self) -> list[str]:
        return list(self.concepts)

    def get(self, name: str | Concept, *, files: bool = False) -> Concept:
        """A concept of this set by name, or a :class:`Concept` as is; with ``files=True`` (the command line,
        never a server's visitors) also a .json/.yaml concept file."""
        if isinstance(name, Concept):
            return name
        if name in self.concepts:
            return self.concepts[name]
        if files and str(name).endswith((".json", ".yaml", ".yml")):
            return load_concept(name)
        shown = repr(name[:60]) if isinstance(name, str) else type(name).__name__
        raise TadaError(f"unknown concept {shown} for the {self.name} concepts; known: {', '.join(self.concepts)}"
                        + (" (or a .json/.yaml concept file)" if files else ""))

    def contrast(self, concept: Concept, seeds: Sequence[int] = (0,)) -> tuple[list[str], list[str], list[int]]:
        """The concept's contrastive prompt pairs on every base (Table 6), each run with every seed:
        (positive prompts, negative prompts, seeds), paired in order."""
        pos, neg = concept.contrastive_prompts(self.bases)
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise TadaError("seeds is empty; give at least one seed")
        return ([p for p in pos for _ in seeds], [n for n in neg for _ in seeds],
                [s for _ in pos for s in seeds])

    def localization_pairs(self, concept: Concept, captions: Sequence[str] | None = None, *, limit: int = 12,
                           templates: bool = False) -> tuple[list[tuple[str, str]], str]:
        """The (P_c, P_c-tilde) pairs to localize ``concept`` with, and how they were made.

        Counterfactual captions (TADA Sec. 3, Table 4: filter by keyword, replace the concept
        word) when there are captions (given, or the model's own) and the concept has keywords;
        else its contrastive templates (Table 6) on this set's bases.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise TadaError(f"the number of pairs must be an integer >= 1; got {limit!r}")
        if captions is None and self.captions is not None:
            captions = self.captions()
        if captions is not None and not templates and concept.keywords:
            return concept.pairs(captions, limit=limit), "counterfactual captions"
        pos, neg = concept.contrastive_prompts(self.bases)
        return list(zip(pos, neg))[:limit], "templates"


PAPER_CONCEPT_SET = ConceptSet("paper", PAPER_CONCEPTS, BASE_PROMPTS, EVAL_PROMPTS)

# Neutral endings that multiply the template prompts into DiffMean's prompt sets (S_pos, S_neg)
PROMPT_VARIANTS = ("", ", instrumental", ", studio recording", ", live recording", ", short loop", ", background music",
                   ", for a film scene", ", with a clear melody")


def diffmean_prompts(concept: Concept, bases: Sequence[str], n: int = 100,
                     variants: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """``n`` positive and ``n`` negative prompts for DiffMean (Facchiano et al. Sec. 3), made deterministically:
    the concept's templates on every base, then again with each of ``variants`` (default
    :data:`PROMPT_VARIANTS`; a concept set's own with ``concepts.variants``) appended, in order,
    paired (the i-th positive and negative prompts differ only in the concept)."""
    variants = tuple(PROMPT_VARIANTS if variants is None else variants)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise TadaError(f"the number of DiffMean prompts must be an integer >= 1; got {n!r}")
    pos, neg = concept.contrastive_prompts(bases)
    most = len(pos) * len(variants)
    if n > most:
        raise TadaError(f"concept {concept.name!r} makes at most {most} distinct prompts here; got n={n}")
    out_pos = [p + v for v in variants for p in pos][:n]
    out_neg = [q + v for v in variants for q in neg][:n]
    return out_pos, out_neg


def load_concept(path: str | Path) -> Concept:
    """Read a user's concept from JSON or YAML.

    Fields: ``name``; either ``positive`` and ``negative`` as templates with ``{base}``
    or as lists of prompts (paired in order); optional ``keywords``, ``exclude``,
    ``replacements``, ``query``.
    """
    path = Path(path)
    if not path.is_file():
        raise TadaError(f"concept file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # noqa: BLE001 - any parse error becomes one clear message
        raise TadaError(f"cannot parse concept file {str(path)!r}: {e}") from None
    if not isinstance(data, dict) or "name" not in data:
        raise TadaError(f"concept file {str(path)!r} must hold a mapping with at least 'name', 'positive', "
                        f"'negative'")
    allowed = {"name", "positive", "negative", "keywords", "exclude", "replacements", "query", "alignment_model"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise TadaError(f"concept file {str(path)!r} has unknown fields {unknown}; allowed: {sorted(allowed)}")
    pos, neg = data.get("positive"), data.get("negative")
    extra = {k: data[k] for k in ("keywords", "exclude", "replacements", "alignment_model") if k in data}
    if isinstance(pos, list) or isinstance(neg, list):
        return Concept.from_prompts(data["name"], pos or [], neg or [], query=data.get("query", ""), **extra)
    if not isinstance(pos, str) or not isinstance(neg, str):
        raise TadaError(f"concept file {str(path)!r}: 'positive' and 'negative' must be two templates with "
                        f"{{base}} or two prompt lists")
    return Concept(data["name"], pos, neg, query=data.get("query", ""), **extra)


def read_captions(path: str | Path, column: str = "caption") -> list[str]:
    """Captions from MusicCaps' public CSV (its ``caption`` column), a JSON list, or a text file (one per line)."""
    path = Path(path)
    if not path.is_file():
        raise TadaError(f"caption file {str(path)!r} does not exist")
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or column not in reader.fieldnames:
                raise TadaError(f"{str(path)!r} has no {column!r} column; columns: {reader.fieldnames}")
            captions = [row[column] for row in reader]
    elif path.suffix.lower() == ".json":
        captions = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(captions, list):
            raise TadaError(f"{str(path)!r} must hold a JSON list of captions")
    else:
        captions = path.read_text(encoding="utf-8").splitlines()
    captions = [str(c).strip() for c in captions if str(c).strip()]
    if not captions:
        raise TadaError(f"{str(path)!r} holds no captions")
    return captions


__all__ = ["Concept", "ConceptSet", "PAPER_CONCEPTS", "PAPER_CONCEPT_SET", "BASE_PROMPTS", "EVAL_PROMPTS",
           "PROMPT_VARIANTS", "diffmean_prompts", "counterfactual",
           "load_concept", "read_captions"]
