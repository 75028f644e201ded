"""Learning a tag from the owner's decisions, in the worker.

Once a tag has enough accepted and rejected photos (``learning.MIN_EACH``
each), :func:`learn_tag` fits a model over their CLIP embeddings
(``tagging.learning``: a linear probe or a fitted threshold, whichever
predicts held-out decisions better), stores it with its measured precision
and recall, rescores the tag's pending suggestions, and suggests the tag for
the photos it is most sure of that no model suggested.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from tagging import learning
from tagging.models import Embedding, LearnedTag, PhotoTag, Tag, TagStats
from tagging.vectors import as_array

log = logging.getLogger(__name__)
State = PhotoTag.State
LEARN_TASK = "tagging.tasks.learn_tag"
# Learn again once the decisions have grown by this fraction (and at least MIN_EACH).
RELEARN_GROWTH = 0.2
# A learn task queued longer ago than this is presumed lost: another may be queued.
QUEUED_FOR = timedelta(minutes=10)
CHUNK = 20_000


def decision_counts(tag_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """{tag id: (accepted, rejected)}."""
    counts: dict[int, list[int]] = {}
    # Decided rows only: an index range scan, not all of a common tag's suggestions.
    rows = (PhotoTag.objects.filter(tag_id__in=list(tag_ids), state__in=[State.ACCEPTED, State.REJECTED])
            .values_list("tag_id", "state").annotate(n=Count("tag_id")).order_by())
    for tag_id, state, n in rows:
        counts.setdefault(tag_id, [0, 0])[0 if state == State.ACCEPTED else 1] = n
    return {tag_id: (pos, neg) for tag_id, (pos, neg) in counts.items()}


def is_due(tag_id: int, positives: int, negatives: int, learned: LearnedTag | None) -> bool:
    if positives < learning.MIN_EACH or negatives < learning.MIN_EACH:
        return False
    if learned is None:
        return True
    before = learned.n_positive + learned.n_negative
    return positives + negatives >= before + max(learning.MIN_EACH, RELEARN_GROWTH * before)


def queue_if_due(tag_ids: Iterable[int]) -> list[int]:
    """Hand tags with enough new decisions to the worker. Returns the tags queued."""
    from django_q.tasks import async_task

    ids = [pk for pk in tag_ids if pk]
    learned = {lt.tag_id: lt for lt in LearnedTag.objects.filter(tag_id__in=ids)}
    due = [pk for pk, (pos, neg) in decision_counts(ids).items() if is_due(pk, pos, neg, learned.get(pk))]
    now = timezone.now()
    queued = []
    for pk in due:  # one learn task per tag at a time (a review session makes hundreds of decisions)
        free = Q(learn_queued_at__isnull=True) | Q(learn_queued_at__lt=now - QUEUED_FOR)
        if Tag.objects.filter(free, pk=pk).update(learn_queued_at=now):
            transaction.on_commit(lambda pk=pk: async_task(LEARN_TASK, pk, group="learn"))
            queued.append(pk)
    return queued


def _vectors(model_key: str, photo_ids: list[int]) -> tuple[list[int], np.ndarray]:
    rows = list(Embedding.objects.filter(photo_id__in=photo_ids, model=model_key).values_list("photo_id", "vector"))
    if not rows:
        return [], np.zeros((0, 1), dtype=np.float32)
    return [r[0] for r in rows], np.stack([as_array(r[1]) for r in rows])


def learn_tag(tag_id: int, *, model_key: str | None = None) -> LearnedTag | None:
    """Fit the tag's model from its decisions; rescore and extend its suggestions. None if too few decisions."""
    from tagging import clip

    tag = Tag.objects.filter(pk=tag_id).first()
    if tag is None:
        return None
    Tag.objects.filter(pk=tag_id).update(learn_queued_at=None)
    model_key = model_key or clip.ClipSpec.parse(settings.CLIP_MODEL).key
    links = PhotoTag.objects.filter(tag=tag)
    pos_ids, positives = _vectors(model_key, list(links.filter(state=State.ACCEPTED).values_list("photo_id", flat=True)))
    neg_ids, negatives = _vectors(model_key, list(links.filter(state=State.REJECTED).values_list("photo_id", flat=True)))
    stats = TagStats.objects.filter(tag=tag, clip_model=model_key).first()
    text_vector = np.asarray(stats.text_vector, dtype=np.float32) if stats else None
    fitted = learning.fit(positives, negatives, text_vector=text_vector) if len(pos_ids) and len(neg_ids) else None
    if fitted is None:
        return None
    learned, _ = LearnedTag.objects.update_or_create(tag=tag, defaults=dict(
        clip_model=model_key, kind=fitted.kind, params=fitted.as_dict(), precision=fitted.precision,
        recall=fitted.recall, f1=fitted.f1, n_positive=fitted.n_positive, n_negative=fitted.n_negative,
    ))
    rescore(tag, fitted, model_key)
    suggest_missed(tag, fitted, model_key)
    return learned


def rescore(tag: Tag, fitted: learning.TagModel, model_key: str) -> int:
    """The learned probability on every pending suggestion of ``tag``."""
    ids, vectors = _vectors(model_key, list(PhotoTag.objects.filter(tag=tag, state=State.SUGGESTED)
                                            .values_list("photo_id", flat=True)))
    if not ids:
        return 0
    probabilities = dict(zip(ids, learning.predict(fitted, vectors)))
    links = list(PhotoTag.objects.filter(tag=tag, photo_id__in=ids).only("pk", "photo_id"))
    for link in links:
        link.learned = float(probabilities[link.photo_id])
    PhotoTag.objects.bulk_update(links, ["learned"], batch_size=1000)
    return len(links)


def suggest_missed(tag: Tag, fitted: learning.TagModel, model_key: str) -> int:
    """Suggest ``tag`` for the photos its model is surest of that have no link to it yet."""
    limit = settings.TAG_LEARNED_SUGGESTIONS
    if limit <= 0:
        return 0
    linked = set(PhotoTag.objects.filter(tag=tag).values_list("photo_id", flat=True))
    best: list[tuple[float, int]] = []
    last = 0
    while True:  # every embedding of this model, in chunks, by photo id
        rows = list(Embedding.objects.filter(model=model_key, photo_id__gt=last).order_by("photo_id")
                    .values_list("photo_id", "vector")[:CHUNK])
        if not rows:
            break
        last = rows[-1][0]
        ids = [r[0] for r in rows]
        probabilities = learning.predict(fitted, np.stack([as_array(r[1]) for r in rows]))
        best += [(float(p), pk) for pk, p in zip(ids, probabilities)
                 if p >= settings.TAG_LEARNED_MIN_PROBABILITY and pk not in linked]
        best = sorted(best, reverse=True)[:limit]
    PhotoTag.objects.bulk_create([
        PhotoTag(photo_id=pk, tag=tag, source=PhotoTag.Source.LEARNED, state=State.SUGGESTED, learned=p,
                 model=f"learned:{fitted.kind}")
        for p, pk in best
    ], ignore_conflicts=True)
    return len(best)
