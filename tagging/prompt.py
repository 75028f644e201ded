"""The caption prompts: what a vision model is asked about each photo, in two passes.

The *first pass* (``build_first_pass_prompt``) asks for one sentence and a few
tags, with a small token budget: every photo gets it, quickly, and search and
review work from it. The *full description* (``build_prompt``) asks for every
key of the schema; it runs later, as the machine allows (``tagging.runners``).

Both are built from ``tagging.captions.SCHEMA``, the same table the parser
enforces, so the keys asked for and the keys accepted cannot drift apart.
Whatever is already known about the photo (date, place, camera, the owner's
keywords, title and description) is offered as hints the model may use but must
not let override what it sees.

It is kept short on purpose: small models have small context windows, and every
prompt token is paid for on every photo. ``PROMPT_VERSION`` is recorded with
each caption; bump it on any change to the text, so captions made with an older
prompt can be found and redone (``FIRST_PASS_VERSION`` for the first pass).
``tests/test_prompt.py`` holds a fingerprint of each text that fails until the
version is bumped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tagging.captions import SCHEMA

__all__ = ["FIRST_PASS_KEYS", "FIRST_PASS_VERSION", "PROMPT_VERSION", "PhotoContext", "build_first_pass_prompt", "build_prompt"]

PROMPT_VERSION = "caption-v1"  # the full description
FIRST_PASS_VERSION = "first-v1"
FIRST_PASS_KEYS = ("caption", "tags")
FIRST_PASS_TAGS = 8  # a short answer: one sentence and this many keywords fit the first pass's budget

_MONTHS = (
    "January February March April May June July August September October November December"
).split()
MAX_KEYWORDS = 20
MAX_HINT_CHARS = 200  # per place / camera / title / description hint


@dataclass
class PhotoContext:
    """What is known about a photo before the model looks at it (all optional)."""

    taken_at: datetime | None = None
    place: str = ""
    camera: str = ""
    keywords: list[str] = field(default_factory=list)
    title: str = ""
    description: str = ""


def build_prompt(context: PhotoContext | None = None) -> str:
    """The full description's prompt: the schema, then the known context as hints, then the format rule."""
    return _prompt([(spec.name, spec.hint) for spec in SCHEMA.values()], context)


def build_first_pass_prompt(context: PhotoContext | None = None) -> str:
    """The first pass's prompt: one sentence and a few tags, nothing else (a short answer, quickly)."""
    hints = {"caption": SCHEMA["caption"].hint, "tags": f"list of up to {FIRST_PASS_TAGS} lowercase keywords"}
    keys = [(name, hints[name]) for name in FIRST_PASS_KEYS]
    return _prompt(keys, context)


def _prompt(keys: list[tuple[str, str]], context: PhotoContext | None) -> str:
    lines = ["Describe this photo as ONE JSON object with exactly these keys:"]
    lines += [f'"{name}": {hint}' for name, hint in keys]
    hints = _context_line(context) if context else ""
    if hints:
        lines.append(f"Context you may use, but what you see wins: {hints}")
    lines.append("Answer with the JSON object only, nothing else.")
    return "\n".join(lines)


def _context_line(context: PhotoContext) -> str:
    """"Taken 4 July 2023 at 18:40 in Arezzo, Italy with a NIKON D70; existing keywords: …"."""
    taken = []
    if context.taken_at:
        when = context.taken_at
        taken.append(f"{when.day} {_MONTHS[when.month - 1]} {when.year}")
        if (when.hour, when.minute, when.second) != (0, 0, 0):
            taken.append(f"at {when:%H:%M}")
    place, camera = _tidy(context.place), _tidy(context.camera)
    if place:
        taken.append(f"in {place}")
    if camera:
        taken.append(f"with a {camera}")

    parts = []
    if taken:
        parts.append("Taken " + " ".join(taken))
    keywords = list(dict.fromkeys(k for k in map(_tidy, context.keywords) if k))[:MAX_KEYWORDS]
    if keywords:
        parts.append("existing keywords: " + ", ".join(keywords))
    title, description = _tidy(context.title), _tidy(context.description)
    if title:
        parts.append(f'title: "{title}"')
    if description:
        parts.append(f'description: "{description}"')
    if not parts:
        return ""
    line = "; ".join(parts)
    return line[0].upper() + line[1:] + "."


def _tidy(text: str) -> str:
    """One line, no stray quotes, at most ``MAX_HINT_CHARS`` — metadata is owner text, not instructions."""
    text = " ".join(str(text or "").replace('"', "'").split())
    if len(text) > MAX_HINT_CHARS:
        text = text[:MAX_HINT_CHARS].rsplit(" ", 1)[0] + "…"
    return text
