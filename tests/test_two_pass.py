"""Two-pass captions (issue 12): a quick first pass for every photo, the full description as the machine
allows or when a photo is opened, and one full description per near-duplicate group.

Real Postgres, real files from the corpus, a real HTTP caption server (tests.fake_vlm_server) behind the
openai backend; near-duplicates from controlled embeddings through the real HNSW query.
"""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from gallery import engine, libraries, scans
from gallery.models import Photo, PhotoStage
from tagging import near_duplicates, prompt, runners, search, vectors
from tagging.models import Caption, Embedding, PhotoTag, Representative
from tests.fake_vlm_server import FakeVLMServer, caption_reply

pytestmark = pytest.mark.django_db

MODEL = "qwen2.5vl:3b"
KEY = "ViT-B-32:laion2b_s34b_b79k"  # the configured CLIP model's key
DIM = 32
FILES = ["bundled_photo__coffee.jpg", "bundled_photo__flower.jpg", "orientation__landscape_6.jpg"]
FIRST = json.dumps({"caption": "A red lighthouse on a rocky shore.", "tags": ["lighthouse", "shore"]})
FULL = json.dumps({
    "caption": "A red lighthouse on a rocky shore.", "description": "Waves break below a red lighthouse at dusk.",
    "main_subject": "lighthouse", "objects": ["lighthouse", "rocks"], "people_count": 0, "activities": [],
    "scene": "coast", "time_of_day": "evening", "lighting": "warm", "visible_text": "", "tags": ["lighthouse", "dusk"],
})


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def server(settings):
    with FakeVLMServer(models=[MODEL]) as server:
        settings.CAPTION_BACKEND = "openai"
        settings.CAPTION_MODEL = MODEL
        settings.OPENAI_BASE_URL = server.url
        settings.OPENAI_RETRIES = 0
        settings.OPENAI_CONCURRENCY = 1
        settings.CLIP_MODEL = KEY
        settings.CAPTION_FIRST_TOKENS = 48
        yield server


@pytest.fixture
def photos(library_dir, server):
    """Three real photos imported (thumbnails done), with embeddings: the first two near-duplicates."""
    for name in FILES:
        library_dir.add(name)
    library, _ = libraries.add_library(str(library_dir.path))
    scans.import_library(library, sync=True)
    made = list(Photo.objects.order_by("pk"))
    base = unit(np.eye(DIM)[0])
    for photo, vector in zip(made, [base, unit(base + 0.01 * np.eye(DIM)[1]), unit(np.eye(DIM)[5])]):
        Embedding.objects.create(photo=photo, model=KEY, dim=DIM, vector=vector.tolist())
    vectors.ensure_index(KEY, DIM)
    PhotoStage.objects.filter(stage=runners.EMBEDDING).update(state="done")  # CLIP itself is tested elsewhere
    near_duplicates.find_pairs(KEY, DIM)
    return made


@pytest.fixture
def sent(monkeypatch):
    """Tasks handed to django-q2, recorded instead of sent: [(func, stage, photo ids, model, options)]."""
    calls = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda func, *args, **kw: calls.append((func, *args, kw)))
    monkeypatch.setattr("django.db.transaction.on_commit", lambda func, using=None, robust=False: func())
    return calls


def described(sent) -> list[int]:
    return sorted(pk for call in sent if call[1] == runners.DESCRIPTION for pk in call[2])


def state(photo, stage=runners.DESCRIPTION) -> str:
    return PhotoStage.objects.get(photo=photo, stage=stage).state


def prompts(server) -> list[str]:
    return [r.json["messages"][0]["content"][0]["text"] for r in server.chat_requests()]


def budgets(server) -> list[int]:
    return [r.json["max_tokens"] for r in server.chat_requests()]


# -- first pass done, full pending, full done ---------------------------------------------------


def test_the_first_pass_is_short_and_search_and_review_work_from_it_while_the_full_description_waits(
        photos, server, viewer_client):
    server.default = caption_reply(FIRST)
    result = engine.run_all_pending()
    assert result[runners.CAPTION]["done"] == 3
    assert runners.DESCRIPTION not in result, "the full pass is not run with everything else"
    assert all(p.startswith("Describe this photo") and '"description"' not in p for p in prompts(server))
    assert budgets(server) == [48, 48, 48]
    for photo in photos:
        assert state(photo, runners.CAPTION) == "done" and state(photo) == "pending"
        caption = Caption.objects.get(photo=photo)
        assert (caption.caption_pass, caption.prompt_version) == ("first", prompt.FIRST_PASS_VERSION)
        assert "missing: caption" not in caption.parse_notes and not any("description" in n for n in caption.parse_notes)
    # Search and review have what the first pass said.
    assert {r.photo.pk for r in search.search("lighthouse").results} == {p.pk for p in photos}
    assert set(PhotoTag.objects.filter(state="suggested").values_list("tag__path", flat=True)) == {"lighthouse", "shore"}
    html = viewer_client.get(f"/photos/{photos[2].pk}/").content.decode()
    assert 'data-pass="first"' in html and "First pass (one sentence and tags)" in html
    assert "Full descriptions: on its way, since you opened this photo" in html
    assert state(photos[2]) == "queued"


def test_the_full_description_follows_and_replaces_the_first_pass_where_it_is_shown(photos, server, viewer_client):
    server.default = caption_reply(FIRST)
    engine.run_pending(runners.CAPTION)
    server.default = caption_reply(FULL)
    result = engine.run_pending(runners.DESCRIPTION)
    assert result["done"] == 3
    assert budgets(server)[3:] == [400, 400], "two full descriptions at the backend's budget: the third is reused"
    assert '"visible_text"' in prompts(server)[-1]
    loner = photos[2]
    assert state(loner) == "done"
    assert sorted(Caption.objects.filter(photo=loner).values_list("caption_pass", flat=True)) == ["first", "full"]
    assert Caption.objects.filter(photo=loner).shown_first().first().caption_pass == "full"
    # The full description's tags join the first pass's suggestions.
    got = set(PhotoTag.objects.filter(photo=loner, state="suggested").values_list("tag__path", flat=True))
    assert got == {"lighthouse", "shore", "dusk"}
    assert {r.photo.pk for r in search.search("waves").results} == {p.pk for p in photos}
    html = viewer_client.get(f"/photos/{loner.pk}/").content.decode()
    assert 'data-pass="full"' in html and "Full description written by" in html
    assert "Waves break below a red lighthouse" in html


# -- as the machine allows --------------------------------------------------------------------


def test_the_full_pass_waits_while_cheaper_work_is_waiting(photos, server, sent, settings):
    settings.FULL_CAPTIONS_PER_HOUR = 100
    spec = runners.DESCRIPTION
    PhotoStage.objects.filter(stage=runners.CAPTION).update(state="done")
    PhotoStage.objects.filter(photo=photos[2], stage=runners.CAPTION).update(state="pending")
    assert engine.enqueue(spec) == set(), "a first pass is still to do"
    PhotoStage.objects.filter(photo=photos[2], stage=runners.CAPTION).update(state="done")
    PhotoStage.objects.filter(photo=photos[2], stage=runners.TAG_SCORE).update(state="queued")
    assert engine.enqueue(spec) == set(), "tag scores are on their way"
    PhotoStage.objects.filter(stage=runners.TAG_SCORE).update(state="done")
    # Idle: one batch per worker in flight (one photo per call with this server), and the near-duplicate waits
    # for its representative.
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "workers": 1}
    assert engine.enqueue(spec) == {photos[0].pk}
    assert engine.enqueue(spec) == set(), "one batch in flight for the one worker"
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "workers": 2}
    assert engine.enqueue(spec) == {photos[2].pk}, "and one for a second worker"
    assert engine.has_work(), "the queued batch is work"
    PhotoStage.objects.filter(photo__in=[photos[0], photos[2]], stage=spec).update(state="done")
    assert engine.enqueue(spec) == {photos[1].pk}, "its representative is described: the near-duplicate is ready"


def test_no_more_full_descriptions_an_hour_than_the_setting_and_none_at_zero(photos, server, sent, settings):
    PhotoStage.objects.filter(stage__in=[runners.CAPTION, runners.TAG_SCORE]).update(state="done")
    settings.FULL_CAPTIONS_PER_HOUR = 2
    written = Caption.objects.create(photo=photos[0], backend="openai", model=MODEL, prompt_version="caption-v1",
                                     raw_text="{}", caption_pass="full")
    Caption.objects.create(photo=photos[1], backend="openai", model=MODEL, prompt_version="caption-v1",
                           raw_text="{}", caption_pass="full")
    assert runners.full_captions_allowed() == 0
    assert engine.enqueue(runners.DESCRIPTION) == set(), "two written this hour"
    Caption.objects.filter(pk=written.pk).update(updated_at=timezone.now() - timedelta(minutes=61))
    assert runners.full_captions_allowed() == 1
    assert engine.enqueue(runners.DESCRIPTION) == {photos[0].pk}
    settings.FULL_CAPTIONS_PER_HOUR = 0
    PhotoStage.objects.filter(stage=runners.DESCRIPTION).update(state="pending")
    assert engine.enqueue(runners.DESCRIPTION) == set()
    assert not engine.has_work(), "pending full descriptions wait for their pace: the jobs page stops polling"
    # Asked for by name (`process --stage description`), it is queued regardless; the near-duplicate waits.
    assert engine.queue_all_pending(only=runners.DESCRIPTION)[runners.DESCRIPTION] == 2
    assert described(sent) == sorted([photos[0].pk, photos[0].pk, photos[2].pk])


def test_opening_a_photo_queues_its_full_description_and_its_representatives(photos, server, sent, settings,
                                                                             viewer_client):
    settings.FULL_CAPTIONS_PER_HOUR = 0  # only on demand
    PhotoStage.objects.filter(stage__in=[runners.CAPTION, runners.TAG_SCORE]).update(state="done")
    viewer_client.get(f"/photos/{photos[2].pk}/")
    assert described(sent) == [photos[2].pk]
    assert state(photos[2]) == "queued"
    # The near-duplicate waits for its representative, which is queued for it.
    viewer_client.get(f"/photos/{photos[1].pk}/")
    assert described(sent) == [photos[0].pk, photos[2].pk]
    assert state(photos[1]) == "pending"
    assert viewer_client.get(f"/photos/{photos[2].pk}/").status_code == 200
    assert described(sent) == [photos[0].pk, photos[2].pk], "queued once"


def test_a_finished_full_batch_queues_its_tag_scores_the_near_duplicates_it_serves_then_the_next_batch(photos, server, sent, settings):
    settings.FULL_CAPTIONS_PER_HOUR = 100
    server.default = caption_reply(FULL)
    PhotoStage.objects.filter(stage__in=[runners.CAPTION, runners.TAG_SCORE]).update(state="done")
    [(model, ids)] = engine.take(runners.DESCRIPTION, [photos[0].pk])
    engine.run_stage(runners.DESCRIPTION, ids, model)
    assert state(photos[0]) == "done"
    assert described(sent) == [photos[1].pk], "the near-duplicate it serves, at once"
    assert [c[2] for c in sent if c[1] == runners.TAG_SCORE] == [[photos[0].pk]], "its new tags are scored again"
    # The tag scores came first (cheap work first); once they are done the next paced batch follows.
    PhotoStage.objects.filter(stage__in=[runners.TAG_SCORE, runners.DESCRIPTION]).exclude(
        photo=photos[2]).update(state="done")
    engine.queue_next(runners.TAG_SCORE, [photos[0].pk])  # what a finished tag score batch does
    assert described(sent) == [photos[1].pk, photos[2].pk]


# -- one full description per near-duplicate group ---------------------------------------------


def test_a_near_duplicate_reuses_its_representatives_description_with_provenance(photos, server, viewer_client):
    rep, twin, loner = photos
    assert dict(Representative.objects.values_list("photo_id", "representative_id")) == {twin.pk: rep.pk}
    server.default = caption_reply(FIRST)
    engine.run_pending(runners.CAPTION)
    server.default = caption_reply(FULL)
    engine.run_pending(runners.DESCRIPTION)
    assert len(server.chat_requests()) == 3 + 2, "three first passes, two full descriptions"
    own = Caption.objects.get(photo=rep, caption_pass="full")
    copy = Caption.objects.get(photo=twin, caption_pass="full")
    assert copy.source == own and own.source is None
    assert (copy.description, copy.model, copy.latency) == (own.description, own.model, None)
    assert Caption.objects.get(photo=twin, caption_pass="first").source is None, "each photo has its own first pass"
    html = viewer_client.get(f"/photos/{twin.pk}/").content.decode()
    assert "Full description reused from a near-duplicate" in html and f'href="/photos/{rep.pk}/"' in html
    assert PhotoTag.objects.filter(photo=twin, tag__path="dusk").exists()


def test_reuse_is_undone_when_the_photo_leaves_its_group(photos, server):
    rep, twin, _ = photos
    server.default = caption_reply(FULL)
    PhotoStage.objects.filter(stage=runners.CAPTION).update(state="done")
    engine.run_pending(runners.DESCRIPTION)
    assert Caption.objects.get(photo=twin).source is not None
    # The twin was edited: its new embedding is far from the representative's.
    Embedding.objects.filter(photo=twin).update(vector=unit(np.eye(DIM)[9]).tolist())
    near_duplicates.find_pairs(KEY, DIM, photo_ids=[twin.pk])
    assert not Representative.objects.exists()
    assert not Caption.objects.filter(photo=twin).exists(), "the reused description is gone"
    assert state(twin) == "pending"
    calls = len(server.chat_requests())
    engine.run_pending(runners.DESCRIPTION)
    assert len(server.chat_requests()) == calls + 1, "described on its own now"
    assert Caption.objects.get(photo=twin).source is None and state(twin) == "done"


def test_reuse_is_undone_when_the_representative_is_deleted_or_described_again(photos, server, sent):
    rep, twin, _ = photos
    server.default = caption_reply(FULL)
    PhotoStage.objects.filter(stage=runners.CAPTION).update(state="done")
    engine.run_pending(runners.DESCRIPTION)
    first_copy = Caption.objects.get(photo=twin)
    # Described again (a re-run): the copy goes, and the twin is queued to follow the new description.
    engine.reprocess(runners.DESCRIPTION, only_missing=False)
    PhotoStage.objects.filter(stage=runners.DESCRIPTION).exclude(photo=rep).update(state="done")
    [(model, ids)] = engine.take(runners.DESCRIPTION, [rep.pk])
    server.default = caption_reply(FULL.replace("at dusk", "at night"))
    engine.run_stage(runners.DESCRIPTION, ids, model)
    assert not Caption.objects.filter(pk=first_copy.pk).exists()
    assert state(twin) == "queued" and twin.pk in described(sent)
    engine.run_pending(runners.DESCRIPTION)
    assert "at night" in Caption.objects.get(photo=twin).description
    # The representative deleted: its description and the copy go, and the twin is described again.
    Photo.objects.filter(pk=rep.pk).delete()
    assert not Caption.objects.filter(photo=twin).exists()
    assert state(twin) == "pending"
