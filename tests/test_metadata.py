"""gallery.metadata: EXIF / IPTC / XMP / sidecars → PhotoMetadata, on real and hostile files.

Every value asserted for a corpus file was first read back with ``exiftool -json`` (or
``exiftool -use MWG`` for the precedence rules), so the tests encode what the file says.
No database: these are pure functions.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import struct
import time
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pillow_heif
import pillow_jxl  # noqa: F401  (registers the JPEG XL plugin, as the importer does)
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from gallery.metadata import (
    PhotoMetadata,
    XmpError,
    capture_instant,
    date_from_filename,
    exif_datetime,
    find_sidecars,
    parse_xmp,
    read_metadata,
    utc_offset,
)
from tests.conftest import CORPUS

pillow_heif.register_heif_opener()

# A sidecar as Lightroom, digiKam and Windows write them: flat dc:subject next to each
# application's hierarchical keywords, alternative-language title, and capture time and GPS.
# (Inline rather than under tests/data/, which .gitignore's "data/" currently hides.)
SIDECAR_XMP = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Shoebox test fixture">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:digiKam="http://www.digikam.org/ns/1.0/"
    xmlns:MicrosoftPhoto="http://ns.microsoft.com/photo/1.0/"
    xmp:Rating="4"
    exif:DateTimeOriginal="2023-07-04T21:15:30.25+02:00"
    exif:GPSLatitude="48,51.498N"
    exif:GPSLongitude="2,17.67E"
    photoshop:City="Paris">
   <dc:title>
    <rdf:Alt>
     <rdf:li xml:lang="fr">La tour Eiffel au crépuscule</rdf:li>
     <rdf:li xml:lang="x-default">Eiffel Tower at dusk</rdf:li>
    </rdf:Alt>
   </dc:title>
   <dc:description>
    <rdf:Alt>
     <rdf:li xml:lang="x-default">Seen from the Trocadéro</rdf:li>
    </rdf:Alt>
   </dc:description>
   <dc:subject>
    <rdf:Bag>
     <rdf:li>Paris</rdf:li>
     <rdf:li>dusk</rdf:li>
     <rdf:li>Eiffel Tower</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>Places|France|Paris</rdf:li>
     <rdf:li>Events|Holiday 2023</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
   <digiKam:TagsList>
    <rdf:Seq>
     <rdf:li>Places/France/Paris</rdf:li>
     <rdf:li>People/Alice</rdf:li>
     <rdf:li>Dusk</rdf:li>
     <rdf:li>_Digikam_Internal_Tags_/Scanned for Faces</rdf:li>
    </rdf:Seq>
   </digiKam:TagsList>
   <MicrosoftPhoto:LastKeywordXMP>
    <rdf:Bag>
     <rdf:li>Events/Holiday 2023</rdf:li>
     <rdf:li>Weather/Clear sky</rdf:li>
    </rdf:Bag>
   </MicrosoftPhoto:LastKeywordXMP>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
""".encode()
XMP_NAMESPACES = (
    'xmlns:x="adobe:ns:meta/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
    'xmlns:xmpNote="http://ns.adobe.com/xmp/note/"'
)


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def read(path, *, mtime: float | None = None, with_pillow: bool = True) -> PhotoMetadata:
    """read_metadata as the importer calls it: with Pillow's header-only image when it opens."""
    image = None
    if with_pillow:
        try:
            image = Image.open(path)
        except Exception:  # whatever Pillow refuses, the importer passes no image
            image = None
    try:
        return read_metadata(path, image, mtime=mtime)
    finally:
        if image is not None:
            image.close()


def xmp_packet(body: str, attributes: str = "") -> bytes:
    return (
        f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        f"<x:xmpmeta {XMP_NAMESPACES}><rdf:RDF>"
        f'<rdf:Description rdf:about="" {attributes}>{body}</rdf:Description>'
        f'</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def bag(prop: str, items) -> str:
    return f"<{prop}><rdf:Bag>{''.join(f'<rdf:li>{escape(i)}</rdf:li>' for i in items)}</rdf:Bag></{prop}>"


def alt(prop: str, text: str) -> str:
    return f'<{prop}><rdf:Alt><rdf:li xml:lang="x-default">{escape(text)}</rdf:li></rdf:Alt></{prop}>'


def jpeg(path, *, exif: Image.Exif | None = None, xmp: bytes | None = None, segments=()):
    """A small JPEG with Pillow-written EXIF / XMP plus raw APPn ``segments`` [(marker, payload)]."""
    buffer = io.BytesIO()
    options = {}
    if exif is not None:
        options["exif"] = exif
    if xmp is not None:
        options["xmp"] = xmp
    Image.new("RGB", (16, 12), (90, 120, 200)).save(buffer, "JPEG", **options)
    data = buffer.getvalue()
    extra = b"".join(bytes([0xFF, marker]) + struct.pack(">H", len(p) + 2) + p for marker, p in segments)
    with open(path, "wb") as fh:  # path may be bytes that are not UTF-8
        fh.write(data[:2] + extra + data[2:])
    return path


def iim(*datasets: tuple[int, str]) -> bytes:
    """IPTC-IIM record 2 datasets."""
    return b"".join(b"\x1c\x02" + bytes([n]) + struct.pack(">H", len(v.encode())) + v.encode() for n, v in datasets)


def photoshop_app13(iptc: bytes, digest: bytes | None = None) -> bytes:
    """A Photoshop APP13 payload holding the IPTC block and, optionally, the IPTC digest."""

    def resource(resource_id: int, data: bytes) -> bytes:
        padding = b"\x00" * (len(data) & 1)
        return b"8BIM" + struct.pack(">HHI", resource_id, 0, len(data)) + data + padding

    blocks = resource(0x0404, iptc) + (resource(0x0425, digest) if digest is not None else b"")
    return b"Photoshop 3.0\x00" + blocks


def exif_with(ifd0=None, exif_ifd=None, gps=None) -> Image.Exif:
    exif = Image.Exif()
    for tag, value in (ifd0 or {}).items():
        exif[tag] = value
    if exif_ifd:
        exif.get_ifd(0x8769).update(exif_ifd)
    if gps:
        exif.get_ifd(0x8825).update(gps)
    return exif


def corpus_files() -> list[str]:
    return sorted(p.name for p in CORPUS.iterdir() if p.is_file()) if CORPUS.is_dir() else []


# --------------------------------------------------------------------------------------
# Capture time
# --------------------------------------------------------------------------------------


def test_capture_time_keeps_the_stated_utc_offset_and_subseconds(tmp_path):
    path = jpeg(
        tmp_path / "offset.jpg",
        exif=exif_with(exif_ifd={0x9003: "2023:07:04 12:34:56", 0x9011: "+02:00", 0x9291: "123"}),
    )
    meta = read(path)
    assert meta.taken_at == datetime(2023, 7, 4, 12, 34, 56, 123000)
    assert meta.taken_at.tzinfo is None
    assert meta.taken_at_offset == "+02:00"
    assert meta.taken_at_source == "exif:DateTimeOriginal"


@pytest.mark.parametrize(
    ("name", "taken_at", "offset"),
    [
        # exiftool: DateTimeOriginal, SubSecTimeOriginal, OffsetTimeOriginal
        ("heic__iphone13promax.heic", datetime(2022, 2, 16, 12, 55, 41, 762000), "+01:00"),
        ("raw__iphone12pro_proraw_pruned.dng", datetime(2020, 12, 29, 14, 24, 45, 700000), "-05:00"),
        ("heic__sony_a7cii_rotated_pruned.HIF", datetime(2026, 4, 6, 15, 12, 57, 963000), "+08:00"),
    ],
)
def test_camera_files_state_their_utc_offset(corpus, name, taken_at, offset):
    meta = read(corpus / name)
    assert (meta.taken_at, meta.taken_at_offset, meta.taken_at_source) == (taken_at, offset, "exif:DateTimeOriginal")


def test_the_ricoh_without_ifd0_datetime_still_has_its_original_capture_time(corpus):
    # The manifest says "NO DateTime": IFD0 has no DateTime (ModifyDate), but exiftool shows
    # ExifIFD:DateTimeOriginal 2000:05:31 21:50:40, which is the capture time.
    meta = read(corpus / "camera_jpeg__ricoh_rdc5300_no_datetime.jpg", mtime=0.0)
    assert meta.taken_at == datetime(2000, 5, 31, 21, 50, 40)
    assert meta.taken_at_source == "exif:DateTimeOriginal"
    assert meta.taken_at_offset == ""


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("IMG_20230704_123456.jpg", datetime(2023, 7, 4, 12, 34, 56)),
        ("PXL_20230704_123456789.jpg", datetime(2023, 7, 4, 12, 34, 56, 789000)),
        ("2023-07-04 12.34.56.jpg", datetime(2023, 7, 4, 12, 34, 56)),
        ("Screenshot_2023-07-04-12-34-56.png", datetime(2023, 7, 4, 12, 34, 56)),
        ("Screenshot 2023-07-04 at 12.34.56.png", datetime(2023, 7, 4, 12, 34, 56)),
    ],
)
def test_a_file_without_embedded_dates_takes_the_date_in_its_name(tmp_path, name, expected):
    meta = read(jpeg(tmp_path / name), mtime=1_000_000_000.0)
    assert (meta.taken_at, meta.taken_at_source, meta.taken_at_offset) == (expected, "filename", "")


def test_a_date_only_file_name_gives_midnight_and_says_so(tmp_path):
    meta = read(jpeg(tmp_path / "IMG-20230704-WA0001.jpg"), mtime=0.0)
    assert meta.taken_at == datetime(2023, 7, 4)
    assert meta.extra["taken_at_date_only"] is True


@pytest.mark.parametrize("name", ["DSC_1234.jpg", "IMG_20231345_123456.jpg", "18991231_120000.jpg", "12345678.jpg"])
def test_names_without_a_real_date_fall_back_to_the_mtime_as_utc(tmp_path, name):
    meta = read(jpeg(tmp_path / name), mtime=1_688_474_096.5)  # 2023-07-04 12:34:56.5 UTC
    assert meta.taken_at == datetime(2023, 7, 4, 12, 34, 56, 500000)
    assert (meta.taken_at_source, meta.taken_at_offset) == ("file mtime", "+00:00")


def test_without_any_date_or_mtime_the_capture_time_stays_unknown(tmp_path):
    meta = read(jpeg(tmp_path / "plain.jpg"))
    assert meta.taken_at is None and meta.taken_at_source == ""


@pytest.mark.parametrize(
    "garbage", ["0000:00:00 00:00:00", "    :  :     :  :  ", "1850:01:01 00:00:00", "2017:08:21 15:08:70"]
)
def test_garbage_dates_are_warned_about_and_the_next_candidate_is_used(tmp_path, garbage):
    path = jpeg(
        tmp_path / "garbage.jpg",
        exif=exif_with(ifd0={0x0132: "2020:01:02 03:04:05"}, exif_ifd={0x9003: garbage}),
    )
    meta = read(path)
    assert (meta.taken_at, meta.taken_at_source) == (datetime(2020, 1, 2, 3, 4, 5), "exif:DateTime")
    assert any("DateTimeOriginal is not a usable date" in w for w in meta.extra["warnings"])


def test_digitized_time_outranks_xmp_and_the_modification_time(tmp_path):
    path = jpeg(
        tmp_path / "digitized.jpg",
        exif=exif_with(ifd0={0x0132: "2021:01:01 00:00:00"}, exif_ifd={0x9004: "2019:05:06 07:08:09"}),
        xmp=xmp_packet("", 'xmp:CreateDate="2018-01-01T00:00:00"'),
    )
    assert read(path).taken_at_source == "exif:DateTimeDigitized"


def test_xmp_dates_carry_their_zone(corpus):
    # exiftool: XMP-xmp:CreateDate 2017:03:13 23:03:09-07:00 (the EXIF block is corrupt)
    meta = read(corpus / "bad__invalid_exif.jpg")
    assert (meta.taken_at, meta.taken_at_offset) == (datetime(2017, 3, 13, 23, 3, 9), "-07:00")
    assert meta.taken_at_source == "xmp:CreateDate"


def test_iptc_date_created_is_used_when_nothing_better_exists(corpus):
    # exiftool: IPTC:DateCreated 2004:02:26, no TimeCreated, no EXIF or XMP dates
    meta = read(corpus / "xmp_iptc__iptc_keywords_caption_city.jpg")
    assert (meta.taken_at, meta.taken_at_source) == (datetime(2004, 2, 26), "iptc:DateCreated")
    assert meta.extra["taken_at_date_only"] is True


@pytest.mark.parametrize("with_pillow", [True, False], ids=["pillow", "exifread"])
def test_the_gps_clock_is_a_utc_date_with_its_fraction_of_a_second(tmp_path, with_pillow):
    gps = {29: "2008:10:23", 7: (IFDRational(14, 1), IFDRational(27, 1), IFDRational(181, 25))}
    meta = read(jpeg(tmp_path / "gps_time.jpg", exif=exif_with(gps=gps)), mtime=0.0, with_pillow=with_pillow)
    assert (meta.taken_at, meta.taken_at_offset) == (datetime(2008, 10, 23, 14, 27, 7, 240000), "+00:00")
    assert (meta.taken_at_source, meta.taken_at_zone_source) == ("exif:GPSDateStamp", "offset")


@pytest.mark.parametrize(
    "gps",
    [
        {29: "2008:10:23", 7: (25.0, 0.0, 0.0)},  # no 25 o'clock
        {29: "2008:10", 7: (14.0, 27.0, 7.0)},  # not a whole date
        {29: "2008:10:23", 7: (14.0, 27.0)},  # not h, m, s
        {29: "0000:00:00", 7: (0.0, 0.0, 0.0)},  # a receiver without a fix
    ],
)
def test_an_unusable_gps_clock_is_warned_about_and_not_used(tmp_path, gps):
    meta = read(jpeg(tmp_path / "gps_time.jpg", exif=exif_with(gps=gps)), mtime=0.0)
    assert meta.taken_at_source == "file mtime"
    assert any("GPSDateStamp is not a usable date" in w for w in meta.extra["warnings"])


def test_a_file_time_at_the_end_of_the_calendar_is_not_placed_in_a_zone(tmp_path):
    gps = {1: "N", 2: (35.0, 41.0, 0.0), 3: "E", 4: (139.0, 41.0, 0.0)}  # Tokyo: +09:00 would be year 10000
    meta = read(jpeg(tmp_path / "far_future.jpg", exif=exif_with(gps=gps)), mtime=253_402_300_799.0)
    assert (meta.taken_at, meta.taken_at_source) == (datetime(9999, 12, 31, 23, 59, 59), "file mtime")
    assert (meta.taken_at_zone, meta.taken_at_zone_source) == ("", "offset")
    assert capture_instant(meta.taken_at, meta.taken_at_offset, meta.taken_at_zone)[1] == "+00:00"


# --------------------------------------------------------------------------------------
# GPS
# --------------------------------------------------------------------------------------


def test_gps_coordinates_are_decimal_degrees(corpus):
    # exiftool -n: 43.4674483333333, 11.8851266666639
    meta = read(corpus / "gps__nikon_p6000_DSCN0010.jpg")
    assert meta.latitude == pytest.approx(43.46744833, abs=1e-7)
    assert meta.longitude == pytest.approx(11.88512667, abs=1e-7)


def test_west_longitudes_are_negative(corpus):
    # exiftool -n: Composite:GPSLatitude 54.9896666666667, GPSLongitude -1.91416666666667
    meta = read(corpus / "gps__fujifilm_s1pro_exiftool.jpg")
    assert meta.latitude == pytest.approx(54.98966667, abs=1e-7)
    assert meta.longitude == pytest.approx(-1.91416667, abs=1e-7)


def test_altitude_is_read_in_metres(corpus):
    meta = read(corpus / "heic__nikon_d5300_gps_xmp_small.heic")  # exiftool: GPSAltitude 97, above sea level
    assert (meta.latitude, meta.longitude, meta.altitude) == (
        pytest.approx(51.17828056),
        pytest.approx(-1.82663889),
        97.0,
    )


@pytest.mark.parametrize(
    "name",
    [
        "camera_jpeg__canon_eos_40d_thumb_empty_gpsifd.jpg",
        "camera_jpeg__canon_sx60_hdr_orient6.jpg",
        "xmp_iptc__nikon_d1x_reagan_iptc_xmp_icc.jpg",
        "heic__canon_eos_r5.HIF",
        "avif__olympus_epl8_icc_xmp.avif",
    ],
)
def test_an_empty_gps_block_is_no_location(corpus, name):
    meta = read(corpus / name)
    assert meta.latitude is None and meta.longitude is None
    assert not any("GPS" in w for w in meta.extra["warnings"])


def test_zero_denominators_in_gps_give_no_location_and_a_warning(tmp_path):
    gps = {1: "N", 2: (IFDRational(43, 0), IFDRational(28, 1), IFDRational(0, 1)), 3: "E", 4: (11.0, 53.0, 0.0)}
    meta = read(jpeg(tmp_path / "zero.jpg", exif=exif_with(gps=gps)))
    assert meta.latitude is None and meta.longitude is None
    assert "EXIF GPS position is incomplete or unreadable" in meta.extra["warnings"]


def test_out_of_range_and_null_island_positions_are_refused(tmp_path):
    far = {1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (10.0, 0.0, 0.0)}
    meta = read(jpeg(tmp_path / "far.jpg", exif=exif_with(gps=far)))
    assert meta.latitude is None and any("out of range" in w for w in meta.extra["warnings"])

    zero = {1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)}
    meta = read(jpeg(tmp_path / "zero.jpg", exif=exif_with(gps=zero)))
    assert meta.latitude is None and any("0, 0" in w for w in meta.extra["warnings"])


def test_below_sea_level_altitude_is_negative(tmp_path):
    gps = {1: "S", 2: (33.0, 52.0, 0.0), 3: "E", 4: (151.0, 12.0, 0.0), 5: b"\x01", 6: IFDRational(28, 1)}
    meta = read(jpeg(tmp_path / "dead_sea.jpg", exif=exif_with(gps=gps)))
    assert (meta.latitude, meta.longitude, meta.altitude) == (pytest.approx(-33.8666667), pytest.approx(151.2), -28.0)


def test_xmp_gps_is_used_when_exif_has_none(tmp_path):
    gps = 'exif:GPSLatitude="43,28.2N" exif:GPSLongitude="11,53.1W"'
    xmp = xmp_packet("", f'xmlns:exif="http://ns.adobe.com/exif/1.0/" {gps}')
    meta = read(jpeg(tmp_path / "xmp_gps.jpg", xmp=xmp))
    assert (meta.latitude, meta.longitude) == (pytest.approx(43.47), pytest.approx(-11.885))
    assert meta.extra["sources"]["location"] == "xmp"


# --------------------------------------------------------------------------------------
# Orientation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "orientation"),
    [
        ("orientation__landscape_1.jpg", 1),
        ("orientation__landscape_2.jpg", 2),
        ("orientation__landscape_3.jpg", 3),
        ("orientation__landscape_4.jpg", 4),
        ("orientation__landscape_6.jpg", 6),
        ("orientation__landscape_8.jpg", 8),
        ("orientation__webp_exif_orient6.webp", 6),
        ("orientation__png_xmp_orient3_rgba_icc.png", 3),
        ("camera_jpeg__nikon_d70_orient6_makernote.jpg", 6),
    ],
)
def test_orientation_is_read_from_exif_or_xmp(corpus, name, orientation):
    assert read(corpus / name).orientation == orientation


def test_png_orientation_comes_from_its_xmp(corpus):
    meta = read(corpus / "orientation__png_xmp_orient3_rgba_icc.png")
    assert meta.extra["sources"]["orientation"] == "xmp"


def test_heif_orientation_is_relative_to_the_pixels_pillow_heif_already_rotated(corpus):
    # exiftool: Orientation 6; pillow-heif applies it while decoding (size 3024x4032) and
    # rewrites the EXIF value to 1, so rotating again would turn the photo on its side.
    meta = read(corpus / "heic__iphone13promax.heic")
    assert meta.orientation == 1
    assert meta.extra["file_orientation"] == 6


def test_orientation_of_a_raw_file_read_without_pillow_is_the_files_own(corpus):
    assert read(corpus / "heic__iphone13promax.heic", with_pillow=False).orientation == 6


def test_an_invalid_orientation_is_1_with_a_warning(tmp_path):
    meta = read(jpeg(tmp_path / "nine.jpg", exif=exif_with(ifd0={0x0112: 9})))
    assert meta.orientation == 1
    assert any("Orientation 9" in w for w in meta.extra["warnings"])


# --------------------------------------------------------------------------------------
# Camera, lens and exposure
# --------------------------------------------------------------------------------------


def test_exposure_settings_of_the_canon_40d(corpus):
    # exiftool -n: ExposureTime 0.00625, FNumber 7.1, ISO 100, FocalLength 135
    meta = read(corpus / "camera_jpeg__canon_eos_40d_thumb_empty_gpsifd.jpg")
    assert (meta.camera_make, meta.camera_model) == ("Canon", "Canon EOS 40D")
    assert meta.exposure_time == pytest.approx(0.00625)
    assert meta.aperture == pytest.approx(7.1)
    assert meta.iso == 100
    assert meta.focal_length == pytest.approx(135)
    assert meta.extra["software"] == "GIMP 2.4.5"


def test_make_and_model_lose_trailing_nuls_and_padding(corpus):
    ixus = read(corpus / "camera_jpeg__canon_digital_ixus_2001.jpg")  # Model is "Canon DIGITAL IXUS\0"
    assert (ixus.camera_make, ixus.camera_model) == ("Canon", "Canon DIGITAL IXUS")
    ricoh = read(corpus / "camera_jpeg__ricoh_rdc5300_no_datetime.jpg")  # "RICOH      ", "RDC-5300       "
    assert (ricoh.camera_make, ricoh.camera_model) == ("RICOH", "RDC-5300")


def test_lens_model_is_read(corpus):
    meta = read(corpus / "camera_jpeg__sony_slt_a58_uppercase_ext.JPG")
    assert meta.lens == "70-300mm F4-5.6 SSM"  # exiftool: ExifIFD:LensModel


def test_apex_values_stand_in_for_missing_exposure_time(corpus):
    # The Ricoh has no ExposureTime; exiftool derives ShutterSpeed 1/91 from ShutterSpeedValue 6.5.
    meta = read(corpus / "camera_jpeg__ricoh_rdc5300_no_datetime.jpg")
    assert meta.exposure_time == pytest.approx(2**-6.5)


@pytest.mark.parametrize(
    ("name", "make", "model", "taken_at"),
    [
        ("raw__nikon_d70_nef_stub.nef", "NIKON CORPORATION", "NIKON D70", datetime(2004, 6, 9, 16, 2, 35)),
        ("raw__canon_cr2_stub.cr2", "Canon", "Canon EOS 350D DIGITAL", datetime(2005, 8, 3, 18, 59, 18)),
        ("raw__sony_a7iii_arw_stub.ARW", "SONY", "ILCE-7M3", datetime(2024, 9, 14, 13, 54, 44)),
        ("raw__canon_r6_pruned.CR3", "Canon", "Canon EOS R6", datetime(2021, 5, 12, 12, 21, 21, 920000)),
        ("raw__iphone12pro_proraw_pruned.dng", "Apple", "iPhone 12 Pro", datetime(2020, 12, 29, 14, 24, 45, 700000)),
    ],
)
def test_raw_files_are_read_without_pillow(corpus, name, make, model, taken_at):
    meta = read(corpus / name, with_pillow=False)
    assert (meta.camera_make, meta.camera_model, meta.taken_at) == (make, model, taken_at)
    assert meta.extra["exif"] is True


def test_the_cr3_reader_finds_lens_offset_and_exposure(corpus):
    # exiftool: LensModel RF70-200mm F2.8 L IS USM, OffsetTimeOriginal +02:00, ISO 100, 1/4 s, f/25
    meta = read(corpus / "raw__canon_r6_pruned.CR3", with_pillow=False)
    assert meta.lens == "RF70-200mm F2.8 L IS USM"
    assert meta.taken_at_offset == "+02:00"
    assert (meta.iso, meta.exposure_time, meta.aperture, meta.focal_length) == (100, 0.25, 25.0, 200.0)


def test_a_raw_file_without_pillow_still_gets_gps_and_offset(corpus):
    meta = read(corpus / "raw__iphone12pro_proraw_pruned.dng", with_pillow=False)
    assert meta.taken_at_offset == "-05:00"
    assert (meta.latitude, meta.longitude) == (pytest.approx(34.0596083), pytest.approx(-84.681725))
    assert meta.orientation == 6


# --------------------------------------------------------------------------------------
# Captions, titles, keywords, rating
# --------------------------------------------------------------------------------------


def test_iptc_keywords_caption_title_and_city(corpus):
    # exiftool: Keywords ExifTool, Test, IPTC; Caption-Abstract "A witty caption";
    # ObjectName "Test IPTC picture"; City Kingston
    meta = read(corpus / "xmp_iptc__iptc_keywords_caption_city.jpg")
    assert meta.keywords == ["ExifTool", "Test", "IPTC"]
    assert meta.description == "A witty caption"
    assert meta.title == "Test IPTC picture"
    assert meta.extra["city"] == "Kingston"
    assert meta.extra["iptc"] is True


def test_xmp_dc_subject_gives_keywords(corpus):
    meta = read(corpus / "xmp_iptc__nikon_d1x_reagan_iptc_xmp_icc.jpg")
    assert meta.keywords == [
        "ronald reagan", "reagan", "cvn 76", "cvn-76", "straights magellan",
        "magellan", "carrier", "nimitz-class", "ship", "underway",
    ]  # exiftool: XMP-dc:Subject (IPTC:Keywords holds the same ten)
    assert meta.title == "040621-N-6536T-062"


def test_a_utf16_xmp_packet_is_read(corpus):
    # exiftool: XMP-dc:Subject ExifTool, Test, XMP; XMP-dc:Title "Test IPTC picture";
    # XMP-dc:Description "UTF-16 (big-endian) encoded XMP"
    path = corpus / "xmp_iptc__xmp_utf16_subject_icc.jpg"
    meta = read(path)
    assert meta.keywords == ["ExifTool", "Test", "XMP"]
    assert meta.title == "Test IPTC picture"
    with Image.open(path) as image:
        packet = image.info["xmp"]
    assert packet.startswith(b"\x00<")  # really UTF-16
    assert parse_xmp(packet)["description"] == "UTF-16 (big-endian) encoded XMP"


def test_conflicting_blocks_follow_the_metadata_working_group(corpus):
    # The MWG test file labels each value RIGHT or WRONG; `exiftool -use MWG` agrees:
    # description from EXIF, keywords / city / copyright from XMP (no IPTC digest), creator from EXIF.
    meta = read(corpus / "xmp_iptc__mwg_conflicting_exif_iptc_xmp.jpg")
    assert meta.description == "RIGHT-EXIF-Description"
    assert meta.keywords == ["RIGHT1of2-XMP-Keywords", "RIGHT2of2-XMP-Keywords"]
    assert meta.extra["city"] == "RIGHT-XMP-City"
    assert meta.extra["copyright"] == "RIGHT-XMP-Copyright"
    assert meta.extra["artist"] == "RIGHT1of2-EXIF-Creator; RIGHT2of2-EXIF-Creator"
    assert meta.rating == 3
    assert meta.orientation == 6
    assert meta.taken_at == datetime(2001, 1, 1, 1, 11, 11, 111000)  # MWG:DateTimeOriginal ...11.111
    assert not any("WRONG" in str(v) for v in meta.extra.values())


def test_xmp_outranks_iptc_unless_the_iptc_digest_shows_a_later_edit(tmp_path):
    iptc = iim((25, "edited-in-iptc"), (120, "IPTC caption"))
    xmp = xmp_packet(bag("dc:subject", ["from-xmp"]) + alt("dc:description", "XMP caption"))

    in_sync = jpeg(tmp_path / "sync.jpg", xmp=xmp, segments=[(0xED, photoshop_app13(iptc, hashlib.md5(iptc).digest()))])
    meta = read(in_sync)
    assert (meta.keywords, meta.description) == (["from-xmp"], "XMP caption")

    edited = jpeg(tmp_path / "edited.jpg", xmp=xmp, segments=[(0xED, photoshop_app13(iptc, b"\x00" * 16))])
    meta = read(edited)
    assert (meta.keywords, meta.description) == (["edited-in-iptc"], "IPTC caption")


def test_camera_boilerplate_captions_are_ignored(tmp_path):
    path = jpeg(tmp_path / "olympus.jpg", exif=exif_with(ifd0={0x010E: "OLYMPUS DIGITAL CAMERA         "}))
    assert read(path).description == ""
    blank = exif_with(ifd0={0x010E: " " * 31})
    path = jpeg(tmp_path / "blank.jpg", exif=blank, xmp=xmp_packet(alt("dc:description", "Real words")))
    assert read(path).description == "Real words"


def test_gimps_x_default_placeholder_is_not_a_title(corpus):
    # exiftool: XMP-dc:Title "x-default" (GIMP bug); the EXIF ImageDescription is the caption
    meta = read(corpus / "progressive__jpeg_large_metadata.jpg")
    assert meta.title == ""
    assert meta.description.startswith("040621-N-6536T-062\nUSS Ronald Reagan (CVN 76)")


def test_a_nonstandard_xmp_header_is_still_read(corpus):
    # The APP1 starts "XMP\0://ns.adobe.com/xap/1.0/"; exiftool reads aux:Lens and photoshop:DateCreated
    meta = read(corpus / "bundled_photo__flower.jpg")
    assert meta.lens == "EF85mm f/1.8 USM"
    assert (meta.taken_at, meta.taken_at_source) == (datetime(2011, 8, 15, 18, 24, 59), "xmp:DateCreated")


def test_png_raw_profile_iptc_and_itxt_xmp_are_read(corpus):
    # exiftool: XMP-dc:Title "this is the title", IPTC:City Paris, IPTC:ObjectName "ovni"
    meta = read(corpus / "png__nikon_d70_exif_icc_xmp.png")
    assert meta.title == "this is the title"
    assert meta.extra["city"] == "Paris"
    assert meta.camera_model == "NIKON D70"


def test_iptc_in_a_tiff_based_raw_is_read(corpus):
    meta = read(corpus / "raw__nikon_d70_nef_stub.nef")  # exiftool: IPTC Caption-Abstract, City Kingston
    assert meta.description == "A caption"
    assert meta.extra["city"] == "Kingston"


def test_extended_xmp_segments_are_recognised(corpus):
    meta = read(corpus / "xmp_iptc__extended_xmp_multi_segment.jpg")  # exiftool: XMP-pdf:Title from the extension
    assert meta.extra["extended_xmp"] is True
    assert meta.extra["warnings"] == []


def test_keywords_in_an_extended_xmp_extension_are_merged(tmp_path):
    extension = xmp_packet(bag("dc:subject", ["from the extension"]))
    guid = hashlib.md5(extension).hexdigest().upper().encode()
    main = xmp_packet(f"<xmpNote:HasExtendedXMP>{guid.decode()}</xmpNote:HasExtendedXMP>" + alt("dc:title", "Main"))
    header = b"http://ns.adobe.com/xmp/extension/\x00" + guid
    half = len(extension) // 2
    chunks = [
        (0xE1, header + struct.pack(">II", len(extension), half) + extension[half:]),  # out of order on purpose
        (0xE1, header + struct.pack(">II", len(extension), 0) + extension[:half]),
    ]
    meta = read(jpeg(tmp_path / "extended.jpg", xmp=main, segments=chunks))
    assert meta.title == "Main"
    assert meta.keywords == ["from the extension"]


def test_rating_comes_from_xmp_then_exif(tmp_path):
    assert read(jpeg(tmp_path / "exif.jpg", exif=exif_with(ifd0={0x4746: 2}))).rating == 2
    both = jpeg(tmp_path / "both.jpg", exif=exif_with(ifd0={0x4746: 2}), xmp=xmp_packet("", 'xmp:Rating="-1"'))
    assert read(both).rating == -1
    bad = read(jpeg(tmp_path / "bad.jpg", xmp=xmp_packet("", 'xmp:Rating="7"')))
    assert bad.rating is None and any("Rating" in w for w in bad.extra["warnings"])


# --------------------------------------------------------------------------------------
# Sidecars
# --------------------------------------------------------------------------------------


@pytest.fixture
def photo_with_xmp(tmp_path) -> Path:
    """A JPEG whose embedded metadata the owner later edited in a sidecar."""
    xmp = xmp_packet(
        bag("dc:subject", ["holiday", "PARIS"]) + alt("dc:title", "IMG_0001") + alt("dc:description", "Camera caption"),
        'xmp:Rating="1"',
    )
    exif = exif_with(ifd0={0x010F: "Canon", 0x0110: "Canon EOS R6"}, exif_ifd={0x9003: "2023:07:04 21:15:30"})
    return jpeg(tmp_path / "IMG_0001.jpg", exif=exif, xmp=xmp)


@pytest.mark.parametrize("sidecar_name", ["IMG_0001.jpg.xmp", "IMG_0001.xmp", "IMG_0001.jpg.XMP", "IMG_0001.XMP"])
def test_a_sidecar_wins_for_title_caption_and_rating_and_its_keywords_are_merged(photo_with_xmp, sidecar_name):
    (photo_with_xmp.parent / sidecar_name).write_bytes(SIDECAR_XMP)
    meta = read(photo_with_xmp)
    assert meta.title == "Eiffel Tower at dusk"  # x-default, although the French item comes first
    assert meta.description == "Seen from the Trocadéro"
    assert meta.rating == 4
    assert meta.keywords == [
        "Paris", "dusk", "Eiffel Tower",  # dc:subject
        "Places|France|Paris", "Events|Holiday 2023",  # lr:hierarchicalSubject
        "People|Alice",  # digiKam:TagsList, "/" → "|", "Dusk" deduplicated, internal tags dropped
        "Weather|Clear sky",  # MicrosoftPhoto:LastKeywordXMP
        "holiday",  # embedded; "PARIS" is a case-insensitive duplicate
    ]
    assert meta.extra["sidecars"] == [sidecar_name]
    assert meta.extra["sources"]["title"] == "sidecar"


def test_a_sidecar_only_fills_gaps_in_camera_data_and_capture_time(photo_with_xmp):
    (photo_with_xmp.parent / "IMG_0001.jpg.xmp").write_bytes(SIDECAR_XMP)
    meta = read(photo_with_xmp)
    assert meta.camera_model == "Canon EOS R6"
    assert (meta.taken_at, meta.taken_at_source) == (datetime(2023, 7, 4, 21, 15, 30), "exif:DateTimeOriginal")
    # Only the sidecar has GPS.
    assert (meta.latitude, meta.longitude) == (pytest.approx(48.8583), pytest.approx(2.2945))
    assert meta.extra["sources"]["location"] == "sidecar"


def test_a_sidecar_date_is_used_for_a_file_without_one(tmp_path):
    photo = jpeg(tmp_path / "scan.jpg")
    (tmp_path / "scan.jpg.xmp").write_bytes(SIDECAR_XMP)
    meta = read(photo, mtime=0.0)
    assert (meta.taken_at, meta.taken_at_offset) == (datetime(2023, 7, 4, 21, 15, 30, 250000), "+02:00")
    assert meta.taken_at_source == "sidecar:DateTimeOriginal"


def test_find_sidecars_lists_the_darktable_name_before_the_lightroom_name(tmp_path):
    photo = jpeg(tmp_path / "IMG_0001.CR2")
    (tmp_path / "IMG_0001.xmp").write_bytes(SIDECAR_XMP)
    (tmp_path / "IMG_0001.CR2.xmp").write_bytes(SIDECAR_XMP)
    assert find_sidecars(photo) == [tmp_path / "IMG_0001.CR2.xmp", tmp_path / "IMG_0001.xmp"]
    assert find_sidecars(str(photo)) == [str(tmp_path / "IMG_0001.CR2.xmp"), str(tmp_path / "IMG_0001.xmp")]
    assert find_sidecars(tmp_path / "IMG_0001.CR2.xmp") == []
    assert find_sidecars(tmp_path / "nothing.jpg") == []


def test_a_broken_sidecar_is_a_warning_not_a_failure(photo_with_xmp):
    (photo_with_xmp.parent / "IMG_0001.jpg.xmp").write_text("<x:xmpmeta><rdf:RDF>not closed")
    meta = read(photo_with_xmp)
    assert meta.title == "IMG_0001"
    assert any(w.startswith("sidecar IMG_0001.jpg.xmp is unusable") for w in meta.extra["warnings"])


def test_the_corpus_sidecar_parses(corpus):
    # exiftool: Make Canon, Model Canon DIGITAL IXUS 40, DateTimeOriginal 2005:06:09 20:09:27+02:00,
    # Subject [test1, "&-&amp;-&"], Rating 1, FNumber 2.8, ExposureTime 0.4, FocalLength 5.8
    fields = parse_xmp((corpus / "sidecar__xmp_sidecar.xmp").read_bytes())
    assert (fields["camera_make"], fields["camera_model"]) == ("Canon", "Canon DIGITAL IXUS 40")
    assert (fields["taken_at"], fields["taken_at_offset"]) == (datetime(2005, 6, 9, 20, 9, 27), "+02:00")
    assert fields["keywords"] == ["test1", "&-&amp;-&"]
    assert fields["rating"] == 1
    assert (fields["aperture"], fields["exposure_time"], fields["focal_length"]) == (2.8, 0.4, 5.8)
    assert fields["extra"]["copyright"] == "© Copyright Phil Harvey"
    assert PhotoMetadata(**fields).camera_make == "Canon"


# --------------------------------------------------------------------------------------
# Hostile and broken input
# --------------------------------------------------------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n' for i in range(1, 10))
    + "]>\n"
    + f"<x:xmpmeta {XMP_NAMESPACES}><rdf:RDF><rdf:Description>"
    + "<dc:title>&lol9;</dc:title></rdf:Description></rdf:RDF></x:xmpmeta>"
).encode()


def test_an_xmp_entity_expansion_bomb_is_refused_without_hanging(tmp_path):
    started = time.monotonic()
    with pytest.raises(XmpError, match="DTD"):
        parse_xmp(BILLION_LAUGHS)
    with pytest.raises(XmpError):
        parse_xmp(BILLION_LAUGHS.decode().encode("utf-16"))

    photo = jpeg(tmp_path / "bomb.jpg", xmp=BILLION_LAUGHS)
    (tmp_path / "bomb.jpg.xmp").write_bytes(BILLION_LAUGHS)
    meta = read(photo)
    assert time.monotonic() - started < 2
    assert meta.title == ""
    assert len([w for w in meta.extra["warnings"] if "DTD" in w]) == 2  # embedded and sidecar


def test_an_oversized_xmp_packet_is_refused(tmp_path):
    huge = xmp_packet(alt("dc:title", "x" * (9 * 1024 * 1024)))
    with pytest.raises(XmpError, match="limit"):
        parse_xmp(huge)


def test_a_corrupt_exif_block_is_a_warning(corpus):
    meta = read(corpus / "bad__invalid_exif.jpg")
    assert any(w.startswith("EXIF block is corrupt") for w in meta.extra["warnings"])
    assert meta.extra["exif"] is False and meta.extra["xmp"] is True


def test_a_file_cut_inside_its_exif_is_read_as_far_as_it_goes(corpus):
    meta = read(corpus / "bad__truncated_in_exif.jpg")  # Pillow cannot open it; exifread reads IFD0
    assert (meta.camera_make, meta.camera_model) == ("NIKON", "COOLPIX P6000")


def test_a_missing_file_raises_oserror(tmp_path):
    with pytest.raises(OSError):
        read_metadata(tmp_path / "gone.jpg")


def test_bytes_paths_with_non_utf8_names_work(tmp_path, corpus):
    directory = os.fsencode(tmp_path)
    path = os.path.join(directory, b"caf\xe9 IMG_20230704_123456.jpg")
    with open(path, "wb") as fh:
        fh.write((corpus / "gps__nikon_p6000_DSCN0010.jpg").read_bytes())
    with open(path + b".xmp", "wb") as fh:
        fh.write(SIDECAR_XMP)

    assert find_sidecars(path) == [path + b".xmp"]
    meta = read(path)
    assert meta.camera_model == "COOLPIX P6000"
    assert meta.title == "Eiffel Tower at dusk"
    assert meta.extra["sidecars"] == ["café IMG_20230704_123456.jpg.xmp"]
    json.dumps(meta.extra, allow_nan=False)

    no_exif = os.path.join(directory, b"\xff\xfe IMG_20230704_123456.jpg")
    jpeg(no_exif)
    assert read(no_exif).taken_at_source == "filename"


def test_metadata_is_read_without_decoding_pixels(corpus):
    for name in ("png__exif_chunk.png", "gps__nikon_p6000_DSCN0010.jpg", "tiff__multipage_3_photos_lzw.tiff"):
        with Image.open(corpus / name) as image:
            tile = list(image.tile)
            read_metadata(corpus / name, image)
            assert image.tile == tile, f"{name} was decoded"


def test_png_exif_after_the_image_data_is_found(corpus):
    meta = read(corpus / "png__exif_chunk.png")  # eXIf comes after IDAT; exiftool: IFD0 Orientation 1
    assert meta.extra["exif"] is True
    assert meta.extra["warnings"] == []


@pytest.mark.parametrize("name", corpus_files())
def test_every_corpus_file_reads_without_raising_and_with_json_safe_extras(corpus, name):
    stat = os.stat(corpus / name)
    for with_pillow in (True, False):
        meta = read(corpus / name, mtime=stat.st_mtime, with_pillow=with_pillow)
        assert meta.taken_at is not None  # at worst the mtime
        json.dumps(meta.extra, allow_nan=False)
        assert isinstance(meta.extra["warnings"], list)
        assert 1 <= meta.orientation <= 8
        assert meta.latitude is None or -90 <= meta.latitude <= 90
        assert meta.longitude is None or -180 <= meta.longitude <= 180
        for number in (meta.focal_length, meta.aperture, meta.exposure_time, meta.altitude):
            assert number is None or math.isfinite(number)
        for text in [meta.camera_make, meta.camera_model, meta.lens, meta.title, meta.description, *meta.keywords]:
            assert "\x00" not in text and text == text.strip()


# --------------------------------------------------------------------------------------
# Parsers under garbage (hypothesis)
# --------------------------------------------------------------------------------------

fast = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(st.binary(max_size=4096))
def test_parse_xmp_either_parses_or_raises_xmp_error(data):
    try:
        fields = parse_xmp(data)
    except XmpError:
        return  # refusing is a valid answer; any other exception is not
    json.dumps(PhotoMetadata(**fields).extra, allow_nan=False)


@fast
@given(st.text(max_size=300))
def test_parse_xmp_survives_garbage_inside_a_real_envelope(text):
    packets = (
        xmp_packet(text),
        xmp_packet(alt("dc:title", text) + bag("dc:subject", [text])),
        xmp_packet("", f'xmp:Rating="{escape(text, {chr(34): "&quot;"})}"'),
    )
    for packet in packets:
        try:
            fields = parse_xmp(packet)
        except XmpError:
            continue  # refusing is a valid answer; any other exception is not
        assert fields.get("rating") in (None, -1, 0, 1, 2, 3, 4, 5)


@fast
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20), max_size=12))
def test_xmp_keywords_round_trip_deduplicated_in_order(keywords):
    parsed = parse_xmp(xmp_packet(bag("dc:subject", keywords))).get("keywords", [])
    expected, seen = [], set()
    for keyword in keywords:
        keyword = "|".join(p.strip() for p in keyword.split("|") if p.strip())
        if keyword and keyword.casefold() not in seen:
            seen.add(keyword.casefold())
            expected.append(keyword)
    assert parsed == expected


@fast
@given(st.one_of(st.text(max_size=40), st.binary(max_size=40), st.none()))
def test_exif_datetime_returns_a_real_date_or_none(value):
    parsed = exif_datetime(value)
    if parsed is not None:
        when, offset, date_only = parsed
        assert 1900 <= when.year <= 2100 and when.tzinfo is None
        assert offset == "" or (len(offset) == 6 and offset[0] in "+-")


@fast
@given(st.text(max_size=60))
def test_date_from_filename_returns_a_real_date_or_none(name):
    found = date_from_filename(name)
    assert found is None or 1900 <= found[0].year <= 2100


def test_exif_datetime_formats():
    assert exif_datetime("2008:05:30 15:56:01") == (datetime(2008, 5, 30, 15, 56, 1), "", False)
    assert exif_datetime("2008:05:30 15:56:01\x00\x00", "5") == (datetime(2008, 5, 30, 15, 56, 1, 500000), "", False)
    assert exif_datetime("2016-03-23T13:26:36Z") == (datetime(2016, 3, 23, 13, 26, 36), "+00:00", False)
    assert exif_datetime("1993:01:01 03:11:11.311+01:00") == (datetime(1993, 1, 1, 3, 11, 11, 311000), "+01:00", False)
    assert exif_datetime("2004-06-21") == (datetime(2004, 6, 21), "", True)
    assert exif_datetime("0000:00:00 00:00:00") is None
    assert exif_datetime("    :  :     :  :  ") is None
    assert exif_datetime("2101:01:01 00:00:00") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("+02:00", "+02:00"), ("+0530", "+05:30"), ("-5", "-05:00"), ("Z", "+00:00"), ("   :  ", ""), ("+15:00", "")],
)
def test_utc_offsets_are_normalised(text, expected):
    assert utc_offset(text) == expected
