"""The AI stage runners (tagging.runners) on real files, the real database and a real HTTP caption server."""

from __future__ import annotations

import json

import pytest

from gallery import engine, libraries, scans
from gallery.models import Photo, PhotoStage
from tagging import runners
from tagging.models import Caption
from tests.fake_vlm_server import GOOD_CAPTION, FakeVLMServer, caption_reply, error_reply

pytestmark = pytest.mark.django_db

MODEL = "qwen2.5vl:3b"
FILES = ["bundled_photo__coffee.jpg", "bundled_photo__flower.jpg", "orientation__landscape_6.jpg"]


@pytest.fixture
def server(settings):
    with FakeVLMServer(models=[MODEL]) as server:
        settings.CAPTION_BACKEND = "openai"
        settings.CAPTION_MODEL = MODEL
        settings.OPENAI_BASE_URL = server.url
        settings.OPENAI_RETRIES = 0
        settings.OPENAI_CONCURRENCY = 1
        yield server


@pytest.fixture
def photos(library_dir, server):
    for name in FILES:
        library_dir.add(name)
    library, _ = libraries.add_library(str(library_dir.path))
    scans.import_library(library, sync=True)  # thumbnails here; the caption stage is pending
    return list(Photo.objects.order_by("pk"))


def test_model_text_the_database_could_not_hold_is_cleaned_and_stored(photos, server):
    odd = json.dumps({"caption": "A cup of coffee \ud800 on a table.\u0000", "tags": ["coffee", "x" * 80]}, ensure_ascii=False)
    server.queue(
        caption_reply(GOOD_CAPTION),
        caption_reply(odd, prompt_tokens=2**40, completion_tokens=-3),
        caption_reply(GOOD_CAPTION),
    )
    result = engine.run_pending(runners.CAPTION)
    assert result["done"] == 3
    second = Caption.objects.get(photo=photos[1])
    assert second.caption == "A cup of coffee ? on a table."
    assert "\ud800" not in second.raw_text and "coffee ? on" in second.raw_text and "\x00" not in second.raw_text
    assert second.prompt_tokens == 2**31 - 1 and second.output_tokens is None
    assert max(len(t) for t in second.tags) <= 50


def test_one_photos_failed_call_fails_that_photo_and_the_others_are_saved(photos, server):
    server.queue(caption_reply(GOOD_CAPTION), error_reply(404, f'model "{MODEL}" not found'), caption_reply(GOOD_CAPTION))
    engine.run_pending(runners.CAPTION)
    states = dict(PhotoStage.objects.filter(stage=runners.CAPTION).values_list("photo_id", "state"))
    assert [states[p.pk] for p in photos] == ["done", "failed", "done"]
    failed = PhotoStage.objects.get(stage=runners.CAPTION, photo=photos[1])
    assert failed.attempts == 1, "a refusal that will not change is not retried"
    assert Caption.objects.count() == 2


def test_a_server_error_is_retried_and_the_photo_then_captioned(photos, server):
    server.queue(error_reply(500, "CUDA out of memory"))
    engine.run_pending(runners.CAPTION)
    rows = PhotoStage.objects.filter(stage=runners.CAPTION)
    assert set(rows.values_list("state", flat=True)) == {"done"}
    assert sorted(rows.values_list("attempts", flat=True)) == [1, 1, 2]
    assert Caption.objects.count() == 3


def test_a_photo_without_a_capture_time_gives_the_model_no_date(photos):
    photo = photos[0]
    photo.taken_at_source = "file mtime"
    assert runners.photo_context(photo).taken_at is None
    photo.taken_at_source = "exif:DateTimeOriginal"
    assert runners.photo_context(photo).taken_at is not None


def test_decisions_and_the_owners_caption_survive_reprocessing_the_captions(photos, server):
    from tagging import tags
    from tagging.models import OwnerCaption, PhotoTag

    engine.run_pending(runners.CAPTION)
    photo = photos[0]
    tags.decide(tags.find("dog"), [photo.pk], True)
    tags.decide(tags.find("sea"), [photo.pk], False)
    tags.set_owner_caption(photo, "Rex and the North Sea")
    server.default = caption_reply(json.dumps({"caption": "A cat by the water.", "tags": ["cat", "sea"]}))

    assert engine.reprocess(runners.CAPTION) == 3
    engine.run_pending(runners.CAPTION)
    got = dict(PhotoTag.objects.filter(photo=photo).values_list("tag__path", "state"))
    assert got["dog"] == "accepted", "an accepted tag is never dropped"
    assert got["sea"] == "rejected", "a rejected tag never comes back"
    assert got["cat"] == "suggested" and "beach" not in got, "the old run's undecided suggestions go"
    assert OwnerCaption.objects.get(photo=photo).caption == "Rex and the North Sea"
    assert Caption.objects.get(photo=photo).caption == "A cat by the water."
