"""Faces into people: incremental as photos arrive, and all over again on demand.

Distances are Euclidean (L2) between dlib's 128-d face descriptors, found
through the HNSW index on ``Face.embedding`` (``vector_l2_ops``), so each face
costs a few index lookups, not a scan. Two faces are *close* when their
distance is at most :data:`JOIN_DISTANCE` (chosen by measurement,
``bench/faces_bench.py`` and BENCHMARKS.md). Faces of the same photo are never
each other's neighbours: two faces in one picture are two people.

The rule for a face without a person (:func:`assign`):

1. its :data:`NEIGHBOURS` nearest faces that have a person are looked up; if
   any is close, the face joins the person most of the close ones belong to
   (ties: the one whose close faces are nearer on average);
2. otherwise, if unassigned faces are close to it, they and the face form a
   new unnamed person (a cluster waiting for a name);
3. otherwise it waits alone, unassigned, until a close face arrives.

After 1 or 2, the face's close unassigned neighbours join the same person,
so a face that waited alone is picked up by the first close face to arrive.
The owner's faces (``locked``) are never moved, and a locked face without a
person (the owner took it out) is nobody's neighbour to pull in.

:func:`recluster` (``manage.py recluster_faces``) starts over: the faces of
unnamed, visible persons are released and assigned again in the order they
were found; named persons, hidden persons and locked faces stay as they are.
Every change ends with ``Person.refresh`` of the persons it touched, and the photos whose
faces changed person go to ``naming.PHOTOS_CHANGED`` (the tagging app rebuilds their search
documents: names are searchable words).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection, transaction
from pgvector.django import L2Distance

from people.models import Face, Person

JOIN_DISTANCE = 0.5
NEIGHBOURS = 5
EF_SEARCH = 64  # HNSW candidates per lookup (pgvector's default is 40)
LOCK_KEY = zlib.crc32(b"shoebox.people.clustering")  # one clustering at a time (advisory lock)


def _lock_and_tune() -> None:
    """Inside a transaction: wait for other clustering to finish; let filtered lookups scan on."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        cur.execute(f"SET LOCAL hnsw.ef_search = {int(EF_SEARCH)}")
        cur.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")


def nearest_query(face: Face, *, assigned: bool, limit: int = NEIGHBOURS):
    """The ``limit`` faces nearest to ``face`` in other photos, with a person or without one
    (then not locked), each with its ``distance``: an ``ORDER BY embedding <-> … LIMIT`` that the
    HNSW index serves."""
    candidates = Face.objects.filter(embedding__isnull=False, person__isnull=not assigned).exclude(
        photo_id=face.photo_id)
    if not assigned:
        candidates = candidates.filter(locked=False)
    return (candidates.annotate(distance=L2Distance("embedding", face.embedding))
            .order_by("distance").only("pk", "photo_id", "person_id", "locked")[:limit])


def nearest(face: Face, *, assigned: bool, limit: int = NEIGHBOURS,
            max_distance: float = JOIN_DISTANCE) -> list[tuple[Face, float]]:
    """The faces of :func:`nearest_query` within ``max_distance``, nearest first."""
    rows = nearest_query(face, assigned=assigned, limit=limit)
    return [(row, row.distance) for row in rows if row.distance <= max_distance]


def choose_person(neighbours: list[tuple[Face, float]]) -> int:
    """The person most of the close neighbours belong to; ties go to the nearer one on average."""
    votes: dict[int, list[float]] = defaultdict(list)
    for row, distance in neighbours:
        votes[row.person_id].append(distance)
    return min(votes, key=lambda pk: (-len(votes[pk]), sum(votes[pk]) / len(votes[pk]), pk))


@dataclass
class Changes:
    """What clustering changed: the persons to refresh and the photos whose faces moved."""

    persons: set[int] = field(default_factory=set)
    photos: set[int] = field(default_factory=set)


def _assign_one(face: Face, changes: Changes) -> None:
    close = nearest(face, assigned=True)
    loose = nearest(face, assigned=False)
    if close:
        person_id = choose_person(close)
    elif loose:
        person_id = Person.objects.create().pk
    else:
        return
    ids = [face.pk] + [row.pk for row, _ in loose]
    Face.objects.filter(pk__in=ids, person__isnull=True, locked=False).update(person_id=person_id)
    face.person_id = person_id
    changes.persons.add(person_id)
    changes.photos.update([face.photo_id] + [row.photo_id for row, _ in loose])


def assign(faces) -> Changes:
    """Give each of ``faces`` (without a person, with an embedding) a person by the rule above.

    The caller refreshes ``persons`` (``Person.refresh``) and tells the photos' hooks
    (``changed``).
    """
    changes = Changes()
    with transaction.atomic():
        _lock_and_tune()
        for face in sorted(faces, key=lambda f: f.pk):
            if face.embedding is None or face.locked:
                continue
            # An earlier face of this call may have pulled this one into its person already.
            if Face.objects.filter(pk=face.pk, person__isnull=False).exists():
                continue
            _assign_one(face, changes)
    return changes


def changed(photo_ids) -> None:
    """Faces of these photos changed person: the hooks (search documents carry the names) run."""
    from people import naming

    photos = sorted({pk for pk in photo_ids if pk is not None})
    if photos:
        for hook in naming.PHOTOS_CHANGED:
            hook(photos)


def recluster() -> dict[str, int]:
    """Cluster every face again, keeping named persons, hidden persons and locked faces."""
    with transaction.atomic():
        _lock_and_tune()
        released = Face.objects.filter(locked=False, person__isnull=False, person__name="", person__hidden=False)
        old = set(released.values_list("person_id", flat=True))
        count = released.update(person=None)
        Person.refresh(old)
        waiting = list(Face.objects.filter(person__isnull=True, locked=False, embedding__isnull=False)
                       .only("pk", "photo_id", "embedding", "locked").order_by("pk"))
        changes = assign(waiting)
        Person.refresh(changes.persons)
        # Unnamed persons give photos no words; only faces that joined a named one change a document.
        changed(Face.objects.filter(pk__in=[f.pk for f in waiting]).exclude(person__name="")
                .exclude(person__isnull=True).values_list("photo_id", flat=True))
        assigned = Face.objects.filter(pk__in=[f.pk for f in waiting], person__isnull=False).count()
    return {"released": count, "faces": len(waiting), "assigned": assigned,
            "persons": Person.objects.filter(face_count__gt=0).count()}
