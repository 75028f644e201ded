"""A hostile library: generated on top of real files, every file accounted for, no 500, nothing stuck.

The cases a real folder of photos throws at an importer: ten thousand files in
one folder, folders thirty levels deep, names with newlines, quotes, markup,
invalid UTF-8 and 255 bytes, files that change while they are read, and a
library root that disappears in the middle of a scan.
"""

from __future__ import annotations

import io
import os
import shutil

import pytest
from PIL import Image

from gallery import content, libraries, scanner, scans
from gallery.models import Library, Photo, SourceFile

pytestmark = pytest.mark.django_db


def jpeg_bytes(n: int, size=(16, 12)) -> bytes:
    """A small real JPEG whose content (and so content hash) differs for every ``n``."""
    image = Image.new("RGB", size, (n * 37 % 256, n * 91 % 256, n * 53 % 256))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, comment=f"photo {n}")
    return buffer.getvalue()


def scan(path, **kw):
    library, _ = libraries.add_library(str(path))
    return library, scans.import_library(library, **kw)


HOSTILE_NAMES = [
    b"line\nbreak.jpg",
    b"carriage\rreturn.jpg",
    b"it's \"quoted\".jpg",
    b"<script>alert(1)<script>.jpg",  # (a name cannot hold "/", so no closing tag)
    b"<img src=x onerror=alert(1)>.jpg",
    b"{{ request }} {% csrf_token %}.jpg",
    b"bad utf8 \xc3\x28 \xff\xfe.jpg",
    b"tab\there & ampersand;.jpg",
    b"x" * 251 + b".jpg",  # 255 bytes: the longest name ext4 allows
    b" leading and trailing space .jpg",
    b"-dash-first.jpg",
    b"\xe2\x80\xaeright-to-left override gpj.jpg",
]


def test_ten_thousand_files_in_one_folder_are_each_accounted_for(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    broken = b"\xff\xd8\xff\xe0 not really a jpeg"
    for n in range(10_000):
        # Mostly damaged files (the cheap path to 10,000 results), every 25th a real photo.
        (root / f"IMG_{n:05d}.jpg").write_bytes(jpeg_bytes(n) if n % 25 == 0 else broken + str(n).encode())
    library, report = scan(root)
    totals = report.totals
    assert totals["files"] == 10_000
    assert totals["imported"] == 400
    assert totals["failed"] == 9_600
    assert SourceFile.objects.filter(library=library).count() == 10_000
    assert all(f.reason for f in report.files if f.outcome == "failed")
    # A rescan reads nothing again.
    assert scans.import_library(library).totals["unchanged"] == 400


def test_folders_thirty_levels_deep_and_hostile_names_import_and_render(tmp_path, staff_client):
    root = tmp_path / "lib"
    deep = root.joinpath(*[f"level{i:02d}" for i in range(30)])
    deep.mkdir(parents=True)
    (deep / "bottom.jpg").write_bytes(jpeg_bytes(1))
    raw_root = os.fsencode(root)
    for n, name in enumerate(HOSTILE_NAMES, start=2):
        with open(os.path.join(raw_root, name), "wb") as f:
            f.write(jpeg_bytes(n))
    library, report = scan(root)
    assert report.totals["imported"] == len(HOSTILE_NAMES) + 1
    assert report.totals["failed"] == 0
    stored = {bytes(sf.path_bytes) for sf in SourceFile.objects.filter(library=library)}
    assert set(HOSTILE_NAMES) <= stored
    assert any(path.count(b"/") == 30 for path in stored)

    # Every page that shows a path answers, escapes the markup and serves the original.
    grid = staff_client.get("/", {"library": library.pk})
    assert grid.status_code == 200
    folders = staff_client.get("/", {"library": library.pk, "folder": "/".join(f"level{i:02d}" for i in range(30))})
    assert folders.status_code == 200
    for sf in SourceFile.objects.filter(library=library):
        page = staff_client.get(f"/photos/{sf.photo_id}/")
        assert page.status_code == 200
        assert b"<script>alert(1)" not in page.content
        assert b"<img src=x onerror" not in page.content
        original = staff_client.get(f"/files/{sf.pk}/")
        assert original.status_code == 200
        assert b"".join(original.streaming_content)[:2] == b"\xff\xd8"
    assert staff_client.get("/libraries/").status_code == 200


def test_a_file_that_changes_while_it_is_read_is_read_again_next_scan_not_stored_torn(tmp_path, monkeypatch):
    root = tmp_path / "lib"
    root.mkdir()
    growing = root / "copying.jpg"
    growing.write_bytes(jpeg_bytes(7))
    (root / "steady.jpg").write_bytes(jpeg_bytes(8))

    hash_file = content.scan_hashes

    def hash_while_a_copy_appends(path, size):
        digests = hash_file(path, size)
        if path.endswith(b"copying.jpg") and growing.stat().st_size < 10_000:
            with open(growing, "ab") as f:  # another program is still writing the file
                f.write(b"\0" * 20_000)
        return digests

    monkeypatch.setattr(content, "scan_hashes", hash_while_a_copy_appends)
    library, report = scan(root)
    results = {f.path: f for f in report.files}
    assert results["steady.jpg"].outcome == "imported"
    assert results["copying.jpg"].outcome == "failed"
    assert "changed while it was being read" in results["copying.jpg"].reason
    assert Photo.objects.count() == 1

    # The copy has finished: the next scan reads it whole.
    monkeypatch.setattr(content, "scan_hashes", hash_file)
    again = {f.path: f for f in scans.import_library(library).files}
    assert again["copying.jpg"].outcome == "imported"
    assert again["steady.jpg"].outcome == "unchanged"
    sf = SourceFile.objects.get(library=library, path_bytes=b"copying.jpg")
    assert sf.size == growing.stat().st_size


def test_a_file_replaced_between_the_listing_and_the_read_is_stored_as_it_was_read(tmp_path, monkeypatch):
    root = tmp_path / "lib"
    root.mkdir()
    target = root / "swap.jpg"
    target.write_bytes(jpeg_bytes(1, size=(8, 8)))
    walk = scanner.walk

    def walk_then_replace(*args, **kwargs):
        entries = list(walk(*args, **kwargs))
        replacement = root / "swap.tmp"
        replacement.write_bytes(jpeg_bytes(2, size=(32, 24)))
        os.replace(replacement, target)  # the way editors save: a new file renamed over the old
        return iter(entries)

    monkeypatch.setattr(scanner, "walk", walk_then_replace)
    library, report = scan(root)
    [result] = report.files
    assert result.outcome == "imported"
    photo = Photo.objects.get()
    assert (photo.width, photo.height) == (32, 24)
    sf = SourceFile.objects.get(library=library)
    assert (sf.size, sf.mtime_ns) == (target.stat().st_size, target.stat().st_mtime_ns)
    # What was stored matches the file on disk: the next scan has nothing to do.
    monkeypatch.setattr(scanner, "walk", walk)
    assert scans.import_library(library).totals["unchanged"] == 1


def test_a_library_root_that_disappears_mid_scan_stops_the_scan_and_flags_nothing(tmp_path):
    root = tmp_path / "usb-drive"
    root.mkdir()
    for n in range(3 * scanner.BATCH):
        (root / f"{n:04d}.jpg").write_bytes(jpeg_bytes(n))
    library, first = scan(root)
    assert first.totals["imported"] == 3 * scanner.BATCH
    for n in range(3 * scanner.BATCH, 6 * scanner.BATCH):  # new photos for the second scan to read
        (root / f"{n:04d}.jpg").write_bytes(jpeg_bytes(n))

    def unplug(done, total):
        if done >= 4 * scanner.BATCH and root.exists():
            shutil.move(root, tmp_path / "unplugged")

    with pytest.raises(scanner.LibraryVanished, match="disappeared during the scan"):
        scans.import_library(library, progress=unplug)
    # Nothing the first scan knew is flagged missing or failed; nothing half-read was stored.
    assert not SourceFile.objects.filter(library=library, missing=True).exists()
    assert not SourceFile.objects.filter(library=library, outcome=SourceFile.Outcome.FAILED).exists()
    assert Photo.objects.filter(status=Photo.Status.OK).count() >= 3 * scanner.BATCH
    library.refresh_from_db()
    assert library.scan_state == Library.ScanState.FAILED
    assert "disappeared" in library.scan_error

    # Plugged in again: the next scan finishes the job.
    shutil.move(tmp_path / "unplugged", root)
    assert scans.import_library(library).totals["files"] == 6 * scanner.BATCH
    assert SourceFile.objects.filter(library=library).count() == 6 * scanner.BATCH
