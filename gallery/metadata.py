"""EXIF, IPTC-IIM and XMP (embedded and in sidecars) turned into one plain ``PhotoMetadata``.

Pure functions, no Django and no subprocesses. ``read_metadata()`` is called once per
imported file, so it reads only metadata: it never decodes pixels, and when Pillow has
already opened the file it works from the header Pillow parsed.

Where the blocks disagree, the Metadata Working Group rules (Guidelines for Handling
Image Metadata 2.0, as implemented by ``exiftool -use MWG``) decide:

* description: EXIF ImageDescription, then XMP dc:description, then IPTC Caption-Abstract;
* keywords, title and location: XMP, then IPTC;
* in both, IPTC moves ahead of XMP when the Photoshop IPTC digest says the IPTC block was
  edited after the XMP was written (a tool that knows no XMP changed it).

Blank and camera-boilerplate descriptions ("OLYMPUS DIGITAL CAMERA") count as absent.
Keyword vocabularies other than the dc:subject / IPTC Keywords pair (Lightroom's
hierarchicalSubject, digiKam's TagsList, Windows' keywords) are added to the result, not
reconciled. An XMP sidecar holds the owner's edits: its keywords come first, and its title,
description and rating win; for everything else it only fills gaps.

Capture time, best first: EXIF DateTimeOriginal, EXIF DateTimeDigitized, XMP
exif:DateTimeOriginal, photoshop:DateCreated, exif:DateTimeDigitized, xmp:CreateDate, IPTC
DateCreated (never TimeCreated alone), the same XMP properties in a sidecar, the EXIF GPS
time (GPSDateStamp + GPSTimeStamp, UTC), EXIF DateTime (the last modification), a date in
the file name, then the file's mtime. Sub-seconds (SubSecTime*, XMP fractions, GPS seconds)
are kept. Unusable values are recorded in ``extra["warnings"]`` and the next candidate is
used. The time is then placed in a time zone (``_place_in_time_zone``): a stated offset
wins; otherwise the zone at the GPS position, looked up offline with tzfpy; otherwise it
stays floating. ``capture_instant()`` turns the result into the true instant.

Robustness contract: a damaged or hostile block becomes a warning in ``extra["warnings"]``;
``read_metadata`` raises only ``OSError`` and only when the file itself cannot be read.
"""

from __future__ import annotations

import codecs
import hashlib
import math
import os
import re
import stat
import struct
import zlib
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, NamedTuple
from xml.etree.ElementTree import Element, ParseError
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import exifread
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as _safe_fromstring
from PIL import ExifTags, Image, IptcImagePlugin

from gallery import exif_directories


class TakenFrom:
    """Where a capture time came from when the file itself states none (``taken_at_source``).

    Dates read from the file are named by their tag (``exif:DateTimeOriginal``,
    ``xmp:DateCreated`` …); these are the fall-backs, weakest last.
    """

    GPS_TIME = "exif:GPSDateStamp"  # GPSDateStamp + GPSTimeStamp: the satellite clock, UTC
    FILENAME = "filename"  # IMG_20230704_…, 2023-07-04 12.00.00.jpg …
    FILE_MTIME = "file mtime"  # the file's modification time: a guess, not a capture time

    @classmethod
    def is_capture_time(cls, source: str) -> bool:
        """Whether ``source`` says when the photo was taken (anything but the file's mtime)."""
        return bool(source) and source != cls.FILE_MTIME


class ZoneFrom:
    """How the time zone of a capture time is known (``taken_at_zone_source``)."""

    OFFSET = "offset"  # the file stated the offset with the time (or the time is a UTC clock)
    GPS = "gps"  # the time zone at the photo's GPS position (``taken_at_zone``)
    NONE = ""  # floating: the camera's wall clock, zone unknown


# Times read on a UTC clock: their "+00:00" says how to read the clock, not where the
# photo was taken, so a GPS position may still say which zone to show them in.
_UTC_CLOCKS = (TakenFrom.GPS_TIME, TakenFrom.FILE_MTIME)


@dataclass
class PhotoMetadata:
    """What Shoebox keeps from a file's metadata. Empty string / None means "not stated".

    ``extra`` is JSON-safe (no NaN, NUL or lone surrogates, so Postgres jsonb takes it):
    ``exif`` / ``iptc`` / ``xmp`` (bool: block found), ``warnings`` (list of str), ``sources``
    ({field: "exif" | "xmp" | "iptc" | "sidecar"}, keywords as a list), and when stated
    ``software``, ``artist``, ``copyright``, ``city``, ``sublocation``, ``state``, ``country``,
    ``sidecars`` (names), ``extended_xmp``, ``taken_at_date_only``, ``file_orientation``
    (HEIF: the orientation pillow-heif already applied to the pixels) and ``face_regions``
    (named face regions other tools wrote: see ``_face_regions``).
    """

    taken_at: datetime | None = None  # naive wall-clock time as the camera recorded it (UTC for GPS and mtime)
    taken_at_offset: str = ""  # "+02:00" as the file states it; "+00:00" for GPS time and the mtime fallback (UTC)
    taken_at_source: str = ""  # "exif:DateTimeOriginal", "xmp:DateCreated", TakenFrom.FILENAME, TakenFrom.FILE_MTIME …
    taken_at_zone: str = ""  # IANA name at the GPS position ("America/Chicago") when it applies
    taken_at_zone_source: str = ZoneFrom.NONE  # a ZoneFrom: how the offset of taken_at is known
    camera_make: str = ""
    camera_model: str = ""
    lens: str = ""
    focal_length: float | None = None  # mm
    aperture: float | None = None  # f-number
    exposure_time: float | None = None  # seconds
    iso: int | None = None
    orientation: int = 1  # EXIF 1..8, relative to the pixels Pillow decodes (see _pillow_orientation_note)
    latitude: float | None = None  # decimal degrees, south negative
    longitude: float | None = None  # decimal degrees, west negative
    altitude: float | None = None  # metres, below sea level negative
    title: str = ""
    description: str = ""
    keywords: list[str] = field(default_factory=list)  # hierarchical keywords as "A|B|C"
    rating: int | None = None  # -1 (rejected) .. 5
    extra: dict = field(default_factory=dict)  # JSON-safe: software, artist, sources, warnings, ...


class XmpError(ValueError):
    """An XMP packet that is malformed, too large or refused as hostile."""


# Limits for hostile input.
MAX_XMP_BYTES = 8 * 1024 * 1024  # one packet; a JPEG main packet is < 64 KiB, sidecars a few hundred KiB
XMP_SCAN_BYTES = 256 * 1024  # how far into a file Pillow cannot open we look for an XMP packet
_MAX_PNG_TEXT = 16 * 1024 * 1024  # decompressed size of one PNG text chunk
_MAX_PNG_CHUNKS = 100_000  # a 100 MB PNG written in 8 KiB IDAT chunks has 12 800
_PNG_METADATA_KEYWORDS = (
    b"XML:com.adobe.xmp",
    b"Raw profile type exif",
    b"Raw profile type iptc",
    b"Raw profile type xmp",
)

_YEAR_RANGE = range(1900, 2101)

# Namespaces of the XMP properties we read (keyed by URI, so any prefix works).
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_NS_DC = "http://purl.org/dc/elements/1.1/"
_NS_XMP = "http://ns.adobe.com/xap/1.0/"
_NS_EXIF = "http://ns.adobe.com/exif/1.0/"
_NS_EXIF_EX = "http://cipa.jp/exif/1.0/"
_NS_AUX = "http://ns.adobe.com/exif/1.0/aux/"
_NS_TIFF = "http://ns.adobe.com/tiff/1.0/"
_NS_PHOTOSHOP = "http://ns.adobe.com/photoshop/1.0/"
_NS_IPTC_CORE = "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"
_NS_LIGHTROOM = "http://ns.adobe.com/lightroom/1.0/"
_NS_DIGIKAM = "http://www.digikam.org/ns/1.0/"
_NS_MS_PHOTO = "http://ns.microsoft.com/photo/1.0"
_NS_XMP_NOTE = "http://ns.adobe.com/xmp/note/"
_NS_MWG_RS = "http://www.metadataworkinggroup.com/schemas/regions/"
_NS_MP_12 = "http://ns.microsoft.com/photo/1.2/"  # Microsoft Photo regions (MP:RegionInfo)
# Namespace URIs as some writers misspell them (Windows adds a slash), as exiftool accepts them.
_NS_ALIASES = {"http://ns.microsoft.com/photo/1.0/": _NS_MS_PHOTO}

# JPEG APP1 headers.
_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_EXTENSION_HEADER = b"http://ns.adobe.com/xmp/extension/\x00"

# EXIF tag ids (TIFF/EXIF 2.32).
_MAKE, _MODEL, _ORIENTATION, _SOFTWARE, _DATETIME = 0x010F, 0x0110, 0x0112, 0x0131, 0x0132
_IMAGE_DESCRIPTION, _ARTIST, _COPYRIGHT, _RATING = 0x010E, 0x013B, 0x8298, 0x4746
_XP_TITLE, _XP_KEYWORDS = 0x9C9B, 0x9C9E
_EXPOSURE_TIME, _FNUMBER, _ISO = 0x829A, 0x829D, 0x8827
_RECOMMENDED_EXPOSURE_INDEX, _ISO_SPEED = 0x8832, 0x8833
_DATETIME_ORIGINAL, _DATETIME_DIGITIZED = 0x9003, 0x9004
_OFFSET_TIME, _OFFSET_TIME_ORIGINAL, _OFFSET_TIME_DIGITIZED = 0x9010, 0x9011, 0x9012
_SHUTTER_SPEED_VALUE, _APERTURE_VALUE, _FOCAL_LENGTH = 0x9201, 0x9202, 0x920A
_SUBSEC_TIME, _SUBSEC_TIME_ORIGINAL, _SUBSEC_TIME_DIGITIZED = 0x9290, 0x9291, 0x9292
_LENS_MODEL = 0xA434
# Every tag _exif_facts() reads from IFD0 or the EXIF directory. Copying only these from
# Pillow's lazily decoded IFD0 is faster and skips malformed tags we have no use for.
_TAGS_READ = (
    _MAKE, _MODEL, _ORIENTATION, _SOFTWARE, _DATETIME, _IMAGE_DESCRIPTION, _ARTIST, _COPYRIGHT,
    _RATING, _XP_TITLE, _XP_KEYWORDS, _EXPOSURE_TIME, _FNUMBER, _ISO, _RECOMMENDED_EXPOSURE_INDEX,
    _ISO_SPEED, _DATETIME_ORIGINAL, _DATETIME_DIGITIZED, _OFFSET_TIME, _OFFSET_TIME_ORIGINAL,
    _OFFSET_TIME_DIGITIZED, _SHUTTER_SPEED_VALUE, _APERTURE_VALUE, _FOCAL_LENGTH, _SUBSEC_TIME,
    _SUBSEC_TIME_ORIGINAL, _SUBSEC_TIME_DIGITIZED, _LENS_MODEL,
)  # fmt: skip
_EXIF_READER = exif_directories.Reader(_TAGS_READ)
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON, _GPS_ALT_REF, _GPS_ALT = 1, 2, 3, 4, 5, 6
_GPS_TIME_STAMP, _GPS_DATE_STAMP = 7, 29

# Photoshop image resources and IPTC-IIM datasets (record 2).
_PS_IPTC, _PS_IPTC_DIGEST = 0x0404, 0x0425
_IIM_OBJECT_NAME, _IIM_KEYWORDS, _IIM_DATE_CREATED, _IIM_TIME_CREATED = 5, 25, 55, 60
_IIM_BYLINE, _IIM_CITY, _IIM_SUBLOCATION, _IIM_STATE, _IIM_COUNTRY = 80, 90, 92, 95, 101
_IIM_COPYRIGHT, _IIM_CAPTION = 116, 120

# Text that cameras and tools write into caption fields when the owner wrote nothing.
_BOILERPLATE_CAPTIONS = frozenset(
    text.casefold()
    for text in (
        "OLYMPUS DIGITAL CAMERA",
        "SONY DSC",
        "DIGITAL CAMERA",
        "MINOLTA DIGITAL CAMERA",
        "KONICA MINOLTA DIGITAL CAMERA",
        "LEICA DIGITAL CAMERA",
        "KODAK Digital Still Camera",
        "SAMSUNG DIGITAL CAMERA",
        "SAMSUNG CAMERA PICTURES",
        "SANYO DIGITAL CAMERA",
        "Exif_JPEG_PICTURE",
        "Exif JPEG",
        "JPEG",
        "default",
        "Created with GIMP",
        "x-default",  # GIMP writes the language tag as the value
        "Untitled",
        "Image",
    )
)

# digiKam's bookkeeping tags, which are not the owner's keywords.
_DIGIKAM_INTERNAL = "_Digikam_Internal_Tags_"


class _Date(NamedTuple):
    """One capture-time candidate."""

    source: str  # e.g. "exif:DateTimeOriginal"
    when: datetime
    offset: str  # "+02:00" or ""
    date_only: bool  # the source gave a day but no time of day


# One block's findings, keyed by PhotoMetadata field names plus "dates", "subject"
# (dc:subject / IPTC Keywords), "other_keywords" and extras such as "city".
_Facts = dict


class _Log:
    """Warnings and presence flags gathered while reading one file."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.found: dict[str, bool] = {"exif": False, "iptc": False, "xmp": False}
        self.notes: dict[str, Any] = {}

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def read_metadata(path, image: Image.Image | None = None, *, mtime: float | None = None) -> PhotoMetadata:
    """Read everything Shoebox keeps from the metadata of the file at ``path``.

    ``path`` is ``str``, ``bytes`` (names need not be UTF-8) or ``os.PathLike``. ``image`` is
    the caller's ``Image.open(path)`` result, header parsed but not loaded; without it (RAW
    files, anything Pillow cannot open) the file is read with exifread, a small CR3 reader
    and a scan for an XMP packet. Sidecars are merged, then the capture time falls back to
    a date in the file name and finally to ``mtime`` (epoch seconds, read as UTC).

    Raises ``OSError`` only when the file itself cannot be opened or read; every problem
    inside the metadata becomes a message in ``extra["warnings"]``.
    """
    path = os.fspath(path)
    log = _Log()
    if image is not None:
        exif, iptc, xmp, iptc_changed = _read_with_pillow(path, image, log)
    else:
        exif, iptc, xmp, iptc_changed = _read_without_pillow(path, log)

    sidecars = []
    for sidecar_path in find_sidecars(path):
        facts = _read_sidecar(sidecar_path, log)
        if facts is not None:
            sidecars.append(facts)
            log.notes.setdefault("sidecars", []).append(_display_name(sidecar_path))

    meta = _merge(exif=exif, iptc=iptc, xmp=xmp, sidecars=sidecars, iptc_changed=iptc_changed)
    if meta.taken_at is None:
        _fall_back_to_file_dates(meta, path, mtime, log)
    _place_in_time_zone(meta, log)
    meta.extra = _json_safe({**meta.extra, **log.found, **log.notes, "warnings": log.warnings})
    return meta


def find_sidecars(path) -> list:
    """Existing XMP sidecars of ``path``, most specific first, as the same type as ``path``.

    Looks for ``NAME.EXT.xmp`` (darktable, digiKam) then ``NAME.xmp`` (Lightroom), each
    also with an upper-case ``.XMP``. On case-insensitive file systems the spellings name
    one file, which is returned once.
    """
    raw = os.fspath(path)
    as_bytes = isinstance(raw, bytes)
    dot_xmp = (b".xmp", b".XMP") if as_bytes else (".xmp", ".XMP")
    if raw.endswith(dot_xmp):
        return []
    stem, ext = os.path.splitext(raw)
    candidates = [raw + suffix for suffix in dot_xmp]
    if ext:
        candidates += [stem + suffix for suffix in dot_xmp]

    found, seen = [], set()
    for candidate in candidates:
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen or not stat.S_ISREG(st.st_mode):
            continue
        seen.add((st.st_dev, st.st_ino))
        found.append(candidate)
    if isinstance(path, os.PathLike):
        return [type(path)(p) for p in found]
    return found


def parse_xmp(data: bytes | str) -> dict:
    """Parse one XMP packet (UTF-8 or UTF-16, with or without ``<?xpacket?>`` wrapper).

    Returns the ``PhotoMetadata`` fields the packet supplies (only those), so
    ``PhotoMetadata(**parse_xmp(data))`` works; ``extra`` carries location, rights and any
    warnings. Raises ``XmpError`` for malformed, oversized or hostile (DTD / entity) input.
    """
    log = _Log()
    facts = _xmp_facts(data, log)
    meta = _merge(exif=None, iptc=None, xmp=facts, sidecars=[], iptc_changed=False)
    meta.extra = _json_safe({**meta.extra, "warnings": log.warnings})
    defaults = PhotoMetadata()
    result = {}
    for f in fields(PhotoMetadata):
        value = getattr(meta, f.name)
        if value != getattr(defaults, f.name) or f.name == "extra":
            result[f.name] = value
    if not result["extra"]["warnings"]:
        del result["extra"]["warnings"]
    return result


def exif_datetime(text, subsec=None) -> tuple[datetime, str, bool] | None:
    """Parse an EXIF / XMP / ISO 8601 date-time such as ``"2008:05:30 15:56:01"``.

    Accepts ``:`` or ``-`` date separators, ``T`` or space, fractional seconds, a trailing
    zone (``Z``, ``+02:00``, ``+0200``) and date-only or year-month values. ``subsec`` is
    EXIF SubSecTime* ("762" means .762 s). Returns ``(naive datetime, offset, date_only)``
    or None for anything that is not a real date between 1900 and 2100.
    """
    text = _clean(_tag_text(text))
    match = _DATETIME_RE.match(text)
    if match is None:
        return None
    parts = match.groupdict()
    try:
        year, month, day = int(parts["year"]), int(parts["month"] or 1), int(parts["day"] or 1)
        hour, minute, second = int(parts["hour"] or 0), int(parts["minute"] or 0), int(parts["second"] or 0)
        fraction = parts["fraction"] or _clean(_tag_text(subsec))
        micro = int(fraction[:6].ljust(6, "0")) if fraction.isdigit() else 0
        when = datetime(year, month, day, hour, minute, second, micro)
    except (ValueError, OverflowError):
        return None
    if year not in _YEAR_RANGE:
        return None
    return when, utc_offset(parts["zone"]), parts["hour"] is None


def utc_offset(text) -> str:
    """Normalise a UTC offset ("+0200", "+02:00", "Z", "-5") to "+HH:MM"; "" when unusable."""
    text = _clean(_tag_text(text))
    if text.upper() == "Z":
        return "+00:00"
    match = re.fullmatch(r"([+-])(\d{1,2}):?(\d{2})?", text)
    if match is None:
        return ""
    hours, minutes = int(match[2]), int(match[3] or 0)
    if hours > 14 or minutes >= 60 or (hours == 14 and minutes):
        return ""
    return f"{match[1]}{hours:02d}:{minutes:02d}"


def offset_delta(offset: str) -> timedelta:
    """The ``timedelta`` of a normalised "+HH:MM" offset (as ``utc_offset`` returns it)."""
    sign = -1 if offset.startswith("-") else 1
    hours, minutes = offset[1:].split(":")
    return sign * timedelta(hours=int(hours), minutes=int(minutes))


def format_offset(delta: timedelta) -> str:
    """"+HH:MM" for a UTC offset (seconds, which only pre-1970 local mean times have, dropped)."""
    sign = "-" if delta < timedelta(0) else "+"
    minutes = int(abs(delta).total_seconds()) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


@lru_cache(maxsize=1024)
def time_zone(name: str) -> ZoneInfo | None:
    """The ``ZoneInfo`` called ``name``, or None when this system's tz database lacks it."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zone_at(latitude: float, longitude: float) -> str:
    """The IANA time zone at a position, offline (tzfpy; "Etc/GMT+5" and the like at sea)."""
    from tzfpy import get_tz  # its polygon index is built on the first call (~0.1 s)

    return get_tz(longitude, latitude) or ""


def capture_instant(when: datetime, offset: str = "", zone: str = "") -> tuple[datetime, str]:
    """A capture time as an aware UTC instant and the UTC offset of its wall clock there.

    ``when`` is naive, as in ``PhotoMetadata``. A stated ``offset`` gives the instant (for a
    UTC clock "+00:00"); without one the wall clock is read in ``zone``, with the offset in
    force at that wall time on that date (daylight saving included; a time repeated when
    the clocks go back is the first one, a time skipped when they go forward is read with
    the offset before the change). Either way the returned offset is the zone's at that
    instant when ``zone`` is known. With neither the time is floating: stored as if UTC,
    and the offset returned is "".
    """
    tz = time_zone(zone)
    if offset:
        instant = (when - offset_delta(offset)).replace(tzinfo=timezone.utc)
    elif tz is not None:
        instant = when.replace(tzinfo=tz).astimezone(timezone.utc)
    else:
        return when.replace(tzinfo=timezone.utc), ""
    if tz is not None:
        offset = format_offset(instant.astimezone(tz).utcoffset())
    return instant, offset


def date_from_filename(name) -> tuple[datetime, bool] | None:
    """A capture date in a file name, as ``(datetime, date_only)``, or None.

    Recognises the camera, phone and screenshot conventions: ``IMG_20230704_123456``,
    ``PXL_20230704_123456789``, ``2023-07-04 12.34.56``, ``Screenshot_2023-07-04-12-34-56``,
    ``IMG-20230704-WA0001`` (date only). Only real dates from 1900 to 2100 count.
    """
    name = os.path.basename(os.fsdecode(name))
    for match in _FILENAME_DATE_RE.finditer(name):
        parts = match.groupdict()
        try:
            when = datetime(
                int(parts["year"]),
                int(parts["month"]),
                int(parts["day"]),
                int(parts["hour"] or 0),
                int(parts["minute"] or 0),
                int(parts["second"] or 0),
                int((parts["fraction"] or "0").ljust(6, "0")),
            )
        except ValueError:
            continue
        if when.year in _YEAR_RANGE:
            return when, parts["hour"] is None
    return None


_DATETIME_RE = re.compile(
    r"(?P<year>\d{4})(?:[:-](?P<month>\d{1,2})(?:[:-](?P<day>\d{1,2})"
    r"(?:[T ]+(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?"
    r"\s*(?P<zone>Z|[+-]\d{1,2}(?::?\d{2})?)?)?)?)?\s*$",
    re.IGNORECASE,
)

_FILENAME_DATE_RE = re.compile(
    r"(?<!\d)(?P<year>(?:19|20|21)\d\d)(?P<sep>[-_.]?)(?P<month>\d\d)(?P=sep)(?P<day>\d\d)"
    r"(?:(?:[ _T-]|\sat\s)(?P<hour>\d\d)[-_.:]?(?P<minute>\d\d)[-_.:]?(?P<second>\d\d)(?P<fraction>\d{1,3})?)?"
    r"(?!\d)"
)


# --------------------------------------------------------------------------------------
# Reading the blocks
# --------------------------------------------------------------------------------------


def _read_with_pillow(path, image: Image.Image, log: _Log):
    """EXIF, IPTC and XMP facts from an image Pillow has opened (header only)."""
    info = image.info
    late_png = _png_late_chunks(path, log) if image.format == "PNG" else {}

    exif = None
    try:
        exif = _exif_facts_from_pillow(image, late_png, log)
    except Exception as exc:  # Pillow's TIFF parser raises many types on hostile input
        log.warn(f"EXIF block is corrupt: {_reason(exc)}")

    iptc, iptc_changed = None, False
    try:
        iptc, iptc_changed = _iptc_from_pillow(image, late_png, log)
    except Exception as exc:  # IptcImagePlugin and struct parsing of hostile data
        log.warn(f"IPTC block is corrupt: {_reason(exc)}")

    xmp = None
    try:
        main, extended = _xmp_packets_from_pillow(image, info, late_png)
    except ValueError as exc:  # a hex "Raw profile type xmp" that is not hex
        log.warn(f"XMP packet is unusable: {_reason(exc)}")
    else:
        xmp = _xmp_facts_or_warn(main, log, "XMP packet") if main else None
        if xmp is not None:
            _merge_extended_xmp(xmp, extended, log)
    _pillow_orientation_note(image, log)
    return exif, iptc, xmp, iptc_changed


def _read_without_pillow(path, log: _Log):
    """EXIF and XMP facts from a file Pillow could not open (RAW, damaged, unknown)."""
    with open(path, "rb") as fh:
        head = fh.read(XMP_SCAN_BYTES)
        exif = None
        try:
            if head[4:12] == b"ftypcrx ":
                tiff = _cr3_tiff(head)
            else:
                fh.seek(0)
                tiff = _tiff_from_exifread(exifread.process_file(fh, details=False, extract_thumbnail=False))
            if tiff is not None:
                exif = _exif_facts(*tiff, log)
        except Exception as exc:  # exifread and Pillow's TIFF parser on hostile data
            log.warn(f"EXIF block is corrupt: {_reason(exc)}")

    xmp = None
    packet = _scan_for_xmp(head)
    if packet:
        xmp = _xmp_facts_or_warn(packet, log, "XMP packet")
    return exif, None, xmp, False


def _read_sidecar(path, log: _Log) -> _Facts | None:
    """Facts from one sidecar file; problems with it are warnings."""
    name = _display_name(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_XMP_BYTES + 1)
    except OSError as exc:
        log.warn(f"sidecar {name} cannot be read: {exc.strerror or exc}")
        return None
    return _xmp_facts_or_warn(data, log, f"sidecar {name}")


def _exif_facts_from_pillow(image: Image.Image, late_png: dict, log: _Log) -> _Facts | None:
    info = image.info
    if hasattr(image, "tag_v2"):
        # TIFF family (also DNG / NEF / CR2 that Pillow opens as TIFF): IFD0 is the
        # image's own directory, read from the file without decoding pixels.
        exif = image.getexif()
    else:
        raw = info.get("exif") or late_png.get("exif")
        if not raw and "Raw profile type exif" in info:
            raw = _raw_profile(info["Raw profile type exif"])
        if not raw:
            return None
        raw = _as_bytes(raw)
        try:
            ifd0, exif_ifd, gps_ifd = _EXIF_READER.read(raw)
        except exif_directories.Unusual:
            pass  # Pillow reads it, and says what is wrong
        else:
            return _exif_facts(ifd0, exif_ifd, gps_ifd, log)
        exif = Image.Exif()
        exif.load(raw)
        if not len(exif):
            log.warn("EXIF block is corrupt: it holds no readable tags")
            return None
    if not len(exif):
        return None
    ifd0 = {tag: exif[tag] for tag in _TAGS_READ if tag in exif}
    if hasattr(image, "tag_v2") and _ORIENTATION not in image.tag_v2:
        ifd0.pop(_ORIENTATION, None)  # getexif() copied it from XMP tiff:Orientation; XMP is read apart
    exif_ifd = _pillow_ifd(exif, ExifTags.IFD.Exif, log) if ExifTags.IFD.Exif in exif else {}
    gps_ifd = _pillow_ifd(exif, ExifTags.IFD.GPSInfo, log) if ExifTags.IFD.GPSInfo in exif else {}
    return _exif_facts(ifd0, exif_ifd, gps_ifd, log)


def _pillow_ifd(exif: Image.Exif, tag: int, log: _Log) -> dict:
    try:
        return dict(exif.get_ifd(tag))
    except Exception as exc:  # bad offsets and counts surface as assorted exception types
        log.warn(f"EXIF {ExifTags.IFD(tag).name} directory is corrupt: {_reason(exc)}")
        return {}


def _tiff_from_exifread(tags: dict) -> tuple[dict, dict, dict] | None:
    """exifread's "Image X" / "EXIF X" / "GPS X" tags as {tag id: values} per directory."""
    directories: dict[str, dict] = {"Image": {}, "EXIF": {}, "GPS": {}}
    for key, tag in tags.items():
        directory = directories.get(key.split(" ", 1)[0])
        if directory is not None and hasattr(tag, "tag"):
            directory[tag.tag] = tag.values
    if not any(directories.values()):
        return None
    return directories["Image"], directories["EXIF"], directories["GPS"]


def _cr3_tiff(head: bytes) -> tuple[dict, dict, dict] | None:
    """IFD0, EXIF and GPS directories from a Canon CR3 (ISO BMFF) file's CMT1/2/4 boxes."""
    canon_uuid = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
    moov = _find_box(head, 0, len(head), b"moov")
    if moov is None:
        return None
    canon = _find_box(head, moov[0], moov[1], b"uuid", canon_uuid)
    if canon is None:
        return None
    directories = []
    for name in (b"CMT1", b"CMT2", b"CMT4"):
        box = _find_box(head, canon[0], canon[1], name)
        directory = {}
        if box is not None:
            exif = Image.Exif()
            exif.load(head[box[0] : box[1]])
            directory = dict(exif)
        directories.append(directory)
    return directories[0], directories[1], directories[2]


def _find_box(data: bytes, start: int, end: int, kind: bytes, uuid: bytes = b"") -> tuple[int, int] | None:
    """(payload start, payload end) of the first ISO BMFF box of ``kind`` in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, box_kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1 and pos + 16 <= end:
            size, header = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header:
            return None
        if box_kind == b"uuid":
            header += 16
        if box_kind == kind and (not uuid or data[pos + header - 16 : pos + header] == uuid):
            return pos + header, min(pos + size, end)
        pos += size
    return None


def _iptc_from_pillow(image: Image.Image, late_png: dict, log: _Log) -> tuple[_Facts | None, bool]:
    """IPTC facts, and whether the IPTC was changed after the XMP was last synchronised."""
    info = image.info
    resources: dict[int, bytes] = {}
    if isinstance(info.get("photoshop"), dict):  # JPEG APP13, already split by Pillow
        resources = info["photoshop"]
    elif hasattr(image, "tag_v2") and isinstance(image.tag_v2.get(34377), bytes):  # TIFF Photoshop tag
        resources = _photoshop_resources(image.tag_v2[34377])
    else:
        raw = info.get("Raw profile type iptc") or late_png.get("Raw profile type iptc")
        if raw:
            data = _raw_profile(raw)
            resources = _photoshop_resources(data) if data.startswith(b"8BIM") else {_PS_IPTC: data}

    records = None
    raw_iptc = resources.get(_PS_IPTC)
    if raw_iptc:
        records = _iim_records(_as_bytes(raw_iptc), log)
    elif hasattr(image, "tag_v2"):
        # TIFF tag 33723 is often typed as LONGs; Pillow's helper reads it as raw bytes.
        parsed = IptcImagePlugin.getiptcinfo(image)
        if parsed:
            records = {key: value if isinstance(value, list) else [value] for key, value in parsed.items()}
    if not records:
        return None, False
    log.found["iptc"] = True

    stored = resources.get(_PS_IPTC_DIGEST)
    changed = bool(raw_iptc and stored and hashlib.md5(_as_bytes(raw_iptc)).digest() != _as_bytes(stored))
    return _iptc_facts(records, log), changed


def _xmp_packets_from_pillow(image: Image.Image, info: dict, late_png: dict):
    """The main XMP packet and any JPEG extended-XMP chunks ({guid: [(offset, total, data)]})."""
    main, extended = None, {}
    for marker, payload in getattr(image, "applist", ()):
        if marker != "APP1":
            continue
        if payload.startswith(_XMP_EXTENSION_HEADER):
            body = payload[len(_XMP_EXTENSION_HEADER) :]
            if len(body) > 40:
                total, offset = struct.unpack(">II", body[32:40])
                extended.setdefault(body[:32].decode("latin-1"), []).append((offset, total, body[40:]))
        elif main is None and payload.startswith(_XMP_HEADER):
            main = payload[len(_XMP_HEADER) :]
        elif main is None and b"ns.adobe.com/xap/1.0/" in payload[:64]:
            # Non-standard headers such as b"XMP\0://ns.adobe.com/xap/1.0/\0" (read by exiftool too).
            start = payload.find(b"<")
            main = payload[start:] if start >= 0 else None
    if main is None:
        main = (
            info.get("xmp")
            or info.get("XML:com.adobe.xmp")
            or late_png.get("xmp")
            or (_raw_profile(info["Raw profile type xmp"]) if "Raw profile type xmp" in info else None)
        )
    return main, extended


def _merge_extended_xmp(facts: _Facts, extended: dict, log: _Log) -> None:
    """Add the properties of the extended XMP that the main packet points at."""
    guid = facts.pop("extended_guid", None)
    chunks = extended.get(guid) if guid else None
    if not chunks:
        if guid:
            log.warn("extended XMP is referenced but missing")
        return
    total = chunks[0][1]
    if total > MAX_XMP_BYTES:
        log.warn(f"extended XMP ignored: {total} bytes is over the {MAX_XMP_BYTES} byte limit")
        return
    buffer = bytearray(total)
    covered = 0
    for offset, _, data in sorted(chunks):
        buffer[offset : offset + len(data)] = data
        covered += len(data)
    if covered < total:
        log.warn(f"extended XMP is incomplete ({covered} of {total} bytes)")
        return
    more = _xmp_facts_or_warn(bytes(buffer[:total]), log, "extended XMP")
    if more is None:
        return
    for key, value in more.items():
        if key in ("dates", "subject", "other_keywords"):
            facts[key] = facts.get(key, []) + value
        else:
            facts.setdefault(key, value)
    log.notes["extended_xmp"] = True


def _pillow_orientation_note(image: Image.Image, log: _Log) -> None:
    """pillow-heif rotates HEIF pixels itself and rewrites the EXIF Orientation to 1.

    So ``orientation`` (like ``image.getexif()``) is relative to the pixels Pillow
    delivers; the file's own value is kept in ``extra["file_orientation"]``.
    """
    original = image.info.get("original_orientation")
    if isinstance(original, int) and original != 1:
        log.notes["file_orientation"] = original


def _png_late_chunks(path, log: _Log) -> dict:
    """eXIf and XMP / raw-profile text chunks stored after the image data of a PNG.

    Pillow stops parsing a PNG header at the first IDAT (``getexif()`` would decode the
    whole image to reach later chunks), so walk the chunk headers ourselves and read only
    the interesting bodies.
    """
    found: dict[str, Any] = {}
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != b"\x89PNG\r\n\x1a\n":
                return found
            for _ in range(_MAX_PNG_CHUNKS):
                header = fh.read(8)
                if len(header) < 8:
                    break
                length, kind = struct.unpack(">I4s", header)
                if kind == b"IEND":
                    break
                if kind in (b"eXIf", b"iTXt", b"zTXt", b"tEXt") and length <= _MAX_PNG_TEXT:
                    _png_text_chunk(kind, fh.read(length), found)
                    fh.seek(4, os.SEEK_CUR)
                else:
                    fh.seek(length + 4, os.SEEK_CUR)
            else:
                log.warn(f"PNG has more than {_MAX_PNG_CHUNKS} chunks; the rest were not searched for metadata")
    except (OSError, ValueError, zlib.error) as exc:
        log.warn(f"PNG metadata chunks cannot be read: {_reason(exc)}")
    return found


def _png_text_chunk(kind: bytes, body: bytes, found: dict) -> None:
    if kind == b"eXIf":
        found.setdefault("exif", body)
        return
    keyword, _, rest = body.partition(b"\x00")
    if keyword not in _PNG_METADATA_KEYWORDS:
        return
    if kind == b"iTXt":
        compressed, rest = rest[:1] == b"\x01", rest[2:]
        rest = rest.split(b"\x00", 2)[-1]  # skip language tag and translated keyword
        text = _inflate(rest) if compressed else rest
    elif kind == b"zTXt":
        text = _inflate(rest[1:])
    else:
        text = rest
    name = "xmp" if keyword == b"XML:com.adobe.xmp" else keyword.decode("ascii")
    if name == "Raw profile type exif":
        found.setdefault("exif", _raw_profile(text))
    elif name == "Raw profile type xmp":
        found.setdefault("xmp", _raw_profile(text))
    else:
        found.setdefault(name, text)


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    result = inflater.decompress(data, _MAX_PNG_TEXT)
    if inflater.unconsumed_tail:
        raise ValueError("compressed PNG text chunk is too large")
    return result


def _raw_profile(text) -> bytes:
    """Decode an ImageMagick "Raw profile type" text: name, length, then hex lines."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    lines = text.strip().split("\n", 2)
    if len(lines) < 3:
        return b""
    return bytes.fromhex("".join(lines[2].split()))


def _scan_for_xmp(head: bytes) -> bytes | None:
    """The first UTF-8 XMP packet in the first bytes of a file Pillow cannot open."""
    start = head.find(b"<x:xmpmeta")
    if start < 0:
        return None
    end = head.find(b"</x:xmpmeta>", start)
    return head[start : end + len(b"</x:xmpmeta>")] if end >= 0 else head[start:]


# --------------------------------------------------------------------------------------
# EXIF
# --------------------------------------------------------------------------------------


def _exif_facts(ifd0: dict, exif: dict, gps: dict, log: _Log) -> _Facts:
    """Facts from the IFD0, EXIF and GPS directories ({tag id: raw value})."""
    log.found["exif"] = True

    def get(tag, *directories):
        for directory in directories or (exif, ifd0):
            if tag in directory:
                return directory[tag]
        return None

    facts: _Facts = {
        "camera_make": _tag_text(get(_MAKE, ifd0, exif)),
        "camera_model": _tag_text(get(_MODEL, ifd0, exif)),
        "lens": _tag_text(get(_LENS_MODEL)),
        "focal_length": _positive(get(_FOCAL_LENGTH)),
        "aperture": _positive(get(_FNUMBER)),
        "exposure_time": _positive(get(_EXPOSURE_TIME)),
        "iso": _iso(get(_ISO), get(_ISO_SPEED), get(_RECOMMENDED_EXPOSURE_INDEX)),
        "description": _tag_text(get(_IMAGE_DESCRIPTION, ifd0)),
        "title": _xp_text(get(_XP_TITLE, ifd0)),
        "other_keywords": _xp_text(get(_XP_KEYWORDS, ifd0)).split(";"),
        "software": _tag_text(get(_SOFTWARE, ifd0)),
        "artist": _tag_text(get(_ARTIST, ifd0)),
        "copyright": _tag_text(get(_COPYRIGHT, ifd0)),
    }
    if facts["aperture"] is None and (apex := _number(get(_APERTURE_VALUE))) is not None and -2 < apex < 32:
        facts["aperture"] = round(2 ** (apex / 2), 1)
    if facts["exposure_time"] is None and (apex := _number(get(_SHUTTER_SPEED_VALUE))) is not None and -20 < apex < 30:
        facts["exposure_time"] = 2**-apex

    orientation = get(_ORIENTATION, ifd0)
    if orientation is not None:
        facts["orientation"] = _orientation(orientation, "EXIF", log)
    rating = get(_RATING, ifd0)
    if rating is not None:
        facts["rating"] = _rating(rating, "EXIF", log)

    facts["dates"] = [
        date
        for tag, subsec, offset, source in (
            (_DATETIME_ORIGINAL, _SUBSEC_TIME_ORIGINAL, _OFFSET_TIME_ORIGINAL, "exif:DateTimeOriginal"),
            (_DATETIME_DIGITIZED, _SUBSEC_TIME_DIGITIZED, _OFFSET_TIME_DIGITIZED, "exif:DateTimeDigitized"),
            (_DATETIME, _SUBSEC_TIME, _OFFSET_TIME, "exif:DateTime"),
        )
        if (date := _date(source, get(tag), get(subsec), get(offset), log)) is not None
    ]
    if (date := _gps_date(gps, log)) is not None:
        facts["dates"].append(date)
    _exif_gps(gps, facts, log)
    return facts


def _exif_gps(gps: dict, facts: _Facts, log: _Log) -> None:
    """Latitude, longitude and altitude from the GPS directory (missing values stay absent)."""
    if _GPS_LAT in gps or _GPS_LON in gps:
        latitude = _signed(_degrees(gps.get(_GPS_LAT)), _tag_text(gps.get(_GPS_LAT_REF)), "S")
        longitude = _signed(_degrees(gps.get(_GPS_LON)), _tag_text(gps.get(_GPS_LON_REF)), "W")
        _set_position(facts, latitude, longitude, "EXIF", log)
    if _GPS_ALT in gps:
        altitude = _number(gps.get(_GPS_ALT))
        if altitude is None:
            log.warn("EXIF GPS altitude is unreadable")
        else:
            facts["altitude"] = -abs(altitude) if _scalar(gps.get(_GPS_ALT_REF)) == 1 else altitude


def _gps_date(gps: dict, log: _Log) -> _Date | None:
    """GPSDateStamp + GPSTimeStamp: when the position was fixed, on the satellites' UTC clock.

    Either alone is no date. Fractions of a second are kept (to the microsecond).
    """
    day, clock = _tag_text(gps.get(_GPS_DATE_STAMP)), gps.get(_GPS_TIME_STAMP)
    if not day or clock is None:
        return None
    parts = [_number(part) for part in (clock if isinstance(clock, (list, tuple)) else [clock])]
    parsed = exif_datetime(day) if re.fullmatch(r"\d{4}[:-]\d{2}[:-]\d{2}", day) else None
    if (
        parsed is None
        or len(parts) != 3
        or any(part is None or part < 0 for part in parts)
        or parts[0] >= 24
        or parts[1] >= 60
        or parts[2] >= 61  # 60: a leap second
    ):
        log.warn(f"{TakenFrom.GPS_TIME} is not a usable date: {day!r} {clock!r}")
        return None
    hours, minutes, seconds = parts
    when = parsed[0] + timedelta(microseconds=round((hours * 3600 + minutes * 60 + seconds) * 1_000_000))
    return _Date(TakenFrom.GPS_TIME, when, "+00:00", False)


def _set_position(facts: _Facts, latitude, longitude, block: str, log: _Log) -> None:
    if latitude is None or longitude is None:
        log.warn(f"{block} GPS position is incomplete or unreadable")
    elif not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        log.warn(f"{block} GPS position is out of range: {latitude}, {longitude}")
    elif latitude == 0 and longitude == 0:
        log.warn(f"{block} GPS position is exactly 0, 0 (a receiver without a fix); ignored")
    else:
        facts["latitude"], facts["longitude"] = latitude, longitude


def _degrees(value) -> float | None:
    """Decimal degrees from EXIF (degrees, minutes, seconds) rationals, or one number."""
    parts = list(value) if isinstance(value, (list, tuple)) else [value]
    if not parts or len(parts) > 3:
        return None
    numbers = [_number(part) for part in parts]
    if any(n is None or n < 0 for n in numbers):
        return None
    return sum(n / 60**i for i, n in enumerate(numbers))


def _signed(degrees: float | None, ref: str, negative: str) -> float | None:
    if degrees is None:
        return None
    ref = ref[:1].upper()
    if ref == negative:
        return -abs(degrees)
    return abs(degrees) if ref else degrees


def _iso(iso, *beyond_65535) -> int | None:
    """ISOSpeedRatings, or the EXIF 2.3 tags (ISOSpeed, RecommendedExposureIndex) that
    replace it when it is missing or saturated at 65535."""
    value = _number(iso)
    if value is None or value == 65535:
        value = next((n for n in map(_number, beyond_65535) if n), value)
    if value is None or value <= 0 or value != int(value):
        return None
    return int(value)


def _date(source, value, subsec, offset, log: _Log) -> _Date | None:
    """A capture-time candidate from EXIF, or None (with a warning when it is garbage)."""
    text = _tag_text(value)
    if not text:
        return None
    parsed = exif_datetime(text, subsec)
    if parsed is None:
        log.warn(f"{source} is not a usable date: {text!r}")
        return None
    when, zone, date_only = parsed
    return _Date(source, when, utc_offset(offset) or zone, date_only)


# --------------------------------------------------------------------------------------
# IPTC-IIM
# --------------------------------------------------------------------------------------


def _photoshop_resources(data: bytes) -> dict[int, bytes]:
    """Photoshop image resource blocks ("8BIM" id, Pascal name, sized data) by id."""
    resources, pos = {}, 0
    while pos + 12 <= len(data) and data[pos : pos + 4] == b"8BIM":
        resource_id = int.from_bytes(data[pos + 4 : pos + 6], "big")
        name_length = data[pos + 6]
        pos += 6 + name_length + 1 + ((name_length + 1) & 1)  # the name is padded to even length
        size = int.from_bytes(data[pos : pos + 4], "big")
        pos += 4
        resources.setdefault(resource_id, data[pos : pos + size])
        pos += size + (size & 1)
    return resources


def _iim_records(data: bytes, log: _Log) -> dict[tuple[int, int], list[bytes]]:
    """IPTC-IIM datasets: {(record, dataset): [values]}, stopping at the first damage."""
    records: dict[tuple[int, int], list[bytes]] = {}
    pos, end = 0, len(data)
    while pos + 5 <= end and data[pos] == 0x1C:
        key = (data[pos + 1], data[pos + 2])
        size = int.from_bytes(data[pos + 3 : pos + 5], "big")
        pos += 5
        if size & 0x8000:  # extended dataset: the length is in the next (size & 0x7fff) bytes
            width = size & 0x7FFF
            size = int.from_bytes(data[pos : pos + width], "big") if 0 < width <= 4 else end
            pos += width
        if pos + size > end:
            log.warn(f"IPTC dataset {key[0]}:{key[1]} runs past the end of the block")
            break
        records.setdefault(key, []).append(data[pos : pos + size])
        pos += size
    return records


def _iptc_facts(records: dict, log: _Log) -> _Facts:
    def text(dataset) -> str:
        values = records.get((2, dataset))
        return _clean(_decode(values[0])) if values else ""

    facts: _Facts = {
        "title": text(_IIM_OBJECT_NAME),
        "description": text(_IIM_CAPTION),
        "subject": [_clean(_decode(v)) for v in records.get((2, _IIM_KEYWORDS), [])],
        "artist": "; ".join(_clean(_decode(v)) for v in records.get((2, _IIM_BYLINE), [])),
        "copyright": text(_IIM_COPYRIGHT),
        "city": text(_IIM_CITY),
        "sublocation": text(_IIM_SUBLOCATION),
        "state": text(_IIM_STATE),
        "country": text(_IIM_COUNTRY),
        "dates": [],
    }
    day = text(_IIM_DATE_CREATED)
    if day:
        clock = text(_IIM_TIME_CREATED)
        stamp = f"{day[:4]}:{day[4:6]}:{day[6:8]}"
        if re.fullmatch(r"\d{6}([+-]\d{4})?", clock):
            stamp += f" {clock[:2]}:{clock[2:4]}:{clock[4:6]}{clock[6:]}"
        parsed = exif_datetime(stamp) if re.fullmatch(r"\d{8}", day) else None
        if parsed is None:
            log.warn(f"iptc:DateCreated is not a usable date: {day!r}")
        else:
            facts["dates"].append(_Date("iptc:DateCreated", *parsed))
    return facts


# --------------------------------------------------------------------------------------
# XMP
# --------------------------------------------------------------------------------------


def _xmp_facts_or_warn(data, log: _Log, what: str) -> _Facts | None:
    try:
        facts = _xmp_facts(data, log)
    except XmpError as exc:
        log.warn(f"{what} is unusable: {exc}")
        return None
    log.found["xmp"] = True
    return facts


def _xmp_facts(data: bytes | str, log: _Log) -> _Facts:
    """Facts from one XMP packet; raises XmpError when it cannot be parsed safely."""
    tree = _parse_xmp_tree(data)
    props = _xmp_properties(tree)

    def first(ns, name) -> str:
        values = props.get((ns, name))
        return _clean(values[0]) if values else ""

    def every(ns, name) -> list[str]:
        return [_clean(v) for v in props.get((ns, name), [])]

    facts: _Facts = {
        "camera_make": first(_NS_TIFF, "Make"),
        "camera_model": first(_NS_TIFF, "Model"),
        "lens": first(_NS_EXIF_EX, "LensModel") or first(_NS_AUX, "Lens"),
        "focal_length": _positive(first(_NS_EXIF, "FocalLength")),
        "aperture": _positive(first(_NS_EXIF, "FNumber")),
        "exposure_time": _positive(first(_NS_EXIF, "ExposureTime")),
        "iso": _iso(first(_NS_EXIF, "ISOSpeedRatings") or first(_NS_EXIF_EX, "PhotographicSensitivity")),
        "title": first(_NS_DC, "title"),
        "description": first(_NS_DC, "description"),
        "subject": every(_NS_DC, "subject"),
        "other_keywords": every(_NS_LIGHTROOM, "hierarchicalSubject")
        + [k.replace("/", "|") for k in every(_NS_DIGIKAM, "TagsList") if not k.startswith(_DIGIKAM_INTERNAL)]
        + [k.replace("/", "|") for k in every(_NS_MS_PHOTO, "LastKeywordXMP")],
        "software": first(_NS_XMP, "CreatorTool"),
        "artist": "; ".join(every(_NS_DC, "creator")),
        "copyright": first(_NS_DC, "rights"),
        "city": first(_NS_PHOTOSHOP, "City"),
        "sublocation": first(_NS_IPTC_CORE, "Location"),
        "state": first(_NS_PHOTOSHOP, "State"),
        "country": first(_NS_PHOTOSHOP, "Country"),
        "dates": [],
    }
    if orientation := first(_NS_TIFF, "Orientation"):
        facts["orientation"] = _orientation(orientation, "XMP", log)
    if rating := first(_NS_XMP, "Rating"):
        facts["rating"] = _rating(rating, "XMP", log)
    if guid := first(_NS_XMP_NOTE, "HasExtendedXMP"):
        facts["extended_guid"] = guid
    for ns, name in (
        (_NS_EXIF, "DateTimeOriginal"),
        (_NS_PHOTOSHOP, "DateCreated"),
        (_NS_EXIF, "DateTimeDigitized"),
        (_NS_XMP, "CreateDate"),
    ):
        if text := first(ns, name):
            parsed = exif_datetime(text)
            if parsed is None:
                log.warn(f"xmp:{name} is not a usable date: {text!r}")
            else:
                facts["dates"].append(_Date(f"xmp:{name}", *parsed))

    latitude_text, longitude_text = first(_NS_EXIF, "GPSLatitude"), first(_NS_EXIF, "GPSLongitude")
    if latitude_text or longitude_text:
        _set_position(facts, _xmp_coordinate(latitude_text, "NS"), _xmp_coordinate(longitude_text, "EW"), "XMP", log)
    if altitude_text := first(_NS_EXIF, "GPSAltitude"):
        altitude = _number(altitude_text)
        if altitude is None:
            log.warn(f"XMP GPS altitude is unreadable: {altitude_text!r}")
        else:
            facts["altitude"] = -abs(altitude) if first(_NS_EXIF, "GPSAltitudeRef") == "1" else altitude
    if regions := _face_regions(tree, log):
        facts["regions"] = regions
    return facts


def _parse_xmp_tree(data: bytes | str) -> Element:
    """Decode, trim and safely parse an XMP packet into its root element."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        if len(data) > MAX_XMP_BYTES:
            raise XmpError(f"packet of {len(data)} bytes is over the {MAX_XMP_BYTES} byte limit")
        text = _decode_xmp(data)
    else:
        text = str(data)
        if len(text) > MAX_XMP_BYTES:
            raise XmpError(f"packet of {len(text)} characters is over the {MAX_XMP_BYTES} limit")
    text = text.replace("\ufeff", "").replace("\x00", "")
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise XmpError("it declares a DTD or entities (refused: XMP has no use for them)")
    start = _first_of(text, ("<x:xmpmeta", "<x:xapmeta", "<rdf:RDF"))
    if start < 0:
        start = text.find("<", text.find("?>") + 1 if text.lstrip().startswith("<?") else 0)
    end = text.rfind(">")
    if start < 0 or end < start:
        raise XmpError("no XML element found")
    body = re.sub(r"<\?xpacket[^>]*\?>|<\?xml[^>]*\?>", "", text[start : end + 1])
    try:
        return _safe_fromstring(body.encode("utf-8", "replace"), forbid_dtd=True)
    except DefusedXmlException as exc:
        raise XmpError(f"refused as hostile: {exc}") from exc
    except ParseError as exc:
        raise XmpError(f"malformed XML: {exc}") from exc


def _decode_xmp(data: bytes) -> str:
    """XMP may be UTF-8 or UTF-16/32 (with or without a byte order mark)."""
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF16_BE, "utf-16"),
        (codecs.BOM_UTF16_LE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(encoding, "replace")
    if len(data) >= 2 and data[0] == 0 and data[1] != 0:
        return data.decode("utf-16-be", "replace")
    if len(data) >= 2 and data[0] != 0 and data[1] == 0:
        return data.decode("utf-16-le", "replace")
    return data.decode("utf-8", "replace")


def _first_of(text: str, needles) -> int:
    positions = [p for p in (text.find(n) for n in needles) if p >= 0]
    return min(positions) if positions else -1


def _xmp_properties(root: Element) -> dict[tuple[str, str], list[str]]:
    """Simple and array properties of the top-level rdf:Description nodes, keyed by (URI, name).

    Handles attribute and element forms, rdf:Bag / rdf:Seq (all items) and rdf:Alt (the
    x-default item, else the first). Structures are skipped: nothing we read is one.
    """
    rdf = root if root.tag == f"{{{_RDF}}}RDF" else root.find(f".//{{{_RDF}}}RDF")
    if rdf is None:
        raise XmpError("no rdf:RDF element")
    props: dict[tuple[str, str], list[str]] = {}
    for description in rdf.findall(f"{{{_RDF}}}Description"):
        for key, value in description.attrib.items():
            if key.startswith("{") and not key.startswith(f"{{{_RDF}}}"):
                ns, _, name = key[1:].partition("}")
                props.setdefault((_NS_ALIASES.get(ns, ns), name), [value])
        for prop in description:
            if not prop.tag.startswith("{"):
                continue
            ns, _, name = prop.tag[1:].partition("}")
            values = _xmp_values(prop)
            if values is not None:
                props.setdefault((_NS_ALIASES.get(ns, ns), name), values)
    return props


def _xmp_values(prop: Element) -> list[str] | None:
    children = list(prop)
    if not children:
        return [prop.text or ""]
    container = children[0]
    kind = container.tag.rpartition("}")[2]
    if container.tag.startswith(f"{{{_RDF}}}") and kind in ("Bag", "Seq", "Alt"):
        items = [li for li in container if li.tag == f"{{{_RDF}}}li" and len(li) == 0]
        if kind == "Alt":
            default = [li for li in items if li.get(_XML_LANG, "").lower() == "x-default"]
            items = (default or items)[:1]
        return [li.text or "" for li in items]
    return None


def _xmp_coordinate(text: str, refs: str) -> float | None:
    """XMP GPS coordinate "DDD,MM,SSk" / "DDD,MM.mmk" (k in NSEW) or a signed decimal."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?),(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?([NSEW])", text.replace(" ", ""), re.I)
    if match is None:
        return _number(text)
    degrees = float(match[1]) + float(match[2]) / 60 + float(match[3] or 0) / 3600
    ref = match[4].upper()
    return -degrees if ref == refs[1] else degrees if ref == refs[0] else None


# --------------------------------------------------------------------------------------
# Face regions
# --------------------------------------------------------------------------------------

MAX_FACE_REGIONS = 100  # per packet; a group photo has a few dozen at most
_REGION_SLACK = 0.01  # how far an edge may stray outside 0–1 (rounding by the writer) before it is bad data


def _face_regions(root: Element, log: _Log) -> list[dict]:
    """Named face regions of one packet: MWG (``mwg-rs:Regions``), else Microsoft Photo (``MP:RegionInfo``).

    Each is ``{"format": "mwg" | "mp", "name", "box": [x, y, w, h], "applied_to": [w, h] | None}``:
    the box top-left based, as fractions of the image the region was written for, in that
    image's frame (MWG: the stored pixels, before the Orientation is applied; see
    ``people.regions`` for turning it upright). Regions that are not faces are left out
    quietly; faces without a name or with an unusable area are left out with a warning.
    """
    rdf = root if root.tag == f"{{{_RDF}}}RDF" else root.find(f".//{{{_RDF}}}RDF")
    mwg, mp = [], []
    for description in rdf.findall(f"{{{_RDF}}}Description") if rdf is not None else []:
        for prop in description:
            if not isinstance(prop.tag, str):
                continue
            if prop.tag == f"{{{_NS_MWG_RS}}}Regions":
                mwg.append(prop)
            elif prop.tag in (f"{{{_NS_MP_12}}}RegionInfo", f"{{{_NS_MP_12.rstrip('/')}}}RegionInfo"):
                mp.append(prop)
    skipped: dict[str, int] = {}
    regions = [r for prop in mwg for r in _mwg_regions(prop, skipped)]
    if not mwg:  # digiKam writes the same faces in both; MWG is the standard one
        regions = [r for prop in mp for r in _mp_regions(prop, skipped)]
    for reason, count in skipped.items():
        log.warn(f"{count} face region{'s' if count > 1 else ''} skipped: {reason}")
    return regions[:MAX_FACE_REGIONS]


def _mwg_regions(prop: Element, skipped: dict) -> list[dict]:
    info = _struct_fields(prop)
    applied = None
    if (dims := info.get("AppliedToDimensions")) is not None:
        fields = _struct_fields(dims) if isinstance(dims, Element) else {}
        w, h = _finite(_field_text(fields.get("w"))), _finite(_field_text(fields.get("h")))
        if w is not None and h is not None and w > 0 and h > 0:
            applied = [w, h]
        else:
            _count(skipped, "mwg-rs:AppliedToDimensions is not a usable size (ignored)")
    found = []
    for item in _array_items(info.get("RegionList"), skipped):
        fields = _struct_fields(item)
        kind = _clean(_field_text(fields.get("Type")))
        if kind and kind.casefold() != "face":
            continue  # a pet, a focus point, a barcode
        area = fields.get("Area")
        area = _struct_fields(area) if isinstance(area, Element) else {}
        x, y, w, h = (_finite(_field_text(area.get(k))) for k in ("x", "y", "w", "h"))
        unit = _clean(_field_text(area.get("unit"))).casefold()
        if None not in (x, y, w, h) and unit == "pixel" and applied:
            x, y, w, h = x / applied[0], y / applied[1], w / applied[0], h / applied[1]
        elif unit not in ("", "normalized"):
            _count(skipped, f"area unit {unit[:20]!r} is not understood")
            continue
        box = None if None in (x, y, w, h) else _region_box(x - w / 2, y - h / 2, w, h)  # MWG: x, y = centre
        _add_region(found, "mwg", _field_text(fields.get("Name")), box, applied, skipped)
    return found


def _mp_regions(prop: Element, skipped: dict) -> list[dict]:
    found = []
    for item in _array_items(_struct_fields(prop).get("Regions"), skipped):
        fields = _struct_fields(item)
        rectangle = _field_text(fields.get("Rectangle"))
        parts = [_finite(p) for p in rectangle.split(",")] if rectangle else []
        box = _region_box(*parts) if len(parts) == 4 and None not in parts else None  # x, y = top left
        _add_region(found, "mp", _field_text(fields.get("PersonDisplayName")), box, None, skipped)
    return found


def _add_region(found: list, kind: str, name: str, box, applied, skipped: dict) -> None:
    name = " ".join(_clean(name).split())[:200]
    if not name:
        _count(skipped, "a face region without a name")
    elif box is None:
        _count(skipped, f"the area of the face region of {name[:60]!r} is not a box inside the image")
    else:
        found.append({"format": kind, "name": name, "box": [round(v, 6) for v in box], "applied_to": applied})


def _region_box(x: float, y: float, w: float, h: float) -> tuple[float, float, float, float] | None:
    """A top-left box clamped to the image; None if it is empty, larger than the image or outside it."""
    if not (0 < w <= 1 + _REGION_SLACK and 0 < h <= 1 + _REGION_SLACK):
        return None
    if x < -_REGION_SLACK or y < -_REGION_SLACK or x + w > 1 + _REGION_SLACK or y + h > 1 + _REGION_SLACK:
        return None
    left, top = max(0.0, x), max(0.0, y)
    right, bottom = min(1.0, x + w), min(1.0, y + h)
    return (left, top, right - left, bottom - top) if right > left and bottom > top else None


def _finite(text: str) -> float | None:
    """A finite number written as text (XMP numbers are text), else None."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _count(skipped: dict, reason: str) -> None:
    skipped[reason] = skipped.get(reason, 0) + 1


def _struct_fields(node: Element) -> dict:
    """The fields of an XMP structure by local name, in any of RDF's spellings.

    ``rdf:parseType="Resource"``, a nested ``rdf:Description`` and fields written as
    attributes (exiv2's way) all give the same dict: text for simple fields, the element
    for structures and arrays.
    """
    out: dict = {}

    def attributes(element):
        for key, value in element.attrib.items():
            if key.startswith("{") and not key.startswith(f"{{{_RDF}}}"):
                out.setdefault(key.rpartition("}")[2], value)

    attributes(node)
    children = [c for c in node if isinstance(c.tag, str)]
    if len(children) == 1 and children[0].tag == f"{{{_RDF}}}Description":
        attributes(children[0])
        children = [c for c in children[0] if isinstance(c.tag, str)]
    for child in children:
        if child.tag.startswith("{") and not child.tag.startswith(f"{{{_RDF}}}"):
            out.setdefault(child.tag.rpartition("}")[2], child)
    return out


def _field_text(value) -> str:
    """A simple field's text (the default item of a language alternative)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    values = _xmp_values(value)
    return values[0] if values else ""


def _array_items(value, skipped: dict) -> list[Element]:
    """The first :data:`MAX_FACE_REGIONS` ``rdf:li`` items of a region list (the rest counted as skipped)."""
    if not isinstance(value, Element):
        return []
    for container in value:
        if container.tag in (f"{{{_RDF}}}Bag", f"{{{_RDF}}}Seq", f"{{{_RDF}}}Alt"):
            items = [li for li in container if li.tag == f"{{{_RDF}}}li"]
            if len(items) > MAX_FACE_REGIONS:
                skipped[f"a list of {len(items)} regions, over the {MAX_FACE_REGIONS} read"] = (
                    len(items) - MAX_FACE_REGIONS)
            return items[:MAX_FACE_REGIONS]
    return []


# --------------------------------------------------------------------------------------
# Merging
# --------------------------------------------------------------------------------------

_DATE_PRECEDENCE = (
    "exif:DateTimeOriginal",
    "exif:DateTimeDigitized",
    "xmp:DateTimeOriginal",
    "xmp:DateCreated",
    "xmp:DateTimeDigitized",
    "xmp:CreateDate",
    "iptc:DateCreated",
    "sidecar:DateTimeOriginal",
    "sidecar:DateCreated",
    "sidecar:DateTimeDigitized",
    "sidecar:CreateDate",
    TakenFrom.GPS_TIME,  # a fix, not the shutter: after every capture date, before a modification time
    "exif:DateTime",
)

# Fields taken from the first block that has them (EXIF, then XMP, then sidecars).
_EXIF_FIRST = (
    "camera_make",
    "camera_model",
    "lens",
    "focal_length",
    "aperture",
    "exposure_time",
    "iso",
    "orientation",
    "altitude",
)


def _merge(*, exif, iptc, xmp, sidecars, iptc_changed: bool) -> PhotoMetadata:
    """Apply the precedence rules of the module docstring to the blocks' facts."""
    meta = PhotoMetadata()
    sources: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    blocks = [("exif", exif), ("xmp", xmp)] + [("sidecar", s) for s in sidecars]
    # MWG: XMP before IPTC unless the IPTC digest shows the IPTC was edited since.
    mirrored = [("iptc", iptc), ("xmp", xmp)] if iptc_changed else [("xmp", xmp), ("iptc", iptc)]

    def pick(name, candidates):
        for source, facts in candidates:
            value = facts.get(name) if facts else None
            if value not in (None, "", []) and not (name in ("title", "description") and _is_boilerplate(value)):
                sources[name] = source
                return value
        return None

    for name in _EXIF_FIRST:
        value = pick(name, blocks)
        if value is not None:
            setattr(meta, name, value)
    if software := pick("software", blocks):
        extra["software"] = software

    position = next(
        ((source, facts) for source, facts in blocks if facts and facts.get("latitude") is not None), None
    )
    if position is not None:
        meta.latitude, meta.longitude = position[1]["latitude"], position[1]["longitude"]
        sources["location"] = position[0]

    sidecar_blocks = [("sidecar", s) for s in sidecars]
    meta.title = pick("title", sidecar_blocks + mirrored + [("exif", exif)]) or ""
    meta.description = pick("description", sidecar_blocks + [("exif", exif)] + mirrored) or ""
    meta.rating = pick("rating", sidecar_blocks + [("xmp", xmp), ("exif", exif)])
    for name in ("city", "sublocation", "state", "country"):
        value = pick(name, sidecar_blocks + mirrored)
        if value:
            extra[name] = value
    for name in ("artist", "copyright"):  # MWG: EXIF, then XMP, then IPTC
        value = pick(name, [("exif", exif)] + mirrored + sidecar_blocks)
        if value:
            extra[name] = value

    # Face regions: the first sidecar that has any (the owner's latest edits), else the file's XMP.
    for source, facts in sidecar_blocks + [("xmp", xmp)]:
        if facts and facts.get("regions"):
            extra["face_regions"] = facts["regions"]
            sources["face_regions"] = source
            break

    meta.keywords, keyword_sources = _keywords(sidecars, mirrored, xmp, exif)
    if keyword_sources:
        sources["keywords"] = keyword_sources

    dates = [d for facts in (exif, xmp, iptc) if facts for d in facts.get("dates", [])]
    dates += [d._replace(source=d.source.replace("xmp:", "sidecar:")) for s in sidecars for d in s.get("dates", [])]
    if dates:
        best = min(dates, key=lambda d: _DATE_PRECEDENCE.index(d.source))
        meta.taken_at, meta.taken_at_offset, meta.taken_at_source = best.when, best.offset, best.source
        if best.date_only:
            extra["taken_at_date_only"] = True

    extra["sources"] = sources
    meta.extra = extra
    return meta


def _keywords(sidecars, mirrored, xmp, exif) -> tuple[list[str], list[str]]:
    """Union of every keyword vocabulary, de-duplicated case-insensitively, first spelling kept.

    Order: sidecars (the owner's latest edits), then the flat dc:subject / IPTC Keywords pair
    reconciled per MWG, then hierarchical and Windows keywords from the file.
    """
    groups = [("sidecar", s.get("subject", []) + s.get("other_keywords", [])) for s in sidecars]
    for source, facts in mirrored:
        if facts and facts.get("subject"):
            groups.append((source, facts["subject"]))
            break
    if xmp:
        groups.append(("xmp", xmp.get("other_keywords", [])))
    if exif:
        groups.append(("exif", exif.get("other_keywords", [])))

    keywords, seen, used = [], set(), []
    for source, group in groups:
        for keyword in group:
            keyword = "|".join(part.strip() for part in keyword.split("|") if part.strip())
            if keyword and keyword.casefold() not in seen:
                seen.add(keyword.casefold())
                keywords.append(keyword)
                if source not in used:
                    used.append(source)
    return keywords, used


def _fall_back_to_file_dates(meta: PhotoMetadata, path, mtime: float | None, log: _Log) -> None:
    """No capture time inside the file: use its name, then its modification time (UTC)."""
    from_name = date_from_filename(path)
    if from_name is not None:
        meta.taken_at, meta.taken_at_source = from_name[0], TakenFrom.FILENAME
        if from_name[1]:
            meta.extra["taken_at_date_only"] = True
        return
    if mtime is None:
        return
    try:
        meta.taken_at = datetime(1970, 1, 1) + timedelta(seconds=mtime)
    except (OverflowError, ValueError, TypeError):
        log.warn(f"file mtime is not a usable time: {mtime!r}")
        return
    meta.taken_at_offset, meta.taken_at_source = "+00:00", TakenFrom.FILE_MTIME


def _place_in_time_zone(meta: PhotoMetadata, log: _Log) -> None:
    """Set ``taken_at_zone`` and ``taken_at_zone_source`` for the capture time.

    A stated offset wins; the zone at the GPS position is then recorded as its name only
    when its offset at that instant agrees. A UTC clock (GPS time, file mtime) and a naive
    wall clock are placed in the zone at the GPS position. Without either the capture
    time stays floating.
    """
    if meta.taken_at is None:
        return
    zone = ""
    # (A file time far outside the years a date may have is left in UTC: no zone reaches there.)
    if meta.latitude is not None and meta.longitude is not None and meta.taken_at.year in _YEAR_RANGE:
        zone = zone_at(meta.latitude, meta.longitude)
        if zone and time_zone(zone) is None:
            log.warn(f"time zone {zone!r} at the GPS position is not in this system's tz database; ignored")
            zone = ""
    tz = time_zone(zone)
    if meta.taken_at_offset and meta.taken_at_source not in _UTC_CLOCKS:
        meta.taken_at_zone_source = ZoneFrom.OFFSET
        instant, _ = capture_instant(meta.taken_at, meta.taken_at_offset)
        if tz is not None and instant.astimezone(tz).utcoffset() == offset_delta(meta.taken_at_offset):
            meta.taken_at_zone = zone
    elif zone:
        meta.taken_at_zone, meta.taken_at_zone_source = zone, ZoneFrom.GPS
    elif meta.taken_at_offset:
        meta.taken_at_zone_source = ZoneFrom.OFFSET


# --------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------


def _scalar(value):
    """The first item of an array value; a one-byte bytes value as an int."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    if isinstance(value, (bytes, bytearray)) and len(value) == 1:
        return value[0]
    return value


def _number(value) -> float | None:
    """A finite float from an int, float, rational (any library's) or "a/b" text; else None."""
    value = _scalar(value)
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            result = float(value)
        elif hasattr(value, "numerator") and hasattr(value, "denominator"):
            if not value.denominator:
                return None
            result = value.numerator / value.denominator
        elif isinstance(value, (str, bytes)):
            text = _tag_text(value)
            numerator, _, denominator = text.partition("/")
            result = float(numerator) / float(denominator) if denominator else float(numerator)
        else:
            return None
    except (ValueError, TypeError, OverflowError, ZeroDivisionError):
        return None
    return result if math.isfinite(result) else None


def _positive(value) -> float | None:
    number = _number(value)
    return number if number is not None and number > 0 else None


def _orientation(value, block: str, log: _Log) -> int | None:
    number = _number(value)
    if number in (1, 2, 3, 4, 5, 6, 7, 8):
        return int(number)
    log.warn(f"{block} Orientation {_scalar(value)!r} is not 1..8; ignored")
    return None


def _rating(value, block: str, log: _Log) -> int | None:
    number = _number(value)
    if number is not None and number == int(number) and -1 <= number <= 5:
        return int(number)
    log.warn(f"{block} Rating {_scalar(value)!r} is not -1..5; ignored")
    return None


def _tag_text(value) -> str:
    """Text of an EXIF ASCII value: cut at the first NUL, decoded, whitespace stripped.

    Pillow decodes EXIF strings as Latin-1, so they are turned back into bytes first and
    decoded as UTF-8 (what the MWG asks writers to use), falling back to Windows-1252.
    """
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, int) and 0 <= v < 256 for v in value):
            value = bytes(value)
        else:
            value = value[0] if value else ""
    if isinstance(value, str):
        try:
            value = value.encode("latin-1")
        except UnicodeEncodeError:
            return _clean(value.split("\x00", 1)[0])
    if isinstance(value, (bytes, bytearray)):
        return _clean(_decode(bytes(value).split(b"\x00", 1)[0]))
    return _clean(str(value))


def _xp_text(value) -> str:
    """Windows XP* tags: UTF-16LE bytes (Pillow: bytes; exifread: a list of ints)."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) and 0 <= v < 256 for v in value):
        value = bytes(value)
    if not isinstance(value, (bytes, bytearray)):
        return ""
    return _clean(bytes(value).decode("utf-16-le", "replace").split("\x00", 1)[0])


def _decode(data: bytes) -> str:
    """UTF-8, else Windows-1252, else Latin-1 (which never fails)."""
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _clean(text: str) -> str:
    """Strip whitespace and NULs, normalise line ends (IPTC uses CR)."""
    return text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n").strip()


def _is_boilerplate(text) -> bool:
    return isinstance(text, str) and text.strip().casefold() in _BOILERPLATE_CAPTIONS


def _as_bytes(value) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (list, tuple)):
        return bytes(v & 0xFF for v in value if isinstance(v, int))
    return bytes(value)


def _display_name(path) -> str:
    """A file's base name as readable text, whatever bytes it is made of."""
    return _decode(os.fsencode(os.path.basename(os.fspath(path))))


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"


def _json_safe(value):
    """Recursively make ``value`` storable in a JSON (Postgres jsonb) column.

    jsonb rejects NUL characters, lone surrogates and NaN; tuples become lists.
    """
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _json_safe(str(value))
