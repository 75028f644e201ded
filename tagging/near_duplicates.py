"""Near-duplicates: photos whose CLIP embeddings are almost the same.

Exact duplicates (the same bytes) are already one photo with several files.
Near-duplicates — the same scene re-saved, resized, lightly edited, burst
shots — are found by asking the HNSW index for each photo's few nearest
neighbours and keeping pairs closer than ``MAX_DISTANCE`` (cosine). The
pairs are stored (``NearDuplicate``) by a background task, since a large
library takes minutes, and grouped for the page with union-find.

A group is described once (issue: do not caption the same scene twice): its
*representative* is its first photo (the lowest id: the first imported, so a
later burst shot or re-save never displaces it), and the full description
stage lets the others reuse the representative's (``Representative`` rows,
``tagging.runners.describe``). When the groups change, reuse that no longer
holds is undone.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q

from gallery.models import Photo, SourceFile
from tagging.models import Caption, Embedding, NearDuplicate, Representative

NEIGHBOURS = 5
CHUNK = 500


def max_distance() -> float:
    return settings.NEAR_DUPLICATE_DISTANCE


def find_pairs(model_key: str, dim: int, *, threshold: float | None = None, photo_ids: list[int] | None = None) -> int:
    """Find near-duplicate pairs of one model; returns the pairs stored for it.

    Without ``photo_ids`` every photo is looked at again and the model's pairs
    are replaced; with them (the embedding stage, after each batch) only
    those photos' pairs are replaced (an edited photo may have left its
    group). Representatives follow (:func:`refresh_representatives`).
    """
    threshold = max_distance() if threshold is None else threshold
    everything = photo_ids is None
    ids = list(
        Embedding.objects.filter(model=model_key, **({} if everything else {"photo_id__in": photo_ids}))
        .order_by("photo_id").values_list("photo_id", flat=True)
    )
    pairs: list[NearDuplicate] = []
    d = int(dim)
    sql = f"""
        SELECT e.photo_id, n.photo_id, n.distance FROM tagging_embedding e
        CROSS JOIN LATERAL (
            SELECT x.photo_id, (x.vector::halfvec({d})) <=> (e.vector::halfvec({d})) AS distance
            FROM tagging_embedding x
            WHERE x.model = %s AND x.photo_id <> e.photo_id
            ORDER BY (x.vector::halfvec({d})) <=> (e.vector::halfvec({d})) LIMIT {NEIGHBOURS}
        ) n
        WHERE e.model = %s AND e.photo_id = ANY(%s) AND n.distance < %s
    """
    for i in range(0, len(ids), CHUNK):
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(f"SET LOCAL hnsw.ef_search = {int(settings.HNSW_EF_SEARCH)}")
            cur.execute(sql, [model_key, model_key, ids[i : i + CHUNK], threshold])
            for a, b, dist in cur.fetchall():
                if a < b:
                    pairs.append(NearDuplicate(photo_id=a, other_id=b, model=model_key, distance=dist))
                else:
                    pairs.append(NearDuplicate(photo_id=b, other_id=a, model=model_key, distance=dist))
    with transaction.atomic():
        mine = NearDuplicate.objects.filter(model=model_key)
        if everything:
            mine.delete()
        else:
            mine.filter(Q(photo_id__in=ids) | Q(other_id__in=ids)).delete()
        NearDuplicate.objects.bulk_create(pairs, ignore_conflicts=True)
        refresh_representatives(model_key)
    return NearDuplicate.objects.filter(model=model_key).count()


def refresh_representatives(model_key: str) -> int:
    """Each group's representative (its lowest id) for every other member; reuse that no longer holds is
    undone. Returns how many reused descriptions were undone."""
    from tagging import documents

    wanted = {member: group[0] for group in groups(model_key) for member in group[1:]}
    with transaction.atomic():
        current = dict(Representative.objects.values_list("photo_id", "representative_id"))
        Representative.objects.filter(photo_id__in=[pk for pk, rep in current.items() if wanted.get(pk) != rep]).delete()
        Representative.objects.bulk_create([
            Representative(photo_id=member, representative_id=rep, model=model_key)
            for member, rep in wanted.items() if current.get(member) != rep
        ])
        # A copy whose photo left the group, or whose group has another representative now. Deleting it
        # sends that photo's description back to pending (tagging.runners.undo_reuse).
        stale = Caption.objects.filter(source__isnull=False).exclude(Exists(Representative.objects.filter(
            photo_id=OuterRef("photo_id"), representative_id=OuterRef("source__photo_id"))))
        undone = list(stale.values_list("photo_id", flat=True))
        if undone:
            stale.delete()
            documents.refresh(undone)
    return len(undone)



def groups(model_key: str) -> list[list[int]]:
    """Connected groups of near-duplicate photo ids, largest first."""
    return group_pairs(NearDuplicate.objects.filter(model=model_key).values_list("photo_id", "other_id"))


def group_pairs(pairs) -> list[list[int]]:
    """Connected groups (sorted ids) of ``(a, b)`` pairs, largest first (union-find; no database)."""
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        parent[root(a)] = root(b)
    found: dict[int, list[int]] = {}
    for x in list(parent):
        found.setdefault(root(x), []).append(x)
    return sorted((sorted(g) for g in found.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))


def refresh() -> int:
    """Recompute pairs for the configured model (the background task)."""
    from tagging.search import current_embedding_model

    model = current_embedding_model()
    if model is None:
        return 0
    return find_pairs(*model)


def queue_refresh() -> None:
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task("tagging.tasks.near_duplicates", group="near-duplicates"))


def page_context(limit: int = 100) -> dict:
    from tagging.search import current_embedding_model

    # Exact duplicates: one photo, several files with the same bytes.
    copies = (
        SourceFile.objects.filter(missing=False, outcome=SourceFile.Outcome.PHOTO)
        .values("photo_id").annotate(n=Count("id")).filter(n__gt=1).order_by("-n", "photo_id")[:limit]
    )
    by_id = Photo.objects.in_bulk([row["photo_id"] for row in copies])
    exact = [by_id[row["photo_id"]] for row in copies if row["photo_id"] in by_id]
    model = current_embedding_model()
    near = []
    if model is not None:
        id_groups = groups(model[0])[:limit]
        photos = Photo.objects.visible().in_bulk([pk for g in id_groups for pk in g])
        near = [[photos[pk] for pk in g if pk in photos] for g in id_groups]
        near = [g for g in near if len(g) > 1]
    return {"exact": exact, "near": near, "threshold": max_distance(), "has_embeddings": model is not None}
