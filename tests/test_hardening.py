"""Defects found by using the app as an attacker would: links and pipes in a library, hostile request values."""

from __future__ import annotations

import itertools
import os
import threading
import time
from datetime import datetime, timezone

import pytest

from gallery import libraries, scanner, scans
from gallery.models import Photo, SourceFile
from tests.factories import make_jpeg, make_photo

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
TAKEN = datetime(2020, 1, 1, tzinfo=timezone.utc)


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def scan(path):
    library, _ = libraries.add_library(str(path))
    return library, {f.path: f for f in scans.import_library(library).files}


# -- originals ---------------------------------------------------------------------


def test_a_library_file_linked_to_a_file_outside_is_not_served(viewer_client, library, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"TOP-SECRET-BYTES " * 10)
    photo = make_photo(library, "holiday.jpg", taken=TAKEN)
    os.symlink(secret, tmp_path / "lib" / "holiday.jpg")
    response = viewer_client.get(f"/files/{photo.files.get().pk}/")
    assert response.status_code == 404
    assert b"TOP-SECRET-BYTES" not in body(response)


def test_a_file_reached_through_a_folder_linked_outside_is_not_served(viewer_client, library, tmp_path):
    make_jpeg(tmp_path / "elsewhere" / "a.jpg")
    os.symlink(tmp_path / "elsewhere", tmp_path / "lib" / "album")
    photo = make_photo(library, "album/a.jpg", taken=TAKEN)
    assert viewer_client.get(f"/files/{photo.files.get().pk}/").status_code == 404


def test_links_that_stay_inside_the_library_are_served(viewer_client, library, tmp_path):
    original = make_jpeg(tmp_path / "lib" / "real" / "a.jpg")
    os.symlink("real/a.jpg", tmp_path / "lib" / "alias.jpg")
    os.symlink(tmp_path / "lib" / "real", tmp_path / "lib" / "album")
    for relpath in ("alias.jpg", "album/a.jpg"):
        photo = make_photo(library, relpath, taken=TAKEN)
        response = viewer_client.get(f"/files/{photo.files.get().pk}/")
        assert response.status_code == 200, relpath
        assert response["Content-Length"] == str(original.stat().st_size)
        assert body(response) == original.read_bytes()


def test_a_named_pipe_in_place_of_a_file_is_a_quick_404_not_a_hung_thread(viewer_client, library, tmp_path):
    fifo = tmp_path / "lib" / "pipe.jpg"
    os.mkfifo(fifo)
    photo = make_photo(library, "pipe.jpg", taken=TAKEN)
    done = threading.Event()

    def rescue():
        """If the view blocks opening the pipe, open its other end after a while so the test ends (and fails)."""
        if done.wait(5):
            return
        while not done.is_set():
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # ENXIO: no reader yet
                time.sleep(0.05)

    guard = threading.Thread(target=rescue, daemon=True)
    guard.start()
    started = time.monotonic()
    try:
        response = viewer_client.get(f"/files/{photo.files.get().pk}/")
    finally:
        done.set()
        guard.join(5)
    assert time.monotonic() - started < 5, "opening a FIFO blocked the request"
    assert response.status_code == 404


# -- scanning ----------------------------------------------------------------------


def test_a_folder_linked_outside_the_library_is_reported_not_imported(tmp_path):
    root = tmp_path / "lib"
    make_jpeg(root / "home.jpg", color=(10, 20, 30))
    make_jpeg(tmp_path / "elsewhere" / "stranger.jpg", color=(200, 200, 10))
    os.symlink(tmp_path / "elsewhere", root / "escape")
    os.symlink(tmp_path / "elsewhere" / "stranger.jpg", root / "stranger.jpg")
    _, results = scan(root)
    assert set(results) == {"home.jpg", "escape", "stranger.jpg"}
    assert results["home.jpg"].outcome == "imported"
    for name in ("escape", "stranger.jpg"):
        assert results[name].outcome == "failed"
        assert "outside the library" in results[name].reason
    assert Photo.objects.count() == 1
    assert not SourceFile.objects.filter(relpath__contains="stranger").exists()


def test_a_link_to_the_filesystem_root_is_not_walked(tmp_path):
    root = tmp_path / "lib"
    make_jpeg(root / "home.jpg")
    os.symlink("/", root / "everything")
    # At most a few entries: a walk that follows the link would go on through the whole machine.
    entries = list(itertools.islice(scanner.walk(os.fsencode(root)), 50))
    assert [(e.rel, bool(e.error)) for e in entries] == [(b"everything", True), (b"home.jpg", False)]
    assert "outside the library" in entries[0].error


def test_a_folder_linked_inside_the_library_is_imported_once(tmp_path):
    root = tmp_path / "lib"
    make_jpeg(root / "real" / "a.jpg")
    os.symlink(root / "real", root / "album")
    _, results = scan(root)
    assert [f.outcome for f in results.values()] == ["imported"]
    assert Photo.objects.count() == 1


# -- request values ----------------------------------------------------------------


def test_a_thumbnail_url_with_an_unsafe_hash_is_a_404(viewer_client):
    assert viewer_client.get("/thumbs/a.b/grid.jpg").status_code == 404


@pytest.mark.parametrize("url", ["/", "/search/", "/jobs/", "/photos/1/"])
def test_a_nul_byte_in_a_query_parameter_is_a_400(staff_client, library, url):
    for query in (f"library={library.pk}&folder=%00", "q=beach%00", "after=%00", "x%00=1"):
        response = staff_client.get(f"{url}?{query}")
        assert response.status_code == 400, (url, query)


def test_a_nul_byte_in_a_form_field_or_the_path_is_a_400(staff_client):
    form = "application/x-www-form-urlencoded"
    assert staff_client.post("/libraries/", "path=/tmp/%00&name=x", content_type=form).status_code == 400
    assert staff_client.get("/tags/beach%00/").status_code == 400


@pytest.mark.parametrize("url", ["/", "/jobs/", "/libraries/", "/search/", "similar"])
def test_pages_that_answer_a_fragment_to_htmx_vary_on_hx_request(staff_client, library, url):
    if url == "similar":
        url = f"/photos/{make_photo(library, 'a.jpg', taken=TAKEN).pk}/similar/"
    for headers in ({}, HTMX):
        response = staff_client.get(url, **headers)
        assert response.status_code in (200, 286), url
        assert "HX-Request" in response.get("Vary", ""), url
