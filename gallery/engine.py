"""The stage engine: every photo through every registered stage, once, and never stuck.

One photo in one stage is one ``PhotoStage`` row. Its state changes only here::

    pending ──enqueue──▶ queued ──claim──▶ running ──▶ done ──▶ (dependents pending again, next stage queued)
       ▲                                      │
       └──── error with attempts left ◀───────┤   (retried at once, alone in its batch)
                                              ├──▶ failed        error of the photo's own, or attempts used up
                                              └──▶ unavailable   the model is missing (no attempt used)
    blocked: a stage it needs failed for this photo; pending again once that stage is done.

* **Queueing** (:func:`enqueue`) turns *ready* pending rows (every stage in
  ``needs`` done) into queued ones and hands them to django-q2 in batches,
  after the transaction commits. Only rows this call changed are handed on.
  A retry (``attempts > 0``) always travels alone, so one poison photo cannot
  take a batch down with it twice.
* **Claiming** (:func:`claim`) takes queued rows with ``SELECT … FOR UPDATE
  SKIP LOCKED`` and marks them running with an attempt used, a holder (this
  process, ``gallery.holders``) and a lease (the task timeout plus a grace).
  A row that is running is never claimed again: only recovery
  (``gallery.recovery``) may take it back, once its holder is dead or silent
  past its lease.
* **Running** (:func:`run_stage`, the one django-q2 task of every stage):
  the stage's runner does its own work on a :class:`Batch` and reports each
  photo through it; each photo's output is saved with its state in one
  transaction, so one bad result fails that photo, not its batch. A timeout
  (django-q2 raises ``TimeoutException``, a ``SystemExit``) or a crash of the
  runner is recorded against every photo still open.
* **Handing on**: a failed photo blocks the stages that need this one; a done
  photo unblocks them (or, done again, makes them out of date: pending); retries are queued again; and the batch's photos are
  queued for the next stage in order that has work for them (cheap stages
  first: embeddings for the whole library before its captions).
* **Pacing**: a background stage (``StageSpec.paced``: the full caption) is
  queued only as the machine allows (:func:`allowance`): while no earlier
  stage has work waiting, one batch at a time, within its rate. What someone
  asks for (:func:`photo_opened`, retries, ``process --stage``) is queued
  regardless.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef
from django.utils import timezone
from django_q.exceptions import TimeoutException

from gallery import holders, stages
from gallery.content import ContentChanged
from gallery.imaging import BrokenImage, SkipFile
from gallery.models import Photo, PhotoStage
from gallery.originals import OriginalMissing
from gallery.stages import StageSpec, StageUnavailable

log = logging.getLogger(__name__)
State = PhotoStage.State

# Errors that are the photo's own fault: another attempt would end the same way.
PHOTO_ERRORS = (BrokenImage, SkipFile, OriginalMissing, ContentChanged)
# A claim outlives its task's timeout by this much before a silent holder is presumed dead.
LEASE_GRACE = 60
RUN_TASK = "gallery.tasks.run_stage"


class LostClaim(RuntimeError):
    """This process no longer holds the photo (recovery gave it to another): its result is dropped."""


def max_attempts() -> int:
    return settings.Q_CLUSTER["max_attempts"]


def gives_up(attempts: int) -> bool:
    """The one retry rule: after ``attempts`` tries with an error worth retrying, is it over?"""
    return attempts >= max_attempts()


def _spec(stage: str | StageSpec) -> StageSpec:
    return stage if isinstance(stage, StageSpec) else stages.get(stage)


# -- rows ----------------------------------------------------------------------------


_ENSURE_ROWS_SQL = """
INSERT INTO gallery_photostage (photo_id, stage, model, state, attempts, error, holder, updated_at)
SELECT p.id, s.stage, s.model, %(pending)s, 0, '', '', now()
FROM gallery_photo p CROSS JOIN unnest(%(stages)s::text[], %(models)s::text[]) AS s(stage, model)
WHERE p.status = %(ok)s {only}
  AND NOT EXISTS (SELECT 1 FROM gallery_photostage r WHERE r.photo_id = p.id AND r.stage = s.stage)
ON CONFLICT (photo_id, stage) DO NOTHING
"""


def ensure_rows(photo_ids: Iterable[int] | None = None) -> int:
    """Give every OK photo a pending row for every stage it lacks (with the stage's current model).

    One INSERT … SELECT for all stages: the rows are made in the database (a scan's new photos
    need one per stage each; through the ORM they cost more than the scan's own writes).
    """
    specs = [spec for spec in stages.ordered() if not spec.on_demand]
    ids = None if photo_ids is None else list(photo_ids)
    if not specs or ids == []:
        return 0
    sql = _ENSURE_ROWS_SQL.format(only="" if ids is None else "AND p.id = ANY(%(ids)s)")
    with connection.cursor() as cur:
        cur.execute(sql, {"pending": State.PENDING, "ok": Photo.Status.OK, "ids": ids,
                          "stages": [spec.name for spec in specs], "models": [spec.model() for spec in specs]})
        return cur.rowcount


def follow_model_change(stage: str | StageSpec) -> int:
    """Rows made for another model than the configured one are to be done again."""
    spec = _spec(stage)
    if spec.on_demand:
        return 0
    model = spec.model()
    other = PhotoStage.objects.filter(stage=spec.name).exclude(model=model)
    other.filter(state=State.BLOCKED).update(model=model)  # still blocked, but for the new model once free
    return other.exclude(state__in=[State.QUEUED, State.RUNNING, State.BLOCKED]).update(
        model=model, state=State.PENDING, attempts=0, error=""
    )


def prepare() -> None:
    """Rows for every photo and stage, following model changes: before queueing everything."""
    ensure_rows()
    for spec in stages.ordered():
        if not spec.on_demand:
            follow_model_change(spec)


def start_over(photo_ids: Iterable[int]) -> int:
    """Every stage of these photos is to be done again (their file's content changed)."""
    return PhotoStage.objects.filter(photo_id__in=list(photo_ids)).exclude(state=State.RUNNING).update(
        state=State.PENDING, attempts=0, error="", holder="", lease_until=None
    )


def _ready(spec: StageSpec, qs):
    """Rows of ``qs`` whose photo has every stage ``spec`` needs done (and that the stage's own rule lets run)."""
    for need in spec.needs:
        qs = qs.filter(Exists(PhotoStage.objects.filter(photo_id=OuterRef("photo_id"), stage=need, state=State.DONE)))
    return spec.ready(qs) if spec.ready else qs


def redo(stage: str | StageSpec, photo_ids: Iterable[int]) -> int:
    """What ``stage`` made for these photos is gone (a reused caption undone): done rows are pending again."""
    return PhotoStage.objects.filter(stage=_spec(stage).name, photo_id__in=list(photo_ids), state=State.DONE).update(
        state=State.PENDING, attempts=0, error="")


def _dependents_of(spec: StageSpec, photo_ids: list[int]):
    return PhotoStage.objects.filter(photo_id__in=photo_ids, stage__in=[s.name for s in stages.dependents(spec.name)])


def block_dependents(spec: StageSpec, photo_ids: list[int]) -> int:
    """``spec`` failed for these photos: the stages that need it cannot run (until it is done)."""
    if not photo_ids:
        return 0
    return _dependents_of(spec, photo_ids).filter(
        state__in=[State.PENDING, State.QUEUED, State.UNAVAILABLE, State.FAILED]
    ).update(state=State.BLOCKED, error=f"needs the {spec.name} stage, which failed", attempts=0)


def refresh_dependents(spec: StageSpec, photo_ids: list[int]) -> int:
    """``spec`` is done (again) for these photos: the stages built on it are unblocked, or out of date."""
    if not photo_ids:
        return 0
    users = PhotoStage.objects.filter(photo_id__in=photo_ids, stage__in=[s.name for s in stages.users(spec.name)],
                                      state=State.DONE).update(state=State.PENDING, error="", attempts=0)
    return users + _dependents_of(spec, photo_ids).filter(state__in=[State.BLOCKED, State.DONE]).update(
        state=State.PENDING, error="", attempts=0)


# -- queueing ------------------------------------------------------------------------


def take(stage: str | StageSpec, photo_ids: Iterable[int] | None = None, *, limit: int | None = None,
         states=(State.PENDING,)) -> list[tuple[str, list[int]]]:
    """Mark ready rows of ``stage`` as queued; returns the batches as ``[(model, [photo ids])]``.

    Rows another transaction is changing are skipped (``SKIP LOCKED``), and
    only rows this call changed are returned, so no photo is handed out twice.
    Retries come back in batches of one.
    """
    spec = _spec(stage)
    size = max(1, spec.batch_size())
    with transaction.atomic():
        qs = PhotoStage.objects.filter(stage=spec.name, state__in=list(states))
        if photo_ids is not None:
            qs = qs.filter(photo_id__in=list(photo_ids))
        qs = _ready(spec, qs).order_by("photo_id").select_for_update(skip_locked=True, of=("self",))
        qs = qs.values_list("pk", "photo_id", "model", "attempts")
        rows = list(qs[:limit] if limit else qs)
        if not rows:
            return []
        PhotoStage.objects.filter(pk__in=[r[0] for r in rows]).update(state=State.QUEUED)
    batches: list[tuple[str, list[int]]] = []
    fresh: dict[str, list[int]] = {}
    for _, photo_id, model, attempts in rows:
        if attempts:
            batches.append((model, [photo_id]))
        else:
            fresh.setdefault(model, []).append(photo_id)
    for model, ids in fresh.items():
        batches.extend((model, ids[i : i + size]) for i in range(0, len(ids), size))
    return batches


def idle_before(spec: StageSpec) -> bool:
    """Whether every stage before ``spec`` is out of work: nothing queued, running, or pending and ready."""
    earlier = [s for s in stages.ordered() if (s.order, s.name) < (spec.order, spec.name) and not s.on_demand]
    if PhotoStage.objects.filter(stage__in=[s.name for s in earlier], state__in=[State.QUEUED, State.RUNNING]).exists():
        return False
    return not any(_ready(s, PhotoStage.objects.filter(stage=s.name, state=State.PENDING)).exists() for s in earlier)


def allowance(spec: StageSpec) -> int:
    """How many photos of a paced stage may be queued now, unasked.

    None while an earlier stage has work waiting (cheap work first, and a new
    import is never stuck behind a queue of slow captions); else what is left
    of one batch in flight per worker process (an idle machine is used, but a
    new import waits for at most those batches), and never more than
    ``spec.paced()`` (the rate).
    """
    if spec.paced is None:
        return spec.batch_size()
    if not idle_before(spec):
        return 0
    in_flight = PhotoStage.objects.filter(stage=spec.name, state__in=[State.QUEUED, State.RUNNING]).count()
    room = max(1, spec.batch_size()) * max(1, settings.Q_CLUSTER["workers"]) - in_flight
    return max(0, min(room, spec.paced()))


def enqueue(stage: str | StageSpec, photo_ids: Iterable[int] | None = None, *, asked: bool = False) -> set[int]:
    """Hand the ready pending work of ``stage`` to the worker; returns the photo ids queued.

    A paced stage takes only its :func:`allowance` unless the work was ``asked`` for.
    """
    from django_q.tasks import async_task

    spec = _spec(stage)
    limit = None
    if spec.paced is not None and not asked:
        limit = allowance(spec)
        if limit <= 0:
            return set()
    queued: set[int] = set()
    with transaction.atomic():
        for model, ids in take(spec, photo_ids, limit=limit):
            transaction.on_commit(
                lambda ids=ids, model=model: async_task(
                    RUN_TASK, spec.name, ids, model, group=spec.name, timeout=spec.task_timeout()
                )
            )
            queued.update(ids)
    return queued


def enqueue_all(photo_ids: Iterable[int] | None = None) -> dict[str, int]:
    """Every stage's ready pending work to the worker, in order."""
    ids = None if photo_ids is None else list(photo_ids)
    return {spec.name: len(enqueue(spec, ids)) for spec in stages.ordered()}


def photo_opened(photo_id: int) -> list[tuple[StageSpec, str]]:
    """Someone opened this photo: queue the stages worth doing for it now (its full caption), unpaced.

    Returns each such stage with the photo's state in it now (the page says what is on its way).
    """
    opened = []
    for spec in stages.ordered():
        if spec.on_open is not None:
            ids = set(spec.on_open([photo_id]))
            states = dict(PhotoStage.objects.filter(photo_id__in=ids | {photo_id}, stage=spec.name)
                          .values_list("photo_id", "state"))
            # Most opened photos have nothing pending: no queueing transaction for them.
            if any(states.get(pk) == State.PENDING for pk in ids) and photo_id in enqueue(spec, ids, asked=True):
                states[photo_id] = State.QUEUED
            if states.get(photo_id):
                opened.append((spec, states[photo_id]))
    return opened


def queue_next(stage: str | StageSpec, photo_ids: Iterable[int]) -> None:
    """Queue each photo for the first stage after ``stage`` that has ready work for it.

    A paced stage after it takes whatever ready work it has, as its allowance lets it.
    """
    remaining = set(photo_ids)
    for spec in stages.later(_spec(stage).name):
        if spec.paced is not None:
            enqueue(spec)
        elif remaining:
            remaining -= enqueue(spec, remaining)


def retry_failed(stage: str | StageSpec) -> int:
    """Failed (and model-unavailable) photos of ``stage`` get a fresh set of attempts and are queued."""
    spec = _spec(stage)
    n = PhotoStage.objects.filter(stage=spec.name, state__in=[State.FAILED, State.UNAVAILABLE]).update(
        state=State.PENDING, attempts=0, error=""
    )
    enqueue(spec, asked=True)
    return n


def reprocess(stage: str | StageSpec, *, model: str | None = None, only_missing: bool = False) -> int:
    """Mark ``stage`` to be done again for every photo (with ``model``, default the configured one).

    Earlier results stay until the new ones exist. With ``only_missing``,
    photos that already have this model's output are left alone. Raises
    ``ValueError`` for a stage that cannot be re-run or a malformed model.
    """
    spec = _spec(stage)
    if not spec.rerunnable:
        raise ValueError(f"the {spec.name} stage cannot be run again by hand")
    model = spec.check_model(model or spec.model())
    ensure_rows()
    rows = PhotoStage.objects.filter(stage=spec.name).exclude(state__in=[State.QUEUED, State.RUNNING, State.BLOCKED])
    if only_missing:
        done = spec.outputs(model)
        if done is not None:
            rows = rows.exclude(photo_id__in=done)
    return rows.update(model=model, state=State.PENDING, attempts=0, error="")


# -- claiming and running ------------------------------------------------------------


@dataclass
class Batch:
    """Photos of one stage claimed by this process. The runner reports each one through it."""

    spec: StageSpec
    model: str
    photos: list[Photo]
    holder: str
    attempts: dict[int, int]
    lease: float
    outcome: dict[int, str] = field(default_factory=dict)
    _mark: float = field(default_factory=time.monotonic)
    _renewed: float = field(default_factory=time.monotonic)

    @property
    def open(self) -> list[Photo]:
        """Photos not yet reported done or failed."""
        return [p for p in self.photos if p.pk not in self.outcome]

    def done(self, photo: Photo, *, seconds: float | None = None) -> None:
        """The photo is done (its output, if any, saved already: else use :meth:`saving`)."""
        try:
            self._finish(photo.pk, State.DONE, "", seconds)
        except LostClaim:
            log.warning("%s: photo %s was taken back by recovery", self.spec.name, photo.pk)

    def fail(self, photo: Photo, reason: str, *, retry: bool = False) -> None:
        """Record ``reason``; with ``retry`` the photo gets another attempt while it has any."""
        self._give_back([photo.pk], reason, retry=retry)

    def gone(self, photo: Photo) -> None:
        """The photo no longer exists (merged into another): its stage rows went with it."""
        self.outcome[photo.pk] = "gone"

    def fail_open(self, reason: str, *, retry: bool) -> None:
        """Every photo not yet reported fails with ``reason`` (a model call or the whole batch failed)."""
        self._give_back([p.pk for p in self.open], reason, retry=retry)

    @contextmanager
    def guard(self, photo: Photo):
        """Work on one photo: its own errors fail it (at once, or with a retry), never the batch."""
        try:
            yield
        except PHOTO_ERRORS as exc:
            self.fail(photo, getattr(exc, "reason", None) or str(exc) or type(exc).__name__)
        except LostClaim:
            log.warning("%s: photo %s was taken back by recovery; its result is dropped", self.spec.name, photo.pk)
        except StageUnavailable:
            raise
        except Exception as exc:
            log.exception("%s failed for photo %s", self.spec.name, photo.pk)
            self.fail(photo, f"{type(exc).__name__}: {exc}", retry=True)

    @contextmanager
    def saving(self, photo: Photo, *, seconds: float | None = None):
        """Save one photo's output: the rows written inside and its *done* state commit together."""
        with self.guard(photo):
            with transaction.atomic():
                yield
                self._finish(photo.pk, State.DONE, "", seconds)

    def unavailable(self, message: str) -> None:
        """The stage cannot run here now: open photos wait, their attempt given back."""
        ids = [p.pk for p in self.open]
        self._rows(ids).update(state=State.UNAVAILABLE, error=message, attempts=F("attempts") - 1,
                               holder="", lease_until=None)
        for pk in ids:
            self.outcome[pk] = State.UNAVAILABLE

    def ids(self, state: str) -> list[int]:
        return [pk for pk, s in self.outcome.items() if s == state]

    def counts(self) -> dict[str, int]:
        c = Counter(self.outcome.values())
        return {"done": c[State.DONE], "failed": c[State.FAILED], "retry": c[State.PENDING],
                "unavailable": c[State.UNAVAILABLE], "skipped": 0}

    # -- internals

    def _rows(self, ids: list[int]):
        return PhotoStage.objects.filter(stage=self.spec.name, photo_id__in=ids, state=State.RUNNING,
                                         holder=self.holder)

    def _seconds(self, seconds: float | None) -> float:
        now = time.monotonic()
        elapsed, self._mark = now - self._mark, now
        return elapsed if seconds is None else seconds

    def _finish(self, pk: int, state: str, error: str, seconds: float | None) -> None:
        changed = self._rows([pk]).update(state=state, error=error, duration=self._seconds(seconds),
                                          holder="", lease_until=None)
        if not changed:
            self.outcome[pk] = "lost"
            raise LostClaim(pk)
        self.outcome[pk] = state
        self._renew()

    def _give_back(self, ids: list[int], reason: str, *, retry: bool) -> None:
        ids = [pk for pk in ids if pk not in self.outcome]
        if not ids:
            return
        seconds = self._seconds(None) / len(ids)
        for state, group in release(self.attempts, ids, reason, retry=retry).items():
            self._rows(group).update(state=state, error=errors_for(reason, state, retry), duration=seconds,
                                     holder="", lease_until=None)
            for pk in group:
                self.outcome[pk] = state
        self._renew()

    def _renew(self) -> None:
        """Keep the lease of the photos still open while the batch makes progress."""
        if time.monotonic() - self._renewed > self.lease / 3 and self.open:
            self._rows([p.pk for p in self.open]).update(lease_until=timezone.now() + timedelta(seconds=self.lease))
            self._renewed = time.monotonic()


def release(attempts: dict[int, int], ids: Iterable[int], reason: str, *, retry: bool) -> dict[str, list[int]]:
    """Where photos that ended with an error go: ``{PENDING: [...], FAILED: [...]}`` by the one retry rule."""
    out: dict[str, list[int]] = {}
    for pk in ids:
        state = State.PENDING if retry and not gives_up(attempts[pk]) else State.FAILED
        out.setdefault(state, []).append(pk)
    return out


def errors_for(reason: str, state: str, retry: bool) -> str:
    if not retry:
        return reason
    if state == State.FAILED:
        return f"{reason} (gave up after {max_attempts()} attempts)"
    return f"{reason} (will try again)"


def lease_seconds(spec: StageSpec) -> int:
    return spec.task_timeout() + LEASE_GRACE


def claim(stage: str | StageSpec, photo_ids: Iterable[int], model: str) -> Batch | None:
    """Claim the queued rows of these photos for ``model``; None if there is nothing to do.

    Rows that are running (another process holds them), done, or queued for
    another model are left alone.
    """
    spec = _spec(stage)
    holder = holders.current()
    lease = lease_seconds(spec)
    with transaction.atomic():
        rows = list(
            PhotoStage.objects.select_for_update(skip_locked=True)
            .filter(stage=spec.name, photo_id__in=list(photo_ids), state=State.QUEUED, model=model)
            .order_by("photo_id")
            .values_list("photo_id", "attempts")
        )
        spent = [pk for pk, attempts in rows if gives_up(attempts)]
        if spent:  # only by hand (a row edited, a setting lowered): never run them again
            PhotoStage.objects.filter(stage=spec.name, photo_id__in=spent).update(state=State.FAILED)
        ids = [pk for pk, attempts in rows if not gives_up(attempts)]
        if not ids:
            return None
        PhotoStage.objects.filter(stage=spec.name, photo_id__in=ids).update(
            state=State.RUNNING, attempts=F("attempts") + 1, holder=holder,
            lease_until=timezone.now() + timedelta(seconds=lease),
        )
    photos = Photo.objects.in_bulk(ids)
    return Batch(spec=spec, model=model, photos=[photos[pk] for pk in ids if pk in photos], holder=holder,
                 attempts={pk: attempts + 1 for pk, attempts in rows}, lease=lease)


def _stopped_reason(exc: BaseException, spec: StageSpec) -> str:
    if isinstance(exc, TimeoutException):
        return f"timed out after {spec.task_timeout()} s"
    return f"the worker was stopped ({type(exc).__name__}) while working on this photo"


def run_stage(stage: str, photo_ids: list[int], model: str = "", *, hand_on: bool = True) -> dict:
    """Run one batch of ``stage``: claim, run its runner, record every photo, hand on.

    The body of the one django-q2 task of every stage (``gallery.tasks.run_stage``)
    and of the foreground runs (``hand_on=False``: the caller goes on itself).
    """
    spec = _spec(stage)
    batch = claim(spec, photo_ids, model)
    if batch is None:
        return {"done": 0, "failed": 0, "retry": 0, "unavailable": 0, "skipped": len(photo_ids)}
    try:
        spec.runner(batch)
    except StageUnavailable as exc:
        batch.unavailable(exc.message)
    except Exception as exc:  # the runner itself broke: every open photo gets another attempt
        log.exception("%s batch failed", spec.name)
        batch.fail_open(f"{type(exc).__name__}: {exc}", retry=True)
    except BaseException as exc:  # django-q2's TimeoutException (a SystemExit), KeyboardInterrupt
        try:
            batch.fail_open(_stopped_reason(exc, spec), retry=True)
            settle(batch)
            if hand_on:
                pass_on(batch)
        except Exception:  # the connection may have died with the task: recovery takes over
            log.exception("could not record the stop of a %s batch", spec.name)
        raise
    batch.fail_open("the stage ended without a result for this photo", retry=True)
    settle(batch)
    if hand_on:
        pass_on(batch)
    counts = batch.counts()
    counts["skipped"] = len(photo_ids) - len(batch.photos)
    return counts


def settle(batch: Batch) -> None:
    """What a batch's outcome means for the other stages of its photos."""
    refresh_dependents(batch.spec, batch.ids(State.DONE))
    block_dependents(batch.spec, batch.ids(State.FAILED))


def pass_on(batch: Batch) -> None:
    """Retries back to the worker; every photo on to the next stage with work for it.

    Stages that read this one's output again (``uses``) and photos that were
    waiting for these (``followers``) are queued too; a paced stage queues its
    next batch as its allowance lets it.
    """
    spec = batch.spec
    retries = batch.ids(State.PENDING)
    if retries:
        enqueue(spec, retries, asked=True)
    done = batch.ids(State.DONE)
    for user in stages.users(spec.name):
        enqueue(user, done)
    if spec.followers is not None and done:
        enqueue(spec, spec.followers(done), asked=True)
    queue_next(spec, [p.pk for p in batch.photos])
    if spec.paced is not None:
        enqueue(spec)


# -- in the foreground ---------------------------------------------------------------


def run_pending(stage: str | StageSpec, *, photo_ids: Iterable[int] | None = None, progress=None) -> dict:
    """Run every ready pending (or queued) photo of ``stage`` in this process, batch by batch, retries included."""
    spec = _spec(stage)
    ids = None if photo_ids is None else list(photo_ids)
    waiting = PhotoStage.objects.filter(stage=spec.name, state__in=[State.PENDING, State.QUEUED])
    if ids is not None:
        waiting = waiting.filter(photo_id__in=ids)
    total = _ready(spec, waiting).count()
    totals: Counter = Counter()
    finished = 0
    while batches := take(spec, ids, limit=spec.batch_size(), states=(State.PENDING, State.QUEUED)):
        for model, chunk in batches:
            totals.update(run_stage(spec.name, chunk, model, hand_on=False))
            finished += len(chunk)
            if progress:
                progress(min(finished, total), max(total, finished))
    return {"done": 0, "failed": 0, "unavailable": 0, **totals}


def run_all_pending(*, only: str | None = None, progress_for=None) -> dict[str, dict]:
    """Every stage in order, in this process. ``progress_for(stage)`` gives a progress callback.

    A paced stage (the full caption) runs only when named by ``only``: it is the slow one, done as the machine allows.
    """
    prepare()
    results = {}
    for spec in stages.ordered():
        if (only and spec.name != only) or (not only and spec.paced is not None):
            continue
        results[spec.name] = run_pending(spec, progress=progress_for(spec.name) if progress_for else None)
    return results


def queue_all_pending(*, only: str | None = None) -> dict[str, int]:
    """Every stage's ready pending work to the worker (later stages also follow as batches finish)."""
    prepare()
    return {spec.name: len(enqueue(spec, asked=spec.name == only)) for spec in stages.ordered()
            if not only or spec.name == only}


# -- what the pages show ---------------------------------------------------------------


def stage_counts() -> dict[str, dict[str, int]]:
    """{stage: {state: count}} for every registered stage, in order, with zeros filled in."""
    counts = {s.name: {st: 0 for st in State.values} for s in stages.ordered()}
    for row in PhotoStage.objects.values("stage", "state").annotate(n=Count("id")).order_by():
        if row["stage"] in counts:
            counts[row["stage"]][row["state"]] = row["n"]
    return counts


def unavailable() -> list[tuple[StageSpec, str]]:
    """(stage, message) for each stage that waits for something it needs (model weights, a server)."""
    specs = stages.ordered()
    if not specs:
        return []
    # Every page's banner asks: one static query, a one-row index probe per stage (no ORM to compile).
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT s.stage, (SELECT p.error FROM {PhotoStage._meta.db_table} p
                                 WHERE p.stage = s.stage AND p.state = %s ORDER BY p.id LIMIT 1)
                FROM unnest(%s::text[]) AS s(stage)""",
            [State.UNAVAILABLE, [spec.name for spec in specs]],
        )
        messages = dict(cursor.fetchall())
    return [(spec, messages[spec.name]) for spec in specs if messages.get(spec.name)]


def unavailable_messages() -> list[str]:
    """One message per stage whose model is missing (``process`` prints them)."""
    return [message for _, message in unavailable()]


def recent_failures(limit: int = 50):
    """Failed work with its reasons (work waiting for a model is shown by the banner instead)."""
    return PhotoStage.objects.filter(state=State.FAILED).select_related("photo").order_by("-updated_at")[:limit]


def has_work() -> bool:
    """Whether anything is queued or running, or pending and ready to be queued.

    A paced stage's pending work counts only while its pace lets some of it
    run now: work waiting for the next hour (or for someone to open the photo)
    is not work the machine is doing.
    """
    # One statement, so one snapshot: asked one after the other, a row could go from pending to queued
    # between the two questions and be seen by neither.
    work = PhotoStage.objects.filter(state__in=[State.QUEUED, State.RUNNING])
    for spec in stages.ordered():
        if spec.paced is None or spec.paced() > 0:
            work = work | _ready(spec, PhotoStage.objects.filter(stage=spec.name, state=State.PENDING))
    return work.exists()


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
