"""Nothing stays stuck: work whose holder died, and queued work whose task was lost, go back to the queue.

Runs when a worker process starts (django-q2's ``post_spawn``: right after a
worker was killed, timed out or restarted) and once a minute in the worker
(``gallery.tasks.tick``, a django-q2 schedule that a starting worker makes):

* a **running** photo whose holder is dead (on this host: no process with
  that pid and start time) or silent past its lease (on another host) has
  used an attempt: it is queued again, or failed with the reason once its
  attempts are used up;
* a **queued** photo that no task in the broker mentions (the task failed
  before it could claim, or was lost) goes back to pending;
* a library **scan** whose holder died is shown as failed, with a Rescan
  button; a queued scan whose task was lost is queued again;
* then every stage's ready pending work is queued.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from gallery import engine, holders, stages
from gallery.models import Library, PhotoStage

log = logging.getLogger(__name__)
State = PhotoStage.State

# Queued work younger than this is never called lost: its task may be on its way.
ORPHAN_AFTER = timedelta(seconds=60)
# Reading the ORM broker's queue to find lost work: above this many tasks, wait for a quieter tick.
MAX_TASKS_READ = 20_000
DEAD_HOLDER = "the worker stopped while working on this photo (killed, crashed, out of memory or over its time limit)"
SCAN_TASK = "gallery.tasks.scan_library"
TICK_TASK = "gallery.tasks.tick"
TICK_NAME = "shoebox: engine tick"
TICK_LOCK = 0x5B0E_71C4  # pg advisory lock key for making the schedule
# Upkeep each tick runs after recovery (apps register here): a function returning a summary dict.
ON_TICK: list = []


def _is_dead(holder: str, lease_until, now, alive: dict) -> bool:
    if holder not in alive:
        alive[holder] = holders.is_alive(holder)
    if alive[holder] is True:
        return False
    if alive[holder] is False or not holder:
        return True
    return lease_until is None or lease_until < now  # another host: its lease decides


def reap_dead_claims() -> int:
    """Running work whose holder is gone: queued again (attempt used) or failed. Returns photos taken back."""
    now = timezone.now()
    alive: dict[str, bool | None] = {}
    dead: dict[tuple[str, str], dict[int, int]] = {}
    rows = PhotoStage.objects.filter(state=State.RUNNING).values_list(
        "stage", "photo_id", "holder", "attempts", "lease_until"
    )
    for stage, photo_id, holder, attempts, lease_until in rows:
        if _is_dead(holder, lease_until, now, alive):
            dead.setdefault((stage, holder), {})[photo_id] = attempts
    taken = 0
    for (stage, holder), attempts in dead.items():
        spec = stages.find(stage)
        by_state = engine.release(attempts, attempts, DEAD_HOLDER, retry=spec is not None)
        for state, ids in by_state.items():
            taken += PhotoStage.objects.filter(stage=stage, photo_id__in=ids, state=State.RUNNING, holder=holder).update(
                state=state, error=engine.errors_for(DEAD_HOLDER, state, spec is not None), holder="", lease_until=None
            )
        if spec is not None:
            engine.block_dependents(spec, by_state.get(State.FAILED, []))
            engine.enqueue(spec, by_state.get(State.PENDING, []))
        log.warning("took back %d %s photos from %s", len(attempts), stage, holder or "an unknown holder")
    return taken


def _broker_tasks() -> tuple[set[tuple[str, int]], set[int]] | None:
    """What the broker still holds: ``({(stage, photo id)}, {library id})``, or None if it cannot tell."""
    from django_q.brokers import get_broker
    from django_q.conf import Conf

    if not Conf.ORM:
        return None
    from django_q.models import OrmQ

    rows = OrmQ.objects.using(Conf.ORM).filter(key=get_broker().list_key)
    if rows.count() > MAX_TASKS_READ:
        return None
    photos, scans = set(), set()
    for row in rows.iterator():
        task = row.task
        args = task.get("args") or ()
        if task.get("func") == engine.RUN_TASK and len(args) >= 2:
            photos.update((args[0], pk) for pk in args[1])
        elif task.get("func") == SCAN_TASK and args:
            scans.add(args[0])
    return photos, scans


def _broker_idle() -> bool:
    from django_q.brokers import get_broker

    return not get_broker().queue_size() and not PhotoStage.objects.filter(state=State.RUNNING).exists()


def requeue_orphans() -> int:
    """Queued work that no task will ever claim goes back to pending. Returns photos found."""
    cutoff = timezone.now() - ORPHAN_AFTER
    queued = PhotoStage.objects.filter(state=State.QUEUED, updated_at__lt=cutoff)
    if not queued.exists():
        return 0
    held = _broker_tasks()
    if held is None:
        if not _broker_idle():
            return 0
        lost = list(queued.values_list("pk", flat=True))
    else:
        photos, _ = held
        lost = [pk for pk, stage, photo_id in queued.values_list("pk", "stage", "photo_id")
                if (stage, photo_id) not in photos]
    return PhotoStage.objects.filter(pk__in=lost, state=State.QUEUED).update(state=State.PENDING)


def reap_dead_scans() -> int:
    """Scans whose worker died are failed (the libraries page offers a rescan); lost scan tasks are queued again."""
    from gallery import scans

    now = timezone.now()
    alive: dict[str, bool | None] = {}
    found = 0
    for library in Library.objects.filter(scan_state=Library.ScanState.SCANNING):
        if _is_dead(library.scan_holder, library.scan_lease_until, now, alive):
            found += scans.fail(library, "the scan stopped: its worker was killed, crashed or ran out of memory",
                                holder=library.scan_holder)
    waiting = Library.objects.filter(scan_state=Library.ScanState.QUEUED, scan_started_at__lt=now - ORPHAN_AFTER)
    if waiting.exists():
        held = _broker_tasks()
        if held is not None or _broker_idle():
            lost = [lib for lib in waiting if held is None or lib.pk not in held[1]]
            for library in lost:
                scans.queue_slice(library)
            found += len(lost)
    return found


def recover() -> dict[str, int]:
    """Take back dead and lost work, queue every stage's ready work, then run the ``ON_TICK`` upkeep."""
    result = {"reaped": reap_dead_claims(), "orphans": requeue_orphans(), "scans": reap_dead_scans()}
    engine.prepare()
    result["queued"] = sum(engine.enqueue_all().values())
    for upkeep in ON_TICK:
        try:
            result.update(upkeep())
        except Exception:  # the recovery above is done; the upkeep tries again next tick
            log.exception("tick upkeep %s failed", getattr(upkeep, "__name__", upkeep))
    return result


def ensure_tick_schedule() -> None:
    """The django-q2 schedule that runs :func:`recover` once a minute (made once, kept as it is)."""
    from django_q.models import Schedule

    with transaction.atomic():
        with connection.cursor() as cur:  # two workers starting at once make one schedule
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [TICK_LOCK])
        Schedule.objects.update_or_create(
            name=TICK_NAME,
            defaults={"func": TICK_TASK, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1},
        )


def on_worker_start(sender=None, **kwargs) -> None:
    """django-q2 started a worker process (at start, or after one was killed or timed out)."""
    try:
        ensure_tick_schedule()
        reap_dead_claims()
        reap_dead_scans()
    except Exception:  # a worker must start even when this fails; the next tick tries again
        log.exception("recovery at worker start failed")
