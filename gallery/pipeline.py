"""What happens to a library after a scan: the stages, run by the worker or here.

Stages run in registration order — thumbnail, then embedding, then caption —
cheap ones first, so a large library is browsable long before its captions
are done. In the worker, each finished batch queues the same photos for the
next stage (``run_task``). In the foreground (``manage.py process --sync``)
``run_all_pending`` works through the stages in order.
"""

from __future__ import annotations

from gallery import scanner, stages
from gallery.models import Library, Photo, PhotoStage
from gallery.scanner import Outcome, ScanReport


# Called with the ids of photos a scan added or changed (the tagging app
# registers its search-document refresh here).
AFTER_SCAN: list = []


def import_library(library: Library, *, progress=None, sync: bool = False) -> ScanReport:
    """Scan ``library``; render thumbnails here (``sync``) or queue the stages for the worker.

    With ``sync``, photos whose pixels turn out to be undecodable are
    reported as failed with the decoder's reason; the AI stages are left
    pending for ``manage.py process``.
    """
    report = scanner.scan(library, progress=progress)
    new_ids = report.new_photo_ids()
    changed = report.changed_photo_ids()
    for hook in AFTER_SCAN:
        hook(changed)
    for stage in stages.STAGES:
        stages.ensure_rows(stage, new_ids)
    if sync:
        run_pending(PhotoStage.Stage.THUMBNAIL, photo_ids=new_ids)
        broken = dict(
            Photo.objects.filter(pk__in=new_ids, status=Photo.Status.BROKEN).values_list("pk", "broken_reason")
        )
        for f in report.files:
            if f.photo_id in broken:
                f.outcome, f.reason = Outcome.FAILED, broken[f.photo_id]
    else:
        stages.enqueue_pending(PhotoStage.Stage.THUMBNAIL)
    return report


def run_pending(stage: str, *, photo_ids=None, progress=None) -> dict:
    """Run all pending (or queued) work of ``stage`` in this process, batch by batch."""
    spec = stages.STAGES[stage]
    stages.requeue_stale(stage)
    groups = stages.pending_by_model(
        stage, photo_ids=photo_ids, states=(PhotoStage.State.PENDING, PhotoStage.State.QUEUED)
    )
    total = sum(len(ids) for ids in groups.values())
    size = spec.batch_size()
    totals = {"done": 0, "failed": 0, "skipped": 0}
    finished = 0
    for model, ids in groups.items():
        for i in range(0, len(ids), size):
            chunk = ids[i : i + size]
            for k, v in spec.runner(chunk, model).items():
                totals[k] = totals.get(k, 0) + v
            finished += len(chunk)
            if progress:
                progress(finished, total)
    return totals


def _stages_to_process(only: str | None):
    """Stages in order, each with a row per photo and rows of an old model sent back to pending."""
    for stage in stages.STAGES:
        if only and stage != only:
            continue
        stages.ensure_rows(stage)
        stages.follow_model_change(stage)
        yield stage


def run_all_pending(*, only: str | None = None, progress_for=None) -> dict[str, dict]:
    """Every stage in order, in this process. ``progress_for(stage)`` gives a progress callback."""
    return {
        stage: run_pending(stage, progress=progress_for(stage) if progress_for else None)
        for stage in _stages_to_process(only)
    }


def queue_all_pending(*, only: str | None = None) -> dict[str, int]:
    """Every stage's pending work to the worker (later stages also follow as batches finish)."""
    return {stage: stages.enqueue_pending(stage) for stage in _stages_to_process(only)}


def run_task(stage: str, photo_ids: list[int], model: str = "") -> dict:
    """Body of every stage's django-q2 task: run the batch, then queue the next stage."""
    result = stages.STAGES[stage].runner(photo_ids, model)
    order = list(stages.STAGES)
    position = order.index(stage)
    if position + 1 < len(order):
        stages.enqueue_pending(order[position + 1], photo_ids=photo_ids)
    return result


def queue_scan(library: Library) -> None:
    """Hand a scan of ``library`` to the worker (the "Add library" and "Rescan" buttons)."""
    from django.db import transaction
    from django_q.tasks import async_task

    Library.objects.filter(pk=library.pk).update(scan_state="queued")
    transaction.on_commit(lambda: async_task("gallery.tasks.scan_library", library.pk, group="scan"))
