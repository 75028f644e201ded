"""The photo tile (``{% tile %}``): one place writes it for every page, escaping what it is given."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from django.template import Context, Template

from tests.factories import make_photo

pytestmark = pytest.mark.django_db


def render(source: str, **context) -> str:
    return Template("{% load tiles %}" + source).render(Context(context))


def test_a_tile_links_the_photo_page_around_its_grid_thumbnail(library):
    photo = make_photo(library, "a.jpg", taken=datetime(2021, 3, 4, 23, 30, tzinfo=timezone.utc))
    html = render('{% tile photo query=q taken=True %}', photo=photo, q="library=1&year=2021")
    assert html.startswith(f'<a class="tile" href="/photos/{photo.pk}/?library=1&amp;year=2021" data-photo="{photo.pk}">')
    assert f'<img src="/thumbs/{photo.content_hash}/grid.jpg" loading="lazy" alt=""' in html
    assert '<span class="when">4 Mar 2021</span>' in html


def test_the_capture_date_is_the_cameras_clock_not_the_servers(library, settings):
    settings.TIME_ZONE = "Pacific/Auckland"
    photo = make_photo(library, "b.jpg", taken=datetime(2021, 3, 4, 23, 30, tzinfo=timezone.utc))
    assert '<span class="when">4 Mar 2021</span>' in render('{% tile photo taken=True %}', photo=photo)


def test_everything_a_tile_shows_is_escaped(library):
    photo = make_photo(library, "c.jpg", taken=datetime(2021, 1, 1, tzinfo=timezone.utc))
    photo.title = '"><script>alert(1)</script>'
    html = render('{% tile photo query=q label=label label_title=title extra_class="weak" label_class="score" selectable=True %}',
                  photo=photo, q='x="y"', label="<b>0.5</b>", title="a & b")
    assert "<script>" not in html and "<b>" not in html
    assert 'alt="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in html
    assert '?x=&quot;y&quot;"' in html
    assert '<span class="score" title="a &amp; b">&lt;b&gt;0.5&lt;/b&gt;</span>' in html
    assert html.startswith('<a class="tile weak"') and 'tabindex="-1" aria-selected="false">' in html


def test_a_tile_without_a_label_has_no_caption(library):
    photo = make_photo(library, "d.jpg", taken=datetime(2021, 1, 1, tzinfo=timezone.utc))
    assert "<span" not in render("{% tile photo %}", photo=photo)
