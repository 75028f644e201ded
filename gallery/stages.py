"""Per-photo processing stages: state, attempts, errors, and handing work to the worker.

Every stage of every photo has a PhotoStage row. Work moves
pending → queued → running → done | failed. Batches are handed to django-q2
after the transaction that queued them commits. A batch claims each photo
before working on it (attempts + 1, committed), so a photo that crashes or
hangs the worker is retried with the task and, after ``max_attempts``,
recorded as failed with a reason instead of taking its batch down again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from gallery.models import Photo, PhotoStage

log = logging.getLogger(__name__)
State = PhotoStage.State



@dataclass(frozen=True)
class StageSpec:
    """How a stage runs: its django-q2 task (called as ``task(photo_ids, model)``),
    the in-process runner with the same signature, the batch size, and the
    model it should currently use ("" for stages without one)."""

    task: str
    runner: Callable[[list[int], str], dict]
    batch_size: Callable[[], int]
    model: Callable[[], str] = lambda: ""


STAGES: dict[str, StageSpec] = {}


def register(stage: str, spec: StageSpec) -> None:
    """Apps add their stages here (the tagging app in its AppConfig.ready)."""
    STAGES[stage] = spec


def _render_thumbnails(photo_ids: list[int], model: str = "") -> dict:
    from gallery import thumbnails

    return thumbnails.render_batch(photo_ids)


register(
    PhotoStage.Stage.THUMBNAIL,
    StageSpec("gallery.tasks.render_thumbnails", _render_thumbnails, lambda: settings.THUMBNAIL_BATCH),
)


def max_attempts() -> int:
    return settings.Q_CLUSTER["max_attempts"]


def requeue_stale(stage: str) -> int:
    """Queued or running work whose task can no longer be running goes back to pending.

    A task older than the retry interval has either finished, been retried
    by django-q2, or died with its worker.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.Q_CLUSTER["retry"] * max_attempts())
    return PhotoStage.objects.filter(
        stage=stage, state__in=[State.QUEUED, State.RUNNING], updated_at__lt=cutoff
    ).update(state=State.PENDING)


def pending_by_model(stage: str, *, photo_ids: Iterable[int] | None = None, states=(State.PENDING,)):
    """{model: [photo ids]} of work waiting in ``stage``, oldest photos first."""
    qs = PhotoStage.objects.filter(stage=stage, state__in=list(states))
    if photo_ids is not None:
        qs = qs.filter(photo_id__in=list(photo_ids))
    groups: dict[str, list[int]] = {}
    for photo_id, model in qs.order_by("photo_id").values_list("photo_id", "model"):
        groups.setdefault(model, []).append(photo_id)
    return groups


def enqueue_pending(stage: str, *, photo_ids: Iterable[int] | None = None) -> int:
    """Hand pending work of ``stage`` to the worker in batches; returns photos queued."""
    from django_q.tasks import async_task

    spec = STAGES[stage]
    size = spec.batch_size()
    requeue_stale(stage)
    queued = 0
    with transaction.atomic():
        groups = pending_by_model(stage, photo_ids=photo_ids)
        for model, ids in groups.items():
            PhotoStage.objects.filter(stage=stage, photo_id__in=ids, state=State.PENDING).update(
                state=State.QUEUED, updated_at=timezone.now()
            )
            for i in range(0, len(ids), size):
                chunk = ids[i : i + size]
                transaction.on_commit(
                    lambda chunk=chunk, model=model: async_task(spec.task, chunk, model, group=stage)
                )
            queued += len(ids)
    return queued


def ensure_rows(stage: str, photo_ids: Iterable[int] | None = None) -> int:
    """Give every OK photo a row for ``stage`` (pending, current model). Returns rows added."""
    model = STAGES[stage].model()
    photos = Photo.objects.filter(status=Photo.Status.OK).exclude(stages__stage=stage)
    if photo_ids is not None:
        photos = photos.filter(pk__in=list(photo_ids))
    rows = [PhotoStage(photo_id=pk, stage=stage, model=model) for pk in photos.values_list("pk", flat=True)]
    PhotoStage.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def follow_model_change(stage: str) -> int:
    """Rows made for another model than the configured one are to be done again."""
    model = STAGES[stage].model()
    return (
        PhotoStage.objects.filter(stage=stage)
        .exclude(model=model)
        .exclude(state__in=[State.QUEUED, State.RUNNING])
        .update(model=model, state=State.PENDING, attempts=0, error="")
    )


def mark_unavailable(stage: str, photo_ids: list[int], message: str) -> None:
    """The model is missing: the work waits (no attempt used) until it is back."""
    PhotoStage.objects.filter(stage=stage, photo_id__in=photo_ids).exclude(state=State.DONE).update(
        state=State.UNAVAILABLE, error=message
    )


def unavailable_messages() -> list[str]:
    """One message per stage whose model is missing (for the banner)."""
    messages = []
    for stage in STAGES:
        row = (
            PhotoStage.objects.filter(stage=stage, state=State.UNAVAILABLE)
            .values_list("error", flat=True)
            .first()
        )
        if row:
            messages.append(row)
    return messages


def retry_failed(stage: str) -> int:
    """Failed (and model-unavailable) photos of ``stage`` get a fresh set of attempts."""
    n = PhotoStage.objects.filter(stage=stage, state__in=[State.FAILED, State.UNAVAILABLE]).update(
        state=State.PENDING, attempts=0, error=""
    )
    enqueue_pending(stage)
    return n


def claim(stage: str, photo_id: int) -> PhotoStage | None:
    """Mark one photo's stage as running (committed at once), or None if it should not run.

    Returns None when the work is already done, or when it has used up its
    attempts, in which case it is recorded as failed.
    """
    with transaction.atomic():
        ps = PhotoStage.objects.select_for_update().filter(photo_id=photo_id, stage=stage).first()
        if ps is None or ps.state == State.DONE:
            return None
        if ps.attempts >= max_attempts():
            if ps.state != State.FAILED:
                ps.state = State.FAILED
                ps.error = ps.error or (
                    f"gave up after {ps.attempts} attempts: the worker crashed or timed out on this photo"
                )
                ps.save(update_fields=["state", "error", "updated_at"])
            return None
        ps.state = State.RUNNING
        ps.attempts += 1
        ps.save(update_fields=["state", "attempts", "updated_at"])
        return ps


def finish(ps: PhotoStage, *, started: float, error: str = "", state: str | None = None) -> None:
    ps.duration = time.monotonic() - started
    ps.error = error
    ps.state = state or (State.FAILED if error else State.DONE)
    ps.save(update_fields=["state", "error", "duration", "updated_at"])


def run_batch(stage: str, photo_ids: list[int], work: Callable[[Photo], None], *, expected: tuple = ()) -> dict:
    """Run ``work`` on each photo of a batch, recording state per photo.

    Exceptions listed in ``expected`` are the photo's own fault (a broken
    file): recorded as failed at once, with their message. Anything else is
    recorded too, but left for another attempt.
    """
    counts = {"done": 0, "failed": 0, "skipped": 0}
    photos = Photo.objects.in_bulk(photo_ids)
    for photo_id in photo_ids:
        photo = photos.get(photo_id)
        ps = claim(stage, photo_id) if photo is not None else None
        if ps is None:
            counts["skipped"] += 1
            continue
        started = time.monotonic()
        try:
            work(photo)
        except expected as exc:
            finish(ps, started=started, error=getattr(exc, "reason", None) or str(exc))
            counts["failed"] += 1
        except Exception as exc:  # recorded, and retried while attempts remain
            log.exception("%s failed for photo %s", stage, photo_id)
            error = f"{type(exc).__name__}: {exc}"
            final = ps.attempts >= max_attempts()
            finish(ps, started=started, error=error, state=State.FAILED if final else State.PENDING)
            counts["failed"] += 1
        else:
            finish(ps, started=started)
            counts["done"] += 1
    return counts


def stage_counts() -> dict[str, dict[str, int]]:
    """{stage: {state: count}} for every registered stage, with zeros filled in."""
    counts = {s: {st: 0 for st in State.values} for s in STAGES}
    rows = PhotoStage.objects.values("stage", "state").annotate(n=Count("id")).order_by()
    for row in rows:
        counts.setdefault(row["stage"], {})[row["state"]] = row["n"]
    return counts


def recent_failures(stage: str | None = None, limit: int = 50):
    """Failed work with its reasons (work waiting for a model is shown by the banner instead)."""
    qs = PhotoStage.objects.filter(state=State.FAILED).select_related("photo")
    if stage:
        qs = qs.filter(stage=stage)
    return qs.order_by("-updated_at")[:limit]


def is_busy() -> bool:
    return PhotoStage.objects.filter(Q(state=State.QUEUED) | Q(state=State.RUNNING)).exists()


def eta_seconds(stage: str) -> float | None:
    """Remaining work × recent mean duration per photo, or None if unknown."""
    remaining = PhotoStage.objects.filter(
        stage=stage, state__in=[State.PENDING, State.QUEUED, State.RUNNING]
    ).count()
    if not remaining:
        return 0.0
    recent = list(
        PhotoStage.objects.filter(stage=stage, state=State.DONE, duration__isnull=False)
        .order_by("-updated_at")
        .values_list("duration", flat=True)[:200]
    )
    if not recent:
        return None
    workers = max(1, settings.Q_CLUSTER["workers"])
    return remaining * (sum(recent) / len(recent)) / workers
