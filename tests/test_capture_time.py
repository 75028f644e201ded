"""Capture times across time zones: the GPS clock, the zone at the GPS position, stated offsets.

Every file is a real JPEG whose tags exiftool writes; the importer reads it
(``gallery.metadata``), the real scanner stores it, and the photo page shows it.
"""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from django.urls import reverse
from PIL import Image

from gallery import libraries, scans
from gallery.metadata import TakenFrom, ZoneFrom, capture_instant, read_metadata
from gallery.models import Photo
from tests.conftest import require_tool

CHICAGO = (41.8781, -87.6298)
ADELAIDE = (-34.9285, 138.6007)
NEW_DELHI = (28.6139, 77.2090)
A_MTIME = 1_600_000_000  # 2020-09-13 12:26:40 UTC


@pytest.fixture(scope="module")
def exiftool() -> str:
    return require_tool("exiftool", "libimage-exiftool-perl")


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    return root


def tagged_jpeg(exiftool: str, path, *tags: str, gps: tuple[float, float] | None = None):
    """A small JPEG with ``tags`` ("-DateTimeOriginal=…") and a GPS position written by exiftool."""
    Image.new("RGB", (32, 24), (90, 140, 200)).save(path, "JPEG")
    args = list(tags)
    if gps is not None:
        latitude, longitude = gps
        args += [
            f"-GPSLatitude={abs(latitude)}", f"-GPSLatitudeRef={'S' if latitude < 0 else 'N'}",
            f"-GPSLongitude={abs(longitude)}", f"-GPSLongitudeRef={'W' if longitude < 0 else 'E'}",
        ]  # fmt: skip
    subprocess.run([exiftool, "-q", "-q", "-overwrite_original", *args, str(path)], check=True)
    os.utime(path, (A_MTIME, A_MTIME))
    return path


def read(path):
    with Image.open(path) as image:
        return read_metadata(path, image, mtime=os.stat(path).st_mtime)


def import_one(path) -> Photo:
    """Import the folder holding ``path`` with the real scanner; the photo it became."""
    library, _ = libraries.add_library(str(path.parent))
    report = scans.import_library(library)
    [result] = [f for f in report.files if f.path == path.name]
    assert result.outcome == "imported", result
    return Photo.objects.get(pk=result.photo_id)


def taken_line(client, photo: Photo) -> str:
    """The photo page's "Taken" entry, as HTML."""
    response = client.get(reverse("photo_detail", args=[photo.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    start = html.index("<dt>Taken</dt>")
    return html[start : html.index("</dd>", start)]


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# --------------------------------------------------------------------------------------
# The GPS clock
# --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_gps_time_alone_is_the_utc_instant_and_says_so(exiftool, folder, viewer_client):
    path = tagged_jpeg(exiftool, folder / "DSC_0001.jpg", "-GPSDateStamp=2023:07:04", "-GPSTimeStamp=16:04:07.24")

    meta = read(path)
    assert (meta.taken_at, meta.taken_at_offset) == (datetime(2023, 7, 4, 16, 4, 7, 240000), "+00:00")
    assert meta.taken_at_source == TakenFrom.GPS_TIME == "exif:GPSDateStamp"

    photo = import_one(path)
    assert photo.taken_at == utc(2023, 7, 4, 16, 4, 7, 240000)
    assert (photo.taken_at_offset, photo.taken_at_source) == ("+00:00", "exif:GPSDateStamp")
    assert (photo.taken_at_zone, photo.taken_at_zone_source) == ("", ZoneFrom.OFFSET)
    assert photo.has_capture_time
    line = taken_line(viewer_client, photo)
    assert "16:04:07 (UTC+00:00)" in line and "from exif:GPSDateStamp" in line


@pytest.mark.django_db
def test_a_gps_time_with_a_position_is_shown_in_the_zone_there(exiftool, folder, viewer_client):
    path = tagged_jpeg(
        exiftool, folder / "DSC_0002.jpg", "-GPSDateStamp=2023:07:04", "-GPSTimeStamp=16:04:07", gps=CHICAGO
    )
    photo = import_one(path)
    assert photo.taken_at == utc(2023, 7, 4, 16, 4, 7)
    assert (photo.taken_at_zone, photo.taken_at_zone_source, photo.taken_at_offset) == (
        "America/Chicago", ZoneFrom.GPS, "-05:00"
    )  # fmt: skip
    assert photo.local_taken_at.hour == 11
    assert "11:04:07 CDT, America/Chicago" in taken_line(viewer_client, photo)


@pytest.mark.parametrize(
    ("tags", "source"),
    [
        # A stale fix: the camera's own clock is the capture time.
        (["-DateTimeOriginal=2023:07:04 11:04:00", "-GPSDateStamp=2023:07:04", "-GPSTimeStamp=15:30:00"],
         "exif:DateTimeOriginal"),
        # DateTime (ModifyDate) says when the file was last saved, not when the photo was taken.
        (["-ModifyDate=2024:01:01 09:00:00", "-GPSDateStamp=2023:07:04", "-GPSTimeStamp=16:04:00"],
         "exif:GPSDateStamp"),
    ],
)  # fmt: skip
def test_the_gps_time_comes_after_capture_dates_and_before_the_modification_time(exiftool, tmp_path, tags, source):
    assert read(tagged_jpeg(exiftool, tmp_path / "DSC_0003.jpg", *tags)).taken_at_source == source


@pytest.mark.parametrize(
    ("tag", "block"),
    [
        ("-IPTC:TimeCreated=11:04:00+02:00", "iptc"),  # a time of day without IPTC DateCreated
        ("-GPSTimeStamp=16:04:00", "exif"),  # a GPS time without GPSDateStamp
    ],
)
def test_a_time_of_day_without_its_date_is_not_a_date(exiftool, tmp_path, tag, block):
    meta = read(tagged_jpeg(exiftool, tmp_path / "scan.jpg", tag))
    assert meta.extra[block], f"the {block} block was read"
    assert (meta.taken_at_source, meta.taken_at) == (TakenFrom.FILE_MTIME, datetime(2020, 9, 13, 12, 26, 40))


# --------------------------------------------------------------------------------------
# A naive camera clock and the zone at the GPS position
# --------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("wall", "position", "instant", "zone", "offset", "abbreviation"),
    [
        ("2023:07:04 11:04:00", CHICAGO, utc(2023, 7, 4, 16, 4), "America/Chicago", "-05:00", "CDT"),
        ("2023:01:15 11:04:00", CHICAGO, utc(2023, 1, 15, 17, 4), "America/Chicago", "-06:00", "CST"),
        ("2023:01:15 11:04:00", ADELAIDE, utc(2023, 1, 15, 0, 34), "Australia/Adelaide", "+10:30", "ACDT"),
        ("2023:07:04 11:04:00", ADELAIDE, utc(2023, 7, 4, 1, 34), "Australia/Adelaide", "+09:30", "ACST"),
        ("2023:07:04 11:04:00", NEW_DELHI, utc(2023, 7, 4, 5, 34), "Asia/Kolkata", "+05:30", "IST"),
    ],
    ids=["chicago-july-cdt", "chicago-january-cst", "adelaide-summer", "adelaide-winter", "new-delhi"],
)
def test_a_naive_time_with_gps_is_read_in_the_zone_there(
    exiftool, folder, viewer_client, wall, position, instant, zone, offset, abbreviation
):
    path = tagged_jpeg(exiftool, folder / "IMG_0001.jpg", f"-DateTimeOriginal={wall}", gps=position)
    photo = import_one(path)
    assert photo.taken_at == instant
    assert (photo.taken_at_zone, photo.taken_at_zone_source, photo.taken_at_offset) == (zone, ZoneFrom.GPS, offset)
    assert photo.taken_at_source == "exif:DateTimeOriginal"
    assert photo.local_taken_at.strftime("%H:%M:%S") == "11:04:00"  # the camera's wall clock, kept
    assert photo.taken_at_zone_abbreviation == abbreviation
    assert f"11:04:00 {abbreviation}, {zone}" in taken_line(viewer_client, photo)


@pytest.mark.parametrize(
    ("wall", "instant", "offset"),
    [
        (datetime(2023, 11, 5, 1, 30), utc(2023, 11, 5, 6, 30), "-05:00"),  # 01:30 happens twice: the first (CDT)
        (datetime(2023, 3, 12, 2, 30), utc(2023, 3, 12, 8, 30), "-05:00"),  # 02:30 never happens: read as CST
    ],
)
def test_wall_times_at_a_daylight_saving_change_are_read_with_the_offset_before_it(wall, instant, offset):
    assert capture_instant(wall, "", "America/Chicago") == (instant, offset)


# --------------------------------------------------------------------------------------
# Stated offsets, floating times
# --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_stated_offset_wins_over_the_gps_zone(exiftool, folder, viewer_client):
    path = tagged_jpeg(
        exiftool, folder / "IMG_0002.jpg", "-DateTimeOriginal=2023:07:04 11:04:00", "-OffsetTimeOriginal=+02:00",
        gps=CHICAGO,
    )  # fmt: skip
    photo = import_one(path)
    assert photo.taken_at == utc(2023, 7, 4, 9, 4)
    assert (photo.taken_at_offset, photo.taken_at_zone_source, photo.taken_at_zone) == ("+02:00", ZoneFrom.OFFSET, "")
    line = taken_line(viewer_client, photo)
    assert "11:04:00 (UTC+02:00)" in line and "Chicago" not in line


@pytest.mark.django_db
def test_a_stated_offset_that_agrees_with_the_gps_zone_keeps_its_name(exiftool, folder, viewer_client):
    path = tagged_jpeg(
        exiftool, folder / "IMG_0003.jpg", "-DateTimeOriginal=2023:07:04 11:04:00", "-OffsetTimeOriginal=-05:00",
        gps=CHICAGO,
    )  # fmt: skip
    photo = import_one(path)
    assert photo.taken_at == utc(2023, 7, 4, 16, 4)
    assert (photo.taken_at_offset, photo.taken_at_zone_source, photo.taken_at_zone) == (
        "-05:00", ZoneFrom.OFFSET, "America/Chicago"
    )  # fmt: skip
    assert "11:04:00 CDT, America/Chicago" in taken_line(viewer_client, photo)


@pytest.mark.django_db
def test_without_gps_or_an_offset_the_time_stays_floating(exiftool, folder, viewer_client):
    photo = import_one(tagged_jpeg(exiftool, folder / "IMG_0004.jpg", "-DateTimeOriginal=2023:07:04 11:04:00"))
    assert photo.taken_at == utc(2023, 7, 4, 11, 4)  # the wall clock, stored as if UTC
    assert (photo.taken_at_offset, photo.taken_at_zone, photo.taken_at_zone_source) == ("", "", ZoneFrom.NONE)
    assert "11:04:00 <small>from exif:DateTimeOriginal</small>" in taken_line(viewer_client, photo)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("tags", "microsecond"),
    [
        (["-DateTimeOriginal=2023:07:04 11:04:00", "-SubSecTimeOriginal=25"], 250000),
        (["-XMP-exif:DateTimeOriginal=2023:07:04 11:04:00.75"], 750000),
    ],
    ids=["exif-subsectime", "xmp-fraction"],
)
def test_subseconds_are_kept_in_the_stored_time(exiftool, folder, tags, microsecond):
    photo = import_one(tagged_jpeg(exiftool, folder / "IMG_0005.jpg", *tags, gps=CHICAGO))
    assert photo.taken_at == utc(2023, 7, 4, 16, 4, 0, microsecond)


# --------------------------------------------------------------------------------------
# Reading it back
# --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_grid_gets_the_wall_clock_without_loading_the_zone(exiftool, folder, django_assert_num_queries):
    # A naive 23:30 in Chicago is the next day in UTC: the grid's date label must still say the 4th.
    import_one(tagged_jpeg(exiftool, folder / "IMG_0006.jpg", "-DateTimeOriginal=2023:07:04 23:30:00", gps=CHICAGO))
    photo = Photo.objects.only("id", "taken_at", "taken_at_offset").get()  # as gallery.browse loads the grid
    with django_assert_num_queries(0):
        assert photo.local_taken_at.date() == datetime(2023, 7, 4).date()


def test_a_zone_without_letters_shows_its_offset():
    photo = Photo(taken_at=utc(2023, 7, 4, 7, 4), taken_at_offset="+04:00", taken_at_zone="Asia/Dubai")
    assert photo.taken_at_zone_abbreviation == "UTC+04:00"  # tzdata spells it "+04"
    assert photo.local_taken_at.hour == 11


@pytest.mark.parametrize(
    "name",
    [
        "phone_jpeg__iphone6_hdr_gps.jpg",  # Madrid, CEST
        "phone_jpeg__iphone7_stub_gps.jpg",  # Sheffield, BST
        "phone_jpeg__samsung_sm_g930v_gps_orient6.jpg",  # San Francisco, PDT; 01:27 UTC the next day
    ],
)
def test_real_phone_times_read_in_the_zone_at_their_position_match_their_gps_clock(corpus, name):
    # These phones wrote a naive DateTimeOriginal and a GPS time: the zone at the position
    # must turn the first into the second (give or take the age of the fix).
    image_path = corpus / name
    with Image.open(image_path) as image:
        exif = image.getexif()
        gps = exif.get_ifd(0x8825)
        day, (hours, minutes, seconds) = gps[29], gps[7]
    meta = read(image_path)
    assert meta.taken_at_zone_source == ZoneFrom.GPS
    instant, _ = capture_instant(meta.taken_at, meta.taken_at_offset, meta.taken_at_zone)
    fix = datetime.strptime(day, "%Y:%m:%d").replace(tzinfo=timezone.utc) + timedelta(
        hours=float(hours), minutes=float(minutes), seconds=float(seconds)
    )
    assert abs(instant - fix) < timedelta(minutes=1)
