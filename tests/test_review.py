"""The review inbox and tag pages through the test client: htmx fragments, undo, bulk, access and CSRF."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from django.test import Client

from tagging import tags
from gallery.models import Photo
from tagging.models import PhotoTag, Tag
from tests.factories import make_photo

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def dog(library):
    """Twelve photos the model called "dog", scored 0.0 … 5.5."""
    made = [make_photo(library, f"d{i}.jpg", taken=datetime(2021, 1, 1 + i, tzinfo=timezone.utc)) for i in range(12)]
    for i, photo in enumerate(made):
        [link] = tags.suggest_from_caption(photo.pk, ["dog"], model="m", prompt_version="1")
        PhotoTag.objects.filter(pk=link.pk).update(score=i * 0.5)
    return Tag.objects.get(path="dog"), made


def shown(html):
    return [int(x) for x in re.findall(r'class="review-item" data-photo="(\d+)"', html)]


def counter(html, name):
    return int(re.search(rf'data-count="{name}">(\d+)<', html).group(1))


def test_a_tags_suggestions_come_least_certain_first(staff_client, dog, settings):
    tag, photos = dog
    settings.TAG_REVIEW_BOUNDARY = 2.0
    html = staff_client.get(f"/review/tag/{tag.pk}/").content.decode()
    order = shown(html)
    scores = {p.pk: i * 0.5 for i, p in enumerate(photos)}
    assert order[0] == photos[4].pk, "score 2.0 sits on the boundary"
    assert [abs(scores[pk] - 2.0) for pk in order] == sorted(abs(scores[pk] - 2.0) for pk in order)
    assert counter(html, "pending") == 12 and "Is this <q>dog</q>?" in html


def test_accepting_and_rejecting_a_selection_returns_the_updated_board(staff_client, dog):
    tag, photos = dog
    response = staff_client.post(f"/review/tag/{tag.pk}/decide/",
                                 {"action": "accept", "photo": [photos[0].pk, photos[1].pk]}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert counter(html, "pending") == 10 and counter(html, "accepted") == 2
    assert photos[0].pk not in shown(html)
    html = staff_client.post(f"/review/tag/{tag.pk}/decide/", {"action": "reject", "photo": [photos[2].pk]},
                             **HTMX).content.decode()
    assert counter(html, "rejected") == 1 and counter(html, "pending") == 9
    # Undo takes back the last keystroke only.
    html = staff_client.post("/review/undo/", {"tag": tag.pk}, **HTMX).content.decode()
    assert counter(html, "rejected") == 0 and counter(html, "pending") == 10 and counter(html, "accepted") == 2
    assert PhotoTag.objects.get(photo=photos[0], tag=tag).decided_by.username == "owner"


def test_bulk_decisions_preview_how_many_photos_change(staff_client, dog):
    tag, photos = dog
    preview = staff_client.get(f"/review/tag/{tag.pk}/bulk/preview/", {"action": "accept", "threshold": "4"}).content
    assert preview.decode() == "Accept 4 photos scored at or above 4."
    preview = staff_client.get(f"/review/tag/{tag.pk}/bulk/preview/", {"action": "reject", "threshold": "1"}).content
    assert preview.decode() == "Reject 2 photos scored below 1."
    html = staff_client.post(f"/review/tag/{tag.pk}/bulk/", {"action": "accept", "threshold": "4"},
                             **HTMX).content.decode()
    assert counter(html, "accepted") == 4 and counter(html, "pending") == 8
    bad = staff_client.get(f"/review/tag/{tag.pk}/bulk/preview/", {"action": "accept", "threshold": "nan"})
    assert bad.status_code == 200 and bad.content.decode() == "Give a score."


def test_review_by_photo_decides_a_photos_pending_tags_and_edits_its_caption(staff_client, library):
    photo = make_photo(library, "p.jpg", taken=datetime(2021, 1, 1, tzinfo=timezone.utc))
    links = {link.tag.name: link for link in tags.suggest_from_caption(photo.pk, ["dog", "beach"], model="m",
                                                                       prompt_version="1")}
    response = staff_client.get("/review/photo/")
    assert response.status_code == 302 and response["Location"] == f"/review/photo/{photo.pk}/"
    html = staff_client.get(f"/review/photo/{photo.pk}/").content.decode()
    assert "dog" in html and "beach" in html and "Your caption" in html
    html = staff_client.post(f"/photos/{photo.pk}/tags/{links['dog'].tag_id}/accept/", {"standalone": "1"},
                             **HTMX).content.decode()
    assert 'class="tag-chip state-accepted" data-tag="dog"' in html
    html = staff_client.post(f"/photos/{photo.pk}/caption/", {"caption": "Rex at the sea", "standalone": "1"},
                             **HTMX).content.decode()
    assert "Rex at the sea" in html
    html = staff_client.post(f"/photos/{photo.pk}/tags/add/", {"tag": "Places/Norway"}, **HTMX).content.decode()
    assert 'data-tag="Places/Norway"' in html


def test_tag_pages_list_tags_and_show_their_photos(viewer_client, library):
    rome = make_photo(library, "rome.jpg", taken=datetime(2020, 1, 1, tzinfo=timezone.utc), keywords=["Places|Italy|Rome"])
    tags.import_file_keywords([rome.pk])
    html = viewer_client.get("/tags/").content.decode()
    assert 'data-tag="Places/Italy/Rome"' in html
    html = viewer_client.get("/tags/Places/Italy/").content.decode()
    assert f'data-photo="{rome.pk}"' in html, "a parent's page shows its children's photos"
    assert viewer_client.get("/tags/No/Such/").status_code == 404


def test_a_tags_page_is_the_same_paged_grid_as_the_library(viewer_client, library, settings):
    settings.GALLERY_PAGE_SIZE = 4
    made = [make_photo(library, f"b{i}.jpg", taken=datetime(2020, 1, 1 + i, tzinfo=timezone.utc), keywords=["beach"])
            for i in range(10)]
    tags.import_file_keywords([p.pk for p in made])
    html = viewer_client.get("/tags/beach/").content.decode()
    seen = [int(x) for x in re.findall(r'data-photo="(\d+)"', html)]
    while m := re.search(r'hx-get="(/tags/beach/\?after=[\d_]+)"', html):
        html = viewer_client.get(m.group(1), **HTMX).content.decode()
        assert "<html" not in html
        seen += [int(x) for x in re.findall(r'data-photo="(\d+)"', html)]
    assert seen == [p.pk for p in reversed(made)]
    assert viewer_client.get("/tags/beach/?after=garbage").status_code == 400


STAFF_GETS = ["/review/", "/review/tag/{tag}/", "/review/photo/", "/review/photo/{photo}/",
              "/review/tag/{tag}/bulk/preview/?action=accept&threshold=1"]
STAFF_POSTS = ["/review/tag/{tag}/decide/", "/review/undo/", "/review/tag/{tag}/bulk/", "/tags/{tag}/rename/",
               "/tags/{tag}/merge/", "/tags/{tag}/alias/", "/tags/{tag}/activate/", "/photos/{photo}/tags/add/",
               "/photos/{photo}/tags/{tag}/accept/", "/photos/{photo}/tags/{tag}/reject/", "/photos/{photo}/caption/",
               "/photos/{photo}/export/", "/tags/{tag}/export/", "/search/export/", "/libraries/{library}/export/"]


def _fill(url, tag, photo):
    return url.format(tag=tag.pk, photo=photo.pk, library=photo.files.first().library_id)


@pytest.mark.parametrize("url", STAFF_GETS + STAFF_POSTS)
def test_anonymous_visitors_are_sent_to_log_in(client, dog, url):
    tag, photos = dog
    method = client.post if url in STAFF_POSTS else client.get
    response = method(_fill(url, tag, photos[0]))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("url", STAFF_GETS + STAFF_POSTS)
def test_viewers_who_are_not_staff_are_refused(viewer_client, dog, url):
    tag, photos = dog
    method = viewer_client.post if url in STAFF_POSTS else viewer_client.get
    response = method(_fill(url, tag, photos[0]), {"action": "accept", "photo": photos[0].pk, "tag": "x",
                                                   "threshold": "0", "name": "x", "into": "x", "alias": "x"}, **HTMX)
    assert response.status_code == 403
    assert PhotoTag.objects.filter(state="suggested").count() == 12, "nothing changed"


@pytest.mark.parametrize("url", STAFF_POSTS)
def test_every_change_needs_a_csrf_token(staff, dog, url):
    tag, photos = dog
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    response = client.post(_fill(url, tag, photos[0]), {"action": "accept", "photo": photos[0].pk,
                                                        "threshold": "0", "tag": "x"}, **HTMX)
    assert response.status_code == 403
    assert PhotoTag.objects.filter(state="suggested").count() == 12


def test_decisions_need_post(staff_client, dog):
    tag, photos = dog
    assert staff_client.get(f"/review/tag/{tag.pk}/decide/?action=accept&photo={photos[0].pk}").status_code == 405


def test_user_values_never_give_a_server_error(staff_client, dog):
    tag, photos = dog
    for data in ({"action": "accept", "photo": ["x", "-1", "99999999999999999999999"]}, {"action": "nuke"}, {}):
        response = staff_client.post(f"/review/tag/{tag.pk}/decide/", data, **HTMX)
        assert response.status_code in (200, 400)
    assert staff_client.post("/review/tag/999999/decide/", {"action": "accept"}).status_code == 404
    assert staff_client.post(f"/photos/{photos[0].pk}/tags/{tag.pk}/maybe/").status_code == 404
    assert staff_client.post(f"/photos/{photos[0].pk}/tags/add/", {"tag": "///"}, **HTMX).status_code == 400
    assert staff_client.post(f"/tags/{tag.pk}/merge/", {"into": "nothing like it"}).status_code == 302


def test_exports_asked_for_in_the_ui_are_previewed_or_handed_to_the_worker(staff_client, library, tmp_path):
    from gallery import engine
    from gallery.models import PhotoStage
    from tests.factories import make_jpeg

    photos = []
    for i in range(3):
        make_jpeg(tmp_path / "lib" / f"e{i}.jpg")
        photos.append(make_photo(library, f"e{i}.jpg", taken=datetime(2022, 1, 1 + i, tzinfo=timezone.utc)))
    italy = tags.add(photos[0], "Places/Italy").tag
    tags.add(photos[1], "Places/Italy")
    sidecar = tmp_path / "lib" / "e0.jpg.xmp"

    html = staff_client.post(f"/photos/{photos[0].pk}/export/", {"mode": "sidecar", "preview": "1"},
                             **HTMX).content.decode()
    assert "Xmp.dc.subject" in html and "Italy" in html and not sidecar.exists(), "a preview writes nothing"

    export_rows = PhotoStage.objects.filter(stage="export")
    assert staff_client.post(f"/photos/{photos[0].pk}/export/", {"mode": "sidecar"}).status_code == 302
    assert set(export_rows.values_list("photo_id", "state")) == {(photos[0].pk, "queued")}
    staff_client.post(f"/tags/{italy.pk}/export/", {"mode": "sidecar"})
    staff_client.post("/search/export/", {"q": "tag:italy", "mode": "sidecar"})
    assert set(export_rows.values_list("photo_id", flat=True)) == {photos[0].pk, photos[1].pk}
    staff_client.post(f"/libraries/{library.pk}/export/", {"mode": "sidecar", "naming": "lightroom"})
    assert export_rows.count() == 3 and all('"naming":"lightroom"' in m for m in export_rows.values_list(
        "model", flat=True)), "the newest request's options"
    engine.run_pending("export")
    assert set(export_rows.values_list("state", flat=True)) == {"done"}
    assert (tmp_path / "lib" / "e0.xmp").exists() and (tmp_path / "lib" / "e1.xmp").exists()
    assert not (tmp_path / "lib" / "e2.xmp").exists(), "a photo with nothing to say gets no empty sidecar"
    assert engine.stage_counts()["export"]["done"] == 3, "the jobs page counts it like any stage"


@pytest.mark.parametrize("collect_below", [0, 20_000], ids=["walks the date index", "sorts the tag's photos"])
def test_a_tag_page_shows_the_same_photos_whichever_plan_it_takes(viewer_client, library, collect_below, monkeypatch):
    from gallery import browse

    monkeypatch.setattr(browse, "COLLECT_BELOW", collect_below)
    monkeypatch.setattr("django.conf.settings.GALLERY_PAGE_SIZE", 3)
    base = datetime(2020, 1, 1, tzinfo=timezone.utc)
    tagged = [make_photo(library, f"r{i}.jpg", taken=base + timedelta(days=i // 2), keywords=["Places|Rome"])
              for i in range(7)]
    make_photo(library, "other.jpg", taken=base + timedelta(days=30), keywords=["Places|Paris"])
    tags.import_file_keywords([p.pk for p in Photo.objects.all()])
    expected = [p.pk for p in sorted(tagged, key=lambda p: (p.taken_at, p.pk), reverse=True)]
    html = viewer_client.get("/tags/Places/Rome/").content.decode()
    seen = [int(x) for x in re.findall(r'data-photo="(\d+)"', html)]
    while (more := re.search(r'hx-get="([^"]*after=[^"]*)"', html)):
        html = viewer_client.get(more.group(1).replace("&amp;", "&"), HTTP_HX_REQUEST="true").content.decode()
        seen += [int(x) for x in re.findall(r'data-photo="(\d+)"', html)]
    assert seen == expected
