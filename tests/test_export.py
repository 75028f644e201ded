"""Metadata export (tagging.export, tagging.export_jobs): what is written, read back with the real exiftool.

Every check reads the written file with ``exiftool -j -G1 -struct`` (a reader that
is not exiv2, the library that wrote it) and compares each field.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pytest
from PIL import Image

from gallery import engine, libraries, metadata, scans
from gallery.models import Photo, PhotoStage
from gallery.content import file_hash
from gallery.thumbnails import thumbnail_path
from tagging import export, export_jobs, tags
from tagging.export_jobs import ExportOptions, export_photo
from tagging.models import Caption, OwnerCaption, PhotoTag
from tests.conftest import require_tool
from tests.factories import make_photo

pytestmark = [pytest.mark.django_db, pytest.mark.exiftool]

TAKEN = datetime(2021, 6, 5, 14, 30, tzinfo=timezone.utc)
NIKON = "camera_jpeg__nikon_d70s_gps_xmp.jpg"  # EXIF, GPS, Nikon makernotes, XMP, IPTC with a current digest
HEIC = "heic__nikon_d5300_gps_xmp_small.heic"
IPTC_ONLY = "xmp_iptc__iptc_keywords_caption_city.jpg"  # IPTC Keywords ExifTool, Test, IPTC; no XMP

# The 64-byte IPTC limit falls inside 東 (bytes 62-64): the keyword must be cut before it.
LONG = "Familientreffen am Zürichsee mit Großmutter Grünwald, dann 東京 und Kyōto"
TAGS = ["Places/Italy/Rome", "Animals/Dog", "Places/Switzerland/Zürich", "Places/Japan/東京", "Mood/Party 🎉",
        LONG]
KEYWORDS = ["Places", "Italy", "Rome", "Animals", "Dog", "Switzerland", "Zürich", "Japan", "東京", "Mood",
            "Party 🎉", LONG]
HIERARCHICAL = ["Places|Italy|Rome", "Animals|Dog", "Places|Switzerland|Zürich", "Places|Japan|東京",
                "Mood|Party 🎉", LONG]
OWNER_CAPTION = 'Nonna said "basta!"\nand we went for gelato.'
TITLE = "Rome, 2021 — «la famiglia»"

# What changes with any rewrite and is not a field: the file system, exiftool's own derived
# values, exiv2's toolkit name, where blocks now start in the file and which blocks a WebP holds.
VOLATILE_GROUPS = ("SourceFile", "System:", "File:", "ExifTool:", "Composite:")
VOLATILE_KEYS = {"XMP-x:XMPToolkit", "IFD0:StripOffsets", "IFD1:ThumbnailOffset", "PreviewIFD:PreviewImageStart",
                 "RIFF:WebP_Flags"}


@pytest.fixture(autouse=True)
def _exiftool():
    require_tool("exiftool", "libimage-exiftool-perl")


# -- helpers ---------------------------------------------------------------------------


def read_back(path: Path, *args: str) -> dict:
    """exiftool's view of ``path`` (``-j -G1 -struct``)."""
    out = subprocess.run(["exiftool", "-j", "-G1", "-struct", *args, str(path)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)[0]


def as_list(value) -> list:
    """exiftool gives a one-element list as a plain value."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def fields(data: dict, prefix: str) -> dict:
    return {k: v for k, v in data.items() if k.startswith(prefix)}


def untouched(data: dict, written: set[str]) -> dict:
    """The fields of ``data`` that an export must leave exactly as they were."""
    return {k: v for k, v in data.items()
            if not k.startswith(VOLATILE_GROUPS) and k not in VOLATILE_KEYS and k not in written}


def pixels(path: Path) -> tuple:
    with Image.open(path) as image:
        return image.mode, image.size, image.tobytes()


def leftovers(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*.shoebox-*.tmp")]


def photo_with_file(library, relpath: str, source: Path | None = None, **fields) -> Photo:
    """A photo row whose one file is ``source`` copied to ``relpath`` in the library (or a small JPEG)."""
    dest = Path(library.root) / relpath
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source is not None:
        shutil.copyfile(source, dest)
    else:
        Image.new("RGB", (40, 30), (30, 120, 200)).save(dest, "JPEG")
    return make_photo(library, relpath, taken=TAKEN, **fields)


def tag(photo: Photo, *paths: str) -> None:
    for path in paths:
        link = tags.add(photo, path)
        assert link.state == PhotoTag.State.ACCEPTED


def accepted_paths(photo: Photo) -> list[str]:
    return sorted(PhotoTag.objects.filter(photo=photo, state=PhotoTag.State.ACCEPTED).values_list("tag__path",
                                                                                                 flat=True))


def model_caption(photo: Photo) -> Caption:
    return Caption.objects.create(photo=photo, backend="mlx", model="qwen2.5-vl-3b", prompt_version="p7",
                                  raw_text="{}", caption="Two dogs on a beach.",
                                  description="Two dogs run along a sandy beach at low tide.")


def the_one(results) -> export.FileResult:
    assert len(results) == 1, results
    return results[0]


def written_ok(results) -> export.FileResult:
    result = the_one(results)
    assert result.error == "" and result.written, result
    return result


def expected_xmp(*, keywords=KEYWORDS, hierarchical=HIERARCHICAL, description=OWNER_CAPTION, title=TITLE,
                 rating=4) -> dict:
    return {
        "XMP-dc:Subject": sorted(keywords),
        "XMP-lr:HierarchicalSubject": sorted(hierarchical),
        "XMP-digiKam:TagsList": sorted(h.replace("|", "/") for h in hierarchical),
        "XMP-dc:Description": description,
        "XMP-dc:Title": title,
        "XMP-xmp:Rating": rating,
    }


def xmp_as_written(data: dict) -> dict:
    """The XMP fields Shoebox writes, with the unordered arrays sorted for comparison."""
    out = {}
    for key in ("XMP-dc:Subject", "XMP-lr:HierarchicalSubject", "XMP-digiKam:TagsList"):
        if key in data:
            out[key] = sorted(as_list(data[key]))
    for key in ("XMP-dc:Description", "XMP-dc:Title", "XMP-xmp:Rating"):
        if key in data:
            out[key] = data[key]
    return out


def iptc_cut(keyword: str) -> str:
    """What IPTC must hold for ``keyword``: the longest prefix of whole characters within 64 bytes."""
    cut = keyword
    while len(cut.encode("utf-8")) > 64:
        cut = cut[:-1]
    return cut


@pytest.fixture
def rome(library):
    """A JPEG photo with hierarchical, unicode and long tags, the owner's caption, a title and a rating."""
    photo = photo_with_file(library, "2021/IMG_0001.jpg", title=TITLE, rating=4)
    tag(photo, *TAGS)
    OwnerCaption.objects.create(photo=photo, caption=OWNER_CAPTION)
    model_caption(photo)  # the owner's caption wins over the model's
    return photo


# -- 1. sidecars -----------------------------------------------------------------------


@pytest.mark.parametrize("naming, name", [("darktable", "IMG_0001.jpg.xmp"), ("lightroom", "IMG_0001.xmp")])
def test_a_sidecar_round_trips_through_exiftool(rome, library, naming, name):
    original = Path(library.root) / "2021" / "IMG_0001.jpg"
    before = original.read_bytes()

    result = written_ok(export_photo(rome, ExportOptions(naming=naming)))

    sidecar = original.with_name(name)
    assert result.path == str(sidecar) and result.mode == "sidecar"
    assert sorted(p.name for p in sidecar.parent.iterdir()) == sorted(["IMG_0001.jpg", name])
    assert original.read_bytes() == before, "sidecar mode never touches the original"

    data = read_back(sidecar)
    assert xmp_as_written(data) == expected_xmp()
    # Nothing else: the owner's caption and tags are no model's, so no shoebox provenance either.
    assert set(fields(data, "XMP-")) == set(expected_xmp()) | {"XMP-x:XMPToolkit"}

    raw = sidecar.read_text(encoding="utf-8")
    assert re.search(r"<dc:subject>\s*<rdf:Bag>", raw), "dc:subject is an unordered Bag"
    assert re.search(r"<lr:hierarchicalSubject>\s*<rdf:Bag>", raw), "lr:hierarchicalSubject is an unordered Bag"

    again = the_one(export_photo(rome, ExportOptions(naming=naming)))
    assert (again.written, again.changes, again.error) == (False, {}, ""), "a second export has nothing to change"
    assert sidecar.read_text(encoding="utf-8") == raw


def test_a_models_caption_and_tags_are_named_as_the_models(library):
    photo = photo_with_file(library, "beach.jpg")
    model_caption(photo)
    beach = tags.for_path(["Beach"])
    PhotoTag.objects.create(photo=photo, tag=beach, source=PhotoTag.Source.CAPTION, state=PhotoTag.State.ACCEPTED,
                            term="beach", model="qwen2.5-vl-3b", prompt_version="p7")

    written_ok(export_photo(photo, ExportOptions()))

    data = read_back(Path(library.root) / "beach.jpg.xmp")
    assert fields(data, "XMP-") == {
        "XMP-x:XMPToolkit": data["XMP-x:XMPToolkit"],
        "XMP-dc:Subject": ["Beach"],
        "XMP-lr:HierarchicalSubject": ["Beach"],
        "XMP-digiKam:TagsList": ["Beach"],
        "XMP-dc:Description": "Two dogs run along a sandy beach at low tide.",
        "XMP-dc:Title": "Two dogs on a beach.",
        "XMP-shoebox:AIFields": ["dc:description", "dc:title", "dc:subject"],
        "XMP-shoebox:AIModel": "mlx:qwen2.5-vl-3b",
        "XMP-shoebox:AIPromptVersion": "p7",
    }


def test_an_owner_caption_after_an_export_takes_the_model_provenance_off_the_sidecar(library):
    photo = photo_with_file(library, "beach.jpg", title="Low tide")
    model_caption(photo)
    written_ok(export_photo(photo, ExportOptions()))
    sidecar = Path(library.root) / "beach.jpg.xmp"
    assert as_list(read_back(sidecar)["XMP-shoebox:AIFields"]) == ["dc:description"]

    tags.set_owner_caption(photo, "Rex and Bella at low tide.")
    written_ok(export_photo(photo, ExportOptions()))

    data = read_back(sidecar)
    assert data["XMP-dc:Description"] == "Rex and Bella at low tide."
    assert fields(data, "XMP-shoebox:") == {}, "dc:description is the owner's now, not a model's"


# -- 2. embedded -----------------------------------------------------------------------


def _jpeg(path):
    Image.new("RGB", (48, 32), (200, 80, 40)).save(path, "JPEG", quality=90)


def _tiff(path):
    Image.new("RGB", (48, 32), (20, 160, 90)).save(path, "TIFF")


def _png(path):
    Image.new("RGBA", (48, 32), (10, 20, 230, 128)).save(path, "PNG")


def _webp(path):
    Image.new("RGB", (48, 32), (90, 90, 10)).save(path, "WEBP", quality=80)


# IPTC-IIM exists in JPEG, TIFF and PNG (as exiv2 and exiftool store it); WebP has EXIF and XMP only.
FORMATS = [("IMG.jpg", _jpeg, True), ("IMG.tif", _tiff, True), ("IMG.png", _png, True), ("IMG.webp", _webp, False)]


@pytest.mark.parametrize("name, make, has_iptc", FORMATS, ids=[f[0] for f in FORMATS])
def test_embedded_export_writes_xmp_iptc_and_exif_and_keeps_the_pixels(rome, library, tmp_path, name, make,
                                                                        has_iptc):
    source = tmp_path / name
    make(source)
    sf = rome.files.get()
    path = Path(library.root) / "2021" / name
    shutil.copyfile(source, path)
    type(sf).objects.filter(pk=sf.pk).update(path_bytes=f"2021/{name}".encode(), relpath=f"2021/{name}")
    before, before_pixels = read_back(path), pixels(path)

    result = written_ok(export_photo(rome, ExportOptions(embedded=True)))

    assert result.mode == "embedded" and result.path == str(path)
    assert pixels(path) == before_pixels
    assert leftovers(Path(library.root)) == []
    data = read_back(path)
    assert xmp_as_written(data) == expected_xmp()
    assert data["IFD0:ImageDescription"] == OWNER_CAPTION
    written = set(expected_xmp()) | {"IFD0:ImageDescription"}
    if has_iptc:
        keywords = as_list(data["IPTC:Keywords"])
        assert sorted(keywords) == sorted(iptc_cut(k) for k in KEYWORDS)
        assert all(len(k.encode("utf-8")) <= 64 for k in keywords)
        assert iptc_cut(LONG) in keywords
        with pytest.raises(UnicodeDecodeError):  # the 64th byte is inside a character: cut before it
            LONG.encode("utf-8")[:64].decode("utf-8")
        assert data["IPTC:Caption-Abstract"] == OWNER_CAPTION
        assert data["IPTC:CodedCharacterSet"] == "UTF8"
        assert data["IPTC:ObjectName"] == TITLE
        written |= {"IPTC:Keywords", "IPTC:Caption-Abstract", "IPTC:CodedCharacterSet", "IPTC:ObjectName"}
    else:
        assert fields(data, "IPTC:") == {}
    assert untouched(data, written) == untouched(before, written)

    rome.refresh_from_db()
    assert rome.content_hash == file_hash(os.fsencode(path)), "the photo follows its rewritten file"
    assert rome.files.get().size == path.stat().st_size


def test_embedded_export_into_a_camera_jpeg_keeps_its_exif_gps_makernotes_and_xmp(library, corpus):
    photo = photo_with_file(library, "DSC_0001.jpg", corpus / NIKON, title=TITLE, rating=4)
    tag(photo, *TAGS)
    OwnerCaption.objects.create(photo=photo, caption=OWNER_CAPTION)
    path = Path(library.root) / "DSC_0001.jpg"
    before, before_pixels = read_back(path), pixels(path)
    assert before["IFD0:Make"] == "NIKON CORPORATION" and len(fields(before, "Nikon:")) > 50

    written_ok(export_photo(photo, ExportOptions(embedded=True)))

    data = read_back(path)
    assert pixels(path) == before_pixels
    assert xmp_as_written(data) == expected_xmp()
    assert sorted(as_list(data["IPTC:Keywords"])) == sorted(iptc_cut(k) for k in KEYWORDS)
    assert (data["IPTC:Caption-Abstract"], data["IFD0:ImageDescription"]) == (OWNER_CAPTION, OWNER_CAPTION)
    for key in ("IFD0:Make", "IFD0:Model", "ExifIFD:DateTimeOriginal", "GPS:GPSLatitude", "GPS:GPSLongitude",
                "GPS:GPSAltitude", "ExifIFD:LensModel", "XMP-xmp:CreateDate", "XMP-aux:SerialNumber",
                "XMP-photoshop:DateCreated", "XMP-xmpMM:DocumentID"):
        assert data[key] == before[key], key
    assert fields(data, "Nikon:") == fields(before, "Nikon:"), "the makernotes survive"
    written = set(expected_xmp()) | {"IFD0:ImageDescription", "IPTC:Keywords", "IPTC:Caption-Abstract",
                                     "IPTC:ObjectName", "Photoshop:IPTCDigest"}
    # exiv2 rewrites an IIM time without a zone (this camera's "143947") in the standard's HHMMSS±HHMM form.
    written.add("IPTC:TimeCreated")
    assert data["IPTC:TimeCreated"].startswith(before["IPTC:TimeCreated"])
    assert untouched(data, written) == untouched(before, written)

    # Photoshop's digest of the IPTC block stays current, so readers that follow the MWG rules (the
    # scanner, Lightroom) keep preferring the XMP, with the whole long keyword, to the 64-byte IPTC copy.
    with Image.open(path) as image:  # as the scanner reads it
        again = metadata.read_metadata(path, image)
    assert again.extra["sources"]["keywords"][0] == "xmp"
    assert LONG in again.keywords and iptc_cut(LONG) not in again.keywords
    assert (again.title, again.description) == (TITLE, OWNER_CAPTION)
    mwg = read_back(path, "-use", "MWG", "-MWG:Keywords", "-MWG:Description")
    assert sorted(as_list(mwg["MWG:Keywords"])) == sorted(KEYWORDS)
    assert mwg["MWG:Description"] == OWNER_CAPTION
    assert data["Photoshop:IPTCDigest"] == data["File:CurrentIPTCDigest"]
    assert "ExifTool:Warning" not in data, data.get("ExifTool:Warning")


def test_embedded_export_keeps_the_iptc_keywords_of_a_file_without_xmp(library, corpus):
    photo = photo_with_file(library, "city.jpg", corpus / IPTC_ONLY, title="Piazza Navona")
    tag(photo, "Places/Italy/Rome")
    path = Path(library.root) / "city.jpg"
    before = read_back(path)
    assert as_list(before["IPTC:Keywords"]) == ["ExifTool", "Test", "IPTC"]
    assert before["Photoshop:IPTCDigest"] != before["File:CurrentIPTCDigest"], "its IPTC was edited after its digest"

    written_ok(export_photo(photo, ExportOptions(embedded=True)))
    data = read_back(path)
    assert data["Photoshop:IPTCDigest"] == before["Photoshop:IPTCDigest"], "a stale digest is left stale"
    # With that digest, MWG readers take the title from IPTC first: it says the new title too.
    assert (before["IPTC:ObjectName"], data["IPTC:ObjectName"], data["XMP-dc:Title"]) == (
        "Test IPTC picture", "Piazza Navona", "Piazza Navona")
    with Image.open(path) as image:
        assert metadata.read_metadata(path, image).title == "Piazza Navona"
    union = ["ExifTool", "Test", "IPTC", "Places", "Italy", "Rome"]
    assert sorted(as_list(data["IPTC:Keywords"])) == sorted(union)
    assert sorted(as_list(data["XMP-dc:Subject"])) == sorted(union)

    written_ok(export_photo(photo, ExportOptions(embedded=True, replace_keywords=True)))
    data = read_back(path)
    assert sorted(as_list(data["IPTC:Keywords"])) == ["Italy", "Places", "Rome"]
    assert sorted(as_list(data["XMP-dc:Subject"])) == ["Italy", "Places", "Rome"]


def test_embedded_export_of_a_photo_without_tags_writes_its_caption(library):
    photo = photo_with_file(library, "plain.jpg")
    OwnerCaption.objects.create(photo=photo, caption="Just the sea.")
    path = Path(library.root) / "plain.jpg"

    written_ok(export_photo(photo, ExportOptions(embedded=True)))

    data = read_back(path)
    assert (data["XMP-dc:Description"], data["IPTC:Caption-Abstract"], data["IFD0:ImageDescription"]) == (
        "Just the sea.", "Just the sea.", "Just the sea.")
    assert "XMP-dc:Subject" not in data and "IPTC:Keywords" not in data


# -- 3. HEIC ---------------------------------------------------------------------------


def test_heic_cannot_be_written_in_place_but_gets_a_sidecar(library, corpus):
    photo = photo_with_file(library, "IMG_0002.heic", corpus / HEIC, title="Zürich")
    tag(photo, "Places/Switzerland/Zürich")
    path = Path(library.root) / "IMG_0002.heic"
    before = path.read_bytes()

    result = the_one(export_photo(photo, ExportOptions(embedded=True)))

    assert not result.written
    assert "heic" in result.error.lower() and "sidecar instead" in result.error, result.error
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["IMG_0002.heic"], "nothing else was written"

    written_ok(export_photo(photo, ExportOptions()))
    data = read_back(path.with_name("IMG_0002.heic.xmp"))
    assert xmp_as_written(data) == {
        "XMP-dc:Subject": ["Places", "Switzerland", "Zürich"],
        "XMP-lr:HierarchicalSubject": ["Places|Switzerland|Zürich"],
        "XMP-digiKam:TagsList": ["Places/Switzerland/Zürich"],
        "XMP-dc:Title": "Zürich",
    }
    assert path.read_bytes() == before


# -- 4. another tool's sidecar -----------------------------------------------------------


def foreign_sidecar(path: Path) -> dict:
    """A sidecar as another tool leaves it: a city, a label, its own keywords."""
    subprocess.run(["exiftool", "-q", "-o", str(path), "-XMP-photoshop:City=Berlin", "-XMP-xmp:Label=Red",
                    "-XMP-dc:Subject=Holiday", "-XMP-lr:HierarchicalSubject=Trips|Summer"], check=True)
    return read_back(path)


def test_another_tools_sidecar_keeps_its_fields_and_keywords_merge(library):
    photo = photo_with_file(library, "IMG_0003.jpg")
    tag(photo, "Places/Italy/Rome", "holiday")
    sidecar = Path(library.root) / "IMG_0003.jpg.xmp"
    before = foreign_sidecar(sidecar)
    assert (before["XMP-photoshop:City"], before["XMP-xmp:Label"]) == ("Berlin", "Red")

    written_ok(export_photo(photo, ExportOptions()))

    data = read_back(sidecar)
    assert (data["XMP-photoshop:City"], data["XMP-xmp:Label"]) == ("Berlin", "Red")
    # "holiday" is the same keyword as the file's "Holiday": a union, without a second spelling.
    assert sorted(as_list(data["XMP-dc:Subject"])) == ["Holiday", "Italy", "Places", "Rome"]
    assert sorted(as_list(data["XMP-lr:HierarchicalSubject"])) == ["Places|Italy|Rome", "Trips|Summer", "holiday"]

    written_ok(export_photo(photo, ExportOptions(replace_keywords=True)))

    data = read_back(sidecar)
    assert (data["XMP-photoshop:City"], data["XMP-xmp:Label"]) == ("Berlin", "Red")
    assert sorted(as_list(data["XMP-dc:Subject"])) == ["Italy", "Places", "Rome", "holiday"]
    assert sorted(as_list(data["XMP-lr:HierarchicalSubject"])) == ["Places|Italy|Rome", "holiday"]
    assert sorted(as_list(data["XMP-digiKam:TagsList"])) == ["Places/Italy/Rome", "holiday"]


# -- 5. files that cannot be written -------------------------------------------------------


@contextmanager
def read_only(folder: Path):
    """``folder`` made read-only in a way the current user respects (root ignores mode bits, not ``chattr +i``)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if not chattr or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("the tests run as root, for whom a 0o555 folder is still writable, and `chattr +i` "
                    "(which root respects) is not available on this file system")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


def test_a_read_only_folder_gives_a_per_file_error_and_changes_nothing(library, corpus):
    photo = photo_with_file(library, "ro/DSC_0001.jpg", corpus / NIKON)
    tag(photo, "Animals/Dog")
    folder = Path(library.root) / "ro"
    before = (folder / "DSC_0001.jpg").read_bytes()

    with read_only(folder):
        embedded = the_one(export_photo(photo, ExportOptions(embedded=True)))
        sidecar = the_one(export_photo(photo, ExportOptions()))

    for result in (embedded, sidecar):
        assert not result.written and "cannot write" in result.error and "DSC_0001" in result.error, result
    assert (folder / "DSC_0001.jpg").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["DSC_0001.jpg"]
    assert Photo.objects.get(pk=photo.pk).content_hash == photo.content_hash


def test_an_export_folder_that_cannot_be_made_gives_a_per_file_error(library, tmp_path):
    photo = photo_with_file(library, "IMG_0004.jpg")
    tag(photo, "Animals/Dog")
    blocker = tmp_path / "exports"
    blocker.write_text("a file where the export folder should be")

    result = the_one(export_photo(photo, ExportOptions(out=str(blocker / "sidecars"))))

    assert not result.written and "cannot write" in result.error and "IMG_0004.jpg.xmp" in result.error, result
    assert blocker.read_text() == "a file where the export folder should be"
    assert leftovers(tmp_path) == []


def test_an_unreadable_sidecar_gives_a_per_file_error_and_is_left_as_it_is(library):
    photo = photo_with_file(library, "IMG_0008.jpg")
    tag(photo, "Animals/Dog")
    sidecar = Path(library.root) / "IMG_0008.jpg.xmp"
    sidecar.write_bytes(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF")  # cut off mid-write by another tool

    result = the_one(export_photo(photo, ExportOptions()))

    assert not result.written and "IMG_0008.jpg.xmp" in result.error and "cannot be read" in result.error, result
    assert sidecar.read_bytes() == b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF"
    assert leftovers(Path(library.root)) == []


def test_sidecars_can_go_to_an_export_folder_that_mirrors_the_library(library, tmp_path):
    photo = photo_with_file(library, "2021/06/IMG_0009.jpg")
    tag(photo, "Animals/Dog")
    out = tmp_path / "exports"

    result = written_ok(export_photo(photo, ExportOptions(naming="lightroom", out=str(out))))

    assert result.path == str(out / "2021" / "06" / "IMG_0009.xmp")
    assert sorted(as_list(read_back(out / "2021" / "06" / "IMG_0009.xmp")["XMP-dc:Subject"])) == ["Animals", "Dog"]
    assert sorted(p.name for p in (Path(library.root) / "2021" / "06").iterdir()) == ["IMG_0009.jpg"]


@contextmanager
def file_size_limit(limit: int):
    """Writes past ``limit`` bytes fail with EFBIG (as a full disk would fail them), even for root."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error, not the signal that kills
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_a_write_that_fails_halfway_leaves_the_original_and_no_temporary_file(library, corpus):
    photo = photo_with_file(library, "DSC_0001.jpg", corpus / NIKON)
    tag(photo, "Animals/Dog")
    path = Path(library.root) / "DSC_0001.jpg"
    before, old_hash = path.read_bytes(), photo.content_hash

    with file_size_limit(len(before) // 2):  # the copy to the temporary file stops halfway
        result = the_one(export_photo(photo, ExportOptions(embedded=True)))

    assert not result.written
    assert result.error.startswith(f"cannot write {path}:") and "too large" in result.error.lower(), result.error
    assert path.read_bytes() == before
    assert leftovers(Path(library.root)) == []
    assert Photo.objects.get(pk=photo.pk).content_hash == old_hash


# -- 6. rescans after an embedded export ------------------------------------------------------


def test_a_rescan_after_an_embedded_export_keeps_the_photo_and_its_tags(library_dir, settings):
    path = library_dir.add("gps__nikon_p6000_DSCN0010.jpg", as_="2008/DSCN0010.jpg")
    library, _ = libraries.add_library(str(library_dir.path))
    first = scans.import_library(library, sync=True)
    (imported,) = first.files
    photo = Photo.objects.get(pk=imported.photo_id)
    tag(photo, "Places/Italy/Rome", "Animals/Dog")
    accepted = accepted_paths(photo)
    old_hash = photo.content_hash
    old_thumbs = {size: thumbnail_path(settings.THUMBNAIL_DIR, old_hash, size) for size in settings.THUMBNAIL_SIZES}
    assert all(p.exists() for p in old_thumbs.values()), "the synchronous import rendered the thumbnails"
    thumb_bytes = {size: p.read_bytes() for size, p in old_thumbs.items()}

    written_ok(export_photo(photo, ExportOptions(embedded=True)))

    photo.refresh_from_db()
    assert photo.content_hash == file_hash(os.fsencode(path)) != old_hash
    assert photo.file_size == path.stat().st_size
    for size, old in old_thumbs.items():
        new = thumbnail_path(settings.THUMBNAIL_DIR, photo.content_hash, size)
        assert not old.exists() and new.read_bytes() == thumb_bytes[size], f"the {size} thumbnail moved"

    second = scans.import_library(library)
    (again,) = second.files
    assert (again.path, again.outcome, again.photo_id) == ("2008/DSCN0010.jpg", "unchanged", photo.pk)
    assert Photo.objects.count() == 1
    assert accepted_paths(photo) == accepted and {"Places/Italy/Rome", "Animals/Dog"} <= set(accepted)
    assert Photo.objects.get().content_hash == file_hash(os.fsencode(path))


# -- 7. dry runs ------------------------------------------------------------------------------


def test_a_dry_run_previews_the_changes_and_writes_nothing(library, corpus):
    photo = photo_with_file(library, "DSC_0001.jpg", corpus / NIKON, rating=3)
    tag(photo, "Places/Italy/Rome")
    OwnerCaption.objects.create(photo=photo, caption="Piazza Navona")
    root = Path(library.root)
    original = root / "DSC_0001.jpg"
    before = original.read_bytes()
    old_hash = photo.content_hash

    embedded = the_one(export_photo(photo, ExportOptions(embedded=True), dry_run=True))
    sidecar = the_one(export_photo(photo, ExportOptions(), dry_run=True))

    expected = {
        "Xmp.dc.subject": [None, ["Places", "Italy", "Rome"]],
        "Xmp.lr.hierarchicalSubject": [None, ["Places|Italy|Rome"]],
        "Xmp.digiKam.TagsList": [None, ["Places/Italy/Rome"]],
        "Xmp.dc.description": [None, "Piazza Navona"],
        "Xmp.dc.title": [None, "Piazza Navona"],
        "Xmp.xmp.Rating": [None, "3"],
    }
    assert (embedded.mode, embedded.written, embedded.error, embedded.changes) == ("embedded", False, "", expected)
    assert (sidecar.mode, sidecar.written, sidecar.error, sidecar.changes) == ("sidecar", False, "", expected)
    assert sidecar.as_dict()["changes"] == expected
    assert original.read_bytes() == before
    assert sorted(p.name for p in root.iterdir()) == ["DSC_0001.jpg"], "no sidecar was created"
    assert Photo.objects.get(pk=photo.pk).content_hash == old_hash

    # Against another tool's sidecar: the union it would write, and the sidecar left as it is.
    foreign_sidecar(root / "DSC_0001.jpg.xmp")
    text = (root / "DSC_0001.jpg.xmp").read_bytes()
    preview = the_one(export_photo(photo, ExportOptions(), dry_run=True))
    assert preview.changes["Xmp.dc.subject"] == [["Holiday"], ["Holiday", "Places", "Italy", "Rome"]]
    assert preview.changes["Xmp.lr.hierarchicalSubject"] == [["Trips|Summer"], ["Trips|Summer", "Places|Italy|Rome"]]
    assert (root / "DSC_0001.jpg.xmp").read_bytes() == text


# -- 8. the export stage ----------------------------------------------------------------------


def test_the_export_stage_writes_sidecars_and_records_each_photos_outcome(library, corpus):
    good = photo_with_file(library, "IMG_0005.jpg")
    tag(good, "Animals/Dog")
    heic = photo_with_file(library, "IMG_0006.heic", corpus / HEIC)
    tag(heic, "Animals/Dog")
    bystander = photo_with_file(library, "IMG_0007.jpg")
    root = Path(library.root)

    assert export_jobs.queue([good.pk], ExportOptions()) == 1
    assert export_jobs.queue([heic.pk], ExportOptions(embedded=True)) == 1
    assert set(PhotoStage.objects.filter(stage="export").values_list("photo_id", flat=True)) == {good.pk, heic.pk}

    totals = engine.run_pending("export")

    assert (totals["done"], totals["failed"]) == (1, 1)
    done = PhotoStage.objects.get(stage="export", photo=good)
    assert (done.state, done.error) == (PhotoStage.State.DONE, "")
    assert as_list(read_back(root / "IMG_0005.jpg.xmp")["XMP-dc:Subject"]) == ["Animals", "Dog"]
    failed = PhotoStage.objects.get(stage="export", photo=heic)
    assert failed.state == PhotoStage.State.FAILED
    assert "IMG_0006.heic" in failed.error and "sidecar instead" in failed.error, failed.error
    assert not (root / "IMG_0007.jpg.xmp").exists() and not PhotoStage.objects.filter(photo=bystander).exists()
