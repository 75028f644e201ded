"""The per-tag counts Postgres keeps (``TagCount``, statement-level triggers) agree with counting the links,
whatever writes them: bulk inserts, decisions, undo, merges, deleted photos and tags."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from django.db import connection
from django.db.models import Count

from gallery.models import Photo
from tagging import review, tags
from tagging.models import PhotoTag, Tag, TagCount
from tests.factories import make_photo

pytestmark = pytest.mark.django_db
UTC = timezone.utc


def counted() -> dict[tuple[int, str], int]:
    rows = PhotoTag.objects.values_list("tag_id", "state").annotate(n=Count("id")).order_by()
    return {(tag_id, state): n for tag_id, state, n in rows}


def kept() -> dict[tuple[int, str], int]:
    return {(t, s): n for t, s, n in TagCount.objects.values_list("tag_id", "state", "n")}


@pytest.fixture
def photos(library):
    return [make_photo(library, f"c{i}.jpg", taken=datetime(2022, 5, 1 + i, tzinfo=UTC)) for i in range(6)]


def test_the_counts_follow_every_kind_of_write(photos, staff):
    dog, cat, pet = (tags.for_path(["Animals", name]) for name in ("Dog", "Cat", "Pet"))
    PhotoTag.objects.bulk_create(
        [PhotoTag(photo=p, tag=dog, source="caption", score=i / 10) for i, p in enumerate(photos)]
        + [PhotoTag(photo=p, tag=cat, source="caption") for p in photos[:3]]
    )
    assert kept() == counted() == {(dog.pk, "suggested"): 6, (cat.pk, "suggested"): 3}

    tags.decide(dog, [p.pk for p in photos[:2]], True, by=staff)
    tags.decide(dog, [photos[2].pk], False, by=staff)
    assert kept() == counted()
    assert review.decided(dog) == {"suggested": 3, "accepted": 2, "rejected": 1}

    tags.undo(staff)  # the last batch: the rejection
    assert kept() == counted() and review.decided(dog)["rejected"] == 0

    PhotoTag.objects.filter(tag=dog, state="suggested").update(score=0.9)  # no count changes
    assert kept() == counted()

    tags.merge(cat, pet, by=staff)
    assert kept() == counted() and (cat.pk, "suggested") not in kept()

    Photo.objects.filter(pk=photos[0].pk).delete()  # its links go with it
    assert kept() == counted()

    tags.add(photos[5], "Animals/Pet", by=staff)
    dog.delete()
    assert kept() == counted()
    assert not TagCount.objects.filter(tag_id=dog.pk).exists(), "no counts left for a deleted tag"


def test_the_tag_list_and_inbox_read_the_kept_counts(photos):
    busy, quiet = tags.for_path(["Busy"]), tags.for_path(["Quiet"])
    PhotoTag.objects.bulk_create([PhotoTag(photo=p, tag=busy, source="caption") for p in photos]
                                 + [PhotoTag(photo=photos[0], tag=quiet, source="caption", state="accepted")])
    assert [(row["tag"], row["pending"]) for row in review.tag_queue()] == [(busy, 6)]
    rows, after = review.tag_list_page()
    assert [(r["tag"], r["count"], r["pending"]) for r in rows] == [(busy, 0, 6), (quiet, 1, 0)] and after is None


def test_the_tag_list_pages_by_path(photos, viewer_client):
    made = [tags.for_path([f"t{i:02d}"]) for i in range(5)]
    PhotoTag.objects.create(photo=photos[0], tag=made[3], source="owner", state="accepted")
    rows, after = review.tag_list_page(size=2)
    assert [r["tag"] for r in rows] == made[:2] and after == "t01"
    rows, after = review.tag_list_page(after, size=2)
    assert [(r["tag"], r["count"]) for r in rows] == [(made[2], 0), (made[3], 1)] and after == "t03"
    assert [r["tag"] for r in review.tag_list_page(after, size=2)[0]] == made[4:]
    html = viewer_client.get("/tags/?after=t02", HTTP_HX_REQUEST="true").content.decode()
    assert "<table" not in html and 'data-tag="t03"' in html and 'data-tag="t02"' not in html


@pytest.mark.django_db(transaction=True)
def test_two_connections_deciding_at_once_leave_the_right_counts(library):
    """Concurrent statements on the same tags: the counter rows are locked in one order, so neither
    deadlocks and no change is lost."""
    photos = [make_photo(library, f"x{i}.jpg", taken=datetime(2021, 1, 1 + i, tzinfo=UTC)) for i in range(20)]
    a, b = tags.for_path(["A"]), tags.for_path(["B"])
    PhotoTag.objects.bulk_create([PhotoTag(photo=p, tag=t, source="caption") for p in photos for t in (a, b)])
    errors = []

    def decide(ids, first, second):
        try:
            for _ in range(5):
                tags.decide(first, ids, True)
                tags.decide(second, ids, False)
        except Exception as exc:  # pragma: no cover - what the test is about
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=([p.pk for p in photos[:10]], a, b)),
               threading.Thread(target=decide, args=([p.pk for p in photos[10:]], b, a))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert kept() == counted() == {(a.pk, "accepted"): 10, (a.pk, "rejected"): 10,
                                   (b.pk, "accepted"): 10, (b.pk, "rejected"): 10}
