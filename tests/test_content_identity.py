"""A photo's identity by content when the scan reads only the head and tail of large files.

The scan hashes a large file whole only when its quick hash (size, first and last
16 KiB) is not enough to tell it from another photo; otherwise the thumbnail stage,
which reads the whole file anyway, hashes it before naming any thumbnail.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.contrib.postgres.search import SearchQuery
from PIL import Image

from gallery import content, engine, libraries, runners, scanner, scans
from gallery.models import Photo, PhotoStage, SourceFile
from gallery.thumbnails import thumbnail_path
from tagging import tags
from tagging.models import OwnerCaption, PhotoTag, SearchDocument, TagDecision
from tests.factories import make_photo

pytestmark = pytest.mark.django_db


def large_jpeg(path: Path, seed: int) -> Path:
    """A noisy 700×500 JPEG of some 700 KB: larger than what the scan hashes whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (500, 700, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(path, "JPEG", quality=95)
    assert path.stat().st_size > content.WHOLE_UP_TO
    return path


def scan(root: Path):
    library = libraries.add_library(str(root))[0]
    return library, scans.import_library(library)


def rescan(library):
    return scans.import_library(library)


def outcomes(report) -> dict[str, str]:
    return {f.path: f.outcome for f in report.files}


def run_thumbnails():
    ids = list(PhotoStage.objects.filter(stage=runners.THUMBNAIL).values_list("photo_id", flat=True))
    engine.run_stage(runners.THUMBNAIL, ids, "", hand_on=False)


def test_a_large_new_file_is_known_by_its_quick_hash_until_the_thumbnail_stage_hashes_it_whole(tmp_path):
    photo_file = large_jpeg(tmp_path / "lib" / "a.jpg", 1)
    scan(tmp_path / "lib")
    photo = Photo.objects.get()
    quick = content.quick_hash(photo_file)
    assert (photo.hash_pending, photo.quick_hash, photo.content_hash) == (True, quick, quick)

    run_thumbnails()
    photo.refresh_from_db()
    whole = content.file_hash(photo_file)
    assert (photo.hash_pending, photo.quick_hash, photo.content_hash) == (False, quick, whole)
    assert thumbnail_path(settings.THUMBNAIL_DIR, whole, "grid").is_file()
    assert not thumbnail_path(settings.THUMBNAIL_DIR, quick, "grid").exists()
    assert PhotoStage.objects.get(photo=photo, stage=runners.THUMBNAIL).state == "done"


def test_small_files_are_hashed_whole_during_the_scan(tmp_path):
    small = tmp_path / "lib" / "small.png"
    small.parent.mkdir()
    Image.new("RGB", (40, 30), (10, 200, 30)).save(small)
    scan(tmp_path / "lib")
    photo = Photo.objects.get()
    assert not photo.hash_pending
    assert photo.content_hash == content.file_hash(small)
    assert photo.quick_hash == content.quick_hash(small) != photo.content_hash


def test_two_copies_in_one_scan_are_one_photo_hashed_whole(tmp_path):
    first = large_jpeg(tmp_path / "lib" / "a.jpg", 2)
    shutil.copy(first, tmp_path / "lib" / "copy of a.jpg")
    _, report = scan(tmp_path / "lib")
    assert sorted(outcomes(report).values()) == ["duplicate", "imported"]
    photo = Photo.objects.get()
    assert not photo.hash_pending and photo.content_hash == content.file_hash(first)
    assert photo.files.count() == 2


def test_a_copy_found_later_joins_the_photo_and_hashes_it_whole(tmp_path):
    first = large_jpeg(tmp_path / "lib" / "a.jpg", 3)
    library, _ = scan(tmp_path / "lib")
    assert Photo.objects.get().hash_pending
    (tmp_path / "lib" / "later").mkdir()
    shutil.copy(first, tmp_path / "lib" / "later" / "a.jpg")
    assert outcomes(rescan(library))["later/a.jpg"] == "duplicate"
    photo = Photo.objects.get()
    assert not photo.hash_pending and photo.content_hash == content.file_hash(first)
    assert photo.files.count() == 2


def test_a_moved_file_keeps_its_photo_before_and_after_it_was_hashed_whole(tmp_path):
    root = tmp_path / "lib"
    large_jpeg(root / "2019" / "a.jpg", 4)
    library, _ = scan(root)
    photo = Photo.objects.get()
    assert photo.hash_pending
    os.renames(root / "2019" / "a.jpg", root / "trips" / "a.jpg")
    report = rescan(library)
    assert outcomes(report) == {"trips/a.jpg": "moved"}
    moved = Photo.objects.get()
    assert moved.pk == photo.pk and not moved.hash_pending
    assert moved.content_hash == content.file_hash(root / "trips" / "a.jpg")

    os.renames(root / "trips" / "a.jpg", root / "2020" / "a.jpg")
    assert outcomes(rescan(library)) == {"2020/a.jpg": "moved"}
    assert Photo.objects.get().pk == photo.pk


def test_files_with_the_same_size_head_and_tail_but_another_middle_are_two_photos(tmp_path):
    root = tmp_path / "lib"
    first = large_jpeg(root / "a.jpg", 5)
    data = bytearray(first.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0xFF
    (root / "b.jpg").write_bytes(bytes(data))
    assert content.quick_hash(root / "b.jpg") == content.quick_hash(first)
    _, report = scan(root)
    assert outcomes(report) == {"a.jpg": "imported", "b.jpg": "imported"}
    hashes = set(Photo.objects.values_list("content_hash", flat=True))
    assert hashes == {content.file_hash(first), content.file_hash(root / "b.jpg")}
    assert not Photo.objects.filter(hash_pending=True).exists()


def test_a_copy_of_a_photo_imported_before_quick_hashes_is_found_by_its_size(tmp_path):
    root = tmp_path / "lib"
    first = large_jpeg(root / "a.jpg", 6)
    library, _ = scan(root)
    run_thumbnails()
    # As a photo imported by an older Shoebox looks: the whole hash, no quick hash.
    Photo.objects.update(quick_hash="")
    shutil.copy(first, root / "b.jpg")
    assert outcomes(rescan(library))["b.jpg"] == "duplicate"
    assert Photo.objects.count() == 1
    assert Photo.objects.get().quick_hash == content.quick_hash(first), "and it has a quick hash now"


def test_a_copy_only_the_thumbnail_stage_recognises_joins_the_older_photo(tmp_path, django_user_model):
    root = tmp_path / "lib"
    first = large_jpeg(root / "a.jpg", 7)
    library, _ = scan(root)
    run_thumbnails()
    older = Photo.objects.get()
    # Imported before quick hashes, and its size since misrecorded: the scan cannot tell.
    Photo.objects.update(quick_hash="", file_size=1)
    shutil.copy(first, root / "b.jpg")
    assert outcomes(rescan(library))["b.jpg"] == "imported"
    newer = Photo.objects.get(hash_pending=True)
    # The owner gets to the new photo first: a tag, and a caption of their own.
    owner = django_user_model.objects.create_user("owner", is_staff=True)
    tags.add(newer, "Beach", by=owner)
    tags.set_owner_caption(newer, "Our beach, the first morning", by=owner)

    run_thumbnails()
    assert list(Photo.objects.values_list("pk", flat=True)) == [older.pk]
    assert sorted(SourceFile.objects.filter(photo=older).values_list("relpath", flat=True)) == ["a.jpg", "b.jpg"]
    assert not PhotoStage.objects.filter(photo_id=newer.pk).exists()
    # What the owner decided was kept, on the photo it belongs to.
    beach = PhotoTag.objects.get(photo=older, tag__path="Beach")
    assert (beach.state, beach.decided_by) == ("accepted", owner)
    assert TagDecision.objects.filter(photo=older, action="add").exists()
    assert OwnerCaption.objects.get(photo=older).caption == "Our beach, the first morning"
    morning = SearchQuery("morning", config="english")
    assert SearchDocument.objects.filter(photo=older, document=morning).exists(), "and it is searchable"


def test_a_file_edited_after_the_scan_fails_its_thumbnails_with_the_reason_until_the_next_scan(tmp_path):
    root = tmp_path / "lib"
    target = large_jpeg(root / "a.jpg", 8)
    library, _ = scan(root)
    photo = Photo.objects.get()
    large_jpeg(tmp_path / "edited.jpg", 9).replace(target)

    run_thumbnails()
    row = PhotoStage.objects.get(photo=photo, stage=runners.THUMBNAIL)
    assert row.state == "failed"
    assert "changed after the scan" in row.error
    assert Photo.objects.get().hash_pending

    assert outcomes(rescan(library)) == {"a.jpg": "updated"}
    run_thumbnails()
    photo.refresh_from_db()
    assert photo.content_hash == content.file_hash(target) and not photo.hash_pending


def test_a_thumbnail_url_by_the_quick_hash_still_answers_after_the_whole_hash(tmp_path, viewer_client):
    large_jpeg(tmp_path / "lib" / "a.jpg", 10)
    scan(tmp_path / "lib")
    quick = Photo.objects.get().content_hash
    assert viewer_client.get(f"/thumbs/{quick}/grid.jpg")["Content-Type"] == "image/svg+xml"
    run_thumbnails()
    whole = Photo.objects.get().content_hash
    assert viewer_client.get(f"/thumbs/{whole}/grid.jpg")["Content-Type"] == "image/jpeg"
    assert viewer_client.get(f"/thumbs/{quick}/grid.jpg").status_code == 200
    assert viewer_client.get(f"/thumbs/{'0' * 64}/grid.jpg").status_code == 404


def test_prefetching_skips_what_is_not_a_regular_file_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)  # opening a named pipe for reading would wait for a writer
    (tmp_path / "folder.jpg").mkdir()
    photo_file = large_jpeg(tmp_path / "a.jpg", 11)
    content.prefetch([fifo, tmp_path / "folder.jpg", tmp_path / "gone.jpg", photo_file])


def test_a_copy_that_changes_before_it_is_hashed_whole_is_read_again_next_scan(tmp_path, monkeypatch):
    root = tmp_path / "lib"
    first = large_jpeg(root / "a.jpg", 12)
    shutil.copy(first, root / "b.jpg")
    store = scanner.Scanner._store

    def store_after_an_edit(self, reads):
        with open(root / "b.jpg", "ab") as f:  # another program writes to it between the read and the hash
            f.write(b"\0" * 10)
        return store(self, reads)

    monkeypatch.setattr(scanner.Scanner, "_store", store_after_an_edit)
    library, report = scan(root)
    assert outcomes(report) == {"a.jpg": "imported", "b.jpg": "failed"}
    assert "changed while it was being read" in {f.path: f.reason for f in report.files}["b.jpg"]
    monkeypatch.setattr(scanner.Scanner, "_store", store)
    assert outcomes(rescan(library)) == {"a.jpg": "unchanged", "b.jpg": "imported"}
    assert Photo.objects.count() == 2  # b.jpg now holds other content: a photo of its own


@pytest.mark.parametrize("size", [1, content.SPAN, content.SPAN + 1, 2 * content.SPAN, 2 * content.SPAN + 1,
                                  content.WHOLE_UP_TO, content.WHOLE_UP_TO + 1])
def test_the_quick_hash_is_the_same_read_whole_or_in_part_and_covers_size_head_and_tail(tmp_path, size):
    data = bytes(np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8))
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    quick, whole = content.scan_hashes(path, size)
    assert quick == content.quick_hash(path) != content.file_hash(path)
    assert whole == ("" if size > content.WHOLE_UP_TO else content.file_hash(path))
    for changed in (b"x" + data[1:], data[:-1] + b"x", data + b"x"):  # head, tail, size
        if changed != data:
            path.write_bytes(changed)
            assert content.quick_hash(path) != quick


def test_a_merge_keeps_the_older_photos_own_decisions_and_takes_the_newer_ones_where_it_had_none(
        library, django_user_model):
    when = datetime(2024, 5, 1, tzinfo=timezone.utc)
    older, newer = make_photo(library, "a.jpg", taken=when), make_photo(library, "b.jpg", taken=when)
    owner = django_user_model.objects.create_user("owner", is_staff=True)
    sunset = tags.add(older, "Sunset", by=owner).tag
    tags.decide(sunset, [older.pk], accept=False, by=owner)  # the owner said no, on the older photo
    cat = tags.for_path(["Cat"])
    PhotoTag.objects.create(photo=older, tag=cat, source="caption")  # only a suggestion there
    for name in ("Sunset", "Cat", "Dog"):
        tags.add(newer, name, by=owner)

    tags.carry_over(newer.pk, older.pk)
    states = dict(PhotoTag.objects.filter(photo=older).values_list("tag__path", "state"))
    assert states == {"Sunset": "rejected", "Cat": "accepted", "Dog": "accepted"}
