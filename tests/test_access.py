"""Access, for every URL Shoebox has: who may see it, who may change things, and how.

Enumerates the URL patterns (not admin/auth) rather than listing them, so a
new view is checked the day it is added: anonymous visitors are sent to log
in; a view marked staff-only (``gallery.accounts.staff_required``) answers
403 to a signed-in viewer for every method; a view that changes state takes
POST only and refuses a POST without a CSRF token, htmx requests included.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db
SAMPLES = {"pk": "1", "content_hash": "ab" * 32, "size": "grid", "file_id": "1", "stage": "thumbnail",
           "path": "Places/Italy", "tag_id": "1", "decision": "accept"}


def shoebox_patterns():
    """(url, view) for every Shoebox URL pattern, sample arguments filled in."""
    for p in get_resolver().url_patterns:
        patterns = [p] if isinstance(p, URLPattern) else (
            p.url_patterns if isinstance(p, URLResolver) and str(p.pattern) == "" else [])
        for q in patterns:
            url = "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: SAMPLES[m.group(1)], str(q.pattern))
            yield url, q.callback


PATTERNS = list(shoebox_patterns())
STAFF_ONLY = [url for url, view in PATTERNS if getattr(view, "staff_only", False)]


def test_the_enumeration_finds_the_staff_views():
    assert {"/libraries/", "/review/", "/jobs/thumbnail/retry/", "/tags/1/merge/"} <= set(STAFF_ONLY)
    assert "/" not in STAFF_ONLY and "/search/" not in STAFF_ONLY
    # People: reading is for everyone signed in, naming and the "who is this?" queue for staff.
    assert {"/people/1/name/", "/people/1/merge/", "/people/1/hide/", "/people/1/faces/move/",
            "/review/people/", "/review/people/1/"} <= set(STAFF_ONLY)
    assert not {"/people/", "/people/1/", "/people/names/", "/faces/1/crop.jpg"} & set(STAFF_ONLY)


@pytest.mark.parametrize("url", [u for u, _ in PATTERNS])
def test_anonymous_visitors_are_sent_to_log_in_for_every_method(client, url):
    for method in (client.get, client.post):
        response = method(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


@pytest.mark.parametrize("url", STAFF_ONLY)
def test_every_staff_view_refuses_a_viewer_whatever_the_method(viewer_client, url):
    for method in (viewer_client.get, viewer_client.post):
        assert method(url, HTTP_HX_REQUEST="true").status_code == 403, url


def test_state_changes_need_post_and_a_csrf_token(staff):
    """A view that answers GET with 405 changes state: a POST without a token is refused (403)."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    checked = []
    for url, _ in PATTERNS:
        if client.get(url).status_code != 405:
            continue  # a page: GET changes nothing
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = client.post(url, {"action": "accept"}, **headers)
            assert response.status_code == 403, (url, response.status_code)
        checked.append(url)
    assert len(checked) >= 19, checked
    assert {"/review/undo/", "/photos/1/caption/", "/libraries/1/rescan/", "/search/export/"} <= set(checked)
    assert {"/people/1/name/", "/people/1/merge/", "/people/1/hide/", "/people/1/faces/move/"} <= set(checked)
