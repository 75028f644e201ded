"""Gallery pages: login everywhere, keyset paging, filters, photo page, originals, libraries, jobs."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from gallery import browse, engine
from gallery.models import Library, Photo, PhotoStage, SourceFile
from tests.factories import make_jpeg, make_photo

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def own_urls():
    """Every Shoebox URL pattern (not admin/auth), with sample arguments filled in."""
    samples = {"pk": "1", "content_hash": "ab" * 32, "size": "grid", "file_id": "1", "stage": "thumbnail",
               "path": "Places/Italy", "tag_id": "1", "decision": "accept"}
    for p in get_resolver().url_patterns:
        patterns = [p] if isinstance(p, URLPattern) else (
            p.url_patterns if isinstance(p, URLResolver) and str(p.pattern) == "" else [])
        for q in patterns:
            route = str(q.pattern)
            yield "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: samples[m.group(1)], route)


@pytest.fixture
def many_photos(library):
    base = datetime(2022, 3, 1, tzinfo=timezone.utc)
    return [make_photo(library, f"f{i // 10}/p{i}.jpg", taken=base + timedelta(days=i)) for i in range(25)]


@pytest.mark.parametrize("url", list(own_urls()))
def test_every_page_sends_anonymous_visitors_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302, url
    assert response["Location"].startswith("/accounts/login/")


def test_the_grid_pages_newest_first_with_a_keyset_cursor(viewer_client, many_photos, settings):
    settings.GALLERY_PAGE_SIZE = 10
    seen = []
    response = viewer_client.get("/")
    html = response.content.decode()
    seen += [int(x) for x in re.findall(r'data-photo="(\d+)"', html)]
    for _ in range(5):
        m = re.search(r'hx-get="/\?(?:[^"]*&amp;)?after=([\d_]+)"', html)
        if not m:
            break
        response = viewer_client.get(f"/?after={m.group(1)}", **HTMX)
        html = response.content.decode()
        assert "<html" not in html, "an htmx page is a fragment"
        seen += [int(x) for x in re.findall(r'data-photo="(\d+)"', html)]
    expected = [p.pk for p in sorted(many_photos, key=lambda p: p.taken_at, reverse=True)]
    assert seen == expected


def test_the_grid_never_uses_offset(viewer_client, many_photos):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    cursor = browse.encode_cursor(many_photos[12])
    with CaptureQueriesContext(connection) as ctx:
        viewer_client.get(f"/?after={cursor}", **HTMX)
    assert ctx.captured_queries
    assert not any(re.search(r"\bOFFSET\s+\d", q["sql"], re.I) for q in ctx.captured_queries)


def test_filters_by_library_folder_and_year(viewer_client, library, tmp_path):
    other_root = tmp_path / "other"
    other_root.mkdir()
    other = Library.objects.create(name="Work", root=str(other_root))
    a = make_photo(library, "2019/summer/a.jpg", taken=datetime(2019, 7, 1, tzinfo=timezone.utc))
    b = make_photo(library, "2019/winter/b.jpg", taken=datetime(2019, 12, 1, tzinfo=timezone.utc))
    c = make_photo(library, "2021/c.jpg", taken=datetime(2021, 1, 1, tzinfo=timezone.utc))
    d = make_photo(other, "d.jpg", taken=datetime(2019, 5, 1, tzinfo=timezone.utc))

    def ids(query):
        html = viewer_client.get("/?" + query).content.decode()
        return {int(x) for x in re.findall(r'data-photo="(\d+)"', html)}

    assert ids("") == {a.pk, b.pk, c.pk, d.pk}
    assert ids(f"library={library.pk}") == {a.pk, b.pk, c.pk}
    assert ids(f"library={library.pk}&folder=2019") == {a.pk, b.pk}
    assert ids(f"library={library.pk}&folder=2019/summer") == {a.pk}
    assert ids("year=2019") == {a.pk, b.pk, d.pk}
    assert browse.years(browse.GridFilters()) == [2021, 2019]
    assert browse.folders(library.pk) == ["2019", "2019/summer", "2019/winter", "2021"]


def test_a_folder_filter_takes_the_folder_and_below_and_no_folder_that_only_starts_alike(viewer_client, library):
    when = datetime(2020, 1, 1, tzinfo=timezone.utc)
    inside = [make_photo(library, path, taken=when) for path in
              ("2019/a.jpg", "2019/deep/er/b.jpg", "2019/été/c.jpg", "2019/0/d.jpg")]
    outside = [make_photo(library, path, taken=when) for path in
               ("2019 old/e.jpg", "2019-edits/f.jpg", "2019.bak/g.jpg", "20190/h.jpg", "2019été/i.jpg",
                "2019_/j.jpg", "201/k.jpg", "a.jpg")]
    shown = set(Photo.objects.in_folder(library.pk, "2019").values_list("pk", flat=True))
    assert shown == {p.pk for p in inside}
    assert not shown & {p.pk for p in outside}
    assert set(Photo.objects.in_folder(library.pk, "2019/été").values_list("pk", flat=True)) == {inside[2].pk}
    assert set(Photo.objects.in_folder(library.pk, "2019 old").values_list("pk", flat=True)) == {outside[0].pk}


@pytest.mark.parametrize("collect_below", [1, 20_000], ids=["walks the date index", "sorts the folder"])
def test_a_folder_pages_newest_first_whichever_plan_it_takes(library, collect_below, monkeypatch):
    """A small folder's photos are sorted, a large one's found along the date index: same pages, same
    neighbours (ties on the time broken by id)."""
    monkeypatch.setattr(browse, "COLLECT_BELOW", collect_below)
    base = datetime(2019, 6, 1, tzinfo=timezone.utc)
    inside = [make_photo(library, f"2019/{i // 3}/p{i}.jpg", taken=base + timedelta(days=i // 2)) for i in range(11)]
    make_photo(library, "2020/x.jpg", taken=base + timedelta(days=1))
    filters = browse.GridFilters(library_id=library.pk, folder="2019")
    assert filters.collect() == (collect_below > len(inside))
    expected = sorted(inside, key=lambda p: (p.taken_at, p.pk), reverse=True)
    seen, cursor = [], None
    while True:
        page = browse.grid_page(filters, cursor=cursor, size=4)
        seen += page.photos
        if not (cursor := page.next_cursor):
            break
    assert [p.pk for p in seen] == [p.pk for p in expected]
    middle = expected[5]
    assert browse.neighbour(middle, filters, newer=True).pk == expected[4].pk
    assert browse.neighbour(middle, filters, newer=False).pk == expected[6].pk
    make_photo(library, "2019/old/y.jpg", taken=datetime(2011, 5, 1, tzinfo=timezone.utc))
    make_photo(library, "2020/z.jpg", taken=datetime(2015, 5, 1, tzinfo=timezone.utc))
    assert browse.years(filters) == [2019, 2011], "the year list follows the folder"
    assert browse.years(browse.GridFilters()) == [2019, 2015, 2011]


def test_a_malformed_filter_is_a_clear_400_not_a_500(viewer_client):
    response = viewer_client.get("/?year=nineteen")
    assert response.status_code == 400
    assert b"year must be a number" in response.content
    assert viewer_client.get("/?after=garbage", **HTMX).status_code == 400


def test_the_photo_page_shows_capture_data_and_links_its_neighbours(viewer_client, many_photos):
    middle = sorted(many_photos, key=lambda p: p.taken_at)[10]
    Photo.objects.filter(pk=middle.pk).update(
        camera_make="NIKON CORPORATION", camera_model="NIKON D70", place_city="Arezzo",
        place_region="Tuscany", place_country="Italy", aperture=5.6, exposure_time=1 / 250, iso=200,
    )
    html = viewer_client.get(f"/photos/{middle.pk}/").content.decode()
    newer = sorted(many_photos, key=lambda p: p.taken_at)[11]
    older = sorted(many_photos, key=lambda p: p.taken_at)[9]
    assert f'id="prev" rel="prev" href="/photos/{newer.pk}/"' in html
    assert f'id="next" rel="next" href="/photos/{older.pk}/"' in html
    assert "NIKON D70" in html and "Arezzo, Tuscany, Italy" in html
    assert "ƒ/5.6" in html and "1/250 s" in html and "ISO 200" in html
    assert viewer_client.get("/photos/999999/").status_code == 404


def test_originals_are_served_only_from_inside_a_library_root(viewer_client, library, tmp_path):
    make_jpeg(tmp_path / "lib" / "inside.jpg")
    (tmp_path / "secret.txt").write_text("not yours")
    photo = make_photo(library, "inside.jpg", taken=datetime(2020, 1, 1, tzinfo=timezone.utc))
    inside = photo.files.get()
    assert viewer_client.get(f"/files/{inside.pk}/").status_code == 200

    escape = SourceFile.objects.create(
        library=library, path_bytes=b"../secret.txt", relpath="../secret.txt", folder="..",
        size=1, mtime_ns=0, photo=photo, outcome="photo",
    )
    absolute = SourceFile.objects.create(
        library=library, path_bytes=b"/etc/passwd", relpath="/etc/passwd", folder="/etc",
        size=1, mtime_ns=0, photo=photo, outcome="photo",
    )
    skipped = SourceFile.objects.create(
        library=library, path_bytes=b"inside.jpg.txt", relpath="x", size=1, mtime_ns=0, outcome="skipped",
    )
    for sf in (escape, absolute, skipped):
        assert viewer_client.get(f"/files/{sf.pk}/").status_code == 404
    (tmp_path / "lib" / "inside.jpg").unlink()
    assert viewer_client.get(f"/files/{inside.pk}/").status_code == 404


def test_thumbnails_are_cached_for_a_year_once_rendered(viewer_client, library, tmp_path, settings):
    make_jpeg(tmp_path / "lib" / "t.jpg", size=(800, 600))
    photo = make_photo(library, "t.jpg", taken=datetime(2020, 1, 1, tzinfo=timezone.utc))
    PhotoStage.objects.create(photo=photo, stage="thumbnail")
    before = viewer_client.get(f"/thumbs/{photo.content_hash}/grid.jpg")
    assert before["Content-Type"] == "image/svg+xml", "a placeholder until rendered"
    assert "immutable" not in before["Cache-Control"]

    engine.run_pending("thumbnail", photo_ids=[photo.pk])
    after = viewer_client.get(f"/thumbs/{photo.content_hash}/grid.jpg")
    assert after["Content-Type"] == "image/jpeg"
    assert "max-age=31536000" in after["Cache-Control"] and "immutable" in after["Cache-Control"]
    assert viewer_client.get(f"/thumbs/{photo.content_hash}/huge.jpg").status_code == 404


def test_library_management_is_for_staff_only(viewer_client, tmp_path):
    assert viewer_client.get("/libraries/").status_code == 403
    response = viewer_client.post("/libraries/", {"path": str(tmp_path)})
    assert response.status_code == 403
    assert not Library.objects.exists()


def test_adding_a_library_in_the_ui_imports_it(staff_client, tmp_path, sync_tasks, corpus, settings,
                                               django_capture_on_commit_callbacks):
    settings.CLIP_MODEL = f"ViT-B-32:{tmp_path}/not-copied-yet.safetensors"
    folder = tmp_path / "holiday"
    folder.mkdir()
    (folder / "coffee.jpg").write_bytes((corpus / "bundled_photo__coffee.jpg").read_bytes())
    (folder / "notes.pdf").write_bytes((corpus / "nonimage__document.pdf").read_bytes())
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post("/libraries/", {"path": str(folder), "name": "Holiday"}, follow=True)
    assert response.status_code == 200
    library = Library.objects.get(name="Holiday")
    assert library.scan_state == "idle"
    assert library.last_scan_totals["imported"] == 1 and library.last_scan_totals["skipped"] == 1
    photo = Photo.objects.get()
    assert photo.stages.get(stage="thumbnail").state == "done", "thumbnails rendered by the (synchronous) worker"
    # No CLIP or caption weights on this machine: those stages wait, and the page says so.
    assert photo.stages.get(stage="embedding").state == "unavailable"
    assert "manage.py models" in staff_client.get("/").content.decode()
    html = staff_client.get("/libraries/").content.decode()
    assert "Holiday" in html


def test_adding_a_bad_folder_says_why(staff_client, tmp_path):
    response = staff_client.post("/libraries/", {"path": str(tmp_path / "nope")}, follow=True)
    assert "does not exist" in response.content.decode()


def test_the_jobs_page_counts_stages_and_lists_failures_with_reasons(staff_client, library):
    ok = make_photo(library, "ok.jpg", taken=datetime(2020, 1, 1, tzinfo=timezone.utc))
    bad = make_photo(library, "bad.jpg", taken=datetime(2020, 1, 2, tzinfo=timezone.utc))
    PhotoStage.objects.create(photo=ok, stage="thumbnail", state="done")
    PhotoStage.objects.create(photo=bad, stage="thumbnail", state="failed", attempts=3,
                              error="truncated image data (file ends early)")
    SourceFile.objects.create(library=library, path_bytes=b"clip.mov", relpath="clip.mov", size=1, mtime_ns=0,
                              outcome="skipped", reason="video: not yet supported (QuickTime)")
    html = staff_client.get("/jobs/").content.decode()
    assert "truncated image data (file ends early)" in html
    assert "video: not yet supported (QuickTime)" in html
    assert "Retry failed" in html

    response = staff_client.post("/jobs/thumbnail/retry/")
    assert response.status_code == 302
    assert PhotoStage.objects.get(photo=bad).state in ("pending", "queued")
    assert PhotoStage.objects.get(photo=bad).attempts == 0


def test_the_jobs_progress_stops_polling_when_idle(staff_client):
    response = staff_client.get("/jobs/?poll=1", **HTMX)
    assert response.status_code == 286, "htmx stops polling on 286"


def test_a_viewer_cannot_retry_jobs(viewer_client):
    assert viewer_client.post("/jobs/thumbnail/retry/").status_code == 403
    assert viewer_client.post("/jobs/nonsense/retry/").status_code == 403
