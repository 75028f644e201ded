"""Library scans in the worker (gallery.scans): in slices of bounded time, one at a time, never stuck."""

from __future__ import annotations

import os

import pytest
from django_q.exceptions import TimeoutException

from gallery import holders, libraries, recovery, scanner, scans
from gallery.models import Library, Photo, PhotoStage, SourceFile

pytestmark = pytest.mark.django_db

FILES = [
    "gps__nikon_p6000_DSCN0010.jpg", "orientation__landscape_6.jpg", "png__rgba_alpha.png",
    "bundled_photo__coffee.jpg", "bundled_photo__flower.jpg", "webp__lossless_cat.webp",
    "bad__truncated_half.jpg", "nonimage__document.pdf", "bad__zero_bytes.jpg",
]


def test_a_scan_in_slices_reads_every_file_once_and_counts_like_one_pass(
        library_dir, settings, monkeypatch, sync_tasks, django_capture_on_commit_callbacks):
    for name in FILES:
        library_dir.add(name)
    library_dir.add("bundled_photo__coffee.jpg", as_="copies/coffee again.jpg")
    library, _ = libraries.add_library(str(library_dir.path))
    monkeypatch.setattr(scanner, "BATCH", 2)
    settings.SCAN_SLICE_SECONDS = 0  # every slice stops after its first batch
    settings.CLIP_MODEL = "local-dir:/nonexistent"  # AI stages wait; thumbnails run
    slices = []
    real_slice = scans.scan_slice
    monkeypatch.setattr(scans, "scan_slice", lambda pk: slices.append(pk) or real_slice(pk))

    with django_capture_on_commit_callbacks(execute=True):
        assert scans.queue_scan(library)
    library.refresh_from_db()
    assert len(slices) >= 4, "the scan ran as several tasks"
    assert library.scan_state == Library.ScanState.IDLE and library.scan_progress == {}
    totals = library.last_scan_totals
    assert totals["files"] == len(FILES) + 1
    assert (totals["imported"], totals["duplicate"], totals["unchanged"]) == (7, 1, 0)
    assert totals["skipped"] == 2 and totals["failed"] == 0
    assert SourceFile.objects.filter(library=library).count() == len(FILES) + 1
    assert Photo.objects.count() == 7
    # The worker rendered the thumbnails; the truncated JPEG is found out there.
    thumbnails = dict(PhotoStage.objects.filter(stage="thumbnail").values_list("photo__files__relpath", "state"))
    assert thumbnails.pop("bad__truncated_half.jpg") == "failed"
    assert set(thumbnails.values()) == {"done"}

    # A rescan finds everything unchanged; a file that went away is flagged by the slice that ends.
    os.unlink(library_dir.path / "bundled_photo__flower.jpg")
    with django_capture_on_commit_callbacks(execute=True):
        assert scans.queue_scan(library)
    library.refresh_from_db()
    again = library.last_scan_totals
    assert (again["missing"], again["unchanged"], again["skipped"], again["imported"]) == (1, 7, 2, 0)


def test_a_library_is_scanned_by_one_task_at_a_time(library, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as sent:
        assert scans.queue_scan(library) is True
        assert scans.queue_scan(library) is False
    assert len(sent) == 1
    library.refresh_from_db()
    assert library.scan_state == Library.ScanState.QUEUED


def test_a_scan_that_times_out_is_failed_and_offers_a_rescan(library, monkeypatch, staff_client):
    def too_slow(self):
        raise TimeoutException("Task exceeded maximum timeout value (600 seconds)")

    monkeypatch.setattr(scanner.Scanner, "run", too_slow)
    Library.objects.filter(pk=library.pk).update(scan_state=Library.ScanState.QUEUED)
    with pytest.raises(TimeoutException):
        scans.scan_slice(library.pk)
    library.refresh_from_db()
    assert library.scan_state == Library.ScanState.FAILED and "timed out after 600 s" in library.scan_error
    html = staff_client.get("/libraries/").content.decode()
    assert "timed out after 600 s" in html and ">Rescan</button>" in html
    assert 'hx-trigger="every 2s"' not in html, "nothing to poll for"
    assert scans.queue_scan(library) is True


def test_a_scan_whose_worker_died_is_failed(library):
    dead = holders.current().replace(f":{os.getpid()}:", ":999999999:")
    Library.objects.filter(pk=library.pk).update(scan_state=Library.ScanState.SCANNING, scan_holder=dead)
    assert recovery.reap_dead_scans() == 1
    library.refresh_from_db()
    assert library.scan_state == Library.ScanState.FAILED and "killed" in library.scan_error


def test_a_scan_held_by_a_live_worker_is_left_alone(library):
    Library.objects.filter(pk=library.pk).update(scan_state=Library.ScanState.SCANNING,
                                                 scan_holder=holders.current())
    assert recovery.reap_dead_scans() == 0
    library.refresh_from_db()
    assert library.scan_state == Library.ScanState.SCANNING


def test_a_foreground_import_refuses_a_library_another_process_is_scanning(library):
    Library.objects.filter(pk=library.pk).update(scan_state=Library.ScanState.SCANNING,
                                                 scan_holder="other-host:77:1700000000.00")
    with pytest.raises(scans.ScanBusy, match="already being scanned"):
        scans.import_library(library)
    # A scan left behind by a process that died is taken over.
    dead = holders.current().replace(f":{os.getpid()}:", ":999999999:")
    Library.objects.filter(pk=library.pk).update(scan_holder=dead)
    report = scans.import_library(library)
    assert report.complete
    library.refresh_from_db()
    assert library.scan_state == Library.ScanState.IDLE and not library.scan_holder
