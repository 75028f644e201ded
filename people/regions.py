"""Face regions other tools wrote into the files (MWG, Microsoft Photo) as named faces.

``gallery.metadata`` reads the regions at import into ``Photo.metadata["face_regions"]``
(plain JSON: name, box in the frame the region was written for, ``AppliedToDimensions``).
:func:`sync_photos`, an ``AFTER_SCAN`` hook, turns them into ``Face`` rows of source
*file*: boxes in the displayed (upright) image, the named person found by name
(case-insensitively) or created, ``locked`` so clustering never moves them.

Which frame a region is in (docs/architecture.md, "Face regions"): the MWG guidelines
apply regions to the *stored* image, so the file's Orientation is applied to them like
to the pixels (:func:`to_upright`). Microsoft Photo regions are read the same way (the
tools that write both, digiKam among them, write the same rectangles). One exception:
when a 90° orientation (5–8) is set and ``AppliedToDimensions`` has the displayed
image's shape rather than the stored one, the writer measured the region on the
upright image, and it is taken as it is.

A rescan of a changed file makes the faces agree with the file again: regions still
there keep their rows (boxes and names updated), new ones are added, and those gone
from the file are deleted — unless the owner has since given that face another person
(or none), which makes it the owner's. One face is one row: a new region on a face the
detector already found turns that detected face into the file face (it keeps its
embedding and takes the region's box and name), as the faces stage does the other way
round (``people.runners``); a face the owner placed there (``locked``) stays theirs.
"""

from __future__ import annotations

import logging
import math

from django.db import IntegrityError, models, transaction

from gallery.models import Photo
from people.geometry import Box, clamp, iou, same_face
from people.models import Face, Person

# How each EXIF orientation maps a point (u, v) of the stored image (fractions) to the upright one.
_UPRIGHT = {
    1: lambda u, v: (u, v),
    2: lambda u, v: (1 - u, v),  # mirrored left-right
    3: lambda u, v: (1 - u, 1 - v),  # turned 180°
    4: lambda u, v: (u, 1 - v),  # mirrored top-bottom
    5: lambda u, v: (v, u),  # transposed
    6: lambda u, v: (1 - v, u),  # turned 90° clockwise to be upright
    7: lambda u, v: (1 - v, 1 - u),  # transversed
    8: lambda u, v: (v, 1 - u),  # turned 90° counter-clockwise to be upright
}
_INVERSE = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}
SWAPPED = (5, 6, 7, 8)
log = logging.getLogger(__name__)


def _mapped(box: Box, mapping) -> Box:
    x, y, w, h = box
    (x1, y1), (x2, y2) = mapping(x, y), mapping(x + w, y + h)
    left, top = min(x1, x2), min(y1, y2)
    return (left, top, abs(x2 - x1), abs(y2 - y1))


def to_upright(box: Box, orientation: int) -> Box:
    """A box of the stored image as a box of the image displayed with EXIF ``orientation``."""
    return _mapped(box, _UPRIGHT.get(orientation, _UPRIGHT[1]))


def to_stored(box: Box, orientation: int) -> Box:
    """The inverse of :func:`to_upright`: a box of the displayed image in the stored pixels' frame."""
    return _mapped(box, _UPRIGHT[_INVERSE.get(orientation, 1)])


def file_orientation(photo: Photo) -> int:
    """The orientation the file states for its stored pixels.

    ``Photo.orientation`` is relative to the pixels Pillow decodes; for HEIF, pillow-heif
    has already turned them, and the file's own value is in ``metadata["file_orientation"]``.
    """
    stated = (photo.metadata or {}).get("file_orientation")
    return stated if stated in _UPRIGHT else (photo.orientation if photo.orientation in _UPRIGHT else 1)


def stored_size(photo: Photo) -> tuple[int, int] | None:
    """Width and height of the stored pixels (``Photo.width``/``height`` are the displayed ones)."""
    if not photo.width or not photo.height:
        return None
    return (photo.height, photo.width) if file_orientation(photo) in SWAPPED else (photo.width, photo.height)


def measured_upright(applied_to, photo: Photo) -> bool:
    """Whether a region's ``AppliedToDimensions`` has the shape of the displayed image rather than the stored one."""
    return upright_shape(applied_to, stored_size(photo), file_orientation(photo))


def upright_shape(applied_to, stored: tuple[int, int] | None, orientation: int) -> bool:
    """Whether ``applied_to`` (w, h) is closer in shape to the displayed image than to the ``stored`` size.

    Only a 90° orientation changes the shape, and only a non-square image shows it. Shapes are
    compared as log aspect ratios, so a resized file still matches.
    """
    if orientation not in SWAPPED or not applied_to or not stored or stored[0] == stored[1]:
        return False
    try:
        region = math.log(float(applied_to[0]) / float(applied_to[1]))
        kept = math.log(stored[0] / stored[1])
    except (TypeError, ValueError, ZeroDivisionError, IndexError):
        return False
    return abs(region + kept) < abs(region - kept)  # the displayed shape is the stored one turned


def upright_box(region: dict, photo: Photo) -> Box:
    """The box of one region of ``photo.metadata["face_regions"]`` in the displayed image."""
    box = tuple(region["box"])
    if measured_upright(region.get("applied_to"), photo):
        return clamp(box)
    return clamp(to_upright(box, file_orientation(photo)))


def wanted_regions(photo: Photo) -> list[tuple[str, str, Box]]:
    """``(detector, name, upright box)`` for each usable face region the file names."""
    out = []
    for region in (photo.metadata or {}).get("face_regions") or []:
        try:
            name, kind = str(region["name"]).strip(), str(region.get("format") or "mwg")
            box = upright_box(region, photo)
        except (KeyError, TypeError, ValueError):
            continue  # written by gallery.metadata, so only an older or hand-edited row gets here
        if name and all(math.isfinite(v) for v in box) and box[2] > 0 and box[3] > 0:
            out.append((kind[:40], name[:200], box))
    return out


def person_named(name: str) -> Person:
    """The person called ``name`` (any case), created if there is none."""
    person = Person.objects.filter(name__iexact=name).order_by("pk").first()
    if person is not None:
        return person
    try:
        with transaction.atomic():
            return Person.objects.create(name=name)
    except IntegrityError:  # created meanwhile by another process (unique lower(name))
        return Person.objects.filter(name__iexact=name).order_by("pk").first()


def owner_changed(face: Face) -> bool:
    """Whether the owner gave this file face another person than the region's name (or took it away)."""
    return face.person is None or face.person.name.casefold() != face.region_name.casefold()


def sync_photo(photo: Photo) -> set[int]:
    """Make the file faces of ``photo`` agree with its regions; returns the persons whose faces changed."""
    wanted = wanted_regions(photo)
    existing = list(Face.objects.filter(photo=photo, source=Face.Source.FILE).select_related("person"))
    touched: set[int] = set()
    matched: dict[int, Face] = {}

    # Same name and the same place first, then the same place under a new name.
    for same_name in (True, False):
        for index, (_, name, box) in enumerate(wanted):
            if index in matched:
                continue
            for face in existing:
                if face in matched.values():
                    continue
                if (face.region_name.casefold() == name.casefold()) == same_name and same_face(face.box, box):
                    matched[index] = face
                    break

    size = (photo.width or 0, photo.height or 0)
    detected = list(Face.objects.filter(photo=photo, source=Face.Source.DETECTED))
    for index, (detector, name, box) in enumerate(wanted):
        face = matched.get(index)
        if face is None:
            same = sorted((f for f in detected if same_face(f.box, box)), key=lambda f: -iou(f.box, box))
            if any(f.locked for f in same):
                continue  # the owner has placed this face: theirs, not the file's
            person = person_named(name)
            touched.add(person.pk)
            if same:  # the detector found it first: that face becomes the region, embedding and all
                face = same[0]
                detected.remove(face)
                touched.add(face.person_id)
                face.source, face.person, face.region_name, face.locked = Face.Source.FILE, person, name, True
                face.x, face.y, face.w, face.h = box
                face.detector = detector
                face.save(update_fields=["source", "person", "region_name", "locked", "x", "y", "w", "h",
                                         "detector"])
                continue
            Face.objects.create(photo=photo, person=person, source=Face.Source.FILE, detector=detector,
                                x=box[0], y=box[1], w=box[2], h=box[3], region_name=name, locked=True,
                                size=int(min(box[2] * size[0], box[3] * size[1])))
            continue
        if owner_changed(face):
            continue  # the owner's face now: the file no longer decides its person or box
        face.x, face.y, face.w, face.h = box
        face.detector = detector
        face.size = int(min(box[2] * size[0], box[3] * size[1]))
        if face.region_name != name:
            touched.add(face.person_id)
            face.region_name, face.person = name, person_named(name)
            touched.add(face.person_id)
        face.save(update_fields=["x", "y", "w", "h", "detector", "size", "region_name", "person"])

    gone = [f for f in existing if f not in matched.values() and not owner_changed(f)]
    if gone:
        touched.update(f.person_id for f in gone)
        Face.objects.filter(pk__in=[f.pk for f in gone]).delete()
    return {pk for pk in touched if pk is not None}


def sync_photos(photo_ids) -> None:
    """The ``AFTER_SCAN`` hook: the file faces of the photos a scan added or changed."""
    ids = list(photo_ids)
    touched: set[int] = set()
    for start in range(0, len(ids), 1000):  # two queries per thousand photos find the few with regions
        chunk = ids[start : start + 1000]
        with_faces = set(Face.objects.filter(photo_id__in=chunk, source=Face.Source.FILE)
                         .values_list("photo_id", flat=True))
        photos = Photo.objects.filter(pk__in=chunk).filter(
            models.Q(metadata__has_key="face_regions") | models.Q(pk__in=with_faces))
        for photo in photos.only("pk", "width", "height", "orientation", "metadata"):
            try:
                with transaction.atomic():
                    touched |= sync_photo(photo)
            except Exception:  # one photo's regions never fail the scan that imported it
                log.exception("face regions of photo %s could not be imported", photo.pk)
    Person.refresh(touched)
