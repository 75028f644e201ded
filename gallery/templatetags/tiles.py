"""The photo tile, written once: the grid, search, similar photos, duplicates and review all show it.

A template tag rather than an included partial because a page holds 60 of them and the grid's
server time is a budget (15 ms of CPU a page): Django's ``{% include %}`` with its variables cost
about 0.4 ms a tile; this costs a tenth of that (``bench/grid_bench.py``).
"""

from __future__ import annotations

from datetime import date as Date
from functools import lru_cache
from html import escape as _escape  # for plain strings from the database: what Django's escape does, less wrapping

from django import template
from django.template.defaultfilters import date as format_date
from django.urls import get_script_prefix, reverse
from django.utils.html import conditional_escape as escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language

register = template.Library()

SELECTABLE = ' tabindex="-1" aria-selected="false"'
_SLOT = 987_654_321  # a value no route puts in a URL by itself: where a photo's id or hash goes
_RENDER_KEY = "gallery.tiles"  # this rendering's (script prefix, language) in the render context


@lru_cache(maxsize=64)
def _url_pattern(name: str, prefix: str, *args) -> str:
    """``reverse(name, args)`` once per script prefix (the cache key; ``reverse`` reads it itself), with
    ``_SLOT`` where the per-photo argument goes."""
    return reverse(name, args=args).replace(str(_SLOT), "{}")


@lru_cache(maxsize=4096)
def _day(day: Date, language: str) -> str:
    return format_date(day, "j M Y")


@register.simple_tag(takes_context=True)
def tile(context, photo, *, query: str = "", label="", label_class: str = "", label_title: str = "",
         extra_class: str = "", selectable: bool = False, taken: bool = False) -> SafeString:
    """One photo's tile: a link to its page (keeping ``query``) around its grid thumbnail.

    ``label``: text on the tile (``label_class``, default "when"; ``label_title``: its tooltip);
    ``taken``: the label is the capture date on the camera's clock. ``extra_class``: "weak",
    "small". ``selectable``: focusable and aria-selected for the review keyboard.
    """
    # The script prefix and the language are the same for every tile of one rendering: looked up once.
    prefix, language = context.render_context.get(_RENDER_KEY) or context.render_context.setdefault(
        _RENDER_KEY, (get_script_prefix(), get_language()))
    href = _url_pattern("photo_detail", prefix, _SLOT).format(photo.pk)
    src = _url_pattern("thumbnail", prefix, str(_SLOT), "grid").format(photo.content_hash)
    if taken:
        label = _day(photo.local_taken_at.date(), language)
    caption = ""
    if label:
        title = f' title="{escape(label_title)}"' if label_title else ""
        caption = f'\n  <span class="{escape(label_class or "when")}"{title}>{escape(label)}</span>'
    return mark_safe(
        f'<a class="tile{" " + escape(extra_class) if extra_class else ""}" '
        f'href="{href}{"?" + escape(query) if query else ""}" data-photo="{int(photo.pk)}"'
        f'{SELECTABLE if selectable else ""}>\n'
        f'  <img src="{_escape(src)}" loading="lazy" alt="{_escape(photo.title or "")}" '
        f'width="{int(photo.width or 400)}" height="{int(photo.height or 400)}">{caption}\n</a>'
    )
