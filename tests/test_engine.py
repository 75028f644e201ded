"""The stage engine (gallery.engine, gallery.recovery): one registry, one task, nothing stuck, nothing twice.

Real Postgres; a "probe" stage registered for the test stands in for a
runner where the test needs a runner to misbehave on purpose.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection, connections
from django.utils import timezone as djtz
from django_q.exceptions import TimeoutException

from gallery import engine, holders, recovery, stages
from gallery.imaging import BrokenImage
from gallery.models import Photo, PhotoStage
from tests.factories import make_jpeg, make_photo

pytestmark = pytest.mark.django_db

UTC = timezone.utc


def dead_holder() -> str:
    """A holder on this host whose process does not exist."""
    return holders.current().replace(f":{os.getpid()}:", ":999999999:")


@pytest.fixture
def photos(library, probe_stage):
    made = [make_photo(library, f"p{i}.jpg", taken=datetime(2020, 1, 1 + i, tzinfo=UTC)) for i in range(5)]
    engine.ensure_rows([p.pk for p in made])
    PhotoStage.objects.exclude(stage="probe").update(state="done")
    return made


def probe_rows():
    return PhotoStage.objects.filter(stage="probe").order_by("photo_id")


@pytest.fixture
def sent(monkeypatch):
    """Tasks handed to django-q2, recorded instead of sent: [(stage, photo ids, model, options)]."""
    calls = []
    monkeypatch.setattr("django_q.tasks.async_task",
                        lambda func, *args, **kw: calls.append((func, *args, kw)))
    # The test runs inside a transaction that never commits: hand tasks over at once.
    monkeypatch.setattr("django.db.transaction.on_commit", lambda func, using=None, robust=False: func())
    return calls


# -- the registry ------------------------------------------------------------------


def test_stages_run_in_their_declared_order_whatever_order_they_were_registered_in(probe_stage):
    assert stages.names() == ["thumbnail", "embedding", "caption", "tagscore", "description", "export", "probe"]
    stages.register(stages.StageSpec(name="early", order=15, runner=lambda b: None, batch_size=lambda: 1))
    try:
        assert stages.names() == ["thumbnail", "early", "embedding", "caption", "tagscore", "description", "export",
                                  "probe"]
        assert [s.name for s in stages.later("early")] == ["embedding", "caption", "tagscore", "description", "export",
                                                            "probe"]
    finally:
        stages.unregister("early")
    assert [s.name for s in stages.dependents("thumbnail")] == ["embedding", "caption", "tagscore", "description",
                                                                 "probe"]


def test_adding_a_stage_is_one_runner_and_one_registration(photos, probe_stage):
    def runner(batch):
        for photo in batch.photos:
            with batch.saving(photo):
                Photo.objects.filter(pk=photo.pk).update(title=f"probed {photo.pk}")

    probe_stage.runner = runner
    result = engine.run_pending("probe")
    assert result["done"] == 5 and result["failed"] == 0
    for photo in Photo.objects.filter(pk__in=[p.pk for p in photos]):
        assert photo.title == f"probed {photo.pk}"
    for row in probe_rows():
        assert (row.state, row.attempts, row.holder, row.lease_until) == ("done", 1, "", None)
        assert row.duration is not None


# -- one photo, not the batch ----------------------------------------------------------


def test_a_photo_whose_output_the_database_refuses_fails_alone(photos, probe_stage):
    bad = photos[2]

    def runner(batch):
        for photo in batch.photos:
            with batch.saving(photo):
                # title is varchar(500): Postgres refuses the longer value for the bad photo.
                Photo.objects.filter(pk=photo.pk).update(title="x" * 600 if photo.pk == bad.pk else "kept")

    probe_stage.runner = runner
    engine.run_pending("probe")
    states = dict(probe_rows().values_list("photo_id", "state"))
    assert [states[p.pk] for p in photos] == ["done", "done", "failed", "done", "done"]
    failed = probe_rows().get(photo=bad)
    assert "DataError" in failed.error and failed.attempts == engine.max_attempts()
    assert "gave up after" in failed.error
    assert Photo.objects.get(pk=bad.pk).title == ""
    assert Photo.objects.filter(title="kept").count() == 4


def test_an_error_of_the_photos_own_fails_it_at_once_without_retrying(photos, probe_stage):
    def runner(batch):
        for photo in batch.photos:
            with batch.guard(photo):
                if photo.pk == photos[0].pk:
                    raise BrokenImage("truncated image data (file ends early)")
                batch.done(photo)

    probe_stage.runner = runner
    engine.run_pending("probe")
    row = probe_rows().get(photo=photos[0])
    assert (row.state, row.attempts, row.error) == ("failed", 1, "truncated image data (file ends early)")
    assert probe_rows().filter(state="done").count() == 4


def test_a_crashing_runner_is_retried_photo_by_photo_then_failed_with_its_reason(photos, probe_stage, sent):
    def runner(batch):
        raise RuntimeError("worker blew up")

    probe_stage.runner = runner
    [(model, ids)] = engine.take("probe")
    result = engine.run_stage("probe", ids, model)
    assert result["retry"] == 5
    # Each retry travels alone: one poison photo cannot take the others down again.
    retries = [call for call in sent if call[1] == "probe"]
    assert sorted(call[2] for call in retries) == [[p.pk] for p in photos]
    for row in probe_rows():
        assert (row.state, row.attempts) == ("queued", 1)
        assert row.error == "RuntimeError: worker blew up (will try again)"

    engine.run_pending("probe")
    for row in probe_rows():
        assert (row.state, row.attempts) == ("failed", engine.max_attempts())
        assert row.error == f"RuntimeError: worker blew up (gave up after {engine.max_attempts()} attempts)"


def test_a_task_that_times_out_is_recorded_against_its_photos_and_retried(photos, probe_stage, sent):
    """django-q2 stops an overlong task by raising TimeoutException, a SystemExit: not an Exception."""
    def runner(batch):
        raise TimeoutException("Task exceeded maximum timeout value (600 seconds)")

    probe_stage.runner = runner
    for attempt in range(1, engine.max_attempts() + 1):
        batches = engine.take("probe") if attempt == 1 else [(m, ids) for _, _, ids, m, _ in sent[-5:]]
        for model, ids in batches:
            with pytest.raises(TimeoutException):
                engine.run_stage("probe", ids, model)
        for row in probe_rows():
            assert row.attempts == attempt and not row.holder
            assert row.error.startswith("timed out after 600 s")
    assert set(probe_rows().values_list("state", flat=True)) == {"failed"}
    assert probe_rows().first().error == f"timed out after 600 s (gave up after {engine.max_attempts()} attempts)"
    assert not engine.has_work()


def test_a_stage_whose_model_is_missing_waits_without_using_an_attempt(photos, probe_stage):
    def runner(batch):
        raise stages.StageUnavailable("Model Probe-1 is not available: not on disk. Copy it over.")

    probe_stage.runner = runner
    engine.run_pending("probe")
    assert set(probe_rows().values_list("state", "attempts")) == {("unavailable", 0)}
    assert "Model Probe-1 is not available: not on disk. Copy it over." in engine.unavailable_messages()
    assert not engine.has_work(), "nothing to poll for while a model is missing"


# -- claims --------------------------------------------------------------------------


def test_a_running_photo_is_never_claimed_or_queued_again(photos, probe_stage):
    [(model, ids)] = engine.take("probe")
    batch = engine.claim("probe", ids, model)
    assert [p.pk for p in batch.photos] == [p.pk for p in photos]
    assert engine.claim("probe", ids, model) is None
    assert engine.take("probe") == []
    assert engine.enqueue("probe") == set()
    assert set(probe_rows().values_list("state", "holder")) == {("running", holders.current())}


def test_only_the_rows_a_call_changed_are_handed_out(photos, probe_stage, sent):
    first = engine.enqueue("probe")
    assert first == {p.pk for p in photos}
    assert engine.enqueue("probe") == set(), "already queued: not handed out a second time"


@pytest.mark.django_db(transaction=True)
def test_two_processes_taking_work_at_once_get_disjoint_photos(library, probe_stage):
    made = [make_photo(library, f"q{i}.jpg", taken=datetime(2021, 1, 1, tzinfo=UTC) + timedelta(hours=i))
            for i in range(40)]
    engine.ensure_rows([p.pk for p in made])
    PhotoStage.objects.filter(stage="thumbnail").update(state="done")
    probe_stage.batch_size = 3
    start = threading.Barrier(2)
    taken: list[list[int]] = [[], []]

    def worker(n):
        try:
            start.wait()
            while batches := engine.take("probe", limit=3):
                for _, ids in batches:
                    taken[n].extend(ids)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not set(taken[0]) & set(taken[1])
    assert sorted(taken[0] + taken[1]) == sorted(p.pk for p in made)


def test_a_result_for_a_photo_recovery_gave_to_another_process_is_dropped(photos, probe_stage):
    victim = photos[1]

    def runner(batch):
        for photo in batch.photos:
            if photo.pk == victim.pk:  # meanwhile, recovery handed it to another worker
                PhotoStage.objects.filter(photo=photo, stage="probe").update(holder="elsewhere:1:1.0")
            with batch.saving(photo):
                Photo.objects.filter(pk=photo.pk).update(title="late result")

    probe_stage.runner = runner
    [(model, ids)] = engine.take("probe")
    engine.run_stage("probe", ids, model, hand_on=False)
    assert Photo.objects.get(pk=victim.pk).title == "", "the late result was rolled back"
    assert probe_rows().get(photo=victim).holder == "elsewhere:1:1.0"
    assert probe_rows().filter(state="done").count() == 4


# -- dependencies ---------------------------------------------------------------------


def test_a_failed_stage_blocks_what_needs_it_until_it_is_done(library, probe_stage, tmp_path):
    photo = make_photo(library, "later.jpg", taken=datetime(2020, 5, 5, tzinfo=UTC))
    engine.ensure_rows([photo.pk])
    engine.run_pending("thumbnail")  # the file is not there: the photo's own error
    states = dict(photo.stages.values_list("stage", "state"))
    assert states == {"thumbnail": "failed", "embedding": "blocked", "caption": "blocked", "tagscore": "blocked",
                      "description": "blocked", "probe": "blocked"}
    assert photo.stages.get(stage="probe").error == "needs the thumbnail stage, which failed"
    assert not engine.has_work()

    make_jpeg(tmp_path / "lib" / "later.jpg")
    assert engine.retry_failed("thumbnail") == 1
    engine.run_pending("thumbnail")
    states = dict(photo.stages.values_list("stage", "state"))
    assert states == {"thumbnail": "done", "embedding": "pending", "caption": "pending", "tagscore": "pending",
                      "description": "pending", "probe": "pending"}


def test_each_finished_batch_queues_its_photos_for_the_next_stage_with_work_for_them(photos, sent):
    ids = [p.pk for p in photos]
    PhotoStage.objects.filter(stage="embedding").update(state="queued")
    PhotoStage.objects.filter(stage__in=["caption", "tagscore"]).update(state="pending")
    PhotoStage.objects.filter(photo=photos[0], stage="caption").update(state="done")
    original = stages.get("embedding")
    stages.register(dataclasses.replace(original, runner=lambda b: [b.done(p) for p in b.photos]))
    try:
        engine.run_stage("embedding", ids, original.model())
    finally:
        stages.register(original)
    queued = {stage: ids for _, stage, ids, _, _ in sent}
    assert sorted(queued["caption"]) == ids[1:], "cheap stages first: embeddings for all, then captions"
    assert queued["tagscore"] == [photos[0].pk], "its caption was done already: on to the tag scores"
    assert "probe" not in queued, "each photo goes to the first stage with work for it"


def test_a_failed_thumbnail_hands_nothing_on(photos, sent):
    PhotoStage.objects.filter(stage="thumbnail").update(state="queued")
    PhotoStage.objects.exclude(stage="thumbnail").update(state="pending")
    engine.run_stage("thumbnail", [p.pk for p in photos], "")  # the files are not there
    assert [c for c in sent if c[1] != "thumbnail"] == []
    assert set(PhotoStage.objects.exclude(stage="thumbnail").values_list("state", flat=True)) == {"blocked"}


# -- recovery -------------------------------------------------------------------------


def running(rows, holder, *, attempts=1, lease=timedelta(minutes=5)):
    rows.update(state="running", attempts=attempts, holder=holder, lease_until=djtz.now() + lease)


def test_work_held_by_a_dead_process_is_queued_again_with_the_attempt_counted(photos, sent):
    rows = probe_rows()
    running(rows.filter(photo__in=photos[:3]), dead_holder(), attempts=1)
    running(rows.filter(photo=photos[3]), dead_holder(), attempts=engine.max_attempts())
    running(rows.filter(photo=photos[4]), holders.current())
    assert recovery.reap_dead_claims() == 4
    for row in rows.filter(photo__in=photos[:3]):
        assert (row.state, row.attempts, row.holder) == ("queued", 1, "")
        assert "worker stopped" in row.error
    spent = rows.get(photo=photos[3])
    assert spent.state == "failed" and "gave up after" in spent.error
    assert rows.get(photo=photos[4]).state == "running", "a live holder keeps its work"
    assert sorted(c[2] for c in sent if c[1] == "probe") == [[p.pk] for p in photos[:3]]


def test_work_held_on_another_machine_waits_for_its_lease(photos):
    rows = probe_rows()
    running(rows.filter(photo=photos[0]), "other-host:4242:1700000000.00", lease=timedelta(minutes=5))
    running(rows.filter(photo=photos[1]), "other-host:4242:1700000000.00", lease=-timedelta(seconds=1))
    assert recovery.reap_dead_claims() == 1
    assert rows.get(photo=photos[0]).state == "running"
    assert rows.get(photo=photos[1]).state in ("pending", "queued")


def test_queued_work_that_no_task_will_claim_goes_back_to_pending(photos, settings):
    from django_q.tasks import async_task

    long_ago = djtz.now() - timedelta(minutes=5)
    probe_rows().update(state="queued", updated_at=long_ago)
    # One photo's task is still in the broker (the ORM broker writes in this transaction).
    async_task(engine.RUN_TASK, "probe", [photos[0].pk], "", group="probe")
    assert recovery.requeue_orphans() == 4
    assert probe_rows().get(photo=photos[0]).state == "queued"
    assert probe_rows().filter(state="pending").count() == 4
    probe_rows().update(state="queued")  # just queued: its task may be on its way
    assert recovery.requeue_orphans() == 0


def test_the_tick_queues_every_ready_stage(photos, sent, tmp_path):
    PhotoStage.objects.filter(stage__in=["embedding", "caption"]).update(state="pending")
    result = recovery.recover()
    assert result["queued"] == 15  # embedding, caption and probe for five photos with thumbnails
    assert {c[1] for c in sent} == {"embedding", "caption", "probe"}
    assert all(c[0] == "gallery.tasks.run_stage" for c in sent)
    assert not probe_rows().filter(state="pending").exists()


def test_a_worker_that_starts_takes_back_the_work_of_dead_ones_and_schedules_the_tick(photos):
    from django_q.models import Schedule
    from django_q.signals import post_spawn

    running(probe_rows(), dead_holder())
    post_spawn.send(sender="django_q", proc_name="Process-1:9")
    post_spawn.send(sender="django_q", proc_name="Process-1:10")
    assert not probe_rows().filter(state="running").exists()
    tick = Schedule.objects.get(func="gallery.tasks.tick")
    assert tick.schedule_type == Schedule.MINUTES and tick.minutes == 1 and tick.repeats < 0


def test_finding_running_work_reads_only_running_rows(photos):
    with connection.cursor() as cur:
        cur.execute("SET enable_seqscan = off")
        cur.execute("EXPLAIN SELECT * FROM gallery_photostage WHERE state = 'running'")
        plan = " ".join(r[0] for r in cur.fetchall())
    assert "photostage_running_lease" in plan
