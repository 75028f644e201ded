"""Structured captions: the schema, and a parser that is strict about it but forgiving about the model.

Small vision models are asked (``tagging.prompt``) for one JSON object with the
keys in ``SCHEMA``. What comes back is often not quite that: JSON inside a
```json fence, a chatty sentence before it, single quotes, trailing commas,
Python's ``True``/``None``, keys in other case or with synonyms, a tags string
instead of a list, or an answer cut off mid-string because the model hit its
token limit. ``parse_caption`` repairs what can be repaired cheaply and without
guessing, drops what cannot (saying so in ``notes``), and always returns
fields that match the schema and can be stored as JSON.

The parser never raises on any input: a model's output is untrusted text.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SCHEMA", "TIME_OF_DAY", "FieldSpec", "ParsedCaption", "parse_caption"]

TIME_OF_DAY = ("morning", "afternoon", "evening", "night", "unknown")


@dataclass(frozen=True)
class FieldSpec:
    """One key of the caption object.

    ``type`` is ``str``, ``int`` or ``list`` (a list of strings). ``hint`` is
    how the prompt describes the value. ``max_chars`` caps a string, or each
    item of a list; ``max_items`` caps a list.
    """

    name: str
    type: type
    hint: str
    max_chars: int = 200
    max_items: int = 0
    choices: tuple[str, ...] = ()


SCHEMA: dict[str, FieldSpec] = {
    spec.name: spec
    for spec in (
        FieldSpec("caption", str, "one sentence", max_chars=300),
        FieldSpec("description", str, "2 to 4 sentences", max_chars=1500),
        FieldSpec("main_subject", str, "the main subject"),
        FieldSpec("objects", list, "list of visible objects", max_chars=80, max_items=30),
        FieldSpec("people_count", int, "integer, 0 if none"),
        FieldSpec("activities", list, "list of what is happening", max_chars=80, max_items=15),
        FieldSpec("scene", str, "the setting"),
        FieldSpec("time_of_day", str, ", ".join(TIME_OF_DAY[:-1]) + " or " + TIME_OF_DAY[-1], choices=TIME_OF_DAY),
        FieldSpec("lighting", str, "lighting and mood"),
        FieldSpec("visible_text", str, 'text visible in the photo, "" if none', max_chars=500),
        FieldSpec("tags", list, "list of up to 15 lowercase keywords", max_chars=50, max_items=15),
    )
}

# Other names models use for our keys (after lower-casing and camelCase/space → snake_case).
SYNONYMS: dict[str, str] = {
    "title": "caption",
    "short_caption": "caption",
    "one_sentence_caption": "caption",
    "summary": "description",
    "long_description": "description",
    "detailed_description": "description",
    "subject": "main_subject",
    "primary_subject": "main_subject",
    "main_object": "main_subject",
    "object_list": "objects",
    "items": "objects",
    "detected_objects": "objects",
    "visible_objects": "objects",
    "people": "people_count",
    "persons": "people_count",
    "person_count": "people_count",
    "num_people": "people_count",
    "number_of_people": "people_count",
    "people_number": "people_count",
    "activity": "activities",
    "actions": "activities",
    "setting": "scene",
    "scene_type": "scene",
    "environment": "scene",
    "time": "time_of_day",
    "timeofday": "time_of_day",
    "light": "lighting",
    "mood": "lighting",
    "lighting_mood": "lighting",
    "lighting_and_mood": "lighting",
    "text": "visible_text",
    "text_in_image": "visible_text",
    "ocr": "visible_text",
    "keywords": "tags",
    "labels": "tags",
    "hashtags": "tags",
}

_TIME_SYNONYMS = {
    "dawn": "morning",
    "sunrise": "morning",
    "early morning": "morning",
    "late afternoon": "afternoon",
    "dusk": "evening",
    "sunset": "evening",
    "twilight": "evening",
    "nighttime": "night",
    "night time": "night",
    "midnight": "night",
    "late night": "night",
}

_NUMBER_WORDS = {
    word: n
    for n, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
} | {"no": 0, "none": 0, "nobody": 0, "no one": 0, "a": 1, "a single": 1, "single": 1}
_PEOPLE_COUNT = re.compile(
    r"^(?P<n>\d{1,4}|" + "|".join(sorted(map(re.escape, _NUMBER_WORDS), key=len, reverse=True)) + r")"
    r"(?:\s+(?:people|persons?|adults?|children|kids|men|women|individuals|figures))?\.?$"
)
_NO_TEXT = {"", "none", "no", "n/a", "na", "null", "no text", "no visible text", "nothing"}

MAX_INPUT_CHARS = 50_000
_MAX_DEPTH = 32
# Tokens some runtimes leave in decoded output (SmolVLM, Qwen, Llama chat templates).
_SPECIAL_TOKENS = re.compile(r"<\|[A-Za-z0-9_]{1,40}\|>|<end_of_utterance>|</?s>|<eos>|<pad>")
_FENCE = re.compile(r"```[A-Za-z]*[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_ \-]{0,60}")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$")
_NEXT_KEY = re.compile(r"""\s*(?:,\s*)?["'][^"'\n]{1,60}["']\s*:""")


@dataclass
class ParsedCaption:
    """What was made of one model answer.

    ``fields`` holds only schema keys with values of the schema's types.
    ``structured`` is True when the fields came from a JSON object (repaired or
    not); False when the model answered in prose, not at all, or with JSON
    holding none of our keys.
    ``notes`` says, in words, every repair made and everything dropped.
    """

    fields: dict[str, Any]
    structured: bool
    notes: list[str] = field(default_factory=list)


def parse_caption(raw: str | None, *, asked: tuple[str, ...] | None = None) -> ParsedCaption:
    """Turn a model's raw answer into schema fields; never raises.

    ``asked`` names the keys the prompt asked for (the first pass asks for two),
    so that only those are noted when missing; default: every key of the schema.
    """
    notes: list[str] = []
    text = raw if isinstance(raw, str) else ""
    if len(text) > MAX_INPUT_CHARS:
        text = text[:MAX_INPUT_CHARS]
        notes.append(f"output longer than {MAX_INPUT_CHARS} characters was cut")
    text, removed = _SPECIAL_TOKENS.subn("", text)
    if removed:
        notes.append("removed special tokens")
    if not text.strip():
        return ParsedCaption({}, False, notes + ["empty model output"])

    found = _find_json_object(text)
    if found is None:
        return _prose(text, notes)
    obj, outside, found_notes = found
    json_notes = notes + found_notes
    fields = _normalise(_unwrap(obj, json_notes), json_notes, asked or tuple(SCHEMA))
    if not fields:
        if len(_clean(outside, single_line=True).split()) >= 3:
            # Braces inside prose ("a sign reading {OPEN}"), not an answer in JSON.
            return _prose(text, notes)
        return ParsedCaption({}, False, _unique(json_notes + ["no caption fields in the JSON"]))
    return ParsedCaption(fields, True, _unique(json_notes))


# --- finding and repairing the JSON -----------------------------------------------------


def _find_json_object(text: str) -> tuple[dict, str, list[str]] | None:
    """Find the first JSON object in ``text``, repairing it if need be.

    Returns the object, the text around it and notes on what was done, or None.
    """
    region, region_start, region_end = text, 0, len(text)
    fence = next((m for m in _FENCE.finditer(text) if "{" in m.group(1)), None)
    if fence:
        region, region_start, region_end = fence.group(1), fence.start(1), fence.end(1)

    tries = 0
    start = region.find("{")
    while start != -1 and tries < 5:
        tries += 1
        parsed = _parse_at(region, start)
        if parsed is not None:
            obj, end, repair_notes = parsed
            before = text[:region_start] + region[:start]
            after = region[end:] + text[region_end:]
            before_words = _FENCE.sub(" ", before).replace("`", " ").strip()
            after_words = after.replace("`", " ").strip()
            notes = []
            if before_words:
                notes.append("ignored text before the JSON")
            if after_words:
                notes.append("ignored text after the JSON")
            return obj, f"{before_words} {after_words}".strip(), notes + repair_notes
        start = region.find("{", start + 1)
    return None


def _parse_at(text: str, start: int) -> tuple[dict, int, list[str]] | None:
    """Parse an object starting at ``text[start] == '{'``: strict JSON first, then the lenient parser."""
    strict = _strict_json(text, start)
    if strict is not None:
        return strict[0], strict[1], []
    parser = _Lenient(text, start)
    try:
        obj, _complete = parser.parse_object(0)
    except _Malformed:
        return None
    repair_notes = []
    if parser.truncated:
        repair_notes.append("repaired truncated JSON")
    if parser.repairs:
        repair_notes.append("repaired malformed JSON (" + ", ".join(sorted(parser.repairs)) + ")")
    return obj, parser.i, repair_notes


def _strict_json(text: str, start: int) -> tuple[dict, int] | None:
    """The object at ``start`` and where it ends, if it is valid JSON."""
    try:
        obj, end = json.JSONDecoder().raw_decode(text, start)
    except (ValueError, RecursionError):
        return None
    return (obj, end) if isinstance(obj, dict) else None


class _Malformed(ValueError):
    """The lenient parser met something it will not guess about."""


class _PartialStr(str):
    """A string cut off by the end of the output (the model hit its token limit)."""


_MISSING = object()


class _Lenient:
    """A forgiving JSON reader for model output.

    Accepts single quotes, unescaped quotes inside strings, raw newlines,
    trailing or missing commas, unquoted keys and values, Python literals,
    and text that simply stops (truncation): open strings, arrays and objects
    are closed, and only what was complete is kept — except a cut-off string
    value of an object, which is kept (and later trimmed to whole words).
    """

    def __init__(self, text: str, start: int):
        self.s = text
        self.n = len(text)
        self.i = start
        self.truncated = False
        self.repairs: set[str] = set()

    def _skip_ws(self) -> None:
        while self.i < self.n and self.s[self.i].isspace():
            self.i += 1

    def _eof(self) -> bool:
        self._skip_ws()
        if self.i >= self.n:
            self.truncated = True
            return True
        return False

    def parse_value(self, depth: int) -> tuple[Any, bool]:
        if self._eof():
            return _MISSING, False
        c = self.s[self.i]
        if c == "{":
            return self.parse_object(depth + 1)
        if c == "[":
            return self.parse_array(depth + 1)
        if c in "\"'":
            return self.parse_string()
        return self.parse_bare()

    def parse_object(self, depth: int) -> tuple[dict, bool]:
        if depth > _MAX_DEPTH:
            raise _Malformed("nested too deeply")
        self.i += 1  # past "{"
        obj: dict = {}
        after_comma = False
        while True:
            if self._eof():
                return obj, False
            c = self.s[self.i]
            if c == "}":
                if after_comma:
                    self.repairs.add("trailing commas")
                self.i += 1
                return obj, True
            if c == ",":
                self.repairs.add("stray commas")
                self.i += 1
                continue
            key, complete = self.parse_key()
            if not complete:
                return obj, False
            if self._eof():
                return obj, False
            if self.s[self.i] not in ":=":
                raise _Malformed("expected ':'")
            self.i += 1
            value, complete = self.parse_value(depth)
            if value is not _MISSING and (complete or isinstance(value, (str, dict, list))):
                obj[key] = value
            if not complete:
                return obj, False
            if self._eof():
                return obj, False
            c = self.s[self.i]
            after_comma = c == ","
            if after_comma:
                self.i += 1
            elif c != "}":
                if c in "\"'" or c.isalpha():
                    self.repairs.add("missing commas")
                else:
                    raise _Malformed("expected ',' or '}'")

    def parse_array(self, depth: int) -> tuple[list, bool]:
        if depth > _MAX_DEPTH:
            raise _Malformed("nested too deeply")
        self.i += 1  # past "["
        items: list = []
        after_comma = False
        while True:
            if self._eof():
                return items, False
            c = self.s[self.i]
            if c == "]":
                if after_comma:
                    self.repairs.add("trailing commas")
                self.i += 1
                return items, True
            if c == ",":
                self.repairs.add("stray commas")
                self.i += 1
                continue
            if c == "}":
                raise _Malformed("'}' inside a list")
            value, complete = self.parse_value(depth)
            if complete or isinstance(value, (dict, list)):
                items.append(value)
            if not complete:
                return items, False
            if self._eof():
                return items, False
            c = self.s[self.i]
            after_comma = c == ","
            if after_comma:
                self.i += 1
            elif c != "]":
                if c in "\"'{[" or c.isalnum():
                    self.repairs.add("missing commas")
                else:
                    raise _Malformed("expected ',' or ']'")

    def parse_key(self) -> tuple[str, bool]:
        c = self.s[self.i]
        if c in "\"'":
            key, complete = self.parse_string(in_key=True)
            return str(key), complete
        match = _WORD.match(self.s, self.i)
        if not match:
            raise _Malformed("expected a key")
        self.i = match.end()
        if self.i >= self.n:
            self.truncated = True
            return "", False
        self.repairs.add("unquoted keys")
        return match.group().strip(), True

    def parse_string(self, in_key: bool = False) -> tuple[str, bool]:
        quote = self.s[self.i]
        if quote == "'":
            self.repairs.add("single quotes")
        self.i += 1
        buf: list[str] = []
        s, n = self.s, self.n
        while True:
            if self.i >= n:
                self.truncated = True
                return _PartialStr("".join(buf)), False
            c = s[self.i]
            if c == "\\":
                if self.i + 1 >= n:
                    self.truncated = True
                    return _PartialStr("".join(buf)), False
                e = s[self.i + 1]
                if e == "u":
                    digits = s[self.i + 2 : self.i + 6]
                    if len(digits) < 4 and self.i + 2 + len(digits) >= n:
                        self.truncated = True
                        return _PartialStr("".join(buf)), False
                    if len(digits) == 4 and all(d in "0123456789abcdefABCDEF" for d in digits):
                        buf.append(chr(int(digits, 16)))
                        self.i += 6
                        continue
                    self.repairs.add("invalid escapes")
                    buf.append("u")
                else:
                    simple = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
                    if e not in simple and e not in "\"'\\/":
                        self.repairs.add("invalid escapes")
                    buf.append(simple.get(e, e))
                self.i += 2
                continue
            if c == quote and self._closes_string(in_key):
                self.i += 1
                return "".join(buf), True
            if c == quote:
                self.repairs.add("unescaped quotes")
            elif c == "\n":
                self.repairs.add("raw newlines in strings")
            buf.append(c)
            self.i += 1

    def _closes_string(self, in_key: bool) -> bool:
        """Whether the quote at ``self.i`` ends the string (rather than being a quote inside it)."""
        j = self.i + 1
        while j < self.n and self.s[j] in " \t\r":
            j += 1
        if j >= self.n:
            return True
        nxt = self.s[j]
        if in_key:
            return nxt in ":="
        if nxt in ",}]:":
            return True
        # A missing comma before the next key: `"a": "x"\n "b": …`
        return nxt == "\n" or _NEXT_KEY.match(self.s, self.i + 1) is not None

    def parse_bare(self) -> tuple[Any, bool]:
        """A number, a literal (JSON's or Python's), or an unquoted word."""
        start = self.i
        while self.i < self.n and self.s[self.i] not in ",}]\n":
            self.i += 1
        token = self.s[start : self.i].strip()
        if self.i >= self.n:
            self.truncated = True
            return _MISSING, False  # a number or word at the very end may be cut short
        if not token:
            raise _Malformed("expected a value")
        literals = {"true": True, "false": False, "null": None, "none": None, "nil": None}
        if token.lower() in literals:
            if token not in ("true", "false", "null"):
                self.repairs.add("Python-style literals")
            return literals[token.lower()], True
        if _NUMBER.match(token):
            number = float(token)
            if not math.isfinite(number):
                return None, True
            return (int(number) if number.is_integer() and abs(number) < 1e15 else number), True
        self.repairs.add("unquoted values")
        return token, True


# --- fitting the object to the schema ---------------------------------------------------


def _canonical_key(key: Any) -> str:
    text = str(key).strip()
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)
    return re.sub(r"[\s\-]+", "_", text).lower().strip("_")


def _unwrap(obj: dict, notes: list[str]) -> dict:
    """``{"photo": {...}}`` → ``{...}`` when the single outer key is not one of ours."""
    if len(obj) == 1:
        (key, value), = obj.items()
        target = _canonical_key(key)
        if isinstance(value, dict) and target not in SCHEMA and target not in SYNONYMS:
            notes.append(f"unwrapped the object under {_short(key)!r}")
            return value
    return obj


def _normalise(obj: dict, notes: list[str], asked: tuple[str, ...]) -> dict[str, Any]:
    """Map keys onto the schema and coerce every value to its type; note every change."""
    candidates = []
    unknown = []
    for key, value in obj.items():
        canonical = _canonical_key(key)
        target = SYNONYMS.get(canonical, canonical)
        if target not in SCHEMA:
            unknown.append(repr(_short(key)))
            continue
        candidates.append((key != target, key, target, value))
    if unknown:
        listed = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        notes.append(f"dropped unknown key{'s' if len(unknown) > 1 else ''} {listed}")
    candidates.sort(key=lambda c: c[0])  # exact names win over renamed ones (stable sort)

    fields: dict[str, Any] = {}
    for renamed, key, target, value in candidates:
        if target in fields:
            notes.append(f"dropped {_short(key)!r}: {target!r} was already given")
            continue
        if renamed:
            notes.append(f"renamed key {_short(key)!r} to {target!r}")
        coerced = _coerce(SCHEMA[target], value, notes)
        if coerced is not _MISSING:
            fields[target] = coerced

    ordered = {name: fields[name] for name in SCHEMA if name in fields}
    missing = [name for name in asked if name in SCHEMA and name not in ordered]
    if missing:
        notes.append("missing: " + ", ".join(missing))
    return ordered


def _coerce(spec: FieldSpec, value: Any, notes: list[str]) -> Any:
    if spec.type is int:
        return _coerce_int(spec, value, notes)
    if spec.type is list:
        return _coerce_list(spec, value, notes)
    return _coerce_str(spec, value, notes)


def _coerce_str(spec: FieldSpec, value: Any, notes: list[str]) -> Any:
    name = spec.name
    if value is None:
        if name == "visible_text":
            return ""
        notes.append(f"dropped {name!r}: it was null")
        return _MISSING
    if isinstance(value, bool) or isinstance(value, dict):
        notes.append(f"dropped {name!r}: expected text, got {_type_name(value)}")
        return _MISSING
    if isinstance(value, (int, float)):
        value = str(value)
    elif isinstance(value, list):
        parts = [str(v) for v in value if isinstance(v, (str, int, float)) and not isinstance(v, bool)]
        if not parts:
            notes.append(f"dropped {name!r}: expected text, got a list")
            return _MISSING
        value = ("\n" if name == "visible_text" else ", ").join(parts)
        notes.append(f"joined the list in {name!r} into text")
    text = value
    if isinstance(value, _PartialStr):
        text = _whole_words(value)
    text = _clean(text, single_line=name != "visible_text")
    if name == "visible_text" and text.strip(" .").lower() in _NO_TEXT:
        return ""
    if spec.choices:
        return _choose(spec, text, notes)
    if not text:
        notes.append(f"dropped {name!r}: it was empty")
        return _MISSING
    return _cap(text, spec.max_chars, name, notes)


def _choose(spec: FieldSpec, text: str, notes: list[str]) -> Any:
    """time_of_day: one of the choices, from a synonym or a phrase naming exactly one of them."""
    word = text.lower().strip(" .!")
    if word in spec.choices:
        return word
    if word in _TIME_SYNONYMS:
        notes.append(f"read {spec.name!r} {_short(text)!r} as {_TIME_SYNONYMS[word]!r}")
        return _TIME_SYNONYMS[word]
    named = {choice for choice in spec.choices if re.search(rf"\b{choice}\b", word)}
    if len(named) == 1:
        (choice,) = named
        notes.append(f"read {spec.name!r} {_short(text)!r} as {choice!r}")
        return choice
    notes.append(f"dropped {spec.name!r} {_short(text)!r}: not one of {', '.join(spec.choices)}")
    return _MISSING


def _coerce_int(spec: FieldSpec, value: Any, notes: list[str]) -> Any:
    name = spec.name
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and not isinstance(value, _PartialStr):
        match = _PEOPLE_COUNT.match(_clean(value, single_line=True).lower())
        if match:
            n = match.group("n")
            number = int(n) if n.isdigit() else _NUMBER_WORDS[n]
            notes.append(f"read {name!r} {_short(value)!r} as {number}")
    if number is None or not 0 <= number <= 10_000:
        notes.append(f"dropped {name!r}: {_short(value)!r} is not a count")
        return _MISSING
    return number


def _coerce_list(spec: FieldSpec, value: Any, notes: list[str]) -> Any:
    name = spec.name
    if value is None:
        notes.append(f"dropped {name!r}: it was null")
        return _MISSING
    if isinstance(value, str):
        text = _whole_words(value) if isinstance(value, _PartialStr) else value
        value = [part for part in re.split(r"[,;\n]", text)]
        notes.append(f"split the text in {name!r} into a list")
    elif not isinstance(value, list):
        notes.append(f"dropped {name!r}: expected a list, got {_type_name(value)}")
        return _MISSING

    items: list[str] = []
    seen: set[str] = set()
    skipped = too_long = 0
    for item in value:
        if isinstance(item, dict):
            names = ("name", "label", "object", "tag", "text")
            item = next((item[k] for k in names if isinstance(item.get(k), str)), None)
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str):
            skipped += 1
            continue
        text = _clean(item, single_line=True).lstrip("-*•#").strip()
        if name == "tags":
            text = text.lower()
        if not text:
            continue
        if len(text) > spec.max_chars:
            if name == "tags":
                too_long += 1
                continue
            text = _cap(text, spec.max_chars, name, [])
        if text.casefold() in seen:
            continue
        seen.add(text.casefold())
        items.append(text)
    if skipped:
        notes.append(f"dropped {skipped} item(s) of {name!r} that were not text")
    if too_long:
        notes.append(f"dropped {too_long} tag(s) longer than {spec.max_chars} characters")
    if len(items) > spec.max_items:
        notes.append(f"kept the first {spec.max_items} of {len(items)} items of {name!r}")
        items = items[: spec.max_items]
    return items


# --- prose and text helpers --------------------------------------------------------------


def _prose(text: str, notes: list[str]) -> ParsedCaption:
    """The model ignored the format: keep its words as caption and description."""
    prose = _clean(_FENCE.sub(lambda m: m.group(1), text).replace("```", " "), single_line=True)
    if not prose:
        return ParsedCaption({}, False, _unique(notes + ["empty model output"]))
    notes.append("model answered in prose")
    sentence = re.match(r"(.+?[.!?])(?=\s|$)", prose)
    caption = sentence.group(1) if sentence else prose
    fields = {
        "caption": _cap(caption, SCHEMA["caption"].max_chars, "caption", notes),
        "description": _cap(prose, SCHEMA["description"].max_chars, "description", notes),
    }
    return ParsedCaption(fields, False, _unique(notes))


def _clean(text: str, single_line: bool) -> str:
    """Drop control characters and lone surrogates (Postgres rejects NUL); tidy whitespace."""
    text = _CONTROL.sub(lambda m: "\n" if m.group() in "\x0b\x0c" else "", str(text))
    if single_line:
        return " ".join(text.split())
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _whole_words(text: str) -> str:
    """A cut-off string without its last, probably cut-off, word."""
    head, sep, _tail = text.rstrip().rpartition(" ")
    return (head if sep else text).rstrip(" ,;:-")


def _cap(text: str, limit: int, name: str, notes: list[str]) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    notes.append(f"shortened {name!r} to {limit} characters")
    return cut.rstrip(" ,;:-")


def _short(value: Any, limit: int = 40) -> str:
    text = _clean(str(value), single_line=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "true/false", str: "text"}.get(type(value), "a number")


def _unique(notes: list[str]) -> list[str]:
    return list(dict.fromkeys(notes))
