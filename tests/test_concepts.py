"""Concepts as data: counterfactual pairs, caption files, user concepts, clear errors."""

import json
from pathlib import Path

import pytest

from tada_core.concepts import (
    BASE_PROMPTS,
    EVAL_PROMPTS,
    PAPER_CONCEPT_SET,
    PAPER_CONCEPTS,
    Concept,
    counterfactual,
    load_concept,
    read_captions,
)
from tada_core.errors import TadaError

DATA = Path(__file__).parent / "data"


def test_paper_prompt_sets_have_the_papers_sizes():
    assert len(BASE_PROMPTS) == len(set(BASE_PROMPTS)) == 50
    assert len(EVAL_PROMPTS) == len(set(EVAL_PROMPTS)) == 100
    assert "a jazz piece" in BASE_PROMPTS and "Neo-soul with warm keys, silky bassline" in EVAL_PROMPTS
    assert PAPER_CONCEPTS["tempo"].contrastive_prompts(["a song"]) == (["fast a song"], ["slow a song"])
    assert PAPER_CONCEPTS["piano"].contrastive_prompts(["a song"]) == (["a song with piano"], ["a song"])


def test_counterfactual_is_whole_word_case_and_plural_aware():
    table = {"female": "male", "violin": "trumpet", "string": ""}
    assert counterfactual("The Female singer plays violins, a Violin and strings.", table) == \
        "The Male singer plays trumpets, a Trumpet and."
    # "male" is inside "female": a key "male" must not touch it, nor "man" touch "woman"
    assert counterfactual("a female and a woman", {"male": "female", "man": "woman"}) == "a female and a woman"
    assert counterfactual("SLOW tempo", {"slow": "fast"}) == "FAST tempo"
    # phrases, longest first
    assert counterfactual("with a drum beat", {"drum": "x", "with a drum beat": "without drums"}) == "without drums"


def test_pairs_filter_by_keywords_and_exclusions_and_match_table_4():
    vocal = PAPER_CONCEPTS["vocal_gender"]
    caps = read_captions(DATA / "musiccaps_sample.csv")
    pairs = vocal.pairs(caps)
    originals = [a for a, _ in pairs]
    assert all("female" in a.lower() or "woman" in a.lower() for a in originals)
    assert not any("A man sings" in a for a in originals)  # excluded: mentions a male singer
    first = dict(pairs)[caps[0]]
    assert first == caps[0].replace("female vocal", "male vocal")  # Table 4, first row
    woman = next(b for a, b in pairs if a.startswith("A woman"))
    assert woman.startswith("A man sings") and "his voice" in woman
    assert PAPER_CONCEPTS["tempo"].pairs(caps, limit=1) == [
        (caps[4], caps[4].replace("fast energetic", "slow relaxed"))]


def test_organism_concepts_turn_captions_into_captions_of_the_other_side():
    from tada_core.organism import synth
    from tada_core.organism.concepts import ORGANISM_CONCEPTS, captions

    caps = captions(400)
    words = {w for c in captions(4000, seed=1) for w in c.replace(",", "").split()}
    for name, concept in ORGANISM_CONCEPTS.items():
        pairs = concept.pairs(caps, limit=50)
        assert len(pairs) >= 20, name
        for a, b in pairs:
            assert a != b and set(b.replace(",", "").split()) <= words, (name, b)
    assert set(ORGANISM_CONCEPTS) == set(synth.CONCEPTS)


def test_each_model_gets_its_own_concept_set():
    """The organism's tempo is written in its caption vocabulary ("a fast {base}"), the paper's in its own
    ("fast {base}"); the same name means a different prompt set per model."""
    from tada_core.registry import REGISTRY

    organism, ace = REGISTRY["tada-organism"].concepts, REGISTRY["ace-step"].concepts
    assert organism.get("tempo").positive == "a fast {base}" and ace.get("tempo").positive == "fast {base}"
    assert "brightness" in organism.names() and "brightness" not in ace.names()
    assert "jazz" in ace.names() and "jazz" not in organism.names()
    assert organism.eval_prompts[0] == "a folk song" and ace.eval_prompts == EVAL_PROMPTS
    pairs, how = organism.localization_pairs(organism.get("drums"), limit=3)
    assert how == "counterfactual captions" and len(pairs) == 3 and all("with" in a for a, _ in pairs)
    pairs, how = ace.localization_pairs(ace.get("drums"), limit=2)
    assert how == "templates" and pairs == [("a song with drums", "a song"), ("a melody with drums", "a melody")]
    pos, neg, seeds = organism.contrast(organism.get("tempo"), seeds=[0, 1])
    assert pos[:2] == ["a fast folk song"] * 2 and neg[1] == "a slow folk song" and seeds[:4] == [0, 1, 0, 1]


def test_user_concepts_from_lists_json_and_yaml(tmp_path):
    c = Concept.from_prompts("jazzy", ["jazz a", "jazz b"], ["rock a", "rock b"], query="jazz")
    assert c.contrastive_prompts() == (["jazz a", "jazz b"], ["rock a", "rock b"])
    (tmp_path / "c.json").write_text(json.dumps({"name": "lofi", "positive": "lofi {base}", "negative": "{base}",
                                                 "keywords": ["lofi"], "replacements": {"lofi": "hifi"}}))
    j = load_concept(tmp_path / "c.json")
    assert j.contrastive_prompts(["beat"]) == (["lofi beat"], ["beat"])
    assert j.counterfactual("Lofi beats") == "Hifi beats"
    (tmp_path / "c.yaml").write_text("name: choir\npositive: [a choir, a big choir]\nnegative: [a solo, a duo]\n")
    assert load_concept(tmp_path / "c.yaml").contrastive_prompts()[1] == ["a solo", "a duo"]
    assert PAPER_CONCEPT_SET.get(str(tmp_path / "c.json"), files=True).name == "lofi"
    with pytest.raises(TadaError, match="unknown concept") as e:     # a file is read only when asked for
        PAPER_CONCEPT_SET.get(str(tmp_path / "c.json"))
    assert "lofi" not in str(e.value) and "concept file" not in str(e.value)


@pytest.mark.parametrize("make, message", [
    (lambda: PAPER_CONCEPT_SET.get("tempoo"), "unknown concept 'tempoo'"),
    (lambda: PAPER_CONCEPT_SET.localization_pairs(PAPER_CONCEPTS["tempo"], limit=0), "integer >= 1"),
    (lambda: Concept.from_prompts("x", [], ["a"]), "expected at least one prompt"),
    (lambda: Concept.from_prompts("x", ["a", "b"], ["c"]), "2 positive but 1 negative"),
    (lambda: Concept("x", "fast", "slow"), "must contain '{base}'"),
    (lambda: Concept("bad name!", "{base}", "a {base}"), "concept name"),
    (lambda: Concept("x", "{base}", "{base} y").pairs(["a y"]), "no filter keywords"),
])
def test_bad_concepts_give_clear_errors(make, message):
    with pytest.raises(TadaError, match=message.replace("(", r"\(").replace("{", r"\{")):
        make()


def test_bad_files_give_clear_errors(tmp_path):
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(TadaError, match="cannot parse concept file"):
        load_concept(tmp_path / "bad.json")
    (tmp_path / "extra.json").write_text(json.dumps({"name": "a", "positive": "{base}", "negative": "b {base}",
                                                     "colour": 1}))
    with pytest.raises(TadaError, match="unknown fields"):
        load_concept(tmp_path / "extra.json")
    (tmp_path / "caps.csv").write_text("text\nhello\n")
    with pytest.raises(TadaError, match="no 'caption' column"):
        read_captions(tmp_path / "caps.csv")
    with pytest.raises(TadaError, match="does not exist"):
        read_captions(tmp_path / "missing.csv")
