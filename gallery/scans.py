"""Scanning a library: in the worker in slices of bounded time, or in the foreground in one go.

A scan in the worker is never one task bounded by the task timeout: each
slice (``gallery.tasks.scan_library``) reads files for at most
``SHOEBOX_SCAN_SLICE`` seconds, commits what it read, and queues the next
slice. Nothing else needs carrying over: a rescan is incremental, so the next
slice finds the files already read unchanged and goes on with the rest. Files
are flagged missing only by the slice that walked to the end.

``Library.scan_state``::

    idle | failed ──queue_scan──▶ queued ──slice starts──▶ scanning ──▶ idle (complete)
                                    ▲                          │
                                    └──── next slice ◀─────────┤
                                                               └──▶ failed (error, timeout, or the worker died:
                                                                    gallery.recovery), with a Rescan button
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.exceptions import TimeoutException

from gallery import engine, holders, runners, scanner
from gallery.models import Library, Photo
from gallery.scanner import Outcome, ScanReport

ScanState = Library.ScanState
SCAN_TASK = "gallery.tasks.scan_library"
# Outcomes a slice adds up; files of earlier slices come back "unchanged" in later ones.
CARRIED = (Outcome.IMPORTED, Outcome.UPDATED, Outcome.MOVED, Outcome.DUPLICATE)

# Called with the ids of photos a scan added or changed (the tagging app
# registers its search-document refresh here).
AFTER_SCAN: list = []


class ScanBusy(RuntimeError):
    """Another process is scanning this library now."""


def _lease() -> timedelta:
    return timedelta(seconds=settings.Q_CLUSTER["timeout"] + engine.LEASE_GRACE)


def queue_slice(library: Library) -> None:
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task(SCAN_TASK, library.pk, group="scan"))


def queue_scan(library: Library) -> bool:
    """Hand a scan of ``library`` to the worker; False if one is already queued or running."""
    started = Library.objects.filter(pk=library.pk, scan_state__in=[ScanState.IDLE, ScanState.FAILED]).update(
        scan_state=ScanState.QUEUED, scan_started_at=timezone.now(), scan_error="", scan_progress={}
    )
    if started:
        queue_slice(library)
    return bool(started)


def fail(library: Library, reason: str, *, holder: str | None = None) -> int:
    """Record that the running scan of ``library`` stopped (only if ``holder`` still holds it)."""
    running = Library.objects.filter(pk=library.pk, scan_state=ScanState.SCANNING)
    if holder is not None:
        running = running.filter(scan_holder=holder)
    return running.update(scan_state=ScanState.FAILED, scan_finished_at=timezone.now(), scan_error=reason,
                          scan_holder="", scan_lease_until=None)


def _stopped(exc: BaseException) -> str:
    if isinstance(exc, TimeoutException):
        return f"the scan timed out after {settings.Q_CLUSTER['timeout']} s; rescan to go on where it stopped"
    if isinstance(exc, scanner.LibraryVanished):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def after_scan(report: ScanReport, *, queue: bool = True) -> None:
    """New photos get a row in every stage, edited ones start over; then the first stages are queued."""
    for hook in AFTER_SCAN:
        hook(report.changed_photo_ids())
    engine.start_over(report.updated_photo_ids())
    engine.ensure_rows(report.new_photo_ids())
    if queue:
        engine.enqueue_all(report.new_photo_ids())


def final_totals(report: ScanReport, carried: dict) -> dict:
    """The whole scan's totals from its last slice and what the slices before it counted."""
    totals = dict(report.totals)
    for key in CARRIED:
        totals[key] += carried.get(key, 0)
        totals[Outcome.UNCHANGED] -= carried.get(key, 0)
    return totals


def scan_slice(library_id: int) -> dict:
    """One slice of a scan in the worker (the body of ``gallery.tasks.scan_library``)."""
    holder = holders.current()
    took = Library.objects.filter(pk=library_id, scan_state=ScanState.QUEUED).update(
        scan_state=ScanState.SCANNING, scan_holder=holder, scan_lease_until=timezone.now() + _lease()
    )
    if not took:
        return {"skipped": "not queued (already scanning elsewhere, or no such library)"}
    library = Library.objects.get(pk=library_id)
    mine = Library.objects.filter(pk=library_id, scan_holder=holder)

    def heartbeat():
        mine.update(scan_lease_until=timezone.now() + _lease())

    try:
        deadline = time.monotonic() + settings.SCAN_SLICE_SECONDS
        report = scanner.Scanner(library, deadline=deadline, heartbeat=heartbeat).run()
        carried = Counter(library.scan_progress)
        if report.complete:
            mine.update(scan_state=ScanState.IDLE, scan_finished_at=timezone.now(), scan_holder="",
                        scan_lease_until=None, scan_progress={}, last_scan_totals=final_totals(report, carried))
        else:
            carried.update({key: report.totals[key] for key in CARRIED})
            mine.update(scan_state=ScanState.QUEUED, scan_holder="", scan_lease_until=None,
                        scan_progress=dict(carried))
            queue_slice(library)  # before this slice's thumbnails: the library is listed whole sooner
        after_scan(report)
    except BaseException as exc:
        fail(library, _stopped(exc), holder=holder)
        raise
    return report.totals


def import_library(library: Library, *, progress=None, sync: bool = False, reread: bool = False) -> ScanReport:
    """Scan ``library`` now, in this process (``manage.py import_library``).

    The stages are queued for the worker; with ``sync`` the thumbnails are
    rendered here too, and photos whose pixels turn out to be undecodable are
    reported as failed with the decoder's reason.
    """
    holder = holders.current()
    current = Library.objects.get(pk=library.pk)
    taken = Library.objects.filter(pk=library.pk, scan_state=current.scan_state, scan_holder=current.scan_holder)
    if current.scan_state == ScanState.SCANNING and holders.is_alive(current.scan_holder) is not False:
        raise ScanBusy(f"“{library.name}” is already being scanned ({current.scan_holder or 'by the worker'})")
    if not taken.update(scan_state=ScanState.SCANNING, scan_started_at=timezone.now(), scan_error="",
                        scan_holder=holder, scan_lease_until=None, scan_progress={}):
        raise ScanBusy(f"“{library.name}” was just taken by another scan")
    try:
        report = scanner.Scanner(library, progress=progress, reread=reread).run()
        after_scan(report, queue=not sync)
    except BaseException as exc:
        fail(library, _stopped(exc), holder=holder)
        raise
    Library.objects.filter(pk=library.pk).update(
        scan_state=ScanState.IDLE, scan_finished_at=timezone.now(), scan_holder="", last_scan_totals=report.totals
    )
    if sync:
        new_ids = report.new_photo_ids()
        engine.run_pending(runners.THUMBNAIL, photo_ids=new_ids)
        broken = dict(
            Photo.objects.filter(pk__in=new_ids, status=Photo.Status.BROKEN).values_list("pk", "broken_reason")
        )
        for f in report.files:
            if f.photo_id in broken:
                f.outcome, f.reason = Outcome.FAILED, broken[f.photo_id]
    return report
