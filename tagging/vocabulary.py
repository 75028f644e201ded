"""Mapping free-text tag terms onto the owner's tag vocabulary.

A caption model writes free tags ("dogs", "Sunset", "seaside", "kitty"); the
owner keeps tags in a hierarchy (``Places/Italy/Rome``, ``Animals/Dog``) with
aliases (``kitty`` → ``cat``). :class:`Vocabulary` maps each model term onto
an existing tag, so the model reuses the owner's tags instead of inventing
near-duplicates. A term that maps nowhere stays unmatched: the caller makes
a *proposed* tag of it. A wrong merge is worse than a missed one, so every
rule here errs towards "no match".

Order of the rules (:meth:`Vocabulary.match`), first hit wins:

1. ``exact``: the term is a tag's leaf name or full path, character for character;
2. ``case``: the same after :func:`normalize` (case, spacing, surrounding punctuation);
3. ``plural``: the same after :func:`singular` as well (``dogs`` → ``Dog``);
4. ``alias``: an alias of the tag, normalised and singular-insensitive;
5. ``synonym``: only with an ``embed`` function and a threshold: the nearest leaf
   name or alias by cosine similarity of sentence embeddings, at or above the
   threshold. Measured in ``bench/vocabulary_bench.py`` (BENCHMARKS.md).

Keywords read from files use ``|`` (Lightroom) or ``/`` (digiKam) between
hierarchy levels: :func:`split_hierarchy`. A term with a separator is compared
with full paths (``Places|Italy|Rome`` is the path ``Places/Italy/Rome``) and
is never matched through its last level alone: ``People|Georgia`` must not
land on ``Places/Georgia``.

Pure Python and numpy; no Django, no torch (the embedding function is passed in).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# Default for Vocabulary(synonym_threshold=None): the lowest cosine similarity of
# all-MiniLM-L6-v2 embeddings (tagging.text_embeddings) at which a term maps onto a
# tag as a near-synonym. Measured with bench/vocabulary_bench.py (BENCHMARKS.md,
# "Tag vocabulary: near-synonym mapping"; 75 tags, 172 labelled terms, 108 that must map):
# rules alone: precision 1.000, recall 0.213 (F1 0.351); rules + MiniLM at 0.80:
# precision 0.978, recall 0.407 (F1 0.575), the one wrong merge evening → Night (0.81).
# 0.75 has the best F1 (0.679) but its precision is exactly the 0.95 bar (3 wrong of
# 60: evening → Night, motorcycle → Bicycle, germany → Italy) and drops to 0.872 at
# 0.70; at 0.80 the bar holds with a step to spare. None would turn synonyms off.
SYNONYM_THRESHOLD: float | None = 0.80

MAX_TERM_CHARS = 100
# Work on at most this much of the raw input: whitespace and punctuation that
# normalize() removes rarely fill more than this before the first 100 characters.
_MAX_RAW_CHARS = 1000

HIERARCHY_SEPARATORS = ("|", "/")

# --- singular() ---------------------------------------------------------------

# Words that look plural but are not (or whose plural is the same word). Words
# ending in -ss, -us, -is (and so -ous) are left alone by rule; these are the rest.
INVARIANT = frozenset(
    """
    aircraft spacecraft hovercraft watercraft sheep fish deer moose bison salmon trout
    cod swine cattle offspring series species news means headquarters crossroads
    barracks glasses sunglasses eyeglasses jeans clothes scissors shorts trousers pants
    pajamas pyjamas tights binoculars goggles politics physics mathematics athletics
    gymnastics economics electronics aerobics christmas texas atlas canvas lens
    chaos cosmos kudos ethos pathos asbestos gas bias alias
    """.split()
)

# Irregular plurals, and regular-looking ones the suffix rules would get wrong.
IRREGULAR = {
    "children": "child",
    "men": "man",
    "women": "woman",
    "gentlemen": "gentleman",
    "snowmen": "snowman",
    "firemen": "fireman",
    "fishermen": "fisherman",
    "policemen": "policeman",
    "businessmen": "businessman",
    "postmen": "postman",
    "mice": "mouse",
    "lice": "louse",
    "geese": "goose",
    "feet": "foot",
    "teeth": "tooth",
    "oxen": "ox",
    "cacti": "cactus",
    "fungi": "fungus",
    # -ses that drop "es" (the plain rule would give "buse", "lense"…)
    "buses": "bus",
    "gases": "gas",
    "lenses": "lens",
    "circuses": "circus",
    "cactuses": "cactus",
    "campuses": "campus",
    "octopuses": "octopus",
    "walruses": "walrus",
    "irises": "iris",
    "canvases": "canvas",
    "atlases": "atlas",
    "quizzes": "quiz",
    # -oes → -o (the plain rule keeps the e: shoes → shoe, canoes → canoe)
    "volcanoes": "volcano",
    "potatoes": "potato",
    "tomatoes": "tomato",
    "heroes": "hero",
    "mangoes": "mango",
    "echoes": "echo",
    "tornadoes": "tornado",
    "mosquitoes": "mosquito",
    "dominoes": "domino",
    # -ves → -f / -fe, only where common: most -ves words just drop the s (waves, caves, olives)
    "leaves": "leaf",
    "knives": "knife",
    "wolves": "wolf",
    "wives": "wife",
    "lives": "life",
    "halves": "half",
    "shelves": "shelf",
    "bookshelves": "bookshelf",
    "calves": "calf",
    "loaves": "loaf",
    "thieves": "thief",
    "scarves": "scarf",
    "elves": "elf",
    "dwarves": "dwarf",
    "hooves": "hoof",
    "wharves": "wharf",
    "sheaves": "sheaf",
}

# Nouns ending in -ie, whose plural -ies must not become -y (movies, not "movy").
IE_NOUNS = frozenset(
    """
    movie cookie selfie smoothie hoodie collie yorkie beanie magpie prairie brownie
    zombie hippie calorie rookie pixie genie veggie goalie auntie birdie sweetie
    necktie bowtie pie tie lie die
    """.split()
)

# Nouns ending in -che, whose plural -ches must keep the e (avalanches, not "avalanch").
CHE_NOUNS = frozenset(
    "avalanche niche cache headache moustache mustache quiche cliche creche psyche ache".split()
)


def normalize(term: str) -> str:
    """A term as compared with tag names: NFKC, casefolded, single-spaced, without surrounding punctuation.

    ``'  "Golden   Retrievers." '`` → ``"golden retrievers"``. Inner punctuation
    stays (``st. peter's``). Control and format characters (zero-width spaces)
    are dropped. Returns ``""`` for a term with nothing usable; the result is
    at most :data:`MAX_TERM_CHARS` characters.
    """
    if not term:
        return ""
    text = unicodedata.normalize("NFKC", term[:_MAX_RAW_CHARS]).casefold()
    text = " ".join(text.split())
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf"))
    return _strip_punctuation(_strip_punctuation(text)[:MAX_TERM_CHARS])


def _strip_punctuation(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _is_edge(text[start]):
        start += 1
    while end > start and _is_edge(text[end - 1]):
        end -= 1
    return text[start:end]


def _is_edge(ch: str) -> bool:
    # Unicode punctuation (P*): # " ' . , ; : ! ? ( ) [ ] « » “ ” - _ …
    return ch.isspace() or unicodedata.category(ch).startswith("P")


def singular(term: str) -> str:
    """The English singular of a normalized term; only its last word changes.

    ``"golden retrievers"`` → ``"golden retriever"``, ``"berries"`` → ``"berry"``,
    ``"children"`` → ``"child"``. Left alone: words ending in -ss, -us, -is,
    words of three letters or fewer, words with digits (``1990s`` is a decade,
    not the year 1990), possessives (``children's``), the :data:`INVARIANT`
    words, and ``people`` (a tag of its own). Deliberately plain: both sides
    of a comparison go through the same rules, so an odd singular of a rare
    word ("athens" → "athen") does no harm unless it collides with another word.
    """
    head, _, word = term.rpartition(" ")
    return f"{head} {_singular_word(word)}" if head else _singular_word(word)


def _singular_word(word: str) -> str:
    if word in IRREGULAR:
        return IRREGULAR[word]
    if (
        len(word) <= 3
        or not word.endswith("s")
        or word in INVARIANT
        or word.endswith(("ss", "us", "is"))
        or not word.replace("-", "").isalpha()  # digits (1990s), possessives (children's)
    ):
        return word
    if word.endswith("ies"):
        if word[:-1] in IE_NOUNS or len(word) <= 4:
            return word[:-1]  # movies → movie, pies → pie
        return word[:-3] + "y"  # berries → berry
    if word.endswith("ches"):
        return word[:-1] if word[:-1] in CHE_NOUNS else word[:-2]  # avalanches; beaches → beach
    if word.endswith(("shes", "xes", "sses", "zzes", "tzes")):
        return word[:-2]  # dishes, boxes, dresses, buzzes, waltzes
    return word[:-1]  # dogs, horses, mazes, waves, shoes


def split_hierarchy(keyword: str) -> list[str]:
    """The levels of a hierarchical keyword, in their original case.

    ``"Places|Italy|Rome"`` (Lightroom) and ``"Places/Italy/Rome"`` (digiKam)
    both give ``["Places", "Italy", "Rome"]``. Splits on ``|`` when the keyword
    has one (so ``"Music|AC/DC"`` keeps ``AC/DC``), else on ``/``; parts are
    stripped and empty ones dropped.
    """
    separator = "|" if "|" in keyword else "/"
    return [part.strip() for part in keyword.split(separator) if part.strip()]


# --- Vocabulary --------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One tag of the owner's vocabulary."""

    tag_id: int
    path: str  # "Places/Italy/Rome": the full path, "/"-separated
    name: str  # "Rome": the leaf
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Match:
    """Where a term landed, and by which rule."""

    tag_id: int
    how: str  # "exact" | "case" | "plural" | "alias" | "synonym"
    similarity: float = 1.0  # for "synonym": the cosine similarity


EXACT, CASE, PLURAL, ALIAS, SYNONYM = "exact", "case", "plural", "alias", "synonym"

Embed = Callable[[list[str]], "np.ndarray"]


class Vocabulary:
    """The owner's tags, indexed for :meth:`match`.

    ``embed`` is an optional function ``list[str] → (n, d)`` array of
    L2-normalised vectors (``tagging.text_embeddings.embed``); without it, or
    without a threshold, there are no synonym matches. ``synonym_threshold``
    defaults to :data:`SYNONYM_THRESHOLD`. Leaf names and aliases are embedded
    once per Vocabulary, on the first term that needs a synonym lookup.

    When several tags fit a term at the same rule (``Places/Georgia`` and
    ``People/Georgia`` for "georgia"), the one whose full path the term spells
    wins, else the shallowest, then the lowest tag_id.
    """

    def __init__(
        self,
        entries: Iterable[Entry],
        *,
        embed: Embed | None = None,
        synonym_threshold: float | None = None,
    ) -> None:
        self.entries: tuple[Entry, ...] = tuple(entries)
        self._embed = embed
        self.synonym_threshold = SYNONYM_THRESHOLD if synonym_threshold is None else synonym_threshold
        # One index per rule: key → entries, with whether the key is the entry's full path.
        self._exact: dict[str, list[tuple[Entry, bool]]] = {}
        self._case: dict[str, list[tuple[Entry, bool]]] = {}
        self._plural: dict[str, list[tuple[Entry, bool]]] = {}
        self._alias: dict[str, list[tuple[Entry, bool]]] = {}
        # Synonym candidates: normalized leaf name or alias → entries.
        self._names: dict[str, list[tuple[Entry, bool]]] = {}
        for entry in self.entries:
            self._add(self._exact, entry.name, entry)
            self._add(self._exact, _path_form(entry.path), entry, is_path=True)
            name = normalize(entry.name)
            self._add(self._case, name, entry)
            self._add(self._case, _path_key(entry.path, normalize), entry, is_path=True)
            self._add(self._plural, singular(name), entry)
            self._add(self._plural, _path_key(entry.path, _singular_key), entry, is_path=True)
            self._add(self._names, name, entry)
            for alias in entry.aliases:
                self._add(self._alias, _singular_key(alias), entry)
                self._add(self._names, normalize(alias), entry)
        self._name_keys: list[str] = sorted(self._names)
        self._name_vectors = None  # (len(_name_keys), d), computed on first use

    @property
    def synonyms_enabled(self) -> bool:
        return self._embed is not None and self.synonym_threshold is not None and bool(self._name_keys)

    def match(self, term: str) -> Match | None:
        """The tag ``term`` maps onto, or None (see the module docstring for the rules)."""
        return self.match_many([term])[0]

    def match_many(self, terms: list[str]) -> list[Match | None]:
        """:meth:`match` for each term, with one ``embed`` call for all terms that need a synonym lookup."""
        results: list[Match | None] = []
        pending: dict[str, list[int]] = {}  # normalized term → positions awaiting a synonym lookup
        for position, term in enumerate(terms):
            found, synonym_key = self._match_rules(term)
            results.append(found)
            if found is None and synonym_key:
                pending.setdefault(synonym_key, []).append(position)
        if pending and self.synonyms_enabled:
            keys = list(pending)
            for key, found in zip(keys, self._nearest(keys), strict=True):
                for position in pending[key]:
                    results[position] = found
        return results

    def _match_rules(self, term: str) -> tuple[Match | None, str]:
        """The rule-based match of a term, and the key to look up as a synonym when there is none."""
        name = normalize(term)
        if not name:
            return None, ""
        hierarchical = len(split_hierarchy(term)) > 1
        plural_keys = {singular(name), _path_key(term, _singular_key)}
        for how, index, keys in (
            (EXACT, self._exact, {term, _path_form(term)}),
            (CASE, self._case, {name, _path_key(term, normalize)}),
            (PLURAL, self._plural, plural_keys),
            # A hierarchical keyword is matched by its path only: its levels say where it belongs.
            (ALIAS, self._alias, () if hierarchical else plural_keys),
        ):
            entry = _best([candidate for key in keys for candidate in index.get(key, ())])
            if entry is not None:
                return Match(entry.tag_id, how), ""
        return None, "" if hierarchical else name

    def _nearest(self, keys: list[str]) -> list[Match | None]:
        import numpy as np  # noqa: PLC0415

        if self._name_vectors is None:
            self._name_vectors = _as_matrix(self._embed(self._name_keys), len(self._name_keys))
        similarities = _as_matrix(self._embed(keys), len(keys)) @ self._name_vectors.T
        found: list[Match | None] = []
        for row in similarities:
            best = int(np.argmax(row))
            similarity = float(row[best])
            if similarity >= self.synonym_threshold:
                entry = _best(self._names[self._name_keys[best]])
                found.append(Match(entry.tag_id, SYNONYM, similarity))
            else:
                found.append(None)
        return found

    @staticmethod
    def _add(index: dict, key: str, entry: Entry, *, is_path: bool = False) -> None:
        if key:
            index.setdefault(key, []).append((entry, is_path))


def _singular_key(text: str) -> str:
    return singular(normalize(text))


def _path_form(text: str) -> str:
    """A path or keyword with "/" between its levels: ``"Places|Italy|Rome"`` → ``"Places/Italy/Rome"``."""
    return "/".join(split_hierarchy(text))


def _path_key(text: str, level_key: Callable[[str], str]) -> str:
    return "/".join(level_key(part) for part in split_hierarchy(text))


def _best(candidates: list[tuple[Entry, bool]]) -> Entry | None:
    """Of the tags that fit: the one whose full path matched, else the shallowest, then the lowest id."""
    if not candidates:
        return None
    entry, _ = min(candidates, key=lambda c: (not c[1], c[0].path.count("/"), c[0].tag_id))
    return entry


def _as_matrix(vectors, rows: int) -> np.ndarray:
    import numpy as np  # noqa: PLC0415

    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != rows:
        raise ValueError(f"embed() returned shape {matrix.shape} for {rows} texts; expected ({rows}, d)")
    return matrix
