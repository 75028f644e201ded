"""The faces stage and clustering, with dlib's real models on real photos and the real database.

Photos: the corpus portrait (NASA, public domain) and, for a second and third
person, the photos in the ``face_recognition`` 1.3.0 source package's tests
(MIT package; portraits of two US presidents), fetched at test setup through
pip into the temp folder, never copied into the repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
from django.core.management import call_command
from PIL import Image

from gallery import engine, libraries, scans
from gallery.models import Photo, PhotoStage
from people import clustering, runners
from people.models import Face, Person

pytestmark = pytest.mark.django_db

PORTRAIT = "bundled_photo__astronaut_face.jpg"
NO_FACE = "bundled_photo__coffee.jpg"
SDIST = "face_recognition==1.3.0"


@pytest.fixture(scope="session")
def face_photos() -> dict[str, Path]:
    """obama.jpg, obama2.jpg, biden.jpg … from the face_recognition sdist, downloaded once by pip."""
    folder = Path(tempfile.gettempdir()) / "shoebox-face-photos"
    images = folder / "images"
    if not (images / "biden.jpg").is_file():
        folder.mkdir(exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", SDIST, "--no-deps", "--no-binary", ":all:", "-d", str(folder)],
            capture_output=True, text=True, timeout=300)
        archives = list(folder.glob("face_recognition-*.tar.gz"))
        if done.returncode or not archives:
            message = f"could not fetch {SDIST} through pip: {done.stderr.strip()[-300:]}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        images.mkdir(exist_ok=True)
        with tarfile.open(archives[0]) as archive:
            for member in archive.getmembers():
                if "/tests/test_images/" in member.name and member.name.endswith(".jpg") and member.isfile():
                    (images / Path(member.name).name).write_bytes(archive.extractfile(member).read())
    return {path.stem: path for path in images.glob("*.jpg")}


@pytest.fixture
def faces_on(settings):
    settings.FACES = True


def import_and_find_faces(library_dir) -> list[Photo]:
    library, _ = libraries.add_library(str(library_dir.path))
    scans.import_library(library, sync=True)  # thumbnails
    engine.ensure_rows()
    engine.run_pending(runners.FACES)
    return list(Photo.objects.order_by("pk"))


def by_file(name: str) -> Photo:
    return Photo.objects.get(files__relpath=name)


def save_variant(source: Path, dest: Path, *, scale: float = 1.0, crop=None, angle: float = 0.0) -> Path:
    """The same photo scaled, cropped (fractions: left, top, right, bottom) or turned a few degrees."""
    with Image.open(source) as image:
        image = image.convert("RGB")
        if crop:
            w, h = image.size
            image = image.crop((int(crop[0] * w), int(crop[1] * h), int(crop[2] * w), int(crop[3] * h)))
        if angle:
            image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=(128, 128, 128))
        if scale != 1.0:
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
        dest.parent.mkdir(parents=True, exist_ok=True)
        image.save(dest, "JPEG", quality=92)
    return dest


def test_the_faces_stage_is_registered_after_thumbnails_only_when_switched_on(settings):
    from gallery import stages

    assert runners.FACES not in stages.names()
    settings.FACES = True
    spec = stages.get(runners.FACES)
    assert runners.FACES in stages.names() and spec.needs == ("thumbnail",) and spec.rerunnable
    assert stages.names().index(runners.FACES) < stages.names().index("caption")


def test_the_corpus_portrait_gets_one_face_inside_the_head(faces_on, library_dir):
    library_dir.add(PORTRAIT)
    [photo] = import_and_find_faces(library_dir)
    assert PhotoStage.objects.get(photo=photo, stage=runners.FACES).state == "done"
    [face] = Face.objects.filter(photo=photo)
    # Eileen Collins' head fills about x 0.3–0.6, y 0.05–0.45 of the 512 px portrait.
    assert 0.28 <= face.x and face.x + face.w <= 0.62, face.box
    assert 0.05 <= face.y and face.y + face.h <= 0.45, face.box
    assert 0.1 <= face.w <= 0.3 and 0.1 <= face.h <= 0.3
    assert face.source == Face.Source.DETECTED and face.detector == "hog"
    assert len(face.embedding) == 128 and face.size >= 60 and face.sharpness > 0
    assert len(face.landmarks) == 5
    for x, y in face.landmarks:  # eye corners and nose inside the box
        assert face.x <= x <= face.x + face.w and face.y <= y <= face.y + face.h
    assert face.person_id is None, "one face alone waits for a second before it forms a person"


def test_a_photo_without_a_face_gets_none(faces_on, library_dir):
    library_dir.add(NO_FACE)
    [photo] = import_and_find_faces(library_dir)
    assert PhotoStage.objects.get(photo=photo, stage=runners.FACES).state == "done"
    assert not Face.objects.exists() and not Person.objects.exists()


def test_the_same_face_at_different_scales_and_crops_ends_in_one_person(faces_on, library_dir, corpus):
    source = corpus / PORTRAIT
    save_variant(source, library_dir.path / "a-original.jpg")
    save_variant(source, library_dir.path / "b-large.jpg", scale=2.5)
    save_variant(source, library_dir.path / "c-small-crop.jpg", crop=(0.1, 0.0, 0.8, 0.6), scale=0.6)
    save_variant(source, library_dir.path / "d-turned.jpg", angle=12)
    import_and_find_faces(library_dir)
    faces = list(Face.objects.filter(embedding__isnull=False))
    assert len(faces) == 4 and len({f.photo_id for f in faces}) == 4
    assert len({f.person_id for f in faces}) == 1 and faces[0].person_id is not None
    person = Person.objects.get()
    assert person.name == "" and person.face_count == 4 and person.cover_id in {f.pk for f in faces}


def test_different_people_stay_apart_and_one_persons_photos_come_together(faces_on, library_dir, corpus, face_photos):
    for name in ("obama", "obama2", "obama3", "biden"):
        save_variant(face_photos[name], library_dir.path / f"{name}.jpg")
    library_dir.add(PORTRAIT)
    import_and_find_faces(library_dir)
    person = {name: Face.objects.get(photo=by_file(f"{name}.jpg")).person_id
              for name in ("obama", "obama2", "obama3", "biden")}
    person["astronaut"] = Face.objects.get(photo=by_file(PORTRAIT)).person_id
    assert person["obama"] is not None and person["obama"] == person["obama2"] == person["obama3"]
    assert person["biden"] != person["obama"] and person["astronaut"] != person["obama"]
    assert person["biden"] is None and person["astronaut"] is None, "each has no close face: they wait alone"
    assert Person.objects.get(pk=person["obama"]).face_count == 3


def test_a_rerun_replaces_detected_faces_but_keeps_the_owners_person(faces_on, library_dir):
    library_dir.add(PORTRAIT)
    [photo] = import_and_find_faces(library_dir)
    face = Face.objects.get(photo=photo)
    eileen = Person.objects.create(name="Eileen Collins")
    Face.objects.filter(pk=face.pk).update(person=eileen, locked=True, embedding=None, size=0)
    Face.objects.create(photo=photo, x=0.7, y=0.7, w=0.1, h=0.1)  # a stale detection no longer found
    Person.refresh([eileen.pk])

    engine.reprocess(runners.FACES)
    engine.run_pending(runners.FACES)

    [again] = Face.objects.filter(photo=photo)
    assert again.pk == face.pk and again.person_id == eileen.pk and again.locked
    assert again.embedding is not None and again.size > 0, "the row was brought up to date"
    assert Person.objects.get(pk=eileen.pk).face_count == 1


def test_a_file_region_on_the_detected_face_gets_its_embedding_and_keeps_its_name(faces_on, library_dir):
    library_dir.add(PORTRAIT)
    library, _ = libraries.add_library(str(library_dir.path))
    scans.import_library(library, sync=True)
    photo = Photo.objects.get()
    eileen = Person.objects.create(name="Eileen Collins")
    # A region drawn by hand: larger than the detector's box, around the whole head.
    region = Face.objects.create(photo=photo, person=eileen, source=Face.Source.FILE, detector="mwg",
                                 x=0.3, y=0.08, w=0.28, h=0.32, region_name="Eileen Collins", locked=True)
    engine.ensure_rows()
    engine.run_pending(runners.FACES)

    [face] = Face.objects.filter(photo=photo)
    assert face.pk == region.pk and face.source == Face.Source.FILE
    assert face.person_id == eileen.pk and face.region_name == "Eileen Collins"
    assert face.embedding is not None and len(face.landmarks) == 5 and face.size > 0
    assert (face.x, face.y, face.w, face.h) == (0.3, 0.08, 0.28, 0.32), "the region keeps the box its author drew"


def test_a_new_face_joins_the_named_person_of_its_nearest_faces(faces_on, library_dir, face_photos):
    save_variant(face_photos["obama"], library_dir.path / "obama.jpg")
    save_variant(face_photos["obama2"], library_dir.path / "obama2.jpg")
    import_and_find_faces(library_dir)
    person = Person.objects.get()
    person.name = "Barack Obama"
    person.save()

    save_variant(face_photos["obama3"], library_dir.path / "later" / "obama3.jpg")
    import_and_find_faces(library_dir)
    later = by_file("later/obama3.jpg")
    assert Face.objects.get(photo=later).person_id == person.pk
    assert Person.objects.get(pk=person.pk).face_count == 3
    from tagging import search

    assert later.pk in {pk for pk, _, _ in search.text_matches("Obama", limit=10)}, "its name is searchable"


def test_recluster_keeps_named_persons_and_locked_faces(faces_on, library_dir, corpus, face_photos):
    for name in ("obama", "obama2", "obama3", "biden"):
        save_variant(face_photos[name], library_dir.path / f"{name}.jpg")
    save_variant(corpus / PORTRAIT, library_dir.path / "astronaut.jpg")
    save_variant(corpus / PORTRAIT, library_dir.path / "astronaut-large.jpg", scale=2)
    import_and_find_faces(library_dir)
    obama = Face.objects.get(photo=by_file("obama.jpg")).person
    astronaut = Face.objects.get(photo=by_file("astronaut.jpg")).person
    assert obama and astronaut and obama != astronaut
    obama.name = "Barack Obama"
    obama.save()
    # The owner took one Obama photo out of the person: it stays out.
    Face.objects.filter(photo=by_file("obama3.jpg")).update(person=None, locked=True)
    Person.refresh([obama.pk])
    old_unnamed = astronaut.pk

    call_command("recluster_faces", stdout=open(os.devnull, "w"))

    assert Person.objects.get(pk=obama.pk).name == "Barack Obama"
    assert set(Face.objects.filter(person=obama).values_list("photo__files__relpath", flat=True)) == {
        "obama.jpg", "obama2.jpg"}
    assert Face.objects.get(photo=by_file("obama3.jpg")).person_id is None
    astronauts = set(Face.objects.filter(photo__files__relpath__startswith="astronaut").values_list("person_id", flat=True))
    assert len(astronauts) == 1 and None not in astronauts, "the unnamed cluster is formed again"
    assert not Person.objects.filter(pk=old_unnamed).exists() or astronauts == {old_unnamed}
    assert Face.objects.get(photo=by_file("biden.jpg")).person_id is None


def test_nearest_faces_never_come_from_the_same_photo(faces_on, library_dir, corpus):
    library_dir.add(PORTRAIT)
    [photo] = import_and_find_faces(library_dir)
    face = Face.objects.get(photo=photo)
    twin = Face.objects.create(photo=photo, x=0.0, y=0.0, w=0.1, h=0.1, embedding=list(face.embedding))
    assert clustering.nearest(face, assigned=False) == []
    assert clustering.assign([twin]).persons == set() and Face.objects.get(pk=twin.pk).person_id is None


def test_every_face_of_a_small_group_photo_is_found_and_none_joins_another_of_the_same_photo(faces_on, library_dir):
    library_dir.add("camera_jpeg__canon_digital_ixus_2001.jpg")  # a wedding: three faces ~30 px in 640 px
    [photo] = import_and_find_faces(library_dir)
    faces = list(Face.objects.filter(photo=photo).order_by("x"))
    assert len(faces) == 3
    for face in faces:  # side by side in the middle of the picture, at head height
        assert 0.35 <= face.x <= 0.6 and 0.35 <= face.y <= 0.55 and face.w < 0.1
    assert {f.person_id for f in faces} == {None} and not Person.objects.exists()


def test_nearest_face_lookups_are_served_by_the_hnsw_index(faces_on, library_dir):
    from django.db import connection, transaction

    library_dir.add(PORTRAIT)
    [photo] = import_and_find_faces(library_dir)
    face = Face.objects.get(photo=photo)
    with transaction.atomic():
        with connection.cursor() as cur:
            # A table this small would be scanned and sorted anyway: ask whether the index can serve it.
            cur.execute("SET LOCAL enable_seqscan = off")
            cur.execute("SET LOCAL enable_sort = off")
        for assigned in (True, False):
            assert "face_embedding_hnsw" in clustering.nearest_query(face, assigned=assigned).explain()


def test_a_photo_whose_image_is_gone_fails_alone_with_the_reason(faces_on, library_dir, settings):
    from gallery.thumbnails import thumbnail_path

    library_dir.add(PORTRAIT)
    library_dir.add(NO_FACE)
    library, _ = libraries.add_library(str(library_dir.path))
    scans.import_library(library, sync=True)
    gone = by_file(NO_FACE)
    thumbnail_path(settings.THUMBNAIL_DIR, gone.content_hash, "viewer").unlink()
    (library_dir.path / NO_FACE).unlink()
    engine.ensure_rows()
    engine.run_pending(runners.FACES)
    states = dict(PhotoStage.objects.filter(stage=runners.FACES).values_list("photo_id", "state"))
    assert states == {by_file(PORTRAIT).pk: "done", gone.pk: "failed"}
    assert "no file of photo" in PhotoStage.objects.get(stage=runners.FACES, photo=gone).error
    assert Face.objects.filter(photo=by_file(PORTRAIT)).count() == 1
