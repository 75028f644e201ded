"""What happens to a library after a scan: the stages, run by the worker or here.

``import_library`` is what the command, the "Add library" form's task and
``make run LIBRARY=…`` call. ``run_pending`` works through every pending stage
in the foreground (``manage.py process --sync``).
"""

from __future__ import annotations

from gallery import scanner, stages, thumbnails
from gallery.models import Library, Photo, PhotoStage
from gallery.scanner import Outcome, ScanReport

# Stage name → function running one batch of photo ids in this process.
RUNNERS = {
    PhotoStage.Stage.THUMBNAIL: thumbnails.render_batch,
}


def import_library(library: Library, *, progress=None, sync: bool = False) -> ScanReport:
    """Scan ``library``; render thumbnails here (``sync``) or queue them for the worker.

    With ``sync``, photos whose pixels turn out to be undecodable are
    reported as failed with the decoder's reason.
    """
    report = scanner.scan(library, progress=progress)
    if sync:
        run_pending(PhotoStage.Stage.THUMBNAIL, photo_ids=report.new_photo_ids())
        broken = dict(
            Photo.objects.filter(pk__in=report.new_photo_ids(), status=Photo.Status.BROKEN).values_list(
                "pk", "broken_reason"
            )
        )
        for f in report.files:
            if f.photo_id in broken:
                f.outcome, f.reason = Outcome.FAILED, broken[f.photo_id]
    else:
        stages.enqueue_pending(PhotoStage.Stage.THUMBNAIL)
    return report


def run_pending(stage: str, *, photo_ids=None, progress=None) -> dict:
    """Run all pending work of ``stage`` in this process, batch by batch."""
    stages.requeue_stale(stage)
    qs = PhotoStage.objects.filter(stage=stage, state__in=[PhotoStage.State.PENDING, PhotoStage.State.QUEUED])
    if photo_ids is not None:
        qs = qs.filter(photo_id__in=list(photo_ids))
    ids = list(qs.order_by("photo_id").values_list("photo_id", flat=True))
    _, batch_size = stages.STAGE_TASKS[stage]
    size = batch_size()
    totals = {"done": 0, "failed": 0, "skipped": 0}
    for i in range(0, len(ids), size):
        counts = RUNNERS[stage](ids[i : i + size])
        for k, v in counts.items():
            totals[k] += v
        if progress:
            progress(min(i + size, len(ids)), len(ids))
    return totals


def queue_scan(library: Library) -> None:
    """Hand a scan of ``library`` to the worker (the "Add library" and "Rescan" buttons)."""
    from django.db import transaction
    from django_q.tasks import async_task

    Library.objects.filter(pk=library.pk).update(scan_state="queued")
    transaction.on_commit(lambda: async_task("gallery.tasks.scan_library", library.pk, group="scan"))
