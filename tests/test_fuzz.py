"""Every GET parameter of every page, fuzzed (hypothesis): a user-controlled value never gives a 500."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagging import tags
from tests.factories import make_photo
from tests.test_access import PATTERNS

pytestmark = pytest.mark.django_db

# The parameters the pages read, and arbitrary others.
KNOWN = ["q", "after", "library", "folder", "year", "more", "poll", "action", "threshold", "tag", "page", "naming"]
# A lone surrogate cannot be sent as UTF-8 at all (a separate test sends invalid bytes).
text = st.characters(blacklist_categories=("Cs",))
names = st.one_of(st.sampled_from(KNOWN), st.text(text, min_size=1, max_size=12))
values = st.one_of(
    st.text(text, max_size=40),
    st.sampled_from(["", "0", "-1", "1e309", "nan", "9" * 30, "2023-13-45", "a_b", "1_2", "../..", "%", "\\",
                     "<script>alert(1)</script>", "{{ 7*7 }}", "tag:", "after:", "\x00", "𝔘𝔫𝔦"]),
)
params = st.dictionaries(names, values, max_size=4)


@pytest.fixture
def pages(staff_client, library):
    photo = make_photo(library, "f.jpg", taken=datetime(2021, 1, 1, tzinfo=timezone.utc), keywords=["beach"])
    tags.import_file_keywords([photo.pk])
    urls = []
    for url, _ in PATTERNS:
        url = url.replace("/1/", f"/{photo.pk}/")
        if staff_client.get(url).status_code in (200, 302, 400, 404):
            urls.append(url)
    assert len(urls) >= 12, urls
    return urls


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=params, htmx=st.booleans())
def test_no_get_parameter_makes_a_page_fail(staff_client, pages, query, htmx):
    extra = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    for url in pages:
        response = staff_client.get(url, query, **extra)
        assert response.status_code < 500, (url, query, response.status_code)
        if response.status_code == 200 and "text/html" in response.get("Content-Type", ""):
            assert "<script>alert(1)</script>" not in response.content.decode(), (url, query)


def test_invalid_utf8_in_the_query_string_is_no_error(staff_client, pages):
    for url in pages:
        response = staff_client.get(url, QUERY_STRING="q=%ED%A0%80%FF&after=%C0%AF&library=%FE")
        assert response.status_code < 500, url
