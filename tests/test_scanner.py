"""The importer: every file accounted for, incremental rescans, moves, duplicates, metadata."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from io import StringIO

import pytest
from django.core.management import call_command

from gallery import content, libraries, scanner, scans
from gallery.models import Photo, PhotoStage, SourceFile
from tests.factories import make_jpeg

pytestmark = pytest.mark.django_db


def scan(path, **kw):
    library, _ = libraries.add_library(str(path))
    return library, scans.import_library(library, **kw)


def outcomes(report) -> dict[str, scanner.FileResult]:
    return {f.path: f for f in report.files}


# What the importer must make of each corpus file, by the category in its name.
# Damaged metadata or framing, but the pixels decode: a photo manager shows them.
TOLERATED_BAD = {"bad__bad_mpo_header.jpg", "bad__junk_before_soi.jpg", "bad__invalid_exif.jpg"}
IMPORTED_CATEGORIES = {
    "avif", "bmp", "bundled_photo", "camera_jpeg", "cmyk", "edge", "gif", "gps", "heic", "icc", "jxl",
    "mpo", "ocr_text", "orientation", "other", "phone_jpeg", "png", "progressive", "tiff", "webp",
    "xmp_iptc", "wrongext",
}


def test_every_corpus_file_is_accounted_for(corpus):
    library, report = scan(corpus, sync=True)
    files = sorted(p.name for p in corpus.iterdir() if p.is_file())
    results = outcomes(report)
    assert sorted(results) == files, "each corpus file has exactly one outcome"

    for name, result in results.items():
        category = name.split("__")[0]
        if result.outcome in ("skipped", "failed"):
            assert len(result.reason) > 8, f"{name}: {result.outcome} without a readable reason"
        if category in IMPORTED_CATEGORIES:
            assert result.outcome in ("imported", "duplicate"), f"{name}: {result.outcome} {result.reason}"
        elif name in TOLERATED_BAD:
            assert result.outcome == "imported", f"{name}: decodable despite its damage: {result}"
        elif category == "bad":
            assert result.outcome in ("skipped", "failed"), f"{name} should not import: {result}"
        elif category == "nonimage":
            assert result.outcome == "skipped", name
        elif category == "raw":
            assert result.outcome in ("imported", "failed"), f"{name}: {result}"

    assert "video" in results["nonimage__quicktime_video.mov"].reason
    assert "sidecar" in results["sidecar__xmp_sidecar.xmp"].reason.lower()
    assert results["bad__zero_bytes.jpg"].reason == "empty file (0 bytes)"
    assert "too large" in results["bad__png_bomb_20000x20000.png"].reason
    assert results["bad__truncated_half.jpg"].outcome == "failed"
    # The same bytes under another name and extension are the same photo.
    assert results["wrongext__jpeg_named.png"].photo_id == results["gps__nikon_p6000_DSCN0010.jpg"].photo_id
    assert {results["wrongext__jpeg_named.png"].outcome, results["gps__nikon_p6000_DSCN0010.jpg"].outcome} == {
        "imported", "duplicate"}

    # The database agrees with the report: a SourceFile per file, nothing lost.
    assert SourceFile.objects.filter(library=library).count() == len(files)
    for sf in SourceFile.objects.filter(library=library).exclude(outcome="photo"):
        assert sf.reason


def test_a_rescan_reads_nothing_again_and_changes_nothing(library_dir, monkeypatch):
    for name in ("gps__nikon_p6000_DSCN0010.jpg", "png__rgb_hopper.png", "nonimage__document.pdf"):
        library_dir.add(name)
    library, first = scan(library_dir.path)
    photos_before = set(Photo.objects.values_list("pk", "content_hash"))

    def no_reading(*args):
        raise AssertionError("an unchanged file was hashed again")

    monkeypatch.setattr(content, "scan_hashes", no_reading)
    monkeypatch.setattr(content, "file_hash", no_reading)
    second = scans.import_library(library)
    assert second.totals["unchanged"] == 2
    assert second.totals["skipped"] == 1
    assert second.totals["imported"] == 0
    assert set(Photo.objects.values_list("pk", "content_hash")) == photos_before


def test_a_moved_file_keeps_its_photo(library_dir):
    src = library_dir.add("gps__nikon_p6000_DSCN0021.jpg", as_="2019/trip/a.jpg")
    library, first = scan(library_dir.path)
    photo_id = outcomes(first)["2019/trip/a.jpg"].photo_id
    file_id = SourceFile.objects.get(photo_id=photo_id).pk
    Photo.objects.filter(pk=photo_id).update(title="kept across the move")

    (library_dir.path / "sorted").mkdir()
    os.rename(src, library_dir.path / "sorted" / "renamed.jpg")
    second = scans.import_library(library)

    moved = outcomes(second)["sorted/renamed.jpg"]
    assert moved.outcome == "moved"
    assert moved.photo_id == photo_id
    sf = SourceFile.objects.get(pk=file_id)
    assert (sf.relpath, sf.folder, sf.missing) == ("sorted/renamed.jpg", "sorted", False)
    assert Photo.objects.get(pk=photo_id).title == "kept across the move"
    assert second.totals["missing"] == 0


def test_a_vanished_file_is_flagged_missing_never_deleted(library_dir):
    gone = library_dir.add("png__rgb_hopper.png")
    library, _ = scan(library_dir.path)
    gone.unlink()
    report = scans.import_library(library)
    assert report.missing == ["png__rgb_hopper.png"]
    sf = SourceFile.objects.get(relpath="png__rgb_hopper.png")
    assert sf.missing and sf.missing_since is not None
    assert Photo.objects.filter(pk=sf.photo_id).exists()
    assert not Photo.objects.visible().filter(pk=sf.photo_id).exists()

    library_dir.add("png__rgb_hopper.png")  # it comes back
    scans.import_library(library)
    sf.refresh_from_db()
    assert not sf.missing
    assert Photo.objects.visible().filter(pk=sf.photo_id).exists()


def test_identical_content_in_two_places_is_one_photo_with_two_paths(library_dir):
    library_dir.add("bundled_photo__coffee.jpg", as_="a/coffee.jpg")
    library_dir.add("bundled_photo__coffee.jpg", as_="b/copy of coffee.jpg")
    _, report = scan(library_dir.path)
    assert sorted(f.outcome for f in report.files) == ["duplicate", "imported"]
    photo = Photo.objects.get()
    assert sorted(photo.files.values_list("relpath", flat=True)) == ["a/coffee.jpg", "b/copy of coffee.jpg"]


def test_new_photos_and_files_are_stored_with_copy_exactly_as_inserts_store_them(library_dir, monkeypatch):
    """The scan writes its new rows with COPY (gallery.pgcopy): every column as bulk_create would write it."""
    library_dir.add("bundled_photo__coffee.jpg", as_="a/coffee.jpg")
    library_dir.add("bundled_photo__coffee.jpg", as_="b/copy.jpg")  # the same content, in the same batch
    keywords = library_dir.add("xmp_iptc__iptc_keywords_caption_city.jpg")  # title, keywords, metadata JSON
    os.rename(keywords, os.path.join(os.fsencode(library_dir.path), b"a/caf\xe9 \xff.jpg"))
    library_dir.add("gps__nikon_p6000_DSCN0010.jpg")  # geocoded
    library_dir.add("bad__zero_bytes.jpg")
    library_dir.add("bad__broken_header.png")
    library, _ = libraries.add_library(str(library_dir.path))

    def stored(report):
        hashes = dict(Photo.objects.values_list("pk", "content_hash"))
        for f in report.files:  # the report names the photo each file's row points to
            sf = SourceFile.objects.get(relpath=f.path)
            assert (sf.photo_id, sf.outcome != "photo") == (f.photo_id, f.outcome in ("skipped", "failed")), f
        photos = {p.pop("content_hash"): p for p in Photo.objects.values()}
        files = {bytes(f.pop("path_bytes")): f for f in SourceFile.objects.values()}
        for p in photos.values():
            assert p.pop("id") and p.pop("imported_at") and p.pop("updated_at")
        for f in files.values():
            assert f.pop("id") and f.pop("first_seen") and f.pop("last_seen")
            f["photo_id"] = hashes.get(f["photo_id"])
        return photos, files

    def bulk_create(objs):
        if objs:
            type(objs[0]).objects.bulk_create(objs)

    monkeypatch.setattr(scanner.pgcopy, "insert", bulk_create)
    inserted = stored(scanner.Scanner(library).run())
    SourceFile.objects.all().delete()
    Photo.objects.all().delete()
    monkeypatch.undo()
    report = scanner.Scanner(library).run()
    copied = stored(report)

    assert copied == inserted
    photos, files = copied
    assert len(photos) == 3 and len(files) == 6
    assert sorted(f.outcome for f in report.files) == ["duplicate", "failed", "imported", "imported", "imported",
                                                       "skipped"]
    coffee = files[b"a/coffee.jpg"]["photo_id"]
    assert files[b"b/copy.jpg"]["photo_id"] == coffee
    assert files[b"a/caf\xe9 \xff.jpg"]["relpath"] == "a/caf\\xe9 \\xff.jpg"
    empty = files[b"bad__zero_bytes.jpg"]
    assert (empty["outcome"], empty["reason"], empty["photo_id"], empty["missing"]) == (
        "skipped", "empty file (0 bytes)", None, False)
    keyworded = photos[files[b"a/caf\xe9 \xff.jpg"]["photo_id"]]
    assert keyworded["keywords"] and keyworded["metadata"] and keyworded["title"]
    assert photos[files[b"gps__nikon_p6000_DSCN0010.jpg"]["photo_id"]]["place_country"] == "Italy"
    assert scanner.Scanner(library).run().totals["unchanged"] == 4, "a rescan finds every stored photo file again"


def test_an_edited_file_updates_its_photo_in_place(library_dir, tmp_path):
    path = make_jpeg(library_dir.path / "edit.jpg", color=(10, 10, 10), taken="2020:01:02 03:04:05")
    library, first = scan(library_dir.path)
    photo_id = outcomes(first)["edit.jpg"].photo_id
    make_jpeg(path, color=(250, 250, 250), taken="2021:06:07 08:09:10")
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))
    second = scans.import_library(library)
    result = outcomes(second)["edit.jpg"]
    assert (result.outcome, result.photo_id) == ("updated", photo_id)
    photo = Photo.objects.get(pk=photo_id)
    assert photo.taken_at == datetime(2021, 6, 7, 8, 9, 10, tzinfo=timezone.utc)
    assert photo.stages.get(stage="thumbnail").state in ("pending", "queued")


def test_capture_time_with_an_offset_is_stored_as_the_true_instant(library_dir):
    make_jpeg(library_dir.path / "tokyo.jpg", taken="2023:07:04 21:00:00", offset="+09:00")
    scan(library_dir.path)
    photo = Photo.objects.get()
    assert photo.taken_at == datetime(2023, 7, 4, 12, 0, tzinfo=timezone.utc)
    assert photo.taken_at_offset == "+09:00"
    assert photo.local_taken_at.hour == 21
    assert photo.taken_at_source == "exif:DateTimeOriginal"


def test_without_any_date_the_file_time_is_used_and_said(library_dir):
    path = library_dir.add("edge__jpeg_no_metadata.jpg", as_="scan0001.jpg")
    os.utime(path, (1_600_000_000, 1_600_000_000))
    scan(library_dir.path)
    photo = Photo.objects.get()
    assert photo.taken_at == datetime.fromtimestamp(1_600_000_000, tz=timezone.utc)
    assert photo.taken_at_source == "file mtime"


def test_gps_gives_a_place_and_an_empty_gps_block_gives_none(library_dir):
    library_dir.add("gps__nikon_p6000_DSCN0010.jpg")
    library_dir.add("camera_jpeg__canon_eos_40d_thumb_empty_gpsifd.jpg")
    _, report = scan(library_dir.path)
    r = outcomes(report)
    tuscany = Photo.objects.get(pk=r["gps__nikon_p6000_DSCN0010.jpg"].photo_id)
    assert tuscany.latitude == pytest.approx(43.4675, abs=0.01)
    assert tuscany.longitude == pytest.approx(11.8851, abs=0.01)
    assert tuscany.place_country == "Italy"
    assert tuscany.place_region == "Tuscany"
    canon = Photo.objects.get(pk=r["camera_jpeg__canon_eos_40d_thumb_empty_gpsifd.jpg"].photo_id)
    assert (canon.latitude, canon.longitude, canon.place) == (None, None, "")
    assert canon.camera_model == "Canon EOS 40D"


def test_dimensions_are_as_displayed_after_orientation(library_dir):
    library_dir.add("orientation__landscape_6.jpg")
    scan(library_dir.path)
    photo = Photo.objects.get()
    assert photo.orientation == 6
    assert (photo.width, photo.height) == (600, 450)


def test_file_names_that_are_not_utf8_survive(library_dir, client, staff):
    raw_name = os.path.join(os.fsencode(library_dir.path), b"caf\xe9 \xff.jpg")
    make_jpeg(library_dir.path / "tmp.jpg")
    os.rename(os.fsencode(library_dir.path / "tmp.jpg"), raw_name)
    library, report = scan(library_dir.path)
    [result] = report.files
    assert result.outcome == "imported"
    assert result.path == "caf\\xe9 \\xff.jpg"
    sf = SourceFile.objects.get()
    assert bytes(sf.path_bytes) == b"caf\xe9 \xff.jpg"
    client.force_login(staff)
    response = client.get(f"/files/{sf.pk}/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content)[:2] == b"\xff\xd8"
    # A rescan finds the same bytes unchanged.
    assert scans.import_library(library).totals["unchanged"] == 1


def test_symlink_loops_do_not_hang_the_walk(library_dir):
    make_jpeg(library_dir.path / "inner" / "a.jpg")
    os.symlink(library_dir.path, library_dir.path / "inner" / "loop")
    _, report = scan(library_dir.path)
    assert [f.path for f in report.files] == ["inner/a.jpg"]


def test_an_unreadable_entry_is_an_error_on_that_entry_not_the_run(library_dir):
    make_jpeg(library_dir.path / "ok.jpg")
    os.symlink(library_dir.path / "nowhere.jpg", library_dir.path / "dangling.jpg")
    _, report = scan(library_dir.path)
    r = outcomes(report)
    assert r["ok.jpg"].outcome == "imported"
    assert r["dangling.jpg"].outcome == "failed"
    assert "cannot read file" in r["dangling.jpg"].reason


def test_other_programs_caches_and_dot_folders_are_not_imported(library_dir):
    make_jpeg(library_dir.path / "@eaDir" / "thumb.jpg")
    make_jpeg(library_dir.path / ".thumbnails" / "t.jpg")
    make_jpeg(library_dir.path / "real.jpg")
    (library_dir.path / ".DS_Store").write_bytes(b"junk")
    _, report = scan(library_dir.path)
    assert [f.path for f in report.files] == ["real.jpg"]


def test_new_photos_wait_for_thumbnails(library_dir):
    library_dir.add("png__rgba_alpha.png")
    scan(library_dir.path)
    assert PhotoStage.objects.get(stage="thumbnail").state in ("pending", "queued")


def test_the_command_prints_one_json_object_and_exits_zero_despite_failures(library_dir):
    library_dir.add("bad__truncated_half.jpg")
    library_dir.add("bundled_photo__flower.jpg")
    out = StringIO()
    call_command("import_library", str(library_dir.path), "--json", "--sync", stdout=out)
    data = json.loads(out.getvalue())
    by_path = {f["path"]: f for f in data["files"]}
    assert by_path["bundled_photo__flower.jpg"]["outcome"] == "imported"
    assert by_path["bad__truncated_half.jpg"]["outcome"] == "failed"
    assert by_path["bad__truncated_half.jpg"]["reason"]
    assert data["totals"]["imported"] == 1 and data["totals"]["failed"] == 1


def test_a_library_cannot_be_a_missing_folder_or_overlap_another(tmp_path):
    with pytest.raises(libraries.LibraryError, match="does not exist"):
        libraries.add_library(str(tmp_path / "nope"))
    (tmp_path / "a" / "b").mkdir(parents=True)
    libraries.add_library(str(tmp_path / "a"))
    with pytest.raises(libraries.LibraryError, match="overlaps"):
        libraries.add_library(str(tmp_path / "a" / "b"))


def test_a_sidecars_unbounded_description_is_stored_bounded(library_dir, tmp_path):
    from tests.factories import make_jpeg

    make_jpeg(library_dir.path / "long.jpg")
    text = "word " * 400_000  # 2 MB
    (library_dir.path / "long.jpg.xmp").write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:description><rdf:Alt>'
        f'<rdf:li xml:lang="x-default">{text}</rdf:li></rdf:Alt></dc:description>'
        f'<dc:subject><rdf:Bag>{"".join(f"<rdf:li>k{i}</rdf:li>" for i in range(2000))}</rdf:Bag></dc:subject>'
        "</rdf:Description></rdf:RDF></x:xmpmeta>")
    library, report = scan(library_dir.path)
    assert report.totals["imported"] == 1
    photo = Photo.objects.get()
    assert 0 < len(photo.description) <= scanner.MAX_DESCRIPTION
    assert len(photo.keywords) == scanner.MAX_KEYWORDS


def test_reread_stores_metadata_a_rescan_cannot_see_and_starts_no_stage_over(library_dir):
    from tests.factories import make_jpeg

    make_jpeg(library_dir.path / "harbour.jpg")
    library, _ = scan(library_dir.path, sync=True)
    photo = Photo.objects.get()
    assert photo.stages.get(stage="thumbnail").state == "done"
    (library_dir.path / "harbour.jpg.xmp").write_text(  # another program adds a sidecar
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        '<dc:title><rdf:Alt><rdf:li xml:lang="x-default">Harbour at dusk</rdf:li></rdf:Alt></dc:title>'
        "<dc:subject><rdf:Bag><rdf:li>harbour</rdf:li></rdf:Bag></dc:subject>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>")
    assert scans.import_library(library).totals["unchanged"] == 1
    assert Photo.objects.get().title == ""

    out = StringIO()
    call_command("import_library", str(library_dir.path), "--reread", stdout=out)

    assert "1 reread" in out.getvalue()
    photo = Photo.objects.get()
    assert (photo.title, photo.keywords) == ("Harbour at dusk", ["harbour"])
    assert photo.stages.get(stage="thumbnail").state == "done", "the content did not change: nothing to redo"
