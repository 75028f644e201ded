"""Face regions in files (MWG, Microsoft Photo): read at import as named faces, written back by export.

Every file here is a real JPEG with a red patch at a known place in its *stored*
pixels; the real exiftool writes its Orientation and its regions (struct syntax),
the real importer reads it. Where the face must be on the upright image is not
computed by the code under test: Pillow's ``ImageOps.exif_transpose`` turns the
pixels upright and the patch is found there.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from gallery import metadata, scans
from gallery.models import Photo
from people import regions
from people.models import Face, Person
from tagging.export_jobs import ExportOptions, export_photo
from tests.conftest import require_tool

pytestmark = [pytest.mark.django_db, pytest.mark.exiftool]

STORED = (300, 200)  # width, height of the stored pixels
PATCH = (30, 40, 90, 100)  # left, top, right, bottom of the red patch in the stored pixels
SECOND = (200, 120, 250, 180)  # a blue patch: a second face
TOLERANCE = 0.02  # JPEG smears a pixel or two at the patch's edges: 2 % of 200 px


@pytest.fixture(autouse=True)
def _exiftool():
    require_tool("exiftool", "libimage-exiftool-perl")


# -- making files ------------------------------------------------------------------------


def exiftool(*args: str) -> None:
    subprocess.run(["exiftool", "-q", "-overwrite_original", *args], check=True, capture_output=True)


def make_jpeg(path: Path, orientation: int = 1) -> Path:
    """A grey JPEG with a red and a blue patch in its stored pixels, and this EXIF Orientation."""
    image = Image.new("RGB", STORED, (128, 128, 128))
    image.paste((220, 20, 20), PATCH)
    image.paste((20, 20, 220), SECOND)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", quality=95)
    if orientation != 1:
        exiftool(f"-IFD0:Orientation#={orientation}", str(path))
    return path


def patch_box(path: Path, colour: str = "red") -> tuple[float, float, float, float]:
    """Where a patch is on the upright image, as fractions: found in the pixels Pillow turns upright."""
    with Image.open(path) as image:
        upright = ImageOps.exif_transpose(image).convert("RGB")
    r, g, b = upright.split()
    if colour == "red":
        mask = Image.eval(r, lambda v: 255 if v > 150 else 0)
        mask = Image.composite(mask, Image.new("L", upright.size, 0), Image.eval(b, lambda v: 255 if v < 100 else 0))
    else:
        mask = Image.eval(b, lambda v: 255 if v > 150 else 0)
        mask = Image.composite(mask, Image.new("L", upright.size, 0), Image.eval(r, lambda v: 255 if v < 100 else 0))
    left, top, right, bottom = mask.getbbox()
    width, height = upright.size
    return (left / width, top / height, (right - left) / width, (bottom - top) / height)


def stored_fractions(box) -> tuple[float, float, float, float]:
    left, top, right, bottom = box
    return (left / STORED[0], top / STORED[1], (right - left) / STORED[0], (bottom - top) / STORED[1])


def _escape(text: str) -> str:
    for special in "|,[]{}":
        text = text.replace(special, "|" + special)
    return text


def mwg_regions(faces, dims=STORED) -> str:
    """exiftool's struct syntax for an MWG RegionInfo: ``faces`` are (name, top-left box as fractions)."""
    items = []
    for name, (x, y, w, h) in faces:
        items.append(f"{{Area={{X={x + w / 2:.6f},Y={y + h / 2:.6f},W={w:.6f},H={h:.6f},Unit=normalized}},"
                     f"Name={_escape(name)},Type=Face}}")
    applied = f"AppliedToDimensions={{W={dims[0]},H={dims[1]},Unit=pixel}}," if dims else ""
    return "-XMP-mwg-rs:RegionInfo={" + applied + "RegionList=[" + ",".join(items) + "]}"


def mp_regions(faces) -> str:
    items = [f"{{Rectangle={x:.6f}|, {y:.6f}|, {w:.6f}|, {h:.6f},PersonDisplayName={_escape(name)}}}"
             for name, (x, y, w, h) in faces]
    return "-XMP-MP:RegionInfoMP={Regions=[" + ",".join(items) + "]}"


def exiftool_regions(path: Path) -> dict:
    out = subprocess.run(["exiftool", "-j", "-struct", "-G1", "-XMP:all", str(path)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)[0]


def import_all(library) -> list[Photo]:
    report = scans.import_library(library)
    return list(Photo.objects.filter(pk__in=report.changed_photo_ids()).order_by("pk"))


def file_faces(photo: Photo) -> list[Face]:
    return list(Face.objects.filter(photo=photo, source=Face.Source.FILE).select_related("person").order_by("x"))


def assert_box(actual, expected, what=""):
    assert all(abs(a - e) <= TOLERANCE for a, e in zip(actual, expected)), f"{what}: {actual} is not {expected}"


# -- reading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", [1, 3, 6, 8, 5, 2, 7])
def test_mwg_regions_of_the_stored_pixels_land_on_the_faces_of_the_upright_image(library, orientation):
    path = make_jpeg(Path(library.root) / f"o{orientation}.jpg", orientation)
    exiftool(mwg_regions([("Zoë Ångström", stored_fractions(PATCH)), ("Bob", stored_fractions(SECOND))]), str(path))

    (photo,) = import_all(library)

    faces = {f.person.name: f for f in file_faces(photo)}
    assert set(faces) == {"Zoë Ångström", "Bob"}
    assert_box(faces["Zoë Ångström"].box, patch_box(path, "red"), f"orientation {orientation}")
    assert_box(faces["Bob"].box, patch_box(path, "blue"), f"orientation {orientation}")
    zoe = faces["Zoë Ångström"]
    assert (zoe.source, zoe.locked, zoe.region_name, zoe.detector) == ("file", True, "Zoë Ångström", "mwg")
    assert zoe.embedding is None
    assert Person.objects.get(name="Zoë Ångström").face_count == 1


@pytest.mark.parametrize("orientation", [6, 8, 5])
def test_regions_measured_on_the_upright_image_say_so_by_their_swapped_dimensions(library, orientation):
    """AppliedToDimensions with the displayed shape: the writer measured the upright image."""
    path = make_jpeg(Path(library.root) / "picasa.jpg", orientation)
    upright = patch_box(path, "red")
    exiftool(mwg_regions([("Ann", upright)], dims=(STORED[1], STORED[0])), str(path))

    (photo,) = import_all(library)

    (face,) = file_faces(photo)
    assert_box(face.box, upright, "regions measured upright are taken as they are")


def test_regions_without_applied_dimensions_are_of_the_stored_pixels(library):
    path = make_jpeg(Path(library.root) / "nodims.jpg", 6)
    exiftool(mwg_regions([("Ann", stored_fractions(PATCH))], dims=None), str(path))

    (photo,) = import_all(library)

    (face,) = file_faces(photo)
    assert_box(face.box, patch_box(path, "red"))


@pytest.mark.parametrize("orientation", [1, 6, 3])
def test_microsoft_photo_regions_are_top_left_rectangles_of_the_stored_pixels(library, orientation):
    path = make_jpeg(Path(library.root) / "wlpg.jpg", orientation)
    exiftool(mp_regions([("Carl", stored_fractions(PATCH))]), str(path))

    (photo,) = import_all(library)

    (face,) = file_faces(photo)
    assert (face.person.name, face.detector) == ("Carl", "mp")
    assert_box(face.box, patch_box(path, "red"))


def test_heif_regions_turn_with_the_files_own_orientation(library, corpus):
    """pillow-heif turns HEIF pixels itself (Photo.orientation 1); the regions still need the file's 6."""
    path = Path(library.root) / "IMG_0001.heic"
    path.write_bytes((corpus / "heic__iphone13promax.heic").read_bytes())  # stored 4032 × 3024, Rotate 90 CW
    exiftool(mwg_regions([("Ann", (0.1, 0.2, 0.25, 0.2))], dims=(4032, 3024)), str(path) + ".xmp")

    (photo,) = import_all(library)

    assert (photo.width, photo.height, photo.orientation, photo.metadata["file_orientation"]) == (3024, 4032, 1, 6)
    (face,) = file_faces(photo)
    # Turned 90° clockwise: the stored top edge is the right edge, the stored left edge the top.
    assert face.box == pytest.approx((0.6, 0.1, 0.2, 0.25), abs=1e-6)


def test_mwg_regions_win_over_the_same_faces_in_microsoft_photo_regions(library):
    path = make_jpeg(Path(library.root) / "digikam.jpg")
    box = stored_fractions(PATCH)
    exiftool(mwg_regions([("Ann", box)]), mp_regions([("Ann", box)]), str(path))

    (photo,) = import_all(library)

    assert [(f.person.name, f.detector) for f in file_faces(photo)] == [("Ann", "mwg")]


def test_a_sidecar_gives_the_regions_and_wins_over_the_embedded_ones(library):
    path = make_jpeg(Path(library.root) / "IMG_1.jpg", 6)
    exiftool(mwg_regions([("Old Name", stored_fractions(SECOND))]), str(path))
    exiftool(mwg_regions([("Ann", stored_fractions(PATCH))]), str(path) + ".xmp")  # creates the sidecar

    (photo,) = import_all(library)

    assert photo.metadata["sources"]["face_regions"] == "sidecar"
    (face,) = file_faces(photo)
    assert face.person.name == "Ann"
    assert_box(face.box, patch_box(path, "red"))


def test_a_sidecar_edited_by_another_program_is_read_with_reread(library):
    # A rescan decides by the photo's own size and time: a sidecar edited alone is not seen.
    path = make_jpeg(Path(library.root) / "IMG_2.jpg")
    import_all(library)
    exiftool(mwg_regions([("Ann", stored_fractions(PATCH))]), str(path) + ".xmp")
    assert scans.import_library(library).totals["unchanged"] == 1
    assert not Face.objects.exists()

    report = scans.import_library(library, reread=True)  # manage.py import_library --reread

    assert report.totals["reread"] == 1
    (photo,) = Photo.objects.all()
    (face,) = file_faces(photo)
    assert face.person.name == "Ann"
    assert_box(face.box, patch_box(path, "red"))
    assert scans.import_library(library, reread=True).totals["reread"] == 1
    assert Face.objects.count() == 1, "reading again adds nothing twice"


def test_photos_imported_before_regions_were_read_get_them_with_reread(library):
    path = make_jpeg(Path(library.root) / "IMG_3.jpg", 6)
    exiftool(mwg_regions([("Bob", stored_fractions(SECOND))]), str(path))
    (photo,) = import_all(library)
    # As an older Shoebox left it: no regions in the stored metadata, no faces.
    Face.objects.all().delete()
    Person.objects.all().delete()
    photo.metadata = {k: v for k, v in photo.metadata.items() if k != "face_regions"}
    photo.save()

    scans.import_library(library, reread=True)

    (face,) = file_faces(photo)
    assert face.person.name == "Bob"
    assert_box(face.box, patch_box(path, "blue"))


def test_names_match_existing_persons_whatever_their_case(library):
    known = Person.objects.create(name="Ann Lee")
    path = make_jpeg(Path(library.root) / "a.jpg")
    exiftool(mwg_regions([("ann lee", stored_fractions(PATCH)), ("ANN  LEE", stored_fractions(SECOND))]), str(path))

    (photo,) = import_all(library)

    assert {f.person_id for f in file_faces(photo)} == {known.pk}
    assert Person.objects.filter(name__iexact="ann lee").count() == 1
    known.refresh_from_db()
    assert known.face_count == 2


BAD_SIDECAR = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"
  xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#" xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#">
<mwg-rs:Regions rdf:parseType="Resource">
 <mwg-rs:AppliedToDimensions stDim:w="NaN" stDim:h="-3" stDim:unit="pixel"/>
 <mwg-rs:RegionList><rdf:Bag>
  <rdf:li><rdf:Description mwg-rs:Name="Not A Number" mwg-rs:Type="Face">
   <mwg-rs:Area stArea:x="NaN" stArea:y="0.5" stArea:w="0.1" stArea:h="0.1" stArea:unit="normalized"/></rdf:Description></rdf:li>
  <rdf:li><rdf:Description mwg-rs:Name="Infinite" mwg-rs:Type="Face">
   <mwg-rs:Area stArea:x="inf" stArea:y="0.5" stArea:w="0.1" stArea:h="0.1"/></rdf:Description></rdf:li>
  <rdf:li><rdf:Description mwg-rs:Name="Negative" mwg-rs:Type="Face">
   <mwg-rs:Area stArea:x="0.5" stArea:y="0.5" stArea:w="-0.1" stArea:h="0.1"/></rdf:Description></rdf:li>
  <rdf:li><rdf:Description mwg-rs:Name="Too Big" mwg-rs:Type="Face">
   <mwg-rs:Area stArea:x="0.5" stArea:y="0.5" stArea:w="3" stArea:h="0.1"/></rdf:Description></rdf:li>
  <rdf:li><rdf:Description mwg-rs:Name="Outside" mwg-rs:Type="Face">
   <mwg-rs:Area stArea:x="1.7" stArea:y="0.5" stArea:w="0.1" stArea:h="0.1"/></rdf:Description></rdf:li>
  <rdf:li><rdf:Description mwg-rs:Name="Words" mwg-rs:Type="Face">
   <mwg-rs:Area stArea:x="left" stArea:y="top" stArea:w="0.1" stArea:h="0.1"/></rdf:Description></rdf:li>
  <rdf:li><rdf:Description mwg-rs:Name="No Area" mwg-rs:Type="Face"/></rdf:li>
  <rdf:li><rdf:Description mwg-rs:Name="Inches" mwg-rs:Type="Face">
   <mwg-rs:Area stArea:x="0.5" stArea:y="0.5" stArea:w="0.1" stArea:h="0.1" stArea:unit="inch"/></rdf:Description></rdf:li>
  <rdf:li><rdf:Description mwg-rs:Name="  " mwg-rs:Type="Face">
   <mwg-rs:Area stArea:x="0.5" stArea:y="0.5" stArea:w="0.1" stArea:h="0.1"/></rdf:Description></rdf:li>
  <rdf:li><rdf:Description mwg-rs:Type="Face">
   <mwg-rs:Area stArea:x="0.5" stArea:y="0.5" stArea:w="0.1" stArea:h="0.1"/></rdf:Description></rdf:li>
  <rdf:li><rdf:Description mwg-rs:Name="Rex" mwg-rs:Type="Pet">
   <mwg-rs:Area stArea:x="0.5" stArea:y="0.5" stArea:w="0.1" stArea:h="0.1"/></rdf:Description></rdf:li>
  <rdf:li><rdf:Description mwg-rs:Name="Good" mwg-rs:Type="Face">
   <mwg-rs:Area stArea:x="0.2" stArea:y="0.35" stArea:w="0.2" stArea:h="0.3" stArea:unit="normalized"/>
  </rdf:Description></rdf:li>
 </rdf:Bag></mwg-rs:RegionList>
</mwg-rs:Regions></rdf:Description></rdf:RDF></x:xmpmeta>"""


def test_bad_region_data_is_a_warning_and_the_good_regions_still_import(library):
    path = make_jpeg(Path(library.root) / "bad.jpg")
    (Path(library.root) / "bad.jpg.xmp").write_text(BAD_SIDECAR, encoding="utf-8")

    (photo,) = import_all(library)

    assert photo.status == Photo.Status.OK
    assert [(f.person.name, f.detector) for f in file_faces(photo)] == [("Good", "mwg")]
    assert_box(file_faces(photo)[0].box, patch_box(path, "red"))
    warnings = "\n".join(photo.metadata["warnings"])
    assert "AppliedToDimensions is not a usable size" in warnings
    assert "2 face regions skipped: a face region without a name" in warnings
    assert "area unit 'inch' is not understood" in warnings
    for name in ("Not A Number", "Infinite", "Negative", "Too Big", "Outside", "Words", "No Area"):
        assert f"face region of '{name}' is not a box inside the image" in warnings
    assert not Person.objects.filter(name__in=["Rex", "Not A Number", "Too Big"]).exists(), "pets are no faces"


def test_a_huge_region_list_is_read_up_to_its_limit(library):
    make_jpeg(Path(library.root) / "crowd.jpg")
    items = "".join(
        f'<rdf:li><rdf:Description mwg-rs:Name="Person {i % 7}" mwg-rs:Type="Face"><mwg-rs:Area '
        f'stArea:x="{(i % 50) / 50 + 0.01:.4f}" stArea:y="{(i // 50 % 50) / 50 + 0.01:.4f}" stArea:w="0.01" '
        f'stArea:h="0.01"/></rdf:Description></rdf:li>' for i in range(20_000))
    sidecar = BAD_SIDECAR.split("<rdf:Bag>")[0] + "<rdf:Bag>" + items + "</rdf:Bag></mwg-rs:RegionList>" \
        "</mwg-rs:Regions></rdf:Description></rdf:RDF></x:xmpmeta>"
    (Path(library.root) / "crowd.jpg.xmp").write_text(sidecar, encoding="utf-8")

    (photo,) = import_all(library)

    assert len(photo.metadata["face_regions"]) == metadata.MAX_FACE_REGIONS
    assert Face.objects.filter(photo=photo).count() == metadata.MAX_FACE_REGIONS
    assert Person.objects.count() == 7
    assert any("a list of 20000 regions, over the 100 read" in w for w in photo.metadata["warnings"])


# -- rescans ---------------------------------------------------------------------------------


def test_rescans_keep_one_face_per_region_and_follow_the_file(library):
    path = make_jpeg(Path(library.root) / "family.jpg", 6)
    left, right = stored_fractions(PATCH), stored_fractions(SECOND)
    exiftool(mwg_regions([("Ann", left), ("Bob", right), ("Carl", (0.5, 0.05, 0.1, 0.15))]), str(path))
    (photo,) = import_all(library)
    first = {f.person.name: f.pk for f in file_faces(photo)}
    assert set(first) == {"Ann", "Bob", "Carl"}

    regions.sync_photos([photo.pk])  # the hook again on the same file: nothing changes
    regions.sync_photos([photo.pk])
    assert {f.person.name: f.pk for f in file_faces(photo)} == first
    assert Person.objects.count() == 3

    # The owner says Carl's face is Dora's: that face is the owner's now.
    dora = Person.objects.create(name="Dora")
    Face.objects.filter(pk=first["Carl"]).update(person=dora)
    # Another tool moves Ann's region a little and drops Bob's and Carl's.
    moved = (left[0] + 0.02, left[1], left[2], left[3])
    exiftool("-XMP-mwg-rs:RegionInfo=", str(path))
    exiftool(mwg_regions([("Ann", moved)]), str(path))

    report = scans.import_library(library)
    assert [f.outcome for f in report.files] == ["updated"]

    after = {f.person.name: f for f in file_faces(photo)}
    assert set(after) == {"Ann", "Dora"}, "Bob's region is gone; the face the owner named stays"
    assert after["Ann"].pk == first["Ann"], "the same face, moved with its region"
    assert after["Ann"].box[1] == pytest.approx(regions.to_upright(moved, 6)[1], abs=1e-4)
    assert after["Dora"].pk == first["Carl"]
    assert Person.objects.get(name="Bob").face_count == 0, "a named person stays, without faces"


def test_a_region_on_a_face_the_detector_found_makes_that_face_the_named_region(library):
    path = make_jpeg(Path(library.root) / "d.jpg", 8)
    (photo,) = import_all(library)
    x, y, w, h = patch_box(path, "red")
    stranger = Person.objects.create()  # an unnamed cluster the detected face was put in
    detected = Face.objects.create(photo=photo, source=Face.Source.DETECTED, detector="hog", person=stranger,
                                   x=x + 0.01, y=y + 0.01, w=w * 0.9, h=h * 0.9, embedding=[0.1] * 128)
    owners = Face.objects.create(photo=photo, source=Face.Source.DETECTED, detector="hog", locked=True,
                                 person=Person.objects.create(name="Kim"), **dict(zip("xywh", patch_box(path, "blue"))))
    Person.refresh([stranger.pk])

    exiftool(mwg_regions([("Ann", stored_fractions(PATCH)), ("Bob", stored_fractions(SECOND))]), str(path))
    scans.import_library(library)

    (face,) = Face.objects.filter(photo=photo, person__name="Ann")
    assert face.pk == detected.pk, "one face, one row: the detected face is the region now"
    assert (face.source, face.locked, face.region_name, face.detector) == ("file", True, "Ann", "mwg")
    assert face.embedding is not None, "it keeps what the detector measured"
    assert_box(face.box, (x, y, w, h), "the region's box")
    assert not Person.objects.filter(pk=stranger.pk).exists(), "the emptied unnamed cluster is gone"
    assert list(Face.objects.filter(photo=photo).values_list("person__name", flat=True).order_by("pk")) == [
        "Ann", "Kim"], "the face the owner named Kim stays theirs; no second face for Bob's region"
    assert owners.pk in set(Face.objects.values_list("pk", flat=True))


# -- the geometry, for every orientation --------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_to_stored_undoes_to_upright(orientation):
    box = (0.1, 0.2, 0.3, 0.25)
    assert regions.to_stored(regions.to_upright(box, orientation), orientation) == pytest.approx(box)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_to_upright_agrees_with_pillows_transpose_for_every_orientation(tmp_path, orientation):
    path = make_jpeg(tmp_path / f"o{orientation}.jpg", orientation)
    assert_box(regions.to_upright(stored_fractions(PATCH), orientation), patch_box(path, "red"), str(orientation))


# -- export ----------------------------------------------------------------------------------


def exported_regions(data: dict) -> dict:
    info = data["XMP-mwg-rs:RegionInfo"]
    items = info["RegionList"] if isinstance(info["RegionList"], list) else [info["RegionList"]]
    return {"dims": info.get("AppliedToDimensions"), "items": {i.get("Name"): i for i in items}}


def centre_box(area: dict) -> tuple[float, float, float, float]:
    return (area["X"] - area["W"] / 2, area["Y"] - area["H"] / 2, area["W"], area["H"])


@pytest.mark.parametrize("embedded", [False, True])
def test_named_faces_export_as_mwg_regions_of_the_stored_pixels_and_keep_the_others(library, embedded):
    path = make_jpeg(Path(library.root) / "IMG_7.jpg", 6)
    # In the file: a region Shoebox imports (Frank) and a pet region it has no use for.
    exiftool("-XMP-mwg-rs:RegionInfo={AppliedToDimensions={W=300,H=200,Unit=pixel},RegionList=["
             "{Area={X=0.5,Y=0.5,W=0.1,H=0.1,Unit=normalized},Name=Rex,Type=Pet},"
             "{Area={X=0.75,Y=0.25,W=0.1,H=0.1,Unit=normalized},Name=Frank,Type=Face}]}", str(path))
    (photo,) = import_all(library)
    (frank,) = file_faces(photo)
    Face.objects.filter(pk=frank.pk).update(person=Person.objects.create(name="Franz"))  # the owner renames
    eve = Person.objects.create(name="Eve Ørsted")
    x, y, w, h = patch_box(path, "red")  # a face the detector found and the owner named
    Face.objects.create(photo=photo, source=Face.Source.DETECTED, person=eve, locked=True, x=x, y=y, w=w, h=h)
    hidden = Person.objects.create(name="Hidden", hidden=True)
    Face.objects.create(photo=photo, person=hidden, x=0.1, y=0.1, w=0.1, h=0.1)
    Face.objects.create(photo=photo, x=0.6, y=0.6, w=0.1, h=0.1)  # unnamed: not written

    (result,) = export_photo(photo, ExportOptions(embedded=embedded))
    assert result.error == "" and result.written, result
    before, after = result.changes["Xmp.mwg-rs.Regions"]  # the preview names the regions, not exiv2's keys
    assert not any(key.startswith("Xmp.mwg-rs.Regions/") for key in result.changes)
    assert (sorted(before), sorted(after)) == (["Frank", "Rex"] if embedded else [], ["Eve Ørsted", "Franz", "Rex"])

    target = path if embedded else path.with_name("IMG_7.jpg.xmp")
    written = exported_regions(exiftool_regions(target))
    assert written["dims"] == {"W": 300, "H": 200, "Unit": "pixel"}, "the stored size"
    assert set(written["items"]) == {"Eve Ørsted", "Franz", "Rex"}, "Frank is Franz now; Rex stays; no hidden"
    eve_area = written["items"]["Eve Ørsted"]["Area"]
    assert eve_area["Unit"] == "normalized" and written["items"]["Eve Ørsted"]["Type"] == "Face"
    assert_box(centre_box(eve_area), stored_fractions(PATCH), "Eve's area is on the patch of the stored pixels")
    assert_box(centre_box(written["items"]["Franz"]["Area"]), (0.7, 0.2, 0.1, 0.1))
    assert written["items"]["Rex"] == {"Area": {"H": 0.1, "Unit": "normalized", "W": 0.1, "X": 0.5, "Y": 0.5},
                                       "Name": "Rex", "Type": "Pet"}

    again = export_photo(photo, ExportOptions(embedded=embedded))[0]
    assert (again.written, again.changes, again.error) == (False, {}, ""), "a second export changes nothing"

    # Read back by Shoebox itself: the same boxes on the upright image.
    with Image.open(path) as image:
        read = metadata.read_metadata(str(path), image)
    assert {r["name"] for r in read.extra["face_regions"]} == {"Eve Ørsted", "Franz"}
    eve_region = next(r for r in read.extra["face_regions"] if r["name"] == "Eve Ørsted")
    photo.refresh_from_db()
    assert_box(regions.upright_box(eve_region, photo), (x, y, w, h), "round trip")

    if embedded:  # the file changes again elsewhere: its regions, ours now, are read back onto the same faces
        faces_before = sorted(Face.objects.filter(photo=photo).values_list("pk", "person__name"))
        exiftool("-XMP-dc:Title=Edited elsewhere", str(path))
        assert [f.outcome for f in scans.import_library(library).files] == ["updated"]
        assert sorted(Face.objects.filter(photo=photo).values_list("pk", "person__name")) == faces_before


def test_export_without_named_faces_leaves_the_files_regions_alone(library):
    path = make_jpeg(Path(library.root) / "IMG_8.jpg")
    exiftool(mwg_regions([("Ann", stored_fractions(PATCH))]), str(path))
    (photo,) = import_all(library)
    Person.objects.update(hidden=True)
    before = exiftool_regions(path)["XMP-mwg-rs:RegionInfo"]

    (result,) = export_photo(photo, ExportOptions())

    assert result.error == ""
    sidecar = exiftool_regions(path.with_name("IMG_8.jpg.xmp")) if path.with_name("IMG_8.jpg.xmp").exists() else {}
    assert "XMP-mwg-rs:RegionInfo" not in sidecar
    assert exiftool_regions(path)["XMP-mwg-rs:RegionInfo"] == before


def test_export_turns_kept_regions_that_were_measured_upright_into_the_stored_frame(library):
    path = make_jpeg(Path(library.root) / "IMG_9.jpg", 6)
    red, blue = patch_box(path, "red"), patch_box(path, "blue")  # where they are on the upright image
    pet = f"{{Area={{X={blue[0] + blue[2] / 2:.6f},Y={blue[1] + blue[3] / 2:.6f},W={blue[2]:.6f}," \
          f"H={blue[3]:.6f},Unit=normalized}},Name=Rex,Type=Pet}}"
    exiftool(mwg_regions([("Ann", red)], dims=(STORED[1], STORED[0])).replace("]}", "," + pet + "]}"), str(path))
    (photo,) = import_all(library)
    assert_box(file_faces(photo)[0].box, red, "read as measured upright")

    (result,) = export_photo(photo, ExportOptions())
    assert result.error == "", result

    written = exported_regions(exiftool_regions(path.with_name("IMG_9.jpg.xmp")))
    assert written["dims"] == {"W": 300, "H": 200, "Unit": "pixel"}
    assert set(written["items"]) == {"Ann", "Rex"}
    assert_box(centre_box(written["items"]["Ann"]["Area"]), stored_fractions(PATCH), "Ann in the stored frame")
    assert_box(centre_box(written["items"]["Rex"]["Area"]), stored_fractions(SECOND), "Rex turned with the list")
