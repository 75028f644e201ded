"""The review inbox: which suggestions to show the owner next, and bulk decisions.

*By tag*: "is this a dog?" — one tag's suggestions, least certain first, so
that each decision teaches the most. *By photo*: one photo's pending tags.
Every query here is served by an index on ``PhotoTag`` (tag, state, score)
or (photo, state), or reads the per-tag counts Postgres keeps (``TagCount``),
so answers stay fast with a million suggestions (``bench/review_bench.py``).
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Exists, OuterRef, Sum

from tagging import tags
from tagging.models import LearnedTag, PhotoTag, Tag, TagCount

State = PhotoTag.State
PAGE = 48
TAG_PAGE = 200


def tag_queue(limit: int = 200) -> list[dict]:
    """Tags with suggestions waiting, most waiting first: [{"tag", "pending"}]."""
    rows = TagCount.objects.filter(state=State.SUGGESTED).order_by("-n", "tag_id").values_list("tag_id", "n")[:limit]
    rows = list(rows)
    by_id = Tag.objects.in_bulk([tag_id for tag_id, _ in rows])
    return [{"tag": by_id[tag_id], "pending": n} for tag_id, n in rows if tag_id in by_id]


def tag_list_page(after: str = "", size: int | None = None) -> tuple[list[dict], str | None]:
    """One page of the tag list, by path after ``after``: [{"tag", "count", "pending"}] and the path to
    continue after (None on the last page). A library can hold thousands of tags: a page renders in
    constant time (bench/review_bench.py)."""
    size = size or TAG_PAGE
    tags_here = list(Tag.objects.filter(path__gt=after).order_by("path")[: size + 1])
    more = len(tags_here) > size
    tags_here = tags_here[:size]
    counts = {(t, s): n for t, s, n in TagCount.objects.filter(tag__in=tags_here).values_list("tag_id", "state", "n")}
    rows = [{"tag": t, "count": counts.get((t.pk, State.ACCEPTED), 0), "pending": counts.get((t.pk, State.SUGGESTED), 0)}
            for t in tags_here]
    return rows, (tags_here[-1].path if more else None)


def photos_with(tag: Tag) -> int:
    """Accepted links of the tag and the tags below it (an upper bound on its photos), from the kept counts."""
    return TagCount.objects.filter(tag__in=tags.subtree(tag), state=State.ACCEPTED).aggregate(n=Sum("n"))["n"] or 0


def decided(tag: Tag) -> dict[str, int]:
    """{state: photos} for one tag."""
    counts = {state: 0 for state in State.values}
    counts.update(TagCount.objects.filter(tag=tag).values_list("state", "n"))
    return counts


def suggestions(tag: Tag, *, limit: int = PAGE) -> list[PhotoTag]:
    """The tag's suggestions, least certain first: nearest the learned model's 0.5, else the score boundary.

    "Nearest a value" is two short index range scans, one each side of it,
    merged here, rather than a sort of all the tag's suggestions (tens of
    thousands for a common tag): bench/review_bench.py.
    """
    field, boundary = ("learned", 0.5) if LearnedTag.objects.filter(tag=tag).exists() else (
        "score", settings.TAG_REVIEW_BOUNDARY)
    qs = PhotoTag.objects.filter(tag=tag, state=State.SUGGESTED).select_related("photo")
    above = list(qs.filter(**{f"{field}__gte": boundary}).order_by(field, "photo_id")[:limit])
    below = list(qs.filter(**{f"{field}__lt": boundary}).order_by(f"-{field}", "photo_id")[:limit])
    near = sorted(above + below, key=lambda pt: (abs(getattr(pt, field) - boundary), pt.photo_id))[:limit]
    if len(near) < limit:  # not scored yet: after the scored ones
        near += list(qs.filter(**{f"{field}__isnull": True}).order_by("photo_id")[: limit - len(near)])
    return near


def next_tag(after: Tag | None = None) -> Tag | None:
    """The next tag (by path) with suggestions waiting, wrapping around."""
    waiting = Tag.objects.filter(Exists(PhotoTag.objects.filter(tag=OuterRef("pk"), state=State.SUGGESTED)))
    if after is not None:
        found = waiting.filter(path__gt=after.path).order_by("path").first()
        if found is not None:
            return found
    return waiting.order_by("path").first()


def _bulk_rows(tag: Tag, accept: bool, threshold: float):
    rows = PhotoTag.objects.filter(tag=tag, state=State.SUGGESTED, score__isnull=False)
    return rows.filter(score__gte=threshold) if accept else rows.filter(score__lt=threshold)


def bulk_preview(tag: Tag, accept: bool, threshold: float) -> int:
    """How many photos "accept above / reject below ``threshold``" would change."""
    return _bulk_rows(tag, accept, threshold).count()


def bulk(tag: Tag, accept: bool, threshold: float, *, by=None) -> int:
    ids = list(_bulk_rows(tag, accept, threshold).values_list("photo_id", flat=True))
    return tags.decide(tag, ids, accept, by=by)


def next_photo(after: int = 0) -> int | None:
    """The next photo (by id) with tags waiting for a decision, wrapping around."""
    waiting = PhotoTag.objects.filter(state=State.SUGGESTED).order_by("photo_id")
    found = waiting.filter(photo_id__gt=after).values_list("photo_id", flat=True).first()
    return found if found is not None else waiting.values_list("photo_id", flat=True).first()
