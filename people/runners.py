"""The faces stage: what "faces" means for a batch of photos (detection is ``people.faces``).

For each photo the viewer thumbnail (upright, ≤ 1600 px; the original when
there is none) goes through :func:`people.faces.detect`, and the result
replaces the photo's detected faces:

* a detection that marks the same face (``people.geometry.same_face``) as a
  face the photo already has keeps that row — its box, landmarks, embedding
  and quality are brought up to date, its person and ``locked`` flag stay.
  A *file* face (a region another tool wrote, ``people.regions``) is filled
  this way: it gains the embedding and keeps its name, so the named region is
  the detected face;
* detected faces no detection matches any more are deleted, unless the owner
  placed them (``locked``);
* new detections become new rows, and every face without a person is
  clustered (``people.clustering.assign``) in the same transaction.
"""

from __future__ import annotations

from django.conf import settings

from gallery import stages
from gallery.imaging import open_upright
from gallery.originals import original_path
from gallery.runners import THUMBNAIL
from gallery.thumbnails import thumbnail_path
from people import clustering, faces
from people.geometry import iou, same_face
from people.models import Face, Person

FACES = "faces"
VIEWER = "viewer"
BATCH = 16  # photos per task: about 0.6 s each on one core


def configured_model() -> str:
    """What the stage's results depend on: a change here re-runs it for every photo."""
    return f"dlib:{faces.DETECTOR}:{faces.WORK_EDGE}x{faces.UPSAMPLE}"


def image_for(photo):
    """The photo upright, from its viewer thumbnail when it exists."""
    edge = settings.THUMBNAIL_SIZES.get(VIEWER, 1600)
    thumb = thumbnail_path(settings.THUMBNAIL_DIR, photo.content_hash, VIEWER)
    source = thumb if thumb.is_file() else original_path(photo)
    return open_upright(source, target=edge, max_pixels=settings.MAX_IMAGE_PIXELS)


def match(found: list[faces.FoundFace], existing: list[Face]) -> dict[int, Face]:
    """Which existing face each detection (by index) is: the same face with the largest IoU,
    each existing face taken once; file faces and the owner's faces first."""
    pairs = []
    for i, face in enumerate(found):
        for row in existing:
            if same_face(face.box, row.box):
                priority = (row.source == Face.Source.FILE, row.locked)
                pairs.append((priority, iou(face.box, row.box), i, row))
    pairs.sort(key=lambda p: (p[0], p[1]), reverse=True)
    matched: dict[int, Face] = {}
    taken: set[int] = set()
    for _, _, i, row in pairs:
        if i not in matched and row.pk not in taken:
            matched[i] = row
            taken.add(row.pk)
    return matched


def _fill(row: Face, face: faces.FoundFace) -> None:
    row.landmarks = face.landmarks
    row.embedding = face.embedding.tolist()
    row.size = face.size
    row.sharpness = face.sharpness
    if row.source == Face.Source.DETECTED:  # a file region keeps the box its author drew
        row.x, row.y, row.w, row.h = face.box
        row.detector = face.detector


def save_faces(photo, found: list[faces.FoundFace]) -> clustering.Changes:
    """Make the photo's faces agree with ``found`` (see the module's docstring); returns the
    persons whose faces changed and the photos whose faces did (this one, and others whose
    waiting faces clustering picked up)."""
    existing = list(Face.objects.filter(photo=photo))
    matched = match(found, existing)
    touched: set[int] = set()
    kept: set[int] = set()
    for i, face in enumerate(found):
        row = matched.get(i)
        if row is None:
            row = Face(photo=photo, source=Face.Source.DETECTED)
        _fill(row, face)
        row.save()
        kept.add(row.pk)
    gone = [f for f in existing if f.pk not in kept and f.source == Face.Source.DETECTED and not f.locked]
    touched.update(f.person_id for f in gone)
    Face.objects.filter(pk__in=[f.pk for f in gone]).delete()
    waiting = Face.objects.filter(photo=photo, person__isnull=True, locked=False, embedding__isnull=False)
    changes = clustering.assign(list(waiting))
    changes.persons |= touched
    if found or existing:
        changes.photos.add(photo.pk)
    return changes


def find_faces(batch) -> None:
    """Detect, describe and cluster the faces of each photo of the batch."""
    faces.load()  # the weights once per process; missing ones make the batch wait (unavailable)
    for photo in batch.photos:
        found = None
        with batch.guard(photo):
            image = image_for(photo)
            try:
                found = faces.detect(image)
            finally:
                image.close()
        if found is None:  # its image failed: the guard recorded why
            continue
        with batch.saving(photo):
            changes = save_faces(photo, found)
            Person.refresh(changes.persons)
            clustering.changed(changes.photos)  # their search documents: names, has:faces


def register() -> None:
    stages.register(stages.StageSpec(
        name=FACES, order=22, needs=(THUMBNAIL,), runner=find_faces, label="Faces",
        batch_size=lambda: BATCH, model=configured_model, rerunnable=True,
        enabled=lambda: settings.FACES,
    ))
