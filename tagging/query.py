"""The search box: free text and filters in one line, parsed into plain fields.

``parse_query`` turns what a user typed into a ``ParsedQuery``; other code
turns that into SQL and a CLIP text embedding. This module is pure Python: no
models, no database. It never raises on what a user types — every problem
becomes a human-readable line in ``errors`` and the search still runs with
what could be understood.

What can be typed, in any order::

    beach sunset                 free text (CLIP and full-text get it)
    -dog                         full-text must not contain "dog"   (exclude_words)
    2023  2023-07  2023-07-04    taken in that year / month / day   (dates)
    after:2022-05-01             taken on or after the start of that period
    before:2024                  taken before the start of that period
    camera:nikon  camera:"canon eos 40d"
    place:arezzo  place:"new york"
    library:Family               library by name
    folder:2019/summer           folder path prefix (surrounding slashes dropped)
    tag:beach  -tag:people       tag required / tag excluded
    person:"Ann Smith"           a named person is in the photo
    has:gps                      also has:caption, has:embedding, has:faces, has:keywords,
                                 has:text (text was read in the photo)

How pieces combine — everything below is ANDed together:

* the free text is one search; ``exclude_words`` each remove matches;
* bare dates are alternatives: ``2019 2021`` is "in 2019 or in 2021";
* ``after:`` and ``before:`` both apply, and a repeated one narrows: the
  latest ``after:`` and the earliest ``before:`` win;
* several ``camera:`` (or ``place:``, ``library:``, ``folder:``) are
  alternatives: any of them;
* several ``tag:`` are all required; every ``-tag:`` is excluded;
* several ``person:`` are all required (photos with all of them);
* several ``has:`` are all required.

Syntax details:

* Filter keys are case-insensitive (``Camera:``); values keep their case for
  display (matching them case-insensitively is the caller's job). Repeated
  values are dropped case-insensitively.
* Dates are ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` with ASCII digits and
  zero padding. A bare token is a date only if its year is 1800–2200 and it is
  not quoted: ``"1984"`` and ``20231`` are text.
* Double quotes group words (``"new york"``) and stop them being read as a
  filter, a date or an exclusion (``"after:2020"``, ``"-dog"``). They are
  syntax, not content: ``text`` gets the words without quotes (no phrase
  search). Typographic quotes (“ ” „ ＂) count as ``"``, since phones type them.
* A leading ``-`` on a plain word or quoted phrase excludes it from the full
  text. Only ``tag:`` can be negated among filters; ``-camera:x`` or ``-2023``
  is reported and ignored rather than silently read the opposite way. Words
  made only of dashes are dropped, quoted or not.
* Only ``word:`` prefixes made of ASCII letters and dashes are filter keys, so
  ``12:30`` is text. An unknown key (``foo:bar``) is reported *and* kept as
  free text; a URL (``http://…``), a one-letter key (``C:\\``) and a key with
  nothing after the colon (``Re:``) are plain text without complaint.

``ParsedQuery.unparse()`` writes the canonical query text:
``parse_query(q.unparse())`` gives back the same semantic fields
(``SEMANTIC_FIELDS``) for anything ``parse_query`` returned. The canonical
text can be a few characters longer than what was typed (it quotes words that
would otherwise be read as filters), so parse it with a ``max_length`` to match.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta

__all__ = [
    "FILTER_KEYS",
    "HAS_VALUES",
    "MAX_ERRORS",
    "SEMANTIC_FIELDS",
    "DateRange",
    "ParsedQuery",
    "parse_query",
]

FILTER_KEYS = ("after", "before", "camera", "folder", "has", "library", "person", "place", "tag")
HAS_VALUES = frozenset({"caption", "embedding", "faces", "gps", "keywords", "text"})
# More problems than this are summed up in one last line: the list sits above the results.
MAX_ERRORS = 10
# The fields that say what to search for (``errors`` only says what went wrong).
SEMANTIC_FIELDS = (
    "text",
    "exclude_words",
    "dates",
    "after",
    "before",
    "cameras",
    "places",
    "libraries",
    "folders",
    "tags",
    "exclude_tags",
    "persons",
    "has",
)

BARE_YEARS = range(1800, 2201)
DATE_FORMATS = "use YYYY, YYYY-MM or YYYY-MM-DD"

# Filter value lists on ParsedQuery, and an example for "needs a value" messages.
_LIST_FIELDS = {
    "camera": ("cameras", "camera:nikon"),
    "place": ("places", 'place:"new york"'),
    "library": ("libraries", "library:Family"),
    "folder": ("folders", "folder:2019/summer"),
    "tag": ("tags", "tag:beach"),
    "person": ("persons", 'person:"Ann Smith"'),
}

_HAS_CHOICES = ", ".join(f"has:{v}" for v in sorted(HAS_VALUES)[:-1]) + f" or has:{max(HAS_VALUES)}"

_KEY = re.compile(r"([A-Za-z][A-Za-z-]*):")
_DATE = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?")

# Control characters go (whitespace among them becomes a space), and so do lone
# surrogates and bidi overrides; typographic double quotes become '"'.
_CLEAN = {cp: None for cp in range(0xD800, 0xE000)}
_CLEAN.update({cp: (" " if chr(cp).isspace() else None) for cp in (*range(0x00, 0x20), *range(0x7F, 0xA0))})
_CLEAN.update({cp: None for cp in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))})
_CLEAN.update({cp: '"' for cp in (0x201C, 0x201D, 0x201E, 0xFF02)})


@dataclass(frozen=True)
class DateRange:
    """A half-open range of calendar days ``[start, end)``; ``None`` leaves that side open."""

    start: date | None
    end: date | None

    @classmethod
    def year(cls, year: int) -> DateRange:
        return cls(date(year, 1, 1), date(year + 1, 1, 1))

    @classmethod
    def month(cls, year: int, month: int) -> DateRange:
        start = date(year, month, 1)
        return cls(start, _next_month(start))

    @classmethod
    def day(cls, day: date) -> DateRange:
        return cls(day, day + timedelta(days=1))

    def token(self) -> str:
        """The bare token that parses to this range: ``2023``, ``2023-07`` or ``2023-07-04``.

        Raises ``ValueError`` for a range that is not one whole year, month or
        day with a year of 1800–2200 (``parse_query`` produces no other kind).
        """
        start, end = self.start, self.end
        if start is not None and end is not None and start.year in BARE_YEARS:
            if start.month == 1 and start.day == 1 and end == date(start.year + 1, 1, 1):
                return f"{start.year:04d}"
            if start.day == 1 and end == _next_month(start):
                return f"{start.year:04d}-{start.month:02d}"
            if end == start + timedelta(days=1):
                return start.isoformat()
        raise ValueError(f"{self!r} is not a year, month or day that a query can name")


@dataclass
class ParsedQuery:
    """What a search box query asks for. See the module docstring for how the fields combine."""

    text: str = ""  # the free text, whitespace-normalised (what CLIP and full-text get)
    exclude_words: list[str] = field(default_factory=list)  # words or phrases the full text must not contain
    dates: list[DateRange] = field(default_factory=list)  # bare years/months/days: any of them (OR)
    after: date | None = None  # taken on or after this day
    before: date | None = None  # taken before this day
    cameras: list[str] = field(default_factory=list)  # any of them
    places: list[str] = field(default_factory=list)  # any of them
    libraries: list[str] = field(default_factory=list)  # any of them, by name
    folders: list[str] = field(default_factory=list)  # any of them, path prefixes without surrounding "/"
    tags: list[str] = field(default_factory=list)  # all of them
    exclude_tags: list[str] = field(default_factory=list)  # none of them
    persons: list[str] = field(default_factory=list)  # all of them, by name
    has: set[str] = field(default_factory=set)  # all of them, from HAS_VALUES
    errors: list[str] = field(default_factory=list)  # human-readable, shown above the results

    @property
    def has_filters(self) -> bool:
        """Whether anything besides the free text narrows the results (excluded words count)."""
        return bool(
            self.exclude_words
            or self.dates
            or self.after is not None
            or self.before is not None
            or self.cameras
            or self.places
            or self.libraries
            or self.folders
            or self.tags
            or self.exclude_tags
            or self.persons
            or self.has
        )

    @property
    def is_empty(self) -> bool:
        """No text and no filters: nothing was asked for."""
        return not self.text and not self.has_filters

    def describe(self) -> list[str]:
        """One chip per filter for the UI, in canonical order: ``["2023", "camera: nikon", "not tag: people"]``.

        The free text is not a chip: it stays in the search box. Excluded words
        read ``not: dog``.
        """
        chips = [r.token() for r in self.dates]
        if self.after is not None:
            chips.append(f"after: {_compact(self.after)}")
        if self.before is not None:
            chips.append(f"before: {_compact(self.before)}")
        for key, (name, _) in _LIST_FIELDS.items():
            chips += [f"{key}: {value}" for value in getattr(self, name)]
        chips += [f"not tag: {tag}" for tag in self.exclude_tags]
        chips += [f"has: {value}" for value in sorted(self.has)]
        chips += [f"not: {word}" for word in self.exclude_words]
        return chips

    def unparse(self) -> str:
        """The canonical query text: ``parse_query(q.unparse())`` has this query's semantic fields.

        Keys come out lower-case, dates as short as they can be
        (``after:2024-01-01`` → ``after:2024``), and values with spaces and
        words that would read as filters or dates in quotes. Raises
        ``ValueError`` for what no query text can say (a value containing
        ``"``, an empty value, an arbitrary date range); ``parse_query`` never
        produces those.
        """
        parts = [_word_text(word) for word in self.text.split()]
        parts += ["-" + _word_text(word) for word in self.exclude_words]
        parts += [r.token() for r in self.dates]
        if self.after is not None:
            parts.append(f"after:{_compact(self.after)}")
        if self.before is not None:
            parts.append(f"before:{_compact(self.before)}")
        for key, (name, _) in _LIST_FIELDS.items():
            parts += [f"{key}:{_value_text(value)}" for value in getattr(self, name)]
        parts += [f"-tag:{_value_text(tag)}" for tag in self.exclude_tags]
        parts += [f"has:{_value_text(value)}" for value in sorted(self.has)]
        return " ".join(parts)


def parse_query(text: str | None, *, max_length: int = 500) -> ParsedQuery:
    """Parse what was typed into the search box. Never raises on any text.

    The query is cut to ``max_length`` characters (after control characters
    are removed), with a note in ``errors``. ``None`` reads as an empty query.
    """
    parser = _Parser()
    cleaned = parser.clean(text, max_length)
    tokens, unclosed = _tokenize(cleaned)
    for raw in tokens:
        parser.token(raw)
    if unclosed:
        rest = _norm(tokens[-1].rsplit('"', 1)[1])
        if rest:
            parser.error(f"unclosed quote: “{_shown(rest)}” was read as quoted up to the end of the query")
        else:
            parser.error("a lone quote at the end of the query was ignored")
    return parser.finish()


class _Parser:
    """Collects one query's fields token by token."""

    def __init__(self) -> None:
        self.query = ParsedQuery()
        self.words: list[str] = []

    def error(self, message: str) -> None:
        if message not in self.query.errors:
            self.query.errors.append(message)

    def clean(self, text: object, max_length: int) -> str:
        """The text without control characters, NFC-normalised, cut to ``max_length``."""
        if text is None:
            text = ""
        elif isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        elif not isinstance(text, str):
            text = str(text)
        limit = max(max_length, 0)
        # NFC can grow a string at most threefold: look at no more than could survive.
        cut = len(text) > 4 * limit + 16
        cleaned = unicodedata.normalize("NFC", text[: 4 * limit + 16].translate(_CLEAN))
        if len(cleaned) > limit:
            cleaned, cut = cleaned[:limit], True
        if cut:
            self.error(f"the query was cut to {limit} characters")
        return cleaned

    def token(self, raw: str) -> None:
        """Read one whitespace-separated token (quotes still in it)."""
        negated = raw.startswith("-")
        body = raw[1:] if negated else raw
        key_match = _KEY.match(body)
        if key_match:
            key, value = key_match.group(1).lower(), body[key_match.end() :]
            if key in FILTER_KEYS:
                if negated and key != "tag":
                    self.error(f"only tag: can be negated — “{_shown(_norm(raw))}” was ignored")
                else:
                    self.filter(key, value, negated)
                return
            if value and not value.startswith("/") and len(key) > 1:
                self.error(_unknown_filter(key_match.group(1)))
        elif '"' not in body and (date_match := _DATE.fullmatch(body)) and int(date_match.group(1)) in BARE_YEARS:
            if negated:
                self.error(f"a date can't be excluded — “{raw}” was ignored (use before: or after:)")
                return
            period = _period(date_match)
            if period is not None:
                if period not in self.query.dates:
                    self.query.dates.append(period)
                return
            self.error(f"{body} is not a date ({DATE_FORMATS})")
        self.word(body, negated)

    def word(self, body: str, negated: bool) -> None:
        """A free-text word or quoted phrase, or one to exclude."""
        # Words made only of dashes say nothing to full text or CLIP, quoted or not.
        word = " ".join(w for w in _norm(body.replace('"', "")).split() if w.strip("-"))
        if not word:
            return
        if negated:
            _add(self.query.exclude_words, word)
        else:
            self.words.append(word)

    def filter(self, key: str, raw_value: str, negated: bool) -> None:
        """One known filter; a bad value is reported and the filter dropped."""
        value = _norm(raw_value.replace('"', ""))
        q = self.query
        if key in ("after", "before"):
            if not value:
                self.error(f"{key}: needs a date ({DATE_FORMATS})")
                return
            match = _DATE.fullmatch(value)
            period = _period(match) if match else None
            if period is None:
                self.error(f"{key}: {_shown(value)} is not a date ({DATE_FORMATS})")
            elif key == "after":
                q.after = period.start if q.after is None else max(q.after, period.start)
            else:
                q.before = period.start if q.before is None else min(q.before, period.start)
            return
        if key == "has":
            if not value:
                self.error(f"has: needs a value, like has:gps (no space after the colon) — use {_HAS_CHOICES}")
            elif value.lower() not in HAS_VALUES:
                self.error(f"has: “{_shown(value)}” is not known — use {_HAS_CHOICES}")
            else:
                q.has.add(value.lower())
            return
        if key == "folder":
            value = value.strip("/ ")
        name, example = _LIST_FIELDS[key]
        if not value:
            self.error(f"{'-' if negated else ''}{key}: needs a value, like {example} (no space after the colon)")
        elif negated:
            _add(q.exclude_tags, value)
        else:
            _add(getattr(q, name), value)

    def finish(self) -> ParsedQuery:
        """Join the free text, check the filters against each other, cap the error list."""
        q = self.query
        q.text = _norm(" ".join(self.words))
        if q.after is not None and q.before is not None and q.after >= q.before:
            self.error(f"nothing can be after {_compact(q.after)} and before {_compact(q.before)}")
        excluded = {tag.casefold() for tag in q.exclude_tags}
        for tag in q.tags:
            if tag.casefold() in excluded:
                self.error(f"nothing can be tagged “{_shown(tag)}” and not tagged “{_shown(tag)}”")
        if len(q.errors) > MAX_ERRORS:
            more = len(q.errors) - (MAX_ERRORS - 1)
            q.errors[MAX_ERRORS - 1 :] = [f"… and {more} more problems"]
        return q


def _tokenize(text: str) -> tuple[list[str], bool]:
    """Split on whitespace outside double quotes; the quotes stay in the tokens.

    Returns the tokens and whether the last quote was left open (then it runs
    to the end of the text, inside the last token). Every token starts outside
    quotes, so a prefix without ``"`` in it (``-``, ``key:``) is never quoted.
    """
    tokens: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif ch.isspace() and not quoted:
            if current:
                tokens.append("".join(current))
                current = []
            continue
        current.append(ch)
    if current:
        tokens.append("".join(current))
    return tokens, quoted


def _period(match: re.Match[str]) -> DateRange | None:
    """The year, month or day a ``_DATE`` match names, or ``None`` if there is no such day."""
    year, month, day = (int(g) if g else None for g in match.groups())
    try:
        if month is None:
            start = date(year, 1, 1)
            return DateRange(start, date(year + 1, 1, 1) if year < 9999 else None)
        if day is None:
            start = date(year, month, 1)
            return DateRange(start, _next_month(start) if start < date(9999, 12, 1) else None)
        start = date(year, month, day)
    except ValueError:  # month 13, 29 February of a common year, year 0000
        return None
    return DateRange(start, start + timedelta(days=1) if start < date.max else None)


def _next_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


def _compact(day: date) -> str:
    """The shortest date text that means the start of this day: ``2024``, ``2024-07`` or ``2024-07-04``."""
    if day.month == 1 and day.day == 1:
        return f"{day.year:04d}"
    if day.day == 1:
        return f"{day.year:04d}-{day.month:02d}"
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}"


def _word_text(word: str) -> str:
    """A free-text word as query text: quoted if bare it would read as something else."""
    if not word or '"' in word:
        raise ValueError(f"{word!r} cannot be written in a query")
    if word.startswith("-") or _KEY.match(word) or _DATE.fullmatch(word) or any(ch.isspace() for ch in word):
        return f'"{word}"'
    return word


def _value_text(value: str) -> str:
    """A filter value as query text: quoted if it holds whitespace."""
    if not value or '"' in value:
        raise ValueError(f"{value!r} cannot be written as a filter value")
    return f'"{value}"' if any(ch.isspace() for ch in value) else value


def _unknown_filter(key: str) -> str:
    known = ", ".join(f"{k}:" for k in FILTER_KEYS)
    message = f"unknown filter “{key}:” — known filters: {known}"
    close = difflib.get_close_matches(key.lower(), FILTER_KEYS, n=1, cutoff=0.7)
    return message + (f"; did you mean “{close[0]}:”?" if close else "")


def _add(values: list[str], value: str) -> None:
    """Append unless the list already has it, ignoring case."""
    folded = value.casefold()
    if all(v.casefold() != folded for v in values):
        values.append(value)


def _norm(text: str) -> str:
    """NFC, runs of whitespace as one space, no leading or trailing space."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def _shown(value: str, limit: int = 40) -> str:
    """A value short enough to quote in a message."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


# The search page's filter controls, as query syntax: (form field, filter key).
FORM_FILTERS = (("year", ""), ("camera", "camera"), ("place", "place"), ("tag", "tag"),
                ("library", "library"), ("folder", "folder"))


def with_form_filters(text: str, form) -> str:
    """The query text with the search page's filter controls appended as filter syntax.

    The controls only write query syntax, so what the URL says is all there
    is: ``/search/?q=…`` stays shareable and the box shows what was applied.
    """
    tokens = [text.strip()] if text and text.strip() else []
    for field_name, key in FORM_FILTERS:
        value = (form.get(field_name) or "").strip().replace('"', "")
        if not value:
            continue
        if " " in value:
            value = f'"{value}"'
        tokens.append(f"{key}:{value}" if key else value)
    if form.get("gps"):
        tokens.append("has:gps")
    return " ".join(tokens)
